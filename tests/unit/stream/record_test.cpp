#include <gtest/gtest.h>

#include <string>

#include "stream/message_log.hpp"

namespace {
using chat::errc;
using chat::store::Message;
using chat::stream::decode_record;
using chat::stream::encode_record;

Message sample() {
  Message m;
  m.id = "65a1b2c3d4e5f60718293a4b";
  m.sender_id = "65a1b2c3d4e5f60718293a01";
  m.receiver_id = "65a1b2c3d4e5f60718293a02";
  m.conversation_id = "d:65a1b2c3d4e5f60718293a01:65a1b2c3d4e5f60718293a02";
  m.text = "héllo \"quoted\" \\ \n\t\x01 end";
  m.image = "/media/abc.png";
  m.client_msg_id = "c-42";
  m.created_at = 1700000000123;
  m.updated_at = 1700000000456;
  return m;
}

// A record written with the encoder, with one field replaced by raw JSON (or removed).
std::string with_field(const std::string& name, const std::string& raw_json) {
  std::string v = R"({"v":1,"_id":"65a1b2c3d4e5f60718293a4b","conversationId":"c1",)"
                  R"("senderId":"65a1b2c3d4e5f60718293a01","receiverId":"65a1b2c3d4e5f60718293a02",)"
                  R"("text":"hi","image":"","clientMsgId":"","createdAt":1,"updatedAt":2})";
  auto key = "\"" + name + "\":";
  auto at = v.find(key);
  EXPECT_NE(at, std::string::npos) << name;
  auto end = v.find_first_of(",}", at + key.size());
  // Values in the template contain no ',' or '}'.
  if (raw_json.empty()) {
    // Remove the field and its separating comma.
    if (v[end] == ',') ++end;
    else if (v[at - 1] == ',') --at;
    v.erase(at, end - at);
  } else {
    v.replace(at + key.size(), end - at - key.size(), raw_json);
  }
  return v;
}

TEST(Record, RoundTripKeepsEveryField) {
  Message m = sample();
  auto d = decode_record(encode_record(m));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->id, m.id);
  EXPECT_EQ(d->conversation_id, m.conversation_id);
  EXPECT_EQ(d->sender_id, m.sender_id);
  EXPECT_EQ(d->receiver_id, m.receiver_id);
  EXPECT_EQ(d->text, m.text);
  EXPECT_EQ(d->image, m.image);
  EXPECT_EQ(d->client_msg_id, m.client_msg_id);
  EXPECT_EQ(d->created_at, m.created_at);
  EXPECT_EQ(d->updated_at, m.updated_at);
}

TEST(Record, EncodesMongoFieldNames) {
  std::string s = encode_record(sample());
  for (const char* k : {"\"v\":1", "\"_id\":", "\"conversationId\":", "\"senderId\":",
                        "\"receiverId\":", "\"text\":", "\"image\":", "\"clientMsgId\":",
                        "\"createdAt\":1700000000123", "\"updatedAt\":1700000000456"})
    EXPECT_NE(s.find(k), std::string::npos) << k << " in " << s;
}

TEST(Record, TemplateIsValid) {
  auto d = decode_record(with_field("text", "\"hi\""));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->conversation_id, "c1");
}

TEST(Record, ClientMsgIdIsOptional) {
  auto d = decode_record(with_field("clientMsgId", ""));
  ASSERT_TRUE(d.ok()) << d.err().message;
  EXPECT_EQ(d->client_msg_id, "");
}

void expect_poison(const std::string& value, const std::string& reason_part) {
  auto d = decode_record(value);
  ASSERT_FALSE(d.ok()) << value;
  EXPECT_EQ(d.code(), errc::invalid_argument);
  EXPECT_NE(d.err().message.find(reason_part), std::string::npos)
      << "reason '" << d.err().message << "' lacks '" << reason_part << "'";
}

TEST(Record, NotJsonOrNotObject) {
  expect_poison("", "not JSON");
  expect_poison("hello", "not JSON");
  expect_poison("{\"v\":1", "not JSON");
  expect_poison("[1,2]", "not a JSON object");
  expect_poison("\"str\"", "not a JSON object");
  expect_poison("42", "not a JSON object");
  expect_poison("null", "not a JSON object");
}

TEST(Record, VersionMustBeOne) {
  expect_poison(with_field("v", ""), "'v'");
  expect_poison(with_field("v", "2"), "version 2");
  expect_poison(with_field("v", "\"1\""), "'v'");
  expect_poison(with_field("v", "1.5"), "'v'");
}

TEST(Record, EachMissingFieldIsNamed) {
  for (const char* f : {"_id", "conversationId", "senderId", "receiverId", "text", "image",
                        "createdAt", "updatedAt"})
    expect_poison(with_field(f, ""), std::string("'") + f + "'");
}

TEST(Record, IdsMustBe24Hex) {
  for (const char* f : {"_id", "senderId", "receiverId"}) {
    expect_poison(with_field(f, "\"65a1b2c3d4e5f60718293a4\""), std::string("'") + f + "'");
    expect_poison(with_field(f, "\"65a1b2c3d4e5f60718293a4z\""), std::string("'") + f + "'");
    expect_poison(with_field(f, "12"), std::string("'") + f + "'");
    expect_poison(with_field(f, "null"), std::string("'") + f + "'");
  }
}

TEST(Record, WrongTypes) {
  expect_poison(with_field("conversationId", "7"), "'conversationId'");
  expect_poison(with_field("conversationId", "\"\""), "'conversationId'");
  expect_poison(with_field("text", "null"), "'text'");
  expect_poison(with_field("image", "[]"), "'image'");
  expect_poison(with_field("clientMsgId", "5"), "'clientMsgId'");
  expect_poison(with_field("createdAt", "\"1\""), "'createdAt'");
  expect_poison(with_field("createdAt", "1.5"), "'createdAt'");
  expect_poison(with_field("updatedAt", "18446744073709551615"), "'updatedAt'");
}

TEST(Record, GarbageBytesNeverThrow) {
  std::string s;
  unsigned x = 12345;
  for (int round = 0; round < 2000; ++round) {
    x = x * 1103515245 + 12345;
    s.assign((x >> 8) % 64, '\0');
    for (auto& c : s) {
      x = x * 1103515245 + 12345;
      c = static_cast<char>(x >> 16);
    }
    if (round % 3 == 0) s = "{\"v\":1," + s;
    EXPECT_NO_THROW({ auto d = decode_record(s); EXPECT_FALSE(d.ok()); });
  }
  // Deep nesting and invalid UTF-8 are rejected, not crashed on.
  expect_poison(std::string(10000, '[') + std::string(10000, ']'), "not JSON");
  expect_poison("{\"v\":1,\"text\":\"\xff\xfe\"}", "not JSON");
}

}  // namespace
