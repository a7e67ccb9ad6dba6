#pragma once
// Bulk sign-up over the REST API (POST /api/v1/auth/signup) with a few keep-alive HTTP/1.1
// connections. Blocking; runs its own io_context on the calling thread.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace chat::bench {

struct BenchUser {
  std::string id;     ///< the server's user _id
  std::string token;  ///< JWT for CONNECT auth
};

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5000;
};

/// Parses "http://HOST:PORT[/]" (HOST an IP literal; "localhost" is taken as 127.0.0.1).
/// Errors: errc::invalid_argument.
result<Endpoint> parse_url(const std::string& url);

/// Signs up users email_prefix + i + "@bench.test" for i in [first, first + count) with
/// `concurrency` connections in parallel; returns them in index order.
/// Errors: errc::rate_limited when the server answers 429 (chatd needs --rate-limit-auth off),
/// errc::unavailable for a connection failure, errc::internal for any other unexpected answer.
result<std::vector<BenchUser>> signup_users(const Endpoint& server, const std::string& email_prefix,
                                            std::size_t first, std::size_t count,
                                            std::size_t concurrency,
                                            const std::function<void(std::size_t done)>& progress);

}  // namespace chat::bench
