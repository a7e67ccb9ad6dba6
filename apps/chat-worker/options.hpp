#pragma once
// chat-worker's configuration: defaults in code, the environment, then flags (flags > env).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "core/result.hpp"

namespace chat::worker {

struct WorkerConfig {
  std::string brokers;                  ///< KAFKA_BROKERS (required)
  std::string topic = "chat-messages";  ///< KAFKA_TOPIC
  std::string group = "chat-worker";    ///< KAFKA_GROUP
  std::string dlq_topic;                ///< KAFKA_DLQ_TOPIC; default "<topic>.dlq"
  std::string username;                 ///< KAFKA_USERNAME: SASL/PLAIN when set
  std::string password;                 ///< KAFKA_PASSWORD
  int partitions = 6;                   ///< KAFKA_PARTITIONS: when the topics are created
  std::string mongodb_uri;              ///< MONGODB_URI (required)
  std::string metrics_host = "0.0.0.0";
  std::uint16_t metrics_port = 9400;  ///< 0: any free port (logged)
  std::size_t batch_max = 500;
  std::int64_t batch_wait_ms = 20;
  std::string log_level = "info";
};

struct LoadedWorkerConfig {
  WorkerConfig config;
  bool help = false;
};

/// Flags are `--name value` or `--name=value`. Errors (invalid_argument) name the setting:
/// "invalid value for --batch-max/BATCH_MAX: '0' (expected an integer in 1..100000)".
/// KAFKA_BROKERS and MONGODB_URI are required (unless --help).
result<LoadedWorkerConfig> load_worker_config(int argc, const char* const* argv,
                                              const std::map<std::string, std::string>& env);
std::string worker_help_text();

}  // namespace chat::worker
