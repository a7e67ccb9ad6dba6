#include "socketio/packet.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include <array>
#include <cassert>

namespace chat::socketio {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 6> kReservedEvents = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

// More digits than this can never be a valid ack id (kMaxAckId has 16); stopping early keeps the
// arithmetic far from overflow.
constexpr std::size_t kMaxAckIdDigits = 16;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

error invalid(std::string msg) { return error{errc::invalid_argument, std::move(msg)}; }

std::string_view trim_json_space(std::string_view s) {
  while (!s.empty() && is_json_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_json_space(s.back())) s.remove_suffix(1);
  return s;
}

bool is_placeholder(const json::object& o) {
  const json::value* flag = o.if_contains("_placeholder");
  return flag != nullptr && flag->is_bool() && flag->get_bool();
}

// Placeholders must be exactly {"_placeholder":true,"num":0..n-1}, each num once, so that every
// attachment is referenced and a later re-emit can forward buffers as they are.
result<void> check_placeholders(const json::value& v, std::vector<bool>& seen,
                                std::size_t& count) {
  if (const auto* arr = v.if_array()) {
    for (const auto& e : *arr) {
      if (auto r = check_placeholders(e, seen, count); !r) return r;
    }
  } else if (const auto* obj = v.if_object()) {
    if (!is_placeholder(*obj)) {
      for (const auto& kv : *obj) {
        if (auto r = check_placeholders(kv.value(), seen, count); !r) return r;
      }
      return {};
    }
    ++count;
    const json::value* num = obj->if_contains("num");
    std::uint64_t n = 0;
    if (num == nullptr) return invalid("placeholder without num");
    if (num->is_uint64()) {
      n = num->get_uint64();
    } else if (num->is_int64() && num->get_int64() >= 0) {
      n = static_cast<std::uint64_t>(num->get_int64());
    } else {
      return invalid("placeholder num is not a non-negative integer");
    }
    if (n >= seen.size()) return invalid("placeholder num out of range");
    if (seen[n]) return invalid("placeholder num used twice");
    seen[n] = true;
  }
  return {};
}

result<void> check_payload(PacketType type, const json::value& v) {
  switch (type) {
    case PacketType::connect:
      if (!v.is_object()) return invalid("CONNECT payload must be an object");
      return {};
    case PacketType::disconnect:
      return invalid("DISCONNECT takes no payload");
    case PacketType::event:
    case PacketType::binary_event: {
      const auto* arr = v.if_array();
      if (arr == nullptr || arr->empty()) return invalid("EVENT payload must be a non-empty array");
      const auto& name = arr->front();
      if (name.is_number()) return {};
      if (!name.is_string()) return invalid("event name must be a string or a number");
      if (is_reserved_event(name.get_string())) return invalid("reserved event name");
      return {};
    }
    case PacketType::ack:
    case PacketType::binary_ack:
      if (!v.is_array()) return invalid("ACK payload must be an array");
      return {};
    case PacketType::connect_error:
      if (!v.is_object() && !v.is_string()) {
        return invalid("CONNECT_ERROR payload must be an object or a string");
      }
      return {};
  }
  return invalid("unknown packet type");
}

}  // namespace

bool is_reserved_event(std::string_view name) {
  for (auto r : kReservedEvents) {
    if (r == name) return true;
  }
  return false;
}

std::string encode(const Packet& packet) {
  assert(packet.nsp.find(',') == std::string::npos);
  std::string out;
  out.reserve(packet.data.size() + packet.nsp.size() + 24);
  out.push_back(static_cast<char>('0' + static_cast<int>(packet.type)));
  if (is_binary(packet.type)) {
    out += std::to_string(packet.attachments);
    out.push_back('-');
  }
  if (!packet.nsp.empty() && packet.nsp != "/") {
    out += packet.nsp;
    out.push_back(',');
  }
  if (packet.id) out += std::to_string(*packet.id);
  out += packet.data;
  return out;
}

std::string encode_event(std::string_view nsp, std::string_view json_array,
                         std::optional<std::uint64_t> ack_id) {
  Packet p;
  p.type = PacketType::event;
  p.nsp = std::string(nsp);
  p.id = ack_id;
  p.data = std::string(json_array);
  return encode(p);
}

result<boost::json::value> parse_json(std::string_view text) {
  json::parse_options opts;
  opts.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, {}, opts);
  if (ec) return invalid("bad JSON: " + ec.message());
  return v;
}

std::size_t count_placeholders(const boost::json::value& v) {
  std::size_t n = 0;
  if (const auto* arr = v.if_array()) {
    for (const auto& e : *arr) n += count_placeholders(e);
  } else if (const auto* obj = v.if_object()) {
    if (is_placeholder(*obj)) return 1;
    for (const auto& kv : *obj) n += count_placeholders(kv.value());
  }
  return n;
}

result<Packet> decode(std::string_view text, std::size_t max_attachments) {
  if (text.empty()) return invalid("empty packet");
  if (text[0] < '0' || text[0] > '6') return invalid("unknown packet type");
  Packet p;
  p.type = static_cast<PacketType>(text[0] - '0');
  std::size_t i = 1;

  if (is_binary(p.type)) {
    const std::size_t dash = text.find('-', i);
    if (dash == std::string_view::npos) return invalid("binary packet without attachment count");
    if (dash == i) return invalid("empty attachment count");
    std::size_t n = 0;
    bool over = false;
    for (std::size_t k = i; k < dash; ++k) {
      if (!is_digit(text[k])) return invalid("bad attachment count");
      if (!over) {
        n = n * 10 + static_cast<std::size_t>(text[k] - '0');
        over = n > max_attachments;
      }
    }
    if (over) return error{errc::too_large, "too many attachments"};
    if (n == 0) return invalid("binary packet with zero attachments");
    p.attachments = n;
    i = dash + 1;
  }

  if (i < text.size() && text[i] == '/') {
    const std::size_t comma = text.find(',', i);
    if (comma == std::string_view::npos) {
      p.nsp = std::string(text.substr(i));
      i = text.size();
    } else {
      p.nsp = std::string(text.substr(i, comma - i));
      i = comma + 1;
    }
  }

  if (i < text.size() && is_digit(text[i])) {
    std::uint64_t id = 0;
    std::size_t digits = 0;
    for (; i < text.size() && is_digit(text[i]); ++i) {
      if (++digits > kMaxAckIdDigits) return invalid("ack id too long");
      id = id * 10 + static_cast<std::uint64_t>(text[i] - '0');
    }
    if (id > kMaxAckId) return invalid("ack id too large");
    if (p.type == PacketType::connect || p.type == PacketType::disconnect ||
        p.type == PacketType::connect_error) {
      return invalid("ack id not allowed on this packet type");
    }
    p.id = id;
  }

  const std::string_view rest = text.substr(i);
  if (rest.empty()) {
    if (p.type == PacketType::connect || p.type == PacketType::disconnect) return p;
    return invalid("payload required");
  }
  auto value = parse_json(rest);
  if (!value) return value.err();
  if (auto r = check_payload(p.type, *value); !r) return r.err();
  if (is_binary(p.type)) {
    std::vector<bool> seen(p.attachments, false);
    std::size_t count = 0;
    if (auto r = check_placeholders(*value, seen, count); !r) return r.err();
    if (count != p.attachments) return invalid("placeholder count does not match attachments");
  }
  p.data = std::string(trim_json_space(rest));
  return p;
}

Decoder::Decoder(std::size_t max_attachments, std::size_t max_attachment_bytes)
    : max_attachments_(max_attachments), max_attachment_bytes_(max_attachment_bytes) {}

void Decoder::reset() noexcept {
  pending_.reset();
  pending_bytes_ = 0;
}

result<std::optional<Packet>> Decoder::add_text(std::string_view text) {
  if (pending_) {
    reset();
    return invalid("text packet while binary attachments are pending");
  }
  auto packet = decode(text, max_attachments_);
  if (!packet) return packet.err();
  if (!is_binary(packet->type)) return std::optional<Packet>(std::move(*packet));
  pending_ = std::move(*packet);
  pending_->buffers.reserve(pending_->attachments);
  pending_bytes_ = 0;
  return std::optional<Packet>();
}

result<std::optional<Packet>> Decoder::add_binary(std::string_view bytes) {
  if (!pending_) return invalid("binary message without a pending binary packet");
  if (bytes.size() > max_attachment_bytes_ - pending_bytes_) {
    reset();
    return error{errc::too_large, "binary attachments too large"};
  }
  pending_bytes_ += bytes.size();
  pending_->buffers.emplace_back(bytes);
  if (pending_->buffers.size() < pending_->attachments) return std::optional<Packet>();
  std::optional<Packet> done = std::move(pending_);
  reset();
  return done;
}

}  // namespace chat::socketio
