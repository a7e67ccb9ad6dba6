#include "store/huge_array.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

namespace chat::store {
namespace {

struct Slot {
  std::uint64_t hash;
  const void* p;
};

bool all_zero(const HugeArray<Slot>& a) {
  return std::all_of(a.begin(), a.end(), [](const Slot& s) { return s.hash == 0 && !s.p; });
}

TEST(HugeArrayTest, StartsZeroedAndHoldsWhatIsWritten) {
  HugeArray<Slot> small(100);
  ASSERT_EQ(small.size(), 100u);
  EXPECT_TRUE(all_zero(small));
  small[99] = Slot{7, &small};
  EXPECT_EQ(small[99].hash, 7u);
  EXPECT_EQ(small.end() - small.begin(), 100);
}

// The kernel backs only 2 MiB-aligned ranges with huge pages: a large array must start on a
// boundary and span whole huge pages, or it gets none (the store's 2 MiB Bloom filter layer,
// mapped at an arbitrary address, had none).
TEST(HugeArrayTest, LargeArraysStartOnAHugePageBoundaryAndSpanWholeHugePages) {
  constexpr std::size_t kHuge = HugePageMemory::kHugePage;
  HugeArray<Slot> large(kHuge / sizeof(Slot) + 1);  // a little over 2 MiB
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(large.data()) % kHuge, 0u);
  EXPECT_EQ(large.memory_bytes(), 2 * kHuge);
  EXPECT_TRUE(all_zero(large));
  large[large.size() - 1].hash = 1;  // the whole range is writable
  HugeArray<std::uint64_t> exact(kHuge / sizeof(std::uint64_t));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(exact.data()) % kHuge, 0u);
  EXPECT_EQ(exact.memory_bytes(), kHuge);
  // Asked for huge pages (the mapping's VmFlags show "hg"; whether THP then backs it is the
  // kernel's choice).
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool found = false, advised = false;
  char buf[32];
  const auto at = static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(exact.data()));
  std::snprintf(buf, sizeof buf, "%lx-", at);
  while (std::getline(smaps, line)) {
    if (line.rfind(buf, 0) == 0) found = true;
    else if (found && line.rfind("VmFlags:", 0) == 0) {
      advised = line.find(" hg") != std::string::npos;
      break;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(advised);
}

TEST(HugeArrayTest, MovesAndSwapsTransferTheMemory) {
  HugeArray<Slot> a(10);
  a[3].hash = 3;
  const Slot* where = a.data();
  HugeArray<Slot> b(std::move(a));
  EXPECT_EQ(b.data(), where);
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
  HugeArray<Slot> c(20);
  c.swap(b);
  EXPECT_EQ(c.data(), where);
  EXPECT_EQ(c[3].hash, 3u);
  EXPECT_EQ(b.size(), 20u);
  b = std::move(c);
  EXPECT_EQ(b.data(), where);
}

}  // namespace
}  // namespace chat::store
