#include "options.hpp"

#include <charconv>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>

namespace chat::bench {
namespace {

result<double> number(const std::string& flag, const std::string& v, double lo, double hi) {
  double d = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc{} || p != v.data() + v.size() || !std::isfinite(d) || d < lo || d > hi)
    return error{errc::invalid_argument, flag + ": expected a number in [" + std::to_string(lo) + ", " +
                                             std::to_string(hi) + "], got '" + v + "'"};
  return d;
}

result<std::size_t> count(const std::string& flag, const std::string& v, double lo, double hi) {
  auto d = number(flag, v, lo, hi);
  if (!d) return d.err();
  if (*d != std::floor(*d)) return error{errc::invalid_argument, flag + ": expected an integer"};
  return static_cast<std::size_t>(*d);
}

/// "127.0.0.1,127.0.0.2" or "127.0.0.1+8" (8 consecutive IPv4 addresses from 127.0.0.1).
result<std::vector<std::string>> addresses(const std::string& v) {
  std::vector<std::string> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto plus = item.find('+');
    if (plus == std::string::npos) {
      out.push_back(item);
      continue;
    }
    auto n = count("--source-addrs", item.substr(plus + 1), 1, 65536);
    if (!n) return n.err();
    unsigned a = 0, b = 0, c = 0, d = 0;
    char tail = 0;
    if (std::sscanf(item.substr(0, plus).c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 ||
        a > 255 || b > 255 || c > 255 || d > 255)
      return error{errc::invalid_argument, "--source-addrs: bad IPv4 address in '" + item + "'"};
    std::uint32_t ip = (a << 24) | (b << 16) | (c << 8) | d;
    for (std::size_t i = 0; i < *n; ++i) {
      std::uint32_t x = ip + static_cast<std::uint32_t>(i);
      out.push_back(std::to_string(x >> 24) + "." + std::to_string((x >> 16) & 255) + "." +
                    std::to_string((x >> 8) & 255) + "." + std::to_string(x & 255));
    }
  }
  if (out.empty()) return error{errc::invalid_argument, "--source-addrs: empty list"};
  return out;
}

}  // namespace

const char* scenario_name(Scenario s) {
  switch (s) {
    case Scenario::dm: return "dm";
    case Scenario::idle: return "idle";
    case Scenario::cluster: return "cluster";
  }
  return "?";
}

std::string usage() {
  return R"(chat-bench SCENARIO [flags]   — Socket.IO load generator for chatd (and any Socket.IO chat server)

Scenarios:
  dm        users in pairs send `sendMessage` {to, text, clientMsgId} with ack to each other
  idle      open and hold authenticated connections; connect rate, server RSS and CPU
  cluster   dm with senders on --url-a and receivers on --url-b

Server:
  --url URL                 server (default http://127.0.0.1:5000)
  --url-a URL, --url-b URL  cluster: senders' and receivers' server
  --label NAME              name of the server under test, copied into the output
  --server-pid PID          sample the server's RSS and CPU from /proc/PID

Users (created with POST /api/v1/auth/signup; chatd needs
       --rate-limit-auth off --rate-limit-api off --rate-limit-messages off):
  --users N                 dm: users (even, default 100); idle: distinct users (default min(connections, 100))
  --users-file FILE         reuse users (lines "<_id> <token>") and append the ones signed up now
  --signup-concurrency N    parallel sign-ups (default 8)
  --email-prefix P          e-mail of user i is P<i>@bench.test (default bench.<random>.)
  --presence MODE           auth.presence at CONNECT: none (default), full, delta, or omit

dm / cluster:
  --rate R                  open loop: R messages/s in total, latency from the intended send time
                            (corrected for coordinated omission); 0 = closed loop (default)
  --tick-us T               open loop: wake every T µs and send what is due (default 200; a
                            timer per message cost the generator ~40 µs per message)
  --window W                closed loop: messages in flight per sender (default 8)
  --one-way                 only the first user of each pair sends (default: both; cluster: one way)
  --mark-read               receivers send markRead {peerId, upTo} for every message delivered,
                            without an ack, as the web client does with the conversation open
  --text-bytes B            message text length (default 64, >= 40)
  --duration S              measured seconds (default 10)
  --warmup S                seconds sent before measuring (default 2)
  --drain S                 seconds to wait for outstanding acks and deliveries (default 10)

idle:
  --connections N           connections to open and hold (default 1000)
  --hold S                  seconds to hold them while sampling the server (default 30)
  --settle S                seconds after the last connect before sampling CPU (default 2)

Transport:
  --threads N               I/O threads per process (default: CPUs we may run on)
  --procs N                 worker processes (each gets its own open-file limit)
  --source-addrs LIST       local addresses to bind, round-robin: "127.0.0.1,127.0.0.2" or "127.0.0.1+8"
  --connect-concurrency N   connection attempts in flight per process (default 256)
  --connect-timeout S       give up on connecting after S seconds (default 60)
  --sample-interval S       server sampling period (default 1)
  --json-only               print only the RESULT line

Output: a table, then one line "RESULT {json}" with every figure. Exit status 0 when the run
completed with no lost or duplicated delivery and no failed connection; 1 otherwise; 2 on bad usage.
)";
}

// Unwraps a result<T> into `var` or returns its error from parse_options.
#define CHAT_TRY(var, expr)           \
  auto var##_r = (expr);              \
  if (!var##_r) return var##_r.err(); \
  auto var = std::move(*var##_r)

result<Options> parse_options(const std::vector<std::string>& args) {
  Options o;
  bool one_way = false;
  bool scenario_set = false;
  bool users_set = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_value = false;
    if (a.starts_with("--")) {
      if (auto eq = a.find('='); eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_value = true;
      }
    }
    auto need = [&]() -> result<std::string> {
      if (has_value) return value;
      if (i + 1 >= args.size()) return error{errc::invalid_argument, a + " needs a value"};
      return args[++i];
    };

    if (a == "-h" || a == "--help") return error{errc::not_found, usage()};
    if (!a.starts_with("-")) {
      if (scenario_set) return error{errc::invalid_argument, "unexpected argument '" + a + "'"};
      scenario_set = true;
      if (a == "dm") o.scenario = Scenario::dm;
      else if (a == "idle") o.scenario = Scenario::idle;
      else if (a == "cluster") o.scenario = Scenario::cluster;
      else return error{errc::invalid_argument, "unknown scenario '" + a + "' (dm, idle, cluster)"};
      continue;
    }
    if (a == "--one-way") { one_way = true; continue; }
    if (a == "--mark-read") { o.mark_read = true; continue; }
    if (a == "--json-only") { o.json_only = true; continue; }
    CHAT_TRY(v, need());
    if (a == "--url") o.url = v;
    else if (a == "--url-a") o.url_a = v;
    else if (a == "--url-b") o.url_b = v;
    else if (a == "--label") o.label = v;
    else if (a == "--users") { CHAT_TRY(n, count(a, v, 1, 10'000'000)); o.users = n; users_set = true; }
    else if (a == "--users-file") o.users_file = v;
    else if (a == "--signup-concurrency") { CHAT_TRY(n, count(a, v, 1, 1024)); o.signup_concurrency = n; }
    else if (a == "--email-prefix") o.email_prefix = v;
    else if (a == "--presence") {
      if (v != "none" && v != "full" && v != "delta" && v != "omit")
        return error{errc::invalid_argument, "--presence: none, full, delta or omit"};
      o.presence = v == "omit" ? "" : v;
    }
    else if (a == "--rate") { CHAT_TRY(n, number(a, v, 0, 1e9)); o.rate = n; }
    else if (a == "--tick-us") { CHAT_TRY(n, count(a, v, 1, 1'000'000)); o.tick_us = static_cast<std::int64_t>(n); }
    else if (a == "--window") { CHAT_TRY(n, count(a, v, 1, 1'000'000)); o.window = n; }
    else if (a == "--text-bytes") { CHAT_TRY(n, count(a, v, 40, 4000)); o.text_bytes = n; }
    else if (a == "--duration") { CHAT_TRY(n, number(a, v, 0.1, 86400)); o.duration_s = n; }
    else if (a == "--warmup") { CHAT_TRY(n, number(a, v, 0, 86400)); o.warmup_s = n; }
    else if (a == "--drain") { CHAT_TRY(n, number(a, v, 0.1, 3600)); o.drain_s = n; }
    else if (a == "--connections") { CHAT_TRY(n, count(a, v, 1, 10'000'000)); o.connections = n; }
    else if (a == "--hold") { CHAT_TRY(n, number(a, v, 0, 86400)); o.hold_s = n; }
    else if (a == "--settle") { CHAT_TRY(n, number(a, v, 0, 3600)); o.settle_s = n; }
    else if (a == "--threads") { CHAT_TRY(n, count(a, v, 1, 256)); o.threads = n; }
    else if (a == "--procs") { CHAT_TRY(n, count(a, v, 1, 256)); o.procs = n; }
    else if (a == "--source-addrs") { CHAT_TRY(l, addresses(v)); o.source_addrs = std::move(l); }
    else if (a == "--connect-concurrency") { CHAT_TRY(n, count(a, v, 1, 100000)); o.connect_concurrency = n; }
    else if (a == "--connect-timeout") { CHAT_TRY(n, number(a, v, 1, 3600)); o.connect_timeout_s = n; }
    else if (a == "--server-pid") { CHAT_TRY(n, count(a, v, 1, 1 << 30)); o.server_pid = static_cast<int>(n); }
    else if (a == "--sample-interval") { CHAT_TRY(n, number(a, v, 0.05, 3600)); o.sample_interval_s = n; }
    else if (a == "--shard") { CHAT_TRY(n, count(a, v, 0, 255)); o.shard = static_cast<int>(n); }
    else if (a == "--shards") { CHAT_TRY(n, count(a, v, 1, 256)); o.shards = n; }
    else return error{errc::invalid_argument, "unknown flag " + a + " (see --help)"};
  }
  if (!scenario_set) return error{errc::invalid_argument, "missing scenario: dm, idle or cluster (see --help)"};
  if (o.scenario == Scenario::cluster) {
    if (o.url_a.empty() || o.url_b.empty()) return error{errc::invalid_argument, "cluster needs --url-a and --url-b"};
    o.both_directions = false;
  } else {
    o.url_a = o.url_b = o.url;
  }
  if (one_way) o.both_directions = false;
  if (o.scenario == Scenario::idle) {
    if (!users_set) o.users = std::min<std::size_t>(o.connections, 100);
  } else {
    if (!users_set) o.users = 100;
    if (o.users % 2) return error{errc::invalid_argument, "--users must be even (users are paired)"};
  }
  if (o.shard >= 0 && static_cast<std::size_t>(o.shard) >= o.shards)
    return error{errc::invalid_argument, "--shard must be below --shards"};
  return o;
}

#undef CHAT_TRY

}  // namespace chat::bench
