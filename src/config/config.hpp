#pragma once
// chatd's configuration: defaults in code, overridden by a .env file, then the environment, then
// command-line flags (flags > env > .env > defaults). The old Node server's variable names work.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace chat::config {

struct RateLimit {
  std::uint32_t max = 0;        ///< requests allowed per window; 0 = off
  std::int64_t window_ms = 0;
  bool enabled() const noexcept { return max > 0; }
};

struct Config {
  std::string host = "0.0.0.0";
  std::uint16_t port = 5000;  ///< 0 = any free port (printed at start)
  unsigned threads = 0;       ///< I/O threads; 0 = one per core
  unsigned blocking_threads = 0;  ///< store/hashing pool; 0 = max(4, 2 × cores)
  /// Scheduler time slice asked for by the threads that wake to deliver messages: I/O, message
  /// journal, Redis bus, Kafka delivery (Linux ≥ 6.12, see core/sched.hpp); 0 = the kernel's.
  std::int64_t thread_slice_us = 100;
  std::size_t blocking_queue = 10000;
  std::string node_env = "development";
  std::string data_dir = "./data";
  std::string journal_dir;  ///< the embedded store's message journal; empty: data_dir
  std::string jwt_secret;  ///< empty: generated once and kept in data_dir (not in production)
  std::string jwt_expiration = "7d";
  std::int64_t jwt_ttl_seconds = 7 * 86400;
  int salt_rounds = 10;  ///< accepted for compatibility; Argon2id ignores it
  std::vector<std::string> cors_origins{"http://localhost:5173"};
  std::size_t json_limit = 1 << 20;
  std::size_t upload_limit = 5 << 20;
  std::size_t max_text = 4000;
  RateLimit api_limit{100, 30'000};
  RateLimit auth_limit{10, 15 * 60'000};
  bool trust_proxy = false;
  std::int64_t read_timeout_ms = 30'000;
  std::int64_t idle_timeout_ms = 60'000;
  std::int64_t shutdown_timeout_ms = 10'000;
  // Real-time (Socket.IO)
  std::int64_t ping_interval_ms = 25'000;
  std::int64_t ping_timeout_ms = 20'000;
  std::size_t max_payload = 1'000'000;      ///< Engine.IO maxPayload
  std::size_t send_queue_bytes = 1 << 20;   ///< per-connection send queue (slow consumer beyond)
  std::int64_t recovery_ms = 120'000;       ///< connection state recovery window; 0 = off
  RateLimit message_limit{200, 10'000};     ///< sendMessage per user
  std::string log_level = "info";
  std::string web_dir = "web/dist";
  // Cluster mode: MONGODB_URI replaces SQLite; REDIS_URL links instances; KAFKA_BROKERS makes
  // every message a Kafka record that chat-worker stores (see docs/ARCHITECTURE.md).
  std::string mongodb_uri;
  std::string redis_url;
  std::string kafka_topic = "chat-messages";
  std::string kafka_brokers;
  std::string kafka_username;  ///< SASL/PLAIN when set
  std::string kafka_password;
  int kafka_partitions = 6;    ///< when chatd creates the topic
  std::int64_t kafka_delivery_timeout_ms = 15'000;  ///< a send fails if unacked by then
  std::string instance_id;     ///< empty: <hostname>-<pid>
  std::int64_t heartbeat_ms = 5'000;
  std::int64_t presence_ttl_ms = 15'000;  ///< a silent instance's users go offline after this

  bool cluster() const noexcept { return !mongodb_uri.empty(); }

  bool production() const noexcept { return node_env == "production"; }
};

struct Loaded {
  Config config;
  bool help = false;                 ///< --help: print help_text() and exit 0
  std::vector<std::string> notes;    ///< warnings to log once logging is up
};

/// Parses flags (argv), environment (`env`, NAME → value) and the .env file (path from
/// --env-file / ENV_FILE, default "./.env"; missing file is fine). Errors name the setting:
/// invalid_argument "invalid value for --port/SERVER_PORT: 'abc' (expected 0..65535)".
result<Loaded> load(int argc, const char* const* argv, const std::map<std::string, std::string>& env);
/// The environment of this process as a map.
std::map<std::string, std::string> process_env();
/// Parses "KEY=VALUE" lines (comments, blank lines, `export`, quotes). Invalid lines are skipped.
std::map<std::string, std::string> parse_dotenv(const std::string& text);
/// Every setting with its flag, variable, default and meaning.
std::string help_text();

}  // namespace chat::config
