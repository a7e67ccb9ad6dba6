#pragma once
// The chat's real-time events on Socket.IO (see docs/REALTIME.md): socket authentication with
// the REST API's JWT, presence (getOnlineUsers, userOnline/userOffline), sendMessage with a
// durable ack, newMessage fan-out, typing and read receipts.
#include <chrono>
#include <memory>

#include "bus/bus.hpp"
#include "chat/chat_service.hpp"
#include "chat/presence.hpp"
#include "core/task_pool.hpp"
#include "metrics/metrics.hpp"
#include "ratelimit/rate_limiter.hpp"
#include "socketio/server.hpp"

namespace chat::realtime {

struct Options {
  /// getOnlineUsers broadcasts are coalesced to at most one per interval.
  std::chrono::milliseconds presence_interval{250};
  ratelimit::RateLimiter* message_limiter = nullptr;  ///< per user; nullptr: off
  /// Cluster mode: events for users reach their sockets on other instances through the bus, and
  /// presence is the bus's cluster-wide view. nullptr (embedded): this process is everything.
  bus::Bus* bus = nullptr;
};

/// Wires the "/" namespace of `sio` to `chat`. Construct before serving; thread-safe after.
/// `presence` counts this process's sockets in embedded mode; with a bus, the bus counts them and
/// its cluster-wide view is what clients see.
class Realtime {
 public:
  Realtime(socketio::Server& sio, ChatService& chat, TaskPool& pool, LocalPresence& presence,
           metrics::Registry& metrics, boost::asio::io_context& ioc, Options options);
  ~Realtime();
  Realtime(const Realtime&) = delete;
  Realtime& operator=(const Realtime&) = delete;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace chat::realtime
