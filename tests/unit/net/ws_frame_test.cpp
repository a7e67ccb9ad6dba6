#include "net/ws_frame.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace chat::net::ws {
namespace {

// A client frame: masked with a fixed key, FIN and RSV bits as given.
std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         std::uint8_t rsv = 0, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  const std::size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xFF));
  }
  const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < n; ++i)
    f.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  return f;
}

struct Parsed {
  ParseResult result;
  std::vector<Event> events;
};

Parsed parse(FrameReader& r, std::string bytes) {
  Parsed p;
  p.result = r.parse(bytes.data(), bytes.size(), [&](Event&& e) { p.events.push_back(std::move(e)); });
  return p;
}

TEST(WsFrameReader, OneTextFrame) {
  FrameReader r(1000);
  auto bytes = client_frame(0x1, "42[\"hi\"]");
  auto p = parse(r, bytes);
  EXPECT_EQ(p.result.error, 0);
  EXPECT_EQ(p.result.consumed, bytes.size());
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].kind, Event::Kind::message);
  EXPECT_FALSE(p.events[0].binary);
  EXPECT_EQ(p.events[0].data, "42[\"hi\"]");
}

TEST(WsFrameReader, ManyFramesFromOneRead) {
  FrameReader r(1000);
  auto p = parse(r, client_frame(0x1, "a") + client_frame(0x2, std::string("\x00\xff", 2)) + client_frame(0x9, "p"));
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events[0].data, "a");
  EXPECT_TRUE(p.events[1].binary);
  EXPECT_EQ(p.events[1].data, std::string("\x00\xff", 2));
  EXPECT_EQ(p.events[2].kind, Event::Kind::ping);
  EXPECT_EQ(p.events[2].data, "p");
}

// Every split point of a frame: nothing is consumed until the frame is whole.
TEST(WsFrameReader, IncompleteFramesWaitForTheRest) {
  const std::string payload(300, 'x');  // a 16-bit length
  const auto bytes = client_frame(0x1, payload);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    FrameReader r(1000);
    auto head = parse(r, bytes.substr(0, cut));
    EXPECT_EQ(head.result.error, 0) << cut;
    EXPECT_EQ(head.result.consumed, 0u) << cut;
    EXPECT_TRUE(head.events.empty()) << cut;
  }
  FrameReader r(1000);
  auto whole = parse(r, bytes + client_frame(0x1, "next").substr(0, 3));
  EXPECT_EQ(whole.result.consumed, bytes.size());
  ASSERT_EQ(whole.events.size(), 1u);
  EXPECT_EQ(whole.events[0].data, payload);
}

TEST(WsFrameReader, SixtyFourBitLength) {
  FrameReader r(100'000);
  const std::string payload(70'000, 'y');
  auto p = parse(r, client_frame(0x2, payload));
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, payload);
}

TEST(WsFrameReader, FragmentsAreReassembledAroundControlFrames) {
  FrameReader r(1000);
  auto p = parse(r, client_frame(0x1, "hel", false) + client_frame(0x9, "ping") +
                        client_frame(0x0, "lo ", false) + client_frame(0x0, "world"));
  EXPECT_EQ(p.result.error, 0);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].kind, Event::Kind::ping);
  EXPECT_EQ(p.events[1].data, "hello world");
  EXPECT_EQ(r.partial_bytes(), 0u);
}

TEST(WsFrameReader, ProtocolViolationsNameTheirCloseCode) {
  struct Case {
    std::string bytes;
    std::uint16_t code;
  };
  std::string non_minimal = client_frame(0x1, std::string(200, 'x'));
  non_minimal[1] = static_cast<char>(0x80 | 126);
  non_minimal.replace(2, 2, std::string("\x00\x05", 2));  // 5 bytes said in the 16-bit form
  const Case cases[] = {
      {client_frame(0x1, "x", true, 0, /*masked=*/false), kCloseProtocolError},
      {client_frame(0x1, "x", true, /*rsv=*/0x40), kCloseProtocolError},
      {client_frame(0x3, "x"), kCloseProtocolError},                  // reserved opcode
      {client_frame(0x0, "x"), kCloseProtocolError},                  // continuation, no message
      {client_frame(0x1, "a", false) + client_frame(0x1, "b"), kCloseProtocolError},
      {client_frame(0x9, "p", /*fin=*/false), kCloseProtocolError},   // fragmented control
      {client_frame(0x9, std::string(126, 'p')), kCloseProtocolError},  // control too long
      {client_frame(0x1, "\xc0\xaf"), kCloseInvalidPayload},          // overlong UTF-8
      {client_frame(0x1, "a\xed\xa0\x80", false) + client_frame(0x0, "b"), kCloseInvalidPayload},
      {client_frame(0x8, "\x03"), kCloseProtocolError},               // one-byte close
      {client_frame(0x8, std::string("\x03\xed", 2)), kCloseProtocolError},  // code 1005
      {client_frame(0x8, std::string("\x03\xe8\xff", 3)), kCloseInvalidPayload},
      {non_minimal, kCloseProtocolError},
  };
  for (const auto& c : cases) {
    FrameReader r(1000);
    auto p = parse(r, c.bytes);
    EXPECT_EQ(p.result.error, c.code) << p.result.reason;
  }
}

TEST(WsFrameReader, OversizeIsRefusedFromTheHeader) {
  FrameReader r(100);
  // Only the header of a 1000-byte frame: refused before its payload arrives.
  auto p = parse(r, client_frame(0x1, std::string(1000, 'x')).substr(0, 8));
  EXPECT_EQ(p.result.error, kCloseTooBig);
  FrameReader fragmented(100);
  auto q = parse(fragmented, client_frame(0x1, std::string(60, 'x'), false) +
                                 client_frame(0x0, std::string(60, 'x')));
  EXPECT_EQ(q.result.error, kCloseTooBig);
  FrameReader exact(100);
  EXPECT_EQ(parse(exact, client_frame(0x2, std::string(100, 'x'))).events.size(), 1u);
}

TEST(WsFrameReader, CloseEndsParsing) {
  FrameReader r(1000);
  auto p = parse(r, client_frame(0x8, std::string("\x03\xe8", 2) + "bye") + client_frame(0x1, "after"));
  EXPECT_TRUE(p.result.closed);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].kind, Event::Kind::close);
  EXPECT_EQ(p.events[0].close_code, 1000);
  EXPECT_EQ(p.events[0].data, "bye");
  FrameReader empty(1000);
  auto q = parse(empty, client_frame(0x8, ""));
  ASSERT_EQ(q.events.size(), 1u);
  EXPECT_EQ(q.events[0].close_code, kCloseNoStatus);
}

TEST(WsFrameWriter, HeaderSizes) {
  for (auto [n, header] : std::vector<std::pair<std::size_t, std::size_t>>{
           {0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}}) {
    std::string out;
    EXPECT_EQ(append_frame_header(out, Opcode::text, n), header);
    EXPECT_EQ(out.size(), header);
    EXPECT_EQ(static_cast<unsigned char>(out[0]), 0x81);
    EXPECT_EQ(static_cast<unsigned char>(out[1]) & 0x80, 0) << "server frames are not masked";
  }
  std::string out;
  append_frame(out, Opcode::close, close_payload(1002, "bad"));
  EXPECT_EQ(out, std::string("\x88\x05\x03\xea" "bad", 7));
}

TEST(WsHandshake, AcceptKeyAndClientKey) {
  // The example of RFC 6455 §1.3.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZQ=="));      // 10 bytes
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ!"));
  EXPECT_FALSE(valid_client_key(""));
}

TEST(WsUtf8, Validation) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(valid_utf8("é 漢 😀"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));           // overlong
  EXPECT_FALSE(valid_utf8("\xe0\x80\xaf"));       // overlong, 3 bytes
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));       // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));   // above U+10FFFF
  EXPECT_FALSE(valid_utf8("abcdefgh\xe6\xbc"));   // truncated after an ASCII run
  EXPECT_FALSE(valid_utf8("\x80"));
}

}  // namespace
}  // namespace chat::net::ws
