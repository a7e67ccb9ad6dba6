#include "engineio/packet.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace chat::engineio {
namespace {

using namespace std::string_literals;

Packet text(PacketType t, std::string data = {}) { return Packet{t, std::move(data), false}; }
Packet bin(std::string data) { return Packet{PacketType::message, std::move(data), true}; }

TEST(EngineIoTextFrame, DecodesEveryType) {
  const std::vector<std::pair<std::string, Packet>> cases = {
      {"0{\"sid\":\"x\"}", text(PacketType::open, "{\"sid\":\"x\"}")},
      {"1", text(PacketType::close)},
      {"2", text(PacketType::ping)},
      {"2probe", text(PacketType::ping, "probe")},
      {"3probe", text(PacketType::pong, "probe")},
      {"4hello", text(PacketType::message, "hello")},
      {"42[\"hello\",1]", text(PacketType::message, "2[\"hello\",1]")},
      {"5", text(PacketType::upgrade)},
      {"6", text(PacketType::noop)},
  };
  for (const auto& [frame, expected] : cases) {
    auto p = decode_text_frame(frame);
    ASSERT_TRUE(p.has_value()) << frame;
    EXPECT_EQ(*p, expected) << frame;
    EXPECT_EQ(encode_text(*p), frame);
  }
}

TEST(EngineIoTextFrame, KeepsDataBytesVerbatim) {
  auto p = decode_text_frame("4\x1e\0\xff\xc3\xa9"s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->type, PacketType::message);
  EXPECT_EQ(p->data, "\x1e\0\xff\xc3\xa9"s);
}

TEST(EngineIoTextFrame, Base64PrefixIsABinaryMessage) {
  auto p = decode_text_frame("bAQID");
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, bin("\x01\x02\x03"));
}

TEST(EngineIoTextFrame, RejectsEmptyUnknownTypeAndBadBase64) {
  for (const std::string& frame : {""s, "7"s, "9hello"s, "/"s, "a"s, "x1"s, " 4"s, "bA"s, "b!!!!"s,
                                  "bAQ=D"s, "B4"s}) {
    EXPECT_FALSE(decode_text_frame(frame).has_value()) << frame;
  }
}

TEST(EngineIoBinaryFrame, IsAlwaysABinaryMessage) {
  EXPECT_EQ(decode_binary_frame("\x01\x02"), bin("\x01\x02"));
  EXPECT_EQ(decode_binary_frame("4hello"), bin("4hello"));
  EXPECT_EQ(decode_binary_frame(""), bin(""));
}

TEST(EngineIoEncode, BinaryMessageIsBase64WithPrefix) {
  EXPECT_EQ(encode_text(bin("\x01\x02\x03\x04")), "bAQIDBA==");
  EXPECT_EQ(encode_text(bin("")), "b");
  EXPECT_EQ(encode_text(text(PacketType::noop)), "6");
  EXPECT_EQ(encode_text(text(PacketType::close)), "1");
}

TEST(EngineIoPayload, DecodesTheDigestExample) {
  auto r = decode_payload("4hello\x1e" "2\x1e" "bAQIDBA==", 16);
  ASSERT_TRUE(r) << r.err().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], text(PacketType::message, "hello"));
  EXPECT_EQ((*r)[1], text(PacketType::ping));
  EXPECT_EQ((*r)[2], bin("\x01\x02\x03\x04"));
}

TEST(EngineIoPayload, SinglePacketAndSocketIoMessages) {
  auto r = decode_payload("40", 16);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0], text(PacketType::message, "0"));

  r = decode_payload("451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1e" "bAQID", 16);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].data, "51-[\"x\",{\"_placeholder\":true,\"num\":0}]");
  EXPECT_EQ((*r)[1], bin("\x01\x02\x03"));
}

TEST(EngineIoPayload, EncodesJoinedWithRecordSeparator) {
  EXPECT_EQ(encode_payload({text(PacketType::message, "hello"), text(PacketType::ping),
                            bin("\x01\x02\x03\x04")}),
            "4hello\x1e" "2\x1e" "bAQIDBA==");
  EXPECT_EQ(encode_payload({text(PacketType::noop)}), "6");
  EXPECT_EQ(encode_payload({}), "");
}

TEST(EngineIoPayload, RoundTrips) {
  const std::vector<Packet> packets = {
      text(PacketType::open, "{\"sid\":\"abc\"}"), text(PacketType::message, "2[\"a\"]"),
      bin(std::string("\0\xff\x1e", 3)), text(PacketType::message, ""), text(PacketType::close),
      bin("x")};
  auto r = decode_payload(encode_payload(packets), packets.size());
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(*r, packets);
}

TEST(EngineIoPayload, RejectsMalformedSegments) {
  for (const std::string& body :
       {""s, "\x1e"s, "4a\x1e"s, "\x1e" "4a"s, "4a\x1e\x1e" "4b"s, "4a\x1e" "7"s, "x"s,
        "4a\x1e" "b!!"s, "bA"s, "4a\x1e" "bAQ=D"s}) {
    auto r = decode_payload(body, 16);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.code(), errc::invalid_argument) << body;
  }
}

TEST(EngineIoPayload, EnforcesPacketLimit) {
  std::string body = "4a\x1e" "4b\x1e" "4c";
  EXPECT_TRUE(decode_payload(body, 3));
  auto r = decode_payload(body, 2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::too_large);
  r = decode_payload(std::string(100000, '\x1e'), 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::too_large);
}

TEST(EngineIoOpen, MatchesTheReferenceJson) {
  EXPECT_EQ(open_packet_json("abc", true, 25000, 20000, 1000000),
            R"({"sid":"abc","upgrades":["websocket"],"pingInterval":25000,)"
            R"("pingTimeout":20000,"maxPayload":1000000})");
  EXPECT_EQ(open_packet_json("s-_1", false, 300, 200, 42),
            R"({"sid":"s-_1","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":42})");
  // A sid is never attacker-controlled, but the JSON must stay valid whatever it holds.
  EXPECT_EQ(open_packet_json("a\"\\\n", false, 1, 2, 3),
            R"({"sid":"a\"\\\u000a","upgrades":[],"pingInterval":1,"pingTimeout":2,)"
            R"("maxPayload":3})");
}

TEST(EngineIoErrors, BodiesAndStatuses) {
  EXPECT_EQ(error_json(ErrorCode::unknown_transport),
            R"({"code":0,"message":"Transport unknown"})");
  EXPECT_EQ(error_json(ErrorCode::unknown_sid), R"({"code":1,"message":"Session ID unknown"})");
  EXPECT_EQ(error_json(ErrorCode::bad_handshake_method),
            R"({"code":2,"message":"Bad handshake method"})");
  EXPECT_EQ(error_json(ErrorCode::bad_request), R"({"code":3,"message":"Bad request"})");
  EXPECT_EQ(error_json(ErrorCode::forbidden), R"({"code":4,"message":"Forbidden"})");
  EXPECT_EQ(error_json(ErrorCode::unsupported_protocol_version),
            R"({"code":5,"message":"Unsupported protocol version"})");
  EXPECT_EQ(error_http_status(ErrorCode::forbidden), 403);
  EXPECT_EQ(error_http_status(ErrorCode::unknown_sid), 400);
  EXPECT_EQ(error_http_status(ErrorCode::unsupported_protocol_version), 400);
}

TEST(EngineIoSid, TwentyUrlSafeCharactersAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string sid = new_sid();
    ASSERT_EQ(sid.size(), 20u);
    for (char c : sid) {
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
      ASSERT_TRUE(ok) << sid;
    }
    seen.insert(sid);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace chat::engineio
