#include "core/object_id.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace chat {
namespace {

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(ObjectId, IsObjectId) {
  EXPECT_TRUE(is_object_id("65f1a2b3c4d5e6f708192a3b"));
  EXPECT_TRUE(is_object_id("65F1A2B3C4D5E6F708192A3B"));
  EXPECT_TRUE(is_object_id("000000000000000000000000"));
  EXPECT_FALSE(is_object_id(""));
  EXPECT_FALSE(is_object_id("65f1a2b3c4d5e6f708192a3"));
  EXPECT_FALSE(is_object_id("65f1a2b3c4d5e6f708192a3b0"));
  EXPECT_FALSE(is_object_id("65f1a2b3c4d5e6f708192a3g"));
  EXPECT_FALSE(is_object_id("65f1a2b3c4d5e6f708192a3 "));
  EXPECT_FALSE(is_object_id(std::string_view("65f1a2b3c4d5e6f708192a3\0", 24)));
  EXPECT_FALSE(is_object_id("{\"$ne\":null}xxxxxxxxxxxx"));
}

TEST(ObjectId, NewIdsAre24LowercaseHexWithCurrentTime) {
  const auto before = now_seconds();
  const std::string id = new_object_id();
  const auto after = now_seconds();
  ASSERT_EQ(id.size(), 24u);
  EXPECT_TRUE(is_object_id(id));
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  EXPECT_GE(static_cast<std::int64_t>(object_id_seconds(id)), before);
  EXPECT_LE(static_cast<std::int64_t>(object_id_seconds(id)), after + 1);
}

TEST(ObjectId, MakeObjectIdLayout) {
  const std::string id = make_object_id(0x65f1a2b3u, 0x000102u);
  ASSERT_TRUE(is_object_id(id));
  EXPECT_EQ(id.substr(0, 8), "65f1a2b3");
  EXPECT_EQ(id.substr(18), "000102");
  EXPECT_EQ(object_id_seconds(id), 0x65f1a2b3u);
  // The counter keeps 3 bytes; the 5 process bytes in the middle are the same for every id.
  EXPECT_EQ(make_object_id(1, 0x1abcdef).substr(18), "abcdef");
  EXPECT_EQ(make_object_id(1, 0).substr(8, 10), new_object_id().substr(8, 10));
  EXPECT_EQ(object_id_seconds("FFFFFFFF0000000000000000"), 0xffffffffu);
  EXPECT_EQ(object_id_seconds("000000000000000000000000"), 0u);
}

TEST(ObjectId, StrictlyIncreasingAcross100kCalls) {
  std::string prev = new_object_id();
  for (int i = 0; i < 100000; ++i) {
    std::string next = new_object_id();
    ASSERT_LT(prev, next) << "call " << i;
    prev = std::move(next);
  }
}

TEST(ObjectId, UniqueAndIncreasingAcrossThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      ids[t].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) ids[t].push_back(new_object_id());
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : ids) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    EXPECT_EQ(std::adjacent_find(v.begin(), v.end()), v.end());
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace chat

TEST(StampedId, IdOrderAndTimeOrderAgreeAcrossThreads) {
  // Messages sort by _id; their createdAt must never go back in that order.
  std::vector<std::vector<chat::StampedId>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& out : per_thread)
    threads.emplace_back([&out] {
      for (int i = 0; i < 20000; ++i) out.push_back(chat::new_stamped_id());
    });
  for (auto& t : threads) t.join();
  std::vector<chat::StampedId> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (std::size_t i = 1; i < all.size(); ++i) {
    ASSERT_NE(all[i - 1].id, all[i].id);
    ASSERT_LE(all[i - 1].ms, all[i].ms) << "at " << i;
  }
}
