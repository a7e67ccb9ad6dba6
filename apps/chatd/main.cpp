// chatd: reads the configuration, picks the implementations, runs. Nothing else wires.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/api.hpp"
#include "auth/jwt.hpp"
#include "bus/redis_bus.hpp"
#include "cluster/cluster_store.hpp"
#include "chat/chat_service.hpp"
#include "chat/presence.hpp"
#include "config/config.hpp"
#include "core/log.hpp"
#include "core/task_pool.hpp"
#include "metrics/metrics.hpp"
#include "net/http_server.hpp"
#include "net/websocket.hpp"
#include "ratelimit/memory_rate_limiter.hpp"
#include "realtime/realtime.hpp"
#include "socketio/server.hpp"
#include "store/mongo_store.hpp"
#include "store/sqlite_store.hpp"
#include "stream/kafka_log.hpp"

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

using namespace chat;

/// The storage and cluster backends, chosen by configuration. Only this file names them.
struct Backends {
  std::unique_ptr<store::SqliteStore> sqlite;   // embedded
  std::unique_ptr<store::MongoStore> mongo;     // cluster
  std::unique_ptr<bus::Bus> bus;                // cluster, with REDIS_URL
  std::unique_ptr<stream::MessageLog> log;      // cluster, with KAFKA_BROKERS
  std::unique_ptr<cluster::ClusterStore> cluster;
  std::string description;

  store::Store* store() const {
    if (cluster) return cluster.get();
    if (mongo) return mongo.get();
    return sqlite.get();
  }
  /// The log first: destroying it fails what it still holds, through the cluster store.
  void close() {
    log.reset();
    cluster.reset();
    bus.reset();
    mongo.reset();
    sqlite.reset();
  }
  ~Backends() { close(); }
};

chat::result<void> open_embedded(const chat::config::Config& cfg, chat::metrics::Registry& registry, Backends& b) {
  using namespace chat;
  store::SqliteOptions sopts;
  sopts.path = (std::filesystem::path(cfg.data_dir) / "chat.db").string();
  if (!cfg.journal_dir.empty())
    sopts.journal_path = (std::filesystem::path(cfg.journal_dir) / "chat.db.msglog").string();
  sopts.readers = std::max(2u, cfg.blocking_threads);
  sopts.journal_thread_slice = std::chrono::microseconds(cfg.thread_slice_us);
  auto opened = store::SqliteStore::open(sopts);
  if (!opened) return error{opened.code(), "storage: " + opened.err().message};
  b.sqlite = std::move(opened.value());
  b.description = "embedded, data " + cfg.data_dir;
  auto pending = registry.gauge("chat_store_pending_writes", "Writes queued for the next group commit");
  auto commits = registry.gauge("chat_store_commits",
                                 "Group commits of appends into the store's message journal");
  auto index_commits = registry.gauge("chat_store_index_commits",
                                       "Transactions of the store's main database (indexing, other writes)");
  auto unindexed = registry.gauge("chat_store_unindexed_messages",
                                  "Messages acknowledged and not yet in the main database (bounded)");
  auto checkpoints = registry.gauge("chat_store_checkpoints", "WAL checkpoints run by the store");
  registry.on_collect([&b, pending, commits, index_commits, unindexed, checkpoints] {
    if (!b.sqlite) return;
    pending.set(static_cast<double>(b.sqlite->pending_writes()));
    commits.set(static_cast<double>(b.sqlite->commits()));
    index_commits.set(static_cast<double>(b.sqlite->index_commits()));
    unindexed.set(static_cast<double>(b.sqlite->unindexed_messages()));
    checkpoints.set(static_cast<double>(b.sqlite->checkpoints()));
  });
  return {};
}

std::string default_instance_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) std::snprintf(host, sizeof host, "chatd");
  return std::string(host) + "-" + std::to_string(::getpid());
}

chat::result<void> open_cluster(const chat::config::Config& cfg, chat::metrics::Registry& registry, Backends& b) {
  using namespace chat;
  store::MongoOptions mopts;
  mopts.uri = cfg.mongodb_uri;
  mopts.max_pool = std::max<std::size_t>(16, cfg.blocking_threads + 4);
  auto mongo = store::MongoStore::open(mopts);
  if (!mongo) return error{mongo.code(), "mongodb: " + mongo.err().message};
  b.mongo = std::move(mongo.value());
  b.description = "cluster: mongodb";

  const std::string instance = cfg.instance_id.empty() ? default_instance_id() : cfg.instance_id;
  if (!cfg.redis_url.empty()) {
    bus::RedisBusOptions ropts;
    ropts.url = cfg.redis_url;
    ropts.instance_id = instance;
    ropts.heartbeat = std::chrono::milliseconds(cfg.heartbeat_ms);
    ropts.presence_ttl = std::chrono::milliseconds(cfg.presence_ttl_ms);
    ropts.metrics = &registry;
    ropts.thread_slice = std::chrono::microseconds(cfg.thread_slice_us);
    auto bus = bus::make_redis_bus(ropts);
    if (!bus) return error{bus.code(), "redis: " + bus.err().message};
    b.bus = std::move(bus.value());
    b.description += " + redis";
  }
  if (!cfg.kafka_brokers.empty()) {
    stream::KafkaOptions kopts;
    kopts.brokers = cfg.kafka_brokers;
    kopts.topic = cfg.kafka_topic;
    kopts.username = cfg.kafka_username;
    kopts.password = cfg.kafka_password;
    kopts.client_id = "chatd-" + instance;
    kopts.partitions = cfg.kafka_partitions;
    kopts.delivery_timeout = std::chrono::milliseconds(cfg.kafka_delivery_timeout_ms);
    kopts.metrics = &registry;
    kopts.thread_slice = std::chrono::microseconds(cfg.thread_slice_us);
    auto log = stream::make_kafka_log(kopts);
    if (!log) return error{log.code(), "kafka: " + log.err().message};
    b.log = std::move(log.value());
    cluster::ClusterStoreOptions copts;
    copts.mark_read_known = [m = b.mongo.get()](const std::vector<store::ReadMark>& marks,
                                                const std::vector<std::string>& newest_known) {
      return m->mark_read_many_known(marks, newest_known);
    };
    b.cluster = std::make_unique<cluster::ClusterStore>(*b.mongo, *b.log, b.bus.get(), std::move(copts));
    b.description += " + kafka topic " + cfg.kafka_topic;
    auto unstored = registry.gauge("chat_cluster_unstored_messages",
                                   "Acknowledged messages kept in memory until chat-worker has stored them");
    registry.on_collect([&b, unstored] {
      if (b.cluster) unstored.set(static_cast<double>(b.cluster->recent_size()));
    });
  }
  spdlog::info("cluster mode: instance {}", instance);
  return {};
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

  metrics::Registry registry;
  metrics::register_process_metrics(registry);
  Backends b;
  if (auto opened = cfg.cluster() ? open_cluster(cfg, registry, b) : open_embedded(cfg, registry, b); !opened) {
    spdlog::critical("{}", opened.err().message);
    return 1;
  }
  store::Store* store = b.store();
  bus::Bus* bus = b.bus.get();

  TaskPool pool(cfg.blocking_threads, cfg.blocking_queue, "chat-blocking");
  auth::JwtCodec jwt(secret, cfg.jwt_ttl_seconds);
  LocalPresence presence;
  ServiceLimits limits;
  limits.max_text = cfg.max_text;
  limits.upload_limit = cfg.upload_limit;
  ChatService chat_service(*store, jwt, bus ? bus->presence() : presence, limits);

  // Shared through Redis in cluster mode, so N instances allow what one would.
  auto limiter = [bus](const char* name, const config::RateLimit& l) -> std::unique_ptr<ratelimit::RateLimiter> {
    if (!l.enabled()) return nullptr;
    if (bus) return bus->rate_limiter(name, l.max, l.window_ms);
    return std::make_unique<ratelimit::MemoryRateLimiter>(l.max, l.window_ms);
  };
  std::unique_ptr<ratelimit::RateLimiter> api_limiter = limiter("api", cfg.api_limit);
  std::unique_ptr<ratelimit::RateLimiter> auth_limiter = limiter("auth", cfg.auth_limit);

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
  sopts_io.keep_auth = false;  // the token is checked at CONNECT; nothing reads auth() later
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
  nopts.thread_slice = std::chrono::microseconds(cfg.thread_slice_us);
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
    if (b.sqlite) b.sqlite->set_callback_executor({});
    realtime.reset();
    sio.reset();
    api.reset();
  }};
  sio = std::make_unique<socketio::Server>(sopts_io, eopts, server.io_context());
  std::unique_ptr<ratelimit::RateLimiter> message_limiter = limiter("messages", cfg.message_limit);
  realtime::Options ropts;
  ropts.message_limiter = message_limiter.get();
  ropts.bus = bus;
  realtime = std::make_unique<realtime::Realtime>(*sio, chat_service, pool, presence, registry,
                                                  server.io_context(), ropts);
  // Acks and fan-out of committed messages. With one I/O thread they run on the journal thread
  // itself, their WebSocket writes batched per commit (net::SendBatch): handing them to the one
  // I/O thread bought no parallelism, only a wake-up and a posted flush per recipient (closed
  // loop on one core: +5-18 % messages/s, 1/10 of the context switches; docs/PERFORMANCE.md,
  // thirteenth session). With more, they run on the I/O threads (one strand keeps them in
  // commit order), so that the journal goes on to the next group commit at once.
  if (b.sqlite) {
    if (nopts.threads <= 1) {
      b.sqlite->set_callback_executor([](std::function<void()> fn) {
        net::SendBatch batch;
        fn();
      });
    } else {
      auto strand = boost::asio::make_strand(server.io_context());
      b.sqlite->set_callback_executor(
          [strand](std::function<void()> fn) { boost::asio::post(strand, std::move(fn)); });
    }
  }

  std::unique_ptr<net::StaticFiles> web;
  if (!cfg.web_dir.empty()) {
    auto loaded = net::StaticFiles::load(net::StaticOptions{cfg.web_dir});
    if (loaded) web = std::move(loaded.value());
    else spdlog::warn("{}: serving the API only (build the client: npm --prefix web ci && npm --prefix web run build)",
                      loaded.err().message);
  }

  api::ApiDeps deps{chat_service, pool, registry, api_limiter.get(), auth_limiter.get(),
                    [&]() -> result<void> {
                      if (auto r = store->ping(); !r) return r;
                      if (bus && !bus->ready()) return error{errc::unavailable, "redis: not connected"};
                      if (b.log) return b.log->ping();
                      return {};
                    },
                    {}};
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

  if (bus) bus->start();
  spdlog::info("chatd listening on http://{}:{} (env {}, {}, {} I/O threads)", cfg.host, port.value(),
               cfg.node_env, b.description, cfg.threads);
  server.run();

  // Every connection is closed (or timed out): finish the blocking work still queued, then make
  // sure every acknowledged write is on disk (or acknowledged by Kafka) before exiting.
  // A hung dependency (e.g. a database that stopped answering) must not hold the exit for
  // minutes: queued work that cannot start within the shutdown timeout is dropped (its clients
  // are gone; nothing queued there was acknowledged yet).
  if (std::size_t dropped = pool.shutdown(std::chrono::milliseconds(cfg.shutdown_timeout_ms)))
    spdlog::warn("shutdown: dropped {} queued blocking task(s) that could not run in time", dropped);
  store->flush();
  if (bus) bus->stop();
  b.close();
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
