#pragma once
// The Socket.IO v5 server over Engine.IO: namespaces with connect middleware, events and acks
// (binary included), rooms with encode-once fan-out, and connection state recovery (pid +
// per-event offsets; missed events replayed before the CONNECT reply).
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <any>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engineio/server.hpp"

namespace chat::socketio {

struct Options {
  std::chrono::milliseconds connect_timeout{45'000};  ///< no namespace joined by then → close
  bool recovery = true;                                ///< connection state recovery
  std::chrono::milliseconds max_disconnection{120'000};
  std::size_t max_missed_packets = 10'000;  ///< per disconnected session; beyond → not recoverable
  std::size_t recent_packets = 256;         ///< kept per connected socket for a quick recovery
  std::size_t max_attachments = 10;
  /// Keep each socket's CONNECT payload (auth()) for its lifetime, as the reference server
  /// does. false: freed once the middleware admitted the socket (auth() is {} afterwards) —
  /// it usually carries the client's token, and an idle connection then keeps neither.
  bool keep_auth = true;
};

struct ConnectError {
  std::string message;
  std::string data_json;  ///< JSON of the `data` field; "" for none
};

/// An event from a client: args[0] is the event name; binary arguments are placeholders
/// ({"_placeholder":true,"num":i}) that index `buffers`.
struct Event {
  boost::json::array args;
  std::vector<std::string> buffers;
  std::string_view name() const;
};

class Socket;
using SocketPtr = std::shared_ptr<Socket>;

/// Answers a client event that asked for an acknowledgement. Thread-safe; only the first call
/// counts. An empty Ack (operator bool false) means the client did not ask for one.
class Ack {
 public:
  Ack() = default;
  explicit Ack(std::function<void(std::string, std::vector<std::string>)> fn);
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }
  /// `json_array`: the ack arguments as compact JSON, e.g. [{"status":"ok"}].
  void operator()(std::string json_array, std::vector<std::string> buffers = {}) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

class Namespace;

/// A client's presence in a namespace. Thread-safe unless noted.
class Socket : public std::enable_shared_from_this<Socket> {
 public:
  ~Socket();
  const std::string& id() const noexcept { return id_; }
  const std::string& nsp() const noexcept;
  /// The handshake request of the current connection (path, query, headers, peer address; as
  /// engineio::Connection::request() keeps it).
  /// Strand-confined: read it in middleware and handlers.
  const net::Request& handshake() const;
  /// The CONNECT payload without the recovery fields ({} when none; {} after the middleware
  /// when Options::keep_auth is false). Strand-confined.
  const boost::json::object& auth() const { return auth_; }
  /// True when this connection resumed an earlier session (missed events were replayed).
  bool recovered() const noexcept { return recovered_; }
  /// Application data (e.g. the authenticated user). Set it in middleware; then read-only.
  std::any data;

  /// Emits an event: `json_array` is the compact JSON array ["name", args…]. Binary arguments
  /// are placeholders indexing `buffers`.
  void emit(std::string_view json_array, std::vector<std::string> buffers = {});
  void join(const std::string& room);
  void leave(const std::string& room);
  /// Server-side disconnect from this namespace (the client gets a DISCONNECT packet).
  void disconnect();
  bool connected() const;

  struct State;  ///< internal (defined in server.cpp)

 private:
  friend class Namespace;
  friend struct ServerImplAccess;
  Socket(Namespace& nsp, std::string id, std::string pid);
  Namespace& nsp_;
  const std::string id_;
  const std::string pid_;
  boost::json::object auth_;
  bool recovered_ = false;
  std::unique_ptr<State> state_;
};

/// Thread-safe. Handlers run on the connection's strand and must not block.
class Namespace {
 public:
  using Next = std::function<void(std::optional<ConnectError>)>;
  /// Decides on a CONNECT (e.g. authentication). Call `next` exactly once, from any thread:
  /// nullopt to accept, an error to refuse with CONNECT_ERROR.
  using Middleware = std::function<void(const SocketPtr&, Next)>;

  explicit Namespace(std::string name, struct NamespaceContext& ctx);
  ~Namespace();
  const std::string& name() const noexcept { return name_; }

  void use(Middleware m);  ///< register before serving
  void on_connection(std::function<void(const SocketPtr&)> fn);
  void on_event(std::function<void(const SocketPtr&, Event&&, Ack)> fn);
  /// `reason` as the reference names it ("transport close", "client namespace disconnect", …).
  void on_disconnect(std::function<void(const SocketPtr&, std::string_view reason)> fn);

  /// Emits to every socket in `room` but `except_id`, encoding the packet once. A
  /// non-`recoverable` event (e.g. typing) is not kept for connection state recovery.
  void emit_to(std::string_view room, std::string_view json_array, std::string_view except_id = {},
               bool recoverable = true);
  /// Emits to every connected socket of the namespace.
  void emit_all(std::string_view json_array);
  std::size_t socket_count() const;

  struct Impl;  ///< internal (defined in server.cpp)

 private:
  friend class Socket;
  friend struct ServerImplAccess;
  const std::string name_;
  std::unique_ptr<Impl> impl_;
};

/// Thread-safe. Create namespaces (of()) before serving.
class Server {
 public:
  Server(Options options, engineio::Options engine_options, boost::asio::io_context& ioc);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Namespace& of(std::string_view name);
  engineio::Server& engine();
  const Options& options() const;
  /// Drops recovery sessions past their window. Runs periodically by itself; exposed for tests.
  void sweep_sessions();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace chat::socketio
