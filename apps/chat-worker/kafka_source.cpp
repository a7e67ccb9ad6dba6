#include "kafka_source.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "core/log.hpp"
#include "stream/kafka_conf.hpp"

namespace chat::worker {
namespace {

using Clock = std::chrono::steady_clock;

using stream::make_conf;

struct PartitionList {
  rd_kafka_topic_partition_list_t* p = nullptr;
  explicit PartitionList(int n = 0) : p(rd_kafka_topic_partition_list_new(n)) {}
  PartitionList(rd_kafka_topic_partition_list_t* l) : p(l) {}  // NOLINT: adopts
  ~PartitionList() {
    if (p) rd_kafka_topic_partition_list_destroy(p);
  }
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
};

}  // namespace

struct KafkaSource::Impl {
  ConsumerOptions options;
  rd_kafka_t* rk = nullptr;
  bool closed = false;
  bool paused = false;
  std::vector<TopicPartition> revoked;
  std::vector<Record>* in_poll = nullptr;  // the records being gathered by poll()
  Clock::time_point last_error_log{};

  std::thread lag_thread;
  std::mutex lag_mu;
  std::condition_variable lag_cv;
  bool lag_stop = false;
  std::atomic<std::int64_t> lag{-1};

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* parts, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      spdlog::info("chat-worker: assigned {} partition(s)", parts->cnt);
      rd_kafka_assign(rk, parts);
      if (self->paused) rd_kafka_pause_partitions(rk, parts);
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      spdlog::info("chat-worker: {} partition(s) revoked", parts->cnt);
      std::set<TopicPartition> gone;
      for (int i = 0; i < parts->cnt; ++i) {
        TopicPartition tp{parts->elems[i].topic, parts->elems[i].partition};
        self->revoked.push_back(tp);
        gone.insert(tp);
      }
      // Records gathered earlier in this same poll() belong to the old assignment.
      if (self->in_poll)
        std::erase_if(*self->in_poll, [&](const Record& r) { return gone.contains(r.tp); });
    } else {
      spdlog::warn("chat-worker: rebalance error: {}", rd_kafka_err2str(err));
    }
    rd_kafka_assign(rk, nullptr);
  }

  void lag_loop() {
    std::unique_lock lock(lag_mu);
    while (!lag_stop) {
      lock.unlock();
      lag.store(measure_lag());
      lock.lock();
      lag_cv.wait_for(lock, std::chrono::seconds(1), [&] { return lag_stop; });
    }
  }

  /// Records not yet stored: high watermark − committed offset over the assigned partitions.
  /// The committed offset, not the fetch position: records fetched into memory (librdkafka's
  /// queue, the batch being written or retried) are still lag until their write is committed.
  /// Two round trips whatever the number of partitions (the committed offsets, then every end
  /// offset in one ListOffsets request), and a third only for partitions never committed (their
  /// log start): the broker answers a connection's requests in order, each behind the consumer's
  /// long-polling fetch (up to fetch.wait.max.ms), so asking partition by partition (six
  /// watermark queries for six partitions) refreshed the gauge only every 3-4 s under load.
  std::int64_t measure_lag() {
    rd_kafka_topic_partition_list_t* raw = nullptr;
    if (rd_kafka_assignment(rk, &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    PartitionList parts(raw);
    if (parts.p->cnt == 0) return 0;
    if (rd_kafka_committed(rk, parts.p, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) return -1;
    // ListOffsets' timestamp -1 is "latest" (-2 "earliest"): the partition's end offset. One
    // request for the assigned partitions `pick` keeps; their offsets in assignment order, or
    // nothing when the broker could not answer for every one.
    auto list_offsets = [&](std::int64_t spec, auto pick) -> std::optional<std::vector<std::int64_t>> {
      PartitionList q(parts.p->cnt);
      for (int i = 0; i < parts.p->cnt; ++i)
        if (pick(parts.p->elems[i]))
          rd_kafka_topic_partition_list_add(q.p, parts.p->elems[i].topic, parts.p->elems[i].partition)->offset = spec;
      std::vector<std::int64_t> out;
      if (q.p->cnt == 0) return out;
      if (rd_kafka_offsets_for_times(rk, q.p, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
      for (int j = 0; j < q.p->cnt; ++j) {
        if (q.p->elems[j].err || q.p->elems[j].offset < 0) return std::nullopt;
        out.push_back(q.p->elems[j].offset);
      }
      return out;
    };
    auto uncommitted = [](const rd_kafka_topic_partition_t& e) { return e.offset < 0; };
    const auto ends = list_offsets(RD_KAFKA_OFFSET_END, [](const auto&) { return true; });
    if (!ends) return -1;
    const auto starts = list_offsets(RD_KAFKA_OFFSET_BEGINNING, uncommitted);  // no commit yet: from the log's start
    if (!starts) return -1;
    std::int64_t total = 0;
    for (std::size_t k = 0, u = 0; k < ends->size(); ++k) {
      const auto& e = parts.p->elems[k];
      const std::int64_t pos = uncommitted(e) ? (*starts)[u++] : e.offset;
      total += std::max<std::int64_t>(0, (*ends)[k] - pos);
    }
    return total;
  }

  void set_paused(bool pause) {
    paused = pause;
    rd_kafka_topic_partition_list_t* raw = nullptr;
    if (rd_kafka_assignment(rk, &raw) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    PartitionList parts(raw);
    if (pause)
      rd_kafka_pause_partitions(rk, parts.p);
    else
      rd_kafka_resume_partitions(rk, parts.p);
  }
};

KafkaSource::KafkaSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

result<std::unique_ptr<KafkaSource>> KafkaSource::open(const ConsumerOptions& options) {
  if (options.kafka.brokers.empty()) return error{errc::invalid_argument, "no Kafka brokers configured"};
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  auto props = stream::client_properties(options.kafka);
  props.insert(props.end(), {{"group.id", options.group},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"auto.offset.reset", "earliest"},
                             {"partition.assignment.strategy", "range,roundrobin"},
                             {"session.timeout.ms", std::to_string(options.session_timeout.count())},
                             {"heartbeat.interval.ms",
                              std::to_string(std::max<long long>(100, options.session_timeout.count() / 5))}});
  auto conf = make_conf(props);
  if (!conf) return conf.err();
  rd_kafka_conf_set_opaque(*conf, impl.get());
  rd_kafka_conf_set_rebalance_cb(*conf, &Impl::on_rebalance);
  char errstr[512];
  impl->rk = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, errstr, sizeof errstr);
  if (!impl->rk) {
    rd_kafka_conf_destroy(*conf);
    return error{errc::invalid_argument, std::string("kafka consumer: ") + errstr};
  }
  rd_kafka_poll_set_consumer(impl->rk);
  PartitionList topics(1);
  rd_kafka_topic_partition_list_add(topics.p, options.kafka.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(impl->rk, topics.p)) {
    rd_kafka_destroy(impl->rk);
    impl->rk = nullptr;
    return error{errc::unavailable, std::string("kafka subscribe: ") + rd_kafka_err2str(err)};
  }
  Impl* raw = impl.get();
  impl->lag_thread = std::thread([raw] { raw->lag_loop(); });
  return std::unique_ptr<KafkaSource>(new KafkaSource(std::move(impl)));
}

KafkaSource::~KafkaSource() {
  close();
  if (impl_->rk) rd_kafka_destroy(impl_->rk);
}

void KafkaSource::close() {
  if (impl_->closed || !impl_->rk) return;
  impl_->closed = true;
  {
    std::lock_guard lock(impl_->lag_mu);
    impl_->lag_stop = true;
  }
  impl_->lag_cv.notify_all();
  if (impl_->lag_thread.joinable()) impl_->lag_thread.join();
  // Serves the final revoke and leaves the group; nothing is committed here.
  if (auto err = rd_kafka_consumer_close(impl_->rk))
    spdlog::warn("chat-worker: closing the consumer: {}", rd_kafka_err2str(err));
}

std::vector<Record> KafkaSource::poll(std::chrono::milliseconds timeout, std::size_t max) {
  std::vector<Record> out;
  if (impl_->closed) return out;
  impl_->in_poll = &out;
  int wait = static_cast<int>(timeout.count());
  while (out.size() < max) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(impl_->rk, wait);
    wait = 0;  // after the first event, take only what is already there
    if (!m) break;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        auto now = Clock::now();
        if (now - impl_->last_error_log > std::chrono::seconds(5)) {
          impl_->last_error_log = now;
          spdlog::warn("chat-worker: consumer: {}", rd_kafka_message_errstr(m));
        }
      }
    } else {
      Record r;
      r.tp = {rd_kafka_topic_name(m->rkt), m->partition};
      r.offset = m->offset;
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  impl_->in_poll = nullptr;
  return out;
}

std::vector<TopicPartition> KafkaSource::take_revoked() { return std::exchange(impl_->revoked, {}); }

void KafkaSource::pause() { impl_->set_paused(true); }
void KafkaSource::resume() { impl_->set_paused(false); }

result<void> KafkaSource::commit(const std::map<TopicPartition, std::int64_t>& next) {
  if (next.empty()) return {};
  PartitionList list(static_cast<int>(next.size()));
  for (const auto& [tp, offset] : next)
    rd_kafka_topic_partition_list_add(list.p, tp.topic.c_str(), tp.partition)->offset = offset;
  if (auto err = rd_kafka_commit(impl_->rk, list.p, 0))
    return error{errc::unavailable, std::string("kafka commit: ") + rd_kafka_err2str(err)};
  for (int i = 0; i < list.p->cnt; ++i)
    if (auto err = list.p->elems[i].err)
      return error{errc::unavailable, std::string("kafka commit of ") + list.p->elems[i].topic + "[" +
                                          std::to_string(list.p->elems[i].partition) +
                                          "]: " + rd_kafka_err2str(err)};
  return {};
}

std::int64_t KafkaSource::lag() { return impl_->lag.load(); }

// ---------------------------------------------------------------------------------------------

struct KafkaDeadLetters::Impl {
  stream::KafkaOptions options;
  std::string topic;
  rd_kafka_t* rk = nullptr;

  struct Batch {
    std::size_t pending = 0;
    std::string first_error;
  };

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    auto* b = static_cast<Batch*>(m->_private);
    if (m->err && b->first_error.empty()) b->first_error = rd_kafka_err2str(m->err);
    --b->pending;
  }
};

KafkaDeadLetters::KafkaDeadLetters(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

result<std::unique_ptr<KafkaDeadLetters>> KafkaDeadLetters::open(const stream::KafkaOptions& kafka,
                                                                 const std::string& topic) {
  auto impl = std::make_unique<Impl>();
  impl->options = kafka;
  impl->topic = topic;
  auto props = stream::client_properties(kafka);
  props.insert(props.end(), {{"enable.idempotence", "true"},
                             {"acks", "all"},
                             {"linger.ms", "5"},
                             {"message.timeout.ms", std::to_string(kafka.delivery_timeout.count())}});
  auto conf = make_conf(props);
  if (!conf) return conf.err();
  rd_kafka_conf_set_dr_msg_cb(*conf, &Impl::on_delivery);
  char errstr[512];
  impl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
  if (!impl->rk) {
    rd_kafka_conf_destroy(*conf);
    return error{errc::invalid_argument, std::string("kafka dead-letter producer: ") + errstr};
  }
  return std::unique_ptr<KafkaDeadLetters>(new KafkaDeadLetters(std::move(impl)));
}

KafkaDeadLetters::~KafkaDeadLetters() {
  if (!impl_->rk) return;
  rd_kafka_flush(impl_->rk, 5000);
  rd_kafka_destroy(impl_->rk);
}

result<void> KafkaDeadLetters::dead_letter(const std::vector<DeadLetter>& records) {
  Impl::Batch batch;
  std::string refused;
  for (const auto& d : records) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(4);
    auto add = [&](const char* name, const std::string& v) {
      rd_kafka_header_add(h, name, -1, v.data(), static_cast<ssize_t>(v.size()));
    };
    add("dlq.error", d.reason);
    add("dlq.source.topic", d.record.tp.topic);
    add("dlq.source.partition", std::to_string(d.record.tp.partition));
    add("dlq.source.offset", std::to_string(d.record.offset));
    const auto& r = d.record;
    ++batch.pending;
    auto err = rd_kafka_producev(
        impl_->rk, RD_KAFKA_V_TOPIC(impl_->topic.c_str()),
        RD_KAFKA_V_KEY(r.key.empty() ? nullptr : const_cast<char*>(r.key.data()), r.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&batch),
        RD_KAFKA_V_END);
    if (err) {
      --batch.pending;
      rd_kafka_headers_destroy(h);  // not taken over on failure
      refused = rd_kafka_err2str(err);
      break;
    }
  }
  // Delivery reports run here (this producer is only used from the worker thread); `batch`
  // must not go out of scope before all of them ran, so wait past the delivery timeout.
  auto deadline = Clock::now() + impl_->options.delivery_timeout + std::chrono::seconds(5);
  while (batch.pending > 0 && Clock::now() < deadline) rd_kafka_poll(impl_->rk, 100);
  if (batch.pending > 0) {
    rd_kafka_purge(impl_->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    while (batch.pending > 0) rd_kafka_poll(impl_->rk, 100);
  }
  if (!refused.empty()) return error{errc::unavailable, "dead-letter produce: " + refused};
  if (!batch.first_error.empty())
    return error{errc::unavailable, "dead-letter produce: " + batch.first_error};
  return {};
}

}  // namespace chat::worker
