#pragma once
// JSON shapes of the old Mongoose models, as the Node server sent them.
#include <boost/json/object.hpp>

#include <string>
#include <string_view>

#include "chat/validation.hpp"
#include "store/store.hpp"

namespace chat::api {

/// {_id, email, full_name, profile_picture, bio, createdAt, updatedAt} — never the password.
boost::json::object user_json(const store::User& u);
/// {_id, senderId, receiverId, text, image, createdAt, updatedAt}
boost::json::object message_json(const store::Message& m);
/// Appends message_json(m) serialised (the same text as boost::json::serialize gives), written
/// directly: the send path serialises every message twice (ack and newMessage) and a
/// json::object per message was a measurable part of it.
void append_message_json(std::string& out, const store::Message& m);
/// {message:"Validation error", errors:{field:[…]}}
boost::json::object validation_json(const FieldErrors& errors);

}  // namespace chat::api
