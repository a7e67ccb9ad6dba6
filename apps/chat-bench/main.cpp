// chat-bench: a Socket.IO load generator for chatd (and the Node.js reference in bench/reference).
// The coordinator (this process) creates the users, starts the workers (a thread, or --procs child
// processes that run this same binary with --shard), starts them all at one instant, samples the
// server from /proc, merges the workers' counters and histograms and prints a table and one
// "RESULT {json}" line. See --help and bench/README.md.
#include <unistd.h>

#include <csignal>

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "channel.hpp"
#include "histogram.hpp"
#include "http_client.hpp"
#include "options.hpp"
#include "proc_stats.hpp"
#include "worker.hpp"

namespace chat::bench {
namespace {

namespace json = boost::json;

// ---- users ---------------------------------------------------------------------------------

result<std::vector<BenchUser>> load_users_file(const std::string& path) {
  std::vector<BenchUser> users;
  std::ifstream f(path);
  if (!f) return users;  // a missing file is an empty list: it is created below
  std::string line;
  std::size_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    BenchUser u;
    if (!(in >> u.id >> u.token))
      return error{errc::invalid_argument, path + ":" + std::to_string(n) + ": expected '<_id> <token>'"};
    users.push_back(std::move(u));
  }
  return users;
}

result<void> append_users_file(const std::string& path, const std::vector<BenchUser>& users, std::size_t from,
                               const std::string& url) {
  const bool fresh = !std::ifstream(path).good();
  std::ofstream f(path, std::ios::app);
  if (!f) return error{errc::unavailable, "cannot write " + path};
  if (fresh) f << "# chat-bench users of " << url << ": <_id> <token>\n";
  for (std::size_t i = from; i < users.size(); ++i) f << users[i].id << ' ' << users[i].token << '\n';
  if (!f) return error{errc::unavailable, "cannot write " + path};
  return {};
}

std::string random_hex(std::size_t n) {
  std::random_device rd;
  std::string s;
  const char* digits = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) s.push_back(digits[rd() % 16]);
  return s;
}

result<std::vector<BenchUser>> prepare_users(const Options& o, bool quiet) {
  std::vector<BenchUser> users;
  if (!o.users_file.empty()) {
    auto loaded = load_users_file(o.users_file);
    if (!loaded) return loaded.err();
    users = std::move(*loaded);
  }
  if (users.size() >= o.users) {
    users.resize(o.users);
    return users;
  }
  auto ep = parse_url(o.url_a);
  if (!ep) return ep.err();
  const std::size_t have = users.size();
  const std::size_t missing = o.users - have;
  const std::string prefix = o.email_prefix.empty() ? "bench." + random_hex(8) + "." : o.email_prefix;
  if (!quiet) std::fprintf(stderr, "chat-bench: signing up %zu users on %s ...\n", missing, o.url_a.c_str());
  const std::int64_t t = now_ns();
  std::size_t last_print = 0;
  auto more = signup_users(*ep, prefix, have, missing, o.signup_concurrency, [&](std::size_t done) {
    if (!quiet && done - last_print >= 500) {
      last_print = done;
      std::fprintf(stderr, "chat-bench: %zu/%zu signed up\n", done, missing);
    }
  });
  if (!more) return more.err();
  if (!quiet)
    std::fprintf(stderr, "chat-bench: %zu sign-ups in %.1f s\n", missing, static_cast<double>(now_ns() - t) / 1e9);
  users.insert(users.end(), more->begin(), more->end());
  if (!o.users_file.empty())
    if (auto r = append_users_file(o.users_file, users, have, o.url_a); !r) return r.err();
  return users;
}

// ---- workers --------------------------------------------------------------------------------

struct WorkerHandle {
  std::unique_ptr<Channel> channel;
  pid_t pid = -1;
  std::thread thread;  // single-process mode
  std::unique_ptr<Channel> local_end;
};

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "chat-bench";
  return std::string(buf, static_cast<std::size_t>(n));
}

/// The worker's argv: ours without the coordinator-only flags, plus its shard and the users file.
std::vector<std::string> worker_args(const std::vector<std::string>& args, std::size_t shard, std::size_t shards,
                                     const std::string& users_file, std::size_t users) {
  static const char* drop[] = {"--procs", "--users-file", "--server-pid", "--users", "--shard", "--shards"};
  std::vector<std::string> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    bool skip = false;
    for (const char* d : drop) {
      if (args[i] == d) {
        skip = true;
        ++i;  // its value
      } else if (args[i].starts_with(std::string(d) + "=")) {
        skip = true;
      }
    }
    if (!skip) out.push_back(args[i]);
  }
  for (std::string s : {std::string("--shard"), std::to_string(shard), std::string("--shards"),
                        std::to_string(shards), std::string("--users-file"), users_file,
                        std::string("--users"), std::to_string(users)})
    out.push_back(std::move(s));
  return out;
}

std::optional<json::object> expect(WorkerHandle& w, std::string_view tag, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    auto line = w.channel->receive(std::chrono::milliseconds(200));
    if (!line) {
      if (w.channel->closed()) return std::nullopt;
      continue;
    }
    if (!line->starts_with(tag) || line->size() <= tag.size() || (*line)[tag.size()] != ' ') {
      std::fprintf(stderr, "chat-bench: worker said: %s\n", line->c_str());
      continue;
    }
    boost::system::error_code ec;
    json::value v = json::parse(std::string_view(*line).substr(tag.size() + 1), ec);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.get_object());
  }
  return std::nullopt;
}

std::uint64_t u64(const json::object& o, const char* k) {
  const json::value* v = o.if_contains(k);
  boost::system::error_code ec;
  std::uint64_t r = v && v->is_number() ? v->to_number<std::uint64_t>(ec) : 0;
  return ec ? 0 : r;
}

double dbl(const json::object& o, const char* k) {
  const json::value* v = o.if_contains(k);
  boost::system::error_code ec;
  double r = v && v->is_number() ? v->to_number<double>(ec) : 0;
  return ec ? 0 : r;
}

void add_counts(json::object& into, const json::object& from, const char* k) {
  const json::value* v = from.if_contains(k);
  if (!v || !v->is_object()) return;
  json::object& dst = into[k].is_object() ? into[k].get_object() : into[k].emplace_object();
  for (const auto& kv : v->get_object()) {
    boost::system::error_code ec;
    std::uint64_t add = kv.value().is_number() ? kv.value().to_number<std::uint64_t>(ec) : 0;
    std::uint64_t cur = dst.contains(kv.key()) && dst[kv.key()].is_number() ? dst[kv.key()].to_number<std::uint64_t>(ec) : 0;
    dst[kv.key()] = cur + add;
  }
}

/// Sums the numeric fields `keys`, merges the histograms `hists` and the count maps `maps`.
json::object merge_shards(const std::vector<json::object>& shards, std::initializer_list<const char*> keys,
                          std::initializer_list<const char*> hists, std::initializer_list<const char*> maps,
                          std::map<std::string, Histogram>& merged) {
  json::object out;
  for (const char* k : keys) {
    std::uint64_t s = 0;
    for (const auto& sh : shards) s += u64(sh, k);
    out[k] = s;
  }
  for (const char* m : maps) {
    out[m] = json::object{};
    for (const auto& sh : shards) add_counts(out, sh, m);
  }
  for (const char* h : hists) {
    Histogram acc;
    for (const auto& sh : shards) {
      Histogram x;
      if (const json::value* v = sh.if_contains(h)) x.from_json(*v);
      acc.merge(x);
    }
    merged[h] = acc;
  }
  return out;
}

std::string iso_now() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

double round2(double x) { return std::round(x * 100) / 100; }

/// JSON text with numbers as people write them (boost::json prints doubles as 6.033E3).
void write_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: {
      const double d = v.get_double();
      char buf[64];
      if (!std::isfinite(d)) out += "null";
      else if (d == std::floor(d) && std::fabs(d) < 1e15) out += std::to_string(static_cast<long long>(d));
      else {
        std::snprintf(buf, sizeof buf, "%.10g", d);
        out += buf;
      }
      return;
    }
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        write_json(out, e);
      }
      out.push_back(']');
      return;
    }
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        out += json::serialize(json::string_view(kv.key()));
        out.push_back(':');
        write_json(out, kv.value());
      }
      out.push_back('}');
      return;
    }
    default:
      out += json::serialize(v);
  }
}

std::string to_json_text(const json::value& v) {
  std::string out;
  write_json(out, v);
  return out;
}

/// The 1-minute load average: a busy machine makes every figure worse, so it goes in the output.
double loadavg_1m() {
  std::ifstream f("/proc/loadavg");
  double x = 0;
  f >> x;
  return x;
}

std::string with_commas(double v) {
  auto n = static_cast<long long>(std::llround(v));
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  if (n < 0) out.push_back('-');
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

void print_latency_row(const char* name, const Histogram& h) {
  if (h.count() == 0) {
    std::printf("    %-16s %9s\n", name, "-");
    return;
  }
  std::printf("    %-16s %9lld %9lld %9lld %9lld %9lld %9.0f %12s\n", name, (long long)h.percentile(0.5),
              (long long)h.percentile(0.9), (long long)h.percentile(0.99), (long long)h.percentile(0.999),
              (long long)h.max(), h.mean(), with_commas(static_cast<double>(h.count())).c_str());
}

// ---- the coordinator ------------------------------------------------------------------------

class Coordinator {
 public:
  Coordinator(const Options& o, std::vector<std::string> args) : o_(o), args_(std::move(args)) {}

  int run() {
    auto users = prepare_users(o_, o_.json_only);
    if (!users) {
      std::fprintf(stderr, "chat-bench: %s\n", users.err().message.c_str());
      return 1;
    }
    users_ = std::move(*users);
    if (o_.scenario == Scenario::idle && users_.empty()) return 1;
    if (auto r = start_workers(); !r) {
      std::fprintf(stderr, "chat-bench: %s\n", r.err().message.c_str());
      return 1;
    }
    int rc = o_.scenario == Scenario::idle ? run_idle() : run_dm();
    stop_workers();
    if (!temp_users_file_.empty()) ::unlink(temp_users_file_.c_str());
    return rc;
  }

 private:
  result<void> start_workers() {
    if (o_.procs <= 1) {
      auto [a, b] = make_local_channel_pair();
      WorkerHandle w;
      w.channel = std::move(a);
      w.local_end = std::move(b);
      Channel* end = w.local_end.get();
      w.thread = std::thread([this, end] { run_worker(o_, users_, *end); });
      workers_.push_back(std::move(w));
      return {};
    }
    std::string file = o_.users_file;
    if (file.empty()) {
      char tmpl[] = "/tmp/chat-bench-users-XXXXXX";
      int fd = ::mkstemp(tmpl);
      if (fd < 0) return error{errc::unavailable, "mkstemp failed"};
      ::close(fd);
      ::unlink(tmpl);
      file = temp_users_file_ = tmpl;
      if (auto r = append_users_file(file, users_, 0, o_.url_a); !r) return r;
    }
    const std::string exe = self_exe();
    for (std::size_t i = 0; i < o_.procs; ++i) {
      auto c = spawn_child(exe, worker_args(args_, i, o_.procs, file, users_.size()));
      if (!c) return c.err();
      WorkerHandle w;
      w.pid = c->pid;
      w.channel = std::move(c->channel);
      workers_.push_back(std::move(w));
    }
    return {};
  }

  void stop_workers() {
    for (auto& w : workers_) {
      if (w.thread.joinable()) {
        w.channel->send("ABORT");
        w.thread.join();
      }
      if (w.pid > 0) {
        w.channel->send("ABORT");
        int rc = wait_child(w.pid);
        if (rc != 0) std::fprintf(stderr, "chat-bench: worker %d exited with %d\n", w.pid, rc);
      }
    }
    workers_.clear();
  }

  std::optional<ProcSample> sample() const {
    if (o_.server_pid <= 0) return std::nullopt;
    return sample_process(o_.server_pid);
  }

  void go(std::int64_t t0) {
    load_at_start_ = loadavg_1m();
    for (auto& w : workers_) w.channel->send("GO " + std::to_string(t0));
  }

  json::object header() const {
    json::object r;
    r["scenario"] = scenario_name(o_.scenario);
    r["label"] = o_.label;
    if (o_.scenario == Scenario::cluster) {
      r["url_a"] = o_.url_a;
      r["url_b"] = o_.url_b;
    } else {
      r["url"] = o_.url;
    }
    r["date"] = iso_now();
    r["procs"] = o_.procs;
    r["threads_per_proc"] = o_.threads ? o_.threads : std::max(1u, std::thread::hardware_concurrency());
    r["source_addrs"] = o_.source_addrs.empty() ? 1 : o_.source_addrs.size();
    r["presence"] = o_.presence.empty() ? "omitted" : o_.presence;
    r["loadavg_1m_at_start"] = load_at_start_;  // includes the server and this benchmark
    return r;
  }

  // ---- dm / cluster -------------------------------------------------------------------------

  int run_dm() {
    std::vector<json::object> ready;
    for (auto& w : workers_) {
      auto r = expect(w, "READY", o_.connect_timeout_s + 30);
      if (!r) {
        std::fprintf(stderr, "chat-bench: a worker failed while connecting\n");
        return 1;
      }
      ready.push_back(std::move(*r));
    }
    std::uint64_t active = 0;
    for (auto& r : ready) active += u64(r, "senders_active");
    if (!o_.json_only)
      std::fprintf(stderr, "chat-bench: %llu senders connected; running %g s + %g s warm-up\n",
                   (unsigned long long)active, o_.duration_s, o_.warmup_s);
    const auto before = sample();
    const std::int64_t t0 = now_ns() + 200'000'000;
    const std::int64_t t_m0 = t0 + static_cast<std::int64_t>(o_.warmup_s * 1e9);
    const std::int64_t t_end = t_m0 + static_cast<std::int64_t>(o_.duration_s * 1e9);
    go(t0);
    std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t_m0)));
    const auto s_m0 = sample();
    std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t_end)));
    const auto s_end = sample();
    std::vector<json::object> done;
    for (auto& w : workers_) {
      auto d = expect(w, "DONE", o_.drain_s + 60);
      if (!d) {
        std::fprintf(stderr, "chat-bench: a worker did not report\n");
        return 1;
      }
      done.push_back(std::move(*d));
    }
    std::map<std::string, Histogram> h;
    json::object m = merge_shards(
        done,
        {"connect_ok", "connect_failed", "senders_active", "sent", "sent_window", "acked", "acked_window",
         "delivered", "delivered_window", "ack_timeouts", "missing", "duplicates", "unexpected", "foreign",
         "bad_payloads", "disconnects", "pongs", "mark_reads", "messages_read"},
        {"hist_e2e", "hist_ack", "hist_lag", "hist_connect"}, {"ack_errors", "close_reasons", "connect_errors"}, h);
    double drain_ms = 0, cpu_s = 0, elapsed_s = 0;
    for (auto& d : done) {
      drain_ms = std::max(drain_ms, dbl(d, "drain_ms"));
      cpu_s += dbl(d, "cpu_s");
      elapsed_s = std::max(elapsed_s, dbl(d, "elapsed_s"));
    }

    json::object r = header();
    r["users"] = o_.users;
    r["pairs"] = o_.users / 2;
    r["mode"] = o_.rate > 0 ? "open" : "closed";
    if (o_.rate > 0) {
      r["rate_target"] = o_.rate;
      r["tick_us"] = o_.tick_us;
    } else {
      r["window"] = o_.window;
    }
    r["direction"] = o_.both_directions ? "both" : "one";
    r["mark_read"] = o_.mark_read;
    r["text_bytes"] = o_.text_bytes;
    r["duration_s"] = o_.duration_s;
    r["warmup_s"] = o_.warmup_s;
    for (const char* k : {"connect_ok", "connect_failed", "connect_errors", "senders_active", "sent", "acked",
                          "delivered"})
      r[k] = m[k];
    const double d = o_.duration_s;
    r["sent_per_s"] = round2(static_cast<double>(u64(m, "sent_window")) / d);
    r["acked_per_s"] = round2(static_cast<double>(u64(m, "acked_window")) / d);
    r["delivered_per_s"] = round2(static_cast<double>(u64(m, "delivered_window")) / d);
    for (const char* k : {"ack_errors", "ack_timeouts", "missing", "duplicates", "unexpected", "foreign",
                          "bad_payloads", "disconnects", "close_reasons", "pongs", "mark_reads",
                          "messages_read"})
      r[k] = m[k];
    r["drain_ms"] = round2(drain_ms);
    // The generator's own cost: if it is near 100 % of its cores, the figures measure chat-bench.
    r["client"] = json::object{
        {"cpu_s", round2(cpu_s)},
        {"cpu_pct", round2(elapsed_s > 0 ? 100 * cpu_s / elapsed_s : 0)},
        {"us_per_msg", round2(u64(m, "sent") ? cpu_s * 1e6 / static_cast<double>(u64(m, "sent")) : 0)}};
    json::object lat{{"e2e", h["hist_e2e"].summary_json()}, {"ack", h["hist_ack"].summary_json()}};
    if (o_.rate > 0) lat["send_lag"] = h["hist_lag"].summary_json();
    lat["connect"] = h["hist_connect"].summary_json();
    r["latency_us"] = std::move(lat);
    if (o_.server_pid > 0) {
      json::object s{{"pid", o_.server_pid}};
      if (s_m0 && s_end) s["cpu_pct"] = round2(cpu_percent(*s_m0, *s_end));
      if (before) s["rss_kb_before"] = before->rss_kb;
      if (s_end) s["rss_kb_end"] = s_end->rss_kb;
      r["server"] = std::move(s);
    }
    bool ok_counts = true;
    for (const char* k : {"connect_failed", "ack_timeouts", "missing", "duplicates", "disconnects", "bad_payloads"})
      if (u64(r, k) != 0) ok_counts = false;
    const bool ok = ok_counts && r["ack_errors"].get_object().empty() && u64(r, "acked") > 0;
    r["ok"] = ok;
    if (!o_.json_only) print_dm(r, h);
    std::printf("RESULT %s\n", to_json_text(r).c_str());
    std::fflush(stdout);
    return ok ? 0 : 1;
  }

  void print_dm(const json::object& r, std::map<std::string, Histogram>& h) const {
    const bool open = o_.rate > 0;
    std::printf("\nchat-bench %s against %s%s%s — %zu users (%zu pairs, %s), %s, %g s measured after %g s warm-up\n",
                scenario_name(o_.scenario), o_.label.empty() ? "" : o_.label.c_str(), o_.label.empty() ? "" : " ",
                o_.scenario == Scenario::cluster ? (o_.url_a + " → " + o_.url_b).c_str() : o_.url.c_str(), o_.users,
                o_.users / 2, o_.both_directions ? "both directions" : "one way",
                open ? ("open loop at " + with_commas(o_.rate) + " msg/s").c_str()
                     : ("closed loop, window " + std::to_string(o_.window) + " per sender").c_str(),
                o_.duration_s, o_.warmup_s);
    std::printf("  connections      %s ok, %s failed; %s senders\n", with_commas(dbl(r, "connect_ok")).c_str(),
                with_commas(dbl(r, "connect_failed")).c_str(), with_commas(dbl(r, "senders_active")).c_str());
    std::printf("  throughput       sent %s/s   acked %s/s   delivered %s/s\n", with_commas(dbl(r, "sent_per_s")).c_str(),
                with_commas(dbl(r, "acked_per_s")).c_str(), with_commas(dbl(r, "delivered_per_s")).c_str());
    std::printf("  latency (µs)           p50       p90       p99     p99.9       max      mean        count\n");
    print_latency_row(open ? "send→delivery*" : "send→delivery", h["hist_e2e"]);
    print_latency_row(open ? "send→ack*" : "send→ack", h["hist_ack"]);
    if (open) {
      print_latency_row("send lag", h["hist_lag"]);
      std::printf("    * from the intended send time (corrected for coordinated omission)\n");
    }
    std::printf("  errors           ack errors %s, ack timeouts %s, disconnects %s, bad payloads %s\n",
                json::serialize(r.at("ack_errors")).c_str(), with_commas(dbl(r, "ack_timeouts")).c_str(),
                with_commas(dbl(r, "disconnects")).c_str(), with_commas(dbl(r, "bad_payloads")).c_str());
    if (o_.mark_read)
      std::printf("  read positions   %s markRead sent (one per message delivered, no ack), %s done"
                  " (messagesRead received)\n",
                  with_commas(dbl(r, "mark_reads")).c_str(), with_commas(dbl(r, "messages_read")).c_str());
    std::printf("  deliveries       missing %s, duplicates %s, without ack %s, from others %s (drained in %.0f ms)\n",
                with_commas(dbl(r, "missing")).c_str(), with_commas(dbl(r, "duplicates")).c_str(),
                with_commas(dbl(r, "unexpected")).c_str(), with_commas(dbl(r, "foreign")).c_str(), dbl(r, "drain_ms"));
    {
      const auto& c = r.at("client").get_object();
      std::printf("  chat-bench       CPU %.1f%% of a core (%.1f µs per message)\n", dbl(c, "cpu_pct"),
                  dbl(c, "us_per_msg"));
    }
    if (const json::value* s = r.if_contains("server"); s && s->is_object()) {
      const auto& so = s->get_object();
      std::printf("  server           pid %d: CPU %.1f%% of a core while measured, RSS %.1f → %.1f MiB\n", o_.server_pid,
                  dbl(so, "cpu_pct"), dbl(so, "rss_kb_before") / 1024, dbl(so, "rss_kb_end") / 1024);
    }
    std::printf("  result           %s\n\n", r.at("ok").as_bool() ? "OK" : "FAILED");
  }

  // ---- idle ---------------------------------------------------------------------------------

  int run_idle() {
    for (auto& w : workers_)
      if (!expect(w, "READY", 60)) return 1;
    const auto base = sample();
    const std::int64_t t0 = now_ns() + 100'000'000;
    // Samples every interval from GO to the end of the hold: the server's RSS and CPU over time.
    std::mutex sm;
    std::vector<ProcSample> series;
    std::atomic<bool> sampling{true};
    std::thread sampler;
    if (o_.server_pid > 0) {
      sampler = std::thread([&] {
        auto next = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t0));
        while (sampling.load()) {
          std::this_thread::sleep_until(next);
          if (auto s = sample()) {
            std::lock_guard lock(sm);
            series.push_back(*s);
          }
          next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              std::chrono::duration<double>(o_.sample_interval_s));
        }
      });
    }
    go(t0);
    std::vector<json::object> connected;
    for (auto& w : workers_) {
      auto c = expect(w, "CONNECTED", o_.connect_timeout_s + 60);
      if (!c) {
        sampling = false;
        if (sampler.joinable()) sampler.join();
        std::fprintf(stderr, "chat-bench: a worker failed while connecting\n");
        return 1;
      }
      connected.push_back(std::move(*c));
    }
    std::int64_t t_last = t0;
    for (auto& c : connected) t_last = std::max<std::int64_t>(t_last, static_cast<std::int64_t>(u64(c, "t_end")));
    const auto s_connected = sample();
    std::map<std::string, Histogram> h;
    json::object m = merge_shards(connected, {"connect_ok", "connect_failed"}, {"hist_connect"}, {"connect_errors"}, h);
    const double connect_s = static_cast<double>(t_last - t0) / 1e9;
    if (!o_.json_only)
      std::fprintf(stderr, "chat-bench: %llu connections in %.2f s; holding %g s\n",
                   (unsigned long long)u64(m, "connect_ok"), connect_s, o_.settle_s + o_.hold_s);
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.settle_s));
    const auto s_hold0 = sample();
    std::this_thread::sleep_for(std::chrono::duration<double>(o_.hold_s));
    const auto s_hold1 = sample();
    sampling = false;
    if (sampler.joinable()) sampler.join();
    for (auto& w : workers_) w.channel->send("STOP");
    std::vector<json::object> done;
    for (auto& w : workers_) {
      auto d = expect(w, "DONE", 60);
      if (d) done.push_back(std::move(*d));
    }
    std::map<std::string, Histogram> unused;
    json::object dm = merge_shards(done, {"disconnects", "pongs"}, {}, {"close_reasons"}, unused);

    json::object r = header();
    r["connections"] = o_.connections;
    r["users"] = users_.size();
    r["connect_ok"] = m["connect_ok"];
    r["connect_failed"] = m["connect_failed"];
    r["connect_errors"] = m["connect_errors"];
    r["connect_concurrency"] = o_.connect_concurrency * o_.procs;
    r["connect_s"] = round2(connect_s);
    r["connect_rate"] = round2(connect_s > 0 ? static_cast<double>(u64(m, "connect_ok")) / connect_s : 0);
    r["latency_us"] = json::object{{"connect", h["hist_connect"].summary_json()}};
    // The generator's cost while connecting: near 100 % of its core(s), the rate is chat-bench's.
    double client_cpu_s = 0;
    for (auto& c : connected) client_cpu_s += dbl(c, "cpu_s");
    r["client"] = json::object{
        // To the 0.1 ms: a small run's connections cost a few ms of CPU in all.
        {"cpu_connect_s", std::round(client_cpu_s * 1e4) / 1e4},
        {"cpu_connect_pct", round2(connect_s > 0 ? 100 * client_cpu_s / connect_s : 0)},
        {"us_per_conn", round2(u64(m, "connect_ok") ? client_cpu_s * 1e6 / static_cast<double>(u64(m, "connect_ok")) : 0)}};
    r["hold_s"] = o_.hold_s;
    r["disconnects"] = dm["disconnects"];
    r["close_reasons"] = dm["close_reasons"];
    r["pongs"] = dm["pongs"];
    if (o_.server_pid > 0) {
      json::object s{{"pid", o_.server_pid}};
      const double ok = static_cast<double>(u64(m, "connect_ok"));
      if (base) s["rss_kb_before"] = base->rss_kb;
      if (s_connected) s["rss_kb_connected"] = s_connected->rss_kb;
      if (s_hold1) s["rss_kb_end"] = s_hold1->rss_kb;
      if (base && s_hold1 && ok > 0)
        s["rss_bytes_per_conn"] =
            round2((static_cast<double>(s_hold1->rss_kb) - static_cast<double>(base->rss_kb)) * 1024 / ok);
      if (base && s_connected) s["cpu_connect_pct"] = round2(cpu_percent(*base, *s_connected));
      if (s_hold0 && s_hold1) s["idle_cpu_pct"] = round2(cpu_percent(*s_hold0, *s_hold1));
      json::array ts;
      for (std::size_t i = 0; i < series.size(); ++i) {
        const auto& x = series[i];
        double cpu = i ? round2(cpu_percent(series[i - 1], x)) : 0.0;
        ts.push_back(json::array{round2(static_cast<double>(x.at_ns - t0) / 1e9), x.rss_kb, cpu});
      }
      s["samples"] = std::move(ts);  // [seconds since GO, RSS KiB, CPU % since the previous sample]
      r["server"] = std::move(s);
    }
    const bool ok = u64(r, "connect_failed") == 0 && u64(r, "disconnects") == 0 && done.size() == workers_.size();
    r["ok"] = ok;
    if (!o_.json_only) print_idle(r, h);
    std::printf("RESULT %s\n", to_json_text(r).c_str());
    std::fflush(stdout);
    return ok ? 0 : 1;
  }

  void print_idle(const json::object& r, std::map<std::string, Histogram>& h) const {
    std::printf("\nchat-bench idle against %s%s%s — %s connections of %zu users, %zu process(es), held %g s\n",
                o_.label.c_str(), o_.label.empty() ? "" : " ", o_.url.c_str(), with_commas(o_.connections).c_str(),
                users_.size(), o_.procs, o_.hold_s);
    std::printf("  connect          %s ok, %s failed in %.2f s: %s connections/s\n",
                with_commas(dbl(r, "connect_ok")).c_str(), with_commas(dbl(r, "connect_failed")).c_str(),
                dbl(r, "connect_s"), with_commas(dbl(r, "connect_rate")).c_str());
    if (u64(r, "connect_failed")) std::printf("  connect errors   %s\n", json::serialize(r.at("connect_errors")).c_str());
    const auto& cl = r.at("client").get_object();
    std::printf("  generator CPU    %.1f%% of a core while connecting (all processes), %.1f µs per connection\n",
                dbl(cl, "cpu_connect_pct"), dbl(cl, "us_per_conn"));
    std::printf("  latency (µs)           p50       p90       p99     p99.9       max      mean        count\n");
    print_latency_row("connect", h["hist_connect"]);
    std::printf("  hold             %s disconnects, %s pings answered\n", with_commas(dbl(r, "disconnects")).c_str(),
                with_commas(dbl(r, "pongs")).c_str());
    if (const json::value* s = r.if_contains("server"); s && s->is_object()) {
      const auto& so = s->get_object();
      std::printf("  server RSS       %.1f MiB before → %.1f MiB connected → %.1f MiB at the end: %s bytes per connection\n",
                  dbl(so, "rss_kb_before") / 1024, dbl(so, "rss_kb_connected") / 1024, dbl(so, "rss_kb_end") / 1024,
                  with_commas(dbl(so, "rss_bytes_per_conn")).c_str());
      std::printf("  server CPU       %.1f%% of a core while connecting, %.2f%% idle (over %g s)\n",
                  dbl(so, "cpu_connect_pct"), dbl(so, "idle_cpu_pct"), o_.hold_s);
    }
    std::printf("  result           %s\n\n", r.at("ok").as_bool() ? "OK" : "FAILED");
  }

  const Options& o_;
  std::vector<std::string> args_;
  std::vector<BenchUser> users_;
  std::vector<WorkerHandle> workers_;
  std::string temp_users_file_;
  double load_at_start_ = 0;
};

int worker_main(const Options& o) {
  auto users = load_users_file(o.users_file);
  auto ch = make_stdio_channel();
  if (!users || users->size() < (o.scenario == Scenario::idle ? 1 : o.users)) {
    std::fprintf(stderr, "chat-bench worker: cannot read users from '%s'\n", o.users_file.c_str());
    ch->send("DONE {\"fatal\":\"no users\"}");
    return 1;
  }
  users->resize(std::min(users->size(), o.users));
  return run_worker(o, *users, *ch);
}

}  // namespace
}  // namespace chat::bench

int main(int argc, char** argv) {
  using namespace chat::bench;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto o = parse_options(args);
  if (!o) {
    if (o.code() == chat::errc::not_found) {
      std::fputs(o.err().message.c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "chat-bench: %s\n", o.err().message.c_str());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  if (o->shard >= 0) return worker_main(*o);
  Coordinator c(*o, args);
  return c.run();
}
