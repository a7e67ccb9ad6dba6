#include "ratelimit/memory_rate_limiter.hpp"

#include <functional>

namespace chat::ratelimit {

MemoryRateLimiter::MemoryRateLimiter(std::uint32_t max_hits, std::int64_t window_ms,
                                     std::size_t max_keys)
    : max_hits_(max_hits),
      window_ms_(window_ms),
      max_keys_per_shard_(std::max<std::size_t>(1, max_keys / kShards)) {}

Decision MemoryRateLimiter::hit(std::string_view key, std::int64_t now_ms) {
  Shard& shard = shards_[std::hash<std::string_view>{}(key) % kShards];
  std::lock_guard lock(shard.mu);
  auto it = shard.windows.find(std::string(key));
  if (it == shard.windows.end()) {
    if (shard.windows.size() >= max_keys_per_shard_) make_room(shard, now_ms);
    it = shard.windows.emplace(std::string(key), Window{now_ms, 0}).first;
  }
  Window& w = it->second;
  if (now_ms - w.start_ms >= window_ms_) w = Window{now_ms, 0};
  if (w.hits >= max_hits_)
    return Decision{false, 0, w.start_ms + window_ms_ - now_ms};
  ++w.hits;
  return Decision{true, max_hits_ - w.hits, 0};
}

void MemoryRateLimiter::make_room(Shard& shard, std::int64_t now_ms) {
  if (now_ms - shard.last_sweep_ms >= 1000 || now_ms < shard.last_sweep_ms) {
    shard.last_sweep_ms = now_ms;
    std::erase_if(shard.windows,
                  [&](const auto& kv) { return now_ms - kv.second.start_ms >= window_ms_; });
  }
  if (shard.windows.size() >= max_keys_per_shard_) shard.windows.erase(shard.windows.begin());
}

std::size_t MemoryRateLimiter::tracked_keys() const {
  std::size_t n = 0;
  for (const auto& s : shards_) {
    std::lock_guard lock(s.mu);
    n += s.windows.size();
  }
  return n;
}

}  // namespace chat::ratelimit
