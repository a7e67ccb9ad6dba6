#include "api/json_views.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace chat::api {
namespace {

store::Message message(std::string text, std::string client_msg_id = "c-1") {
  store::Message m;
  m.id = "65a1b2c3d4e5f60718293a4b";
  m.conversation_id = "ignored-in-json";
  m.sender_id = "65a1b2c3d4e5f60718293a00";
  m.receiver_id = "65a1b2c3d4e5f60718293a01";
  m.text = std::move(text);
  m.image = "/api/messages/media/abc";
  m.client_msg_id = std::move(client_msg_id);
  m.created_at = 1'700'000'000'123;
  m.updated_at = 1'700'000'000'456;
  return m;
}

std::string direct(const store::Message& m) {
  std::string out;
  append_message_json(out, m);
  return out;
}

constexpr char kControls[] = "controls \x01\x02\x1f and \b\f\n\r\t";
constexpr char kNul[] = "nul \0 inside";

// The hand-written serialiser must give byte for byte what Boost.JSON gives for the object the
// REST API returns, for any text a user can send.
TEST(MessageJson, SameBytesAsBoostJson) {
  const std::string texts[] = {
      "",
      "hello",
      "quote \" backslash \\ slash / end",
      std::string(kControls, sizeof kControls - 1),
      std::string(kNul, sizeof kNul - 1),
      "unicode é 漢字 😀 stays raw",
      "\x7f del is not escaped",
      std::string(5000, 'x'),
  };
  for (const auto& t : texts) {
    auto m = message(t);
    EXPECT_EQ(direct(m), boost::json::serialize(message_json(m))) << t;
    auto parsed = boost::json::parse(direct(m));
    EXPECT_EQ(parsed.as_object().at("text").as_string(), t);
  }
}

// The escaper skips 8 bytes at a time: an escape at any position of a block must be seen.
TEST(MessageJson, EscapesAtEveryOffset) {
  for (char special : {'"', '\\', '\n', '\x01', '\x1f'}) {
    for (std::size_t at = 0; at < 24; ++at) {
      std::string t(23, 'a');
      t.insert(t.begin() + static_cast<std::ptrdiff_t>(at), special);
      t += "\xc3\xa9";  // non-ASCII bytes are no escapes
      auto m = message(t);
      ASSERT_EQ(direct(m), boost::json::serialize(message_json(m))) << at;
    }
  }
}

TEST(MessageJson, ClientMsgIdOnlyWhenSet) {
  auto m = message("hi", "");
  EXPECT_EQ(direct(m), boost::json::serialize(message_json(m)));
  EXPECT_EQ(direct(m).find("clientMsgId"), std::string::npos);
  EXPECT_NE(direct(message("hi", "abc")).find(R"("clientMsgId":"abc")"), std::string::npos);
}

TEST(MessageJson, AppendsToWhatIsThere) {
  std::string out = "[\"newMessage\",";
  append_message_json(out, message("x"));
  out += "]";
  auto v = boost::json::parse(out);
  EXPECT_EQ(v.as_array().at(0).as_string(), "newMessage");
  EXPECT_EQ(v.as_array().at(1).as_object().at("_id").as_string(), "65a1b2c3d4e5f60718293a4b");
}

}  // namespace
}  // namespace chat::api
