#include "api/json_views.hpp"

#include <boost/json/array.hpp>

#include "core/json_text.hpp"
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
