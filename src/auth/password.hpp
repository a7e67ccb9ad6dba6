#pragma once
// Password hashing: Argon2id (libsodium crypto_pwhash_str, interactive limits) for new hashes;
// legacy bcrypt hashes ($2a$/$2b$/$2y$, as the Node server wrote them) still verify via
// libxcrypt's crypt_r. All functions are thread-safe and blocking (tens of ms, 64 MiB for
// Argon2id): call them from a TaskPool thread.
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace chat::auth {

/// Argon2id hash in the PHC string format ("$argon2id$v=19$m=…"). internal on out-of-memory.
result<std::string> hash_password(std::string_view password);
/// True when `password` matches `stored` (Argon2id or bcrypt). False for anything malformed.
bool verify_password(std::string_view password, std::string_view stored) noexcept;
/// True when `stored` should be replaced by a fresh Argon2id hash after a successful login
/// (it is bcrypt, or Argon2id with weaker parameters than the current ones).
bool needs_rehash(std::string_view stored) noexcept;
/// A valid Argon2id hash of a random password, computed once: login verifies against it when
/// the email is unknown so both failures take the same time.
const std::string& dummy_hash();

}  // namespace chat::auth
