// libFuzzer target: the Socket.IO Decoder fed with a sequence of Engine.IO messages.
// Input layout: byte 0 = separator, byte 1 = flags, the rest split on the separator into messages;
// message k is binary when bit (k % 8) of the flags is set, text otherwise.
// Properties checked beyond "no crash": every completed packet re-encodes to text that decodes to
// the same packet, and its attachments match what was announced.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "socketio/packet.hpp"

namespace {

constexpr std::size_t kMaxAttachments = 10;
constexpr std::size_t kMaxAttachmentBytes = 4096;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_packet(const chat::socketio::Packet& p) {
  using namespace chat::socketio;
  check(p.nsp.find(',') == std::string::npos && !p.nsp.empty() && p.nsp.front() == '/');
  check(!p.id || *p.id <= kMaxAckId);
  if (is_binary(p.type)) {
    check(p.attachments >= 1 && p.attachments <= kMaxAttachments);
    check(p.buffers.size() == p.attachments);
  } else {
    check(p.attachments == 0 && p.buffers.empty());
  }
  auto again = decode(encode(p), kMaxAttachments);
  check(again.ok());
  Packet expected = p;
  expected.buffers.clear();
  check(*again == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace chat::socketio;
  if (size < 2) return 0;
  const char separator = static_cast<char>(data[0]);
  const std::uint8_t flags = data[1];
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);

  Decoder decoder(kMaxAttachments, kMaxAttachmentBytes);
  for (std::size_t k = 0;; ++k) {
    const std::size_t end = rest.find(separator);
    const std::string_view message = rest.substr(0, end);
    const bool binary = (flags >> (k % 8)) & 1;
    auto r = binary ? decoder.add_binary(message) : decoder.add_text(message);
    if (!r) {
      check(!decoder.awaiting_attachments());
    } else if (r->has_value()) {
      check_packet(**r);
      check(!decoder.awaiting_attachments());
    } else {
      check(decoder.awaiting_attachments());
    }
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return 0;
}
