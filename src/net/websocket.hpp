#pragma once
// WebSocket connections as the rest of the program sees them: Beast-free interfaces. net accepts
// the upgrade, reads frames and owns the send queue; the protocol layer (Engine.IO) implements
// WsHandler.
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "net/http.hpp"

namespace chat::net {

/// The sending side of an accepted WebSocket. Thread-safe.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  /// Queues a frame (shared, so one serialisation serves every recipient of a fan-out).
  /// Returns false when the frame was not queued: the connection is closing, or its queue was
  /// over the byte limit — a slow consumer, which is then disconnected (WsHandler::on_close).
  virtual bool send(std::shared_ptr<const std::string> frame, bool binary) = 0;
  /// Sends a close frame after the queued frames; on_close follows.
  virtual void close() = 0;
  /// Bytes queued and not yet written.
  virtual std::size_t queued_bytes() const = 0;
};

/// While one lives on a thread, frames sent from that thread to WebSockets are written when it
/// ends, from this thread: one non-blocking write per connection for everything sent to it,
/// instead of a flush posted to each connection's strand (a handler each, and a wake-up of the
/// I/O thread when the sender is another thread). What the kernel does not take, and a
/// connection that is closing, go to the strand as before. Nested batches are one batch.
class SendBatch {
 public:
  SendBatch();
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

 private:
  bool outer_;
};

/// Receives the events of one WebSocket, on that connection's strand, one at a time.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  /// The handshake is done; `conn` stays valid as long as it is held.
  virtual void on_open(std::shared_ptr<WsConnection> conn) = 0;
  virtual void on_frame(std::string&& data, bool binary) = 0;
  /// Exactly once, after which no other call comes.
  virtual void on_close() = 0;
};

struct WsOptions {
  std::size_t max_message = 1'000'000;       ///< larger incoming messages close the connection
  std::size_t max_queued_bytes = 1 << 20;    ///< send queue bound (slow consumer → disconnect)
  std::function<void()> on_slow_consumer;    ///< counted by the caller (metrics)
};

/// Decides on an upgrade request (on an I/O thread, must not block): a handler to accept it,
/// or nullptr to refuse with 400 Bad Request.
using WsUpgradeHandler = std::function<std::shared_ptr<WsHandler>(const Request&)>;

}  // namespace chat::net
