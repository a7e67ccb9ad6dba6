#include "config/config.hpp"

#include <sched.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "config/settings.hpp"
#include "core/sched.hpp"
#include "core/time.hpp"

extern char** environ;

namespace chat::config {
namespace {

using Setter = config::Setter<Config>;
using Setting = config::Setting<Config>;

template <class Int>
Setter integer(Int Config::*field, long long lo, long long hi) {
  return config::integer<Config, Int>(field, lo, hi);
}
Setter text(std::string Config::*field, bool allow_empty = true) {
  return config::text<Config>(field, allow_empty);
}

Setter duration_ms(std::int64_t Config::*field) {
  return [=](Config& c, const std::string& v) -> std::optional<std::string> {
    // Durations here are small: accept "500ms" exactly rather than truncating to seconds.
    if (v.size() > 2 && v.ends_with("ms")) {
      long long x = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size() - 2, x);
      if (ec == std::errc{} && p == v.data() + v.size() - 2 && x > 0) {
        c.*field = x;
        return std::nullopt;
      }
    }
    auto s = parse_duration_seconds(v);
    if (!s || *s <= 0) return "a duration such as 500ms, 30s, 5m";
    c.*field = *s * 1000;
    return std::nullopt;
  };
}

Setter boolean(bool Config::*field) {
  return [=](Config& c, const std::string& v) -> std::optional<std::string> {
    if (v == "1" || v == "true" || v == "yes" || v == "on") c.*field = true;
    else if (v == "0" || v == "false" || v == "no" || v == "off") c.*field = false;
    else return "true or false";
    return std::nullopt;
  };
}

Setter rate_limit(RateLimit Config::*field) {
  return [=](Config& c, const std::string& v) -> std::optional<std::string> {
    const char* expected = "N/window such as 100/30s, or off";
    if (v == "off" || v == "0") {
      c.*field = RateLimit{};
      return std::nullopt;
    }
    auto slash = v.find('/');
    if (slash == std::string::npos) return expected;
    unsigned long long n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + slash, n);
    if (ec != std::errc{} || p != v.data() + slash || n == 0 || n > 1'000'000'000) return expected;
    auto secs = parse_duration_seconds(std::string_view(v).substr(slash + 1));
    if (!secs || *secs <= 0) return expected;
    c.*field = RateLimit{static_cast<std::uint32_t>(n), *secs * 1000};
    return std::nullopt;
  };
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> all = {
      {"port", "SERVER_PORT", "PORT", "TCP port to listen on; 0 picks a free one (default 5000)",
       integer(&Config::port, 0, 65535)},
      {"host", "HOST", "ADDR", "address to bind (default 0.0.0.0)", text(&Config::host, false)},
      {"threads", "CHATD_THREADS", "N", "I/O threads (default: one per core)",
       integer(&Config::threads, 0, 1024)},
      {"blocking-threads", "CHATD_BLOCKING_THREADS", "N",
       "threads for storage and password hashing (default: max(4, 2 x cores))",
       integer(&Config::blocking_threads, 0, 1024)},
      {"thread-slice", "CHATD_THREAD_SLICE", "DURATION",
       "scheduler time slice for the threads that wake to deliver messages (I/O, message journal, "
       "Redis bus, Kafka delivery), so that they preempt background work on the same core at once "
       "(Linux >= 6.12; 100us..100ms, or 0 for the kernel's default; default 100us)",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         auto slice = parse_time_slice(v);
         if (!slice) return "a duration from 100us to 100ms, such as 100us or 1ms, or 0";
         c.thread_slice_us = slice->count();
         return std::nullopt;
       }},
      {"env", "NODE_ENV", "NAME",
       "development | production | test; production requires JWT_SECRET and sets Secure cookies",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v != "development" && v != "production" && v != "test")
           return "development, production or test";
         c.node_env = v;
         return std::nullopt;
       }},
      {"data-dir", "DATA_DIR", "DIR", "embedded storage directory (default ./data)",
       text(&Config::data_dir, false)},
      {"journal-dir", "JOURNAL_DIR", "DIR",
       "embedded store's message journal (default: DATA_DIR); on a disk of its own, "
       "acknowledgements do not wait behind the database's writes",
       text(&Config::journal_dir, false)},
      {"jwt-secret", "JWT_SECRET", "SECRET",
       "HS256 key for tokens; if unset outside production, one is generated and kept in DATA_DIR",
       text(&Config::jwt_secret)},
      {"jwt-expiration", "JWT_EXPIRATION", "DURATION", "token lifetime, e.g. 7d, 12h (default 7d)",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         auto s = parse_duration_seconds(v);
         if (!s || *s <= 0) return "a duration such as 7d, 12h, 3600";
         c.jwt_expiration = v;
         c.jwt_ttl_seconds = *s;
         return std::nullopt;
       }},
      {"salt-rounds", "SALT_ROUNDS", "N",
       "accepted for compatibility with the Node server; ignored (Argon2id is used)",
       integer(&Config::salt_rounds, 1, 31)},
      {"cors-origins", "CORS_ORIGINS", "LIST",
       "comma-separated origins allowed with credentials (default http://localhost:5173)",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         c.cors_origins.clear();
         std::stringstream ss(v);
         std::string item;
         while (std::getline(ss, item, ',')) {
           while (!item.empty() && item.front() == ' ') item.erase(0, 1);
           while (!item.empty() && item.back() == ' ') item.pop_back();
           if (item.empty()) continue;
           if (item != "*" && !item.starts_with("http://") && !item.starts_with("https://"))
             return "a comma-separated list of origins like http://localhost:5173";
           c.cors_origins.push_back(item);
         }
         return std::nullopt;
       }},
      {"json-limit", "JSON_BODY_LIMIT", "BYTES", "maximum JSON request body (default 1048576)",
       integer(&Config::json_limit, 1024, 1LL << 30)},
      {"upload-limit", "UPLOAD_LIMIT", "BYTES", "maximum image size (default 5242880)",
       integer(&Config::upload_limit, 1024, 1LL << 30)},
      {"max-text", "MAX_TEXT_LENGTH", "CHARS", "maximum message text length (default 4000)",
       integer(&Config::max_text, 1, 1 << 20)},
      {"rate-limit-api", "RATE_LIMIT_API", "N/WINDOW",
       "API requests per client IP (default 100/30s; off disables)",
       rate_limit(&Config::api_limit)},
      {"rate-limit-auth", "RATE_LIMIT_AUTH", "N/WINDOW",
       "login + signup attempts per client IP (default 10/15m; off disables)",
       rate_limit(&Config::auth_limit)},
      {"trust-proxy", "TRUST_PROXY", "BOOL",
       "take the client IP from X-Forwarded-For (only behind a proxy you run; default false)",
       boolean(&Config::trust_proxy)},
      {"read-timeout", "READ_TIMEOUT", "DURATION", "time allowed to receive a request (default 30s)",
       duration_ms(&Config::read_timeout_ms)},
      {"idle-timeout", "IDLE_TIMEOUT", "DURATION",
       "keep-alive connection idle time before closing (default 60s)",
       duration_ms(&Config::idle_timeout_ms)},
      {"shutdown-timeout", "SHUTDOWN_TIMEOUT", "DURATION",
       "time given to in-flight requests on SIGTERM (default 10s)",
       duration_ms(&Config::shutdown_timeout_ms)},
      {"ping-interval", "PING_INTERVAL", "DURATION", "Engine.IO heartbeat interval (default 25s)",
       duration_ms(&Config::ping_interval_ms)},
      {"ping-timeout", "PING_TIMEOUT", "DURATION", "Engine.IO heartbeat timeout (default 20s)",
       duration_ms(&Config::ping_timeout_ms)},
      {"max-payload", "MAX_PAYLOAD", "BYTES", "largest Engine.IO message or polling body (default 1000000)",
       integer(&Config::max_payload, 1024, 1LL << 30)},
      {"send-queue", "SEND_QUEUE_BYTES", "BYTES",
       "per-connection send queue; a client that lets it overflow is disconnected (default 1048576)",
       integer(&Config::send_queue_bytes, 16 * 1024, 1LL << 30)},
      {"recovery", "RECOVERY_WINDOW", "DURATION",
       "connection state recovery window, or off (default 2m)",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v == "off" || v == "0") {
           c.recovery_ms = 0;
           return std::nullopt;
         }
         auto s = parse_duration_seconds(v);
         if (!s || *s <= 0) return "a duration such as 2m, or off";
         c.recovery_ms = *s * 1000;
         return std::nullopt;
       }},
      {"rate-limit-messages", "RATE_LIMIT_MESSAGES", "N/WINDOW",
       "sendMessage events per user (default 200/10s; off disables)",
       rate_limit(&Config::message_limit)},
      {"log-level", "LOG_LEVEL", "LEVEL", "trace, debug, info, warn, error, off (default info)",
       config::log_level<Config>(&Config::log_level)},
      {"web-dir", "WEB_DIR", "DIR", "built web client to serve (default web/dist)",
       text(&Config::web_dir)},
      {"mongodb-uri", "MONGODB_URI", "URI",
       "cluster mode: MongoDB store instead of SQLite (mongodb://host:port/db)",
       text(&Config::mongodb_uri)},
      {"redis-url", "REDIS_URL", "URL",
       "cluster mode: Redis linking instances, redis://[:pass@]host:port or a comma list of cluster nodes",
       text(&Config::redis_url)},
      {"kafka-topic", "KAFKA_TOPIC", "NAME", "Kafka topic of messages (default chat-messages)",
       text(&Config::kafka_topic, false)},
      {"kafka-brokers", "KAFKA_BROKERS", "LIST",
       "cluster mode: Kafka bootstrap servers; messages are stored through Kafka and chat-worker",
       text(&Config::kafka_brokers)},
      {"kafka-username", "KAFKA_USERNAME", "USER", "Kafka SASL/PLAIN user (none: plaintext)",
       text(&Config::kafka_username)},
      {"kafka-password", "KAFKA_PASSWORD", "SECRET", "Kafka SASL/PLAIN password",
       text(&Config::kafka_password)},
      {"kafka-partitions", "KAFKA_PARTITIONS", "N", "partitions when chatd creates the topic (default 6)",
       integer(&Config::kafka_partitions, 1, 10000)},
      {"kafka-delivery-timeout", "KAFKA_DELIVERY_TIMEOUT", "DURATION",
       "a message the broker has not acknowledged by then fails (default 15s)",
       duration_ms(&Config::kafka_delivery_timeout_ms)},
      {"instance-id", "INSTANCE_ID", "NAME", "this instance's name in the cluster (default <host>-<pid>)",
       text(&Config::instance_id)},
      {"heartbeat", "HEARTBEAT_INTERVAL", "DURATION", "cluster presence heartbeat (default 5s)",
       duration_ms(&Config::heartbeat_ms)},
      {"presence-ttl", "PRESENCE_TTL", "DURATION",
       "users of an instance silent this long go offline everywhere (default 15s)",
       duration_ms(&Config::presence_ttl_ms)},
  };
  return all;
}

std::string trim(std::string s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.back())) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && ws(s[i])) ++i;
  return s.substr(i);
}

}  // namespace

std::map<std::string, std::string> parse_dotenv(const std::string& text) {
  std::map<std::string, std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("export ")) line = trim(line.substr(7));
    auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    } else if (auto hash = value.find(" #"); hash != std::string::npos) {
      value = trim(value.substr(0, hash));
    }
    out[key] = value;
  }
  return out;
}

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

result<Args> parse_args(int argc, const char* const* argv,
                        const std::function<bool(std::string_view)>& known) {
  Args out;
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
    if (!known(name)) return error{errc::invalid_argument, "unknown flag --" + name + " (see --help)"};
    out.flags[name] = value;
  }
  return out;
}

result<Loaded> load(int argc, const char* const* argv,
                    const std::map<std::string, std::string>& env) {
  Loaded out;
  auto args = parse_args(argc, argv, [](std::string_view name) {
    return name == "env-file" || has_flag(settings(), name);
  });
  if (!args) return args.err();
  out.help = args->help;
  if (out.help) return out;
  const auto& flags = args->flags;
  std::string env_file = env.contains("ENV_FILE") ? env.at("ENV_FILE") : ".env";
  bool env_file_explicit = env.contains("ENV_FILE");
  if (auto f = flags.find("env-file"); f != flags.end()) {
    env_file = f->second;
    env_file_explicit = true;
  }

  std::map<std::string, std::string> dotenv;
  if (std::ifstream f(env_file); f) {
    std::stringstream ss;
    ss << f.rdbuf();
    dotenv = parse_dotenv(ss.str());
  } else if (env_file_explicit) {
    return error{errc::invalid_argument, "cannot read env file '" + env_file + "'"};
  }
  if (auto applied = apply(out.config, settings(), *args, env, dotenv); !applied) return applied.err();

  Config& c = out.config;
  if (c.production() && c.jwt_secret.empty())
    return error{errc::invalid_argument, "JWT_SECRET (--jwt-secret) is required when NODE_ENV=production"};
  if (c.production() && c.jwt_secret.size() < 32)
    out.notes.push_back("JWT_SECRET is shorter than 32 bytes: use a longer random secret");
  if (flags.contains("salt-rounds") || env.contains("SALT_ROUNDS") || dotenv.contains("SALT_ROUNDS"))
    out.notes.push_back("SALT_ROUNDS is ignored: new passwords use Argon2id; bcrypt hashes still verify");
  // Several instances or a worker need one shared database: Redis or Kafka without MongoDB
  // would split the data between per-instance SQLite files.
  if (c.mongodb_uri.empty() && (!c.redis_url.empty() || !c.kafka_brokers.empty()))
    return error{errc::invalid_argument,
                 "REDIS_URL/KAFKA_BROKERS need MONGODB_URI (cluster mode shares one MongoDB); "
                 "unset them for the embedded mode"};
  if (c.cluster() && c.jwt_secret.empty())
    return error{errc::invalid_argument,
                 "JWT_SECRET (--jwt-secret) is required with MONGODB_URI: every instance must accept "
                 "the tokens the others issue"};
  if (c.heartbeat_ms * 2 > c.presence_ttl_ms)
    return error{errc::invalid_argument,
                 "PRESENCE_TTL must be at least twice HEARTBEAT_INTERVAL (one lost heartbeat must "
                 "not take an instance's users offline)"};
  // The cores this process may run on (taskset, container CPU sets), not all of the machine's.
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (cpu_set_t set; sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    cores = static_cast<unsigned>(CPU_COUNT(&set));
  if (c.threads == 0) c.threads = cores;
  if (c.blocking_threads == 0) c.blocking_threads = std::max(4u, 2 * cores);
  return out;
}

std::string help_text() {
  std::string out =
      "chatd - real-time chat server (REST API, Socket.IO, web client)\n\n"
      "Usage: chatd [--flag value]...\n\n"
      "Every setting can come from a flag, an environment variable or a .env file\n"
      "(flags > environment > .env > defaults). --env-file PATH (or ENV_FILE) picks the .env file.\n\n";
  for (const auto& s : settings()) {
    std::string left = "  --" + std::string(s.flag) + " " + s.value_hint;
    if (*s.env) left += "  (" + std::string(s.env) + ")";
    out += left + "\n      " + s.help + "\n";
  }
  out += "  -h, --help\n      print this help and exit\n";
  return out;
}

}  // namespace chat::config
