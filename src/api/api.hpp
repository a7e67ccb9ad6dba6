#pragma once
// The REST API (compatible with the old Node server's routes and JSON), health, metrics and
// media, with the HTTP policies around them: security headers, CORS, rate limits, auth and
// request metrics. Produces an HttpHandler for net::HttpServer.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_service.hpp"
#include "core/result.hpp"
#include "core/task_pool.hpp"
#include "metrics/metrics.hpp"
#include "net/http.hpp"
#include "net/static_files.hpp"
#include "ratelimit/rate_limiter.hpp"

namespace chat::api {

struct ApiOptions {
  std::vector<std::string> cors_origins{"http://localhost:5173"};
  std::size_t json_limit = 1 << 20;
  std::size_t upload_limit = 5 << 20;
  bool trust_proxy = false;      ///< client IP from X-Forwarded-For
  bool secure_cookies = false;   ///< NODE_ENV=production
  std::int64_t cookie_max_age_s = 7 * 86400;
};

struct ApiDeps {
  ChatService& chat;
  TaskPool& pool;                            ///< where blocking work runs
  metrics::Registry& metrics;
  ratelimit::RateLimiter* api_limiter;       ///< nullptr: off
  ratelimit::RateLimiter* auth_limiter;      ///< nullptr: off
  std::function<result<void>()> ready;       ///< /readyz: are the dependencies usable?
  /// Engine.IO polling and handshakes on /socket.io/ (CORS, headers and metrics applied here).
  net::HttpHandler realtime_http;
  std::size_t realtime_max_payload = 1'000'000;
  /// The built web client; nullptr: API only.
  const net::StaticFiles* web = nullptr;
};

/// Thread-safe after construction: handle() runs on any I/O thread.
class Api {
 public:
  Api(ApiOptions options, ApiDeps deps);
  ~Api();
  /// An HttpHandler: never blocks (blocking work goes to the pool).
  void handle(net::Request&& req, net::Responder respond);
  /// Body limit for a request line (JSON routes: json_limit; image routes: room for a
  /// base64-encoded upload_limit).
  std::size_t body_limit(std::string_view method, std::string_view path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::api
