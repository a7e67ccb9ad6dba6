#include "engineio/packet.hpp"

#include <cstring>

#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>

#include "core/base64.hpp"

namespace chat::engineio {
namespace {

constexpr char kBinaryPrefix = 'b';

std::optional<PacketType> type_from_char(char c) {
  if (c < '0' || c > '6') return std::nullopt;
  return static_cast<PacketType>(c - '0');
}

char type_to_char(PacketType t) { return static_cast<char>('0' + static_cast<int>(t)); }

// One packet of the text form shared by WebSocket text frames and polling payload segments.
std::optional<Packet> decode_segment(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (s.front() == kBinaryPrefix) {
    // The reference uses Node's lenient Buffer.from(…, "base64"); we accept only well-formed
    // standard base64, which is all the official clients produce.
    auto bytes = base64_decode(s.substr(1));
    if (!bytes) return std::nullopt;
    return Packet{PacketType::message, std::move(*bytes), true};
  }
  auto type = type_from_char(s.front());
  if (!type) return std::nullopt;
  return Packet{*type, std::string(s.substr(1)), false};
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

}  // namespace

std::optional<Packet> decode_text_frame(std::string_view frame) { return decode_segment(frame); }

Packet decode_binary_frame(std::string_view frame) {
  return Packet{PacketType::message, std::string(frame), true};
}

std::string encode_text(const Packet& packet) {
  if (packet.binary) {
    std::string out(1, kBinaryPrefix);
    out += base64_encode(packet.data);
    return out;
  }
  std::string out;
  out.reserve(packet.data.size() + 1);
  out.push_back(type_to_char(packet.type));
  out += packet.data;
  return out;
}

result<std::vector<Packet>> decode_payload(std::string_view body, std::size_t max_packets) {
  // Count first so that a body of separators cannot make us allocate max_packets+ entries.
  const auto count = static_cast<std::size_t>(std::count(body.begin(), body.end(),
                                                         kRecordSeparator)) + 1;
  if (count > max_packets) {
    return error{errc::too_large, "payload holds " + std::to_string(count) +
                                      " packets, limit " + std::to_string(max_packets)};
  }
  std::vector<Packet> packets;
  packets.reserve(count);
  std::size_t start = 0;
  while (true) {
    const std::size_t end = body.find(kRecordSeparator, start);
    const std::string_view segment =
        body.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    auto packet = decode_segment(segment);
    if (!packet) {
      return error{errc::invalid_argument,
                   "bad packet #" + std::to_string(packets.size()) + " in polling payload"};
    }
    packets.push_back(std::move(*packet));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return packets;
}

std::string encode_payload(const std::vector<Packet>& packets) {
  std::string out;
  for (std::size_t i = 0; i < packets.size(); ++i) {
    if (i > 0) out.push_back(kRecordSeparator);
    out += encode_text(packets[i]);
  }
  return out;
}

std::string open_packet_json(std::string_view sid, bool can_upgrade, int ping_interval_ms,
                             int ping_timeout_ms, std::size_t max_payload) {
  std::string out = "{\"sid\":";
  append_json_string(out, sid);
  out += can_upgrade ? ",\"upgrades\":[\"websocket\"]" : ",\"upgrades\":[]";
  out += ",\"pingInterval\":" + std::to_string(ping_interval_ms);
  out += ",\"pingTimeout\":" + std::to_string(ping_timeout_ms);
  out += ",\"maxPayload\":" + std::to_string(max_payload);
  out += '}';
  return out;
}

std::string_view error_message(ErrorCode code) {
  switch (code) {
    case ErrorCode::unknown_transport: return "Transport unknown";
    case ErrorCode::unknown_sid: return "Session ID unknown";
    case ErrorCode::bad_handshake_method: return "Bad handshake method";
    case ErrorCode::bad_request: return "Bad request";
    case ErrorCode::forbidden: return "Forbidden";
    case ErrorCode::unsupported_protocol_version: return "Unsupported protocol version";
  }
  return "Bad request";
}

int error_http_status(ErrorCode code) { return code == ErrorCode::forbidden ? 403 : 400; }

std::string error_json(ErrorCode code) {
  std::string out = "{\"code\":" + std::to_string(static_cast<int>(code)) + ",\"message\":";
  append_json_string(out, error_message(code));
  out += '}';
  return out;
}

std::string new_sid() {
  // Random bytes drawn from OpenSSL's CSPRNG 4 KiB at a time per thread, each byte used once:
  // a connect takes three ids, and RAND_bytes per id was ~5 % of a connect's CPU.
  constexpr std::size_t kIdBytes = 15;
  struct Pool {
    unsigned char bytes[4096 - 4096 % kIdBytes];
    std::size_t used = sizeof bytes;
  };
  thread_local Pool pool;
  if (pool.used + kIdBytes > sizeof pool.bytes) {
    if (RAND_bytes(pool.bytes, sizeof pool.bytes) != 1) std::abort();
    pool.used = 0;
  }
  const unsigned char* id = pool.bytes + pool.used;
  pool.used += kIdBytes;
  std::string sid = base64url_encode(std::string_view(reinterpret_cast<const char*>(id), kIdBytes));
  std::memset(pool.bytes + pool.used - kIdBytes, 0, kIdBytes);  // not kept once handed out
  return sid;
}

}  // namespace chat::engineio
