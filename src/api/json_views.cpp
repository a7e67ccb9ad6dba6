#include "api/json_views.hpp"

#include <boost/json/array.hpp>

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
