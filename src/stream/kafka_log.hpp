#pragma once
// The Kafka implementation of MessageLog (librdkafka), and the helpers chat-worker shares with it.
// Only apps/ include this header; librdkafka's headers stay in the .cpp.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "stream/message_log.hpp"

namespace chat::metrics {
class Registry;
}

namespace chat::stream {

struct KafkaOptions {
  std::string brokers;  ///< bootstrap.servers, "host:port,host:port"
  std::string topic = "chat-messages";
  std::string username;  ///< non-empty: SASL_PLAINTEXT with mechanism PLAIN
  std::string password;
  std::string client_id = "chatd";
  int partitions = 6;          ///< when the topic has to be created
  int replication_factor = 1;  ///< when the topic has to be created
  std::chrono::milliseconds linger{1};
  /// message.timeout.ms: an append not acknowledged within this fails with unavailable.
  std::chrono::milliseconds delivery_timeout{15000};
  std::size_t max_queued = 100000;  ///< queue.buffering.max.messages: beyond, appends fail at once
  metrics::Registry* metrics = nullptr;  ///< must outlive the log; nullptr: no metrics
  /// Scheduler time slice the delivery thread (acks and fan-out) asks for (request_time_slice in
  /// core/sched.hpp); 0: the kernel's default.
  std::chrono::microseconds thread_slice{0};
};

/// The librdkafka properties every client of these brokers needs: bootstrap.servers, client.id
/// and, when a username is set, security.protocol=SASL_PLAINTEXT, sasl.mechanism=PLAIN,
/// sasl.username, sasl.password.
std::vector<std::pair<std::string, std::string>> client_properties(const KafkaOptions& options);

/// Creates `topic` with `partitions` partitions (replication `replication_factor`) unless it
/// exists. Blocking, bounded by `timeout`. Errors: unavailable (no broker answered, timeout),
/// invalid_argument (the broker rejected the request, e.g. bad partition count), internal.
result<void> ensure_topic(const KafkaOptions& options, const std::string& topic, int partitions,
                          int replication_factor = 1,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

/// An idempotent producer (enable.idempotence, acks=all) keyed by conversation id. Ensures
/// options.topic exists first (blocking, up to 10 s). A dedicated thread serves delivery reports
/// and runs every `done`. Destruction waits (up to min(delivery_timeout, 10 s)) for records in
/// flight, then fails what remains with unavailable.
/// Metrics: chat_kafka_produce_duration_seconds (append → ack), chat_kafka_produce_errors_total,
/// chat_kafka_queue_messages.
/// Errors: invalid_argument (bad configuration, e.g. empty brokers), unavailable (the topic
/// could not be checked or created: no broker reachable).
result<std::unique_ptr<MessageLog>> make_kafka_log(const KafkaOptions& options);

}  // namespace chat::stream
