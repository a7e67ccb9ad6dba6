#pragma once
// The HTTP/1.1 server: Beast listener + one session per connection (each on its own strand),
// keep-alive, header/body limits, read/idle timeouts and graceful shutdown. Knows nothing of
// chat: every complete request goes to the HttpHandler.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "net/http.hpp"
#include "net/websocket.hpp"

namespace boost::asio {
class io_context;
}

namespace chat::net {

struct ServerOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 5000;  ///< 0: any free port
  unsigned threads = 1;       ///< I/O threads, the caller of run() included
  /// Scheduler time slice each I/O thread asks for when it starts running (request_time_slice
  /// in core/sched.hpp); 0: the kernel's default.
  std::chrono::microseconds thread_slice{0};
  std::size_t header_limit = 16 * 1024;
  /// Largest body accepted for a request, decided from its method and path once the header is
  /// in; bigger bodies get 413 and the connection is closed. Default: 1 MiB for everything.
  std::function<std::size_t(std::string_view method, std::string_view path)> body_limit;
  std::chrono::milliseconds read_timeout{30'000};  ///< to receive a request / send a response
  std::chrono::milliseconds idle_timeout{60'000};  ///< keep-alive wait for the next request
  std::chrono::milliseconds shutdown_timeout{10'000};
  /// WebSocket upgrades; none → upgrade requests are handled as plain HTTP requests.
  WsUpgradeHandler upgrade;
  WsOptions websocket;
  /// Runs when a graceful stop begins (e.g. to close long-lived protocol sessions). WebSocket
  /// connections count as open connections: the stop waits for them too.
  std::function<void()> on_stop;
};

/// Thread-safety: listen() and run() from one thread; stop() and connections() from any.
class HttpServer {
 public:
  HttpServer(ServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and listens; returns the bound port. Errors name the address.
  result<std::uint16_t> listen();
  /// Runs the I/O threads until a graceful stop has completed: stop() or SIGINT/SIGTERM stop
  /// accepting, close idle connections, let in-flight requests finish (answered with
  /// Connection: close) for up to shutdown_timeout, then return.
  void run();
  /// Begins the graceful stop. Idempotent.
  void stop();
  /// Open connections.
  std::size_t connections() const;
  /// The io_context the I/O threads run: protocol layers put their timers and strands on it.
  boost::asio::io_context& io_context();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::net
