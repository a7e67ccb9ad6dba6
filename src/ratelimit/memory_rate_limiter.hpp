#pragma once
#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ratelimit/rate_limiter.hpp"

namespace chat::ratelimit {

/// Memory is bounded: at most `max_keys` tracked keys. When a shard is full, expired windows are
/// swept (at most once per second per shard, so a flood of new keys costs O(1) per hit); if it is
/// still full, an arbitrary live window is dropped, which can only err toward allowing.
class MemoryRateLimiter final : public RateLimiter {
 public:
  MemoryRateLimiter(std::uint32_t max_hits, std::int64_t window_ms, std::size_t max_keys = 100'000);
  Decision hit(std::string_view key, std::int64_t now_ms) override;
  std::size_t tracked_keys() const;

 private:
  struct Window {
    std::int64_t start_ms;
    std::uint32_t hits;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Window> windows;
    std::int64_t last_sweep_ms = 0;
  };
  static constexpr std::size_t kShards = 16;
  void make_room(Shard& shard, std::int64_t now_ms);

  std::uint32_t max_hits_;
  std::int64_t window_ms_;
  std::size_t max_keys_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace chat::ratelimit
