#include "stream/kafka_log.hpp"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "core/log.hpp"
#include "core/sched.hpp"
#include "stream/kafka_conf.hpp"
#include "metrics/metrics.hpp"

namespace chat::stream {

std::vector<std::pair<std::string, std::string>> client_properties(const KafkaOptions& o) {
  std::vector<std::pair<std::string, std::string>> p{{"bootstrap.servers", o.brokers},
                                                     {"client.id", o.client_id}};
  if (!o.username.empty()) {
    p.emplace_back("security.protocol", "SASL_PLAINTEXT");
    p.emplace_back("sasl.mechanism", "PLAIN");
    p.emplace_back("sasl.username", o.username);
    p.emplace_back("sasl.password", o.password);
  }
  return p;
}

namespace {

class KafkaLog final : public MessageLog {
 public:
  explicit KafkaLog(const KafkaOptions& o) : options_(o) {
    if (!o.metrics) own_metrics_ = std::make_unique<metrics::Registry>();
    metrics::Registry& reg = o.metrics ? *o.metrics : *own_metrics_;
    duration_ = reg.histogram("chat_kafka_produce_duration_seconds",
                              "Time from append to the broker's acknowledgement (acks=all)",
                              {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    errors_ = reg.counter("chat_kafka_produce_errors_total",
                          "Appends that failed (queue full, broker unreachable past the timeout)");
    queued_ = reg.gauge("chat_kafka_queue_messages",
                        "Records in the producer queue, not yet acknowledged");
  }

  result<void> start() {
    auto props = client_properties(options_);
    props.insert(props.end(),
                 {{"enable.idempotence", "true"},
                  {"acks", "all"},
                  {"linger.ms", std::to_string(options_.linger.count())},
                  {"message.timeout.ms", std::to_string(options_.delivery_timeout.count())},
                  {"queue.buffering.max.messages", std::to_string(options_.max_queued)},
                  // Java's partitioner: other producers of the topic put a key where we do.
                  {"partitioner", "murmur2_random"}});
    auto conf = make_conf(props);
    if (!conf) return conf.err();
    rd_kafka_conf_set_opaque(*conf, this);
    rd_kafka_conf_set_dr_msg_cb(*conf, &KafkaLog::on_delivery);
    char errstr[512];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
    if (!rk_) {
      rd_kafka_conf_destroy(*conf);
      return error{errc::invalid_argument, std::string("kafka producer: ") + errstr};
    }
    rkt_ = rd_kafka_topic_new(rk_, options_.topic.c_str(), nullptr);
    if (!rkt_)
      return error{errc::invalid_argument,
                   "kafka topic '" + options_.topic + "': " + rd_kafka_err2str(rd_kafka_last_error())};
    thread_ = std::thread([this] {
      (void)request_time_slice(options_.thread_slice);  // 0: the kernel's default
      delivery_loop();
    });
    return {};
  }

  ~KafkaLog() override {
    if (!rk_) return;
    if (thread_.joinable()) {
      flush(std::min<std::chrono::milliseconds>(options_.delivery_timeout,
                                                std::chrono::milliseconds(10000)));
      // Whatever is still queued or in flight fails now; the delivery thread serves the purge's
      // reports, so every `done` still runs exactly once.
      rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      flush(std::chrono::milliseconds(2000));
      stop_ = true;
      rd_kafka_yield(rk_);
      thread_.join();
    }
    // Last resort (nothing should be left): serve the reports on this thread.
    for (int i = 0; i < 50 && inflight() > 0; ++i) {
      rd_kafka_poll(rk_, 20);
      run_failed();
    }
    if (rkt_) rd_kafka_topic_destroy(rkt_);
    rd_kafka_destroy(rk_);
  }

  void append(const store::Message& m, Done done) override {
    auto* p = new Pending{std::move(done), std::chrono::steady_clock::now()};
    {
      std::lock_guard lock(mu_);
      ++inflight_;
    }
    std::string value = encode_record(m);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_, RD_KAFKA_V_RKT(rkt_),
        RD_KAFKA_V_KEY(const_cast<char*>(m.conversation_id.data()), m.conversation_id.size()),
        RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(p), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    errors_.inc();
    std::string why = err == RD_KAFKA_RESP_ERR__QUEUE_FULL
                          ? "the Kafka producer queue is full"
                          : std::string("kafka produce: ") + rd_kafka_err2str(err);
    // `done` runs on the delivery thread, as for every other outcome: the caller may hold locks
    // that `done` takes.
    {
      std::lock_guard lock(mu_);
      failed_.emplace_back(p, std::move(why));
    }
    rd_kafka_yield(rk_);
  }

  result<void> ping() override {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, rkt_, &md, 2000);
    if (md) rd_kafka_metadata_destroy(md);
    if (err) return error{errc::unavailable, std::string("kafka: ") + rd_kafka_err2str(err)};
    char buf[256];
    if (rd_kafka_fatal_error(rk_, buf, sizeof buf))
      return error{errc::internal, std::string("kafka producer failed: ") + buf};
    return {};
  }

  void flush(std::chrono::milliseconds timeout) override {
    // Waits for our own count rather than calling rd_kafka_flush, which would serve delivery
    // reports (and run `done`) on the caller's thread.
    std::unique_lock lock(mu_);
    idle_.wait_for(lock, timeout, [&] { return inflight_ == 0; });
  }

 private:
  struct Pending {
    Done done;
    std::chrono::steady_clock::time_point start;
  };

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<KafkaLog*>(opaque);
    std::unique_ptr<Pending> p(static_cast<Pending*>(msg->_private));
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->duration_.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - p->start).count());
      self->finish(std::move(p), {});
    } else {
      self->errors_.inc();
      self->finish(std::move(p), error{errc::unavailable, std::string("kafka: record not stored: ") +
                                                              rd_kafka_err2str(msg->err)});
    }
  }

  void finish(std::unique_ptr<Pending> p, result<void> r) {
    try {
      if (p->done) p->done(std::move(r));
    } catch (const std::exception& e) {
      spdlog::error("kafka: a delivery callback threw: {}", e.what());
    }
    std::lock_guard lock(mu_);
    if (--inflight_ == 0) idle_.notify_all();
  }

  void run_failed() {
    std::deque<std::pair<Pending*, std::string>> failed;
    {
      std::lock_guard lock(mu_);
      failed.swap(failed_);
    }
    for (auto& [p, why] : failed)
      finish(std::unique_ptr<Pending>(p), error{errc::unavailable, std::move(why)});
  }

  std::int64_t inflight() {
    std::lock_guard lock(mu_);
    return inflight_;
  }

  void delivery_loop() {
    while (!stop_.load()) {
      rd_kafka_poll(rk_, 100);
      run_failed();
      queued_.set(static_cast<double>(rd_kafka_outq_len(rk_)));
    }
    // Reports that arrived between the last poll and stop_ (the destructor waited for them).
    rd_kafka_poll(rk_, 0);
    run_failed();
  }

  KafkaOptions options_;
  std::unique_ptr<metrics::Registry> own_metrics_;
  metrics::Histogram duration_;
  metrics::Counter errors_;
  metrics::Gauge queued_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable idle_;
  std::int64_t inflight_ = 0;  // appended, `done` not run yet
  std::deque<std::pair<Pending*, std::string>> failed_;  // refused by producev, `done` pending
};

}  // namespace

result<void> ensure_topic(const KafkaOptions& options, const std::string& topic, int partitions,
                          int replication_factor, std::chrono::milliseconds timeout) {
  if (options.brokers.empty()) return error{errc::invalid_argument, "no Kafka brokers configured"};
  auto conf = make_conf(client_properties(options));
  if (!conf) return conf.err();
  rd_kafka_conf_set_error_cb(*conf, [](rd_kafka_t*, int err, const char* reason, void*) {
    spdlog::debug("kafka admin: {} ({})", reason,
                  rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)));
  });
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(*conf);
    return error{errc::invalid_argument, std::string("kafka admin client: ") + errstr};
  }
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, errstr, sizeof errstr);
  if (!nt) {
    rd_kafka_destroy(rk);
    return error{errc::invalid_argument, "kafka topic '" + topic + "': " + errstr};
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  const int ms = static_cast<int>(timeout.count());
  rd_kafka_AdminOptions_set_request_timeout(ao, ms, errstr, sizeof errstr);
  rd_kafka_AdminOptions_set_operation_timeout(ao, ms, errstr, sizeof errstr);
  rd_kafka_CreateTopics(rk, &nt, 1, ao, q);

  result<void> out;
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, ms + 2000);
  if (!ev) {
    out = error{errc::unavailable, "kafka: creating topic '" + topic + "' timed out"};
  } else if (rd_kafka_event_error(ev)) {
    out = error{errc::unavailable,
                "kafka: creating topic '" + topic + "': " + rd_kafka_event_error_string(ev)};
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::info("kafka: created topic {} ({} partitions)", topic, partitions);
      } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* s = rd_kafka_topic_result_error_string(res[i]);
        errc code = err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
                            err == RD_KAFKA_RESP_ERR__TRANSPORT
                        ? errc::unavailable
                        : errc::invalid_argument;
        out = error{code, "kafka: creating topic '" + topic + "': " +
                              (s ? s : rd_kafka_err2str(err))};
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return out;
}

result<std::unique_ptr<MessageLog>> make_kafka_log(const KafkaOptions& options) {
  if (options.brokers.empty()) return error{errc::invalid_argument, "no Kafka brokers configured"};
  if (options.topic.empty()) return error{errc::invalid_argument, "empty Kafka topic name"};
  if (auto r = ensure_topic(options, options.topic, options.partitions, options.replication_factor);
      !r)
    return r.err();
  auto log = std::make_unique<KafkaLog>(options);
  if (auto r = log->start(); !r) return r.err();
  return std::unique_ptr<MessageLog>(std::move(log));
}

}  // namespace chat::stream
