#include "store/key_filter.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace chat::store {
namespace {

std::string sender(int i) { return "sender-" + std::to_string(i % 97); }
std::string key(int i) { return "client-msg-" + std::to_string(i); }

double false_positive_rate(const KeyFilter& f, int first, int count) {
  int hits = 0;
  for (int i = first; i < first + count; ++i) hits += f.may_contain(sender(i), key(i)) ? 1 : 0;
  return static_cast<double>(hits) / count;
}

TEST(KeyFilter, NeverForgetsAKeyAndRarelyClaimsOthers) {
  KeyFilter f(100'000);
  for (int i = 0; i < 100'000; ++i) f.add(sender(i), key(i));
  for (int i = 0; i < 100'000; ++i) ASSERT_TRUE(f.may_contain(sender(i), key(i))) << i;
  EXPECT_EQ(f.size(), 100'000u);
  EXPECT_EQ(f.layers(), 1u);
  EXPECT_LT(false_positive_rate(f, 1'000'000, 100'000), 0.02);
  // The pair is the key, not either half.
  EXPECT_LT(false_positive_rate(f, 100'000, 100'000), 0.02);
}

TEST(KeyFilter, GrowsByLayersKeepingItsPromises) {
  KeyFilter f(1024);
  for (int i = 0; i < 60'000; ++i) f.add(sender(i), key(i));
  for (int i = 0; i < 60'000; ++i) ASSERT_TRUE(f.may_contain(sender(i), key(i))) << i;
  EXPECT_GT(f.layers(), 5u);  // 1024, 2048, … 32768
  // Each layer keeps ~1% at its capacity, so the sum stays small.
  EXPECT_LT(false_positive_rate(f, 1'000'000, 100'000), 0.08);
  EXPECT_GT(f.memory_bytes(), 60'000u);
  EXPECT_LT(f.memory_bytes(), 60'000u * 4);
}

// The bulk load of open(): the same promises as add(), across layer growth too.
TEST(KeyFilter, AddAllKeepsEveryKey) {
  KeyFilter f(1024);
  std::vector<KeyFilter::Hashes> hashes;
  for (int i = 0; i < 60'000; ++i) hashes.push_back(KeyFilter::hash(sender(i), key(i)));
  f.add_all(hashes.data(), hashes.size());
  EXPECT_EQ(f.size(), 60'000u);
  EXPECT_GT(f.layers(), 5u);
  for (int i = 0; i < 60'000; ++i) ASSERT_TRUE(f.may_contain(sender(i), key(i))) << i;
  EXPECT_LT(false_positive_rate(f, 1'000'000, 100'000), 0.08);
  f.add_all(nullptr, 0);
  EXPECT_EQ(f.size(), 60'000u);
}

TEST(KeyFilter, EmptyFilterContainsNothing) {
  KeyFilter f;
  EXPECT_FALSE(f.may_contain("a", "b"));
  EXPECT_FALSE(f.may_contain("", ""));
  f.add("", "");
  EXPECT_TRUE(f.may_contain("", ""));
}

}  // namespace
}  // namespace chat::store
