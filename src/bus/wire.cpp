#include "bus/wire.hpp"

#include <charconv>

namespace chat::bus::wire {

namespace {

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool id_chars(std::string_view id, bool allow_instance_chars) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || (allow_instance_chars && (c == '.' || c == ':'));
    if (!ok) return false;
  }
  return true;
}

// Splits off the text before the next `sep`; false when there is none.
bool take(std::string_view& s, char sep, std::string_view& field) {
  auto p = s.find(sep);
  if (p == std::string_view::npos) return false;
  field = s.substr(0, p);
  s.remove_prefix(p + 1);
  return true;
}

}  // namespace

result<RedisTarget> parse_redis_url(std::string_view url) {
  RedisTarget t;
  bool first = true;
  while (true) {
    auto comma = url.find(',');
    std::string_view item = url.substr(0, comma);
    if (item.starts_with("redis://")) {
      item.remove_prefix(8);
    } else if (first) {
      return {errc::invalid_argument, "redis url must start with redis://"};
    }
    if (auto at = item.rfind('@'); at != std::string_view::npos) {
      std::string_view cred = item.substr(0, at);
      item.remove_prefix(at + 1);
      std::string_view user, pass = cred;
      if (auto colon = cred.find(':'); colon != std::string_view::npos) {
        user = cred.substr(0, colon);
        pass = cred.substr(colon + 1);
      }
      auto u = percent_decode(user);
      auto p = percent_decode(pass);
      if (!u || !p) return {errc::invalid_argument, "bad %-encoding in the redis url"};
      t.username = *u;
      t.password = *p;
    }
    if (auto slash = item.find('/'); slash != std::string_view::npos) {
      std::string_view db = item.substr(slash + 1);
      item = item.substr(0, slash);
      if (!db.empty()) {
        auto n = parse_number<int>(db);
        if (!n || *n < 0 || *n > 100000) return {errc::invalid_argument, "bad redis db number"};
        t.db = *n;
      }
    }
    if (item.empty()) return {errc::invalid_argument, "redis url without a host"};
    std::optional<cluster::Node> node;
    bool bracketed_v6 = item.front() == '[' && item.back() == ']';
    if (item.find(':') == std::string_view::npos || bracketed_v6) {
      node = cluster::Node{std::string(bracketed_v6 ? item.substr(1, item.size() - 2) : item),
                           6379};
    } else {
      node = cluster::parse_address(item);
    }
    if (!node || node->host.empty()) return {errc::invalid_argument, "bad redis host:port"};
    t.seeds.push_back(std::move(*node));
    first = false;
    if (comma == std::string_view::npos) break;
    url.remove_prefix(comma + 1);
  }
  return t;
}

bool valid_instance_id(std::string_view id) { return id_chars(id, true); }
bool valid_user_id(std::string_view id) { return id_chars(id, false); }

std::string user_channel(std::string_view user_id) {
  std::string c = "chat:u:{";
  c += user_id;
  c += '}';
  return c;
}

std::optional<std::string_view> user_from_channel(std::string_view channel) {
  constexpr std::string_view kPrefix = "chat:u:{";
  if (!channel.starts_with(kPrefix) || !channel.ends_with('}')) return std::nullopt;
  auto id = channel.substr(kPrefix.size(), channel.size() - kPrefix.size() - 1);
  if (!valid_user_id(id)) return std::nullopt;
  return id;
}

std::string presence_key(std::string_view instance_id) {
  std::string k = "chat:presence:{";
  k += instance_id;
  k += '}';
  return k;
}

std::string encode_event(std::string_view origin, const UserEvent& ev) {
  std::string out;
  out.reserve(origin.size() + ev.except_origin.size() + ev.payload.size() + 16);
  out += "1|";
  out += origin;
  out += '|';
  out += ev.recoverable ? '1' : '0';
  out += '|';
  out += std::to_string(ev.except_origin.size());
  out += '|';
  out += ev.except_origin;
  out += ev.payload;
  return out;
}

std::optional<DecodedEvent> decode_event(std::string_view s) {
  std::string_view version, origin, rec, len;
  if (!take(s, '|', version) || version != "1") return std::nullopt;
  if (!take(s, '|', origin) || !valid_instance_id(origin)) return std::nullopt;
  if (!take(s, '|', rec) || (rec != "0" && rec != "1")) return std::nullopt;
  if (!take(s, '|', len)) return std::nullopt;
  auto n = parse_number<std::size_t>(len);
  if (!n || *n > s.size()) return std::nullopt;
  DecodedEvent d;
  d.origin = std::string(origin);
  d.event.recoverable = rec == "1";
  d.event.except_origin = std::string(s.substr(0, *n));
  d.event.payload = std::string(s.substr(*n));
  return d;
}

std::string encode_presence(const PresenceMessage& m) {
  std::string out(1, static_cast<char>(m.kind));
  out += ' ';
  out += m.instance;
  switch (m.kind) {
    case PresenceMessage::Kind::online:
    case PresenceMessage::Kind::offline:
      out += ' ';
      out += m.user;
      break;
    case PresenceMessage::Kind::heartbeat:
      out += ' ';
      out += std::to_string(m.count);
      out += ' ';
      out += std::to_string(m.digest);
      break;
    case PresenceMessage::Kind::gone:
      break;
  }
  return out;
}

std::optional<PresenceMessage> decode_presence(std::string_view s) {
  if (s.size() < 3 || s[1] != ' ') return std::nullopt;
  PresenceMessage m;
  char kind = s[0];
  s.remove_prefix(2);
  std::vector<std::string_view> parts;
  while (!s.empty() && parts.size() < 4) {
    auto sp = s.find(' ');
    parts.push_back(s.substr(0, sp));
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp + 1);
    if (s.empty()) return std::nullopt;  // trailing space
  }
  if (parts.empty() || !valid_instance_id(parts[0])) return std::nullopt;
  m.instance = std::string(parts[0]);
  switch (kind) {
    case '+':
    case '-':
      if (parts.size() != 2 || !valid_user_id(parts[1])) return std::nullopt;
      m.kind = kind == '+' ? PresenceMessage::Kind::online : PresenceMessage::Kind::offline;
      m.user = std::string(parts[1]);
      return m;
    case 'h': {
      if (parts.size() != 3) return std::nullopt;
      auto c = parse_number<std::uint64_t>(parts[1]);
      auto d = parse_number<std::uint64_t>(parts[2]);
      if (!c || !d) return std::nullopt;
      m.kind = PresenceMessage::Kind::heartbeat;
      m.count = *c;
      m.digest = *d;
      return m;
    }
    case 'x':
      if (parts.size() != 1) return std::nullopt;
      m.kind = PresenceMessage::Kind::gone;
      return m;
    default:
      return std::nullopt;
  }
}

std::uint64_t member_hash(std::string_view user_id) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : user_id) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace chat::bus::wire
