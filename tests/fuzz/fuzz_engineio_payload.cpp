// libFuzzer target: Engine.IO polling payloads and WebSocket text frames.
// Properties checked beyond "no crash": whatever decodes re-encodes to something that decodes to
// the same packets.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engineio/packet.hpp"

namespace {

constexpr std::size_t kMaxPackets = 64;

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace chat::engineio;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  if (auto packets = decode_payload(input, kMaxPackets)) {
    check(!packets->empty() && packets->size() <= kMaxPackets);
    auto again = decode_payload(encode_payload(*packets), kMaxPackets);
    check(again.ok() && *again == *packets);
  }

  if (auto packet = decode_text_frame(input)) {
    check(!packet->binary || packet->type == PacketType::message);
    auto again = decode_text_frame(encode_text(*packet));
    check(again.has_value() && *again == *packet);
  }

  const Packet bin = decode_binary_frame(input);
  check(bin.binary && bin.data == input);
  return 0;
}
