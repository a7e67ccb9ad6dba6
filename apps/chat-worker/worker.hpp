#pragma once
// chat-worker's core, free of librdkafka and of any database: it batches records from a
// RecordSource, dead-letters the poison ones, writes the rest through a MessageSink and commits
// offsets only after both succeeded. Kafka and MongoDB implementations are wired in main.cpp;
// tests use fakes.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "metrics/metrics.hpp"
#include "store/store.hpp"

namespace chat::worker {

struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

struct Record {
  TopicPartition tp;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
};

/// A record that could not be decoded, with the reason (decode_record's message).
struct DeadLetter {
  Record record;
  std::string reason;
};

/// The consumer side of the stream. Used from the worker's thread only.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  /// Blocks up to `timeout` for the first record, then returns what is at hand, at most `max`
  /// (possibly none). Serves group events too, so call it regularly even while paused.
  virtual std::vector<Record> poll(std::chrono::milliseconds timeout, std::size_t max) = 0;
  /// Partitions taken away (rebalance) during the last poll(). Records of these partitions that
  /// the worker received in earlier poll() calls must be dropped: they will be read again by
  /// whoever gets the partition, from its committed offset. Records returned by the last poll()
  /// itself are already filtered (only those read after a re-assignment are returned).
  virtual std::vector<TopicPartition> take_revoked() = 0;
  /// Stops / restarts fetching from every assigned partition (and from partitions assigned
  /// while paused). poll() keeps serving group events.
  virtual void pause() = 0;
  virtual void resume() = 0;
  /// Synchronous commit: `next` is the offset of the next record to read, per partition.
  virtual result<void> commit(const std::map<TopicPartition, std::int64_t>& next) = 0;
  /// Messages behind (sum over assigned partitions of high watermark − position); -1 unknown.
  virtual std::int64_t lag() { return -1; }
};

/// Where poison records go. Blocking until every record is acknowledged (ok) or one failed.
class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  virtual result<void> dead_letter(const std::vector<DeadLetter>& records) = 0;
};

/// The database. write() must be idempotent (an upsert by message _id): after a crash or a
/// rebalance the same messages are written again. Blocking.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual result<void> write(const std::vector<store::Message>& batch) = 0;
};

struct WorkerOptions {
  std::size_t batch_max = 500;
  std::chrono::milliseconds batch_wait{20};  ///< after the first record of a batch
  std::chrono::milliseconds poll_timeout{200};  ///< waiting for a first record
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::milliseconds lag_interval{1000};
};

/// Thread-safety: run()/run_once() from one thread; stop() from any thread.
class Worker {
 public:
  /// The metrics (chat_worker_*) are registered in `registry`, which must outlive the worker.
  Worker(RecordSource& source, DeadLetterSink& dead_letters, MessageSink& sink,
         metrics::Registry& registry, WorkerOptions options = {});

  /// Runs batches until stop(); the batch in progress is finished (written and committed)
  /// unless the sink keeps failing, in which case it is left uncommitted. The caller then closes
  /// the source.
  void run();
  /// One batch: gathers records (up to batch_max / batch_wait), dead-letters, writes, commits.
  /// Returns false when nothing was consumed. Retries failures with backoff until they succeed,
  /// the records' partitions are revoked, or stop() is called.
  bool run_once();
  void stop() noexcept { stop_.store(true); }
  bool stopping() const noexcept { return stop_.load(); }

  struct Counts {
    std::uint64_t consumed = 0, written = 0, dead_letters = 0, db_errors = 0, commits = 0,
                  commit_errors = 0, dropped_on_revoke = 0;
  };
  Counts counts() const;

 private:
  void gather();
  /// poll() + take_revoked(): drops the held records (batch_ and carry_) of revoked
  /// partitions, then appends the new ones to `dst` (batch_ or carry_).
  void poll_into(std::vector<Record>& dst, std::chrono::milliseconds timeout, std::size_t max);
  /// Retries `step` with backoff while the source is paused; false when given up (stop, or the
  /// batch was revoked).
  template <class Step>
  bool with_retry(const char* what, Step step);
  void refresh_lag();

  RecordSource& source_;
  DeadLetterSink& dead_letters_;
  MessageSink& sink_;
  WorkerOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<Record> batch_;  // the batch in progress
  std::vector<Record> carry_;  // consumed while a batch was in retry: the next batch's start
  // Messages per database bulk write: halved after a failed write (a bulk that outlasts the
  // driver's socket timeout would otherwise be retried whole forever), doubled back up to
  // batch_max after each fully written batch.
  std::size_t write_chunk_ = 0;
  std::chrono::steady_clock::time_point next_lag_{};

  metrics::Counter consumed_, written_, dead_letters_total_, db_errors_, dead_letter_errors_,
      commit_errors_;
  metrics::Histogram db_duration_, batch_size_;
  metrics::Gauge lag_;
  std::atomic<std::uint64_t> n_consumed_{0}, n_written_{0}, n_dead_{0}, n_db_errors_{0},
      n_commits_{0}, n_commit_errors_{0}, n_dropped_{0};
};

}  // namespace chat::worker
