#include "auth/password.hpp"

#include <crypt.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.hpp"

namespace chat::auth {
namespace {

using chat::test::fixture_string;

std::string fresh_hash(std::string_view pw) {
  auto h = hash_password(pw);
  EXPECT_TRUE(h.ok());
  return h ? h.value() : std::string{};
}

/// A hash made directly with libsodium, to get parameters or variants our API never writes.
std::string sodium_hash(std::string_view pw, unsigned long long ops, std::size_t mem, int alg) {
  EXPECT_GE(sodium_init(), 0);
  char out[crypto_pwhash_STRBYTES];
  EXPECT_EQ(crypto_pwhash_str_alg(out, pw.data(), pw.size(), ops, mem, alg), 0);
  return out;
}

/// A hash of another scheme libxcrypt knows (md5crypt, sha512crypt…), which we must not accept.
std::string xcrypt_hash(const char* pw, const char* setting) {
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_r(pw, setting, data.get());
  EXPECT_NE(out, nullptr);
  return out != nullptr ? out : "";
}

TEST(Password, Argon2idHashVerifies) {
  const std::string h = fresh_hash("hunter2");
  EXPECT_EQ(h.rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0), 0u) << h;
  EXPECT_TRUE(verify_password("hunter2", h));
}

TEST(Password, WrongPasswordIsRejected) {
  const std::string h = fresh_hash("hunter2");
  EXPECT_FALSE(verify_password("hunter3", h));
  EXPECT_FALSE(verify_password("Hunter2", h));
  EXPECT_FALSE(verify_password("hunter2 ", h));
  EXPECT_FALSE(verify_password("", h));
}

TEST(Password, HashesAreSalted) {
  const std::string a = fresh_hash("same password");
  const std::string b = fresh_hash("same password");
  EXPECT_NE(a, b);
  EXPECT_TRUE(verify_password("same password", a));
  EXPECT_TRUE(verify_password("same password", b));
}

TEST(Password, EmptyAndBinaryPasswordsAreExact) {
  const std::string empty = fresh_hash("");
  EXPECT_TRUE(verify_password("", empty));
  EXPECT_FALSE(verify_password(std::string_view("\0", 1), empty));

  // Argon2 takes a length, so bytes after a NUL count.
  const std::string with_nul("ab\0cd", 5);
  const std::string h = fresh_hash(with_nul);
  EXPECT_TRUE(verify_password(with_nul, h));
  EXPECT_FALSE(verify_password("ab", h));
  EXPECT_FALSE(verify_password(std::string("ab\0ce", 5), h));
}

TEST(Password, AbsurdlyLongPasswordsAreRefused) {
  const std::string max(4096, 'x');
  const std::string h = fresh_hash(max);
  EXPECT_TRUE(verify_password(max, h));

  auto too_long = hash_password(std::string(4097, 'x'));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.code(), errc::invalid_argument);
  EXPECT_FALSE(verify_password(std::string(4097, 'x'), h));
  EXPECT_FALSE(verify_password(std::string(1 << 20, 'x'), h));
}

TEST(Password, Argon2iStillVerifiesAndIsUpgraded) {
  const std::string h = sodium_hash("legacy", crypto_pwhash_argon2i_OPSLIMIT_INTERACTIVE,
                                    crypto_pwhash_argon2i_MEMLIMIT_INTERACTIVE,
                                    crypto_pwhash_ALG_ARGON2I13);
  ASSERT_EQ(h.rfind("$argon2i$", 0), 0u) << h;
  EXPECT_TRUE(verify_password("legacy", h));
  EXPECT_FALSE(verify_password("legacY", h));
  EXPECT_TRUE(needs_rehash(h));
}

TEST(Password, NeedsRehash) {
  EXPECT_FALSE(needs_rehash(fresh_hash("pw")));
  // Argon2id with other (here: weaker) parameters than ours.
  const std::string weak = sodium_hash("pw", crypto_pwhash_OPSLIMIT_MIN + 1,
                                       crypto_pwhash_MEMLIMIT_MIN * 2, crypto_pwhash_ALG_ARGON2ID13);
  EXPECT_TRUE(verify_password("pw", weak));
  EXPECT_TRUE(needs_rehash(weak));

  EXPECT_TRUE(needs_rehash(fixture_string("bcrypt", "hash_2a")));
  EXPECT_TRUE(needs_rehash(fixture_string("bcrypt", "hash_2b")));
  EXPECT_TRUE(needs_rehash(fixture_string("bcrypt", "hash_2y")));

  EXPECT_FALSE(needs_rehash(""));
  EXPECT_FALSE(needs_rehash("plaintext"));
}

TEST(Password, BcryptFromNodeVerifies) {
  const std::string pw = fixture_string("bcrypt", "password");
  const std::string wrong = fixture_string("bcrypt", "wrong_password");
  for (const char* key : {"hash_2a", "hash_2b", "hash_2y"}) {
    const std::string h = fixture_string("bcrypt", key);
    ASSERT_EQ(h.size(), 60u) << key;
    EXPECT_TRUE(verify_password(pw, h)) << key;
    EXPECT_FALSE(verify_password(wrong, h)) << key;
    EXPECT_FALSE(verify_password("", h)) << key;
  }
}

TEST(Password, BcryptFromNativeNodeModuleVerifies) {
  const auto* v = chat::test::fixtures().at("bcrypt").as_object().if_contains("hash_2b_native");
  if (v == nullptr || !v->is_string()) GTEST_SKIP() << "fixture made without native bcrypt";
  EXPECT_TRUE(verify_password(fixture_string("bcrypt", "password"), v->get_string()));
  EXPECT_FALSE(verify_password(fixture_string("bcrypt", "wrong_password"), v->get_string()));
}

TEST(Password, BcryptUsesOnlyFirst72BytesLikeNode) {
  const std::string h = fixture_string("bcrypt", "hash_long");
  EXPECT_TRUE(verify_password(fixture_string("bcrypt", "long_password"), h));
  EXPECT_TRUE(verify_password(fixture_string("bcrypt", "long_password_same_72"), h));
  EXPECT_FALSE(verify_password(fixture_string("bcrypt", "long_password_first_71"), h));
}

TEST(Password, BcryptHashesUtf8Bytes) {
  const std::string h = fixture_string("bcrypt", "hash_utf8");
  EXPECT_TRUE(verify_password(fixture_string("bcrypt", "utf8_password"), h));
  EXPECT_FALSE(verify_password("passwword", h));
}

TEST(Password, BcryptRejectsEmbeddedNulAndAlteredHashes) {
  const std::string pw = fixture_string("bcrypt", "password");
  const std::string h = fixture_string("bcrypt", "hash_2b");
  // A NUL would cut the C string crypt_r reads; the prefix must not log in.
  EXPECT_FALSE(verify_password(pw + std::string("\0x", 2), h));
  ASSERT_EQ(h.size(), 60u);

  std::string altered = h;
  altered[59] = altered[59] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(verify_password(pw, altered));
  altered = h;
  altered[20] = altered[20] == 'a' ? 'b' : 'a';  // salt
  EXPECT_FALSE(verify_password(pw, altered));
  EXPECT_FALSE(verify_password(pw, h.substr(0, 59)));
  EXPECT_FALSE(verify_password(pw, h + "x"));
  EXPECT_FALSE(verify_password(pw, "$2x$" + h.substr(4)));  // the buggy variant: not ours
  EXPECT_FALSE(verify_password(pw, "$2c$" + h.substr(4)));
}

TEST(Password, AbsurdCostParametersAreRefusedQuickly) {
  const std::string h = fixture_string("bcrypt", "hash_2b");
  // 2^31 rounds would take days if attempted.
  EXPECT_FALSE(verify_password("x", "$2b$31$" + h.substr(7)));
  EXPECT_FALSE(verify_password("x", "$2b$99$" + h.substr(7)));
  EXPECT_FALSE(verify_password("x", "$2b$03$" + h.substr(7)));
  // m is in KiB: 4 TiB would be allocated if attempted.
  EXPECT_FALSE(verify_password(
      "x", "$argon2id$v=19$m=4294967295,t=2,p=1$Pd05/xfTteYU8nnyQF53aw$"
           "07L7Quos5eX8cOLPep4uQB+ErAlTZHTKcFLHPl1eGP0"));
  EXPECT_FALSE(verify_password(
      "x", "$argon2id$v=19$m=65536,t=4294967295,p=1$Pd05/xfTteYU8nnyQF53aw$"
           "07L7Quos5eX8cOLPep4uQB+ErAlTZHTKcFLHPl1eGP0"));
}

TEST(Password, MalformedHashesAreFalse) {
  const std::string good = fresh_hash("pw");
  for (const std::string& bad : std::vector<std::string>{
           "",
           "pw",
           "$",
           "$argon2id$",
           "$argon2id$v=19$m=65536,t=2,p=1$",
           "$argon2id$v=19$m=65536,t=2,p=1$abc$def",
           good.substr(0, good.size() - 1),
           good + "A",
           good + std::string(200, 'A'),
           "$ARGON2ID$" + good.substr(10),
           "$argon2d$" + good.substr(10),
           "$2b$",
           "$2b$10$",
           "$2b$10$short",
           "$2b$1a$" + std::string(53, 'a'),
           "$2b$10$" + std::string(52, 'a') + "!",
           std::string("$2b$10$\0", 8) + std::string(52, 'a'),
       }) {
    EXPECT_FALSE(verify_password("pw", bad)) << bad;
    EXPECT_FALSE(verify_password("", bad)) << bad;
  }
}

TEST(Password, OtherCryptSchemesAreNotAccepted) {
  // libxcrypt would verify these, but they were never ours: only bcrypt is a legacy format.
  for (const char* setting : {"$1$saltsalt$", "$5$saltsalt$", "$6$saltsalt$", "ab"}) {
    const std::string h = xcrypt_hash("pw", setting);
    ASSERT_FALSE(h.empty());
    EXPECT_FALSE(verify_password("pw", h)) << h;
    EXPECT_FALSE(needs_rehash(h)) << h;
  }
}

TEST(Password, DummyHashIsStableUnguessableArgon2id) {
  const std::string& a = dummy_hash();
  const std::string& b = dummy_hash();
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a.rfind("$argon2id$", 0), 0u) << a;
  EXPECT_FALSE(needs_rehash(a));
  EXPECT_FALSE(verify_password("", a));
  EXPECT_FALSE(verify_password("password", a));
}

TEST(Password, ConcurrentUseIsSafe) {
  const std::string argon = fresh_hash("parallel");
  const std::string bcrypt = fixture_string("bcrypt", "hash_2b");
  const std::string bcrypt_pw = fixture_string("bcrypt", "password");
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      bool ok = i % 2 == 0 ? verify_password("parallel", argon) : verify_password(bcrypt_pw, bcrypt);
      ok = ok && !verify_password("nope", i % 2 == 0 ? argon : bcrypt);
      ok = ok && !dummy_hash().empty();
      if (ok) ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 4);
}

}  // namespace
}  // namespace chat::auth
