#pragma once
// Command line of chat-bench (see `chat-bench --help`).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace chat::bench {

enum class Scenario { dm, idle, cluster };

struct Options {
  Scenario scenario = Scenario::dm;
  std::string url = "http://127.0.0.1:5000";
  std::string url_a;  ///< cluster: senders
  std::string url_b;  ///< cluster: receivers
  std::string label;  ///< name of the server under test, copied into the output

  // users
  std::size_t users = 0;  ///< dm: users (pairs = users/2); idle: distinct users (default min(N,100))
  std::string users_file;
  std::size_t signup_concurrency = 8;
  std::string email_prefix;  ///< default: "bench.<random>."
  std::string presence = "none";  ///< CONNECT auth.presence: none | full | delta | "" (omit)

  // dm / cluster
  double rate = 0;           ///< total msgs/s (open loop); 0: closed loop
  /// open loop: the sender wakes on this grid (µs) and sends every message due by then; a send
  /// is up to one tick late (counted in the latencies, which start at the intended time).
  std::int64_t tick_us = 200;
  std::size_t window = 8;    ///< closed loop: messages in flight per sender
  bool both_directions = true;
  /// dm / cluster: every receiver answers each message delivered with a markRead up to it, no
  /// ack (what the web client does while the conversation is open): a synchronous store write
  /// per message besides the appends.
  bool mark_read = false;
  std::size_t text_bytes = 64;
  double duration_s = 10;
  double warmup_s = 2;
  double drain_s = 10;

  // idle
  std::size_t connections = 1000;
  double hold_s = 30;
  double settle_s = 2;

  // transport
  std::size_t threads = 0;  ///< I/O threads per process; 0: CPUs in our affinity mask
  std::size_t procs = 1;
  std::vector<std::string> source_addrs;
  std::size_t connect_concurrency = 256;  ///< per process
  double connect_timeout_s = 60;

  // measurement
  int server_pid = 0;
  double sample_interval_s = 1;
  bool json_only = false;

  // internal: worker processes
  int shard = -1;  ///< >= 0 in a worker process
  std::size_t shards = 1;
};

/// Parses argv (argv[0] excluded). "--help" gives errc::not_found with the usage text as message.
result<Options> parse_options(const std::vector<std::string>& args);

/// Usage text.
std::string usage();

const char* scenario_name(Scenario s);

}  // namespace chat::bench
