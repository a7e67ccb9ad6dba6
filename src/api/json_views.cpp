#include "api/json_views.hpp"

#include <boost/json/array.hpp>

#include <cstdint>
#include <cstring>

#include "core/time.hpp"

namespace chat::api {

boost::json::object user_json(const store::User& u) {
  boost::json::object o;
  o["_id"] = u.id;
  o["email"] = u.email;
  o["full_name"] = u.full_name;
  o["profile_picture"] = u.profile_picture;
  o["bio"] = u.bio;
  o["createdAt"] = to_iso8601(u.created_at);
  o["updatedAt"] = to_iso8601(u.updated_at);
  return o;
}

boost::json::object message_json(const store::Message& m) {
  boost::json::object o;
  o["_id"] = m.id;
  o["senderId"] = m.sender_id;
  o["receiverId"] = m.receiver_id;
  o["text"] = m.text;
  o["image"] = m.image;
  o["createdAt"] = to_iso8601(m.created_at);
  o["updatedAt"] = to_iso8601(m.updated_at);
  if (!m.client_msg_id.empty()) o["clientMsgId"] = m.client_msg_id;
  return o;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the current run of characters that need no escape
  for (std::size_t i = 0; i < s.size(); ++i) {
    // Eight bytes at a time while none of them is a control character, '"' or '\\' (exact
    // SWAR tests; bytes >= 0x80 never match).
    while (i + 8 <= s.size()) {
      std::uint64_t x;
      std::memcpy(&x, s.data() + i, 8);
      constexpr std::uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
      const std::uint64_t q = x ^ (kOnes * '"'), b = x ^ (kOnes * '\\');
      if (((x - kOnes * 0x20) & ~x & kHigh) | ((q - kOnes) & ~q & kHigh) | ((b - kOnes) & ~b & kHigh)) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    out.push_back('\\');
    switch (c) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '\b': out.push_back('b'); break;
      case '\f': out.push_back('f'); break;
      case '\n': out.push_back('n'); break;
      case '\r': out.push_back('r'); break;
      case '\t': out.push_back('t'); break;
      default:
        out.append("u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void append_message_json(std::string& out, const store::Message& m) {
  out.reserve(out.size() + 160 + m.text.size() + m.image.size());
  out.append("{\"_id\":");
  append_json_string(out, m.id);
  out.append(",\"senderId\":");
  append_json_string(out, m.sender_id);
  out.append(",\"receiverId\":");
  append_json_string(out, m.receiver_id);
  out.append(",\"text\":");
  append_json_string(out, m.text);
  out.append(",\"image\":");
  append_json_string(out, m.image);
  out.append(",\"createdAt\":");
  append_json_string(out, to_iso8601(m.created_at));
  out.append(",\"updatedAt\":");
  append_json_string(out, to_iso8601(m.updated_at));
  if (!m.client_msg_id.empty()) {
    out.append(",\"clientMsgId\":");
    append_json_string(out, m.client_msg_id);
  }
  out.push_back('}');
}

boost::json::object validation_json(const FieldErrors& errors) {
  boost::json::object fields;
  for (const auto& [field, msgs] : errors.fields()) {
    boost::json::array a;
    for (const auto& m : msgs) a.emplace_back(m);
    fields[field] = std::move(a);
  }
  boost::json::object o;
  o["message"] = "Validation error";
  o["errors"] = std::move(fields);
  return o;
}

}  // namespace chat::api
