#include "auth/jwt.hpp"

#include <openssl/crypto.h>
#include <sodium.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <utility>

#include "core/base64.hpp"
#include "core/json_text.hpp"

namespace chat::auth {
namespace {

// What jsonwebtoken writes for HS256, byte for byte, already base64url-encoded.
constexpr std::string_view kHeaderB64 = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
// Anything longer is not one of our tokens; refuse before decoding or hashing it.
constexpr std::size_t kMaxTokenBytes = 8192;

const char* const kInvalid = "Invalid token";
const char* const kExpired = "Token expired";

std::optional<boost::json::object> parse_object(std::string_view b64) {
  auto text = base64url_decode(b64);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

/// A JSON number as seconds; nullopt for other types (jsonwebtoken: "invalid exp value").
std::optional<double> number_of(const boost::json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double() && std::isfinite(v.get_double())) return v.get_double();
  return std::nullopt;
}

std::int64_t clamp_to_int64(double d) {
  // 9.2e18 is far beyond any real timestamp; clamping avoids UB in the conversion.
  constexpr double kMax = 9.0e18;
  if (d >= kMax) return static_cast<std::int64_t>(kMax);
  if (d <= -kMax) return static_cast<std::int64_t>(-kMax);
  return static_cast<std::int64_t>(std::floor(d));
}

}  // namespace

// libsodium's HMAC-SHA-256 (OpenSSL 3's one-shot HMAC() looks the algorithm up through its
// provider machinery on every call, which profiled at ~9 % of a socket connect). The key is
// absorbed once: each token then costs the hash of its own bytes, not the key's two pads too.
struct JwtCodec::Keyed {
  crypto_auth_hmacsha256_state state{};
  bool ok = false;
};

JwtCodec::JwtCodec(std::string_view secret, std::int64_t ttl_seconds) : ttl_(ttl_seconds) {
  auto keyed = std::make_shared<Keyed>();
  keyed->ok = crypto_auth_hmacsha256_init(&keyed->state, reinterpret_cast<const unsigned char*>(secret.data()),
                                          secret.size()) == 0;
  keyed_ = std::move(keyed);
}

/// base64url(HMAC-SHA-256(secret, data)); empty on failure.
std::string JwtCodec::mac(std::string_view data) const {
  if (!keyed_->ok) return {};
  unsigned char digest[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st = keyed_->state;
  const bool ok =
      crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 0 &&
      crypto_auth_hmacsha256_final(&st, digest) == 0;
  sodium_memzero(&st, sizeof st);  // the keyed state would let anyone sign
  if (!ok) return {};
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string JwtCodec::sign(std::string_view user_id, std::int64_t now_s) const {
  // Key order and number formatting as jsonwebtoken: the caller's claims, then iat, then exp.
  std::string payload = "{\"userId\":";
  append_json_string(payload, user_id);
  payload += ",\"iat\":" + std::to_string(now_s) + ",\"exp\":" + std::to_string(now_s + ttl_) + "}";

  std::string token;
  token.reserve(kHeaderB64.size() + payload.size() * 4 / 3 + 48);
  token += kHeaderB64;
  token.push_back('.');
  token += base64url_encode(payload);
  const std::string signature = mac(token);
  token.push_back('.');
  token += signature;
  return token;
}

result<Claims> JwtCodec::verify(std::string_view token, std::int64_t now_s) const {
  if (token.empty() || token.size() > kMaxTokenBytes) return {errc::unauthorized, kInvalid};
  const auto dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return {errc::unauthorized, kInvalid};
  const auto dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return {errc::unauthorized, kInvalid};
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature = token.substr(dot2 + 1);

  // The header decides the algorithm, so it is checked before anything is trusted: only HS256,
  // never "none" (whose empty signature would otherwise be all an attacker needs).
  // (The header jsonwebtoken and sign() write, byte for byte, says HS256: no need to decode it.)
  if (header_b64 != kHeaderB64) {
    const auto header = parse_object(header_b64);
    if (!header) return {errc::unauthorized, kInvalid};
    const auto* alg = header->if_contains("alg");
    if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256")
      return {errc::unauthorized, kInvalid};
  }

  // Like jsonwebtoken, compare the base64url text of the signatures; the length is public.
  const std::string expected = mac(token.substr(0, dot2));
  if (expected.empty() || signature.size() != expected.size() ||
      CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
    return {errc::unauthorized, kInvalid};

  const auto payload = parse_object(payload_b64);
  if (!payload) return {errc::unauthorized, kInvalid};

  Claims claims;
  // Same order of checks as jsonwebtoken: nbf, then exp.
  if (const auto* nbf = payload->if_contains("nbf")) {
    const auto v = number_of(*nbf);
    if (!v || *v > static_cast<double>(now_s)) return {errc::unauthorized, kInvalid};
  }
  if (const auto* exp = payload->if_contains("exp")) {
    const auto v = number_of(*exp);
    if (!v) return {errc::unauthorized, kInvalid};
    if (static_cast<double>(now_s) >= *v) return {errc::unauthorized, kExpired};
    claims.exp = clamp_to_int64(*v);
  }
  if (const auto* iat = payload->if_contains("iat")) {
    if (const auto v = number_of(*iat)) claims.iat = clamp_to_int64(*v);
  }
  const auto* user_id = payload->if_contains("userId");
  if (user_id == nullptr || !user_id->is_string() || user_id->get_string().empty())
    return {errc::unauthorized, kInvalid};
  claims.user_id = std::string(user_id->get_string());
  return claims;
}

}  // namespace chat::auth
