#include "core/task_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <thread>

namespace chat {
namespace {

using namespace std::chrono_literals;

TEST(TaskPool, RunsTasksOnWorkerThreads) {
  // Promises outlive the pool (declared first): a worker may still be inside set_value() when
  // the waiting test thread wakes up.
  std::promise<std::thread::id> where;
  TaskPool pool(2, 16, "test");
  EXPECT_EQ(pool.capacity(), 16u);
  auto fut = where.get_future();
  ASSERT_TRUE(pool.post([&] { where.set_value(std::this_thread::get_id()); }));
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
  EXPECT_NE(fut.get(), std::this_thread::get_id());
}

TEST(TaskPool, WorkersRunConcurrently) {
  // Each task waits for the other: this only finishes if both run at the same time.
  std::promise<void> a_started, b_started;
  TaskPool pool(2, 16);
  auto a_seen = a_started.get_future().share();
  auto b_seen = b_started.get_future().share();
  std::atomic<int> met{0};
  ASSERT_TRUE(pool.post([&] {
    a_started.set_value();
    if (b_seen.wait_for(10s) == std::future_status::ready) ++met;
  }));
  ASSERT_TRUE(pool.post([&] {
    b_started.set_value();
    if (a_seen.wait_for(10s) == std::future_status::ready) ++met;
  }));
  pool.shutdown();
  EXPECT_EQ(met.load(), 2);
}

TEST(TaskPool, BoundedQueueRefusesWhenFull) {
  std::promise<void> started, release;
  TaskPool pool(1, 2);
  auto release_f = release.get_future().share();
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.post([&] {
    started.set_value();
    release_f.wait();
  }));
  // The only worker is now busy, so queued tasks stay queued.
  ASSERT_EQ(started.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(pool.queued(), 0u);
  EXPECT_TRUE(pool.post([&] { ++ran; }));
  EXPECT_TRUE(pool.post([&] { ++ran; }));
  EXPECT_EQ(pool.queued(), 2u);
  bool refused_ran = false;
  EXPECT_FALSE(pool.post([&] { refused_ran = true; }));
  EXPECT_FALSE(pool.post([&] { refused_ran = true; }));
  EXPECT_EQ(pool.queued(), 2u);

  release.set_value();
  pool.shutdown();
  EXPECT_EQ(ran.load(), 2);
  EXPECT_FALSE(refused_ran);
  EXPECT_EQ(pool.queued(), 0u);
}

TEST(TaskPool, AcceptsAgainOnceTheQueueDrains) {
  std::promise<void> started, release, second_done, third_done;
  TaskPool pool(1, 1);
  auto release_f = release.get_future().share();
  ASSERT_TRUE(pool.post([&] {
    started.set_value();
    release_f.wait();
  }));
  ASSERT_EQ(started.get_future().wait_for(10s), std::future_status::ready);
  ASSERT_TRUE(pool.post([&] { second_done.set_value(); }));
  EXPECT_FALSE(pool.post([] {}));
  release.set_value();
  ASSERT_EQ(second_done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(pool.post([&] { third_done.set_value(); }));
  EXPECT_EQ(third_done.get_future().wait_for(10s), std::future_status::ready);
}

TEST(TaskPool, ShutdownDrainsQueuedWork) {
  std::atomic<int> ran{0};
  TaskPool pool(2, 1000);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(pool.post([&] {
      std::this_thread::sleep_for(100us);
      ++ran;
    }));
  }
  pool.shutdown();
  EXPECT_EQ(ran.load(), 200);
  EXPECT_FALSE(pool.post([&] { ++ran; }));
  pool.shutdown();  // idempotent
  EXPECT_EQ(ran.load(), 200);
}

TEST(TaskPool, ShutdownWithADeadlineDropsWhatAHungTaskKeptWaiting) {
  // One worker stuck (a dependency that does not answer), 20 tasks behind it.
  std::atomic<int> ran{0};
  std::promise<void> release;
  auto release_f = release.get_future().share();
  TaskPool pool(1, 100);
  ASSERT_TRUE(pool.post([&] { release_f.wait_for(300ms); }));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(pool.post([&] { ++ran; }));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(pool.shutdown(50ms), 20u);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 2s) << "waited for the running task only";
  EXPECT_EQ(ran.load(), 0);
  EXPECT_FALSE(pool.post([&] { ++ran; }));

  // A pool that drains in time drops nothing.
  TaskPool quick(2, 100);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(quick.post([&] { ++ran; }));
  EXPECT_EQ(quick.shutdown(5s), 0u);
  EXPECT_EQ(ran.load(), 20);
}

TEST(TaskPool, DestructorDrainsQueuedWork) {
  std::atomic<int> ran{0};
  {
    std::promise<void> release;
    TaskPool pool(1, 100);
    auto release_f = release.get_future().share();
    ASSERT_TRUE(pool.post([&] {
      release_f.wait();
      ++ran;
    }));
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(pool.post([&] { ++ran; }));
    release.set_value();
  }
  EXPECT_EQ(ran.load(), 51);
}

TEST(TaskPool, ZeroThreadsStillRuns) {
  std::promise<void> done;
  TaskPool pool(0, 4);
  ASSERT_TRUE(pool.post([&] { done.set_value(); }));
  EXPECT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
}

TEST(TaskPool, ConcurrentPostersNeverExceedCapacity) {
  TaskPool pool(2, 64);
  std::atomic<int> accepted{0}, ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (pool.post([&] { ++ran; })) ++accepted;
        EXPECT_LE(pool.queued(), pool.capacity());
      }
    });
  }
  for (auto& p : posters) p.join();
  pool.shutdown();
  EXPECT_GT(accepted.load(), 0);
  EXPECT_EQ(ran.load(), accepted.load());
}

}  // namespace
}  // namespace chat
