// chatd: reads the configuration, picks the implementations, runs. Nothing else wires.
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/api.hpp"
#include "auth/jwt.hpp"
#include "chat/chat_service.hpp"
#include "chat/presence.hpp"
#include "config/config.hpp"
#include "core/log.hpp"
#include "core/task_pool.hpp"
#include "metrics/metrics.hpp"
#include "net/http_server.hpp"
#include "ratelimit/memory_rate_limiter.hpp"
#include "realtime/realtime.hpp"
#include "socketio/server.hpp"
#include "store/sqlite_store.hpp"

namespace {

// Outside production a missing JWT_SECRET is generated once and kept beside the data, so
// tokens survive restarts without anyone having to configure a secret for a local run.
chat::result<std::string> embedded_jwt_secret(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return chat::error{chat::errc::unavailable, "cannot create data directory '" + data_dir + "': " + ec.message()};
  const fs::path path = fs::path(data_dir) / "jwt_secret";
  if (std::ifstream f(path); f) {
    std::string secret;
    std::getline(f, secret);
    if (secret.size() >= 32) return secret;
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return chat::error{chat::errc::internal, "no randomness for the JWT secret"};
  std::string secret;
  for (unsigned char b : raw) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    secret += hex;
  }
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << secret << "\n";
    if (!f) return chat::error{chat::errc::unavailable, "cannot write " + tmp.string()};
  }
  ::chmod(tmp.c_str(), 0600);
  fs::rename(tmp, path, ec);
  if (ec) return chat::error{chat::errc::unavailable, "cannot write " + path.string() + ": " + ec.message()};
  spdlog::info("generated a JWT secret in {} (set JWT_SECRET to choose one)", path.string());
  return secret;
}

int run(const chat::config::Config& cfg) {
  using namespace chat;
  std::string secret = cfg.jwt_secret;
  if (secret.empty()) {
    auto s = embedded_jwt_secret(cfg.data_dir);
    if (!s) {
      spdlog::critical("{}", s.err().message);
      return 1;
    }
    secret = std::move(s.value());
  }

  store::SqliteOptions sopts;
  sopts.path = (std::filesystem::path(cfg.data_dir) / "chat.db").string();
  sopts.readers = std::max(2u, cfg.blocking_threads);
  auto opened = store::SqliteStore::open(sopts);
  if (!opened) {
    spdlog::critical("storage: {}", opened.err().message);
    return 1;
  }
  std::unique_ptr<store::SqliteStore> store = std::move(opened.value());

  metrics::Registry registry;
  metrics::register_process_metrics(registry);
  auto pending = registry.gauge("chat_store_pending_writes", "Writes queued for the next group commit");
  auto commits = registry.gauge("chat_store_commits", "Transactions committed by the store writer");
  registry.on_collect([&] {
    pending.set(static_cast<double>(store->pending_writes()));
    commits.set(static_cast<double>(store->commits()));
  });

  TaskPool pool(cfg.blocking_threads, cfg.blocking_queue, "chat-blocking");
  auth::JwtCodec jwt(secret, cfg.jwt_ttl_seconds);
  LocalPresence presence;
  ServiceLimits limits;
  limits.max_text = cfg.max_text;
  limits.upload_limit = cfg.upload_limit;
  ChatService chat_service(*store, jwt, presence, limits);

  std::unique_ptr<ratelimit::RateLimiter> api_limiter, auth_limiter;
  if (cfg.api_limit.enabled())
    api_limiter = std::make_unique<ratelimit::MemoryRateLimiter>(cfg.api_limit.max, cfg.api_limit.window_ms);
  if (cfg.auth_limit.enabled())
    auth_limiter = std::make_unique<ratelimit::MemoryRateLimiter>(cfg.auth_limit.max, cfg.auth_limit.window_ms);

  api::ApiOptions aopts;
  aopts.cors_origins = cfg.cors_origins;
  aopts.json_limit = cfg.json_limit;
  aopts.upload_limit = cfg.upload_limit;
  aopts.trust_proxy = cfg.trust_proxy;
  aopts.secure_cookies = cfg.production();
  aopts.cookie_max_age_s = cfg.jwt_ttl_seconds;

  auto slow_consumers = registry.counter("chat_socketio_slow_consumer_disconnects_total",
                                         "Connections closed because their send queue overflowed");
  engineio::Options eopts;
  eopts.ping_interval = std::chrono::milliseconds(cfg.ping_interval_ms);
  eopts.ping_timeout = std::chrono::milliseconds(cfg.ping_timeout_ms);
  eopts.max_payload = cfg.max_payload;
  eopts.max_buffered_bytes = cfg.send_queue_bytes;
  eopts.on_slow_consumer = [slow_consumers] { slow_consumers.inc(); };
  socketio::Options sopts_io;
  sopts_io.recovery = cfg.recovery_ms > 0;
  if (sopts_io.recovery) sopts_io.max_disconnection = std::chrono::milliseconds(cfg.recovery_ms);

  // The HTTP server owns the io_context that the protocol layers need, and they in turn serve
  // some of its requests: build the server first, the layers next, and route through pointers.
  std::unique_ptr<api::Api> api;
  std::unique_ptr<socketio::Server> sio;
  std::unique_ptr<realtime::Realtime> realtime;
  net::ServerOptions nopts;
  nopts.host = cfg.host;
  nopts.port = cfg.port;
  nopts.threads = cfg.threads;
  nopts.read_timeout = std::chrono::milliseconds(cfg.read_timeout_ms);
  nopts.idle_timeout = std::chrono::milliseconds(cfg.idle_timeout_ms);
  nopts.shutdown_timeout = std::chrono::milliseconds(cfg.shutdown_timeout_ms);
  nopts.body_limit = [&api](std::string_view m, std::string_view p) { return api->body_limit(m, p); };
  nopts.websocket.max_message = cfg.max_payload;
  nopts.websocket.max_queued_bytes = cfg.send_queue_bytes;
  nopts.websocket.on_slow_consumer = [slow_consumers] { slow_consumers.inc(); };
  nopts.upgrade = [&sio](const net::Request& req) -> std::shared_ptr<net::WsHandler> {
    if (req.path.starts_with("/socket.io")) return sio->engine().handle_upgrade(req);
    return nullptr;
  };
  nopts.on_stop = [&sio] { sio->engine().close_all(); };
  net::HttpServer server(nopts, [&api](net::Request&& req, net::Responder r) {
    api->handle(std::move(req), std::move(r));
  });

  // The protocol layers own timers on the server's io_context: they must be destroyed before
  // it, on every path out of here (this guard is destroyed before `server`).
  struct Teardown {
    std::function<void()> fn;
    ~Teardown() { fn(); }
  } teardown{[&] {
    realtime.reset();
    sio.reset();
    api.reset();
  }};
  sio = std::make_unique<socketio::Server>(sopts_io, eopts, server.io_context());
  std::unique_ptr<ratelimit::RateLimiter> message_limiter;
  if (cfg.message_limit.enabled())
    message_limiter = std::make_unique<ratelimit::MemoryRateLimiter>(cfg.message_limit.max, cfg.message_limit.window_ms);
  realtime::Options ropts;
  ropts.message_limiter = message_limiter.get();
  realtime = std::make_unique<realtime::Realtime>(*sio, chat_service, pool, presence, registry,
                                                  server.io_context(), ropts);

  std::unique_ptr<net::StaticFiles> web;
  if (!cfg.web_dir.empty()) {
    auto loaded = net::StaticFiles::load(net::StaticOptions{cfg.web_dir});
    if (loaded) web = std::move(loaded.value());
    else spdlog::warn("{}: serving the API only (build the client: npm --prefix web ci && npm --prefix web run build)",
                      loaded.err().message);
  }

  api::ApiDeps deps{chat_service, pool, registry, api_limiter.get(), auth_limiter.get(),
                    [&] { return store->ping(); }};
  deps.realtime_http = [&sio](net::Request&& req, net::Responder r) {
    sio->engine().handle_http(std::move(req), std::move(r));
  };
  deps.realtime_max_payload = cfg.max_payload;
  deps.web = web.get();
  api = std::make_unique<api::Api>(aopts, std::move(deps));

  auto port = server.listen();
  if (!port) {
    spdlog::critical("{}", port.err().message);
    return 1;
  }
  auto connections = registry.gauge("chat_http_connections", "Open HTTP and WebSocket connections");
  registry.on_collect([&] { connections.set(static_cast<double>(server.connections())); });

  spdlog::info("chatd listening on http://{}:{} (env {}, data {}, {} I/O threads)", cfg.host, port.value(),
               cfg.node_env, cfg.data_dir, cfg.threads);
  server.run();

  // Every connection is closed (or timed out): finish the blocking work still queued, then make
  // sure every acknowledged write is on disk before exiting.
  pool.shutdown();
  store->flush();
  store.reset();
  spdlog::info("chatd stopped cleanly");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto loaded = chat::config::load(argc, argv, chat::config::process_env());
  if (!loaded) {
    std::cerr << "chatd: " << loaded.err().message << "\n";
    return 2;
  }
  if (loaded->help) {
    std::cout << chat::config::help_text();
    return 0;
  }
  try {
    chat::init_logging(loaded->config.log_level);
    for (const auto& note : loaded->notes) spdlog::warn("{}", note);
    return run(loaded->config);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
