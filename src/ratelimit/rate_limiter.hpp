#pragma once
// Fixed-window rate limiting per key (a client IP), like express-rate-limit's default store.
// In-memory now; a Redis implementation shares the counts between instances in cluster mode.
#include <cstdint>
#include <string_view>

namespace chat::ratelimit {

struct Decision {
  bool allowed = true;
  std::uint32_t remaining = 0;       ///< hits left in the current window
  std::int64_t retry_after_ms = 0;   ///< when refused: time until the window resets
};

/// Thread-safe; never blocks on I/O in the memory implementation.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  /// Counts one hit for `key` at `now_ms` and says whether it is allowed.
  virtual Decision hit(std::string_view key, std::int64_t now_ms) = 0;
};

}  // namespace chat::ratelimit
