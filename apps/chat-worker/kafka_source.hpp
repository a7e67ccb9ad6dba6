#pragma once
// The librdkafka side of chat-worker: the group consumer (RecordSource) and the dead-letter
// producer (DeadLetterSink).
#include <chrono>
#include <memory>
#include <string>

#include "stream/kafka_log.hpp"
#include "worker.hpp"

namespace chat::worker {

struct ConsumerOptions {
  stream::KafkaOptions kafka;  ///< brokers, topic, SASL, client_id
  std::string group = "chat-worker";
  std::chrono::milliseconds session_timeout{10000};
};

/// A member of consumer group `group` reading `kafka.topic`: no auto-commit, no auto offset
/// store, earliest offset when the group has none, eager rebalancing. Used from one thread,
/// except lag(), which reads a value a background thread refreshes every second.
class KafkaSource final : public RecordSource {
 public:
  /// Errors: invalid_argument (configuration), unavailable.
  static result<std::unique_ptr<KafkaSource>> open(const ConsumerOptions& options);
  ~KafkaSource() override;

  std::vector<Record> poll(std::chrono::milliseconds timeout, std::size_t max) override;
  std::vector<TopicPartition> take_revoked() override;
  void pause() override;
  void resume() override;
  result<void> commit(const std::map<TopicPartition, std::int64_t>& next) override;
  std::int64_t lag() override;
  /// Leaves the group (its partitions go to the other members at once). Idempotent; the
  /// destructor calls it.
  void close();

  struct Impl;

 private:
  explicit KafkaSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// An idempotent producer (acks=all) to the dead-letter topic: each record keeps its key and
/// value and gets the headers dlq.error, dlq.source.topic, dlq.source.partition,
/// dlq.source.offset. dead_letter() blocks until every record is acknowledged, bounded by
/// kafka.delivery_timeout (+ a margin).
class KafkaDeadLetters final : public DeadLetterSink {
 public:
  static result<std::unique_ptr<KafkaDeadLetters>> open(const stream::KafkaOptions& kafka,
                                                         const std::string& topic);
  ~KafkaDeadLetters() override;
  result<void> dead_letter(const std::vector<DeadLetter>& records) override;

  struct Impl;

 private:
  explicit KafkaDeadLetters(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::worker
