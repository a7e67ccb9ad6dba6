#include "ratelimit/memory_rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace chat::ratelimit {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;  // an arbitrary "now" in ms

TEST(MemoryRateLimiter, AllowsMaxHitsThenRefusesWithRetryAfter) {
  MemoryRateLimiter rl(3, 10'000);
  auto a = rl.hit("1.2.3.4", kT0);
  EXPECT_TRUE(a.allowed);
  EXPECT_EQ(a.remaining, 2u);
  auto b = rl.hit("1.2.3.4", kT0 + 100);
  EXPECT_TRUE(b.allowed);
  EXPECT_EQ(b.remaining, 1u);
  auto c = rl.hit("1.2.3.4", kT0 + 200);
  EXPECT_TRUE(c.allowed);
  EXPECT_EQ(c.remaining, 0u);

  auto refused = rl.hit("1.2.3.4", kT0 + 2'500);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0u);
  // The window started with the first hit: 10 s - 2.5 s remain.
  EXPECT_EQ(refused.retry_after_ms, 7'500);

  auto later = rl.hit("1.2.3.4", kT0 + 9'999);
  EXPECT_FALSE(later.allowed);
  EXPECT_EQ(later.retry_after_ms, 1);
}

TEST(MemoryRateLimiter, RefusedHitsDoNotExtendTheWindow) {
  MemoryRateLimiter rl(1, 1'000);
  ASSERT_TRUE(rl.hit("k", kT0).allowed);
  for (int i = 1; i < 10; ++i) EXPECT_FALSE(rl.hit("k", kT0 + i * 100).allowed);
  EXPECT_TRUE(rl.hit("k", kT0 + 1'000).allowed);
}

TEST(MemoryRateLimiter, WindowResetsAfterWindowMs) {
  MemoryRateLimiter rl(2, 1'000);
  EXPECT_TRUE(rl.hit("k", kT0).allowed);
  EXPECT_TRUE(rl.hit("k", kT0 + 10).allowed);
  EXPECT_FALSE(rl.hit("k", kT0 + 999).allowed);

  auto fresh = rl.hit("k", kT0 + 1'000);
  EXPECT_TRUE(fresh.allowed);
  EXPECT_EQ(fresh.remaining, 1u);
  EXPECT_TRUE(rl.hit("k", kT0 + 1'001).allowed);
  auto refused = rl.hit("k", kT0 + 1'500);
  EXPECT_FALSE(refused.allowed);
  // The new window started at kT0 + 1000.
  EXPECT_EQ(refused.retry_after_ms, 500);

  // Long idle: a fresh window again.
  EXPECT_TRUE(rl.hit("k", kT0 + 60'000).allowed);
}

TEST(MemoryRateLimiter, KeysAreIndependent) {
  MemoryRateLimiter rl(1, 60'000);
  EXPECT_TRUE(rl.hit("10.0.0.1", kT0).allowed);
  EXPECT_FALSE(rl.hit("10.0.0.1", kT0).allowed);
  EXPECT_TRUE(rl.hit("10.0.0.2", kT0).allowed);
  EXPECT_TRUE(rl.hit("::1", kT0).allowed);
  EXPECT_TRUE(rl.hit("", kT0).allowed);
  EXPECT_FALSE(rl.hit("10.0.0.2", kT0 + 1).allowed);
  EXPECT_EQ(rl.tracked_keys(), 4u);
}

TEST(MemoryRateLimiter, MemoryIsBoundedUnderManyDistinctKeys) {
  constexpr std::size_t kMaxKeys = 1'600;  // 100 per shard
  MemoryRateLimiter rl(5, 60'000, kMaxKeys);
  // All inside one window: nothing expires, so eviction of live windows has to keep the bound.
  for (int i = 0; i < 100'000; ++i) {
    auto d = rl.hit("key-" + std::to_string(i), kT0 + i / 100);
    ASSERT_TRUE(d.allowed) << i;  // a new key always starts a fresh window
    if (i % 997 == 0) ASSERT_LE(rl.tracked_keys(), kMaxKeys) << "after " << i + 1 << " keys";
  }
  EXPECT_LE(rl.tracked_keys(), kMaxKeys);
  // The limiter still limits: the most recent key keeps its window.
  const std::string last = "key-99999";
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(rl.hit(last, kT0 + 1'000).allowed);
  EXPECT_FALSE(rl.hit(last, kT0 + 1'000).allowed);
}

TEST(MemoryRateLimiter, ExpiredWindowsAreSweptWhenAShardIsFull) {
  constexpr std::size_t kMaxKeys = 160;  // 10 per shard
  MemoryRateLimiter rl(1, 1'000, kMaxKeys);
  for (int i = 0; i < 10'000; ++i) rl.hit("old-" + std::to_string(i), kT0);
  ASSERT_EQ(rl.tracked_keys(), kMaxKeys);  // every shard is full
  // Later, every old window has expired: a new key in a full shard sweeps that shard's expired
  // windows instead of evicting just one.
  ASSERT_TRUE(rl.hit("abuser", kT0 + 5'000).allowed);
  EXPECT_EQ(rl.tracked_keys(), kMaxKeys - kMaxKeys / 16 + 1);
  EXPECT_FALSE(rl.hit("abuser", kT0 + 5'001).allowed);
}

TEST(MemoryRateLimiter, ConcurrentHitsOnOneKeyAllowExactlyMax) {
  constexpr std::uint32_t kMax = 500;
  constexpr int kThreads = 8;
  constexpr int kHitsPerThread = 1'000;
  MemoryRateLimiter rl(kMax, 60'000);
  std::atomic<int> allowed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kHitsPerThread; ++i)
        if (rl.hit("shared", kT0 + i % 1'000).allowed) ++allowed;
    });
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(allowed.load(), static_cast<int>(kMax));
  EXPECT_EQ(rl.tracked_keys(), 1u);
}

TEST(MemoryRateLimiter, ConcurrentDistinctKeysStayBounded) {
  constexpr std::size_t kMaxKeys = 320;
  MemoryRateLimiter rl(1, 60'000, kMaxKeys);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5'000; ++i)
        rl.hit("t" + std::to_string(t) + "-" + std::to_string(i), kT0);
    });
  for (auto& th : threads) th.join();
  EXPECT_LE(rl.tracked_keys(), kMaxKeys);
  EXPECT_GT(rl.tracked_keys(), 0u);
}

}  // namespace
}  // namespace chat::ratelimit
