#include "core/base64.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace chat {
namespace {

// RFC 4648 section 10.
const std::vector<std::pair<std::string, std::string>> kVectors = {
    {"", ""},         {"f", "Zg=="},        {"fo", "Zm8="},        {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

TEST(Base64, Rfc4648Vectors) {
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain) << encoded;
  }
}

TEST(Base64Url, Rfc4648VectorsWithoutPadding) {
  for (const auto& [plain, encoded] : kVectors) {
    std::string unpadded = encoded.substr(0, encoded.find('='));
    EXPECT_EQ(base64url_encode(plain), unpadded);
    EXPECT_EQ(base64url_decode(unpadded), plain) << unpadded;
  }
}

TEST(Base64, AlphabetsDifferInTheLastTwoCharacters) {
  const std::string bytes("\xfb\xff\xbf", 3);
  EXPECT_EQ(base64_encode(bytes), "+/+/");
  EXPECT_EQ(base64url_encode(bytes), "-_-_");
  EXPECT_EQ(base64_decode("+/+/"), bytes);
  EXPECT_EQ(base64url_decode("-_-_"), bytes);
  EXPECT_EQ(base64_decode("-_-_"), std::nullopt);
  EXPECT_EQ(base64url_decode("+/+/"), std::nullopt);
}

TEST(Base64, JwtHeaderKnownValue) {
  EXPECT_EQ(base64url_encode(R"({"alg":"HS256","typ":"JWT"})"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
}

TEST(Base64, RoundTripsEveryByteAndLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  std::mt19937 rng(42);
  for (std::size_t len = 0; len <= all.size(); ++len) {
    std::string s = all.substr(0, len);
    std::shuffle(s.begin(), s.end(), rng);
    const std::string std_enc = base64_encode(s);
    const std::string url_enc = base64url_encode(s);
    EXPECT_EQ(std_enc.size() % 4, 0u);
    EXPECT_EQ(url_enc.find_first_of("+/="), std::string::npos);
    EXPECT_EQ(base64_decode(std_enc), s) << len;
    EXPECT_EQ(base64url_decode(url_enc), s) << len;
  }
}

TEST(Base64, RejectsBadInput) {
  for (const char* bad : {"Z", "Zg=", "Zg===", "Zm9v!", "Zm9v\n", "Zm 9v", "Zg==Zg==", "=Zg=",
                          "Zm9vY", "====", "Z===", "\x80\x81\x82\x83"}) {
    EXPECT_EQ(base64_decode(bad), std::nullopt) << bad;
  }
  for (const char* bad : {"Z", "Zm9v!", "Zm9v+", "Zm9v/", "Zm 9v", "Zm9vY", "Zg==Zg", ".",
                          "\xff\xff"}) {
    EXPECT_EQ(base64url_decode(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(base64_decode(std::string_view("Zm9\0", 4)), std::nullopt);
}

}  // namespace
}  // namespace chat
