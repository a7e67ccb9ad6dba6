#pragma once
// JSON Web Tokens, HS256, with exactly the header and claims `jsonwebtoken` (Node) produces for
// jwt.sign({userId}, secret, {expiresIn}): header {"alg":"HS256","typ":"JWT"}, payload
// {"userId":"…","iat":…,"exp":…}. Tokens from the old server verify with the same secret.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace chat::auth {

struct Claims {
  std::string user_id;
  std::int64_t iat = 0;  ///< seconds since epoch
  std::int64_t exp = 0;
};

/// Immutable after construction; thread-safe.
class JwtCodec {
 public:
  JwtCodec(std::string_view secret, std::int64_t ttl_seconds);
  /// Token for `user_id` issued at `now_s`, expiring at now_s + ttl.
  std::string sign(std::string_view user_id, std::int64_t now_s) const;
  /// Checks structure, alg == HS256 (no "none", no other alg), signature (constant time),
  /// exp > now_s and nbf <= now_s when present, and a string userId claim.
  /// Errors: unauthorized with message "Invalid token" or "Token expired". Never throws.
  result<Claims> verify(std::string_view token, std::int64_t now_s) const;
  std::int64_t ttl_seconds() const noexcept { return ttl_; }

 private:
  struct Keyed;  ///< HMAC-SHA-256 state with the key absorbed (libsodium's; kept out of this header)
  std::string mac(std::string_view data) const;

  std::int64_t ttl_;
  std::shared_ptr<const Keyed> keyed_;
};

}  // namespace chat::auth
