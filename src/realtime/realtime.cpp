#include "realtime/realtime.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <utility>

#include "api/json_views.hpp"
#include "core/log.hpp"
#include "core/object_id.hpp"
#include "core/text.hpp"
#include "core/time.hpp"

namespace chat::realtime {
namespace {

namespace json = boost::json;
using socketio::Ack;
using socketio::ConnectError;
using socketio::SocketPtr;

/// What a connected socket is: its user and which presence events it wants.
struct SocketUser {
  std::string user_id;
  bool full_presence = true;   ///< getOnlineUsers updates (auth.presence != "none")
  bool delta_presence = false; ///< userOnline/userOffline (auth.presence == "delta")
};

std::string user_room(std::string_view id) { return "user:" + std::string(id); }

const char* error_code_name(errc e) {
  switch (e) {
    case errc::invalid_argument: return "validation";
    case errc::not_found: return "not_found";
    case errc::too_large: return "too_large";
    case errc::rate_limited: return "rate_limited";
    case errc::unavailable: return "unavailable";
    case errc::unauthorized:
    case errc::forbidden: return "unauthorized";
    case errc::already_exists: return "conflict";
    case errc::internal: break;
  }
  return "internal";
}

void ack_error(const Ack& ack, std::string_view message, std::string_view code) {
  if (!ack) return;
  json::object o;
  o["status"] = "error";
  o["error"] = message;
  o["code"] = code;
  ack(json::serialize(json::array{o}));
}

void ack_ok(const Ack& ack, json::object body) {
  if (!ack) return;
  json::object o;
  o["status"] = "ok";
  for (auto& kv : body) o[kv.key()] = std::move(kv.value());
  ack(json::serialize(json::array{o}));
}

std::string first_error(const Validation& v) {
  if (v.too_large) return "Image is too large";
  if (v.errors.empty()) return "Invalid payload";
  const auto& [field, msgs] = v.errors.fields().front();
  return msgs.empty() ? field : msgs.front();
}

/// An optional string field; a present non-string is reported in `bad`.
std::string string_of(const json::object& o, std::string_view key, bool& bad) {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return {};
  if (!v->is_string()) {
    bad = true;
    return {};
  }
  return std::string(v->get_string());
}

}  // namespace

struct Realtime::Impl : std::enable_shared_from_this<Realtime::Impl> {
  socketio::Namespace& nsp;
  ChatService& chat;
  TaskPool& pool;
  LocalPresence& presence;
  Options opts;
  boost::asio::steady_timer presence_timer;
  std::atomic<bool> presence_armed{false};
  bus::Bus* bus;
  const Presence& view;  ///< who clients are told is online
  metrics::Gauge sockets_gauge;
  metrics::Counter messages_in, messages_rejected;
  metrics::Counter reads_in, reads_written;
  metrics::Histogram fanout_latency;

  // Read positions. A chat client sends markRead for every message it is shown while the
  // conversation is open: one per message delivered. Each was a synchronous store write on
  // the blocking pool (a thread waiting for the writer's commit): under load they queued until
  // the pool refused them, silently for a client that asks no ack (the web client), which
  // could leave a read position behind, and they held the blocking threads REST requests
  // need. Now the waiting ones are kept by (reader, peer) with the newest upTo only (a position
  // only moves forward) and their acks, and one pool task at a time writes up to
  // kReadsPerWrite of them in one store write (one commit), again while more came meanwhile.
  struct PendingRead {
    std::string up_to;
    std::vector<Ack> acks;
  };
  static constexpr std::size_t kMaxPendingReads = 65536;  // (reader, peer) keys, and acks
  static constexpr std::size_t kReadsPerWrite = 1024;
  std::mutex reads_mu;
  std::map<std::pair<std::string, std::string>, PendingRead> reads_pending;  // under reads_mu
  std::size_t reads_acks = 0;    // acks waiting in reads_pending
  bool reads_running = false;    // a write_reads task is posted or running

  Impl(socketio::Server& sio, ChatService& c, TaskPool& p, LocalPresence& pr, metrics::Registry& m,
       boost::asio::io_context& ioc, Options o)
      : nsp(sio.of("/")),
        chat(c),
        pool(p),
        presence(pr),
        opts(o),
        presence_timer(ioc),
        bus(o.bus),
        view(o.bus ? o.bus->presence() : static_cast<const Presence&>(pr)) {
    sockets_gauge = m.gauge("chat_socketio_sockets", "Connected Socket.IO sockets");
    messages_in = m.counter("chat_messages_received_total", "Messages accepted from sockets for storage");
    messages_rejected = m.counter("chat_messages_rejected_total", "sendMessage events refused (validation, rate limit, busy)");
    reads_in = m.counter("chat_read_marks_received_total", "markRead events accepted (checked, queued to be written)");
    reads_written = m.counter("chat_read_positions_written_total",
                              "Read positions written to the store (markRead events for one reader and peer waiting together are one write)");
    fanout_latency = m.histogram("chat_message_fanout_seconds",
                                 "From a message's creation to its hand-off to local sockets and the bus (includes the durable write)",
                                 {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5});
  }

  void wire() {
    std::weak_ptr<Impl> weak = shared_from_this();
    nsp.use([weak](const SocketPtr& s, socketio::Namespace::Next next) {
      if (auto self = weak.lock()) self->authenticate(s, std::move(next));
      else next(ConnectError{"Server shutting down", ""});
    });
    nsp.on_connection([weak](const SocketPtr& s) {
      if (auto self = weak.lock()) self->connected(s);
    });
    nsp.on_disconnect([weak](const SocketPtr& s, std::string_view) {
      if (auto self = weak.lock()) self->disconnected(s);
    });
    nsp.on_event([weak](const SocketPtr& s, socketio::Event&& ev, Ack ack) {
      if (auto self = weak.lock()) self->event(s, std::move(ev), std::move(ack));
    });
    chat.on_message([weak](const store::Message& m, std::string_view origin) {
      if (auto self = weak.lock()) self->deliver(m, origin);
    });
    if (bus) {
      bus->on_user_event([weak](bus::UserEvent&& ev) {
        if (auto self = weak.lock())
          self->nsp.emit_to(user_room(ev.user_id), ev.payload, ev.except_origin, ev.recoverable);
      });
      bus->on_presence([weak](const std::string& user_id, bool online) {
        if (auto self = weak.lock()) self->presence_changed(user_id, online);
      });
    }
  }

  // ---- connect ------------------------------------------------------------------------------

  static std::string token_of(const SocketPtr& s) {
    if (auto* t = s->auth().if_contains("token"); t && t->is_string() && !t->get_string().empty())
      return std::string(t->get_string());
    const auto& req = s->handshake();
    if (auto c = req.cookie("token"); c && !c->empty()) return *c;
    std::string_view h = req.header("authorization");
    if (h.size() > 7 && (h.starts_with("Bearer ") || h.starts_with("bearer "))) return trim(h.substr(7));
    return {};
  }

  void authenticate(const SocketPtr& s, socketio::Namespace::Next next) {
    std::string token = token_of(s);
    if (token.empty()) return next(ConnectError{"Unauthorized", ""});
    SocketUser info;
    if (auto* p = s->auth().if_contains("presence"); p && p->is_string()) {
      info.full_presence = p->get_string() != "none";
      info.delta_presence = p->get_string() == "delta";
    }
    // The old client names itself in the query: only believed when the token says the same.
    std::string claimed = s->handshake().query_param("userId").value_or("");
    std::string previous;
    if (s->recovered())
      if (auto* u = std::any_cast<SocketUser>(&s->data)) previous = u->user_id;
    // The user id must match what the client claims and, on recovery, the session's user.
    auto admit = [s, next](SocketUser info, const std::string& user_id, const std::string& claimed,
                           const std::string& previous) {
      if (!claimed.empty() && to_lower_ascii(claimed) != user_id)
        return next(ConnectError{"Unauthorized", R"({"reason":"userId does not match the token"})"});
      if (!previous.empty() && previous != user_id)
        return next(ConnectError{"Unauthorized", R"({"reason":"session belongs to another user"})"});
      info.user_id = user_id;
      s->data = std::move(info);
      next(std::nullopt);
    };
    // A valid token of a user this process already knows needs no store read: admitted here,
    // without a hop to the blocking pool (and without the database, if it is slow or down).
    auto known = chat.authenticate_known(token);
    if (!known) return next(ConnectError{"Unauthorized", ""});
    if (*known) return admit(std::move(info), **known, claimed, previous);
    auto self = shared_from_this();
    bool posted = pool.post([self, next, admit, token = std::move(token), info = std::move(info),
                             claimed = std::move(claimed), previous = std::move(previous)]() mutable {
      auto user = self->chat.authenticate(token);
      if (!user) return next(ConnectError{"Unauthorized", ""});
      admit(std::move(info), user->id, claimed, previous);
    });
    if (!posted) next(ConnectError{"Server busy, retry", ""});
  }

  void connected(const SocketPtr& s) {
    const auto* u = std::any_cast<SocketUser>(&s->data);
    if (!u) return s->disconnect();
    s->join(user_room(u->user_id));
    if (u->full_presence) s->join("presence:full");
    if (u->delta_presence) s->join("presence:delta");
    sockets_gauge.inc();
    // With a bus, the bus counts the sockets and reports changes (cluster-wide, local included).
    if (bus) bus->user_connected(u->user_id);
    else if (presence.connect(u->user_id)) presence_changed(u->user_id, true);
    if (u->full_presence) s->emit(online_users_event());
  }

  void disconnected(const SocketPtr& s) {
    const auto* u = std::any_cast<SocketUser>(&s->data);
    if (!u) return;
    sockets_gauge.dec();
    if (bus) bus->user_disconnected(u->user_id);
    else if (presence.disconnect(u->user_id)) presence_changed(u->user_id, false);
  }

  // ---- presence -----------------------------------------------------------------------------

  std::string online_users_event() const {
    json::array ids;
    for (auto& id : view.online_users()) ids.emplace_back(std::move(id));
    return json::serialize(json::array{"getOnlineUsers", std::move(ids)});
  }

  void presence_changed(const std::string& user_id, bool online) {
    nsp.emit_to("presence:delta", json::serialize(json::array{online ? "userOnline" : "userOffline", user_id}),
                {}, false);
    // Full lists are coalesced: one broadcast per interval however many users come and go.
    if (presence_armed.exchange(true)) return;
    std::weak_ptr<Impl> weak = shared_from_this();
    presence_timer.expires_after(opts.presence_interval);
    presence_timer.async_wait([weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->presence_armed = false;
      self->nsp.emit_to("presence:full", self->online_users_event(), {}, false);
    });
  }

  // ---- events -------------------------------------------------------------------------------

  void event(const SocketPtr& s, socketio::Event&& ev, Ack ack) {
    const auto* u = std::any_cast<SocketUser>(&s->data);
    if (!u) return;
    const json::object* payload =
        ev.args.size() >= 2 && ev.args[1].is_object() ? &ev.args[1].get_object() : nullptr;
    std::string_view name = ev.name();
    if (name == "sendMessage") return send_message(s, *u, payload, std::move(ack));
    if (name == "typing") return typing(*u, payload);
    if (name == "markRead") return mark_read(*u, payload, std::move(ack));
    ack_error(ack, "Unknown event", "validation");
  }

  void send_message(const SocketPtr& s, const SocketUser& u, const json::object* payload, Ack ack) {
    if (!payload) {
      messages_rejected.inc();
      return ack_error(ack, "sendMessage expects an object {to, text?, image?, clientMsgId?}", "validation");
    }
    bool bad = false;
    SendInput in;
    in.sender_id = u.user_id;
    in.receiver_id = to_lower_ascii(string_of(*payload, "to", bad));
    in.text = string_of(*payload, "text", bad);
    in.image = string_of(*payload, "image", bad);
    in.client_msg_id = string_of(*payload, "clientMsgId", bad);
    in.origin = s->id();
    if (bad) {
      messages_rejected.inc();
      return ack_error(ack, "to, text, image and clientMsgId must be strings", "validation");
    }
    Validation v = chat.validate_send(in);
    if (!v.ok()) {
      messages_rejected.inc();
      return ack_error(ack, first_error(v), v.too_large ? "too_large" : "validation");
    }
    if (opts.message_limiter && !opts.message_limiter->hit(u.user_id, now_ms()).allowed) {
      messages_rejected.inc();
      return ack_error(ack, "Too many messages, slow down", "rate_limited");
    }
    ChatService::SendCallback done = [ack](result<store::Appended> r) {
      if (!r) return ack_error(ack, r.err().message, error_code_name(r.code()));
      if (!ack) return;
      std::string reply = R"([{"status":"ok","message":)";
      api::append_message_json(reply, r->message);
      reply += "}]";
      ack(std::move(reply));
    };
    // Text to a known user goes straight to the store's queue; anything needing a lookup or
    // an image write takes the blocking pool.
    if (chat.try_send_nonblocking(in, done)) {
      messages_in.inc();
      return;
    }
    auto self = shared_from_this();
    bool posted = pool.post([self, in = std::move(in), done = std::move(done)]() mutable {
      self->chat.send(std::move(in), std::move(done));
    });
    if (!posted) {
      messages_rejected.inc();
      return ack_error(ack, "Server busy, retry", "unavailable");
    }
    messages_in.inc();
  }

  void typing(const SocketUser& u, const json::object* payload) {
    if (!payload) return;
    bool bad = false;
    std::string to = to_lower_ascii(string_of(*payload, "to", bad));
    if (bad || !is_object_id(to) || to == u.user_id) return;
    bool is_typing = false;
    if (auto* t = payload->if_contains("isTyping"); t && t->is_bool()) is_typing = t->get_bool();
    json::object body;
    body["from"] = u.user_id;
    body["isTyping"] = is_typing;
    emit_user(to, json::serialize(json::array{"typing", body}), {}, false);
  }

  void mark_read(const SocketUser& u, const json::object* payload, Ack ack) {
    if (!payload) return ack_error(ack, "markRead expects an object {peerId, upTo}", "validation");
    bool bad = false;
    std::string peer = to_lower_ascii(string_of(*payload, "peerId", bad));
    std::string up_to = to_lower_ascii(string_of(*payload, "upTo", bad));
    if (bad || !is_object_id(peer) || !is_object_id(up_to))
      return ack_error(ack, "peerId and upTo must be ids", "validation");
    {
      std::unique_lock lk(reads_mu);
      std::pair<std::string, std::string> key{u.user_id, std::move(peer)};
      auto it = reads_pending.find(key);
      if ((it == reads_pending.end() && reads_pending.size() >= kMaxPendingReads) ||
          (ack && reads_acks >= kMaxPendingReads)) {
        lk.unlock();
        return ack_error(ack, "Server busy, retry", "unavailable");
      }
      if (it == reads_pending.end()) it = reads_pending.try_emplace(std::move(key)).first;
      if (up_to > it->second.up_to) it->second.up_to = std::move(up_to);  // lower-case ids: by time
      if (ack) {
        it->second.acks.push_back(std::move(ack));
        ++reads_acks;
      }
      reads_in.inc();
      if (reads_running) return;
      reads_running = true;
    }
    post_write_reads();
  }

  /// Posts write_reads to the pool; if the pool refuses, fails what waits (and lets the next
  /// markRead try again).
  void post_write_reads() {
    auto self = shared_from_this();
    if (pool.post([self] { self->write_reads(); })) return;
    std::map<std::pair<std::string, std::string>, PendingRead> refused;
    {
      std::lock_guard lk(reads_mu);
      refused.swap(reads_pending);
      reads_acks = 0;
      reads_running = false;
    }
    for (auto& [key, p] : refused)
      for (const Ack& a : p.acks) ack_error(a, "Server busy, retry", "unavailable");
  }

  /// On the pool: writes up to kReadsPerWrite waiting read positions in one store write,
  /// tells each peer (messagesRead) and answers the acks; posts itself again while more wait
  /// (behind the pool's other work, not holding a thread).
  void write_reads() {
    std::vector<std::pair<std::pair<std::string, std::string>, PendingRead>> batch;
    {
      std::lock_guard lk(reads_mu);
      while (!reads_pending.empty() && batch.size() < kReadsPerWrite) {
        auto node = reads_pending.extract(reads_pending.begin());
        reads_acks -= node.mapped().acks.size();
        batch.emplace_back(std::move(node.key()), std::move(node.mapped()));
      }
    }
    std::vector<ChatService::ReadRequest> requests;
    requests.reserve(batch.size());
    for (const auto& [key, p] : batch) requests.push_back({key.first, key.second, p.up_to});
    auto results = chat.mark_read_many(requests);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& [key, p] = batch[i];
      const result<std::string>& r = results[i];
      if (!r) {
        for (const Ack& a : p.acks) ack_error(a, r.err().message, error_code_name(r.code()));
        continue;
      }
      reads_written.inc();
      json::object body;
      body["by"] = key.first;
      body["upTo"] = r.value();
      emit_user(key.second, json::serialize(json::array{"messagesRead", body}));
      for (const Ack& a : p.acks) {
        json::object reply;
        reply["upTo"] = r.value();
        ack_ok(a, std::move(reply));
      }
    }
    {
      std::lock_guard lk(reads_mu);
      if (reads_pending.empty()) {
        reads_running = false;
        return;
      }
    }
    post_write_reads();
  }

  // ---- delivery -----------------------------------------------------------------------------

  /// To every socket of `user_id`: this process's directly, the other instances' via the bus.
  void emit_user(const std::string& user_id, std::string payload, std::string_view except = {},
                 bool recoverable = true) {
    nsp.emit_to(user_room(user_id), payload, except, recoverable);
    if (bus) bus->publish(bus::UserEvent{user_id, std::move(payload), std::string(except), recoverable});
  }

  /// Every stored message (socket or REST): to the receiver's sockets and the sender's other ones.
  void deliver(const store::Message& m, std::string_view origin) {
    std::string event = R"(["newMessage",)";
    api::append_message_json(event, m);
    event.push_back(']');
    emit_user(m.receiver_id, event);
    emit_user(m.sender_id, std::move(event), origin);
    fanout_latency.observe(static_cast<double>(std::max<std::int64_t>(0, now_ms() - m.created_at)) / 1000.0);
  }
};

Realtime::Realtime(socketio::Server& sio, ChatService& chat, TaskPool& pool, LocalPresence& presence,
                   metrics::Registry& metrics, boost::asio::io_context& ioc, Options options)
    : impl_(std::make_shared<Impl>(sio, chat, pool, presence, metrics, ioc, options)) {
  impl_->wire();
}

Realtime::~Realtime() { impl_->presence_timer.cancel(); }

}  // namespace chat::realtime
