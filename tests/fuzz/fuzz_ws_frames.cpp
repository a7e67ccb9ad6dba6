// libFuzzer target: client WebSocket frames (RFC 6455) as the server reads them.
// Properties checked beyond "no crash": the reader never consumes more than it was given, and
// feeding the same bytes in small chunks (keeping the unconsumed tail, as the session does)
// gives exactly the events and the error of feeding them at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/ws_frame.hpp"

namespace {

using chat::net::ws::Event;
using chat::net::ws::FrameReader;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Outcome {
  std::vector<Event> events;
  std::uint16_t error = 0;
  bool closed = false;
};

Outcome run(std::string_view input, std::size_t chunk, std::size_t max_message) {
  FrameReader reader(max_message);
  Outcome out;
  std::string pending;
  for (std::size_t at = 0; at < input.size() && !out.error && !out.closed; at += chunk) {
    pending.append(input.substr(at, chunk));
    std::string buf = pending;  // parse() unmasks in place
    auto r = reader.parse(buf.data(), buf.size(), [&](Event&& e) { out.events.push_back(std::move(e)); });
    check(r.consumed <= buf.size());
    out.error = r.error;
    out.closed = r.closed;
    pending.erase(0, r.consumed);
  }
  return out;
}

bool same(const Outcome& a, const Outcome& b) {
  if (a.error != b.error || a.closed != b.closed || a.events.size() != b.events.size()) return false;
  for (std::size_t i = 0; i < a.events.size(); ++i) {
    const auto &x = a.events[i], &y = b.events[i];
    if (x.kind != y.kind || x.binary != y.binary || x.data != y.data || x.close_code != y.close_code)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t max_message = 1 + data[0] * 64;  // 1 .. 16,321 bytes
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome whole = run(input, input.size() ? input.size() : 1, max_message);
  for (const Event& e : whole.events)
    if (e.kind == Event::Kind::message) check(e.data.size() <= max_message);
  check(same(whole, run(input, 1, max_message)));
  check(same(whole, run(input, 7, max_message)));
  return 0;
}
