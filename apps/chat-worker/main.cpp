// chat-worker: consumes the message stream (Kafka) into MongoDB. Reads the configuration, wires
// the Kafka source, the dead-letter producer and the Mongo sink into the Worker core, serves
// /metrics and /healthz, stops cleanly on SIGINT/SIGTERM.
#include <atomic>
#include <iostream>
#include <thread>

#include "config/config.hpp"
#include "core/log.hpp"
#include "kafka_source.hpp"
#include "metrics/metrics.hpp"
#include "net/http_server.hpp"
#include "options.hpp"
#include "store/mongo_store.hpp"
#include "stream/kafka_log.hpp"
#include "worker.hpp"

namespace {

using namespace chat;
using std::chrono::milliseconds;

class MongoSink final : public worker::MessageSink {
 public:
  explicit MongoSink(store::MongoStore& s) : store_(s) {}
  result<void> write(const std::vector<store::Message>& batch) override {
    return store_.upsert_messages(batch);
  }

 private:
  store::MongoStore& store_;
};

// Waits `d` unless `stop` is set first.
void sleep_unless(const std::atomic<bool>& stop, milliseconds d) {
  for (auto end = std::chrono::steady_clock::now() + d;
       !stop.load() && std::chrono::steady_clock::now() < end;)
    std::this_thread::sleep_for(milliseconds(50));
}

// Retries `step` (start-up connections) with backoff until it succeeds or `stop` is set; a
// configuration error (invalid_argument) ends it at once.
template <class T, class F>
result<T> with_startup_retry(const std::atomic<bool>& stop, const char* what, F step) {
  milliseconds backoff(200);
  for (;;) {
    result<T> r = step();
    if (r || r.code() == errc::invalid_argument || stop.load()) return r;
    spdlog::warn("chat-worker: {}: {} (retrying in {} ms)", what, r.err().message, backoff.count());
    sleep_unless(stop, backoff);
    backoff = std::min(backoff * 2, milliseconds(5000));
  }
}

int run(const worker::WorkerConfig& cfg) {
  metrics::Registry registry;
  metrics::register_process_metrics(registry);
  std::atomic<bool> stop{false}, running{false};
  std::atomic<worker::Worker*> current{nullptr};
  std::atomic<int> exit_code{0};

  net::ServerOptions sopts;
  sopts.host = cfg.metrics_host;
  sopts.port = cfg.metrics_port;
  sopts.threads = 1;
  sopts.shutdown_timeout = milliseconds(2000);
  sopts.on_stop = [&] {
    stop = true;
    if (auto* w = current.load()) w->stop();
  };
  net::HttpServer server(sopts, [&](net::Request&& req, net::Responder respond) {
    if (req.path == "/metrics") {
      respond(net::Response::text(200, registry.serialize(), "text/plain; version=0.0.4; charset=utf-8"));
    } else if (req.path == "/healthz") {
      respond(running.load() ? net::Response::json(200, R"({"status":"ok"})")
                             : net::Response::json(503, R"({"status":"starting"})"));
    } else {
      respond(net::Response::json(404, R"({"error":"not found"})"));
    }
  });
  auto port = server.listen();
  if (!port) {
    spdlog::critical("metrics listener: {}", port.err().message);
    return 1;
  }
  spdlog::info("chat-worker metrics on http://127.0.0.1:{}", port.value());

  std::thread consumer([&] {
    auto fail = [&](const std::string& what) {
      spdlog::critical("chat-worker: {}", what);
      exit_code = 1;
      server.stop();
    };
    stream::KafkaOptions kopts;
    kopts.brokers = cfg.brokers;
    kopts.topic = cfg.topic;
    kopts.username = cfg.username;
    kopts.password = cfg.password;
    kopts.client_id = "chat-worker";
    kopts.partitions = cfg.partitions;
    for (const auto& topic : {cfg.topic, cfg.dlq_topic}) {
      auto r = with_startup_retry<bool>(stop, "kafka", [&]() -> result<bool> {
        if (auto e = stream::ensure_topic(kopts, topic, cfg.partitions); !e) return e.err();
        return true;
      });
      if (!r) return stop.load() ? server.stop() : fail("topic " + topic + ": " + r.err().message);
    }
    auto mongo = with_startup_retry<std::unique_ptr<store::MongoStore>>(
        stop, "mongodb", [&] { return store::MongoStore::open(store::MongoOptions{cfg.mongodb_uri}); });
    if (!mongo) return stop.load() ? server.stop() : fail("mongodb: " + mongo.err().message);
    auto dlq = worker::KafkaDeadLetters::open(kopts, cfg.dlq_topic);
    if (!dlq) return fail(dlq.err().message);
    worker::ConsumerOptions copts;
    copts.kafka = kopts;
    copts.group = cfg.group;
    auto source = worker::KafkaSource::open(copts);
    if (!source) return fail(source.err().message);

    MongoSink sink(*mongo.value());
    worker::WorkerOptions wopts;
    wopts.batch_max = cfg.batch_max;
    wopts.batch_wait = milliseconds(cfg.batch_wait_ms);
    worker::Worker w(*source.value(), *dlq.value(), sink, registry, wopts);
    current = &w;
    if (stop.load()) w.stop();  // a signal that came while connecting
    running = true;
    spdlog::info("chat-worker consuming {} (group {}, dead letters to {})", cfg.topic, cfg.group,
                 cfg.dlq_topic);
    w.run();
    running = false;
    current = nullptr;
    source.value()->close();  // leave the group: the partitions move to the others at once
    auto c = w.counts();
    spdlog::info("chat-worker stopped: {} consumed, {} written, {} dead letters", c.consumed,
                 c.written, c.dead_letters);
    server.stop();
  });
  server.run();
  consumer.join();
  return exit_code.load();
}

}  // namespace

int main(int argc, char** argv) {
  auto loaded = chat::worker::load_worker_config(argc, argv, chat::config::process_env());
  if (!loaded) {
    std::cerr << "chat-worker: " << loaded.err().message << "\n";
    return 2;
  }
  if (loaded->help) {
    std::cout << chat::worker::worker_help_text();
    return 0;
  }
  chat::init_logging(loaded->config.log_level);
  try {
    return run(loaded->config);
  } catch (const std::exception& e) {
    spdlog::critical("chat-worker: {}", e.what());
    return 1;
  }
}
