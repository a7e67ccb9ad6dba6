#pragma once
// Engine.IO v4 packet codec: pure functions, no I/O, no exceptions, no shared state (all functions
// are safe to call from any thread). Wire format: see /work/shared/PROTOCOL.md and the reference
// engine.io-parser (decodePacket / decodePayload / encodePacket).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace chat::engineio {

/// Packet type; the wire form is the digit '0' + value.
enum class PacketType : std::uint8_t { open, close, ping, pong, message, upgrade, noop };

/// One Engine.IO packet. `data` is the text after the type digit, or the raw bytes of a binary
/// message. `binary` is only ever true for `PacketType::message`.
struct Packet {
  PacketType type = PacketType::message;
  std::string data;
  bool binary = false;

  friend bool operator==(const Packet&, const Packet&) = default;
};

/// The packet separator of an HTTP long-polling payload (ASCII record separator).
inline constexpr char kRecordSeparator = '\x1e';

/// Decodes a WebSocket text frame: a type digit '0'..'6' followed by the data. As in the
/// reference parser, "b<base64>" is also accepted and yields a binary message.
/// Returns nullopt for an empty frame, an unknown type or bad base64 (a parse error: the caller
/// closes the session).
std::optional<Packet> decode_text_frame(std::string_view frame);

/// Decodes a WebSocket binary frame: always a binary message carrying the raw bytes.
Packet decode_binary_frame(std::string_view frame);

/// Encodes a packet as text: type digit + data, or "b" + base64(data) for a binary message (the
/// polling form). Over WebSocket send a binary message as a binary frame with the raw `data`
/// instead.
std::string encode_text(const Packet& packet);

/// Decodes an HTTP long-polling POST body: packets separated by '\x1e', each "<digit>[data]" or
/// "b<base64>" (a binary message).
/// Errors: errc::invalid_argument for an empty segment (hence also an empty body), an unknown type
/// or bad base64; errc::too_large when the body holds more than `max_packets` packets (detected
/// before any further decoding, so memory stays proportional to the body).
result<std::vector<Packet>> decode_payload(std::string_view body, std::size_t max_packets);

/// Encodes packets for an HTTP long-polling GET response: `encode_text` of each, joined with
/// '\x1e'. An empty vector gives "".
std::string encode_payload(const std::vector<Packet>& packets);

/// Data of the open packet (without the leading '0'), compact JSON in the reference's key order:
/// {"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,
/// "maxPayload":1000000} (on one line).
/// `upgrades` is [] when `can_upgrade` is false (a session opened directly over WebSocket).
std::string open_packet_json(std::string_view sid, bool can_upgrade, int ping_interval_ms,
                             int ping_timeout_ms, std::size_t max_payload);

/// Engine.IO HTTP error codes (body {"code":N,"message":"…"}).
enum class ErrorCode : int {
  unknown_transport = 0,             ///< "Transport unknown"
  unknown_sid = 1,                   ///< "Session ID unknown"
  bad_handshake_method = 2,          ///< "Bad handshake method" (no sid and not GET)
  bad_request = 3,                   ///< "Bad request"
  forbidden = 4,                     ///< "Forbidden"
  unsupported_protocol_version = 5,  ///< "Unsupported protocol version" (EIO other than 4)
};

/// The reference message for an error code, e.g. "Session ID unknown".
std::string_view error_message(ErrorCode code);

/// HTTP status to send with the error body: 403 for `forbidden`, 400 otherwise.
int error_http_status(ErrorCode code);

/// Body of an HTTP error response (Content-Type application/json), e.g.
/// {"code":1,"message":"Session ID unknown"}.
std::string error_json(ErrorCode code);

/// A new random session id: 20 URL-safe characters [A-Za-z0-9_-] (15 bytes from OpenSSL's
/// CSPRNG, base64url encoded), like the reference's base64id. Thread-safe. Aborts if the CSPRNG
/// fails (a broken invariant: ids must never be predictable).
std::string new_sid();

}  // namespace chat::engineio
