#pragma once
// The Engine.IO v4 server: handshake, HTTP long-polling, WebSocket, the polling → WebSocket
// upgrade, server-driven heartbeat and close semantics. Network I/O comes from src/net through
// Beast-free interfaces (Request/Responder for polling, WsConnection/WsHandler for WebSocket);
// the upper layer (Socket.IO) sees a Connection and implements a ConnectionHandler.
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/http.hpp"
#include "net/websocket.hpp"

namespace boost::asio {
class io_context;
}

namespace chat::engineio {

struct Options {
  std::chrono::milliseconds ping_interval{25'000};
  std::chrono::milliseconds ping_timeout{20'000};
  std::chrono::milliseconds upgrade_timeout{10'000};
  std::size_t max_payload = 1'000'000;       ///< largest POST body / WebSocket message
  std::size_t max_buffered_bytes = 1 << 20;  ///< per-connection send queue (slow consumer → close)
  bool allow_polling = true;
  bool allow_websocket = true;
  bool allow_upgrades = true;
  std::function<void()> on_slow_consumer;    ///< counted by the caller (metrics)
};

/// One Engine.IO connection as the upper layer sees it. Thread-safe.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual const std::string& sid() const = 0;
  /// The handshake request as kept for the session's life: path, query, headers and peer
  /// address; no body, no raw target (path + query) and no Sec-WebSocket-* headers.
  virtual const net::Request& request() const = 0;
  /// The same, shared (a Socket.IO socket keeps it without a copy per connection).
  virtual std::shared_ptr<const net::Request> shared_request() const = 0;
  /// Queues a message. `frame` is the complete Engine.IO text frame — '4' followed by the
  /// message (see message_frame()) — or, when `binary`, the raw bytes. Shared so that a fan-out
  /// encodes once. Returns false when the connection is closed or its queue overflowed (the
  /// connection is then closed as a slow consumer).
  virtual bool send(std::shared_ptr<const std::string> frame, bool binary = false) = 0;
  /// Queues a text frame followed by binary frames (a Socket.IO packet with attachments) with no
  /// other frame of this connection in between.
  virtual bool send_packet(std::shared_ptr<const std::string> text,
                           const std::vector<std::shared_ptr<const std::string>>& attachments) = 0;
  /// Closes the connection (server-initiated); ConnectionHandler::on_close follows.
  virtual void close() = 0;
  /// Runs `fn` on the connection's strand (where the handler's calls happen).
  virtual void dispatch(std::function<void()> fn) = 0;
  /// One upper-layer timer: runs `fn` on the strand after `delay` unless replaced or cancelled.
  virtual void set_timer(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual void cancel_timer() = 0;
  /// "polling" or "websocket" (changes once, on upgrade).
  virtual std::string_view transport() const = 0;
};

/// The upper layer's side of one connection. Called on the connection's strand, one at a time.
class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  /// A message packet: text (without the '4') or binary bytes.
  virtual void on_message(std::string&& data, bool binary) = 0;
  /// Exactly once; `reason` as the reference server names it ("transport close", "ping timeout",
  /// "transport error" (also for malformed input), "forced close", "server shutting down").
  virtual void on_close(std::string_view reason) = 0;
};

/// Called (on the new connection's strand) for every handshake; returns its handler.
using ConnectionFactory = std::function<std::shared_ptr<ConnectionHandler>(std::shared_ptr<Connection>)>;

/// "4" + `message`: the text frame of a message packet.
std::shared_ptr<const std::string> message_frame(std::string_view message);

/// Thread-safe. Must outlive the io_context's handlers (destroy it after the I/O threads stop).
class Server {
 public:
  Server(Options options, boost::asio::io_context& ioc, ConnectionFactory factory);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Handshake and polling requests (GET/POST on the Engine.IO path). Never blocks.
  void handle_http(net::Request&& req, net::Responder respond);
  /// A WebSocket upgrade on the Engine.IO path: a new connection or the upgrade of a polling
  /// one. nullptr refuses the upgrade (400).
  std::shared_ptr<net::WsHandler> handle_upgrade(const net::Request& req);
  /// Open connections.
  std::size_t connections() const;
  /// Closes every connection ("server shutting down").
  void close_all();
  const Options& options() const;

  struct Impl;  ///< internal (public so that the session type in server.cpp can name it)

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace chat::engineio
