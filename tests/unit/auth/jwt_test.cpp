#include "auth/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "core/base64.hpp"
#include "core/time.hpp"
#include "fixtures.hpp"

namespace chat::auth {
namespace {

using chat::test::fixture_int;
using chat::test::fixture_string;

struct JwtFixture {
  std::string secret = fixture_string("jwt", "secret");
  std::string user_id = fixture_string("jwt", "user_id");
  std::int64_t iat = fixture_int("jwt", "iat");
  std::int64_t exp = fixture_int("jwt", "exp");
  std::int64_t ttl = fixture_int("jwt", "ttl_seconds");
  std::string token = fixture_string("jwt", "token");
};

/// header.payload.signature with a correct HS256 signature over arbitrary JSON text, so that the
/// checks after the signature can be reached with hostile content.
std::string forge(std::string_view header_json, std::string_view payload_json,
                  std::string_view secret) {
  std::string input = base64url_encode(header_json) + "." + base64url_encode(payload_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url_encode(std::string_view(reinterpret_cast<char*>(mac), len));
}

constexpr std::string_view kHs256 = R"({"alg":"HS256","typ":"JWT"})";

void expect_invalid(const JwtCodec& codec, std::string_view token, std::int64_t now,
                    const char* why) {
  auto r = codec.verify(token, now);
  ASSERT_FALSE(r.ok()) << why << ": accepted " << token;
  EXPECT_EQ(r.code(), errc::unauthorized) << why;
  EXPECT_EQ(r.err().message, "Invalid token") << why;
}

TEST(Jwt, TtlOfSevenDaysMatchesJsonwebtoken) {
  JwtFixture f;
  EXPECT_EQ(parse_duration_seconds(fixture_string("jwt", "expires_in")), f.ttl);
  EXPECT_EQ(f.exp, f.iat + f.ttl);
}

TEST(Jwt, SignIsByteForByteJsonwebtoken) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  EXPECT_EQ(codec.ttl_seconds(), f.ttl);
  EXPECT_EQ(codec.sign(f.user_id, f.iat), f.token);
}

TEST(Jwt, SignEscapesLikeJsonStringify) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  const std::string odd = fixture_string("jwt", "odd_user_id");
  ASSERT_NE(odd.find('\x01'), std::string::npos);  // the fixture really has control characters
  const std::string token = codec.sign(odd, f.iat);
  EXPECT_EQ(token, fixture_string("jwt", "token_odd_user_id"));
  auto r = codec.verify(token, f.iat);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->user_id, odd);
}

TEST(Jwt, DifferentInputsGiveDifferentTokens) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  EXPECT_NE(codec.sign(f.user_id, f.iat), codec.sign(f.user_id, f.iat + 1));
  EXPECT_NE(codec.sign(f.user_id, f.iat), codec.sign("other", f.iat));
  EXPECT_NE(codec.sign(f.user_id, f.iat), JwtCodec("x", f.ttl).sign(f.user_id, f.iat));
  EXPECT_NE(codec.sign(f.user_id, f.iat), JwtCodec(f.secret, 60).sign(f.user_id, f.iat));
}

TEST(Jwt, NodeTokenVerifies) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  auto r = codec.verify(f.token, f.iat + 1);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->user_id, f.user_id);
  EXPECT_EQ(r->iat, f.iat);
  EXPECT_EQ(r->exp, f.exp);
  // The codec's ttl does not matter for verification: exp in the token does.
  EXPECT_TRUE(JwtCodec(f.secret, 60).verify(f.token, f.exp - 1).ok());
}

TEST(Jwt, OwnTokenRoundTrips) {
  JwtCodec codec("s3cret", 3600);
  const std::string token = codec.sign("abc", 1000);
  auto r = codec.verify(token, 1000);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->user_id, "abc");
  EXPECT_EQ(r->iat, 1000);
  EXPECT_EQ(r->exp, 4600);
}

TEST(Jwt, SecretsOfAnyLengthMatchAnIndependentHmac) {
  // The codec absorbs the key once and reuses that state for every token; OpenSSL's one-shot
  // HMAC (in forge) hashes it anew. Keys longer than SHA-256's 64-byte block are hashed first.
  const std::string payload = R"({"userId":"abc","iat":1000})";
  for (const std::string& secret : {std::string("k"), std::string(64, 'x'), std::string(65, 'y'),
                                   std::string(200, 'z')}) {
    JwtCodec codec(secret, 3600);
    for (int i = 0; i < 3; ++i) {  // the same codec, again and again
      auto r = codec.verify(forge(kHs256, payload, secret), 1001);
      ASSERT_TRUE(r.ok()) << secret.size() << ": " << r.err().message;
      EXPECT_EQ(r->user_id, "abc");
      expect_invalid(codec, forge(kHs256, payload, secret + "!"), 1001, "another secret");
    }
    const std::string own = codec.sign("abc", 1000);
    EXPECT_EQ(own.substr(own.rfind('.') + 1),
              forge(kHs256, R"({"userId":"abc","iat":1000,"exp":4600})", secret).substr(own.rfind('.') + 1))
        << secret.size();
  }
}

TEST(Jwt, ExpiryIsExclusiveLikeJsonwebtoken) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  EXPECT_TRUE(codec.verify(f.token, f.exp - 1).ok());
  for (std::int64_t now : {f.exp, f.exp + 1, f.exp + 10 * f.ttl}) {
    auto r = codec.verify(f.token, now);
    ASSERT_FALSE(r.ok()) << now;
    EXPECT_EQ(r.code(), errc::unauthorized);
    EXPECT_EQ(r.err().message, "Token expired");
  }
}

TEST(Jwt, SignatureIsCheckedBeforeExpiry) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  expect_invalid(codec, fixture_string("jwt", "token_other_secret"), f.exp + 1,
                 "expired and wrong secret");
}

TEST(Jwt, NodeRejectedTokensAreInvalid) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  const std::int64_t now = f.iat + 1;
  expect_invalid(codec, fixture_string("jwt", "token_tampered"), now, "tampered payload");
  expect_invalid(codec, fixture_string("jwt", "token_other_secret"), now, "other secret");
  expect_invalid(codec, fixture_string("jwt", "token_alg_none"), now, "alg none");
  expect_invalid(codec, fixture_string("jwt", "token_hs512"), now, "HS512");
  expect_invalid(codec, fixture_string("jwt", "token_no_user_id"), now, "no userId");
  expect_invalid(codec, fixture_string("jwt", "token_numeric_user_id"), now, "numeric userId");
  // The right token under another secret.
  expect_invalid(JwtCodec(fixture_string("jwt", "other_secret"), f.ttl), f.token, now,
                 "verified with another secret");
  expect_invalid(JwtCodec("", f.ttl), f.token, now, "empty secret");
}

TEST(Jwt, TokenWithoutExpIsAcceptedLikeJsonwebtoken) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  auto r = codec.verify(fixture_string("jwt", "token_no_exp"), f.iat + 100 * f.ttl);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->user_id, f.user_id);
  EXPECT_EQ(r->exp, 0);
}

TEST(Jwt, NotBeforeIsHonoured) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  const std::string token = fixture_string("jwt", "token_nbf");
  const std::int64_t nbf = fixture_int("jwt", "nbf");
  expect_invalid(codec, token, f.iat + 10, "before nbf");
  expect_invalid(codec, token, nbf - 1, "one second before nbf");
  auto r = codec.verify(token, nbf);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->user_id, f.user_id);
}

TEST(Jwt, MalformedTokensAreInvalid) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  const std::int64_t now = f.iat + 1;
  const auto dot1 = f.token.find('.');
  const auto dot2 = f.token.rfind('.');
  const std::string head = f.token.substr(0, dot1);
  const std::string body = f.token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string sig = f.token.substr(dot2 + 1);

  for (const std::string& t : std::vector<std::string>{
           "",
           "garbage",
           ".",
           "..",
           "...",
           head + "." + body,                      // two segments
           head + "." + body + ".",                // empty signature
           head + "." + body + "." + sig + ".",    // four segments
           head + "." + body + "." + sig + "." + sig,
           "." + body + "." + sig,
           head + ".." + sig,
           head + "." + body + "." + sig + "=",    // padded signature
           head + "=." + body + "." + sig,
           head + "." + body + "." + sig.substr(0, sig.size() - 1),
           head + "." + body + "." + sig + "A",
           " " + f.token,
           f.token + " ",
           "Bearer " + f.token,
           head + "." + body + "!." + sig,         // not base64url
           std::string(f.token).insert(10, 1, '\0'),
           std::string(100000, 'a') + "." + body + "." + sig,
       }) {
    expect_invalid(codec, t, now, "malformed");
  }
}

TEST(Jwt, EveryOneCharacterChangeIsRejected) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  for (std::size_t i = 0; i < f.token.size(); ++i) {
    for (char c : {'A', 'b', '-', '_', '.', '0'}) {
      if (f.token[i] == c) continue;
      std::string t = f.token;
      t[i] = c;
      auto r = codec.verify(t, f.iat + 1);
      EXPECT_FALSE(r.ok()) << "position " << i << " -> " << c;
    }
  }
}

TEST(Jwt, ContentIsCheckedEvenWithAValidSignature) {
  JwtFixture f;
  JwtCodec codec(f.secret, f.ttl);
  const std::int64_t now = f.iat + 1;
  const std::string good_payload =
      R"({"userId":")" + f.user_id + R"(","iat":)" + std::to_string(f.iat) + "}";
  // Sanity: forge() itself produces tokens the codec accepts.
  ASSERT_TRUE(codec.verify(forge(kHs256, good_payload, f.secret), now).ok());
  ASSERT_TRUE(codec.verify(forge(R"({"alg":"HS256"})", good_payload, f.secret), now).ok());
  ASSERT_TRUE(
      codec.verify(forge(R"({"typ":"JWT","kid":"1","alg":"HS256"})", good_payload, f.secret), now)
          .ok());

  struct Case {
    std::string header, payload;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"not json", good_payload, "header not JSON"},
           {"[\"HS256\"]", good_payload, "header an array"},
           {"\"HS256\"", good_payload, "header a string"},
           {"{}", good_payload, "no alg"},
           {R"({"alg":"none"})", good_payload, "alg none, even with a valid HMAC"},
           {R"({"alg":"hs256"})", good_payload, "alg in lowercase"},
           {R"({"alg":"HS512"})", good_payload, "alg HS512"},
           {R"({"alg":"RS256"})", good_payload, "alg RS256"},
           {R"({"alg":null})", good_payload, "alg null"},
           {R"({"alg":["HS256"]})", good_payload, "alg array"},
           {R"({"alg":"HS256")", good_payload, "truncated header"},
           {std::string(kHs256), "not json", "payload not JSON"},
           {std::string(kHs256), "[1,2]", "payload an array"},
           {std::string(kHs256), "\"" + f.user_id + "\"", "payload a string"},
           {std::string(kHs256), "{}", "empty payload"},
           {std::string(kHs256), R"({"userId":""})", "empty userId"},
           {std::string(kHs256), R"({"userId":null})", "null userId"},
           {std::string(kHs256), R"({"userId":{"$ne":1}})", "object userId"},
           {std::string(kHs256), R"({"userId":["a"]})", "array userId"},
           {std::string(kHs256), R"({"userid":"a"})", "userId spelled otherwise"},
           {std::string(kHs256), R"({"userId":"a","exp":"99999999999"})", "exp a string"},
           {std::string(kHs256), R"({"userId":"a","exp":null})", "exp null"},
           {std::string(kHs256), R"({"userId":"a","nbf":"0"})", "nbf a string"},
           {std::string(kHs256), R"({"userId":"a","nbf":99999999999})", "nbf far ahead"},
           {std::string(kHs256), R"({"userId":"a"} trailing)", "trailing garbage"},
           {std::string(kHs256), std::string(100, '[') + std::string(100, ']'), "deep nesting"},
       }) {
    expect_invalid(codec, forge(c.header, c.payload, f.secret), now, c.why);
  }

  // Timestamps that are JSON numbers of any kind are understood.
  auto r = codec.verify(forge(kHs256, R"({"userId":"a","exp":)" + std::to_string(now) + ".5}",
                              f.secret),
                        now);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->exp, now);
  r = codec.verify(forge(kHs256, R"({"userId":"a","exp":1e300,"nbf":-1e300})", f.secret), now);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_GT(r->exp, now);
  r = codec.verify(forge(kHs256, R"({"userId":"a","exp":1.7e9})", f.secret), 1'700'000'000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().message, "Token expired");
  r = codec.verify(forge(kHs256, R"({"userId":"a","exp":18446744073709551615})", f.secret), now);
  EXPECT_TRUE(r.ok());
}

}  // namespace
}  // namespace chat::auth
