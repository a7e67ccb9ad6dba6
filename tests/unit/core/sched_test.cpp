#include "core/sched.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <thread>

namespace chat {
namespace {

using std::chrono::microseconds;

/// Runs `fn` on a thread of its own, so that nothing it sets outlives the test.
template <class Fn>
void on_new_thread(Fn fn) {
  std::thread t(fn);
  t.join();
}

TEST(SchedTest, ASliceIsSetAndReadBackKeepingTheNiceValue) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  on_new_thread([] {
    const auto default_slice = current_time_slice();
    ASSERT_NE(default_slice, microseconds(250));
    ASSERT_EQ(::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 7), 0);
    EXPECT_EQ(request_time_slice(microseconds(250)), microseconds(250));
    EXPECT_EQ(current_time_slice(), microseconds(250));
    errno = 0;
    EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid())), 7) << "the nice value was reset";
    EXPECT_EQ(errno, 0);
  });
}

TEST(SchedTest, TheKernelClampsTooShortASlice) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  on_new_thread([] { EXPECT_EQ(request_time_slice(microseconds(10)), microseconds(100)); });
}

// A new thread starts with its creator's slice; zero (or less) asks for the kernel's default.
TEST(SchedTest, AThreadInheritsItsCreatorsSliceAndZeroDropsIt) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  on_new_thread([] {
    ASSERT_EQ(request_time_slice(microseconds(250)), microseconds(250));
    on_new_thread([] {
      EXPECT_EQ(current_time_slice(), microseconds(250)) << "not inherited";
      const auto kernels = request_time_slice(microseconds(0));
      EXPECT_GT(kernels, microseconds(0));
      EXPECT_NE(kernels, microseconds(250)) << "the inherited slice was kept";
      EXPECT_EQ(current_time_slice(), kernels);
      ASSERT_EQ(request_time_slice(microseconds(250)), microseconds(250));
      EXPECT_EQ(default_time_slice(), kernels);
      EXPECT_EQ(current_time_slice(), microseconds(250)) << "default_time_slice changed the caller's";
      EXPECT_EQ(request_time_slice(microseconds(-5)), kernels);
    });
  });
}

TEST(SchedTest, SliceSettingsWithinTheKernelsRange) {
  EXPECT_EQ(parse_time_slice("100us"), microseconds(100));
  EXPECT_EQ(parse_time_slice("750us"), microseconds(750));
  EXPECT_EQ(parse_time_slice("3ms"), microseconds(3000));
  EXPECT_EQ(parse_time_slice("100ms"), microseconds(100'000));
  EXPECT_EQ(parse_time_slice("0"), microseconds(0));
  EXPECT_EQ(parse_time_slice("off"), microseconds(0));
  for (const char* bad : {"99us", "101ms", "100001us", "1s", "100", "", "us", "-1ms", "1.5ms", " 1ms", "0ms"})
    EXPECT_FALSE(parse_time_slice(bad)) << bad;
}

}  // namespace
}  // namespace chat
