#include "worker.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include "core/log.hpp"
#include "stream/message_log.hpp"

namespace chat::worker {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

Worker::Worker(RecordSource& source, DeadLetterSink& dead_letters, MessageSink& sink,
               metrics::Registry& registry, WorkerOptions options)
    : source_(source), dead_letters_(dead_letters), sink_(sink), options_(options) {
  if (options_.batch_max == 0) options_.batch_max = 1;
  write_chunk_ = options_.batch_max;
  consumed_ = registry.counter("chat_worker_consumed_total", "Records read from the stream");
  written_ = registry.counter("chat_worker_written_total", "Messages written to the database");
  dead_letters_total_ = registry.counter("chat_worker_dead_letters_total",
                                         "Poison records sent to the dead-letter topic");
  db_errors_ = registry.counter("chat_worker_db_errors_total", "Failed database batch writes");
  dead_letter_errors_ = registry.counter("chat_worker_dead_letter_errors_total",
                                         "Failed attempts to produce to the dead-letter topic");
  commit_errors_ = registry.counter("chat_worker_commit_errors_total",
                                    "Offset commits that failed (the records are read again)");
  db_duration_ = registry.histogram("chat_worker_db_write_duration_seconds",
                                    "Duration of one database batch write",
                                    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  batch_size_ = registry.histogram("chat_worker_batch_size", "Records per batch",
                                   {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500});
  lag_ = registry.gauge("chat_worker_consumer_lag_messages",
                        "Records not yet consumed, summed over the assigned partitions");
}

Worker::Counts Worker::counts() const {
  return {n_consumed_.load(), n_written_.load(), n_dead_.load(), n_db_errors_.load(),
          n_commits_.load(), n_commit_errors_.load(), n_dropped_.load()};
}

void Worker::run() {
  while (!stop_.load()) run_once();
}

void Worker::refresh_lag() {
  auto now = Clock::now();
  if (now < next_lag_) return;
  next_lag_ = now + options_.lag_interval;
  if (auto l = source_.lag(); l >= 0) lag_.set(static_cast<double>(l));
}

void Worker::poll_into(std::vector<Record>& dst, milliseconds timeout, std::size_t max) {
  auto records = source_.poll(std::max(timeout, milliseconds(0)), max);
  if (auto revoked = source_.take_revoked(); !revoked.empty()) {
    std::set<TopicPartition> gone(revoked.begin(), revoked.end());
    auto is_gone = [&](const Record& r) { return gone.contains(r.tp); };
    // Safe to forget: nothing of these records was committed, and the database write is an
    // idempotent upsert, so the partition's next owner may write them again.
    std::size_t before = batch_.size() + carry_.size();
    std::erase_if(batch_, is_gone);
    std::erase_if(carry_, is_gone);
    if (std::size_t dropped = before - batch_.size() - carry_.size()) {
      n_dropped_ += dropped;
      spdlog::info("chat-worker: {} partition(s) revoked, dropped {} uncommitted record(s)",
                   revoked.size(), dropped);
    }
  }
  consumed_.inc(static_cast<double>(records.size()));
  n_consumed_ += records.size();
  dst.insert(dst.end(), std::make_move_iterator(records.begin()),
              std::make_move_iterator(records.end()));
}

void Worker::gather() {
  auto& batch = batch_;
  // Records consumed during a previous batch's retries come first (they are older).
  if (!carry_.empty()) {
    std::size_t n = std::min(carry_.size(), options_.batch_max);
    batch.assign(std::make_move_iterator(carry_.begin()),
                 std::make_move_iterator(carry_.begin() + static_cast<std::ptrdiff_t>(n)));
    carry_.erase(carry_.begin(), carry_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (batch.empty()) poll_into(batch, options_.poll_timeout, options_.batch_max);
  if (batch.empty()) return;
  auto deadline = Clock::now() + options_.batch_wait;
  while (batch.size() < options_.batch_max && !stop_.load()) {
    auto now = Clock::now();
    if (now >= deadline) break;
    poll_into(batch, std::chrono::ceil<milliseconds>(deadline - now), options_.batch_max - batch.size());
  }
}

template <class Step>
bool Worker::with_retry(const char* what, Step step) {
  auto& batch = batch_;
  milliseconds backoff = options_.backoff_min;
  bool paused = false;
  int attempts = 0;
  auto unpause = [&] {
    if (paused) source_.resume();
  };
  for (;;) {
    if (batch.empty()) {  // every record revoked: nothing left to do for this batch
      unpause();
      return false;
    }
    ++attempts;
    result<void> r = step();
    if (r) {
      if (attempts > 1) spdlog::info("chat-worker: {} succeeded after {} attempts", what, attempts);
      unpause();
      return true;
    }
    if (stop_.load()) {
      spdlog::warn("chat-worker: stopping with an uncommitted batch of {} record(s) ({} failed: {})",
                   batch.size(), what, r.err().message);
      unpause();
      return false;
    }
    spdlog::warn("chat-worker: {} failed (attempt {}): {}; retrying in {} ms", what, attempts,
                 r.err().message, backoff.count());
    if (!paused) {
      // Stop fetching (memory stays bounded) but keep polling, so the group membership and
      // rebalances stay alive while the database is down.
      source_.pause();
      paused = true;
    }
    auto deadline = Clock::now() + backoff;
    while (!stop_.load() && !batch.empty()) {
      auto now = Clock::now();
      if (now >= deadline) break;
      poll_into(carry_, std::min(std::chrono::ceil<milliseconds>(deadline - now), milliseconds(100)),
                options_.batch_max);
      refresh_lag();
    }
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

bool Worker::run_once() {
  refresh_lag();
  batch_.clear();
  gather();
  const auto& batch = batch_;
  if (batch.empty()) return false;
  batch_size_.observe(static_cast<double>(batch.size()));

  // Poison records first: once they are in the dead-letter topic the batch's offsets may be
  // committed. Done once per batch even if the database write is retried afterwards.
  bool ok = with_retry("dead-letter produce", [&]() -> result<void> {
    std::vector<DeadLetter> poison;
    for (const auto& rec : batch)
      if (auto m = stream::decode_record(rec.value); !m) poison.push_back({rec, m.err().message});
    if (poison.empty()) return {};
    auto r = dead_letters_.dead_letter(poison);
    if (!r) {
      dead_letter_errors_.inc();
      return r;
    }
    for (const auto& p : poison)
      spdlog::warn("chat-worker: dead-lettered {}[{}]@{}: {}", p.record.tp.topic, p.record.tp.partition,
                   p.record.offset, p.reason);
    dead_letters_total_.inc(static_cast<double>(poison.size()));
    n_dead_ += poison.size();
    return {};
  });
  if (!ok) return true;

  std::vector<store::Message> good;
  good.reserve(batch.size());
  std::size_t done = 0;  // messages of `good` already written (kept across retries)
  std::size_t decoded_from = 0;  // batch size `good` was decoded from (a revoke shrinks it)
  ok = with_retry("database write", [&]() -> result<void> {
    if (decoded_from != batch.size()) {
      good.clear();
      done = 0;  // rewriting is harmless: inserts by _id
      for (const auto& rec : batch)
        if (auto m = stream::decode_record(rec.value)) good.push_back(std::move(m.value()));
      decoded_from = batch.size();
    }
    while (done < good.size()) {
      const std::size_t n = std::min(write_chunk_, good.size() - done);
      std::vector<store::Message> chunk(good.begin() + static_cast<std::ptrdiff_t>(done),
                                        good.begin() + static_cast<std::ptrdiff_t>(done + n));
      auto t0 = Clock::now();
      auto r = sink_.write(chunk);
      db_duration_.observe(std::chrono::duration<double>(Clock::now() - t0).count());
      if (!r) {
        db_errors_.inc();
        ++n_db_errors_;
        write_chunk_ = std::max<std::size_t>(1, write_chunk_ / 2);
        return r;
      }
      done += n;
    }
    return {};
  });
  const std::size_t good_count = good.size();
  if (ok) write_chunk_ = std::min(options_.batch_max, write_chunk_ * 2);
  if (!ok) return true;
  written_.inc(static_cast<double>(good_count));
  n_written_ += good_count;

  std::map<TopicPartition, std::int64_t> next;
  for (const auto& rec : batch) {
    auto& n = next[rec.tp];
    n = std::max(n, rec.offset + 1);
  }
  if (auto r = source_.commit(next); !r) {
    // Not retried: the records are read again (after a rebalance or restart) and written again
    // by the idempotent upsert, and the next batch's commit covers these offsets anyway.
    commit_errors_.inc();
    ++n_commit_errors_;
    spdlog::warn("chat-worker: offset commit failed: {}", r.err().message);
  } else {
    ++n_commits_;
  }
  return true;
}

}  // namespace chat::worker
