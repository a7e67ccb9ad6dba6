#include "socketio/packet.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chat::socketio {
namespace {

using namespace std::string_literals;

Packet make(PacketType type, std::string nsp, std::optional<std::uint64_t> id, std::string data,
            std::size_t attachments = 0) {
  Packet p;
  p.type = type;
  p.nsp = std::move(nsp);
  p.id = id;
  p.data = std::move(data);
  p.attachments = attachments;
  return p;
}

// Every well-formed packet: decoded fields, and encode() gives the same bytes back.
struct Valid {
  std::string wire;
  Packet packet;
};

const std::string kNested =
    "[\"x\",{\"a\":{\"_placeholder\":true,\"num\":1}},[{\"_placeholder\":true,\"num\":0}]]";

const std::vector<Valid>& valid_cases() {
  static const std::vector<Valid> cases = {
      {"0", make(PacketType::connect, "/", {}, "")},
      {"0{\"token\":\"abc\"}", make(PacketType::connect, "/", {}, "{\"token\":\"abc\"}")},
      {"0/admin,", make(PacketType::connect, "/admin", {}, "")},
      {"0/admin,{\"token\":\"abc\"}",
       make(PacketType::connect, "/admin", {}, "{\"token\":\"abc\"}")},
      {"1", make(PacketType::disconnect, "/", {}, "")},
      {"1/admin,", make(PacketType::disconnect, "/admin", {}, "")},
      {"2[\"hello\",1]", make(PacketType::event, "/", {}, "[\"hello\",1]")},
      {"21[\"ev\"]", make(PacketType::event, "/", 1, "[\"ev\"]")},
      {"2/admin,13[\"x\"]", make(PacketType::event, "/admin", 13, "[\"x\"]")},
      {"2/custom,2[\"a\",{\"b\":[1,2.5,null,true]}]",
       make(PacketType::event, "/custom", 2, "[\"a\",{\"b\":[1,2.5,null,true]}]")},
      {"2[42,\"numeric event name\"]",
       make(PacketType::event, "/", {}, "[42,\"numeric event name\"]")},
      {"2[\"connected\"]", make(PacketType::event, "/", {}, "[\"connected\"]")},
      {"2[\"h\\u00e9\",\"\xc3\xa9\"]",
       make(PacketType::event, "/", {}, "[\"h\\u00e9\",\"\xc3\xa9\"]")},
      {"31[]", make(PacketType::ack, "/", 1, "[]")},
      {"313[\"ok\",{\"n\":1}]", make(PacketType::ack, "/", 13, "[\"ok\",{\"n\":1}]")},
      {"3/admin,9007199254740991[null]",
       make(PacketType::ack, "/admin", 9007199254740991ull, "[null]")},
      {"4{\"message\":\"Invalid namespace\"}",
       make(PacketType::connect_error, "/", {}, "{\"message\":\"Invalid namespace\"}")},
      {"4/x,{\"message\":\"Invalid namespace\"}",
       make(PacketType::connect_error, "/x", {}, "{\"message\":\"Invalid namespace\"}")},
      {"4\"Not authorized\"", make(PacketType::connect_error, "/", {}, "\"Not authorized\"")},
      {"51-[\"x\",{\"_placeholder\":true,\"num\":0}]",
       make(PacketType::binary_event, "/", {}, "[\"x\",{\"_placeholder\":true,\"num\":0}]", 1)},
      {"52-/admin,7" + kNested, make(PacketType::binary_event, "/admin", 7, kNested, 2)},
      {"61-3[{\"_placeholder\":true,\"num\":0}]",
       make(PacketType::binary_ack, "/", 3, "[{\"_placeholder\":true,\"num\":0}]", 1)},
      {"61-/custom,3[{\"_placeholder\":true,\"num\":0}]",
       make(PacketType::binary_ack, "/custom", 3, "[{\"_placeholder\":true,\"num\":0}]", 1)},
  };
  return cases;
}

TEST(SocketIoDecode, ValidPacketsDecodeAndRoundTrip) {
  for (const auto& c : valid_cases()) {
    auto r = decode(c.wire);
    ASSERT_TRUE(r) << c.wire << ": " << r.err().message;
    EXPECT_EQ(*r, c.packet) << c.wire;
    EXPECT_EQ(encode(*r), c.wire);
  }
}

TEST(SocketIoDecode, NamespaceRunsToTheEndWithoutComma) {
  auto r = decode("0/admin");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->nsp, "/admin");
  EXPECT_EQ(r->data, "");
  EXPECT_EQ(encode(*r), "0/admin,");
}

TEST(SocketIoDecode, TrimsWhitespaceAroundJson) {
  auto r = decode("2 [\"a\", 1] \n");
  ASSERT_TRUE(r) << r.err().message;
  EXPECT_EQ(r->data, "[\"a\", 1]");
}

TEST(SocketIoDecode, LeadingZerosInAckIdAreAccepted) {
  auto r = decode("2007[\"a\"]");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 7u);
}

TEST(SocketIoEncode, ExactBytes) {
  EXPECT_EQ(encode(make(PacketType::connect, "/", {}, "{\"sid\":\"abc\"}")), "0{\"sid\":\"abc\"}");
  EXPECT_EQ(encode(make(PacketType::connect, "", {}, "")), "0");
  EXPECT_EQ(encode(make(PacketType::connect_error, "/x", {},
                        "{\"message\":\"Invalid namespace\"}")),
            "4/x,{\"message\":\"Invalid namespace\"}");
  EXPECT_EQ(encode(make(PacketType::ack, "/", 0, "[]")), "30[]");
  EXPECT_EQ(encode(make(PacketType::binary_event, "/", {},
                        "[\"x\",{\"_placeholder\":true,\"num\":0}]", 1)),
            "51-[\"x\",{\"_placeholder\":true,\"num\":0}]");
  EXPECT_EQ(encode_event("/", "[\"hello\",1]"), "2[\"hello\",1]");
  EXPECT_EQ(encode_event("/admin", "[\"x\",1]", 13), "2/admin,13[\"x\",1]");
  EXPECT_EQ(encode_event("/", "[\"ev\"]", 1), "21[\"ev\"]");
}

struct Invalid {
  std::string wire;
  errc code;
};

TEST(SocketIoDecode, RejectsMalformedPackets) {
  const std::vector<Invalid> cases = {
      {"", errc::invalid_argument},
      {"7", errc::invalid_argument},
      {"9[\"a\"]", errc::invalid_argument},
      {"a", errc::invalid_argument},
      {"-1", errc::invalid_argument},
      {"/admin,2[\"a\"]", errc::invalid_argument},
      // attachments
      {"5[\"x\",{\"_placeholder\":true,\"num\":0}]", errc::invalid_argument},  // no '-'
      {"5", errc::invalid_argument},
      {"5-[\"x\"]", errc::invalid_argument},                                     // empty count
      {"50-[\"x\"]", errc::invalid_argument},                                    // zero
      {"5a-[\"x\"]", errc::invalid_argument},
      {"5+1-[\"x\",{\"_placeholder\":true,\"num\":0}]", errc::invalid_argument},
      {"511-[\"x\"]", errc::too_large},                                          // over 10
      {"599999999999999999999999999999-[\"x\"]", errc::too_large},
      // JSON
      {"2[\"a\"", errc::invalid_argument},
      {"2{", errc::invalid_argument},
      {"2garbage", errc::invalid_argument},
      {"2[\"a\"]x", errc::invalid_argument},     // trailing garbage
      {"2[\"a\"][\"b\"]", errc::invalid_argument},
      {"2[\"a\",]", errc::invalid_argument},     // trailing comma
      {"2[\"a\"/*c*/]", errc::invalid_argument}, // comment
      {"2[\"\xff\"]", errc::invalid_argument},   // invalid UTF-8
      {"0 ", errc::invalid_argument},            // whitespace is not a payload
      // payload shape
      {"0[]", errc::invalid_argument},
      {"0\"x\"", errc::invalid_argument},
      {"0null", errc::invalid_argument},
      {"1{}", errc::invalid_argument},
      {"1[]", errc::invalid_argument},
      {"2", errc::invalid_argument},
      {"2[]", errc::invalid_argument},
      {"2{\"a\":1}", errc::invalid_argument},
      {"2\"hello\"", errc::invalid_argument},
      {"2[null]", errc::invalid_argument},
      {"2[[\"a\"]]", errc::invalid_argument},
      {"2[true]", errc::invalid_argument},
      {"2/admin,", errc::invalid_argument},
      {"3", errc::invalid_argument},
      {"31", errc::invalid_argument},
      {"31{}", errc::invalid_argument},
      {"31\"x\"", errc::invalid_argument},
      {"4", errc::invalid_argument},
      {"4[]", errc::invalid_argument},
      {"41", errc::invalid_argument},
      // ack ids
      {"01{}", errc::invalid_argument},
      {"011", errc::invalid_argument},
      {"11", errc::invalid_argument},
      {"1/admin,5", errc::invalid_argument},
      {"41{\"message\":\"x\"}", errc::invalid_argument},
      {"29007199254740992[\"a\"]", errc::invalid_argument},     // 2^53
      {"299999999999999999999[\"a\"]", errc::invalid_argument},
      {"2" + std::string(100000, '1') + "[\"a\"]", errc::invalid_argument},
      // placeholders
      {"51-[\"x\"]", errc::invalid_argument},                                         // none
      {"51-[\"x\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]",
       errc::invalid_argument},                                                        // too many
      {"52-[\"x\",{\"_placeholder\":true,\"num\":0}]", errc::invalid_argument},        // too few
      {"52-[\"x\",{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":1}]",
       errc::invalid_argument},                                                        // dup
      {"51-[\"x\",{\"_placeholder\":true,\"num\":1}]", errc::invalid_argument},        // range
      {"51-[\"x\",{\"_placeholder\":true,\"num\":-1}]", errc::invalid_argument},
      {"51-[\"x\",{\"_placeholder\":true,\"num\":0.5}]", errc::invalid_argument},
      {"51-[\"x\",{\"_placeholder\":true,\"num\":\"0\"}]", errc::invalid_argument},
      {"51-[\"x\",{\"_placeholder\":true}]", errc::invalid_argument},
      {"51-[\"x\",{\"_placeholder\":\"true\",\"num\":0}]", errc::invalid_argument},
      {"51-[\"connect\",{\"_placeholder\":true,\"num\":0}]", errc::invalid_argument},
      {"61-{\"_placeholder\":true,\"num\":0}", errc::invalid_argument},                // not array
  };
  for (const auto& c : cases) {
    auto r = decode(c.wire);
    ASSERT_FALSE(r) << c.wire;
    EXPECT_EQ(r.code(), c.code) << c.wire << ": " << r.err().message;
  }
}

// The inputs of the public socket.io-protocol test suite (after the Engine.IO '4').
TEST(SocketIoDecode, ConformanceSuiteInputs) {
  auto r = decode("2456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 456u);
  EXPECT_EQ(r->data, "[\"message-with-ack\",1,\"2\",{\"3\":[false]}]");

  r = decode("52-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},"
             "{\"_placeholder\":true,\"num\":1}]");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, PacketType::binary_event);
  EXPECT_EQ(r->attachments, 2u);
  EXPECT_EQ(r->id, 789u);

  r = decode("0/random");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->nsp, "/random");
  EXPECT_EQ(encode(make(PacketType::connect_error, r->nsp, {},
                        "{\"message\":\"Invalid namespace\"}")),
            "4/random,{\"message\":\"Invalid namespace\"}");

  EXPECT_FALSE(decode("abc"));
  EXPECT_FALSE(decode("2{}"));
  EXPECT_FALSE(decode("2abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]"));
}

TEST(SocketIoDecode, RejectsEveryReservedEventName) {
  for (const char* name : {"connect", "connect_error", "disconnect", "disconnecting",
                           "newListener", "removeListener"}) {
    EXPECT_TRUE(is_reserved_event(name));
    EXPECT_FALSE(decode("2[\""s + name + "\"]")) << name;
    EXPECT_FALSE(decode("2/admin,1[\""s + name + "\",1]")) << name;
  }
  EXPECT_FALSE(is_reserved_event("Connect"));
  EXPECT_TRUE(decode("2[\"Connect\"]"));
  EXPECT_TRUE(decode("2[\"message\"]"));
}

TEST(SocketIoDecode, AttachmentLimitIsConfigurable) {
  const std::string three =
      "53-[\"x\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1},"
      "{\"_placeholder\":true,\"num\":2}]";
  EXPECT_TRUE(decode(three, 3));
  auto r = decode(three, 2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::too_large);
  EXPECT_TRUE(decode("510-[\"x\"" + [] {
    std::string s;
    for (int i = 0; i < 10; ++i) s += ",{\"_placeholder\":true,\"num\":" + std::to_string(i) + "}";
    return s;
  }() + "]"));
}

TEST(SocketIoDecode, PlaceholdersInPlainEventsAreData) {
  auto r = decode("2[\"x\",{\"_placeholder\":true,\"num\":5}]");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->attachments, 0u);
}

TEST(SocketIoDecode, NestingIsBounded) {
  auto nested = [](std::size_t depth) {
    return "2[\"x\"," + std::string(depth, '[') + std::string(depth, ']') + "]";
  };
  EXPECT_TRUE(decode(nested(kMaxJsonDepth - 1)));
  EXPECT_FALSE(decode(nested(kMaxJsonDepth + 1)));
  EXPECT_FALSE(decode(nested(100000)));
}

TEST(SocketIoJson, CountPlaceholders) {
  auto v = parse_json(
      R"([{"_placeholder":true,"num":0},{"a":[{"_placeholder":true,"num":1}]},)"
      R"({"_placeholder":false,"num":2},{"_placeholder":true,"num":9,"x":{"_placeholder":true}}])");
  ASSERT_TRUE(v);
  EXPECT_EQ(count_placeholders(*v), 3u);
  EXPECT_FALSE(parse_json("[1,"));
  EXPECT_FALSE(parse_json(""));
}

// --- Decoder: the stream of Engine.IO messages of one connection ---

TEST(SocketIoDecoder, PlainPacketsCompleteImmediately) {
  Decoder d;
  auto r = d.add_text("0{\"token\":\"abc\"}");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(**r, make(PacketType::connect, "/", {}, "{\"token\":\"abc\"}"));
  r = d.add_text("2[\"hello\",1]");
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->data, "[\"hello\",1]");
  EXPECT_FALSE(d.awaiting_attachments());
}

TEST(SocketIoDecoder, BinaryEventWaitsForItsAttachment) {
  Decoder d;
  auto r = d.add_text("51-[\"x\",{\"_placeholder\":true,\"num\":0}]");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(d.awaiting_attachments());
  r = d.add_binary("\x01\x02\x03");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_value());
  Packet expected =
      make(PacketType::binary_event, "/", {}, "[\"x\",{\"_placeholder\":true,\"num\":0}]", 1);
  expected.buffers = {"\x01\x02\x03"};
  EXPECT_EQ(**r, expected);
  EXPECT_FALSE(d.awaiting_attachments());
  // The decoder is ready for the next packet.
  r = d.add_text("21[\"ev\"]");
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->id, 1u);
}

TEST(SocketIoDecoder, BinaryAckWithSeveralAttachmentsKeepsOrder) {
  Decoder d;
  ASSERT_TRUE(d.add_text("62-/custom,4[{\"_placeholder\":true,\"num\":1},"
                         "{\"_placeholder\":true,\"num\":0}]"));
  auto r = d.add_binary("first");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  r = d.add_binary(""s);
  ASSERT_TRUE(r && r->has_value());
  EXPECT_EQ((*r)->type, PacketType::binary_ack);
  EXPECT_EQ((*r)->nsp, "/custom");
  EXPECT_EQ((*r)->id, 4u);
  EXPECT_EQ((*r)->buffers, (std::vector<std::string>{"first", ""}));
}

TEST(SocketIoDecoder, BinaryWithoutPendingPacketIsAnError) {
  Decoder d;
  auto r = d.add_binary("\x01");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::invalid_argument);
  ASSERT_TRUE(d.add_text("2[\"a\"]"));
  EXPECT_FALSE(d.add_binary("\x01"));
}

TEST(SocketIoDecoder, TextWhileAttachmentsPendingIsAnError) {
  Decoder d;
  ASSERT_TRUE(d.add_text("51-[\"x\",{\"_placeholder\":true,\"num\":0}]"));
  auto r = d.add_text("2[\"a\"]");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::invalid_argument);
  EXPECT_FALSE(d.awaiting_attachments());  // state discarded
}

TEST(SocketIoDecoder, AttachmentBytesAreBounded) {
  Decoder d(kDefaultMaxAttachments, 10);
  ASSERT_TRUE(d.add_text("52-[\"x\",{\"_placeholder\":true,\"num\":0},"
                         "{\"_placeholder\":true,\"num\":1}]"));
  ASSERT_TRUE(d.add_binary("123456"));
  auto r = d.add_binary("12345");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::too_large);
  EXPECT_FALSE(d.awaiting_attachments());

  Decoder exact(kDefaultMaxAttachments, 10);
  ASSERT_TRUE(exact.add_text("51-[\"x\",{\"_placeholder\":true,\"num\":0}]"));
  auto ok = exact.add_binary("1234567890");
  ASSERT_TRUE(ok && ok->has_value());
}

TEST(SocketIoDecoder, AttachmentCountLimitComesFromConstructor) {
  Decoder d(1);
  auto r = d.add_text(
      "52-[\"x\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.code(), errc::too_large);
}

TEST(SocketIoDecoder, DecodeErrorsPassThrough) {
  Decoder d;
  EXPECT_FALSE(d.add_text("2[\"disconnect\"]"));
  EXPECT_FALSE(d.add_text("51-[\"x\"]"));  // placeholder count mismatch
  EXPECT_FALSE(d.awaiting_attachments());
  EXPECT_TRUE(d.add_text("0"));  // still usable
}

TEST(SocketIoDecoder, ResetDropsPendingPacket) {
  Decoder d;
  ASSERT_TRUE(d.add_text("51-[\"x\",{\"_placeholder\":true,\"num\":0}]"));
  d.reset();
  EXPECT_FALSE(d.awaiting_attachments());
  EXPECT_FALSE(d.add_binary("x"));
}

}  // namespace
}  // namespace chat::socketio
