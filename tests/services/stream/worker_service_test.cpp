// chat-worker's core with the real Kafka consumer and dead-letter producer, against a real broker
// (started once for this process); the database is an in-memory sink.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "kafka_env.hpp"
#include "kafka_source.hpp"
#include "metrics/metrics.hpp"
#include "stream/kafka_log.hpp"
#include "worker.hpp"

namespace {
using namespace chat;
using namespace chat::worker;
using namespace std::chrono_literals;

using test::broker;
using test::message;
[[maybe_unused]] auto* env = ::testing::AddGlobalTestEnvironment(new test::KafkaEnvironment);

// The database: an idempotent upsert by id that counts how often each id was written, and can
// be told to fail.
class MemorySink : public MessageSink {
 public:
  std::atomic<bool> down{false};
  std::atomic<int> failures{0};
  result<void> write(const std::vector<store::Message>& batch) override {
    if (down.load()) {
      ++failures;
      return error{errc::unavailable, "database down"};
    }
    std::lock_guard lock(mu_);
    for (auto& m : batch) ++writes_[m.id];
    return {};
  }
  std::map<std::string, int> writes() {
    std::lock_guard lock(mu_);
    return writes_;
  }
  std::size_t distinct() {
    std::lock_guard lock(mu_);
    return writes_.size();
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> writes_;
};

stream::KafkaOptions kafka(const std::string& topic) {
  stream::KafkaOptions o;
  o.brokers = broker->bootstrap();
  o.topic = topic;
  o.partitions = 4;
  o.client_id = "worker-test";
  return o;
}

// One worker: consumer + dead-letter producer + Worker, running on its own thread.
struct RunningWorker {
  metrics::Registry registry;
  std::unique_ptr<KafkaSource> source;
  std::unique_ptr<KafkaDeadLetters> dlq;
  std::unique_ptr<Worker> worker;
  std::thread thread;

  RunningWorker(const std::string& topic, const std::string& group, MessageSink& sink) {
    ConsumerOptions c;
    c.kafka = kafka(topic);
    c.group = group;
    c.session_timeout = 6s;
    auto s = KafkaSource::open(c);
    EXPECT_TRUE(s.ok()) << s.err().message;
    source = std::move(s.value());
    auto d = KafkaDeadLetters::open(c.kafka, topic + ".dlq");
    EXPECT_TRUE(d.ok()) << d.err().message;
    dlq = std::move(d.value());
    WorkerOptions w;
    w.batch_max = 50;
    w.backoff_max = 500ms;
    worker = std::make_unique<Worker>(*source, *dlq, sink, registry, w);
    thread = std::thread([this] {
      worker->run();
      source->close();
    });
  }
  void stop() {
    if (!thread.joinable()) return;
    worker->stop();
    thread.join();
  }
  ~RunningWorker() { stop(); }
};

void setup_topics(const std::string& topic) {
  auto o = kafka(topic);
  ASSERT_TRUE(stream::ensure_topic(o, topic, 4).ok());
  ASSERT_TRUE(stream::ensure_topic(o, topic + ".dlq", 4).ok());
}

std::vector<store::Message> produce(const std::string& topic, int from, int n) {
  auto log = stream::make_kafka_log(kafka(topic));
  EXPECT_TRUE(log.ok()) << log.err().message;
  std::vector<store::Message> sent;
  std::atomic<int> ok{0};
  for (int i = from; i < from + n; ++i) {
    sent.push_back(message(i % 9, i));
    (*log)->append(sent.back(), [&](result<void> r) { ok += r.ok(); });
  }
  (*log)->flush(20s);
  EXPECT_EQ(ok.load(), n);
  return sent;
}

std::int64_t committed_total(const std::string& group, const std::string& topic) {
  std::int64_t total = 0;
  for (auto& [p, o] : test::committed_offsets(broker->bootstrap(), group, topic, 4))
    if (o > 0) total += o;
  return total;
}

TEST(WorkerService, PoisonGoesToTheDeadLetterTopicTheRestIsWritten) {
  const std::string topic = "poison";
  setup_topics(topic);
  auto good = produce(topic, 0, 40);
  std::vector<std::pair<std::string, std::string>> poison{
      {"k1", "not json"}, {"k2", R"({"v":1,"_id":"short"})"}, {"k3", R"({"v":2})"}, {"k4", ""}};
  ASSERT_TRUE(test::produce_raw(broker->bootstrap(), topic, poison));
  auto more = produce(topic, 40, 10);

  MemorySink sink;
  RunningWorker w(topic, "g-poison", sink);
  ASSERT_TRUE(test::wait_for([&] { return sink.distinct() == 50; }, 30s)) << sink.distinct();
  auto dead = test::read_topic(broker->bootstrap(), topic + ".dlq", poison.size());
  ASSERT_EQ(dead.size(), poison.size());
  std::map<std::string, test::RawRecord> by_key;
  for (auto& d : dead) by_key[d.key] = d;
  for (auto& [k, v] : poison) {
    ASSERT_TRUE(by_key.contains(k)) << k;
    auto& d = by_key[k];
    EXPECT_EQ(d.value, v);
    EXPECT_FALSE(d.headers["dlq.error"].empty());
    EXPECT_EQ(d.headers["dlq.source.topic"], topic);
    EXPECT_FALSE(d.headers["dlq.source.partition"].empty());
    EXPECT_FALSE(d.headers["dlq.source.offset"].empty());
  }
  EXPECT_NE(by_key["k1"].headers["dlq.error"].find("not JSON"), std::string::npos);
  // Every record (good and poison) is committed once the batch is done.
  ASSERT_TRUE(test::wait_for([&] { return committed_total("g-poison", topic) == 54; }, 15s))
      << committed_total("g-poison", topic);
  EXPECT_EQ(w.worker->counts().dead_letters, poison.size());
  EXPECT_NE(w.registry.serialize().find("chat_worker_dead_letters_total 4"), std::string::npos);
  for (auto& [id, n] : sink.writes()) EXPECT_EQ(n, 1) << id;
}

TEST(WorkerService, DatabaseDownPausesThenEverythingIsWrittenOnceAndCommittedAfter) {
  const std::string topic = "dbdown";
  setup_topics(topic);
  MemorySink sink;
  sink.down = true;
  auto sent = produce(topic, 0, 120);
  RunningWorker w(topic, "g-dbdown", sink);
  ASSERT_TRUE(test::wait_for([&] { return sink.failures.load() >= 3; }, 20s));
  // While the database is down nothing is committed.
  EXPECT_EQ(committed_total("g-dbdown", topic), 0);
  auto more = produce(topic, 120, 30);  // arrives while paused
  // Every record is lag: none is committed, and the 30 produced while paused count too (the
  // end offsets are asked of the broker, not taken from the paused fetcher's last view).
  auto lag = [&] {
    std::string text = w.registry.serialize();
    auto at = text.find("\nchat_worker_consumer_lag_messages ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + 35));
  };
  ASSERT_TRUE(test::wait_for([&] { return lag() == 150.0; }, 10s)) << lag();
  EXPECT_EQ(committed_total("g-dbdown", topic), 0);
  sink.down = false;
  ASSERT_TRUE(test::wait_for([&] { return sink.distinct() == 150; }, 30s)) << sink.distinct();
  ASSERT_TRUE(test::wait_for([&] { return committed_total("g-dbdown", topic) == 150; }, 15s));
  for (auto& [id, n] : sink.writes()) EXPECT_EQ(n, 1) << id;  // no duplicate writes either
  std::set<std::string> ids;
  for (auto& m : sent) ids.insert(m.id);
  for (auto& m : more) ids.insert(m.id);
  for (auto& [id, n] : sink.writes()) EXPECT_TRUE(ids.contains(id));
  EXPECT_GE(w.worker->counts().db_errors, 3u);
}

// One worker's view of the shared database, which can fail for that worker alone.
class FlakySink : public MessageSink {
 public:
  explicit FlakySink(MemorySink& db) : db_(db) {}
  std::atomic<bool> down{false};
  std::atomic<int> failures{0};
  result<void> write(const std::vector<store::Message>& batch) override {
    if (down.load()) {
      ++failures;
      return error{errc::unavailable, "database down"};
    }
    return db_.write(batch);
  }

 private:
  MemorySink& db_;
};

TEST(WorkerService, TwoWorkersShareThePartitionsAndARebalanceLosesNothing) {
  const std::string topic = "shared";
  setup_topics(topic);
  MemorySink db;
  FlakySink sink_a(db), sink_b(db);
  auto a = std::make_unique<RunningWorker>(topic, "g-shared", sink_a);
  auto b = std::make_unique<RunningWorker>(topic, "g-shared", sink_b);
  // Until the group has settled, one member may hold every partition: keep producing (in
  // rounds of 20, spread over the partitions) until both have written something.
  int produced = 0;
  auto last = std::chrono::steady_clock::now() - 1s;
  ASSERT_TRUE(test::wait_for([&] {
    if (a->worker->counts().written > 0 && b->worker->counts().written > 0) return true;
    if (std::chrono::steady_clock::now() - last >= 500ms && produced < 1000) {
      produce(topic, produced, 20);
      produced += 20;
      last = std::chrono::steady_clock::now();
    }
    return false;
  }, 40s)) << "both members got partitions";
  const auto total = static_cast<std::size_t>(produced);
  ASSERT_TRUE(test::wait_for([&] { return db.distinct() == total; }, 40s)) << db.distinct();
  auto a1 = a->worker->counts().written, b1 = b->worker->counts().written;
  EXPECT_EQ(a1 + b1, total);

  // A cannot write any more and leaves the group with an uncommitted batch in memory: B takes
  // over A's partitions from A's committed offsets and writes what A could not.
  sink_a.down = true;
  produce(topic, produced, 200);
  ASSERT_TRUE(test::wait_for([&] { return sink_a.failures.load() >= 2; }, 20s));
  EXPECT_LT(db.distinct(), total + 200);
  a->stop();
  ASSERT_TRUE(test::wait_for([&] { return db.distinct() == total + 200; }, 40s)) << db.distinct();
  ASSERT_TRUE(test::wait_for([&] { return committed_total("g-shared", topic) == static_cast<std::int64_t>(total + 200); }, 20s))
      << committed_total("g-shared", topic);
  EXPECT_EQ(a->worker->counts().written, a1);
  EXPECT_EQ(b->worker->counts().written, total + 200 - a1);
  for (auto& [id, n] : db.writes()) EXPECT_EQ(n, 1) << id;
  b->stop();
}

}  // namespace
