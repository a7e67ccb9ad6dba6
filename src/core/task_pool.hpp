#pragma once
// A fixed pool of threads for blocking work (store queries, password hashing) so that I/O threads
// never block. The queue is bounded: post() refuses work when it is full, and the caller answers
// "503 busy" instead of letting memory grow.
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace chat {

class TaskPool {
 public:
  /// Starts `threads` workers; `max_queued` bounds the tasks waiting for a worker.
  TaskPool(std::size_t threads, std::size_t max_queued, std::string name = "pool");
  ~TaskPool();  ///< Runs every task already queued, then joins.
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  /// Thread-safe. Returns false (and does not run `task`) when the queue is full or stopped.
  bool post(std::function<void()> task);
  /// Stops accepting work, finishes what is queued, joins. Idempotent.
  void shutdown();
  /// Stops accepting work and lets the workers take queued tasks for up to `drain`; tasks still
  /// queued then are dropped without running (a hung dependency must not hold a shutdown for
  /// minutes: every queued task would wait out its own timeout). Returns how many were dropped.
  /// Tasks already running are waited for. Idempotent.
  std::size_t shutdown(std::chrono::milliseconds drain);
  std::size_t queued() const;
  std::size_t capacity() const noexcept { return max_queued_; }

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  std::size_t max_queued_;
  bool stopping_ = false;
};

}  // namespace chat
