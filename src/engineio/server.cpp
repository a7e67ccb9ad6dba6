#include "engineio/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container/deque.hpp>

#include <algorithm>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <queue>
#include <unordered_map>

#include "core/base64.hpp"
#include "core/log.hpp"
#include "engineio/packet.hpp"

namespace chat::engineio {
namespace {

namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
using error_code = boost::system::error_code;

const auto kPing = std::make_shared<const std::string>("2");
const auto kNoop = std::make_shared<const std::string>("6");
const auto kClose = std::make_shared<const std::string>("1");
const auto kProbeReply = std::make_shared<const std::string>("3probe");

net::Response error_response(ErrorCode code) {
  return net::Response::json(error_http_status(code), error_json(code));
}

net::Response payload_response(std::string body) {
  return net::Response::text(200, std::move(body), "text/plain; charset=UTF-8");
}

std::int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// What a session keeps of its handshake request for its lifetime: no body, and no spare
// capacity (the HTTP layer reserves room for 16 headers; per idle connection that was ~600
// bytes). Nor what only the WebSocket handshake itself needed (the Sec-WebSocket-* headers: a
// key, a version, a browser's extension offer), nor the raw target, which only repeats the
// path and the query: ~300 bytes per idle connection.
net::Request without_body(net::Request req) {
  req.body = std::string();
  req.target = std::string();
  std::erase_if(req.headers, [](const auto& h) { return h.first.starts_with("sec-websocket-"); });
  req.headers.shrink_to_fit();
  return req;
}

class Session;

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Options opts;
  asio::io_context& ioc;
  ConnectionFactory factory;
  mutable std::mutex mu;  // guards sessions
  // Keys view each session's own sid (the entry holds the session): no copy per connection.
  std::unordered_map<std::string_view, std::shared_ptr<Session>> sessions;
  // One heartbeat timer for every session (instead of a timer per session, re-armed and
  // cancelled twice per ping): each tick looks for the sessions whose ping or pong deadline
  // has come. Idle connections then cost a wake-up per tick instead of two per ping.
  asio::steady_timer heartbeat_tick;
  std::chrono::milliseconds tick_period;
  // Each session's next heartbeat deadline, earliest first: a tick touches only the sessions
  // whose deadline came (walking every session each tick was a quarter of idle CPU). One entry
  // per session: a deadline moved later (a pong) is found when the old one comes, re-queued.
  struct Due {
    std::int64_t at_ns;
    std::weak_ptr<Session> session;
    bool operator>(const Due& o) const { return at_ns > o.at_ns; }
  };
  std::mutex heartbeat_mu;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> heartbeat_queue;  // guarded by heartbeat_mu

  void queue_heartbeat(std::int64_t at_ns, std::weak_ptr<Session> s) {
    std::lock_guard lock(heartbeat_mu);
    heartbeat_queue.push(Due{at_ns, std::move(s)});
  }

  Impl(Options o, asio::io_context& io, ConnectionFactory f)
      : opts(std::move(o)),
        ioc(io),
        factory(std::move(f)),
        heartbeat_tick(io),
        // Pings and ping timeouts are at most a tick late (the client allows far more).
        tick_period(std::clamp(std::min(opts.ping_interval, opts.ping_timeout) / 10,
                               std::chrono::milliseconds(5), std::chrono::milliseconds(500))) {}

  void arm_heartbeat();

  std::shared_ptr<Session> find(const std::string& sid) const {
    std::lock_guard lock(mu);
    auto it = sessions.find(sid);
    return it == sessions.end() ? nullptr : it->second;
  }
  void add(const std::shared_ptr<Session>& s);
  void remove(const std::string& sid) {
    std::lock_guard lock(mu);
    sessions.erase(sid);
  }
};

namespace {

// One Engine.IO session. Its state lives on its strand; send() has a lock-protected fast path
// straight to the WebSocket once the transport is settled.
class Session final : public Connection, public std::enable_shared_from_this<Session> {
 public:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

  Session(std::shared_ptr<Server::Impl> server, net::Request req, bool websocket)
      : server_(std::move(server)),
        strand_(asio::make_strand(server_->ioc)),
        sid_(new_sid()),
        request_(std::make_shared<const net::Request>(without_body(std::move(req)))),
        websocket_(websocket) {}

  // ---- Connection ---------------------------------------------------------------------------

  const std::string& sid() const override { return sid_; }
  const net::Request& request() const override { return *request_; }
  std::shared_ptr<const net::Request> shared_request() const override { return request_; }
  std::string_view transport() const override { return websocket_.load() ? "websocket" : "polling"; }

  bool send(std::shared_ptr<const std::string> frame, bool binary) override {
    std::lock_guard lock(out_mu_);  // keeps each connection's frames in the order they were sent
    if (closed_flag_) return false;
    if (ws_fast_) return ws_fast_->send(std::move(frame), binary);  // a full queue closes it
    asio::post(strand_, [self = shared_from_this(), frame = std::move(frame), binary]() mutable {
      self->enqueue(std::move(frame), binary);
    });
    return true;
  }

  bool send_packet(std::shared_ptr<const std::string> text,
                   const std::vector<std::shared_ptr<const std::string>>& attachments) override {
    std::lock_guard lock(out_mu_);
    if (closed_flag_) return false;
    if (ws_fast_) {
      bool ok = ws_fast_->send(std::move(text), false);
      for (const auto& a : attachments) ok = ok && ws_fast_->send(a, true);
      return ok;
    }
    asio::post(strand_, [self = shared_from_this(), text = std::move(text), attachments]() mutable {
      self->enqueue(std::move(text), false);
      for (auto& a : attachments) self->enqueue(std::move(a), true);
    });
    return true;
  }

  void close() override { close_with("forced close"); }

  void close_with(std::string reason) {
    asio::post(strand_, [self = shared_from_this(), reason = std::move(reason)] { self->do_close(reason, true); });
  }

  void dispatch(std::function<void()> fn) override { asio::dispatch(strand_, std::move(fn)); }

  void set_timer(std::chrono::milliseconds delay, std::function<void()> fn) override {
    asio::dispatch(strand_, [self = shared_from_this(), delay, fn = std::move(fn)]() mutable {
      if (self->closed_) return;
      if (!self->upper_timer_) self->upper_timer_ = std::make_unique<asio::steady_timer>(self->strand_);
      const unsigned gen = ++self->upper_gen_;
      self->upper_timer_->expires_after(delay);
      self->upper_timer_->async_wait([self, gen, fn = std::move(fn)](error_code ec) {
        if (ec || gen != self->upper_gen_) return;
        // The last timer set has fired: an idle connection keeps no timer object.
        self->upper_timer_.reset();
        if (!self->closed_) fn();
      });
    });
  }

  void cancel_timer() override {
    asio::dispatch(strand_, [self = shared_from_this()] {
      ++self->upper_gen_;
      if (self->upper_timer_) self->upper_timer_->cancel();
    });
  }

  // ---- start ------------------------------------------------------------------------------

  /// Polling handshake: answers the GET with the open packet.
  void start_polling(net::Responder respond) {
    asio::dispatch(strand_, [self = shared_from_this(), respond = std::move(respond)] {
      const auto& o = self->server_->opts;
      respond(payload_response(
          "0" + open_packet_json(self->sid_, o.allow_upgrades && o.allow_websocket,
                                 static_cast<int>(o.ping_interval.count()),
                                 static_cast<int>(o.ping_timeout.count()), o.max_payload)));
      self->open_upper();
    });
  }

  /// WebSocket handshake (no sid): the first frame is the open packet.
  void start_websocket(std::shared_ptr<net::WsConnection> ws) {
    asio::dispatch(strand_, [self = shared_from_this(), ws = std::move(ws)]() mutable {
      const auto& o = self->server_->opts;
      self->ws_ = ws;
      ws->send(std::make_shared<const std::string>(
                   "0" + open_packet_json(self->sid_, false, static_cast<int>(o.ping_interval.count()),
                                          static_cast<int>(o.ping_timeout.count()), o.max_payload)),
               false);
      {
        std::lock_guard lock(self->out_mu_);
        self->ws_fast_ = std::move(ws);
      }
      self->open_upper();
    });
  }

  // ---- polling ----------------------------------------------------------------------------

  void on_poll_get(net::Responder respond) {
    asio::dispatch(strand_, [self = shared_from_this(), respond = std::move(respond)]() mutable {
      self->poll_get(std::move(respond));
    });
  }

  void on_poll_post(std::string body, net::Responder respond) {
    asio::dispatch(strand_, [self = shared_from_this(), body = std::move(body), respond = std::move(respond)]() mutable {
      self->poll_post(body, std::move(respond));
    });
  }

  // ---- heartbeat (Server::Impl's tick) -------------------------------------------------------

  /// On the tick's thread, for this session's queue entry that came: its deadline now (kNever
  /// when closed or a heartbeat() is already on its way). When it has come, claims it (sets
  /// kNever): the caller then runs heartbeat(), which queues the next one.
  std::int64_t claim_heartbeat(std::int64_t now_ns) {
    std::int64_t due = heartbeat_due_.load(std::memory_order_relaxed);
    while (due <= now_ns && !heartbeat_due_.compare_exchange_weak(due, kNever, std::memory_order_relaxed)) {
    }
    return due <= now_ns ? now_ns : due;
  }

  void heartbeat() {
    asio::post(strand_, [self = shared_from_this()] { self->on_heartbeat(); });
  }

  // ---- WebSocket events (from the connection's strand) -------------------------------------

  void ws_open(std::shared_ptr<net::WsConnection> conn) {
    asio::dispatch(strand_, [self = shared_from_this(), conn = std::move(conn)]() mutable {
      self->probe_open(std::move(conn));
    });
  }

  void ws_frame(const std::shared_ptr<net::WsConnection>& conn, std::string&& data, bool binary) {
    asio::dispatch(strand_, [self = shared_from_this(), conn, data = std::move(data), binary]() mutable {
      if (conn == self->ws_) return self->on_frame(std::move(data), binary);
      if (conn == self->probe_) return self->probe_frame(data, binary);
    });
  }

  /// `conn` is null when the WebSocket handshake itself failed.
  void ws_closed(const std::shared_ptr<net::WsConnection>& conn, bool fresh) {
    asio::dispatch(strand_, [self = shared_from_this(), conn, fresh] {
      if ((conn && conn == self->ws_) || (!conn && fresh)) return self->do_close("transport close", false);
      if (conn && conn == self->probe_) self->abort_upgrade();
    });
  }

 private:
  struct Out {
    std::shared_ptr<const std::string> frame;
    bool binary;
  };

  void open_upper() {
    schedule_ping(/*first=*/true);
    auto handler = server_->factory ? server_->factory(shared_from_this()) : nullptr;
    if (!handler) return do_close("forced close", true);
    if (!closed_) handler_ = std::move(handler);
  }

  void enqueue(std::shared_ptr<const std::string> frame, bool binary) {
    if (closed_) return;
    if (ws_ && !probe_) {
      ws_->send(std::move(frame), binary);
      return;
    }
    outbox_bytes_ += frame->size();
    outbox_.push_back(Out{std::move(frame), binary});
    if (outbox_bytes_ > server_->opts.max_buffered_bytes) {
      if (server_->opts.on_slow_consumer) server_->opts.on_slow_consumer();
      return do_close("transport error", false);
    }
    if (pending_get_) flush_polling();
  }

  std::string take_payload() {
    std::string body;
    body.reserve(outbox_bytes_ + outbox_.size() * 2);
    for (std::size_t i = 0; i < outbox_.size(); ++i) {
      if (i) body.push_back(kRecordSeparator);
      if (outbox_[i].binary) body += "b" + base64_encode(*outbox_[i].frame);
      else body += *outbox_[i].frame;
    }
    outbox_.clear();
    outbox_bytes_ = 0;
    return body;
  }

  void flush_polling() {
    auto respond = std::move(*pending_get_);
    pending_get_.reset();
    respond(payload_response(take_payload()));
  }

  void poll_get(net::Responder respond) {
    if (closed_) {
      // Closed by the server: the client learns it from a close packet on its next poll.
      if (close_pending_) {
        close_pending_ = false;
        server_->remove(sid_);
        return respond(payload_response("1"));
      }
      return respond(error_response(ErrorCode::unknown_sid));
    }
    if (ws_ && !probe_) return respond(error_response(ErrorCode::bad_request));  // upgraded
    if (pending_get_) {
      // Two GETs at once is a protocol violation: the pending one gets a close packet.
      respond(error_response(ErrorCode::bad_request));
      auto pending = std::move(*pending_get_);
      pending_get_.reset();
      pending(payload_response("1"));
      return do_close("transport error", false);
    }
    if (!outbox_.empty()) return respond(payload_response(take_payload()));
    // During an upgrade the client's poll must complete so that it can switch.
    if (upgrading_) return respond(payload_response("6"));
    pending_get_ = std::move(respond);
  }

  void poll_post(const std::string& body, net::Responder respond) {
    if (closed_) return respond(error_response(ErrorCode::unknown_sid));
    if (ws_ && !probe_) return respond(error_response(ErrorCode::bad_request));
    auto packets = decode_payload(body, body.size() + 1);
    if (!packets) {
      respond(error_response(ErrorCode::bad_request));
      return do_close("transport error", false);
    }
    respond(net::Response::text(200, "ok", "text/html"));
    for (auto& p : packets.value()) {
      if (closed_) break;
      on_packet(std::move(p), /*over_polling=*/true);
    }
  }

  // ---- packets ----------------------------------------------------------------------------

  void on_frame(std::string&& data, bool binary) {
    if (binary) return on_packet(decode_binary_frame(data), false);
    auto p = decode_text_frame(data);
    if (!p) return do_close("transport error", false);
    on_packet(std::move(*p), false);
  }

  void on_packet(Packet&& p, bool over_polling) {
    switch (p.type) {
      case PacketType::message:
        if (handler_) handler_->on_message(std::move(p.data), p.binary);
        return;
      case PacketType::pong:
        if (awaiting_pong_) {
          awaiting_pong_ = false;
          schedule_ping();
        }
        return;
      case PacketType::close:
        // Client-initiated close: a poll still waiting is answered with a noop.
        if (pending_get_) {
          auto pending = std::move(*pending_get_);
          pending_get_.reset();
          pending(payload_response("6"));
        }
        return do_close("transport close", false);
      case PacketType::noop:
        return;
      case PacketType::ping:  // v4 clients never ping
      case PacketType::open:
      case PacketType::upgrade:
        return do_close("transport error", false);
    }
  }

  // ---- heartbeat --------------------------------------------------------------------------

  /// The next ping is due one interval from now. `first`: the session enters the tick's queue
  /// (later, a pong only moves the deadline: the queue entry finds it).
  void schedule_ping(bool first = false) {
    next_ping_ns_ = steady_now_ns() + std::chrono::nanoseconds(server_->opts.ping_interval).count();
    set_heartbeat_due(next_ping_ns_, first);
  }

  void set_heartbeat_due(std::int64_t at_ns, bool queue) {
    heartbeat_due_.store(at_ns, std::memory_order_relaxed);
    if (queue) server_->queue_heartbeat(at_ns, weak_from_this());
  }

  void on_heartbeat() {
    if (closed_) return;
    const std::int64_t now = steady_now_ns();
    // The tick claimed the queue entry: the next deadline goes back into the queue.
    if (awaiting_pong_) {
      if (now >= pong_deadline_ns_) return do_close("ping timeout", false);
      return set_heartbeat_due(pong_deadline_ns_, true);
    }
    if (now < next_ping_ns_) return set_heartbeat_due(next_ping_ns_, true);  // a pong came since
    send_control(kPing);
    awaiting_pong_ = true;
    pong_deadline_ns_ = now + std::chrono::nanoseconds(server_->opts.ping_timeout).count();
    set_heartbeat_due(pong_deadline_ns_, true);
  }

  void send_control(const std::shared_ptr<const std::string>& frame) {
    if (ws_ && !probe_) {
      ws_->send(frame, false);
      return;
    }
    outbox_bytes_ += frame->size();
    outbox_.push_back(Out{frame, false});
    if (pending_get_) flush_polling();
  }

  // ---- upgrade ----------------------------------------------------------------------------

  void probe_open(std::shared_ptr<net::WsConnection> conn) {
    if (closed_ || ws_ || probe_ || !server_->opts.allow_upgrades) {
      conn->close();  // a second WebSocket for the same session, or too late
      return;
    }
    probe_ = std::move(conn);
    if (!upgrade_timer_) upgrade_timer_ = std::make_unique<asio::steady_timer>(strand_);
    const unsigned gen = ++upgrade_gen_;
    upgrade_timer_->expires_after(server_->opts.upgrade_timeout);
    upgrade_timer_->async_wait([self = shared_from_this(), gen](error_code ec) {
      if (!ec && gen == self->upgrade_gen_) self->abort_upgrade();
    });
  }

  void probe_frame(const std::string& data, bool binary) {
    if (!binary && data == "2probe" && !upgrading_) {
      upgrading_ = true;
      probe_->send(kProbeReply, false);
      // The client pauses polling: complete its pending poll so that it can send "5".
      if (pending_get_) {
        if (outbox_.empty()) {
          auto pending = std::move(*pending_get_);
          pending_get_.reset();
          pending(payload_response("6"));
        } else {
          flush_polling();
        }
      }
      return;
    }
    if (!binary && data == "5" && upgrading_) return complete_upgrade();
    abort_upgrade();
  }

  void complete_upgrade() {
    ++upgrade_gen_;
    if (upgrade_timer_) upgrade_timer_->cancel();
    ws_ = std::move(probe_);
    probe_.reset();
    upgrading_ = false;
    websocket_ = true;
    if (pending_get_) {
      auto pending = std::move(*pending_get_);
      pending_get_.reset();
      pending(payload_response("6"));
    }
    for (auto& o : outbox_) ws_->send(std::move(o.frame), o.binary);
    outbox_.clear();
    outbox_bytes_ = 0;
    // Sends already posted to the strand still go through enqueue() (in order); only after them
    // may other threads write to the WebSocket directly.
    asio::post(strand_, [self = shared_from_this()] {
      if (self->closed_) return;
      std::lock_guard lock(self->out_mu_);
      self->ws_fast_ = self->ws_;
    });
  }

  void abort_upgrade() {
    ++upgrade_gen_;
    if (upgrade_timer_) upgrade_timer_->cancel();
    if (probe_) probe_->close();
    probe_.reset();
    upgrading_ = false;
  }

  // ---- close ------------------------------------------------------------------------------

  /// `forced`: the server chose to close (Connection::close), so a polling client is told with a
  /// close packet on its next poll. Otherwise (client close, ping timeout, errors) the session is
  /// gone at once and later requests get "Session ID unknown", as in the reference server.
  void do_close(std::string_view reason, bool forced) {
    if (closed_) return;
    closed_ = true;
    {
      std::lock_guard lock(out_mu_);
      closed_flag_ = true;
      ws_fast_.reset();
    }
    heartbeat_due_.store(kNever, std::memory_order_relaxed);
    ++upper_gen_;
    if (upper_timer_) upper_timer_->cancel();
    abort_upgrade();
    outbox_.clear();
    outbox_bytes_ = 0;
    if (ws_) {
      ws_->close();
      ws_.reset();
      server_->remove(sid_);
    } else if (pending_get_) {
      auto pending = std::move(*pending_get_);
      pending_get_.reset();
      pending(payload_response("1"));
      server_->remove(sid_);
    } else if (forced) {
      // Keep the session findable until the client polls once more (or for a heartbeat period).
      close_pending_ = true;
      auto linger = std::make_shared<asio::steady_timer>(strand_);
      linger->expires_after(server_->opts.ping_interval + server_->opts.ping_timeout);
      linger->async_wait([self = shared_from_this(), linger](error_code) {
        if (self->close_pending_) {
          self->close_pending_ = false;
          self->server_->remove(self->sid_);
        }
      });
    } else {
      server_->remove(sid_);
    }
    if (auto h = std::move(handler_)) h->on_close(reason);
  }

  std::shared_ptr<Server::Impl> server_;
  Strand strand_;
  std::unique_ptr<asio::steady_timer> upper_timer_;
  std::unique_ptr<asio::steady_timer> upgrade_timer_;
  std::atomic<std::int64_t> heartbeat_due_{kNever};  ///< steady ns; read by the tick
  std::int64_t next_ping_ns_ = 0;                     ///< strand state from here
  std::int64_t pong_deadline_ns_ = 0;
  unsigned upper_gen_ = 0;
  unsigned upgrade_gen_ = 0;
  const std::string sid_;
  std::shared_ptr<const net::Request> request_;
  std::atomic<bool> websocket_;
  std::shared_ptr<ConnectionHandler> handler_;

  // strand state
  std::shared_ptr<net::WsConnection> ws_;     // the WebSocket transport, once settled
  std::shared_ptr<net::WsConnection> probe_;  // a WebSocket being probed for an upgrade
  // Boost's deque allocates nothing while empty (std::deque takes ~600 bytes at once): most
  // sessions are WebSockets and never use it.
  boost::container::deque<Out> outbox_;       // polling: waiting for the next GET
  std::size_t outbox_bytes_ = 0;
  std::optional<net::Responder> pending_get_;
  bool awaiting_pong_ = false;
  bool upgrading_ = false;
  bool closed_ = false;
  bool close_pending_ = false;

  // guarded by out_mu_: the fast path of send()
  std::mutex out_mu_;
  std::shared_ptr<net::WsConnection> ws_fast_;
  bool closed_flag_ = false;
};

// Adapts a WebSocket's events to the session (new session or upgrade of an existing one).
class WsBridge final : public net::WsHandler {
 public:
  WsBridge(std::shared_ptr<Session> session, bool fresh) : session_(std::move(session)), fresh_(fresh) {}
  void on_open(std::shared_ptr<net::WsConnection> conn) override {
    conn_ = conn;
    if (fresh_) session_->start_websocket(std::move(conn));
    else session_->ws_open(std::move(conn));
  }
  void on_frame(std::string&& data, bool binary) override { session_->ws_frame(conn_, std::move(data), binary); }
  void on_close() override {
    session_->ws_closed(conn_, fresh_);
    conn_.reset();
  }

 private:
  std::shared_ptr<Session> session_;
  std::shared_ptr<net::WsConnection> conn_;
  bool fresh_;
};

}  // namespace

void Server::Impl::add(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mu);
  sessions.emplace(s->sid(), s);
}

std::shared_ptr<const std::string> message_frame(std::string_view message) {
  std::string f;
  f.reserve(message.size() + 1);
  f.push_back('4');
  f.append(message);
  return std::make_shared<const std::string>(std::move(f));
}

void Server::Impl::arm_heartbeat() {
  heartbeat_tick.expires_after(tick_period);
  heartbeat_tick.async_wait([weak = weak_from_this()](error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    const std::int64_t now = steady_now_ns();
    std::vector<Due> came;
    {
      std::lock_guard lock(self->heartbeat_mu);
      while (!self->heartbeat_queue.empty() && self->heartbeat_queue.top().at_ns <= now) {
        came.push_back(self->heartbeat_queue.top());
        self->heartbeat_queue.pop();
      }
    }
    for (auto& d : came) {
      auto s = d.session.lock();
      if (!s) continue;  // gone: its entry ends here
      const std::int64_t due = s->claim_heartbeat(now);
      if (due == now) s->heartbeat();  // queues the next deadline itself
      else if (due != Session::kNever) self->queue_heartbeat(due, std::move(d.session));  // moved later
      // kNever: closed, or a heartbeat is already on its way and will queue the next one.
    }
    self->arm_heartbeat();
  });
}

Server::Server(Options options, asio::io_context& ioc, ConnectionFactory factory)
    : impl_(std::make_shared<Impl>(std::move(options), ioc, std::move(factory))) {
  impl_->arm_heartbeat();
}

Server::~Server() {
  impl_->heartbeat_tick.cancel();
  // Sessions hold the Impl: release the map's references so that nothing outlives the server.
  std::unordered_map<std::string_view, std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(impl_->mu);
    sessions.swap(impl_->sessions);
  }
}

const Options& Server::options() const { return impl_->opts; }

std::size_t Server::connections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.size();
}

void Server::close_all() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [sid, s] : impl_->sessions) all.push_back(s);
  }
  for (auto& s : all) s->close_with("server shutting down");
}

void Server::handle_http(net::Request&& req, net::Responder respond) {
  auto eio = req.query_param("EIO");
  if (eio != "4") return respond(error_response(ErrorCode::unsupported_protocol_version));
  auto transport = req.query_param("transport");
  const auto& o = impl_->opts;
  if (transport != "polling" || !o.allow_polling) {
    // A WebSocket transport reached as plain HTTP (no upgrade) is a bad request.
    if (transport == "websocket" && o.allow_websocket) return respond(error_response(ErrorCode::bad_request));
    return respond(error_response(ErrorCode::unknown_transport));
  }
  auto sid = req.query_param("sid");
  if (!sid) {
    if (req.method != "GET") return respond(error_response(ErrorCode::bad_handshake_method));
    auto session = std::make_shared<Session>(impl_, std::move(req), false);
    impl_->add(session);
    return session->start_polling(std::move(respond));
  }
  auto session = impl_->find(*sid);
  if (!session) return respond(error_response(ErrorCode::unknown_sid));
  if (req.method == "GET") return session->on_poll_get(std::move(respond));
  if (req.method == "POST") {
    std::string_view ct = req.header("content-type");
    if (ct.starts_with("application/octet-stream")) return respond(error_response(ErrorCode::bad_request));
    return session->on_poll_post(std::move(req.body), std::move(respond));
  }
  respond(error_response(ErrorCode::bad_request));
}

std::shared_ptr<net::WsHandler> Server::handle_upgrade(const net::Request& req) {
  const auto& o = impl_->opts;
  if (req.query_param("EIO") != "4" || req.query_param("transport") != "websocket" || !o.allow_websocket)
    return nullptr;
  auto sid = req.query_param("sid");
  if (!sid) {
    auto session = std::make_shared<Session>(impl_, req, true);
    impl_->add(session);
    return std::make_shared<WsBridge>(std::move(session), true);
  }
  auto session = impl_->find(*sid);
  if (!session || !o.allow_upgrades) return nullptr;
  return std::make_shared<WsBridge>(std::move(session), false);
}

}  // namespace chat::engineio
