#pragma once
// JSON shapes of the old Mongoose models, as the Node server sent them.
#include <boost/json/object.hpp>

#include "chat/validation.hpp"
#include "store/store.hpp"

namespace chat::api {

/// {_id, email, full_name, profile_picture, bio, createdAt, updatedAt} — never the password.
boost::json::object user_json(const store::User& u);
/// {_id, senderId, receiverId, text, image, createdAt, updatedAt}
boost::json::object message_json(const store::Message& m);
/// {message:"Validation error", errors:{field:[…]}}
boost::json::object validation_json(const FieldErrors& errors);

}  // namespace chat::api
