#include "net/http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <array>
#include <atomic>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "core/sched.hpp"
#include "net/ws_session.hpp"

namespace chat::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

class Session;

// State shared by the listener and every session. Sessions hold it by shared_ptr so that it
// outlives the last of them.
struct Shared {
  ServerOptions opts;
  HttpHandler handler;
  std::atomic<bool> draining{false};
  std::mutex mu;  // guards sessions
  std::list<std::weak_ptr<Session>> sessions;
  std::atomic<std::size_t> count{0};
  std::function<void()> on_drained;  // runs when draining and the last session is gone

  /// One connection fewer; the last one during a drain stops the server.
  void release() {
    std::function<void()> drained;
    {
      std::lock_guard lock(mu);
      if (count.fetch_sub(1) == 1 && draining) drained = on_drained;
    }
    if (drained) drained();
  }

  std::size_t body_limit(std::string_view method, std::string_view path) const {
    return opts.body_limit ? opts.body_limit(method, path) : std::size_t{1} << 20;
  }
};

std::string error_json(std::string_view message) {
  return std::string(R"({"success":false,"message":")") + std::string(message) + "\"}";
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {
    error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ip_ = ep.address().to_string();
    if (remote_ip_.starts_with("::ffff:")) remote_ip_.erase(0, 7);
  }

  ~Session() {
    {
      std::lock_guard lock(shared_->mu);
      if (registered_) shared_->sessions.erase(self_it_);
    }
    shared_->release();
  }

  void start() {
    {
      std::lock_guard lock(shared_->mu);
      self_it_ = shared_->sessions.insert(shared_->sessions.end(), weak_from_this());
      registered_ = true;
    }
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::do_read, shared_from_this()));
  }

  /// On any thread: closes the connection if it is between requests.
  void close_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::idle)  // waiting for the first byte of a request
        self->do_close();
    });
  }

 private:
  enum class State { idle, reading, handling, writing, closed };

  void do_read() {
    if (shared_->draining) return do_close();
    state_ = State::idle;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->opts.header_limit));
    // Idle timeout until the first byte; from then on the whole request must arrive within the
    // read timeout, so a client trickling a header (slowloris) is dropped.
    if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
    stream_.expires_after(shared_->opts.idle_timeout);
    stream_.async_read_some(buffer_.prepare(8192), [self = shared_from_this()](error_code ec, std::size_t n) {
      if (self->state_ == State::closed) return;
      if (ec) return self->on_read_error(ec);
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    state_ = State::reading;
    stream_.expires_after(shared_->opts.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (self->state_ == State::closed) return;
      if (ec) return self->on_read_error(ec);
      self->on_header();
    });
  }

  void on_header() {
    auto& req = parser_->get();
    std::string_view target(req.target().data(), req.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    const std::size_t limit =
        shared_->body_limit(std::string_view(req.method_string().data(), req.method_string().size()), path);
    parser_->body_limit(limit);
    if (auto len = parser_->content_length(); len && *len > limit)
      return write_error(413, "Request body too large");
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      return http::async_write(stream_, *cont, [self = shared_from_this(), cont](error_code ec, std::size_t) {
        if (ec) return self->do_close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset || ec == asio::error::eof)
      return do_close();
    if (ec == http::error::body_limit) return write_error(413, "Request body too large");
    if (ec == http::error::header_limit) return write_error(431, "Request header too large");
    if (ec.category() == make_error_code(http::error::bad_target).category())
      return write_error(400, "Bad request");
    do_close();
  }

  void on_read(error_code ec, std::size_t) {
    if (state_ == State::closed) return;
    if (ec) return on_read_error(ec);
    state_ = State::handling;
    stream_.expires_never();  // the handler's own time is not the client's fault

    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == http::verb::head;
    Request req;
    req.method.assign(msg.method_string().data(), msg.method_string().size());
    req.target.assign(msg.target().data(), msg.target().size());
    auto q = req.target.find('?');
    auto path = percent_decode(std::string_view(req.target).substr(0, q));
    if (!path || req.target.empty() || req.target[0] != '/') return write_error(400, "Bad request");
    req.path = std::move(*path);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    req.headers.reserve(16);
    for (const auto& f : msg) {
      std::string name(f.name_string().data(), f.name_string().size());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(f.value().data(), f.value().size()));
    }
    req.remote_ip = remote_ip_;
    if (shared_->opts.upgrade && beast::websocket::is_upgrade(msg)) {
      auto handler = shared_->opts.upgrade(req);
      if (!handler) return write_error(400, "Bad request");
      // The connection now belongs to the WebSocket session; this HTTP session ends here.
      state_ = State::closed;
      shared_->count.fetch_add(1);
      std::shared_ptr<void> guard(static_cast<void*>(nullptr), [shared = shared_](void*) { shared->release(); });
      detail::start_websocket(std::move(stream_), std::move(buffer_), std::move(msg), std::move(handler),
                              shared_->opts.websocket, std::move(guard));
      return;
    }
    req.body = std::move(msg.body());

    Responder responder([self = shared_from_this()](Response r) {
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->do_write(std::move(r)); });
    });
    shared_->handler(std::move(req), std::move(responder));
  }

  void write_error(int status, std::string_view message) {
    keep_alive_ = false;
    head_ = false;
    // The client may still be sending a body we refuse: closing at once would reset the
    // connection before it reads our answer, so drain for a while after responding.
    linger_ = state_ == State::reading || state_ == State::idle;
    do_write(Response::json(status, error_json(message)));
  }

  void do_linger() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(3));
    linger_budget_ = 64 * 1024 * 1024;
    discard_some();
  }

  void discard_some() {
    if (!discard_) discard_ = std::make_unique<std::array<char, 16384>>();
    stream_.async_read_some(asio::buffer(*discard_), [self = shared_from_this()](error_code ec, std::size_t n) {
      if (ec || n >= self->linger_budget_) return self->do_close();
      self->linger_budget_ -= n;
      self->discard_some();
    });
  }

  void do_write(Response r) {
    if (state_ == State::closed) return;
    state_ = State::writing;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    for (auto& [k, v] : r.headers) res->insert(k, v);
    const bool keep = keep_alive_ && !r.close && !shared_->draining;
    res->keep_alive(keep);
    if (head_) {
      res->content_length(r.body.size());  // the size a GET would have had; no body is sent
    } else {
      res->body() = std::move(r.body);
      res->prepare_payload();
    }
    stream_.expires_after(shared_->opts.read_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep](error_code ec, std::size_t) {
      if (!ec && self->linger_) return self->do_linger();
      if (ec || !keep) return self->do_close();
      self->do_read();
    });
  }

  void do_close() {
    if (state_ == State::closed) return;
    state_ = State::closed;
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<Shared> shared_;
  std::list<std::weak_ptr<Session>>::iterator self_it_;
  bool registered_ = false;
  std::string remote_ip_;
  State state_ = State::idle;
  bool keep_alive_ = true;
  bool head_ = false;
  bool linger_ = false;
  std::size_t linger_budget_ = 0;
  std::unique_ptr<std::array<char, 16384>> discard_;
};

}  // namespace

// Handlers of the listener capture `this`: Impl owns the io_context, so it outlives them all.
struct HttpServer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  asio::steady_timer accept_retry{acceptor.get_executor()};
  asio::signal_set signals{ioc, SIGINT, SIGTERM};
  asio::steady_timer deadline{ioc};
  std::shared_ptr<Shared> shared = std::make_shared<Shared>();
  std::atomic<bool> stopping{false};

  void do_accept() {
    acceptor.async_accept(asio::make_strand(ioc), [self = this](error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (ec) {
        // Typically EMFILE: back off briefly instead of spinning.
        spdlog::warn("accept failed: {}", ec.message());
        self->accept_retry.expires_after(std::chrono::milliseconds(50));
        self->accept_retry.async_wait([self](error_code e) {
          if (!e) self->do_accept();
        });
        return;
      }
      s.set_option(tcp::no_delay(true), ec);
      self->shared->count.fetch_add(1);
      std::make_shared<Session>(std::move(s), self->shared)->start();
      self->do_accept();
    });
  }

  void stop() {
    if (stopping.exchange(true)) return;
    spdlog::info("shutting down: no new connections, finishing in-flight requests");
    shared->draining = true;
    if (shared->opts.on_stop) shared->opts.on_stop();
    asio::post(acceptor.get_executor(), [self = this] {
      error_code ec;
      self->acceptor.close(ec);
      self->accept_retry.cancel();
    });
    signals.cancel();
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(shared->mu);
      for (auto& w : shared->sessions)
        if (auto s = w.lock()) live.push_back(std::move(s));
    }
    for (auto& s : live) s->close_if_idle();
    live.clear();  // the last reference may be ours: drop it outside the lock
    if (shared->count == 0) return ioc.stop();
    deadline.expires_after(shared->opts.shutdown_timeout);
    deadline.async_wait([self = this](error_code ec) {
      if (ec) return;
      spdlog::warn("shutdown timeout: closing {} connection(s)", self->shared->count.load());
      self->ioc.stop();
    });
  }
};

HttpServer::HttpServer(ServerOptions options, HttpHandler handler) : impl_(std::make_unique<Impl>()) {
  impl_->shared->opts = std::move(options);
  impl_->shared->handler = std::move(handler);
  impl_->shared->on_drained = [impl = impl_.get()] { impl->ioc.stop(); };
}

HttpServer::~HttpServer() {
  // Sessions still queued in the io_context are destroyed with it, after this line: they must
  // not try to stop it then.
  std::lock_guard lock(impl_->shared->mu);
  impl_->shared->on_drained = nullptr;
}

result<std::uint16_t> HttpServer::listen() {
  auto& opts = impl_->shared->opts;
  error_code ec;
  auto address = asio::ip::make_address(opts.host, ec);
  if (ec) return error{errc::invalid_argument, "invalid host address '" + opts.host + "'"};
  tcp::endpoint ep(address, opts.port);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return error{errc::unavailable, "cannot listen on " + opts.host + ":" +
                                        std::to_string(opts.port) + ": " + ec.message()};
  return acc.local_endpoint().port();
}

void HttpServer::run() {
  Impl* impl = impl_.get();
  impl->signals.async_wait([impl](error_code ec, int sig) {
    if (ec) return;
    spdlog::info("received signal {}", sig);
    impl->stop();
  });
  impl->do_accept();
  const unsigned n = std::max(1u, impl->shared->opts.threads);
  const auto slice = impl->shared->opts.thread_slice;
  auto run_io = [impl, slice] {
    (void)request_time_slice(slice);  // 0: the kernel's default
    impl->ioc.run();
  };
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; ++i) threads.emplace_back(run_io);
  run_io();
  for (auto& t : threads) t.join();
}

void HttpServer::stop() {
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->stop(); });
}

std::size_t HttpServer::connections() const { return impl_->shared->count.load(); }

asio::io_context& HttpServer::io_context() { return impl_->ioc; }

}  // namespace chat::net
