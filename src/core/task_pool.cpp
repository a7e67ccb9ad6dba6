#include "core/task_pool.hpp"

#include <pthread.h>

namespace chat {

TaskPool::TaskPool(std::size_t threads, std::size_t max_queued, std::string name)
    : max_queued_(max_queued) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { run(); });
    pthread_setname_np(threads_.back().native_handle(), name.substr(0, 15).c_str());
  }
}

TaskPool::~TaskPool() { shutdown(); }

bool TaskPool::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || tasks_.size() >= max_queued_) return false;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

std::size_t TaskPool::shutdown(std::chrono::milliseconds drain) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + drain;
  std::deque<std::function<void()>> dropped;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (tasks_.empty()) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        dropped.swap(tasks_);
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::size_t n = dropped.size();
  dropped.clear();  // outside the lock: a task's captures may post or log on destruction
  shutdown();
  return n;
}

void TaskPool::shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

std::size_t TaskPool::queued() const {
  std::lock_guard lock(mu_);
  return tasks_.size();
}

void TaskPool::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace chat
