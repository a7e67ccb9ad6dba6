#include "store/pending_index.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <vector>

#include "store/store.hpp"

namespace chat::store {
namespace {

// Entries are found only through their own hash, whatever slot they landed in.
bool has(const PendingIndex& idx, std::uint64_t h, const Message* m) {
  return idx.find(h, [&](const Message& p) { return &p == m; }) == m;
}

TEST(PendingIndex, FindsByHashAndPredicateAmongCollisions) {
  PendingIndex idx;
  std::vector<Message> msgs(3);
  msgs[0].id = "a";
  msgs[1].id = "b";
  msgs[2].id = "c";
  for (auto& m : msgs) idx.insert(42, &m);  // one hash for all three
  EXPECT_EQ(idx.size(), 3u);
  EXPECT_EQ(idx.find(42, [](const Message& p) { return p.id == "b"; }), &msgs[1]);
  EXPECT_EQ(idx.find(42, [](const Message& p) { return p.id == "z"; }), nullptr);
  EXPECT_EQ(idx.find(43, [](const Message&) { return true; }), nullptr);
  EXPECT_TRUE(idx.erase(42, &msgs[1]));
  EXPECT_FALSE(idx.erase(42, &msgs[1]));  // only once
  EXPECT_FALSE(idx.erase(7, &msgs[0]));   // the hash is part of the entry
  EXPECT_EQ(idx.find(42, [](const Message& p) { return p.id == "b"; }), nullptr);
  EXPECT_TRUE(has(idx, 42, &msgs[0]));
  EXPECT_TRUE(has(idx, 42, &msgs[2]));
  EXPECT_EQ(idx.size(), 2u);
}

TEST(PendingIndex, ErasingKeepsProbeRunsThatWrapAroundTheEndReachable) {
  PendingIndex idx(16);
  ASSERT_EQ(idx.capacity(), 16u);
  std::vector<Message> msgs(6);
  // Home slots 14, 14, 15, 15, 0, 14: the run wraps from slot 14 over 15 into 0, 1, 2, 3.
  const std::uint64_t hashes[] = {14, 30, 15, 31, 16, 46};
  for (int i = 0; i < 6; ++i) idx.insert(hashes[i], &msgs[i]);
  ASSERT_EQ(idx.capacity(), 16u);  // no growth: 6 ≤ 0.7 × 16
  // Removing entries at the start of the run shifts the later ones back across the end.
  EXPECT_TRUE(idx.erase(14, &msgs[0]));
  EXPECT_TRUE(idx.erase(15, &msgs[2]));
  for (int i : {1, 3, 4, 5}) EXPECT_TRUE(has(idx, hashes[i], &msgs[i])) << i;
  EXPECT_TRUE(idx.erase(16, &msgs[4]));
  for (int i : {1, 3, 5}) EXPECT_TRUE(has(idx, hashes[i], &msgs[i])) << i;
  EXPECT_EQ(idx.size(), 3u);
}

// The journal's use: entries inserted in arrival order, erased oldest first (and sometimes the
// newest, when a batch fails), with many hashes shared; checked against std::multimap.
TEST(PendingIndex, AgreesWithAMultimapUnderTheJournalsPattern) {
  std::mt19937_64 rng(7);
  std::deque<Message> msgs;  // stable addresses
  std::deque<std::pair<std::uint64_t, const Message*>> fifo;
  std::multimap<std::uint64_t, const Message*> model;
  PendingIndex idx(16);
  auto erase_model = [&](std::uint64_t h, const Message* m) {
    for (auto [it, end] = model.equal_range(h); it != end; ++it)
      if (it->second == m) return model.erase(it), void();
  };
  for (int round = 0; round < 60'000; ++round) {
    const auto r = rng() % 10;
    if (r < 6 || fifo.empty()) {
      // Small hash range: long runs and frequent collisions; sometimes a full 64-bit hash.
      const std::uint64_t h = (rng() % 4 == 0) ? rng() : rng() % 5'000;
      msgs.emplace_back();
      idx.insert(h, &msgs.back());
      model.emplace(h, &msgs.back());
      fifo.emplace_back(h, &msgs.back());
    } else if (r < 9) {
      auto [h, m] = fifo.front();
      fifo.pop_front();
      ASSERT_TRUE(idx.erase(h, m));
      erase_model(h, m);
    } else {
      auto [h, m] = fifo.back();
      fifo.pop_back();
      ASSERT_TRUE(idx.erase(h, m));
      erase_model(h, m);
    }
    ASSERT_EQ(idx.size(), model.size());
    if (round % 4999 == 0) {
      for (const auto& [h, m] : model) ASSERT_TRUE(has(idx, h, m)) << round;
    }
  }
  EXPECT_GT(idx.capacity(), 16u);  // it grew
  for (const auto& [h, m] : fifo) EXPECT_TRUE(idx.erase(h, m));
  EXPECT_EQ(idx.size(), 0u);
  EXPECT_EQ(idx.find(0, [](const Message&) { return true; }), nullptr);
}

}  // namespace
}  // namespace chat::store
