#include "options.hpp"

#include <charconv>
#include <functional>
#include <optional>
#include <vector>

#include "config/settings.hpp"

namespace chat::worker {
namespace {

using Setting = config::Setting<WorkerConfig>;
using config::integer;

config::Setter<WorkerConfig> text(std::string WorkerConfig::*field) {
  return config::text<WorkerConfig>(field, false);
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> s{
      {"kafka-brokers", "KAFKA_BROKERS", "HOST:PORT[,...]", "Kafka bootstrap servers (required)",
       text(&WorkerConfig::brokers)},
      {"kafka-topic", "KAFKA_TOPIC", "NAME", "topic of the messages (default chat-messages)",
       text(&WorkerConfig::topic)},
      {"kafka-group", "KAFKA_GROUP", "NAME", "consumer group (default chat-worker)",
       text(&WorkerConfig::group)},
      {"kafka-dlq-topic", "KAFKA_DLQ_TOPIC", "NAME",
       "dead-letter topic for records that cannot be decoded (default <topic>.dlq)",
       text(&WorkerConfig::dlq_topic)},
      {"kafka-username", "KAFKA_USERNAME", "USER", "SASL/PLAIN user (SASL_PLAINTEXT when set)",
       text(&WorkerConfig::username)},
      {"kafka-password", "KAFKA_PASSWORD", "PASSWORD", "SASL/PLAIN password",
       text(&WorkerConfig::password)},
      {"kafka-partitions", "KAFKA_PARTITIONS", "N",
       "partitions of the topics when this worker creates them (default 6)",
       integer(&WorkerConfig::partitions, 1, 10000)},
      {"mongodb-uri", "MONGODB_URI", "URI", "MongoDB (or FerretDB) URI (required)",
       text(&WorkerConfig::mongodb_uri)},
      {"metrics-host", "METRICS_HOST", "ADDR", "address of /metrics and /healthz (default 0.0.0.0)",
       text(&WorkerConfig::metrics_host)},
      {"metrics-port", "METRICS_PORT", "PORT", "port of /metrics and /healthz (default 9400; 0: any)",
       integer(&WorkerConfig::metrics_port, 0, 65535)},
      {"batch-max", "BATCH_MAX", "N", "records per database write at most (default 500)",
       integer(&WorkerConfig::batch_max, 1, 100000)},
      {"batch-wait-ms", "BATCH_WAIT_MS", "MS",
       "how long a batch waits for more records after its first (default 20)",
       integer(&WorkerConfig::batch_wait_ms, 0, 60000)},
      {"log-level", "LOG_LEVEL", "LEVEL", "trace, debug, info, warn, error, critical, off",
       config::log_level<WorkerConfig>(&WorkerConfig::log_level)},
  };
  return s;
}

}  // namespace

result<LoadedWorkerConfig> load_worker_config(int argc, const char* const* argv,
                                              const std::map<std::string, std::string>& env) {
  LoadedWorkerConfig out;
  auto args = config::parse_args(argc, argv, [](std::string_view name) { return config::has_flag(settings(), name); });
  if (!args) return args.err();
  out.help = args->help;
  if (out.help) return out;
  if (auto applied = config::apply(out.config, settings(), *args, env); !applied) return applied.err();
  auto& c = out.config;
  if (c.brokers.empty())
    return error{errc::invalid_argument, "KAFKA_BROKERS (--kafka-brokers) is required"};
  if (c.mongodb_uri.empty())
    return error{errc::invalid_argument, "MONGODB_URI (--mongodb-uri) is required"};
  if (c.username.empty() != c.password.empty())
    return error{errc::invalid_argument, "KAFKA_USERNAME and KAFKA_PASSWORD go together"};
  if (c.dlq_topic.empty()) c.dlq_topic = c.topic + ".dlq";
  if (c.dlq_topic == c.topic)
    return error{errc::invalid_argument, "the dead-letter topic must differ from KAFKA_TOPIC"};
  return out;
}

std::string worker_help_text() {
  std::string out =
      "Usage: chat-worker [--flag value]...\n\n"
      "Consumes the message stream (Kafka) into the database (MongoDB): batched idempotent\n"
      "upserts, offsets committed after the write, undecodable records to a dead-letter topic.\n"
      "Every flag has an environment variable (flags win). Metrics on /metrics, /healthz.\n\n";
  for (const auto& s : settings())
    out += "  --" + std::string(s.flag) + " " + s.value_hint + "  (" + s.env + ")\n      " + s.help + "\n";
  out += "  -h, --help\n      print this help and exit\n";
  return out;
}

}  // namespace chat::worker
