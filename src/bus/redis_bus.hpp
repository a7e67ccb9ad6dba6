#pragma once
// The cluster-mode Bus over Redis 7 (a single server or a Redis Cluster). Only apps/ and tests
// include this header; it has no Asio or hiredis in it.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "bus/bus.hpp"
#include "core/result.hpp"

namespace chat::metrics {
class Registry;
}

namespace chat::bus {

struct RedisBusOptions {
  /// redis://[[user]:password@]host:port[/db], or a comma list of cluster seed nodes:
  /// redis://h1:p1,h2:p2 (whether it is a cluster is detected at connect).
  std::string url;
  /// Unique per running instance: 1–64 of [A-Za-z0-9._:-].
  std::string instance_id;
  /// How often this instance announces itself. At most presence_ttl / 2.
  std::chrono::milliseconds heartbeat{5000};
  /// An instance not heard from for this long is gone: its users go offline everywhere.
  std::chrono::milliseconds presence_ttl{15000};
  /// Commands accepted from callers (publish, claim, rate-limit syncs) and not yet answered by
  /// Redis; beyond it publish() drops and claim() fails with `unavailable`.
  std::size_t max_queued_commands = 100000;
  /// A command unanswered for this long means the connection is dead (reconnect).
  std::chrono::milliseconds command_timeout{5000};
  /// Keys tracked per rate limiter (oldest windows evicted first, erring toward allowing).
  std::size_t rate_limit_max_keys = 100000;
  /// Scheduler time slice the bus I/O thread asks for (request_time_slice in core/sched.hpp): it
  /// relays every cross-instance message; 0: the kernel's default.
  std::chrono::microseconds thread_slice{0};
  /// chat_bus_* metrics go here; nullptr: a private registry (tests read it via metrics()).
  metrics::Registry* metrics = nullptr;
};

/// Validates the options and the URL (invalid_argument); connects only at start().
result<std::unique_ptr<Bus>> make_redis_bus(RedisBusOptions options);

namespace testing {
/// Test hook: stops the bus's I/O as if the process had died (no goodbye, keys left to expire).
/// Afterwards only destruction is allowed.
void kill(Bus& redis_bus);
}  // namespace testing

}  // namespace chat::bus
