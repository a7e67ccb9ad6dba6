#pragma once
// RFC 6455 framing for the server side, I/O free: parsing of client frames (masked, possibly
// fragmented, interleaved with control frames) and encoding of server frames (unmasked).
// The WebSocket session (ws_session.cpp) reads many frames per read() and writes many frames
// per write() with these; they are here, apart from the socket, so that unit tests and a fuzz
// target can drive them with arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chat::net::ws {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Close codes the server sends (RFC 6455 §7.4.1).
enum CloseCode : std::uint16_t {
  kCloseNormal = 1000,
  kCloseGoingAway = 1001,
  kCloseProtocolError = 1002,
  kCloseNoStatus = 1005,  ///< received only: a close frame without a code
  kCloseInvalidPayload = 1007,
  kCloseTooBig = 1009,
};

/// What a complete frame (control) or message (data, reassembled) is.
struct Event {
  enum class Kind { message, ping, pong, close } kind = Kind::message;
  bool binary = false;
  std::string data;              ///< message or ping/pong payload; close: the reason
  std::uint16_t close_code = 0;  ///< close only (kCloseNoStatus when the frame had none)
};

/// The outcome of one parse() call.
struct ParseResult {
  std::size_t consumed = 0;     ///< bytes of complete frames (the caller keeps the rest)
  std::uint16_t error = 0;      ///< non-zero: a protocol violation; close with this code
  const char* reason = "";      ///< for the log, when `error` is set
  bool closed = false;          ///< a close frame was parsed: nothing after it is read
};

/// XORs `p[0..n)` with a 4-byte masking key (masking and unmasking are the same), eight bytes
/// at a time.
void apply_mask(char* p, std::size_t n, const unsigned char key[4]) noexcept;

/// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

/// Parses a client's byte stream into events. Not thread-safe (one per connection).
class FrameReader {
 public:
  /// Data messages (after reassembly) larger than `max_message` bytes are an error (1009),
  /// detected from the frame header, before the payload is buffered.
  explicit FrameReader(std::size_t max_message) : max_message_(max_message) {}

  /// Parses the complete frames at the front of `data` (unmasking them in place) and calls
  /// `on(Event&&)` for each message and control frame. Stops at an incomplete frame, after a
  /// close frame, or at the first violation. `on` may not re-enter the reader.
  template <class OnEvent>
  ParseResult parse(char* data, std::size_t size, OnEvent&& on) {
    ParseResult r;
    for (;;) {
      Frame f;
      const Step s = next_frame(data + r.consumed, size - r.consumed, f, r);
      if (s == Step::need_more || s == Step::error) return r;
      r.consumed += f.header_size + f.length;
      Event ev;
      if (!take(f, ev, r)) return r;
      if (f.deliver) on(std::move(ev));
      if (r.closed) return r;
    }
  }

  /// Bytes of a fragmented message held between frames (its capacity is freed when done).
  std::size_t partial_bytes() const noexcept { return partial_.size(); }
  /// The longest frame (header included) a reader may need in one buffer: the caller must be
  /// ready to hold this much to make progress.
  std::size_t max_frame_bytes() const noexcept { return max_message_ + 14; }

 private:
  enum class Step { frame, need_more, error };
  struct Frame {
    bool fin = false;
    Opcode op = Opcode::continuation;
    std::size_t header_size = 0;
    std::size_t length = 0;
    char* payload = nullptr;
    bool deliver = false;
  };
  Step next_frame(char* p, std::size_t n, Frame& f, ParseResult& r);
  bool take(Frame& f, Event& ev, ParseResult& r);

  std::size_t max_message_;
  std::string partial_;  ///< a fragmented data message being reassembled
  bool in_message_ = false;
  bool partial_binary_ = false;
};

/// Appends the header of an unmasked server frame with FIN set; returns its size.
std::size_t append_frame_header(std::string& out, Opcode op, std::size_t payload_size);
/// Appends a whole unmasked server frame.
void append_frame(std::string& out, Opcode op, std::string_view payload);
/// The payload of a close frame: the code, then the reason (truncated to fit 125 bytes).
std::string close_payload(std::uint16_t code, std::string_view reason = {});

/// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string accept_key(std::string_view client_key);
/// A valid Sec-WebSocket-Key: base64 of 16 bytes.
bool valid_client_key(std::string_view key);

}  // namespace chat::net::ws
