#include "options.hpp"

#include <charconv>
#include <functional>
#include <optional>
#include <vector>

namespace chat::worker {
namespace {

using Setter = std::function<std::optional<std::string>(WorkerConfig&, const std::string&)>;

struct Setting {
  const char* flag;
  const char* env;
  const char* hint;
  const char* help;
  Setter set;
};

template <class Int>
Setter integer(Int WorkerConfig::*field, long long lo, long long hi) {
  return [=](WorkerConfig& c, const std::string& v) -> std::optional<std::string> {
    long long x = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc{} || p != v.data() + v.size() || x < lo || x > hi)
      return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    c.*field = static_cast<Int>(x);
    return std::nullopt;
  };
}

Setter text(std::string WorkerConfig::*field) {
  return [=](WorkerConfig& c, const std::string& v) -> std::optional<std::string> {
    if (v.empty()) return "a non-empty value";
    c.*field = v;
    return std::nullopt;
  };
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
       [](WorkerConfig& c, const std::string& v) -> std::optional<std::string> {
         for (const char* l : {"trace", "debug", "info", "warn", "error", "critical", "off"})
           if (v == l) {
             c.log_level = v;
             return std::nullopt;
           }
         return "one of trace, debug, info, warn, error, critical, off";
       }},
  };
  return s;
}

}  // namespace

result<LoadedWorkerConfig> load_worker_config(int argc, const char* const* argv,
                                              const std::map<std::string, std::string>& env) {
  LoadedWorkerConfig out;
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      continue;
    }
    if (!arg.starts_with("--"))
      return error{errc::invalid_argument, "unexpected argument '" + arg + "' (see --help)"};
    std::string name = arg.substr(2), value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return error{errc::invalid_argument, "missing value for --" + name};
    }
    bool known = false;
    for (const auto& s : settings()) known = known || name == s.flag;
    if (!known) return error{errc::invalid_argument, "unknown flag --" + name + " (see --help)"};
    flags[name] = value;
  }
  if (out.help) return out;
  for (const auto& s : settings()) {
    const std::string* value = nullptr;
    if (auto it = flags.find(s.flag); it != flags.end())
      value = &it->second;
    else if (auto e = env.find(s.env); e != env.end() && !e->second.empty())  // "" = unset
      value = &e->second;
    if (!value) continue;
    if (auto expected = s.set(out.config, *value))
      return error{errc::invalid_argument, "invalid value for --" + std::string(s.flag) + "/" +
                                               s.env + ": '" + *value + "' (expected " +
                                               *expected + ")"};
  }
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
    out += "  --" + std::string(s.flag) + " " + s.hint + "  (" + s.env + ")\n      " + s.help + "\n";
  out += "  -h, --help\n      print this help and exit\n";
  return out;
}

}  // namespace chat::worker
