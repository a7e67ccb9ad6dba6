#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>

#include "core/object_id.hpp"
#include "stream/message_log.hpp"

namespace chat::stream {
namespace json = boost::json;

std::string encode_record(const store::Message& m) {
  json::object o;
  o["v"] = 1;
  o["_id"] = m.id;
  o["conversationId"] = m.conversation_id;
  o["senderId"] = m.sender_id;
  o["receiverId"] = m.receiver_id;
  o["text"] = m.text;
  o["image"] = m.image;
  o["clientMsgId"] = m.client_msg_id;
  o["createdAt"] = m.created_at;
  o["updatedAt"] = m.updated_at;
  return json::serialize(o);
}

namespace {

// A record comes from the network (any producer with access to the topic can write it), so every
// field is checked; a record that fails is dead-lettered by the worker, never half-stored.
error bad(std::string reason) { return error{errc::invalid_argument, std::move(reason)}; }

std::optional<std::string> get_string(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

std::optional<std::int64_t> get_int(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(v->get_uint64());
  return std::nullopt;
}

}  // namespace

result<store::Message> decode_record(std::string_view value) {
  try {
    json::error_code ec;
    json::value doc = json::parse(value, ec);
    if (ec) return bad("not JSON: " + ec.message());
    if (!doc.is_object()) return bad("not a JSON object");
    const auto& o = doc.get_object();
    auto v = get_int(o, "v");
    if (!v) return bad("missing or non-integer field 'v'");
    if (*v != 1) return bad("unsupported record version " + std::to_string(*v));

    store::Message m;
    struct IdField {
      const char* name;
      std::string store::Message::*field;
    };
    for (auto [name, field] : {IdField{"_id", &store::Message::id},
                               IdField{"senderId", &store::Message::sender_id},
                               IdField{"receiverId", &store::Message::receiver_id}}) {
      auto s = get_string(o, name);
      if (!s) return bad(std::string("missing or non-string field '") + name + "'");
      if (!is_object_id(*s)) return bad(std::string("field '") + name + "' is not a 24-hex id");
      m.*field = std::move(*s);
    }
    auto conv = get_string(o, "conversationId");
    if (!conv) return bad("missing or non-string field 'conversationId'");
    if (conv->empty()) return bad("empty field 'conversationId'");
    m.conversation_id = std::move(*conv);
    auto text = get_string(o, "text");
    if (!text) return bad("missing or non-string field 'text'");
    m.text = std::move(*text);
    auto image = get_string(o, "image");
    if (!image) return bad("missing or non-string field 'image'");
    m.image = std::move(*image);
    // clientMsgId is optional (older producers), but must be a string when present.
    if (o.contains("clientMsgId")) {
      auto c = get_string(o, "clientMsgId");
      if (!c) return bad("non-string field 'clientMsgId'");
      m.client_msg_id = std::move(*c);
    }
    auto created = get_int(o, "createdAt");
    if (!created) return bad("missing or non-integer field 'createdAt'");
    auto updated = get_int(o, "updatedAt");
    if (!updated) return bad("missing or non-integer field 'updatedAt'");
    m.created_at = *created;
    m.updated_at = *updated;
    return m;
  } catch (const std::exception& e) {  // allocation failure on a huge record
    return bad(std::string("cannot decode: ") + e.what());
  }
}

}  // namespace chat::stream
