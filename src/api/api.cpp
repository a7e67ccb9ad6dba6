#include "api/api.hpp"

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <optional>

#include "api/json_views.hpp"
#include "core/log.hpp"
#include "core/object_id.hpp"
#include "core/text.hpp"
#include "core/time.hpp"
#include "net/router.hpp"

namespace chat::api {
namespace {

namespace json = boost::json;
using net::Request;
using net::Responder;
using net::Response;

constexpr std::size_t kDefaultPage = 50;
constexpr std::size_t kMaxPage = 200;

// One request in flight: what the handlers need, shared between the I/O thread and the pool.
struct Call {
  Request req;
  net::Params params;
  Responder respond;
  std::optional<store::User> user;  // set for protected routes
  std::string_view param(std::string_view name) const { return net::param(params, name); }
};
using CallPtr = std::shared_ptr<Call>;

enum class Limit { none, api, auth };

struct Route {
  std::function<void(const CallPtr&)> fn;
  bool protected_ = false;
  Limit limit = Limit::api;
};

Response json_response(int status, const json::object& body) {
  return Response::json(status, json::serialize(body));
}

Response message_response(int status, std::string_view message) {
  json::object o;
  o["message"] = message;
  return json_response(status, o);
}

Response failure(int status, std::string_view message) {
  json::object o;
  o["success"] = false;
  o["message"] = message;
  return json_response(status, o);
}

/// Maps a dependency failure to a response. Client mistakes are handled where they happen.
Response error_response(const error& e) {
  switch (e.code) {
    case errc::invalid_argument: return message_response(400, e.message);
    case errc::already_exists: return message_response(400, e.message);
    case errc::not_found: return message_response(404, e.message.empty() ? "Not found" : e.message);
    case errc::unauthorized: return failure(401, e.message.empty() ? "Unauthorized" : e.message);
    case errc::forbidden: return failure(403, "Forbidden");
    case errc::too_large: return message_response(413, e.message);
    case errc::rate_limited: return failure(429, "Too many requests");
    case errc::unavailable:
      spdlog::warn("dependency unavailable: {}", e.message);
      return failure(503, "Service unavailable, please retry");
    case errc::internal: break;
  }
  spdlog::error("internal error: {}", e.message);
  return failure(500, "Internal server error");
}

Response validation_response(const Validation& v) {
  if (v.too_large) return message_response(413, "Image is too large");
  return json_response(400, validation_json(v.errors));
}

std::string cookie_header(std::string_view value, std::int64_t max_age, bool secure) {
  std::string c = "token=" + std::string(value) + "; Max-Age=" + std::to_string(max_age) +
                  "; Path=/; Expires=";
  // Expires for old clients; Max-Age wins where both are understood.
  std::time_t t = static_cast<std::time_t>(now_ms() / 1000 + max_age);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  c += buf;
  c += "; HttpOnly; SameSite=Strict";
  if (secure) c += "; Secure";
  return c;
}

bool is_json_content_type(std::string_view ct) {
  auto semi = ct.find(';');
  std::string t;
  for (char c : ct.substr(0, semi))
    if (c != ' ' && c != '\t') t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"));
}

// Reads an optional string field; a present field of another type is a validation error.
std::optional<std::string> string_field(const json::object& o, std::string_view key,
                                        FieldErrors& errors, bool required, std::string_view label) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) {
    if (required) errors.add(std::string(key), std::string(label) + " is required");
    return std::nullopt;
  }
  if (!it->value().is_string()) {
    errors.add(std::string(key), std::string(label) + " must be a string");
    return std::nullopt;
  }
  return std::string(it->value().get_string());
}

// Helmet's default headers (helmet 7), so browsers get the same protection as before.
// upgrade-insecure-requests only in production: on a plain-HTTP LAN address it would break
// every subresource.
void add_security_headers(Response& r, bool media, bool production) {
  r.set("Content-Security-Policy",
        std::string("default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';"
                    "frame-ancestors 'self';img-src 'self' data: blob:;object-src 'none';script-src 'self';"
                    "script-src-attr 'none';style-src 'self' https: 'unsafe-inline';"
                    "connect-src 'self' ws: wss:") +
            (production ? ";upgrade-insecure-requests" : ""));
  r.set("Cross-Origin-Opener-Policy", "same-origin");
  // Media may be shown by a web client served from another allowed origin (e.g. Vite's dev server).
  r.set("Cross-Origin-Resource-Policy", media ? "cross-origin" : "same-origin");
  r.set("Origin-Agent-Cluster", "?1");
  r.set("Referrer-Policy", "no-referrer");
  r.set("Strict-Transport-Security", "max-age=15552000; includeSubDomains");
  r.set("X-Content-Type-Options", "nosniff");
  r.set("X-DNS-Prefetch-Control", "off");
  r.set("X-Download-Options", "noopen");
  r.set("X-Frame-Options", "SAMEORIGIN");
  r.set("X-Permitted-Cross-Domain-Policies", "none");
  r.set("X-XSS-Protection", "0");
}

}  // namespace

struct Api::Impl {
  ApiOptions opts;
  ApiDeps deps;
  net::Router<Route> router;
  metrics::Counter rejected_busy;
  std::vector<double> duration_buckets{0.05, 0.1, 0.2, 0.5, 1, 2, 5};
  std::vector<double> size_buckets{100, 1000, 10'000, 100'000, 1'000'000, 10'000'000};

  Impl(ApiOptions o, ApiDeps d) : opts(std::move(o)), deps(std::move(d)) {
    rejected_busy = deps.metrics.counter("chat_http_rejected_busy_total",
                                         "Requests refused with 503 because the blocking pool queue was full");
    deps.metrics.gauge("chat_blocking_pool_queue_capacity", "Capacity of the blocking task queue")
        .set(static_cast<double>(deps.pool.capacity()));
    auto depth = deps.metrics.gauge("chat_blocking_pool_queue_depth", "Tasks waiting for a blocking worker");
    TaskPool* pool = &deps.pool;
    deps.metrics.on_collect([depth, pool] { depth.set(static_cast<double>(pool->queued())); });
    add_routes();
  }

  // ---- helpers --------------------------------------------------------------------------

  /// Runs `fn` on the blocking pool; answers 503 when the pool's queue is full.
  void blocking(const CallPtr& call, std::function<void()> fn) {
    if (!deps.pool.post(std::move(fn))) {
      rejected_busy.inc();
      call->respond(failure(503, "Server busy, please retry"));
    }
  }

  /// Parses the JSON object body. On failure, answers and returns nullopt.
  std::optional<json::object> body_object(const CallPtr& call) {
    const auto& req = call->req;
    if (req.body.empty()) return json::object{};
    if (!is_json_content_type(req.header("content-type"))) {
      call->respond(message_response(415, "Content-Type must be application/json"));
      return std::nullopt;
    }
    boost::system::error_code ec;
    json::parse_options po;
    po.max_depth = 32;
    json::value v = json::parse(req.body, ec, {}, po);
    if (ec) {
      call->respond(message_response(400, "Malformed JSON in request body"));
      return std::nullopt;
    }
    if (!v.is_object()) {
      call->respond(message_response(400, "Request body must be a JSON object"));
      return std::nullopt;
    }
    return std::move(v.as_object());
  }

  std::string client_ip(const Request& req) const {
    if (opts.trust_proxy) {
      std::string_view xff = req.header("x-forwarded-for");
      if (!xff.empty()) {
        std::string first = trim(xff.substr(0, xff.find(',')));
        if (!first.empty()) return first;
      }
    }
    return req.remote_ip;
  }

  std::optional<std::string> token_of(const Request& req) const {
    if (auto c = req.cookie("token"); c && !c->empty()) return c;
    std::string_view auth = req.header("authorization");
    if (auth.size() > 7 && (auth.starts_with("Bearer ") || auth.starts_with("bearer ")))
      return trim(auth.substr(7));
    return std::nullopt;
  }

  void respond_auth(const CallPtr& call, int status, std::string_view message, const AuthResult& a) {
    json::object o;
    o["message"] = message;
    o["user"] = user_json(a.user);
    o["token"] = a.token;
    Response r = json_response(status, o);
    r.add("Set-Cookie", cookie_header(a.token, opts.cookie_max_age_s, opts.secure_cookies));
    call->respond(std::move(r));
  }

  // ---- routes ---------------------------------------------------------------------------

  void add_routes() {
    for (const char* base : {"/api/v1/auth", "/api/auth"}) {
      std::string b = base;
      router.add("POST", b + "/signup", Route{[this](const CallPtr& c) { signup(c); }, false, Limit::auth});
      router.add("POST", b + "/login", Route{[this](const CallPtr& c) { login(c); }, false, Limit::auth});
      router.add("POST", b + "/logout", Route{[this](const CallPtr& c) { logout(c); }});
      for (const char* m : {"PUT", "POST"})
        router.add(m, b + "/update-profile", Route{[this](const CallPtr& c) { update_profile(c); }, true});
      router.add("GET", b + "/get-user", Route{[](const CallPtr& c) {
        json::object o;
        o["user"] = user_json(*c->user);
        c->respond(json_response(200, o));
      }, true});
      router.add("GET", b + "/check-auth", Route{[](const CallPtr& c) {
        json::object o;
        o["message"] = "User is authenticated";
        o["user"] = user_json(*c->user);
        c->respond(json_response(200, o));
      }, true});
    }
    router.add("GET", "/api/messages/users", Route{[this](const CallPtr& c) { users(c); }, true});
    router.add("GET", "/api/messages/:id", Route{[this](const CallPtr& c) { history(c); }, true});
    router.add("POST", "/api/messages/send/:id", Route{[this](const CallPtr& c) { send(c); }, true});
    if (deps.realtime_http) {
      for (const char* m : {"GET", "POST"})
        router.add(m, "/socket.io", Route{[this](const CallPtr& c) {
          deps.realtime_http(std::move(c->req), c->respond);
        }, false, Limit::none});
    }
    router.add("GET", "/media/:name", Route{[this](const CallPtr& c) { media(c); }, false, Limit::none});
    router.add("GET", "/healthz", Route{[](const CallPtr& c) {
      c->respond(Response::json(200, R"({"status":"ok"})"));
    }, false, Limit::none});
    router.add("GET", "/readyz", Route{[this](const CallPtr& c) { readyz(c); }, false, Limit::none});
    router.add("GET", "/metrics", Route{[this](const CallPtr& c) {
      c->respond(Response::text(200, deps.metrics.serialize(), "text/plain; version=0.0.4; charset=utf-8"));
    }, false, Limit::none});
  }

  void signup(const CallPtr& call) {
    auto body = body_object(call);
    if (!body) return;
    FieldErrors errors;
    SignupInput in;
    in.email = string_field(*body, "email", errors, true, "Email").value_or("");
    in.password = string_field(*body, "password", errors, true, "Password").value_or("");
    in.full_name = string_field(*body, "full_name", errors, true, "Full name").value_or("");
    in.profile_picture = string_field(*body, "profile_picture", errors, false, "Profile picture").value_or("");
    in.bio = string_field(*body, "bio", errors, false, "Bio").value_or("");
    Validation v = deps.chat.validate_signup(in);
    for (const auto& [f, msgs] : errors.fields())
      for (const auto& m : msgs) v.errors.add(f, m);
    if (!v.ok()) return call->respond(validation_response(v));
    blocking(call, [this, call, in = std::move(in)] {
      auto r = deps.chat.signup(in);
      if (!r) return call->respond(error_response(r.err()));
      spdlog::info("user signed up: {}", r->user.id);
      respond_auth(call, 201, "User registered successfully", r.value());
    });
  }

  void login(const CallPtr& call) {
    auto body = body_object(call);
    if (!body) return;
    FieldErrors errors;
    auto email = string_field(*body, "email", errors, true, "Email");
    auto password = string_field(*body, "password", errors, true, "Password");
    if (!errors.empty()) return call->respond(json_response(400, validation_json(errors)));
    if (password->size() > 1024) return call->respond(message_response(400, "Invalid Credentials"));
    blocking(call, [this, call, email = std::move(*email), password = std::move(*password)] {
      auto r = deps.chat.login(email, password);
      if (!r) {
        if (r.code() == errc::unauthorized) return call->respond(message_response(400, "Invalid Credentials"));
        return call->respond(error_response(r.err()));
      }
      respond_auth(call, 200, "Login successful", r.value());
    });
  }

  void logout(const CallPtr& call) {
    Response r = message_response(200, "Logged out successfully");
    std::string c = "token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict";
    if (opts.secure_cookies) c += "; Secure";
    r.add("Set-Cookie", std::move(c));
    call->respond(std::move(r));
  }

  void update_profile(const CallPtr& call) {
    auto body = body_object(call);
    if (!body) return;
    FieldErrors errors;
    ProfileInput in;
    in.full_name = string_field(*body, "full_name", errors, false, "Full name");
    in.bio = string_field(*body, "bio", errors, false, "Bio");
    in.profile_picture = string_field(*body, "profile_picture", errors, false, "Profile picture");
    if (!errors.empty()) return call->respond(json_response(400, validation_json(errors)));
    Validation v = deps.chat.validate_profile(in);
    if (!v.ok()) return call->respond(validation_response(v));
    blocking(call, [this, call, in = std::move(in)] {
      auto r = deps.chat.update_profile(call->user->id, in);
      if (!r) return call->respond(error_response(r.err()));
      json::object o;
      o["user"] = user_json(r.value());
      o["message"] = "Profile updated successfully";
      call->respond(json_response(200, o));
    });
  }

  void users(const CallPtr& call) {
    blocking(call, [this, call] {
      auto r = deps.chat.users(call->user->id);
      if (!r) return call->respond(error_response(r.err()));
      json::array data;
      data.reserve(r->size());
      for (const auto& v : r.value()) {
        json::object u = user_json(v.user);
        u["online"] = v.online;
        u["unreadCount"] = v.unread;
        if (v.last_message) u["lastMessage"] = message_json(*v.last_message);
        else u["lastMessage"] = nullptr;
        data.emplace_back(std::move(u));
      }
      json::object o;
      o["data"] = std::move(data);
      call->respond(json_response(200, o));
    });
  }

  void history(const CallPtr& call) {
    std::string peer(call->param("id"));
    FieldErrors errors;
    if (!is_object_id(peer)) errors.add("id", "Invalid user id");
    std::size_t limit = kDefaultPage;
    if (auto l = call->req.query_param("limit")) {
      char* end = nullptr;
      long n = std::strtol(l->c_str(), &end, 10);
      if (l->empty() || *end != '\0' || n < 1) errors.add("limit", "limit must be a positive integer");
      else limit = std::min<std::size_t>(static_cast<std::size_t>(n), kMaxPage);
    }
    std::string before = call->req.query_param("before").value_or("");
    if (!before.empty() && !is_object_id(before)) errors.add("before", "before must be a message id");
    if (!errors.empty()) return call->respond(json_response(400, validation_json(errors)));
    peer = to_lower_ascii(peer);
    before = to_lower_ascii(before);
    blocking(call, [this, call, peer = std::move(peer), before = std::move(before), limit] {
      auto r = deps.chat.history(call->user->id, peer, before, limit);
      if (!r) return call->respond(error_response(r.err()));
      json::array data;
      data.reserve(r->page.messages.size());
      for (const auto& m : r->page.messages) data.emplace_back(message_json(m));
      json::object o;
      o["data"] = std::move(data);
      o["hasMore"] = r->page.has_more;
      // How far the peer has read (for read ticks after a reload); null when nothing yet.
      if (r->peer_read_up_to.empty()) o["peerReadUpTo"] = nullptr;
      else o["peerReadUpTo"] = r->peer_read_up_to;
      call->respond(json_response(200, o));
    });
  }

  void send(const CallPtr& call) {
    auto body = body_object(call);
    if (!body) return;
    FieldErrors errors;
    SendInput in;
    in.sender_id = call->user->id;
    in.receiver_id = to_lower_ascii(call->param("id"));
    in.text = string_field(*body, "text", errors, false, "Text").value_or("");
    in.image = string_field(*body, "image", errors, false, "Image").value_or("");
    in.client_msg_id = string_field(*body, "clientMsgId", errors, false, "clientMsgId").value_or("");
    Validation v = deps.chat.validate_send(in);
    for (const auto& [f, msgs] : errors.fields())
      for (const auto& m : msgs) v.errors.add(f, m);
    if (!v.ok()) return call->respond(validation_response(v));
    blocking(call, [this, call, in = std::move(in)]() mutable {
      // The callback runs on the store's writer thread once the message is durable: it only
      // serialises and hands the response to the connection's strand.
      deps.chat.send(std::move(in), [call](result<store::Appended> r) {
        if (!r) return call->respond(error_response(r.err()));
        json::object o;
        o["message"] = "Message sent successfully";
        o["data"] = message_json(r->message);
        call->respond(json_response(200, o));
      });
    });
  }

  void media(const CallPtr& call) {
    std::string name(call->param("name"));
    blocking(call, [this, call, name = std::move(name)] {
      auto r = deps.chat.media(name);
      if (!r) {
        if (r.code() == errc::not_found) return call->respond(failure(404, "Media not found"));
        return call->respond(error_response(r.err()));
      }
      Response res = Response::text(200, std::move(r->bytes), std::move(r->content_type));
      res.set("Cache-Control", "public, max-age=31536000, immutable");
      call->respond(std::move(res));
    });
  }

  void readyz(const CallPtr& call) {
    blocking(call, [this, call] {
      auto r = deps.ready ? deps.ready() : result<void>{};
      if (r) return call->respond(Response::json(200, R"({"status":"ready"})"));
      json::object o;
      o["status"] = "not ready";
      o["reason"] = r.err().message;
      call->respond(json_response(503, o));
    });
  }

  // ---- the request pipeline -------------------------------------------------------------

  /// CORS for allowed origins; preflights answered here. Returns true when answered.
  bool cors(const Request& req, Responder& respond) {
    std::string_view origin = req.header("origin");
    bool allowed = false;
    for (const auto& o : opts.cors_origins) allowed = allowed || o == origin || o == "*";
    if (origin.empty()) allowed = false;
    if (allowed) {
      respond = respond.wrap([o = std::string(origin)](Response& r) {
        r.set("Access-Control-Allow-Origin", o);
        r.set("Access-Control-Allow-Credentials", "true");
        r.set("Vary", "Origin");
      });
    }
    if (req.method == "OPTIONS" && !req.header("access-control-request-method").empty()) {
      Response r;
      r.status = 204;
      r.set("Vary", "Origin, Access-Control-Request-Headers");
      if (allowed) {
        r.set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
        std::string_view h = req.header("access-control-request-headers");
        if (!h.empty()) r.set("Access-Control-Allow-Headers", std::string(h));
        r.set("Access-Control-Max-Age", "600");
      }
      r.set("Content-Length", "0");
      respond(std::move(r));
      return true;
    }
    return false;
  }

  bool rate_limited(const Request& req, Limit limit, const Responder& respond) {
    auto check = [&](ratelimit::RateLimiter* limiter) {
      if (!limiter) return false;
      auto d = limiter->hit(client_ip(req), now_ms());
      if (d.allowed) return false;
      Response r = failure(429, "Too many requests");
      r.set("Retry-After", std::to_string(std::max<std::int64_t>(1, (d.retry_after_ms + 999) / 1000)));
      respond(std::move(r));
      return true;
    };
    if (limit == Limit::none) return false;
    if (check(deps.api_limiter)) return true;
    return limit == Limit::auth && check(deps.auth_limiter);
  }

  void handle(Request&& req, Responder respond) {
    auto match = router.match(req.method, req.path);
    const auto start = std::chrono::steady_clock::now();
    // The web client owns every other GET path outside the API (its routes live in the browser).
    const bool web_path = deps.web && match.kind == net::Router<Route>::Match::not_found &&
                          !req.path.starts_with("/api/") && !req.path.starts_with("/socket.io") &&
                          !req.path.starts_with("/media/");
    std::string route = match.pattern.empty() ? (web_path ? "<static>" : "<unmatched>") : match.pattern;
    const bool is_media = match.kind == net::Router<Route>::Match::found && route == "/media/:name";
    respond = respond.wrap([this, start, method = req.method, route = std::move(route),
                            is_media](Response& r) {
      add_security_headers(r, is_media, opts.secure_cookies);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      metrics::Labels labels{{"method", method}, {"route", route}, {"code", std::to_string(r.status)}};
      deps.metrics.histogram("http_request_duration_seconds", "Duration of HTTP requests in seconds",
                             duration_buckets, labels).observe(secs);
      deps.metrics.histogram("http_response_size_bytes", "Size of HTTP responses in bytes",
                             size_buckets, labels).observe(static_cast<double>(r.body.size()));
      spdlog::debug("{} {} {} {:.1f}ms", method, route, r.status, secs * 1000);
    });
    if (cors(req, respond)) return;

    if (web_path)
      if (auto r = deps.web->serve(req)) return respond(std::move(*r));
    if (match.kind == net::Router<Route>::Match::not_found)
      return respond(failure(404, "Route not found"));
    if (match.kind == net::Router<Route>::Match::method_not_allowed) {
      Response r = failure(405, "Method not allowed");
      r.set("Allow", match.allow);
      return respond(std::move(r));
    }
    const Route& route_def = *match.handler;
    if (rate_limited(req, route_def.limit, respond)) return;

    auto call = std::make_shared<Call>();
    call->req = std::move(req);
    call->params = std::move(match.params);
    call->respond = std::move(respond);
    if (!route_def.protected_) return route_def.fn(call);

    auto token = token_of(call->req);
    if (!token) return call->respond(failure(401, "Unauthorized"));
    blocking(call, [this, call, token = std::move(*token), &route_def] {
      auto user = deps.chat.authenticate(token);
      if (!user) {
        if (user.code() == errc::unauthorized) return call->respond(failure(401, "Invalid token"));
        if (user.code() == errc::not_found) return call->respond(failure(404, "User not found"));
        return call->respond(error_response(user.err()));
      }
      call->user = std::move(user.value());
      route_def.fn(call);
    });
  }
};

Api::Api(ApiOptions options, ApiDeps deps) : impl_(std::make_unique<Impl>(std::move(options), std::move(deps))) {}
Api::~Api() = default;

void Api::handle(net::Request&& req, net::Responder respond) { impl_->handle(std::move(req), std::move(respond)); }

std::size_t Api::body_limit(std::string_view method, std::string_view path) const {
  const auto& o = impl_->opts;
  if (path.starts_with("/socket.io")) return impl_->deps.realtime_max_payload;
  if (path.ends_with("/update-profile") || path.starts_with("/api/messages/send/") ||
      path.ends_with("/signup"))
    return o.upload_limit / 3 * 4 + 4096 + o.json_limit;
  return o.json_limit;
}

}  // namespace chat::api
