// RedisBus: cross-instance events, cluster-wide presence, shared rate limits and claims over
// Redis 7 (a single server or a Redis Cluster).
//
// Design choices (see docs/bus.md for the summary):
// - I/O: hiredis 0.14's async context is not used. It knows SUBSCRIBE but not SSUBSCRIBE: an
//   "smessage" push is either an unsolicited reply (it asserts and aborts the process) or, on a
//   SUBSCRIBE-mode context, looked up in its channel table and silently dropped. So the bus
//   owns its sockets (Boost.Asio, one io_context and one thread per bus) and uses hiredis only
//   as the RESP parser (redisReader, bounded by resp::Parser). Every connection is a pipeline:
//   one FIFO of reply callbacks; on a subscriber connection replies nobody waits for are pushes.
// - Topology: at connect, CLUSTER SLOTS on a seed decides single vs cluster ("cluster support
//   disabled" → single). Per master: one command connection and one subscriber connection. All
//   routing is in cluster_slots.{hpp,cpp}. A MOVED reply to a known node re-routes that slot and
//   retries once; to an unknown node (or a changed map in the periodic CLUSTER SLOTS check, or a
//   MOVED on a subscription) the bus reconnects from scratch, which re-subscribes everything.
//   Any connection failure also reconnects everything: simple, and a cluster missing a master
//   is down anyway (cluster-require-full-coverage).
// - Events: one sharded channel per user, chat:u:{<id>} (the hash tag makes the channel's slot
//   the user's); SSUBSCRIBE on the user's first local socket, SUNSUBSCRIBE after the last, so a
//   message only reaches the instances that have the user. The envelope carries the origin
//   instance, whose own echo is dropped.
// - Presence: each instance owns SET chat:presence:{<id>} and a score in ZSET chat:instances
//   (last heartbeat, wall ms). Deltas, heartbeats (count + xor digest of the set) and goodbyes go
//   on the plain Pub/Sub channel chat:presence, published on the connection that writes the set,
//   so they arrive in order; PUBLISH reaches every node's subscribers in a cluster. A heartbeat
//   whose count/digest differ from the local copy triggers SMEMBERS of that set: the view
//   converges even when a delta raced a resync. Instances not heard from for presence_ttl are
//   dropped by a sweep — only while connected: while Redis is away nothing can be learnt, and
//   the reconnect does a full resync (ZRANGEBYSCORE + SMEMBERS) that replaces the view.
// - Ordering of presence callbacks: every transition is computed under mu_ and posted to the
//   bus thread while mu_ is held, so handlers see a user's transitions in the order they happened.
// - Rate limits: fixed windows aligned to multiples of window_ms (so instances agree on them),
//   key chat:rl:{<name>:<key>}:<window start>. hit() decides from the last count Redis returned
//   plus this instance's hits not yet acknowledged, and never waits; a flush ~5 ms later sends
//   one INCRBY (+PEXPIRE) per dirty key. Over-admission bound: in one window an instance can
//   admit what the others admitted since its last INCRBY reply, so the cluster admits at most
//   max + (hits admitted elsewhere during one flush + round trip); while Redis is down each
//   instance counts alone (at most instances × max). A lost reply re-sends (errs toward refusing).
// - Bounds: caller commands (publish, claim, rate-limit syncs) count against max_queued_commands
//   from the moment they are posted until Redis answers; presence/subscription commands are
//   bounded by the number of local users. Redis down: publish() drops and counts.
#include "bus/redis_bus.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "bus/cluster_slots.hpp"
#include "bus/presence_view.hpp"
#include "bus/resp.hpp"
#include "bus/wire.hpp"
#include "core/log.hpp"
#include "core/sched.hpp"
#include "core/time.hpp"
#include "metrics/metrics.hpp"

namespace chat::bus {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

/// nullptr: the connection was lost before the reply came.
using ReplyCb = std::function<void(resp::Reply*)>;

// One TCP connection to one Redis node: handshake (AUTH, SELECT), pipelined commands with a
// FIFO of callbacks, pushes for subscriber connections. Lives on the bus thread only.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Hooks {
    std::function<void(resp::Reply&&)> on_push;   // subscriber connections
    std::function<void(std::string)> on_failed;   // not called after close()
  };

  Connection(asio::io_context& io, cluster::Node node, const wire::RedisTarget& target,
             bool subscriber, std::chrono::milliseconds connect_timeout, Hooks hooks)
      : resolver_(io),
        socket_(io),
        timer_(io),
        node_(std::move(node)),
        target_(target),
        subscriber_(subscriber),
        connect_timeout_(connect_timeout),
        hooks_(std::move(hooks)) {}

  void start(std::function<void()> on_ready) {
    on_ready_ = std::move(on_ready);
    timer_.expires_after(connect_timeout_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && !self->ready_) self->fail("connect timeout");
    });
    resolver_.async_resolve(
        node_.host, std::to_string(node_.port),
        [self = shared_from_this()](boost::system::error_code ec, tcp::resolver::results_type r) {
          if (self->closed_) return;
          if (ec) return self->fail("resolve " + self->node_.host + ": " + ec.message());
          asio::async_connect(self->socket_, r,
                              [self](boost::system::error_code ec, const tcp::endpoint&) {
                                self->on_connect(ec);
                              });
        });
  }

  void command(const std::vector<std::string_view>& argv, ReplyCb cb) {
    if (closed_) {
      if (cb) cb(nullptr);
      return;
    }
    resp::encode(out_, argv);
    pending_.push_back({std::move(cb), Clock::now()});
    flush();
  }

  /// Subscriber connections: the reply comes back as a push.
  void send(const std::vector<std::string_view>& argv) {
    if (closed_) return;
    resp::encode(out_, argv);
    flush();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    ready_ = false;
    boost::system::error_code ec;
    socket_.close(ec);
    resolver_.cancel();
    timer_.cancel();
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& p : pending)
      if (p.cb) p.cb(nullptr);
  }

  bool ready() const { return ready_; }
  std::optional<Clock::time_point> oldest_pending() const {
    if (pending_.empty()) return std::nullopt;
    return pending_.front().sent;
  }
  const cluster::Node& node() const { return node_; }

 private:
  struct Pending {
    ReplyCb cb;
    Clock::time_point sent;
  };

  void fail(std::string reason) {
    if (closed_) return;
    close();
    if (hooks_.on_failed) hooks_.on_failed(node_.address() + ": " + reason);
  }

  void on_connect(boost::system::error_code ec) {
    if (closed_) return;
    if (ec) return fail("connect: " + ec.message());
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    do_read();
    // Handshake: the last handshake reply makes the connection ready.
    std::vector<std::vector<std::string_view>> steps;
    if (!target_.password.empty()) {
      if (target_.username.empty())
        steps.push_back({"AUTH", target_.password});
      else
        steps.push_back({"AUTH", target_.username, target_.password});
    }
    if (target_.db != 0 && !subscriber_) {
      db_text_ = std::to_string(target_.db);
      steps.push_back({"SELECT", db_text_});
    }
    if (steps.empty()) return become_ready();
    auto remaining = std::make_shared<std::size_t>(steps.size());
    for (const auto& step : steps) {
      std::string what(step[0]);
      command(step, [self = shared_from_this(), remaining, what](resp::Reply* r) {
        if (r == nullptr) return;
        if (r->is_error()) return self->fail(what + " failed: " + r->str);
        if (--*remaining == 0) self->become_ready();
      });
    }
  }

  void become_ready() {
    ready_ = true;
    timer_.cancel();
    if (on_ready_) on_ready_();
  }

  void flush() {
    if (write_in_flight_ || out_.empty() || !socket_.is_open()) return;
    writing_.swap(out_);
    write_in_flight_ = true;
    asio::async_write(socket_, asio::buffer(writing_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->write_in_flight_ = false;
                        if (self->closed_) return;
                        if (ec) return self->fail("write: " + ec.message());
                        self->writing_.clear();
                        if (self->writing_.capacity() > (1u << 20)) self->writing_.shrink_to_fit();
                        self->flush();
                      });
  }

  void do_read() {
    socket_.async_read_some(
        asio::buffer(buf_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          self->on_read(ec, n);
        });
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (closed_) return;
    if (ec) return fail(ec == asio::error::eof ? "closed by the server" : "read: " + ec.message());
    if (!parser_.feed(buf_.data(), n)) return fail("protocol: " + parser_.error());
    resp::Reply reply;
    for (;;) {
      auto st = parser_.next(reply);
      if (st == resp::Parser::Status::incomplete) break;
      if (st == resp::Parser::Status::error) return fail("protocol: " + parser_.error());
      dispatch(std::move(reply));
      if (closed_) return;
    }
    do_read();
  }

  void dispatch(resp::Reply&& reply) {
    if (!pending_.empty()) {
      auto cb = std::move(pending_.front().cb);
      pending_.pop_front();
      if (cb) cb(&reply);
      return;
    }
    if (subscriber_ && hooks_.on_push) return hooks_.on_push(std::move(reply));
    fail("unexpected reply: " + reply.str);
  }

  tcp::resolver resolver_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  cluster::Node node_;
  const wire::RedisTarget& target_;
  bool subscriber_;
  std::chrono::milliseconds connect_timeout_;
  Hooks hooks_;
  std::function<void()> on_ready_;
  std::string db_text_;
  resp::Parser parser_;
  std::deque<Pending> pending_;
  std::string out_, writing_;
  bool write_in_flight_ = false;
  bool ready_ = false;
  bool closed_ = false;
  std::array<char, 16384> buf_{};
};

// Shared between a rate limiter (any thread) and the bus thread's flushes.
struct LimiterState {
  struct Entry {
    std::int64_t window_start = 0;
    std::uint32_t known = 0;     // the cluster-wide count Redis last returned
    std::uint32_t pending = 0;   // admitted here, not yet sent
    std::uint32_t inflight = 0;  // sent, not yet acknowledged
    bool dirty = false;
  };
  std::string name;
  std::uint32_t max = 0;
  std::int64_t window_ms = 1;
  std::size_t max_keys = 0;
  std::mutex mu;
  std::unordered_map<std::string, Entry> entries;
  std::vector<std::string> dirty;
  bool flush_posted = false;
};

class Core;

class CorePresence final : public Presence {
 public:
  explicit CorePresence(const Core& core) : core_(core) {}
  bool is_online(std::string_view user_id) const override;
  std::vector<std::string> online_users() const override;

 private:
  const Core& core_;
};

class Core {
 public:
  Core(RedisBusOptions opts, wire::RedisTarget target)
      : opts_(std::move(opts)),
        target_(std::move(target)),
        view_(opts_.instance_id, opts_.presence_ttl.count()),
        presence_(*this),
        reconnect_timer_(io_),
        heartbeat_timer_(io_),
        sweep_timer_(io_),
        topology_timer_(io_),
        rng_(std::random_device{}()) {
    if (opts_.metrics == nullptr) {
      own_registry_ = std::make_unique<metrics::Registry>();
      opts_.metrics = own_registry_.get();
    }
    auto& reg = *opts_.metrics;
    m_up_ = reg.gauge("chat_bus_up", "1 when the Redis bus is connected and subscribed");
    m_published_ = reg.counter("chat_bus_published_total", "User events published to Redis");
    m_received_ = reg.counter("chat_bus_received_total",
                              "User events received from other instances and delivered");
    m_dropped_ = reg.counter("chat_bus_dropped_total",
                             "User events dropped (Redis unreachable, queue full, errors)");
    m_reconnects_ = reg.counter("chat_bus_reconnects_total", "Redis bus reconnections");
    m_queue_ = reg.gauge("chat_bus_queue_commands",
                         "Caller commands queued for Redis and not yet answered");
    m_claim_ = reg.histogram("chat_bus_claim_duration_seconds",
                             "Idempotency claims in Redis: from the request to its answer",
                             {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
    m_up_.set(0);
    self_ = opts_.instance_id;
  }

  ~Core() { shutdown(false); }

  // ---- public API (any thread) ----

  void on_user_event(Bus::EventHandler h) { event_handler_ = std::move(h); }
  void on_presence(Bus::PresenceHandler h) { presence_handler_ = std::move(h); }

  void start() {
    if (started_.exchange(true)) return;
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] {
      (void)request_time_slice(opts_.thread_slice);  // 0: the kernel's default
      try {
        io_.run();
      } catch (const std::exception& e) {
        spdlog::error("redis bus: I/O thread stopped: {}", e.what());
      }
    });
    asio::post(io_, [this] {
      {
        std::lock_guard lock(mu_);
        reconcile_posted_ = false;
      }
      schedule_timers();
      connect();
    });
  }

  /// graceful: announce the departure and delete own keys first.
  void shutdown(bool graceful) {
    if (shut_down_.exchange(true)) return;
    if (!started_) return;
    if (graceful) {
      auto done = std::make_shared<std::promise<void>>();
      auto fut = done->get_future();
      asio::post(io_, [this, done] { goodbye([done] { done->set_value(); }); });
      fut.wait_for(std::min<std::chrono::milliseconds>(opts_.command_timeout, 2000ms));
    }
    asio::post(io_, [this] {
      state_ = State::stopped;
      up_ = false;
      m_up_.set(0);
      reconnect_timer_.cancel();
      heartbeat_timer_.cancel();
      sweep_timer_.cancel();
      topology_timer_.cancel();
      close_all();
      work_.reset();
      io_.stop();
    });
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();  // called from a handler: cannot join itself
      } else {
        thread_.join();
      }
    }
  }

  void publish(UserEvent ev) {
    if (!wire::valid_user_id(ev.user_id) || !up_ || shut_down_) {
      m_dropped_.inc();
      return;
    }
    if (!reserve()) {
      m_dropped_.inc();
      return;
    }
    auto channel = std::make_shared<std::string>(wire::user_channel(ev.user_id));
    auto data = std::make_shared<std::string>(wire::encode_event(self_, ev));
    asio::post(io_, [this, channel, data] { send_publish(channel, data, true); });
  }

  void user_connected(const std::string& user) {
    std::lock_guard lock(mu_);
    if (++local_counts_[user] != 1) return;
    PresenceView::Transitions t;
    view_.add_local(user, t);
    post_transitions_locked(std::move(t));
    mark_dirty_locked(user);
  }

  void user_disconnected(const std::string& user) {
    std::lock_guard lock(mu_);
    auto it = local_counts_.find(user);
    if (it == local_counts_.end() || --it->second > 0) return;
    local_counts_.erase(it);
    PresenceView::Transitions t;
    view_.remove_local(user, t);
    post_transitions_locked(std::move(t));
    mark_dirty_locked(user);
  }

  const Presence& presence() const { return presence_; }
  bool ready() const { return up_; }

  void claim(std::string key, std::string value, std::chrono::milliseconds ttl,
             Bus::ClaimCallback cb) {
    if (!started_ || shut_down_) {
      cb(result<std::optional<std::string>>(errc::unavailable, "redis bus stopped"));
      return;
    }
    if (!up_ || !reserve()) {
      asio::post(io_, [cb = std::move(cb), up = up_.load()] {
        cb(result<std::optional<std::string>>(
            errc::unavailable, up ? "redis bus queue full" : "redis unreachable"));
      });
      return;
    }
    auto req = std::make_shared<ClaimRequest>(
        ClaimRequest{std::move(key), std::move(value), std::to_string(std::max<std::int64_t>(1, ttl.count())),
                     std::move(cb), std::chrono::steady_clock::now()});
    asio::post(io_, [this, req] { send_claim(req, true); });
  }

  std::unique_ptr<ratelimit::RateLimiter> rate_limiter(std::shared_ptr<Core> self,
                                                       std::string name, std::uint32_t max,
                                                       std::int64_t window_ms);

  // ---- rate limiting (called by RedisRateLimiter) ----
  void schedule_flush(std::shared_ptr<LimiterState> st) {
    if (!started_ || shut_down_) return;
    asio::post(io_, [this, st] {
      auto timer = std::make_shared<asio::steady_timer>(io_, 5ms);
      timer->async_wait([this, st, timer](boost::system::error_code) { flush_limiter(st); });
    });
  }
  bool running() const { return started_ && !shut_down_; }

  void kill() {
    // As if the process died: no goodbye, nothing deleted.
    shutdown(false);
  }

  bool is_online(std::string_view user) const {
    std::lock_guard lock(mu_);
    return view_.is_online(user);
  }
  std::vector<std::string> online_users() const {
    std::lock_guard lock(mu_);
    return view_.online_users();
  }

 private:
  enum class State { idle, connecting, restoring, up, backoff, stopped };
  struct NodeConns {
    std::shared_ptr<Connection> cmd, sub;
  };
  struct ClaimRequest {
    std::string key, value, ttl_ms;
    Bus::ClaimCallback cb;
    std::chrono::steady_clock::time_point asked;
  };

  bool reserve() {
    if (queued_.fetch_add(1) >= opts_.max_queued_commands) {
      release();
      return false;
    }
    m_queue_.set(static_cast<double>(queued_.load()));
    return true;
  }
  void release() {
    queued_.fetch_sub(1);
    m_queue_.set(static_cast<double>(queued_.load()));
  }

  // ---- presence bookkeeping shared with callers ----

  void post_transitions_locked(PresenceView::Transitions t) {
    if (t.empty() || !presence_handler_ || !started_ || shut_down_) return;
    asio::post(io_, [this, t = std::move(t)] {
      for (const auto& [user, online] : t) presence_handler_(user, online);
    });
  }

  void mark_dirty_locked(const std::string& user) {
    dirty_.push_back(user);
    if (!reconcile_posted_ && started_ && !shut_down_) {
      reconcile_posted_ = true;
      asio::post(io_, [this] {
        reconcile(state_ == State::restoring || state_ == State::up);
      });
    }
  }

  // Applies the local users' changes to subscribed_ and, when connected, to Redis.
  void reconcile(bool live) {
    std::vector<std::pair<std::string, bool>> changes;
    {
      std::lock_guard lock(mu_);
      reconcile_posted_ = false;
      for (auto& u : dirty_) {
        bool want = local_counts_.contains(u);
        changes.emplace_back(std::move(u), want);
      }
      dirty_.clear();
    }
    for (const auto& [user, want] : changes) {
      if (!wire::valid_user_id(user)) continue;  // local-only presence for odd ids
      if (want) {
        if (!subscribed_.insert(user).second) continue;
        own_digest_ ^= wire::member_hash(user);
        if (live) announce_user(user, true);
      } else {
        if (subscribed_.erase(user) == 0) continue;
        own_digest_ ^= wire::member_hash(user);
        if (live) announce_user(user, false);
      }
    }
  }

  void announce_user(const std::string& user, bool online) {
    std::string channel = wire::user_channel(user);
    auto& sub = *nodes_[slots_.node_for_key(channel)].sub;
    if (online) {
      sub.send({"SSUBSCRIBE", channel});
      if (state_ == State::restoring) ++pending_acks_;
    } else {
      sub.send({"SUNSUBSCRIBE", channel});
    }
    auto& cmd = presence_conn();
    cmd.command({online ? "SADD" : "SREM", own_key_, user}, nullptr);
    if (online) cmd.command({"PEXPIRE", own_key_, ttl_text()}, nullptr);
    cmd.command({"PUBLISH", wire::kPresenceChannel,
                 wire::encode_presence({online ? wire::PresenceMessage::Kind::online
                                               : wire::PresenceMessage::Kind::offline,
                                        self_, user, 0, 0})},
                nullptr);
  }

  Connection& presence_conn() { return *nodes_[slots_.node_for_key(own_key_)].cmd; }
  Connection& cmd_for(std::string_view key) { return *nodes_[slots_.node_for_key(key)].cmd; }
  std::string ttl_text() const { return std::to_string(opts_.presence_ttl.count()); }

  // ---- connection lifecycle (bus thread) ----

  void connect() {
    if (state_ == State::stopped) return;
    state_ = State::connecting;
    // Seeds first, then the masters learnt last time (the seeds themselves may be the ones down).
    std::vector<cluster::Node> candidates = target_.seeds;
    if (cluster_mode_)
      for (const auto& n : slots_.nodes())
        if (std::find(candidates.begin(), candidates.end(), n) == candidates.end())
          candidates.push_back(n);
    const auto seed = candidates[seed_index_++ % candidates.size()];
    auto gen = gen_;
    bootstrap_ = make_conn(seed, false, gen);
    bootstrap_->start([this, gen, seed] {
      if (gen != gen_) return;
      bootstrap_->command({"CLUSTER", "SLOTS"}, [this, gen, seed](resp::Reply* r) {
        if (r == nullptr || gen != gen_) return;
        if (r->is_error()) {
          if (r->str.find("cluster support disabled") == std::string::npos)
            return teardown("CLUSTER SLOTS: " + r->str);
          cluster_mode_ = false;
          slots_ = cluster::SlotMap::single(seed);
          nodes_.assign(1, NodeConns{std::move(bootstrap_), nullptr});
          open_nodes(gen);
          return;
        }
        auto map = cluster::SlotMap::from_cluster_slots(*r, seed.host);
        if (!map) return teardown("CLUSTER SLOTS: " + map.err().message);
        cluster_mode_ = true;
        slots_ = std::move(*map);
        bootstrap_->close();
        bootstrap_.reset();
        nodes_.assign(slots_.nodes().size(), NodeConns{});
        open_nodes(gen);
      });
    });
  }

  std::shared_ptr<Connection> make_conn(const cluster::Node& node, bool subscriber,
                                        std::uint64_t gen) {
    Connection::Hooks hooks;
    hooks.on_failed = [this, gen](std::string reason) {
      if (gen == gen_) teardown(reason);
    };
    if (subscriber) {
      hooks.on_push = [this, gen](resp::Reply&& r) {
        if (gen == gen_) on_push(std::move(r));
      };
    }
    return std::make_shared<Connection>(io_, node, target_, subscriber, opts_.command_timeout,
                                        std::move(hooks));
  }

  void open_nodes(std::uint64_t gen) {
    auto waiting = std::make_shared<std::size_t>(0);
    auto on_ready = [this, gen, waiting] {
      if (gen == gen_ && --*waiting == 0) restore();
    };
    std::vector<std::shared_ptr<Connection>> to_start;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      const auto& node = slots_.nodes()[i];
      if (!nodes_[i].cmd) {
        nodes_[i].cmd = make_conn(node, false, gen);
        to_start.push_back(nodes_[i].cmd);
      }
      nodes_[i].sub = make_conn(node, true, gen);
      to_start.push_back(nodes_[i].sub);
    }
    *waiting = to_start.size();
    for (auto& c : to_start) c->start(on_ready);
  }

  // Every connection is up: subscribe, publish our set, read everyone else's.
  void restore() {
    state_ = State::restoring;
    pending_acks_ = 0;
    resync_done_ = false;
    own_key_ = wire::presence_key(self_);
    // Local changes made while disconnected (not sent one by one: restore sends it all).
    reconcile(/*live=*/false);

    nodes_[0].sub->send({"SUBSCRIBE", wire::kPresenceChannel});
    ++pending_acks_;
    for (const auto& user : subscribed_) {
      std::string channel = wire::user_channel(user);
      nodes_[slots_.node_for_key(channel)].sub->send({"SSUBSCRIBE", channel});
      ++pending_acks_;
    }
    auto& cmd = presence_conn();
    cmd.command({"DEL", own_key_}, nullptr);
    std::vector<std::string_view> sadd{"SADD", own_key_};
    for (const auto& user : subscribed_) {
      sadd.push_back(user);
      if (sadd.size() >= 502) {
        cmd.command(sadd, nullptr);
        sadd.resize(2);
      }
    }
    if (sadd.size() > 2) cmd.command(sadd, nullptr);
    send_heartbeat();
    resync();
  }

  void resync() {
    auto gen = gen_;
    std::string min_score = std::to_string(now_ms() - opts_.presence_ttl.count());
    cmd_for(wire::kInstancesKey)
        .command({"ZRANGEBYSCORE", wire::kInstancesKey, min_score, "+inf", "WITHSCORES"},
                 [this, gen](resp::Reply* r) {
                   if (r == nullptr || gen != gen_) return;
                   if (!r->is_array()) return teardown("ZRANGEBYSCORE: " + r->str);
                   on_instances(*r);
                 });
  }

  void on_instances(const resp::Reply& r) {
    struct Collect {
      std::unordered_map<std::string, PresenceView::Snapshot> instances;
      std::size_t remaining = 0;
    };
    auto c = std::make_shared<Collect>();
    std::int64_t wall = now_ms(), mono = steady_ms();
    for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
      const auto& id = r.elements[i];
      if (!id.is_text() || !wire::valid_instance_id(id.str) || id.str == self_) continue;
      double score = 0;
      try {
        score = std::stod(r.elements[i + 1].str);
      } catch (...) {
        continue;
      }
      auto age = std::max<std::int64_t>(0, wall - static_cast<std::int64_t>(score));
      c->instances[id.str].last_seen_ms = mono - age;
    }
    c->remaining = c->instances.size();
    auto gen = gen_;
    auto finish = [this, c] {
      {
        PresenceView::Transitions t;
        std::lock_guard lock(mu_);
        view_.replace_all(c->instances, t);
        post_transitions_locked(std::move(t));
      }
      resync_done_ = true;
      check_restored();
    };
    if (c->remaining == 0) return finish();
    for (auto& [id, snap] : c->instances) {
      std::string key = wire::presence_key(id);
      auto* users = &snap.users;
      cmd_for(key).command({"SMEMBERS", key}, [this, gen, c, users, finish](resp::Reply* r) {
        if (r == nullptr || gen != gen_) return;
        if (r->is_array())
          for (auto& e : r->elements)
            if (e.is_text() && wire::valid_user_id(e.str)) users->push_back(std::move(e.str));
        if (--c->remaining == 0) finish();
      });
    }
  }

  void check_restored() {
    if (state_ != State::restoring || pending_acks_ > 0 || !resync_done_) return;
    state_ = State::up;
    up_ = true;
    m_up_.set(1);
    backoff_ = 100ms;
    spdlog::info("redis bus: connected ({}, {} node(s), {} local user(s))",
                 cluster_mode_ ? "cluster" : "single", nodes_.size(), subscribed_.size());
    auto retries = std::move(retry_publishes_);
    retry_publishes_.clear();
    for (auto& [channel, data] : retries) send_publish(channel, data, false);
    std::vector<std::shared_ptr<LimiterState>> limiters;
    {
      std::lock_guard lock(mu_);
      std::erase_if(limiters_, [](const auto& w) { return w.expired(); });
      for (auto& w : limiters_)
        if (auto s = w.lock()) limiters.push_back(std::move(s));
    }
    for (auto& s : limiters) flush_limiter(s);
  }

  void teardown(const std::string& reason) {
    if (state_ == State::stopped || state_ == State::backoff || state_ == State::idle) return;
    spdlog::warn("redis bus: {} — reconnecting", reason);
    state_ = State::backoff;
    up_ = false;
    m_up_.set(0);
    m_reconnects_.inc();
    ++gen_;
    close_all();
    // Jitter in [delay/2, delay], doubling up to 5 s.
    auto delay = backoff_;
    backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, 5000ms);
    std::uniform_int_distribution<long> dist(delay.count() / 2, delay.count());
    reconnect_timer_.expires_after(std::chrono::milliseconds(dist(rng_)));
    reconnect_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && state_ == State::backoff) connect();
    });
  }

  void close_all() {
    auto nodes = std::move(nodes_);
    nodes_.clear();
    auto boot = std::move(bootstrap_);
    fetching_.clear();
    if (boot) boot->close();
    for (auto& n : nodes) {
      if (n.cmd) n.cmd->close();
      if (n.sub) n.sub->close();
    }
  }

  void goodbye(std::function<void()> done) {
    if (state_ != State::up && state_ != State::restoring) return done();
    auto remaining = std::make_shared<int>(2);
    auto step = [remaining, done](resp::Reply*) {
      if (--*remaining == 0) done();
    };
    cmd_for(wire::kInstancesKey).command({"ZREM", wire::kInstancesKey, self_}, step);
    auto& cmd = presence_conn();
    cmd.command({"DEL", own_key_}, nullptr);
    cmd.command({"PUBLISH", wire::kPresenceChannel,
                 wire::encode_presence({wire::PresenceMessage::Kind::gone, self_, {}, 0, 0})},
                step);
  }

  // ---- timers ----

  void schedule_timers() {
    schedule_heartbeat();
    schedule_sweep();
    schedule_topology();
  }
  void schedule_heartbeat() {
    heartbeat_timer_.expires_after(opts_.heartbeat);
    heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || state_ == State::stopped) return;
      if (state_ == State::up) send_heartbeat();
      schedule_heartbeat();
    });
  }

  void send_heartbeat() {
    std::int64_t wall = now_ms();
    auto& zc = cmd_for(wire::kInstancesKey);
    zc.command({"ZADD", wire::kInstancesKey, std::to_string(wall), self_}, nullptr);
    if (++heartbeats_ % 16 == 1) {
      std::string cutoff = std::to_string(wall - 10 * opts_.presence_ttl.count());
      zc.command({"ZREMRANGEBYSCORE", wire::kInstancesKey, "-inf", cutoff}, nullptr);
    }
    auto& cmd = presence_conn();
    cmd.command({"PEXPIRE", own_key_, ttl_text()}, nullptr);
    cmd.command({"PUBLISH", wire::kPresenceChannel,
                 wire::encode_presence({wire::PresenceMessage::Kind::heartbeat, self_, {},
                                        subscribed_.size(), own_digest_})},
                nullptr);
  }

  void schedule_sweep() {
    auto period = std::clamp<std::chrono::milliseconds>(opts_.presence_ttl / 8, 50ms, 500ms);
    sweep_timer_.expires_after(period);
    sweep_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || state_ == State::stopped) return;
      sweep();
      schedule_sweep();
    });
  }

  void sweep() {
    if (state_ == State::up) {
      PresenceView::Transitions t;
      std::lock_guard lock(mu_);
      view_.expire(steady_ms(), t);
      post_transitions_locked(std::move(t));
    }
    // A command unanswered for too long: the peer is gone without closing the socket.
    auto limit = Clock::now() - opts_.command_timeout;
    auto stale = [&](const std::shared_ptr<Connection>& c) {
      auto t = c ? c->oldest_pending() : std::nullopt;
      return t && *t < limit;
    };
    bool dead = stale(bootstrap_);
    for (auto& n : nodes_) dead = dead || stale(n.cmd) || stale(n.sub);
    if (dead) teardown("a command timed out");
  }

  void schedule_topology() {
    topology_timer_.expires_after(5s);
    topology_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || state_ == State::stopped) return;
      if (state_ == State::up && cluster_mode_) check_topology();
      schedule_topology();
    });
  }

  void check_topology() {
    auto gen = gen_;
    auto host = slots_.nodes()[0].host;
    nodes_[0].cmd->command({"CLUSTER", "SLOTS"}, [this, gen, host](resp::Reply* r) {
      if (r == nullptr || gen != gen_ || state_ != State::up) return;
      auto map = cluster::SlotMap::from_cluster_slots(*r, host);
      if (!map || !(*map == slots_)) teardown("cluster topology changed");
    });
  }

  // MOVED: re-route the slot when the node is known (true: retry now), else reconnect.
  bool handle_moved(const std::string& error) {
    auto moved = cluster::parse_moved(error);
    if (!moved || !cluster_mode_) return false;
    if (slots_.apply(*moved)) {
      check_topology();
      return true;
    }
    teardown("slot " + std::to_string(moved->slot) + " moved to an unknown node");
    return false;
  }

  // ---- commands ----

  void send_publish(std::shared_ptr<std::string> channel, std::shared_ptr<std::string> data,
                    bool may_retry) {
    if (state_ != State::up) {
      release();
      m_dropped_.inc();
      return;
    }
    auto gen = gen_;
    cmd_for(*channel).command(
        {"SPUBLISH", *channel, *data}, [this, gen, channel, data, may_retry](resp::Reply* r) {
          if (r != nullptr && r->is_error()) {
            bool moved = r->str.starts_with("MOVED");
            if (moved && may_retry && gen == gen_) {
              if (handle_moved(r->str)) return send_publish(channel, data, false);
              if (retry_publishes_.size() < 1000) {
                retry_publishes_.emplace_back(channel, data);
                return;  // stays reserved until re-sent
              }
            }
            spdlog::debug("redis bus: SPUBLISH failed: {}", r->str);
          }
          release();
          if (r == nullptr || r->is_error())
            m_dropped_.inc();
          else
            m_published_.inc();
        });
  }

  void send_claim(std::shared_ptr<ClaimRequest> req, bool may_retry) {
    if (state_ != State::up) {
      release();
      req->cb(result<std::optional<std::string>>(errc::unavailable, "redis unreachable"));
      return;
    }
    auto gen = gen_;
    cmd_for(req->key).command(
        {"SET", req->key, req->value, "NX", "GET", "PX", req->ttl_ms},
        [this, gen, req, may_retry](resp::Reply* r) {
          if (r != nullptr && r->is_error() && may_retry && gen == gen_ &&
              r->str.starts_with("MOVED") && handle_moved(r->str))
            return send_claim(req, false);
          release();
          if (r == nullptr)
            return req->cb(result<std::optional<std::string>>(errc::unavailable, "redis connection lost"));
          m_claim_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - req->asked).count());
          if (r->is_nil()) return req->cb(std::optional<std::string>{});
          if (r->type == resp::Reply::Type::string)
            return req->cb(std::optional<std::string>(std::move(r->str)));
          req->cb(result<std::optional<std::string>>(
              r->is_error() && r->str.starts_with("WRONGTYPE") ? errc::internal : errc::unavailable,
              "claim: " + r->str));
        });
  }

  void flush_limiter(const std::shared_ptr<LimiterState>& st) {
    struct Item {
      std::string key;
      std::int64_t window;
      std::uint32_t n;
    };
    std::vector<Item> items;
    {
      std::lock_guard lock(st->mu);
      st->flush_posted = false;
      if (state_ != State::up) return;  // counts stay pending: flushed after the reconnect
      std::int64_t now = now_ms();
      std::int64_t current = now - now % st->window_ms;
      for (auto& key : st->dirty) {
        auto it = st->entries.find(key);
        if (it == st->entries.end()) continue;
        auto& e = it->second;
        e.dirty = false;
        if (e.pending == 0 || e.window_start != current) continue;
        if (!reserve()) continue;  // full: counted locally; the key's next hit retries
        items.push_back({key, e.window_start, e.pending});
        e.inflight += e.pending;
        e.pending = 0;
      }
      st->dirty.clear();
    }
    auto gen = gen_;
    for (auto& item : items) {
      std::string rkey = "chat:rl:{" + st->name + ":" + item.key + "}:" + std::to_string(item.window);
      auto& conn = cmd_for(rkey);
      std::string n = std::to_string(item.n);
      conn.command({"INCRBY", rkey, n}, [this, st, item, gen](resp::Reply* r) {
        release();
        bool ok = r != nullptr && r->is_integer();
        if (r != nullptr && r->is_error() && gen == gen_) handle_moved(r->str);
        std::lock_guard lock(st->mu);
        auto it = st->entries.find(item.key);
        if (it == st->entries.end() || it->second.window_start != item.window) return;
        auto& e = it->second;
        e.inflight -= std::min(e.inflight, item.n);
        if (ok) {
          auto v = std::clamp<long long>(r->integer, 0, 0xFFFFFFFFll);
          e.known = std::max(e.known, static_cast<std::uint32_t>(v));
        } else {
          e.pending += item.n;  // re-sent by the next flush of this key
          if (!e.dirty) {
            e.dirty = true;
            st->dirty.push_back(item.key);
          }
        }
      });
      conn.command({"PEXPIRE", rkey, std::to_string(st->window_ms + 1000)}, nullptr);
    }
  }

  // ---- pushes on subscriber connections ----

  void on_push(resp::Reply&& r) {
    if (r.is_error()) {
      spdlog::warn("redis bus: subscription error: {}", r.str);
      if (r.str.starts_with("MOVED")) teardown("a subscription's slot moved");
      return;
    }
    if (!r.is_array() || r.elements.size() < 3 || !r.elements[0].is_text() ||
        !r.elements[1].is_text())
      return;
    const std::string& kind = r.elements[0].str;
    if (kind == "smessage") {
      if (!r.elements[2].is_text()) return;
      on_event(r.elements[1].str, r.elements[2].str);
    } else if (kind == "message") {
      if (r.elements[1].str == wire::kPresenceChannel && r.elements[2].is_text())
        on_presence_message(r.elements[2].str);
    } else if (kind == "subscribe" || kind == "ssubscribe") {
      if (state_ == State::restoring && pending_acks_ > 0 && --pending_acks_ == 0)
        check_restored();
    }
  }

  void on_event(const std::string& channel, const std::string& data) {
    auto user = wire::user_from_channel(channel);
    if (!user) return;
    auto d = wire::decode_event(data);
    if (!d || d->origin == self_) return;
    std::string uid(*user);
    if (!subscribed_.contains(uid)) return;  // left while the message was in flight
    d->event.user_id = std::move(uid);
    m_received_.inc();
    if (event_handler_) event_handler_(std::move(d->event));
  }

  void on_presence_message(const std::string& data) {
    auto m = wire::decode_presence(data);
    if (!m || m->instance == self_) return;
    using Kind = wire::PresenceMessage::Kind;
    PresenceView::Transitions t;
    bool fetch = false;
    {
      std::lock_guard lock(mu_);
      switch (m->kind) {
        case Kind::online:
          view_.remote_online(m->instance, m->user, steady_ms(), t);
          break;
        case Kind::offline:
          view_.remote_offline(m->instance, m->user, steady_ms(), t);
          break;
        case Kind::heartbeat:
          fetch = view_.heartbeat(m->instance, m->count, m->digest, steady_ms());
          break;
        case Kind::gone:
          view_.remove_instance(m->instance, t);
          break;
      }
      post_transitions_locked(std::move(t));
    }
    if (fetch && state_ == State::up && fetching_.insert(m->instance).second) fetch_instance(m->instance);
  }

  void fetch_instance(const std::string& instance) {
    auto gen = gen_;
    std::string key = wire::presence_key(instance);
    cmd_for(key).command({"SMEMBERS", key}, [this, gen, instance](resp::Reply* r) {
      if (r == nullptr || gen != gen_) return;
      fetching_.erase(instance);
      if (!r->is_array()) return;
      std::vector<std::string> users;
      for (auto& e : r->elements)
        if (e.is_text() && wire::valid_user_id(e.str)) users.push_back(std::move(e.str));
      PresenceView::Transitions t;
      std::lock_guard lock(mu_);
      view_.replace_instance(instance, users, steady_ms(), t);
      post_transitions_locked(std::move(t));
    });
  }

  // Declared first: destroyed last (timers and connections refer to it).
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;

  RedisBusOptions opts_;
  wire::RedisTarget target_;
  std::string self_;
  std::unique_ptr<metrics::Registry> own_registry_;
  metrics::Gauge m_up_, m_queue_;
  metrics::Counter m_published_, m_received_, m_dropped_, m_reconnects_;
  metrics::Histogram m_claim_;

  Bus::EventHandler event_handler_;
  Bus::PresenceHandler presence_handler_;

  std::atomic<bool> started_{false}, shut_down_{false}, up_{false};
  std::atomic<std::size_t> queued_{0};

  // Shared with callers' threads.
  mutable std::mutex mu_;
  PresenceView view_;
  std::unordered_map<std::string, std::size_t> local_counts_;
  std::vector<std::string> dirty_;
  bool reconcile_posted_ = true;  // nothing is posted before start(); start() reconciles
  std::vector<std::weak_ptr<LimiterState>> limiters_;
  CorePresence presence_;

  // Bus thread only.
  State state_ = State::idle;
  std::uint64_t gen_ = 0;
  std::size_t seed_index_ = 0;
  bool cluster_mode_ = false;
  cluster::SlotMap slots_;
  std::shared_ptr<Connection> bootstrap_;
  std::vector<NodeConns> nodes_;
  std::string own_key_ = wire::presence_key(opts_.instance_id);
  std::unordered_set<std::string> subscribed_;
  std::uint64_t own_digest_ = 0;
  int pending_acks_ = 0;
  bool resync_done_ = false;
  std::unordered_set<std::string> fetching_;
  std::deque<std::pair<std::shared_ptr<std::string>, std::shared_ptr<std::string>>>
      retry_publishes_;
  std::uint64_t heartbeats_ = 0;
  std::chrono::milliseconds backoff_{100};
  asio::steady_timer reconnect_timer_, heartbeat_timer_, sweep_timer_, topology_timer_;
  std::minstd_rand rng_;
};

bool CorePresence::is_online(std::string_view user_id) const { return core_.is_online(user_id); }
std::vector<std::string> CorePresence::online_users() const { return core_.online_users(); }

class RedisRateLimiter final : public ratelimit::RateLimiter {
 public:
  RedisRateLimiter(std::shared_ptr<Core> core, std::shared_ptr<LimiterState> st)
      : core_(std::move(core)), st_(std::move(st)) {}

  ratelimit::Decision hit(std::string_view key, std::int64_t now_ms) override {
    auto& st = *st_;
    std::int64_t window = now_ms - ((now_ms % st.window_ms) + st.window_ms) % st.window_ms;
    bool flush = false;
    ratelimit::Decision d;
    {
      std::lock_guard lock(st.mu);
      auto it = st.entries.find(std::string(key));
      if (it == st.entries.end()) {
        if (st.entries.size() >= st.max_keys) make_room(window);
        it = st.entries.emplace(std::string(key), LimiterState::Entry{}).first;
        it->second.window_start = window;
      }
      auto& e = it->second;
      if (e.window_start != window) {
        bool dirty = e.dirty;
        e = LimiterState::Entry{};
        e.window_start = window;
        e.dirty = dirty;
      }
      std::uint64_t used = std::uint64_t{e.known} + e.pending + e.inflight;
      if (used >= st.max) return {false, 0, window + st.window_ms - now_ms};
      ++e.pending;
      d = {true, static_cast<std::uint32_t>(st.max - used - 1), 0};
      if (!e.dirty) {
        e.dirty = true;
        st.dirty.push_back(it->first);
      }
      if (!st.flush_posted && core_->running()) {
        st.flush_posted = true;
        flush = true;
      }
    }
    if (flush) core_->schedule_flush(st_);
    return d;
  }

 private:
  void make_room(std::int64_t window) {
    auto& st = *st_;
    std::erase_if(st.entries, [&](const auto& kv) {
      return kv.second.window_start != window && kv.second.inflight == 0;
    });
    if (st.entries.size() >= st.max_keys) st.entries.erase(st.entries.begin());
    // Dirty keys that no longer exist are skipped by the flush.
  }

  std::shared_ptr<Core> core_;
  std::shared_ptr<LimiterState> st_;
};

std::unique_ptr<ratelimit::RateLimiter> Core::rate_limiter(std::shared_ptr<Core> self,
                                                           std::string name, std::uint32_t max,
                                                           std::int64_t window_ms) {
  auto st = std::make_shared<LimiterState>();
  st->name = std::move(name);
  st->max = max;
  st->window_ms = std::max<std::int64_t>(1, window_ms);
  st->max_keys = std::max<std::size_t>(1, opts_.rate_limit_max_keys);
  {
    std::lock_guard lock(mu_);
    std::erase_if(limiters_, [](const auto& w) { return w.expired(); });
    limiters_.push_back(st);
  }
  return std::make_unique<RedisRateLimiter>(std::move(self), std::move(st));
}

class RedisBus final : public Bus {
 public:
  explicit RedisBus(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~RedisBus() override { core_->shutdown(true); }

  void on_user_event(EventHandler handler) override { core_->on_user_event(std::move(handler)); }
  void on_presence(PresenceHandler handler) override { core_->on_presence(std::move(handler)); }
  void start() override { core_->start(); }
  void stop() override { core_->shutdown(true); }
  void publish(UserEvent ev) override { core_->publish(std::move(ev)); }
  void user_connected(const std::string& user_id) override { core_->user_connected(user_id); }
  void user_disconnected(const std::string& user_id) override {
    core_->user_disconnected(user_id);
  }
  const Presence& presence() const override { return core_->presence(); }
  bool ready() const override { return core_->ready(); }
  void claim(std::string key, std::string value, std::chrono::milliseconds ttl,
             ClaimCallback cb) override {
    core_->claim(std::move(key), std::move(value), ttl, std::move(cb));
  }
  std::unique_ptr<ratelimit::RateLimiter> rate_limiter(std::string name, std::uint32_t max,
                                                       std::int64_t window_ms) override {
    return core_->rate_limiter(core_, std::move(name), max, window_ms);
  }
  void kill() { core_->kill(); }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

result<std::unique_ptr<Bus>> make_redis_bus(RedisBusOptions options) {
  if (!wire::valid_instance_id(options.instance_id))
    return {errc::invalid_argument, "redis bus: instance id must be 1-64 of [A-Za-z0-9._:-]"};
  if (options.heartbeat.count() <= 0 || options.presence_ttl < 2 * options.heartbeat)
    return {errc::invalid_argument, "redis bus: heartbeat must be > 0 and <= presence_ttl / 2"};
  if (options.max_queued_commands == 0 || options.command_timeout.count() <= 0)
    return {errc::invalid_argument, "redis bus: max_queued_commands and command_timeout must be > 0"};
  auto target = wire::parse_redis_url(options.url);
  if (!target) return target.err();
  auto core = std::make_shared<Core>(std::move(options), std::move(*target));
  return std::unique_ptr<Bus>(std::make_unique<RedisBus>(std::move(core)));
}

namespace testing {
void kill(Bus& redis_bus) {
  auto* b = dynamic_cast<RedisBus*>(&redis_bus);
  assert(b != nullptr && "testing::kill needs a bus from make_redis_bus");
  b->kill();
}
}  // namespace testing

}  // namespace chat::bus
