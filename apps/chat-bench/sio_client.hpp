#pragma once
// A minimal Socket.IO v5 / Engine.IO v4 client over WebSocket (no polling), enough to behave like
// the official client on the wire: WebSocket upgrade, the open packet, CONNECT with an auth
// object, pong for every ping, events with ack ids, acks. The WebSocket layer (RFC 6455, client
// side) is in sio_client.cpp: reads parse every frame a read brought, writes are coalesced.
//
// Threading: a connection lives on one io_context that must be run by exactly one thread; every
// method must be called on that thread and every handler call happens on it. No strands, no locks.
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace chat::bench {

class SioConnection;

/// Receives a connection's events. Implementations outlive their connections.
class SioHandler {
 public:
  virtual ~SioHandler() = default;
  /// The namespace "/" accepted our CONNECT.
  virtual void on_connect(SioConnection& c) = 0;
  /// TCP/WebSocket failure, CONNECT_ERROR, or the server closed: called once, then never again.
  virtual void on_close(SioConnection& c, std::string_view why) = 0;
  /// An EVENT from the server: `args` is its JSON text as received (`["name", …]` unless the
  /// server is broken: not validated here, so that the handler parses it once, its own way).
  virtual void on_event(SioConnection& c, std::string_view args) = 0;
  /// An ACK for an id we sent with emit(); `args` as for on_event (`[…]`, not validated).
  virtual void on_ack(SioConnection& c, std::uint64_t id, std::string_view args) = 0;
};

struct ConnectTarget {
  std::string host = "127.0.0.1";  ///< IPv4/IPv6 literal (no DNS in the load loop)
  std::uint16_t port = 5000;
  std::string path = "/socket.io/";
  std::optional<std::string> source_address;  ///< bind() to this local address before connect
};

class SioConnection {
 public:
  virtual ~SioConnection() = default;

  /// Creates a connection; nothing happens until start(). `auth_json` is the CONNECT payload
  /// (e.g. {"token":"…"}); `tag` is the caller's cookie (an index).
  static std::shared_ptr<SioConnection> make(boost::asio::io_context& ioc, SioHandler& handler,
                                             ConnectTarget target, std::string auth_json,
                                             std::size_t tag);

  /// TCP connect → WebSocket handshake → Engine.IO open → Socket.IO CONNECT.
  virtual void start() = 0;
  /// Sends an EVENT (`json_array` = ["name", …]) with an ack id when `with_ack`; returns that id
  /// (0 without ack). Queued in order; dropped silently once closed.
  virtual std::uint64_t emit(std::string_view json_array, bool with_ack) = 0;
  /// Closes the TCP connection at once (no close handshake); on_close is not called afterwards.
  virtual void close() = 0;
  /// Leaves as socket.io-client's disconnect() does: a Socket.IO DISCONNECT and a WebSocket
  /// close frame, sent if the write queue is idle (else skipped), then close(). The server
  /// then ends the session for good ("client namespace disconnect"), where a bare close()
  /// looks like a dropped network: the server keeps the session for a recovery, buffering
  /// what it is sent, for its maxDisconnectionDuration.
  virtual void disconnect() = 0;

  virtual bool connected() const = 0;
  virtual std::size_t tag() const = 0;
  /// Engine.IO pings answered so far.
  virtual std::uint64_t pongs() const = 0;
  /// Bytes waiting in the write queue.
  virtual std::size_t queued_bytes() const = 0;
};

}  // namespace chat::bench
