#pragma once
// Cross-instance real-time events and cluster-wide presence (cluster mode). In embedded mode
// there is no bus: one process has every socket, Realtime emits locally and LocalPresence is
// the whole truth. redis_bus implements this over Redis (see docs/ARCHITECTURE.md).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "chat/presence.hpp"
#include "core/result.hpp"
#include "ratelimit/rate_limiter.hpp"

namespace chat::bus {

/// A Socket.IO event addressed to every socket of one user, wherever it is connected.
struct UserEvent {
  std::string user_id;        ///< 24-hex lower-case id
  std::string payload;        ///< the event array as JSON text, e.g. ["newMessage",{…}]
  std::string except_origin;  ///< a socket id that must not get it ("" for none)
  bool recoverable = true;    ///< kept for connection-state recovery (false for typing)
};

/// Thread-safety: every method may be called from any thread after start().
/// Blocking: nothing blocks on the network; commands are queued (bounded) and sent by the bus's
/// own I/O thread. Handlers run on that thread: keep them short (Socket.IO emits are fine).
class Bus {
 public:
  using EventHandler = std::function<void(UserEvent&&)>;
  /// A user's cluster-wide state changed: first socket anywhere (online) or last socket gone,
  /// including when the instance holding it stopped heartbeating (offline).
  using PresenceHandler = std::function<void(const std::string& user_id, bool online)>;

  virtual ~Bus() = default;

  /// Events published by other instances for users with sockets on this one. Set before start().
  virtual void on_user_event(EventHandler handler) = 0;
  virtual void on_presence(PresenceHandler handler) = 0;
  /// Connects (non-blocking; reconnects with backoff for as long as the bus lives) and starts
  /// heartbeating this instance.
  virtual void start() = 0;
  /// Removes this instance's presence from the cluster (best effort) and stops. Idempotent.
  virtual void stop() = 0;

  /// Delivers `ev` to the user's sockets on the other instances (the caller emits to its own
  /// local sockets itself). Fire-and-forget: dropped (and counted) while Redis is unreachable.
  virtual void publish(UserEvent ev) = 0;
  /// Called for every local socket of a user that connects / disconnects (the bus counts them:
  /// the first one subscribes this instance to the user's events and marks the user online
  /// cluster-wide; the last one undoes both).
  virtual void user_connected(const std::string& user_id) = 0;
  virtual void user_disconnected(const std::string& user_id) = 0;

  /// The cluster-wide presence view: answered from memory, never from Redis. While Redis is
  /// unreachable it still contains this instance's own users.
  virtual const Presence& presence() const = 0;
  /// Connected and subscribed (drives /readyz).
  virtual bool ready() const = 0;

  using ClaimCallback = std::function<void(result<std::optional<std::string>>)>;
  /// Atomic "set if absent" with a time to live (idempotency keys): stores `value` under `key`
  /// unless the key exists. cb(nullopt) when this call stored it, cb(existing value) when the key
  /// was already there, cb(unavailable) when Redis cannot answer. Runs on the bus thread.
  virtual void claim(std::string key, std::string value, std::chrono::milliseconds ttl,
                     ClaimCallback cb) = 0;

  /// A fixed-window limiter whose counts are shared by every instance through Redis under
  /// `name` (e.g. "api"). Never blocks: it decides from counts known locally and synchronises
  /// them in the background; falls back to local counting while Redis is unreachable.
  virtual std::unique_ptr<ratelimit::RateLimiter> rate_limiter(std::string name, std::uint32_t max,
                                                               std::int64_t window_ms) = 0;
};

}  // namespace chat::bus
