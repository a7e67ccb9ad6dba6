#include "auth/password.hpp"

#include <crypt.h>
#include <sodium.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

namespace chat::auth {
namespace {

// Longer passwords are refused outright: Argon2 would hash them fine, but nobody types 4 KiB and
// an attacker could make every login hash megabytes.
constexpr std::size_t kMaxPasswordBytes = 4096;
// bcrypt only ever looks at the first 72 bytes of the key; node's bcrypt and bcryptjs silently
// ignore the rest, and libxcrypt would refuse passwords over 512 bytes, so we cut first.
constexpr std::size_t kBcryptKeyBytes = 72;
// A stored hash with absurd cost parameters would pin a thread (bcrypt 2^31 rounds) or allocate
// gigabytes (Argon2 m=4 TiB) on every login attempt: refuse them instead.
constexpr unsigned kBcryptMaxCost = 16;
constexpr std::uint64_t kArgon2MaxMemKiB = 1024 * 1024;  // 1 GiB, libsodium's "sensitive"
constexpr std::uint64_t kArgon2MaxOps = 10;

// Used by dummy_hash() only if hashing fails at start-up (out of memory); made the same way, from
// 32 random bytes nobody kept.
constexpr std::string_view kFallbackDummyHash =
    "$argon2id$v=19$m=65536,t=2,p=1$Pd05/xfTteYU8nnyQF53aw$07L7Quos5eX8cOLPep4uQB+ErAlTZHTKcFLHPl1eGP0";

constexpr std::string_view kArgon2idPrefix = "$argon2id$";
constexpr std::string_view kArgon2iPrefix = "$argon2i$";

bool sodium_ready() noexcept {
  // Static-local initialisation is thread-safe, so sodium_init runs exactly once.
  static const bool ok = sodium_init() >= 0;
  return ok;
}

bool starts_with(std::string_view s, std::string_view p) noexcept {
  return s.size() >= p.size() && s.substr(0, p.size()) == p;
}

bool is_bcrypt_prefix(std::string_view s) noexcept {
  return starts_with(s, "$2a$") || starts_with(s, "$2b$") || starts_with(s, "$2y$");
}

bool is_argon2_prefix(std::string_view s) noexcept {
  return starts_with(s, kArgon2idPrefix) || starts_with(s, kArgon2iPrefix);
}

/// "$2b$10$" + 22 salt chars + 31 hash chars, all from bcrypt's base64 alphabet.
bool well_formed_bcrypt(std::string_view s) noexcept {
  if (s.size() != 60 || !is_bcrypt_prefix(s) || s[6] != '$') return false;
  if (s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9') return false;
  const unsigned cost = static_cast<unsigned>((s[4] - '0') * 10 + (s[5] - '0'));
  if (cost < 4 || cost > kBcryptMaxCost) return false;
  for (char c : s.substr(7)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

/// Reads the decimal after `key` (e.g. "m=") in the parameter section of a PHC string.
bool read_param(std::string_view s, std::string_view key, std::uint64_t& out) noexcept {
  const auto pos = s.find(key);
  if (pos == std::string_view::npos) return false;
  std::size_t i = pos + key.size();
  std::uint64_t v = 0;
  std::size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 12) {
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || (i < s.size() && s[i] >= '0' && s[i] <= '9')) return false;
  out = v;
  return true;
}

/// Cheap sanity checks before handing the string to libsodium, which does the full parse.
bool acceptable_argon2(std::string_view s) noexcept {
  if (!is_argon2_prefix(s) || s.size() >= crypto_pwhash_STRBYTES) return false;
  std::uint64_t m = 0, t = 0;
  if (!read_param(s, "$m=", m) || !read_param(s, ",t=", t)) return false;
  return m <= kArgon2MaxMemKiB && t <= kArgon2MaxOps;
}

bool verify_argon2(std::string_view password, std::string_view stored) noexcept {
  if (!acceptable_argon2(stored) || !sodium_ready()) return false;
  char str[crypto_pwhash_STRBYTES] = {};
  std::memcpy(str, stored.data(), stored.size());
  return crypto_pwhash_str_verify(str, password.data(),
                                  static_cast<unsigned long long>(password.size())) == 0;
}

bool verify_bcrypt(std::string_view password, std::string_view stored) noexcept {
  if (!well_formed_bcrypt(stored)) return false;
  // crypt_r reads a C string: a NUL inside the password would silently shorten it (node's
  // bcryptjs would not), so such a password can never match rather than match a prefix.
  if (password.find('\0') != std::string_view::npos) return false;
  const std::size_t key_len = password.size() < kBcryptKeyBytes ? password.size() : kBcryptKeyBytes;
  char key[kBcryptKeyBytes + 1] = {};
  std::memcpy(key, password.data(), key_len);
  char setting[61] = {};
  std::memcpy(setting, stored.data(), stored.size());

  // struct crypt_data is ~32 KiB: too big for the stack of a pool thread. Value-initialised, as
  // crypt_r requires on first use.
  std::unique_ptr<crypt_data> data(new (std::nothrow) crypt_data());
  bool ok = false;
  if (data) {
    const char* out = crypt_r(key, setting, data.get());
    if (out != nullptr && std::strlen(out) == stored.size())
      ok = sodium_memcmp(out, stored.data(), stored.size()) == 0;
    sodium_memzero(data.get(), sizeof(crypt_data));
  }
  sodium_memzero(key, sizeof key);
  return ok;
}

}  // namespace

result<std::string> hash_password(std::string_view password) {
  if (password.size() > kMaxPasswordBytes) return {errc::invalid_argument, "Password too long"};
  if (!sodium_ready()) return {errc::internal, "libsodium initialisation failed"};
  char out[crypto_pwhash_STRBYTES] = {};
  if (crypto_pwhash_str_alg(out, password.data(), static_cast<unsigned long long>(password.size()),
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return {errc::internal, "Password hashing failed (out of memory)"};
  return std::string(out);
}

bool verify_password(std::string_view password, std::string_view stored) noexcept {
  if (password.size() > kMaxPasswordBytes) return false;
  if (is_argon2_prefix(stored)) return verify_argon2(password, stored);
  if (is_bcrypt_prefix(stored)) return verify_bcrypt(password, stored);
  return false;
}

bool needs_rehash(std::string_view stored) noexcept {
  if (is_bcrypt_prefix(stored)) return true;
  // Argon2i verifies, but new hashes are Argon2id: upgrade it on the next login.
  if (starts_with(stored, kArgon2iPrefix)) return true;
  if (!starts_with(stored, kArgon2idPrefix) || stored.size() >= crypto_pwhash_STRBYTES ||
      !sodium_ready())
    return false;
  char str[crypto_pwhash_STRBYTES] = {};
  std::memcpy(str, stored.data(), stored.size());
  // 1: other parameters than the current ones; -1: unparsable, which verify rejects anyway.
  return crypto_pwhash_str_needs_rehash(str, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                        crypto_pwhash_MEMLIMIT_INTERACTIVE) == 1;
}

const std::string& dummy_hash() {
  static const std::string hash = [] {
    unsigned char random[32];
    // randombytes_buf needs sodium_init to have run (for the thread-safe generator).
    sodium_ready();
    randombytes_buf(random, sizeof random);
    char hex[2 * sizeof random + 1];
    sodium_bin2hex(hex, sizeof hex, random, sizeof random);
    auto h = hash_password(std::string_view(hex, 2 * sizeof random));
    sodium_memzero(hex, sizeof hex);
    // Out of memory at this point: fall back to a fixed hash so callers still spend the time of
    // one Argon2id verification. Nobody knows its password (it came from 32 random bytes).
    return h ? std::move(h).value() : std::string(kFallbackDummyHash);
  }();
  return hash;
}

}  // namespace chat::auth
