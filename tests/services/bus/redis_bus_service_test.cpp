// The Redis bus against real Redis servers: routing of user events, cluster-wide presence,
// death of an instance, a Redis restart, claims and shared rate limits, on a single Redis and on
// a 3-master Redis Cluster. Several bus instances run in this one process.
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "bus/cluster_slots.hpp"
#include "bus/redis_bus.hpp"
#include "bus/wire.hpp"
#include "core/sched.hpp"
#include "core/time.hpp"
#include "metrics/metrics.hpp"
#include "services/ports.hpp"

namespace chat::bus {
namespace {

using namespace std::chrono_literals;

std::string scripts_dir() {
  const char* env = std::getenv("CHAT_SCRIPTS");
  return env != nullptr ? env : CHAT_SOURCE_SCRIPTS;
}

/// Runs a service script; its output is shown only when it fails.
int run(const std::string& cmd) {
  char tmpl[] = "/tmp/chat-bus-run-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd >= 0) ::close(fd);
  int rc = std::system((cmd + " >" + tmpl + " 2>&1").c_str());
  if (rc != 0) {
    std::ifstream f(tmpl);
    std::cerr << "`" << cmd << "` failed (" << rc << "):\n" << f.rdbuf() << "\n";
  }
  std::remove(tmpl);
  return rc;
}

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// One chat instance: a bus, its metrics and what its handlers saw.
struct Instance {
  metrics::Registry registry;
  std::unique_ptr<Bus> bus;
  std::mutex mu;
  std::vector<UserEvent> events;
  std::vector<std::pair<std::string, bool>> transitions;

  Instance(const std::string& url, const std::string& id, std::chrono::milliseconds ttl = 1500ms,
           std::chrono::microseconds slice = 0us) {
    RedisBusOptions o;
    o.url = url;
    o.thread_slice = slice;
    o.instance_id = id;
    o.heartbeat = ttl / 3;
    o.presence_ttl = ttl;
    o.metrics = &registry;
    auto b = make_redis_bus(std::move(o));
    EXPECT_TRUE(b) << (b ? "" : b.err().message);
    bus = std::move(*b);
    bus->on_user_event([this](UserEvent&& ev) {
      std::lock_guard lock(mu);
      events.push_back(std::move(ev));
    });
    bus->on_presence([this](const std::string& user, bool online) {
      std::lock_guard lock(mu);
      transitions.emplace_back(user, online);
    });
    bus->start();
  }
  std::size_t event_count() {
    std::lock_guard lock(mu);
    return events.size();
  }
  std::size_t events_for(const std::string& user) {
    std::lock_guard lock(mu);
    return std::count_if(events.begin(), events.end(),
                         [&](const UserEvent& e) { return e.user_id == user; });
  }
  double metric(std::string_view name) { return registry.counter(name, "").value(); }
  bool online(const std::string& user) { return bus->presence().is_online(user); }
  bool saw(const std::string& user, bool online) {
    std::lock_guard lock(mu);
    return std::find(transitions.begin(), transitions.end(), std::pair{user, online}) !=
           transitions.end();
  }
};

std::string uid(int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%024x", n);
  return buf;
}

UserEvent event_for(const std::string& user, std::string payload) {
  return UserEvent{user, std::move(payload), "sock-1", true};
}

class RedisBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/chat-bus-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    instances_.clear();
    run(script() + " stop --dir " + dir_);
    std::filesystem::remove_all(dir_);
  }
  std::string script() const { return "bash " + scripts_dir() + "/services/redis.sh"; }
  void start_single() {
    port_ = test::start_on_free_port([&](int port) {
      port_ = port;
      return start_redis() == 0;
    });
    ASSERT_NE(port_, 0) << "redis.sh start failed";
    url_ = "redis://127.0.0.1:" + std::to_string(port_);
  }
  int start_redis() {
    return run(script() + " start --dir " + dir_ + " --port " + std::to_string(port_) +
               " --watch-pid " + std::to_string(::getpid()));
  }
  int stop_redis() { return run(script() + " stop --dir " + dir_ + " --port " + std::to_string(port_)); }
  void start_cluster() {
    bool started = false;
    for (int attempt = 0; attempt < 3 && !started; ++attempt) {
      if (attempt > 0) run(script() + " stop --dir " + dir_);
      ports_.clear();
      std::string list;
      for (int i = 0; i < 3; ++i) {
        ports_.push_back(test::free_port(10000));  // distinct, bus ports included
        list += (i ? "," : "") + std::to_string(ports_.back());
      }
      started = run(script() + " start-cluster --dir " + dir_ + " --ports " + list +
                    " --watch-pid " + std::to_string(::getpid())) == 0;
    }
    ASSERT_TRUE(started) << "redis.sh start-cluster failed";
    url_ = "redis://127.0.0.1:" + std::to_string(ports_[1]) + ",127.0.0.1:" + std::to_string(ports_[0]);
  }
  Instance& add(const std::string& id, std::chrono::milliseconds ttl = 1500ms,
                std::chrono::microseconds slice = 0us) {
    instances_.push_back(std::make_unique<Instance>(url_, id, ttl, slice));
    return *instances_.back();
  }
  void wait_ready() {
    for (auto& i : instances_) wait_ready(*i);
  }
  void wait_ready(Instance& i) {
    ASSERT_TRUE(wait_until([&] { return i.bus->ready(); }, 10s)) << "bus not ready";
  }

  std::string dir_, url_;
  int port_ = 0;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<Instance>> instances_;
};

// ---- single Redis ----

TEST_F(RedisBusTest, EventsReachOnlyTheInstancesThatHaveTheUser) {
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a");
  auto& b = add("b");
  auto& c = add("c");
  wait_ready();
  const auto u1 = uid(1), u2 = uid(2);
  b.bus->user_connected(u1);
  b.bus->user_connected(u1);  // a second socket: still one subscription
  c.bus->user_connected(u2);
  ASSERT_TRUE(wait_until([&] { return a.online(u1) && a.online(u2); }, 5s));
  std::this_thread::sleep_for(100ms);

  a.bus->publish(UserEvent{u1, R"(["newMessage",{"text":"hi"}])", "sock-9", false});
  ASSERT_TRUE(wait_until([&] { return b.event_count() == 1; }, 5s));
  {
    std::lock_guard lock(b.mu);
    EXPECT_EQ(b.events[0].user_id, u1);
    EXPECT_EQ(b.events[0].payload, R"(["newMessage",{"text":"hi"}])");
    EXPECT_EQ(b.events[0].except_origin, "sock-9");
    EXPECT_FALSE(b.events[0].recoverable);
  }
  a.bus->publish(event_for(u2, "[2]"));
  ASSERT_TRUE(wait_until([&] { return c.event_count() == 1; }, 5s));
  // b publishes for its own user: its echo is dropped, nobody else has u1.
  b.bus->publish(event_for(u1, "[3]"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(b.event_count(), 1u);
  EXPECT_EQ(c.events_for(u1), 0u);
  EXPECT_EQ(a.event_count(), 0u);
  EXPECT_EQ(c.metric("chat_bus_received_total"), 1);  // c never even got u1's messages
  EXPECT_EQ(a.metric("chat_bus_received_total"), 0);
  EXPECT_GE(a.metric("chat_bus_published_total"), 2);

  // The last socket leaves: b unsubscribes.
  b.bus->user_disconnected(u1);
  EXPECT_EQ(b.event_count(), 1u);
  b.bus->user_disconnected(u1);
  ASSERT_TRUE(wait_until([&] { return !a.online(u1); }, 5s));
  std::this_thread::sleep_for(100ms);
  a.bus->publish(event_for(u1, "[4]"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(b.event_count(), 1u);
  EXPECT_EQ(b.metric("chat_bus_received_total"), 1);
}

TEST_F(RedisBusTest, PresenceIsClusterWide) {
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a");
  auto& b = add("b");
  wait_ready();
  const auto u1 = uid(11), u2 = uid(12);
  a.bus->user_connected(u1);
  EXPECT_TRUE(a.online(u1));  // own users: at once, from memory
  b.bus->user_connected(u2);
  ASSERT_TRUE(wait_until([&] { return a.online(u2) && b.online(u1); }, 5s));
  EXPECT_TRUE(wait_until([&] { return a.saw(u2, true) && a.saw(u1, true); }, 2s));
  auto users = a.bus->presence().online_users();
  EXPECT_EQ(users.size(), 2u);

  // A third instance that starts later learns the others' users by resync.
  auto& c = add("c");
  wait_ready();
  EXPECT_TRUE(wait_until([&] { return c.online(u1) && c.online(u2); }, 5s));

  b.bus->user_disconnected(u2);
  ASSERT_TRUE(wait_until([&] { return !a.online(u2) && !c.online(u2); }, 5s));
  EXPECT_TRUE(wait_until([&] { return a.saw(u2, false); }, 2s));

  // A clean stop removes a's users everywhere at once (no waiting for the ttl).
  auto t0 = std::chrono::steady_clock::now();
  a.bus->stop();
  ASSERT_TRUE(wait_until([&] { return !b.online(u1) && !c.online(u1); }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms);
  EXPECT_TRUE(wait_until([&] { return b.saw(u1, false); }, 2s));  // the handler runs right after the view changes
}

TEST_F(RedisBusTest, ADeadInstancesUsersGoOfflineWithinTheTtl) {
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a");
  auto& b = add("b");
  wait_ready();
  const auto u = uid(21);
  b.bus->user_connected(u);
  ASSERT_TRUE(wait_until([&] { return a.online(u); }, 5s));
  std::this_thread::sleep_for(600ms);  // a few heartbeats
  ASSERT_TRUE(a.online(u));  // heartbeats keep it there past one heartbeat interval

  auto t0 = std::chrono::steady_clock::now();
  testing::kill(*b.bus);  // no goodbye, keys left behind
  ASSERT_TRUE(wait_until([&] { return !a.online(u); }, 4s));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 900ms);    // ttl 1.5 s minus at most one heartbeat (0.5 s)
  EXPECT_LE(took, 2500ms);   // ttl + sweep period + slack
  EXPECT_TRUE(wait_until([&] { return a.saw(u, false); }, 2s));

  // An instance starting now does not resurrect the dead one's users.
  auto& c = add("c");
  wait_ready(c);
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(c.online(u));
}

TEST_F(RedisBusTest, SurvivesARedisRestart) {
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a");
  auto& b = add("b");
  wait_ready();
  const auto ua = uid(31), ub = uid(32);
  a.bus->user_connected(ua);
  b.bus->user_connected(ub);
  ASSERT_TRUE(wait_until([&] { return a.online(ub) && b.online(ua); }, 5s));
  // Windows are aligned to multiples of their length: keep the whole test inside one (a run that
  // crossed a 10-minute boundary counted its two halves in two windows).
  constexpr std::int64_t kWindow = 600000;
  if (kWindow - now_ms() % kWindow < 15000)
    std::this_thread::sleep_for(std::chrono::milliseconds(kWindow - now_ms() % kWindow + 100));
  auto limiter = a.bus->rate_limiter("restart", 3, kWindow);

  ASSERT_EQ(stop_redis(), 0);
  ASSERT_TRUE(wait_until([&] { return !a.bus->ready() && !b.bus->ready(); }, 5s));
  EXPECT_EQ(a.registry.gauge("chat_bus_up", "").value(), 0);
  // Down: publish drops (counted), own users are still online, rate limits count locally,
  // claims fail fast.
  double dropped = a.metric("chat_bus_dropped_total");
  a.bus->publish(event_for(ub, "[lost]"));
  EXPECT_EQ(a.metric("chat_bus_dropped_total"), dropped + 1);
  EXPECT_TRUE(a.online(ua));
  std::int64_t now = now_ms();
  EXPECT_TRUE(limiter->hit("k", now).allowed);
  EXPECT_TRUE(limiter->hit("k", now).allowed);
  EXPECT_TRUE(limiter->hit("k", now).allowed);
  EXPECT_FALSE(limiter->hit("k", now).allowed);
  std::promise<result<std::optional<std::string>>> claimed;
  a.bus->claim("k-down", "v", 10s, [&](auto r) { claimed.set_value(std::move(r)); });
  auto down_claim = claimed.get_future().get();
  ASSERT_FALSE(down_claim.ok());
  EXPECT_EQ(down_claim.code(), errc::unavailable);
  std::this_thread::sleep_for(700ms);  // a few reconnect attempts against a closed port

  ASSERT_EQ(start_redis(), 0);
  ASSERT_TRUE(wait_until([&] { return a.bus->ready() && b.bus->ready(); }, 10s));
  EXPECT_GE(a.metric("chat_bus_reconnects_total"), 1);
  EXPECT_EQ(a.registry.gauge("chat_bus_up", "").value(), 1);
  // Subscriptions are restored: events flow again, both ways.
  a.bus->publish(event_for(ub, "[back]"));
  ASSERT_TRUE(wait_until([&] { return b.events_for(ub) == 1; }, 5s));
  b.bus->publish(event_for(ua, "[back]"));
  ASSERT_TRUE(wait_until([&] { return a.events_for(ua) == 1; }, 5s));
  // Redis lost every key: presence is rebuilt from the instances.
  EXPECT_TRUE(wait_until([&] { return a.online(ub) && b.online(ua); }, 5s));
  // The hits counted while down were pushed to Redis: another instance sees them.
  auto other = b.bus->rate_limiter("restart", 3, kWindow);
  std::this_thread::sleep_for(200ms);
  auto first = other->hit("k", now_ms());
  if (first.allowed) {  // only if its first hit raced the sync: then its second must fail
    std::this_thread::sleep_for(200ms);
    EXPECT_FALSE(other->hit("k", now_ms()).allowed);
  }
}

TEST_F(RedisBusTest, ClaimStoresOnlyTheFirstValue) {
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a");
  auto& b = add("b");
  wait_ready();
  auto claim = [](Instance& i, std::string key, std::string value, std::chrono::milliseconds ttl) {
    std::promise<result<std::optional<std::string>>> p;
    i.bus->claim(std::move(key), std::move(value), ttl, [&](auto r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  };
  auto first = claim(a, "idem:1", "msg-1", 400ms);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value());
  auto second = claim(b, "idem:1", "msg-2", 400ms);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second->has_value());
  EXPECT_EQ(**second, "msg-1");
  std::this_thread::sleep_for(600ms);  // the ttl ran out
  auto third = claim(b, "idem:1", "msg-3", 400ms);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(third->has_value());
  // Each answered claim is timed: one on a, two on b.
  EXPECT_NE(a.registry.serialize().find("chat_bus_claim_duration_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(b.registry.serialize().find("chat_bus_claim_duration_seconds_count 2\n"), std::string::npos);
}

TEST_F(RedisBusTest, TheIoThreadAsksForTheConfiguredSlice) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  const auto default_slice = default_time_slice();
  ASSERT_NE(default_slice, 450us);
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a", 1500ms, 450us);
  auto& b = add("b");
  wait_ready();
  // A claim's answer is handed over on the bus's I/O thread.
  auto slice_seen = [](Instance& i, std::string key) {
    std::promise<std::chrono::microseconds> p;
    i.bus->claim(std::move(key), "v", 1s, [&](auto) { p.set_value(current_time_slice()); });
    return p.get_future().get();
  };
  EXPECT_EQ(slice_seen(a, "slice:a"), 450us);
  EXPECT_EQ(slice_seen(b, "slice:b"), default_slice);
}

TEST_F(RedisBusTest, RateLimitsAreSharedBetweenInstances) {
  ASSERT_NO_FATAL_FAILURE(start_single());
  auto& a = add("a");
  auto& b = add("b");
  wait_ready();
  constexpr std::int64_t kWindow = 60000;
  if (now_ms() % kWindow > kWindow - 5000) std::this_thread::sleep_for(6s);  // not at an edge
  auto la = a.bus->rate_limiter("api", 10, kWindow);
  auto lb = b.bus->rate_limiter("api", 10, kWindow);
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(la->hit("1.2.3.4", now_ms()).allowed);
  std::this_thread::sleep_for(150ms);  // a's counts reach Redis
  int allowed_b = 0;
  for (int i = 0; i < 8; ++i) {
    auto d = lb->hit("1.2.3.4", now_ms());
    if (d.allowed) ++allowed_b;
    if (!d.allowed) {
      EXPECT_GT(d.retry_after_ms, 0);
    }
    std::this_thread::sleep_for(40ms);  // let each hit sync
  }
  EXPECT_EQ(allowed_b, 4);
  // a learns b's hits at its next sync: after at most one more admission, it refuses.
  int allowed_a = 0;
  for (int i = 0; i < 3; ++i) {
    if (la->hit("1.2.3.4", now_ms()).allowed) ++allowed_a;
    std::this_thread::sleep_for(40ms);
  }
  EXPECT_LE(allowed_a, 1);
  EXPECT_TRUE(lb->hit("5.6.7.8", now_ms()).allowed);  // keys are independent
  auto other_name = a.bus->rate_limiter("login", 10, kWindow);
  EXPECT_TRUE(other_name->hit("1.2.3.4", now_ms()).allowed);  // names too
}

// ---- Redis Cluster ----

TEST_F(RedisBusTest, ClusterRoutesUsersOnEveryMaster) {
  ASSERT_NO_FATAL_FAILURE(start_cluster());
  auto& a = add("a");
  auto& b = add("b");
  auto& c = add("c");
  wait_ready();
  // One user per slot range of the 3 masters (redis-cli splits 0-5460, 5461-10922, 10923-16383).
  std::vector<std::string> users;
  for (int range = 0, n = 100; range < 3; ++n) {
    int slot = cluster::key_slot(wire::user_channel(uid(n)));
    if (slot / 5462 == range) {
      users.push_back(uid(n));
      ++range;
    }
  }
  for (const auto& u : users) b.bus->user_connected(u);
  c.bus->user_connected(users[2]);
  ASSERT_TRUE(wait_until(
      [&] { return a.online(users[0]) && a.online(users[1]) && a.online(users[2]); }, 5s));
  std::this_thread::sleep_for(150ms);
  for (const auto& u : users) a.bus->publish(event_for(u, "[\"x\"]"));
  ASSERT_TRUE(wait_until([&] { return b.event_count() == 3; }, 5s));
  ASSERT_TRUE(wait_until([&] { return c.event_count() == 1; }, 5s));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(b.event_count(), 3u);
  for (const auto& u : users) EXPECT_EQ(b.events_for(u), 1u);
  EXPECT_EQ(c.events_for(users[2]), 1u);
  EXPECT_EQ(c.metric("chat_bus_received_total"), 1);
  EXPECT_EQ(a.metric("chat_bus_received_total"), 0);

  // Presence across masters; death of an instance.
  c.bus->user_connected(uid(999));
  ASSERT_TRUE(wait_until([&] { return a.online(uid(999)) && b.online(uid(999)); }, 5s));
  testing::kill(*c.bus);
  ASSERT_TRUE(wait_until([&] { return !a.online(uid(999)) && !b.online(uid(999)); }, 4s));
  EXPECT_TRUE(a.online(users[2]));  // b still has it

  // Claims and rate limits route to the key's master.
  std::promise<result<std::optional<std::string>>> p1, p2;
  a.bus->claim("idem:{x}", "1", 5s, [&](auto r) { p1.set_value(std::move(r)); });
  auto r1 = p1.get_future().get();
  ASSERT_TRUE(r1.ok());
  EXPECT_FALSE(r1->has_value());
  b.bus->claim("idem:{x}", "2", 5s, [&](auto r) { p2.set_value(std::move(r)); });
  auto r2 = p2.get_future().get();
  ASSERT_TRUE(r2.ok());
  ASSERT_TRUE(r2->has_value());
  EXPECT_EQ(**r2, "1");
  constexpr std::int64_t kWindow = 600000;  // aligned windows: do not straddle a boundary
  if (kWindow - now_ms() % kWindow < 15000)
    std::this_thread::sleep_for(std::chrono::milliseconds(kWindow - now_ms() % kWindow + 100));
  auto la = a.bus->rate_limiter("api", 2, kWindow);
  auto lb = b.bus->rate_limiter("api", 2, kWindow);
  EXPECT_TRUE(la->hit("ip", now_ms()).allowed);
  EXPECT_TRUE(la->hit("ip", now_ms()).allowed);
  std::this_thread::sleep_for(150ms);
  // b's first hit on a key it has never seen is decided blind (the documented over-admission:
  // one sync round trip); its INCRBY brings back the cluster's count and the next is refused.
  lb->hit("ip", now_ms());
  std::this_thread::sleep_for(150ms);
  EXPECT_FALSE(lb->hit("ip", now_ms()).allowed);
}

TEST_F(RedisBusTest, ClusterNodeRestartRecovers) {
  ASSERT_NO_FATAL_FAILURE(start_cluster());
  auto& a = add("a");
  auto& b = add("b");
  wait_ready();
  const auto u = uid(42);
  b.bus->user_connected(u);
  ASSERT_TRUE(wait_until([&] { return a.online(u); }, 5s));
  // Stop the master serving u's channel, then bring it back (nodes.conf keeps the cluster).
  int slot = cluster::key_slot(wire::user_channel(u));
  port_ = ports_[static_cast<std::size_t>(std::min(slot / 5462, 2))];
  ASSERT_EQ(stop_redis(), 0);
  ASSERT_TRUE(wait_until([&] { return !a.bus->ready() && !b.bus->ready(); }, 5s));
  std::string list = std::to_string(ports_[0]) + "," + std::to_string(ports_[1]) + "," +
                     std::to_string(ports_[2]);
  ASSERT_EQ(run(script() + " start-cluster --dir " + dir_ + " --ports " + list + " --watch-pid " +
                std::to_string(::getpid())),
            0);
  ASSERT_TRUE(wait_until([&] { return a.bus->ready() && b.bus->ready(); }, 15s));
  a.bus->publish(event_for(u, "[1]"));
  ASSERT_TRUE(wait_until([&] { return b.events_for(u) == 1; }, 5s));
}

}  // namespace
}  // namespace chat::bus
