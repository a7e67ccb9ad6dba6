#include "worker.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <optional>

#include <sys/resource.h>

#include "histogram.hpp"
#include "payload_scan.hpp"
#include "proc_stats.hpp"
#include "sio_client.hpp"

namespace chat::bench {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

using Id = std::array<std::uint8_t, 12>;

bool parse_id(std::string_view hex, Id& out) {
  if (hex.size() != 24) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 12; ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::string short_reason(std::string_view why) {
  std::string s(why.substr(0, 100));
  for (char& c : s)
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '\'';
  return s;
}

json::object counts_json(const std::map<std::string, std::uint64_t>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

/// CPU time (user + system) of this process so far, in seconds.
double process_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

asio::steady_timer::time_point at_ns(std::int64_t ns) {
  return asio::steady_timer::time_point(std::chrono::nanoseconds(ns));
}

struct Lane;

/// Ack id → intended send time of the messages awaiting their ack. Ids are handed out in
/// increasing order per connection, so a window over consecutive ids replaces a hash map: O(1)
/// without hashing or a node allocation per message; acks may still come in any order.
class Inflight {
 public:
  void add(std::uint64_t id, std::int64_t intended) {
    if (slots_.empty()) base_ = id;
    if (id < base_ + slots_.size()) return;  // not increasing: never happens (ids are ours)
    while (base_ + slots_.size() < id) slots_.push_back(kGone);
    slots_.push_back(intended);
    ++live_;
  }
  /// Removes `id`; its intended send time, or nullopt when it was not in flight.
  std::optional<std::int64_t> take(std::uint64_t id) {
    if (id < base_ || id - base_ >= slots_.size()) return std::nullopt;
    std::int64_t& slot = slots_[id - base_];
    if (slot == kGone) return std::nullopt;
    const std::int64_t t = slot;
    slot = kGone;
    --live_;
    while (!slots_.empty() && slots_.front() == kGone) {
      slots_.pop_front();
      ++base_;
    }
    return t;
  }
  std::size_t size() const { return live_; }
  void clear() {
    slots_.clear();
    live_ = 0;
  }

 private:
  static constexpr std::int64_t kGone = INT64_MIN;
  std::deque<std::int64_t> slots_;
  std::uint64_t base_ = 0;  ///< the id of slots_.front()
  std::size_t live_ = 0;
};

/// One socket of one user.
struct Conn {
  std::size_t index = 0;  ///< in Worker::conns_ (the connection's tag)
  std::size_t user = 0;   ///< index into the run's users
  Lane* lane = nullptr;
  std::shared_ptr<SioConnection> sio;
  ConnectTarget target;
  std::string auth;
  std::int64_t started_ns = 0;
  // Written on the connection's lane; atomic because a peer on another lane reads them.
  std::atomic<bool> connected{false};
  std::atomic<bool> closed{false};
  // dm
  Conn* peer = nullptr;
  std::string peer_id;
  bool sends = false;
  std::string event_prefix;  ///< ["sendMessage",{"to":"<peer>","text":"
  double interval_ns = 0;
  std::uint64_t seq = 0;
  Inflight inflight;
  std::vector<Id> acked;
  std::vector<Id> received;
};

/// One I/O thread with its io_context and its own counters (touched only on that thread, except
/// the atomics the coordinating thread polls).
struct Lane {
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ioc);
  asio::steady_timer timer{ioc};
  std::thread thread;
  std::vector<Conn*> conns;

  // connecting
  std::size_t connect_next = 0;
  std::size_t connecting = 0;
  std::size_t connect_slots = 1;

  // open-loop schedule: (intended time, conn)
  std::priority_queue<std::pair<std::int64_t, Conn*>, std::vector<std::pair<std::int64_t, Conn*>>,
                      std::greater<>>
      due;

  Histogram e2e, ack, lag, connect;
  std::string scratch;  ///< send_one's event text
  std::string scratch_read;  ///< on_event's markRead text
  PayloadScanner scanner;
  ScannedEvent event;
  ScannedAck ack_scan;
  std::uint64_t sent = 0, sent_window = 0, acked = 0, acked_window = 0, delivered = 0,
                delivered_window = 0, foreign = 0, bad_payload = 0, ack_lost = 0, pongs = 0,
                mark_reads = 0, messages_read = 0;
  std::map<std::string, std::uint64_t> ack_errors, connect_errors, close_reasons;

  std::atomic<std::uint64_t> a_connect_done{0}, a_connected{0}, a_acked{0}, a_delivered{0},
      a_inflight{0}, a_closed{0};
};

class Worker final : public SioHandler {
 public:
  Worker(const Options& o, const std::vector<BenchUser>& users, Channel& ch)
      : o_(o), users_(users), ch_(ch) {
    std::random_device rd;
    run_id_ = std::to_string(rd() % 1000000000u);
    std::size_t lanes = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
    for (std::size_t i = 0; i < lanes; ++i) lanes_.push_back(std::make_unique<Lane>());
  }

  ~Worker() override {
    for (auto& l : lanes_) {
      l->guard.reset();
      l->ioc.stop();
      if (l->thread.joinable()) l->thread.join();
    }
    for (auto& c : conns_) c.sio.reset();  // before their io_contexts go
    lanes_.clear();
  }

  int run() {
    auto a = parse_url(o_.url_a);
    auto b = parse_url(o_.url_b);
    if (!a || !b) {
      ch_.send("DONE " + json::serialize(json::object{{"fatal", "bad URL"}}));
      return 1;
    }
    ep_a_ = *a;
    ep_b_ = *b;
    const std::size_t shard = o_.shard < 0 ? 0 : static_cast<std::size_t>(o_.shard);
    if (o_.scenario == Scenario::idle) plan_idle(shard);
    else plan_dm(shard);
    for (auto& l : lanes_) l->thread = std::thread([lane = l.get()] { lane->ioc.run(); });
    return o_.scenario == Scenario::idle ? run_idle() : run_dm();
  }

  // ---- SioHandler (called on the connection's lane thread) ----------------------------------

  void on_connect(SioConnection& c) override {
    Conn& k = conns_[c.tag()];
    Lane& l = *k.lane;
    k.connected = true;
    l.connect.record((now_ns() - k.started_ns) / 1000);
    l.a_connected.fetch_add(1, std::memory_order_relaxed);
    connect_finished(l);
  }

  void on_close(SioConnection& c, std::string_view why) override {
    Conn& k = conns_[c.tag()];
    Lane& l = *k.lane;
    k.closed = true;
    if (!k.connected) {
      ++l.connect_errors[short_reason(why)];
      connect_finished(l);
      return;
    }
    ++l.close_reasons[short_reason(why)];
    l.a_closed.fetch_add(1, std::memory_order_relaxed);
    l.pongs += c.pongs();
    l.ack_lost += k.inflight.size();
    l.a_inflight.fetch_sub(k.inflight.size(), std::memory_order_relaxed);
    k.inflight.clear();
  }

  void on_event(SioConnection& c, std::string_view args) override {
    Conn& k = conns_[c.tag()];
    Lane& l = *k.lane;
    ScannedEvent& e = l.event;
    if (!l.scanner.scan_event(args, e)) {
      ++l.bad_payload;
      return;
    }
    if (e.args >= 2 && e.name.is_string() && e.name.value == "messagesRead") {
      ++l.messages_read;  // a peer's markRead done by the server
      return;
    }
    if (e.args < 2 || !e.name.is_string() || e.name.value != "newMessage") return;
    const std::int64_t now = now_ns();
    Id parsed{};
    if (!e.arg1_object || !e.id.is_string() || !parse_id(e.id.value, parsed) || !e.sender_id.is_string() ||
        !e.text.is_string()) {
      ++l.bad_payload;
      return;
    }
    if (e.sender_id.value != k.peer_id) {
      ++l.foreign;
      return;
    }
    k.received.push_back(parsed);
    ++l.delivered;
    l.a_delivered.fetch_add(1, std::memory_order_relaxed);
    if (now >= t_m0_ && now <= t_end_) ++l.delivered_window;
    std::string_view t = e.text.value;
    std::int64_t intended = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), intended);
    if (ec != std::errc{}) {
      ++l.bad_payload;
      return;
    }
    if (intended >= t_m0_) l.e2e.record((now - intended) / 1000);
    if (o_.mark_read && !k.closed) {
      std::string& ev = l.scratch_read;
      ev.assign(R"(["markRead",{"peerId":")").append(k.peer_id).append(R"(","upTo":")");
      ev.append(e.id.value).append(R"("}])");
      c.emit(ev, false);
      ++l.mark_reads;
    }
  }

  void on_ack(SioConnection& c, std::uint64_t id, std::string_view args) override {
    const std::int64_t now = now_ns();
    Conn& k = conns_[c.tag()];
    Lane& l = *k.lane;
    const std::optional<std::int64_t> taken = k.inflight.take(id);
    if (!taken) return;
    const std::int64_t intended = *taken;
    l.a_inflight.fetch_sub(1, std::memory_order_relaxed);
    ScannedAck& a = l.ack_scan;
    const bool body = l.scanner.scan_ack(args, a) && a.arg0_object;
    if (body && a.status.is_string() && a.status.value == "ok") {
      Id parsed{};
      if (a.message_object && a.message_id.is_string() && parse_id(a.message_id.value, parsed)) {
        k.acked.push_back(parsed);
        ++l.acked;
        l.a_acked.fetch_add(1, std::memory_order_relaxed);
        if (now >= t_m0_ && now <= t_end_) ++l.acked_window;
        if (intended >= t_m0_) l.ack.record((now - intended) / 1000);
      } else {
        ++l.ack_errors["ok without message._id"];
      }
    } else {
      ++l.ack_errors[body && a.code.is_string() ? short_reason(a.code.value) : "malformed ack"];
    }
    if (closed_loop() && sending_ && now < t_end_ && !k.closed) send_one(k, now);
  }

 private:
  bool closed_loop() const { return o_.rate <= 0; }

  std::string auth_for(std::size_t user) const {
    json::object a{{"token", users_[user].token}};
    if (!o_.presence.empty()) a["presence"] = o_.presence;
    return json::serialize(a);
  }

  Conn& add_conn(std::size_t global_index, std::size_t user, const Endpoint& ep) {
    Conn& k = conns_.emplace_back();
    k.index = conns_.size() - 1;
    k.user = user;
    k.target.host = ep.host;
    k.target.port = ep.port;
    if (!o_.source_addrs.empty()) k.target.source_address = o_.source_addrs[global_index % o_.source_addrs.size()];
    k.auth = auth_for(user);
    return k;
  }

  void assign_lanes() {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      Lane& l = *lanes_[i % lanes_.size()];
      conns_[i].lane = &l;
      l.conns.push_back(&conns_[i]);
    }
    for (auto& l : lanes_) l->connect_slots = std::max<std::size_t>(1, o_.connect_concurrency / lanes_.size());
  }

  void plan_dm(std::size_t shard) {
    const std::size_t pairs = o_.users / 2;
    for (std::size_t p = shard; p < pairs; p += o_.shards) {
      Conn& x = add_conn(2 * p, 2 * p, ep_a_);
      Conn& y = add_conn(2 * p + 1, 2 * p + 1, ep_b_);
      x.peer = &y;
      y.peer = &x;
      x.peer_id = users_[y.user].id;
      y.peer_id = users_[x.user].id;
      x.sends = true;
      y.sends = o_.both_directions;
    }
    for (auto& k : conns_)
      if (k.sends) k.event_prefix = R"(["sendMessage",{"to":")" + k.peer_id + R"(","text":")";
    total_senders_ = pairs * (o_.both_directions ? 2 : 1);
    assign_lanes();
  }

  void plan_idle(std::size_t shard) {
    for (std::size_t i = shard; i < o_.connections; i += o_.shards) add_conn(i, i % users_.size(), ep_a_);
    assign_lanes();
  }

  // ---- connecting (lane thread) --------------------------------------------------------------

  void start_connecting(Lane& l) {
    while (l.connecting < l.connect_slots && l.connect_next < l.conns.size()) {
      Conn& k = *l.conns[l.connect_next++];
      ++l.connecting;
      k.started_ns = now_ns();
      k.sio = SioConnection::make(l.ioc, *this, k.target, k.auth, k.index);
      k.sio->start();
    }
  }

  void connect_finished(Lane& l) {
    --l.connecting;
    l.a_connect_done.fetch_add(1, std::memory_order_relaxed);
    start_connecting(l);
  }

  std::uint64_t sum(std::atomic<std::uint64_t> Lane::*f) const {
    std::uint64_t s = 0;
    for (const auto& l : lanes_) s += ((*l).*f).load(std::memory_order_relaxed);
    return s;
  }

  /// Starts every lane's connects and waits until all attempts finished (or the timeout).
  /// Returns the steady-clock time the last one finished.
  std::int64_t connect_all() {
    for (auto& l : lanes_) asio::post(l->ioc, [this, lane = l.get()] { start_connecting(*lane); });
    const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(o_.connect_timeout_s * 1e9);
    std::int64_t last = now_ns();
    while (sum(&Lane::a_connect_done) < conns_.size() && now_ns() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      last = now_ns();
    }
    return last;
  }

  /// Runs `fn` on every lane and waits for it.
  template <class Fn>
  void on_lanes(Fn fn) {
    std::atomic<std::size_t> left{lanes_.size()};
    for (auto& l : lanes_)
      asio::post(l->ioc, [&, lane = l.get()] {
        fn(*lane);
        left.fetch_sub(1);
      });
    while (left.load() > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }

  std::optional<std::int64_t> wait_go() {
    for (;;) {
      auto line = ch_.receive(std::chrono::seconds(1));
      if (!line) {
        if (ch_.closed()) return std::nullopt;
        continue;
      }
      if (line->starts_with("GO ")) {
        std::int64_t t0 = 0;
        auto s = std::string_view(*line).substr(3);
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), t0);
        if (ec == std::errc{}) return t0;
      }
      if (*line == "ABORT") return std::nullopt;
    }
  }

  json::object connect_json() {
    std::uint64_t ok = 0;
    std::map<std::string, std::uint64_t> errors;
    Histogram h;
    std::mutex m;
    on_lanes([&](Lane& l) {
      std::lock_guard lock(m);
      for (const auto& [k, v] : l.connect_errors) errors[k] += v;
      h.merge(l.connect);
    });
    ok = sum(&Lane::a_connected);
    return json::object{{"connect_ok", ok},
                        {"connect_failed", conns_.size() - std::min<std::uint64_t>(ok, conns_.size())},
                        {"connect_errors", counts_json(errors)},
                        {"hist_connect", h.to_json()}};
  }

  // ---- dm / cluster --------------------------------------------------------------------------

  void send_one(Conn& k, std::int64_t intended) {
    Lane& l = *k.lane;
    ++k.seq;
    // Built in the lane's scratch string: no allocation per message once it has grown.
    std::string& ev = l.scratch;
    ev.clear();
    ev += k.event_prefix;
    const std::size_t text_at = ev.size();
    char num[48];
    auto r1 = std::to_chars(num, num + sizeof num, intended);
    ev.append(num, r1.ptr);
    ev.push_back(' ');
    auto r2 = std::to_chars(num, num + sizeof num, k.seq);
    ev.append(num, r2.ptr);
    ev.push_back(' ');
    if (ev.size() - text_at < o_.text_bytes) ev.append(o_.text_bytes - (ev.size() - text_at), 'x');
    ev += R"(","clientMsgId":")";
    ev += run_id_;
    ev.push_back('-');
    ev.append(num, r2.ptr);
    ev += R"("}])";
    const std::uint64_t id = k.sio->emit(ev, true);
    if (id == 0) return;  // closed
    k.inflight.add(id, intended);
    l.a_inflight.fetch_add(1, std::memory_order_relaxed);
    ++l.sent;
    if (intended >= t_m0_) ++l.sent_window;
    if (!closed_loop()) l.lag.record((now_ns() - intended) / 1000);
  }

  void arm_schedule(Lane& l) {
    if (l.due.empty()) return;
    // Wake on the tick grid: one wake-up (and one timer reprogramming) sends everything due.
    const std::int64_t tick = o_.tick_us * 1000;
    const std::int64_t due = l.due.top().first;
    l.timer.expires_at(at_ns(due + (tick - (due - t0_) % tick) % tick));
    l.timer.async_wait([this, &l](boost::system::error_code ec) {
      if (!ec) on_schedule(l);
    });
  }

  void on_schedule(Lane& l) {
    if (!sending_) return;
    const std::int64_t now = now_ns();
    while (!l.due.empty() && l.due.top().first <= now) {
      auto [t, k] = l.due.top();
      l.due.pop();
      if (k->closed) continue;
      send_one(*k, t);
      const auto next = t + static_cast<std::int64_t>(k->interval_ns);
      if (next < t_end_) l.due.emplace(next, k);
    }
    arm_schedule(l);
  }

  void start_sending(Lane& l) {
    for (Conn* k : l.conns) {
      if (!k->sends || !k->connected || k->closed || !k->peer->connected || k->peer->closed) continue;
      if (closed_loop()) {
        for (std::size_t i = 0; i < o_.window; ++i) send_one(*k, now_ns());
      } else {
        k->interval_ns = 1e9 * static_cast<double>(total_senders_) / o_.rate;
        // Spread the senders evenly over one interval so the total rate is smooth.
        const double phase = k->interval_ns * static_cast<double>(k->user) / static_cast<double>(o_.users);
        l.due.emplace(t0_ + static_cast<std::int64_t>(phase), k);
      }
    }
    if (!closed_loop()) arm_schedule(l);
  }

  int run_dm() {
    connect_all();
    json::object ready = connect_json();
    std::atomic<std::size_t> active{0};
    // Read on the lanes: a connection's flags belong to its lane's thread (a peer on another lane
    // may still change, which at worst miscounts a sender that is about to fail anyway).
    on_lanes([&](Lane& l) {
      for (const Conn* k : l.conns)
        if (k->sends && k->connected && !k->closed) ++active;
    });
    ready["senders_active"] = active.load();
    ch_.send("READY " + json::serialize(ready));
    auto go = wait_go();
    if (!go) return 1;
    t0_ = *go;
    const double cpu0 = process_cpu_s();
    t_m0_ = t0_ + static_cast<std::int64_t>(o_.warmup_s * 1e9);
    t_end_ = t_m0_ + static_cast<std::int64_t>(o_.duration_s * 1e9);
    sending_ = true;
    for (auto& l : lanes_) {
      asio::post(l->ioc, [this, lane = l.get()] {
        lane->timer.expires_at(at_ns(t0_));
        lane->timer.async_wait([this, lane](boost::system::error_code ec) {
          if (!ec) start_sending(*lane);
        });
      });
    }
    std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(t_end_)));
    // Drain: no new sends; wait for outstanding acks and for every acked message to be delivered.
    on_lanes([](Lane& l) {
      l.timer.cancel();
      l.due = {};
    });
    sending_ = false;
    const std::int64_t drain_deadline = now_ns() + static_cast<std::int64_t>(o_.drain_s * 1e9);
    while (now_ns() < drain_deadline) {
      if (sum(&Lane::a_inflight) == 0 && sum(&Lane::a_delivered) >= sum(&Lane::a_acked)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const std::int64_t drained = now_ns();
    const double cpu_used = process_cpu_s() - cpu0;
    // Stop the lanes, then everything below reads lane and connection state single-threaded.
    on_lanes([](Lane& l) {
      for (Conn* k : l.conns) {
        if (k->sio && !k->closed) {
          l.pongs += k->sio->pongs();
          l.ack_lost += k->inflight.size();
          k->sio->disconnect();
        }
      }
    });
    for (auto& l : lanes_) {
      l->guard.reset();
      l->ioc.stop();
      l->thread.join();
    }
    json::object done = connect_json_locked();
    std::size_t active_now = 0;
    std::uint64_t missing = 0, duplicates = 0, unexpected = 0;
    for (auto& k : conns_) {
      if (!k.sends) continue;
      if (!k.acked.empty() || k.seq) ++active_now;
      auto& got = k.peer->received;
      std::sort(got.begin(), got.end());
      std::sort(k.acked.begin(), k.acked.end());
    }
    for (auto& k : conns_) {
      if (!k.sends) continue;
      const auto& got = k.peer->received;
      for (std::size_t i = 1; i < got.size(); ++i)
        if (got[i] == got[i - 1]) ++duplicates;
      for (const Id& id : k.acked)
        if (!std::binary_search(got.begin(), got.end(), id)) ++missing;
      for (std::size_t i = 0; i < got.size(); ++i) {
        if (i > 0 && got[i] == got[i - 1]) continue;
        if (!std::binary_search(k.acked.begin(), k.acked.end(), got[i])) ++unexpected;
      }
    }
    done["senders_active"] = active_now;
    Histogram e2e, ack, lag;
    std::map<std::string, std::uint64_t> ack_errors, close_reasons;
    std::uint64_t sent = 0, sent_window = 0, acked = 0, acked_window = 0, delivered = 0, delivered_window = 0,
                  foreign = 0, bad = 0, lost = 0, pongs = 0, closed = 0, mark_reads = 0,
                  messages_read = 0;
    for (auto& l : lanes_) {
      e2e.merge(l->e2e);
      ack.merge(l->ack);
      lag.merge(l->lag);
      for (const auto& [k, v] : l->ack_errors) ack_errors[k] += v;
      for (const auto& [k, v] : l->close_reasons) close_reasons[k] += v;
      sent += l->sent;
      sent_window += l->sent_window;
      acked += l->acked;
      acked_window += l->acked_window;
      delivered += l->delivered;
      delivered_window += l->delivered_window;
      foreign += l->foreign;
      bad += l->bad_payload;
      lost += l->ack_lost;
      pongs += l->pongs;
      mark_reads += l->mark_reads;
      messages_read += l->messages_read;
      closed += l->a_closed.load();
    }
    done["sent"] = sent;
    done["sent_window"] = sent_window;
    done["acked"] = acked;
    done["acked_window"] = acked_window;
    done["delivered"] = delivered;
    done["delivered_window"] = delivered_window;
    done["ack_errors"] = counts_json(ack_errors);
    done["ack_timeouts"] = lost;
    done["missing"] = missing;
    done["duplicates"] = duplicates;
    done["unexpected"] = unexpected;
    done["foreign"] = foreign;
    done["bad_payloads"] = bad;
    done["disconnects"] = closed;
    done["close_reasons"] = counts_json(close_reasons);
    done["pongs"] = pongs;
    done["mark_reads"] = mark_reads;
    done["messages_read"] = messages_read;
    done["drain_ms"] = static_cast<double>(drained - t_end_) / 1e6;
    done["cpu_s"] = cpu_used;  // this process, from GO to the end of the drain
    done["elapsed_s"] = static_cast<double>(drained - t0_) / 1e9;
    done["hist_e2e"] = e2e.to_json();
    done["hist_ack"] = ack.to_json();
    done["hist_lag"] = lag.to_json();
    ch_.send("DONE " + json::serialize(done));
    return 0;
  }

  /// connect_json() once the lanes are stopped (no posting).
  json::object connect_json_locked() {
    std::map<std::string, std::uint64_t> errors;
    Histogram h;
    for (auto& l : lanes_) {
      for (const auto& [k, v] : l->connect_errors) errors[k] += v;
      h.merge(l->connect);
    }
    const std::uint64_t ok = sum(&Lane::a_connected);
    return json::object{{"connect_ok", ok},
                        {"connect_failed", conns_.size() - std::min<std::uint64_t>(ok, conns_.size())},
                        {"connect_errors", counts_json(errors)},
                        {"hist_connect", h.to_json()}};
  }

  // ---- idle ----------------------------------------------------------------------------------

  int run_idle() {
    ch_.send("READY " + json::serialize(json::object{{"connections", conns_.size()}}));
    auto go = wait_go();
    if (!go) return 1;
    std::this_thread::sleep_until(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*go)));
    const std::int64_t started = now_ns();
    const double cpu0 = process_cpu_s();
    const std::int64_t finished = connect_all();
    const double cpu_used = process_cpu_s() - cpu0;
    json::object c = connect_json();
    c["t_start"] = started;
    c["t_end"] = finished;
    c["cpu_s"] = cpu_used;  // this process, while connecting
    ch_.send("CONNECTED " + json::serialize(c));
    for (;;) {
      auto line = ch_.receive(std::chrono::seconds(1));
      if (line && (*line == "STOP" || *line == "ABORT")) break;
      if (!line && ch_.closed()) break;
    }
    on_lanes([](Lane& l) {
      for (Conn* k : l.conns) {
        if (k->sio && !k->closed) {
          l.pongs += k->sio->pongs();
          k->sio->disconnect();
        }
      }
    });
    for (auto& l : lanes_) {
      l->guard.reset();
      l->ioc.stop();
      l->thread.join();
    }
    std::map<std::string, std::uint64_t> close_reasons;
    std::uint64_t pongs = 0, closed = 0;
    for (auto& l : lanes_) {
      for (const auto& [k, v] : l->close_reasons) close_reasons[k] += v;
      pongs += l->pongs;
      closed += l->a_closed.load();
    }
    ch_.send("DONE " + json::serialize(json::object{
                           {"disconnects", closed}, {"close_reasons", counts_json(close_reasons)}, {"pongs", pongs}}));
    return 0;
  }

  const Options& o_;
  const std::vector<BenchUser>& users_;
  Channel& ch_;
  Endpoint ep_a_, ep_b_;
  std::string run_id_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::deque<Conn> conns_;  ///< a deque: Conn* stay valid as it grows
  std::size_t total_senders_ = 0;
  std::int64_t t0_ = 0;
  std::int64_t t_m0_ = INT64_MAX;
  std::int64_t t_end_ = INT64_MAX;
  std::atomic<bool> sending_{false};
};

}  // namespace

int run_worker(const Options& o, const std::vector<BenchUser>& users, Channel& channel) {
  Worker w(o, users, channel);
  return w.run();
}

}  // namespace chat::bench
