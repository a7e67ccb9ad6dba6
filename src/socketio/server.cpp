#include "socketio/server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/deque.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "core/hash.hpp"
#include "core/log.hpp"
#include "engineio/packet.hpp"
#include "socketio/packet.hpp"

namespace chat::socketio {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// What namespaces share: options and the offset sequence of recoverable events.
struct NamespaceContext {
  Options opts;
  std::size_t max_payload = 1'000'000;
  std::atomic<std::uint64_t> next_offset{0};
};

namespace {

// A server → client packet encoded once for all its recipients.
struct Outgoing {
  std::uint64_t offset = 0;  // 0: not recoverable
  std::shared_ptr<const std::string> frame;
  std::vector<std::shared_ptr<const std::string>> attachments;
};

// The reference server's RECOVERABLE_DISCONNECT_REASONS.
bool is_recoverable(std::string_view reason) {
  return reason == "transport close" || reason == "ping timeout" || reason == "transport error" ||
         reason == "forced close" || reason == "server shutting down" || reason == "forced server close";
}

Outgoing encode_packet(PacketType type, const std::string& nsp, std::string data,
                       std::vector<std::string> buffers, std::optional<std::uint64_t> id = {}) {
  Packet p;
  p.type = type;
  p.nsp = nsp;
  p.id = id;
  p.data = std::move(data);
  p.attachments = buffers.size();
  Outgoing o;
  o.frame = engineio::message_frame(encode(p));
  o.attachments.reserve(buffers.size());
  for (auto& b : buffers) o.attachments.push_back(std::make_shared<const std::string>(std::move(b)));
  return o;
}

// The Engine.IO text frame ('4' + the Socket.IO packet) of a packet without attachments, built
// in one string: the send path's every ack and event goes through here (before: a Packet, its
// encoding and a framed copy, three copies of the payload). `data` then `tail` are the payload.
std::shared_ptr<const std::string> text_frame(PacketType type, const std::string& nsp,
                                              std::optional<std::uint64_t> id, std::string_view data,
                                              std::string_view tail = {}) {
  std::string f;
  f.reserve(data.size() + tail.size() + nsp.size() + 24);
  f.push_back('4');
  f.push_back(static_cast<char>('0' + static_cast<int>(type)));
  if (!nsp.empty() && nsp != "/") {
    f += nsp;
    f.push_back(',');
  }
  if (id) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *id);
    f.append(buf, end);
  }
  f += data;
  f += tail;
  return std::make_shared<const std::string>(std::move(f));
}

class Client;

}  // namespace

std::string_view Event::name() const {
  if (!args.empty() && args[0].is_string()) return args[0].get_string();
  return {};
}

// ---- Ack ----------------------------------------------------------------------------------

struct Ack::State {
  std::function<void(std::string, std::vector<std::string>)> fn;
  std::atomic<bool> done{false};
};

Ack::Ack(std::function<void(std::string, std::vector<std::string>)> fn) : state_(std::make_shared<State>()) {
  state_->fn = std::move(fn);
}

void Ack::operator()(std::string json_array, std::vector<std::string> buffers) const {
  if (!state_ || state_->done.exchange(true)) return;
  state_->fn(std::move(json_array), std::move(buffers));
}

// ---- Socket state -----------------------------------------------------------------------------

struct Socket::State {
  std::mutex mu;  // guards everything below except `rooms` (guarded by the namespace's mutex)
  enum class Phase { connecting, connected, disconnected, gone } phase = Phase::connecting;
  std::shared_ptr<engineio::Connection> conn;
  std::weak_ptr<Client> client;
  std::shared_ptr<const net::Request> handshake;  // the connection's, shared
  // Recoverable packets: while connected, the last few sent (their delivery is not certain
  // until the client comes back with a later offset); while disconnected, everything missed.
  // Boost's deque allocates nothing while empty (std::deque takes ~600 bytes at once).
  boost::container::deque<Outgoing> recent;
  std::size_t missed_from = 0;  // index in `recent` of the first packet sent while disconnected
  std::uint64_t evicted_up_to = 0;
  bool lost = false;
  Clock::time_point expires{};
  // A socket is in a few rooms: a vector costs no hash table per connection. Its own room
  // (named after its id) is not listed here: see Namespace::Impl::join_locked.
  std::vector<std::string> rooms;
  bool in_own_room = true;  // until it leaves its own room; guarded like `rooms`
};

struct Namespace::Impl {
  NamespaceContext& ctx;
  std::vector<Middleware> middlewares;
  std::function<void(const SocketPtr&)> on_connection;
  std::function<void(const SocketPtr&, Event&&, Ack)> on_event;
  std::function<void(const SocketPtr&, std::string_view)> on_disconnect;
  mutable std::mutex mu;  // guards rooms, sockets, sessions and every Socket::State::rooms
  // Transparent hashing: emit_to() looks rooms up by string_view, without a temporary string.
  std::unordered_map<std::string, std::unordered_set<SocketPtr>, StringViewHash, std::equal_to<>> rooms;
  // Keys view the sockets' own ids (a socket outlives its entries: they hold it).
  std::unordered_map<std::string_view, SocketPtr> sockets;  // connected, by id
  std::unordered_map<std::string, SocketPtr> sessions;  // disconnected, recoverable, by pid

  explicit Impl(NamespaceContext& c) : ctx(c) {}

  // Every socket is in the room named after its id. For a connected socket that membership is
  // implicit (emit_to finds it in `sockets`): an entry in `rooms` per connection cost ~400 bytes
  // (a node, a set with its buckets, a copy of the id). A disconnected, recoverable socket is
  // not in `sockets`, so while it is away it is listed in `rooms` under its id like any member.
  void add_to_room_locked(const SocketPtr& s, const std::string& room) { rooms[room].insert(s); }
  void remove_from_room_locked(const SocketPtr& s, std::string_view room) {
    auto it = rooms.find(room);
    if (it == rooms.end()) return;
    it->second.erase(s);
    if (it->second.empty()) rooms.erase(it);
  }
  void join_locked(const SocketPtr& s, const std::string& room) {
    auto& st = *s->state_;
    if (room == s->id()) {
      if (st.in_own_room) return;
      st.in_own_room = true;
      if (!sockets.contains(s->id())) add_to_room_locked(s, room);  // away: listed
      return;
    }
    auto& mine = st.rooms;
    if (std::find(mine.begin(), mine.end(), room) != mine.end()) return;
    mine.push_back(room);
    add_to_room_locked(s, room);
  }
  void leave_locked(const SocketPtr& s, const std::string& room) {
    if (room == s->id()) {
      if (!s->state_->in_own_room) return;
      s->state_->in_own_room = false;
      remove_from_room_locked(s, room);  // listed while away
      return;
    }
    if (std::erase(s->state_->rooms, room) == 0) return;
    remove_from_room_locked(s, room);
  }
  /// The socket is connected: its own room is implicit again.
  void connected_locked(const SocketPtr& s) {
    sockets.erase(s->id());  // a key must view the id of the socket it maps to
    sockets.emplace(s->id(), s);
    if (s->state_->in_own_room) remove_from_room_locked(s, s->id());
  }
  /// The socket went away but can come back: listed in its own room while away.
  void parked_locked(const SocketPtr& s) {
    sockets.erase(s->id());
    sessions[s->pid_] = s;
    if (s->state_->in_own_room) add_to_room_locked(s, s->id());
  }
  void forget_locked(const SocketPtr& s) {
    for (const auto& room : std::vector<std::string>(s->state_->rooms.begin(), s->state_->rooms.end()))
      leave_locked(s, room);
    remove_from_room_locked(s, s->id());
    sockets.erase(s->id());
  }
};

Socket::Socket(Namespace& nsp, std::string id, std::string pid)
    : nsp_(nsp), id_(std::move(id)), pid_(std::move(pid)), state_(std::make_unique<State>()) {}

Socket::~Socket() = default;

const std::string& Socket::nsp() const noexcept { return nsp_.name(); }
const net::Request& Socket::handshake() const {
  static const net::Request none;
  return state_->handshake ? *state_->handshake : none;
}

bool Socket::connected() const {
  std::lock_guard lock(state_->mu);
  return state_->phase == State::Phase::connected;
}

// Friend access for the file-local helpers below.
struct ServerImplAccess {
  static Socket::State& state(Socket& s) { return *s.state_; }
  static Namespace::Impl& impl(Namespace& n) { return *n.impl_; }
  static SocketPtr make_socket(Namespace& n, std::string id, std::string pid) {
    return SocketPtr(new Socket(n, std::move(id), std::move(pid)));
  }
  static void set_connect_data(Socket& s, json::object auth, bool recovered) {
    s.auth_ = std::move(auth);
    s.recovered_ = recovered;
  }
  static const std::string& pid(const Socket& s) { return s.pid_; }
  static Namespace& nsp(Socket& s) { return s.nsp_; }
};

namespace {

using Access = ServerImplAccess;

/// Sends to one socket (or buffers for its recovery). Thread-safe.
void deliver(Socket& socket, const Outgoing& o, const Options& opts) {
  auto& st = Access::state(socket);
  std::lock_guard lock(st.mu);
  using Phase = Socket::State::Phase;
  switch (st.phase) {
    case Phase::gone:
      return;
    case Phase::connected:
      if (o.attachments.empty()) st.conn->send(o.frame, false);
      else st.conn->send_packet(o.frame, o.attachments);
      if (o.offset && opts.recovery) {
        st.recent.push_back(o);
        // `while`: after a recovery the ring may start longer than recent_packets.
        while (st.recent.size() > opts.recent_packets) {
          st.evicted_up_to = st.recent.front().offset;
          st.recent.pop_front();
        }
      }
      return;
    case Phase::connecting:
    case Phase::disconnected:
      if (!o.offset || !opts.recovery || st.lost) return;
      st.recent.push_back(o);
      // Only what was sent while away counts as missed, not the ring kept from before.
      if (st.recent.size() - st.missed_from > opts.max_missed_packets) {
        st.lost = true;  // too much missed: the client will start a fresh session
        st.recent.clear();
      }
      return;
  }
}

Outgoing make_event(NamespaceContext& ctx, const std::string& nsp, std::string_view json_array,
                    std::vector<std::string> buffers, bool recoverable = true) {
  std::uint64_t offset = 0;
  std::string_view body = json_array;
  std::string tail;
  if (recoverable && ctx.opts.recovery && json_array.size() >= 2 && json_array.back() == ']') {
    // The offset travels as the last argument; the client strips it and remembers it.
    offset = ++ctx.next_offset;
    body.remove_suffix(1);
    tail = ",\"" + std::to_string(offset) + "\"]";
  }
  if (buffers.empty()) {
    Outgoing o;
    o.offset = offset;
    o.frame = text_frame(PacketType::event, nsp, std::nullopt, body, tail);
    return o;
  }
  Outgoing o = encode_packet(PacketType::binary_event, nsp, std::string(body) + tail, std::move(buffers));
  o.offset = offset;
  return o;
}

// The Socket.IO side of one Engine.IO connection: decodes packets and owns its sockets (one per
// namespace). Lives on the connection's strand.
class Client final : public engineio::ConnectionHandler, public std::enable_shared_from_this<Client> {
 public:
  Client(std::shared_ptr<engineio::Connection> conn, std::shared_ptr<void> server_keepalive,
         std::function<Namespace*(std::string_view)> find_ns, NamespaceContext& ctx)
      : conn_(std::move(conn)),
        keepalive_(std::move(server_keepalive)),
        find_ns_(std::move(find_ns)),
        ctx_(ctx),
        decoder_(ctx.opts.max_attachments, ctx.max_payload) {}

  void start() {
    std::weak_ptr<Client> weak = shared_from_this();
    conn_->set_timer(ctx_.opts.connect_timeout, [weak] {
      if (auto self = weak.lock(); self && self->sockets_.empty()) self->conn_->close();
    });
  }

  void on_message(std::string&& data, bool binary) override {
    auto r = binary ? decoder_.add_binary(data) : decoder_.add_text(data);
    if (!r) return protocol_error(r.err().message);
    if (!r.value()) return;  // waiting for attachments
    on_packet(std::move(*r.value()));
  }

  void on_close(std::string_view reason) override {
    closed_ = true;
    auto sockets = std::move(sockets_);
    sockets_.clear();
    for (auto& [name, socket] : sockets) socket_closed(socket, reason);
  }

  /// Server-side disconnect of one namespace socket (on the strand).
  void server_disconnect(const SocketPtr& socket) {
    auto it = sockets_.find(socket->nsp());
    if (it == sockets_.end() || it->second != socket) return;
    sockets_.erase(it);
    Packet p;
    p.type = PacketType::disconnect;
    p.nsp = socket->nsp();
    conn_->send(engineio::message_frame(encode(p)));
    socket_closed(socket, "server namespace disconnect");
  }

  engineio::Connection& conn() { return *conn_; }

 private:
  void protocol_error(std::string_view why) {
    spdlog::debug("socket.io protocol error from {}: {}", conn_->request().remote_ip, why);
    conn_->close();
  }

  void send_packet(PacketType type, const std::string& nsp, std::string data) {
    Packet p;
    p.type = type;
    p.nsp = nsp;
    p.data = std::move(data);
    conn_->send(engineio::message_frame(encode(p)));
  }

  void on_packet(Packet&& p) {
    switch (p.type) {
      case PacketType::connect:
        return on_connect(p.nsp, p.data);
      case PacketType::disconnect: {
        auto it = sockets_.find(p.nsp);
        if (it == sockets_.end()) return;
        auto socket = it->second;
        sockets_.erase(it);
        return socket_closed(socket, "client namespace disconnect");
      }
      case PacketType::event:
      case PacketType::binary_event:
        return on_event(std::move(p));
      case PacketType::ack:
      case PacketType::binary_ack:
        return;  // the server emits no events with acks: nothing waits for one
      case PacketType::connect_error:
        return protocol_error("CONNECT_ERROR from a client");
    }
  }

  void on_connect(const std::string& name, const std::string& data) {
    Namespace* nsp = find_ns_(name);
    if (!nsp) return send_packet(PacketType::connect_error, name, R"({"message":"Invalid namespace"})");
    if (sockets_.contains(name) || std::find(connecting_.begin(), connecting_.end(), name) != connecting_.end())
      return protocol_error("repeated CONNECT");
    json::object auth;
    if (!data.empty()) {
      auto v = parse_json(data);
      if (v && v->is_object()) auth = std::move(v->as_object());
    }
    auto& impl = Access::impl(*nsp);
    SocketPtr socket;
    std::uint64_t client_offset = 0;
    if (ctx_.opts.recovery) {
      auto pid = auth.if_contains("pid");
      auto offset = auth.if_contains("offset");
      if (pid && pid->is_string() && offset && offset->is_string()) {
        std::string_view off = offset->get_string();
        auto [ptr, ec] = std::from_chars(off.data(), off.data() + off.size(), client_offset);
        if (ec == std::errc{} && ptr == off.data() + off.size())
          socket = take_session(impl, std::string(pid->get_string()), client_offset);
      }
      auth.erase("pid");
      auth.erase("offset");
    }
    const bool recovered = static_cast<bool>(socket);
    if (!socket)
      socket = Access::make_socket(*nsp, engineio::new_sid(), ctx_.opts.recovery ? engineio::new_sid() : "");
    Access::set_connect_data(*socket, std::move(auth), recovered);
    {
      auto& st = Access::state(*socket);
      std::lock_guard lock(st.mu);
      st.handshake = conn_->shared_request();
      st.client = weak_from_this();
    }
    connecting_.push_back(name);
    run_middleware(nsp, socket, 0, client_offset);
  }

  /// A disconnected session for `pid`, if it can resume from `offset`; it is then connecting.
  static SocketPtr take_session(Namespace::Impl& impl, const std::string& pid, std::uint64_t offset) {
    SocketPtr socket;
    {
      std::lock_guard lock(impl.mu);
      auto it = impl.sessions.find(pid);
      if (it == impl.sessions.end()) return nullptr;
      socket = it->second;
      impl.sessions.erase(it);
    }
    auto& st = Access::state(*socket);
    bool ok;
    {
      std::lock_guard lock(st.mu);
      ok = st.phase == Socket::State::Phase::disconnected && !st.lost && Clock::now() < st.expires &&
           offset >= st.evicted_up_to;
      if (ok) {
        while (!st.recent.empty() && st.recent.front().offset <= offset) st.recent.pop_front();
        st.phase = Socket::State::Phase::connecting;
      } else {
        st.phase = Socket::State::Phase::gone;
        st.recent.clear();
      }
    }
    if (!ok) {
      std::lock_guard lock(impl.mu);
      impl.forget_locked(socket);
      return nullptr;
    }
    return socket;
  }

  void run_middleware(Namespace* nsp, SocketPtr socket, std::size_t i, std::uint64_t offset) {
    auto& impl = Access::impl(*nsp);
    if (i == impl.middlewares.size()) return finish_connect(nsp, socket, std::nullopt);
    std::weak_ptr<Client> weak = weak_from_this();
    impl.middlewares[i](socket, [weak, nsp, socket, i, offset](std::optional<ConnectError> err) {
      auto self = weak.lock();
      if (!self) return;
      self->conn_->dispatch([self, nsp, socket, i, offset, err = std::move(err)]() mutable {
        if (err) return self->finish_connect(nsp, socket, std::move(err));
        self->run_middleware(nsp, socket, i + 1, offset);
      });
    });
  }

  void finish_connect(Namespace* nsp, const SocketPtr& socket, std::optional<ConnectError> err) {
    const std::string& name = nsp->name();
    std::erase(connecting_, name);
    if (connecting_.empty()) connecting_ = {};  // nothing kept while idle
    auto& impl = Access::impl(*nsp);
    auto& st = Access::state(*socket);
    if (closed_ || err) {
      {
        std::lock_guard lock(st.mu);
        st.phase = Socket::State::Phase::gone;
        st.recent.clear();
      }
      {
        std::lock_guard lock(impl.mu);
        impl.forget_locked(socket);
      }
      if (closed_) return;
      json::object e;
      e["message"] = err->message;
      std::string body = json::serialize(e);
      if (!err->data_json.empty()) {
        body.pop_back();
        body += ",\"data\":" + err->data_json + "}";
      }
      return send_packet(PacketType::connect_error, name, std::move(body));
    }
    sockets_[name] = socket;
    conn_->cancel_timer();
    if (!ctx_.opts.keep_auth) Access::set_connect_data(*socket, {}, socket->recovered());
    {
      std::lock_guard lock(impl.mu);
      impl.connected_locked(socket);
    }
    json::object reply;
    reply["sid"] = socket->id();
    if (ctx_.opts.recovery) reply["pid"] = Access::pid(*socket);
    Packet p;
    p.type = PacketType::connect;
    p.nsp = name;
    p.data = json::serialize(reply);
    auto connect_frame = engineio::message_frame(encode(p));
    {
      // Missed events first, then the CONNECT reply; nothing else can interleave (same lock).
      std::lock_guard lock(st.mu);
      for (const auto& o : st.recent) {
        if (o.attachments.empty()) conn_->send(o.frame, false);
        else conn_->send_packet(o.frame, o.attachments);
      }
      conn_->send(std::move(connect_frame), false);
      st.conn = conn_;
      st.phase = Socket::State::Phase::connected;
    }
    if (impl.on_connection) impl.on_connection(socket);
  }

  void on_event(Packet&& p) {
    auto it = sockets_.find(p.nsp);
    if (it == sockets_.end()) return protocol_error("event for a namespace not joined");
    auto v = parse_json(p.data);
    if (!v || !v->is_array()) return protocol_error("event payload");
    Event ev;
    ev.args = std::move(v->as_array());
    ev.buffers = std::move(p.buffers);
    Ack ack;
    if (p.id) {
      std::weak_ptr<engineio::Connection> weak = conn_;
      ack = Ack([weak, nsp = p.nsp, id = *p.id](std::string json_array, std::vector<std::string> buffers) {
        auto conn = weak.lock();
        if (!conn) return;
        if (buffers.empty()) {
          conn->send(text_frame(PacketType::ack, nsp, id, json_array), false);
          return;
        }
        Outgoing o = encode_packet(PacketType::binary_ack, nsp, std::move(json_array), std::move(buffers), id);
        if (o.attachments.empty()) conn->send(o.frame, false);
        else conn->send_packet(o.frame, o.attachments);
      });
    }
    auto& impl = Access::impl(Access::nsp(*it->second));
    if (impl.on_event) impl.on_event(it->second, std::move(ev), std::move(ack));
    else if (ack) ack("[]");
  }

  void socket_closed(const SocketPtr& socket, std::string_view reason) {
    auto& impl = Access::impl(Access::nsp(*socket));
    auto& st = Access::state(*socket);
    const bool keep = ctx_.opts.recovery && is_recoverable(reason);
    {
      std::lock_guard lock(st.mu);
      st.conn.reset();
      st.client.reset();
      st.phase = keep ? Socket::State::Phase::disconnected : Socket::State::Phase::gone;
      if (keep) {
        st.expires = Clock::now() + ctx_.opts.max_disconnection;
        st.missed_from = st.recent.size();
      } else {
        st.recent.clear();
      }
    }
    {
      std::lock_guard lock(impl.mu);
      if (keep) {
        impl.parked_locked(socket);  // stays in its rooms, buffering
      } else {
        impl.forget_locked(socket);
      }
    }
    if (impl.on_disconnect) impl.on_disconnect(socket, reason);
  }

  std::shared_ptr<engineio::Connection> conn_;
  std::shared_ptr<void> keepalive_;
  std::function<Namespace*(std::string_view)> find_ns_;
  NamespaceContext& ctx_;
  Decoder decoder_;
  std::map<std::string, SocketPtr> sockets_;
  std::vector<std::string> connecting_;  // namespaces whose CONNECT is in the middleware
  bool closed_ = false;
};

}  // namespace

// ---- Socket -----------------------------------------------------------------------------------

void Socket::emit(std::string_view json_array, std::vector<std::string> buffers) {
  auto& ctx = Access::impl(nsp_).ctx;
  deliver(*this, make_event(ctx, nsp_.name(), json_array, std::move(buffers)), ctx.opts);
}

void Socket::join(const std::string& room) {
  auto& impl = *nsp_.impl_;
  std::lock_guard lock(impl.mu);
  if (state_->phase != State::Phase::gone) impl.join_locked(shared_from_this(), room);
}

void Socket::leave(const std::string& room) {
  auto& impl = *nsp_.impl_;
  std::lock_guard lock(impl.mu);
  impl.leave_locked(shared_from_this(), room);
}

void Socket::disconnect() {
  std::shared_ptr<Client> client;
  {
    std::lock_guard lock(state_->mu);
    client = state_->client.lock();
  }
  if (!client) return;
  client->conn().dispatch([client, self = shared_from_this()] { client->server_disconnect(self); });
}

// ---- Namespace --------------------------------------------------------------------------------

Namespace::Namespace(std::string name, NamespaceContext& ctx)
    : name_(std::move(name)), impl_(std::make_unique<Impl>(ctx)) {}
Namespace::~Namespace() = default;

void Namespace::use(Middleware m) { impl_->middlewares.push_back(std::move(m)); }
void Namespace::on_connection(std::function<void(const SocketPtr&)> fn) { impl_->on_connection = std::move(fn); }
void Namespace::on_event(std::function<void(const SocketPtr&, Event&&, Ack)> fn) { impl_->on_event = std::move(fn); }
void Namespace::on_disconnect(std::function<void(const SocketPtr&, std::string_view)> fn) {
  impl_->on_disconnect = std::move(fn);
}

void Namespace::emit_to(std::string_view room, std::string_view json_array, std::string_view except_id,
                        bool recoverable) {
  std::vector<SocketPtr> targets;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->rooms.find(room);
    if (it != impl_->rooms.end()) {
      targets.reserve(it->second.size() + 1);
      for (const auto& s : it->second)
        if (s->id() != except_id) targets.push_back(s);
    }
    // A connected socket's own room (see Namespace::Impl::join_locked). connected_locked takes
    // it out of `rooms` under this lock, so it is never in both; checked anyway, so that a
    // socket can never get one packet twice.
    if (auto own = impl_->sockets.find(room); own != impl_->sockets.end() &&
                                             own->second->state_->in_own_room &&
                                             own->second->id() != except_id &&
                                             (it == impl_->rooms.end() ||
                                              !it->second.contains(own->second)))
      targets.push_back(own->second);
  }
  if (targets.empty()) return;
  Outgoing o = make_event(impl_->ctx, name_, json_array, {}, recoverable);
  for (const auto& s : targets) deliver(*s, o, impl_->ctx.opts);
}

void Namespace::emit_all(std::string_view json_array) {
  std::vector<SocketPtr> targets;
  {
    std::lock_guard lock(impl_->mu);
    targets.reserve(impl_->sockets.size() + impl_->sessions.size());
    for (const auto& [id, s] : impl_->sockets) targets.push_back(s);
    for (const auto& [pid, s] : impl_->sessions) targets.push_back(s);
  }
  if (targets.empty()) return;
  Outgoing o = make_event(impl_->ctx, name_, json_array, {});
  for (const auto& s : targets) deliver(*s, o, impl_->ctx.opts);
}

std::size_t Namespace::socket_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->sockets.size();
}

// ---- Server -----------------------------------------------------------------------------------

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  NamespaceContext ctx;
  std::map<std::string, std::unique_ptr<Namespace>, std::less<>> namespaces;
  std::unique_ptr<engineio::Server> engine;
  asio::steady_timer sweeper;

  Impl(Options o, asio::io_context& ioc) : sweeper(ioc) { ctx.opts = std::move(o); }

  Namespace* find(std::string_view name) {
    auto it = namespaces.find(name);
    return it == namespaces.end() ? nullptr : it->second.get();
  }

  void sweep() {
    const auto now = Clock::now();
    for (auto& [name, nsp] : namespaces) {
      auto& impl = Access::impl(*nsp);
      std::vector<SocketPtr> expired;
      {
        std::lock_guard lock(impl.mu);
        for (auto it = impl.sessions.begin(); it != impl.sessions.end();) {
          auto& st = Access::state(*it->second);
          bool drop;
          {
            std::lock_guard slock(st.mu);
            drop = st.lost || now >= st.expires;
            if (drop) {
              st.phase = Socket::State::Phase::gone;
              st.recent.clear();
            }
          }
          if (drop) {
            expired.push_back(it->second);
            it = impl.sessions.erase(it);
          } else {
            ++it;
          }
        }
        for (auto& s : expired) impl.forget_locked(s);
      }
    }
  }

  void schedule_sweep() {
    sweeper.expires_after(std::chrono::seconds(5));
    std::weak_ptr<Impl> weak = shared_from_this();
    sweeper.async_wait([weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->sweep();
      self->schedule_sweep();
    });
  }
};

Server::Server(Options options, engineio::Options engine_options, asio::io_context& ioc)
    : impl_(std::make_shared<Impl>(std::move(options), ioc)) {
  impl_->ctx.max_payload = engine_options.max_payload;
  std::weak_ptr<Impl> weak = impl_;
  impl_->engine = std::make_unique<engineio::Server>(
      std::move(engine_options), ioc,
      [weak](std::shared_ptr<engineio::Connection> conn) -> std::shared_ptr<engineio::ConnectionHandler> {
        auto self = weak.lock();
        if (!self) return nullptr;
        Impl* raw = self.get();
        auto client = std::make_shared<Client>(
            std::move(conn), self, [raw](std::string_view n) { return raw->find(n); }, self->ctx);
        client->start();
        return client;
      });
  impl_->schedule_sweep();
}

Server::~Server() {
  impl_->sweeper.cancel();
  impl_->engine.reset();
}

Namespace& Server::of(std::string_view name) {
  std::string n(name.empty() ? "/" : name);
  if (auto* existing = impl_->find(n)) return *existing;
  auto nsp = std::make_unique<Namespace>(n, impl_->ctx);
  auto& ref = *nsp;
  impl_->namespaces.emplace(n, std::move(nsp));
  return ref;
}

engineio::Server& Server::engine() { return *impl_->engine; }
const Options& Server::options() const { return impl_->ctx.opts; }
void Server::sweep_sessions() { impl_->sweep(); }

}  // namespace chat::socketio
