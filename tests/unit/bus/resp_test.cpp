#include "bus/resp.hpp"

#include <gtest/gtest.h>

namespace chat::bus::resp {
namespace {

TEST(Resp, EncodesBulkArrays) {
  std::string out;
  encode(out, {"SET", "k", std::string_view("a\0b", 3)});
  constexpr char kWant[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n";
  EXPECT_EQ(out, std::string(kWant, sizeof kWant - 1));
}

TEST(Resp, ParsesRepliesSplitAcrossReads) {
  std::string raw = "+OK\r\n:42\r\n$-1\r\n-MOVED 1 h:1\r\n*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n";
  Parser p;
  std::vector<Reply> got;
  for (char c : raw) {  // one byte at a time
    ASSERT_TRUE(p.feed(&c, 1));
    Reply r;
    while (p.next(r) == Parser::Status::reply) got.push_back(std::move(r));
  }
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].type, Reply::Type::status);
  EXPECT_EQ(got[0].str, "OK");
  EXPECT_EQ(got[1].integer, 42);
  EXPECT_TRUE(got[2].is_nil());
  EXPECT_TRUE(got[3].is_error());
  EXPECT_EQ(got[3].str, "MOVED 1 h:1");
  ASSERT_TRUE(got[4].is_array());
  ASSERT_EQ(got[4].elements.size(), 3u);
  EXPECT_EQ(got[4].elements[2].str, "hello");
}

TEST(Resp, GarbageIsAnErrorNotACrash) {
  Parser p;
  std::string raw = "?what\r\n";
  p.feed(raw.data(), raw.size());
  Reply r;
  EXPECT_EQ(p.next(r), Parser::Status::error);
  EXPECT_FALSE(p.error().empty());
  EXPECT_FALSE(p.feed("+OK\r\n", 5));  // stays failed
}

TEST(Resp, BoundsBufferedBytes) {
  Parser p(64);
  std::string big = "$1000000\r\n" + std::string(60, 'x');
  EXPECT_FALSE(p.feed(big.data(), big.size()));
  Reply r;
  EXPECT_EQ(p.next(r), Parser::Status::error);
}

}  // namespace
}  // namespace chat::bus::resp
