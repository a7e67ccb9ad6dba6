// KafkaLog against a real broker (Kafka 3.9, KRaft, started once for this process).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>

#include "core/sched.hpp"
#include "kafka_env.hpp"
#include "metrics/metrics.hpp"
#include "stream/kafka_log.hpp"

namespace {
using namespace chat;
using namespace std::chrono_literals;

using test::broker;
using test::message;
[[maybe_unused]] auto* env = ::testing::AddGlobalTestEnvironment(new test::KafkaEnvironment);

struct Outcomes {
  std::mutex mu;
  std::vector<result<void>> results;
  std::atomic<int> done{0};
  stream::MessageLog::Done callback() {
    return [this](result<void> r) {
      std::lock_guard lock(mu);
      results.push_back(std::move(r));
      ++done;
    };
  }
};

stream::KafkaOptions options(const std::string& topic) {
  stream::KafkaOptions o;
  o.brokers = broker->bootstrap();
  o.topic = topic;
  o.partitions = 3;
  return o;
}

TEST(KafkaLog, EveryAckedRecordIsReadBackInConversationOrder) {
  metrics::Registry registry;
  auto o = options("order-test");
  o.metrics = &registry;
  auto log = stream::make_kafka_log(o);
  ASSERT_TRUE(log.ok()) << log.err().message;
  ASSERT_TRUE((*log)->ping().ok());

  const int kConversations = 7, kPerConversation = 60;
  Outcomes out;
  std::vector<store::Message> sent;
  for (int seq = 0; seq < kPerConversation; ++seq)
    for (int c = 0; c < kConversations; ++c) {
      sent.push_back(message(c, seq * kConversations + c));
      (*log)->append(sent.back(), out.callback());
    }
  (*log)->flush(20s);
  ASSERT_EQ(out.done.load(), kConversations * kPerConversation);
  for (auto& r : out.results) ASSERT_TRUE(r.ok()) << r.err().message;

  auto records = test::read_topic(broker->bootstrap(), "order-test", sent.size());
  ASSERT_EQ(records.size(), sent.size());  // exactly them: no duplicates, none missing
  std::map<std::string, std::vector<std::string>> by_conv;  // conversation → ids in log order
  std::map<std::string, std::set<int>> partitions;
  std::map<std::pair<int, std::int64_t>, const test::RawRecord*> ordered;
  for (auto& r : records) ordered[{r.partition, r.offset}] = &r;
  for (auto& [pos, r] : ordered) {
    auto m = stream::decode_record(r->value);
    ASSERT_TRUE(m.ok()) << m.err().message;
    EXPECT_EQ(r->key, m->conversation_id);
    by_conv[m->conversation_id].push_back(m->id);
    partitions[m->conversation_id].insert(r->partition);
  }
  ASSERT_EQ(by_conv.size(), static_cast<std::size_t>(kConversations));
  std::set<int> used;
  for (int c = 0; c < kConversations; ++c) {
    std::vector<std::string> expected;
    for (auto& m : sent)
      if (m.conversation_id == "d:conv-" + std::to_string(c)) expected.push_back(m.id);
    EXPECT_EQ(by_conv["d:conv-" + std::to_string(c)], expected) << "conversation " << c;
    EXPECT_EQ(partitions["d:conv-" + std::to_string(c)].size(), 1u);
    used.insert(*partitions["d:conv-" + std::to_string(c)].begin());
  }
  EXPECT_GT(used.size(), 1u);  // conversations are spread over the partitions
  std::string text = registry.serialize();
  EXPECT_NE(text.find("chat_kafka_produce_duration_seconds_count " + std::to_string(sent.size())),
            std::string::npos);
  EXPECT_NE(text.find("chat_kafka_produce_errors_total 0"), std::string::npos);
}

TEST(KafkaLog, CreatesTheTopicWithThePartitionCountAndToleratesAnExistingOne) {
  auto o = options("created-topic");
  o.partitions = 5;
  ASSERT_TRUE(stream::ensure_topic(o, "created-topic", 5).ok());
  ASSERT_TRUE(stream::ensure_topic(o, "created-topic", 5).ok());  // already exists: fine
  auto log = stream::make_kafka_log(o);
  ASSERT_TRUE(log.ok()) << log.err().message;
  // Five partitions: records of enough conversations land on all five.
  Outcomes out;
  for (int c = 0; c < 40; ++c) (*log)->append(message(c, c), out.callback());
  (*log)->flush(20s);
  auto records = test::read_topic(broker->bootstrap(), "created-topic", 40);
  std::set<int> parts;
  for (auto& r : records) parts.insert(r.partition);
  EXPECT_EQ(parts.size(), 5u);
  EXPECT_FALSE(stream::ensure_topic(o, "bad-topic", 0).ok());  // rejected by the broker
}

TEST(KafkaLog, SaslPlain) {
  auto o = options("sasl-topic");
  o.brokers = broker->sasl_bootstrap();
  o.username = test::KafkaBroker::kUser;
  o.password = test::KafkaBroker::kPassword;
  auto log = stream::make_kafka_log(o);
  ASSERT_TRUE(log.ok()) << log.err().message;
  Outcomes out;
  for (int i = 0; i < 10; ++i) (*log)->append(message(1, i), out.callback());
  (*log)->flush(20s);
  ASSERT_EQ(out.done.load(), 10);
  for (auto& r : out.results) EXPECT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(test::read_topic(broker->bootstrap(), "sasl-topic", 10).size(), 10u);

  auto bad = o;
  bad.password = "wrong";
  auto t0 = std::chrono::steady_clock::now();
  auto r = stream::ensure_topic(bad, "sasl-topic-2", 1, 1, 3s);
  EXPECT_FALSE(r.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
}

TEST(KafkaLog, TheDeliveryThreadAsksForTheConfiguredSlice) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  ASSERT_NE(default_time_slice(), 350us);
  auto o = options("slice-topic");
  o.thread_slice = 350us;
  auto log = stream::make_kafka_log(o);
  ASSERT_TRUE(log.ok()) << log.err().message;
  std::promise<std::chrono::microseconds> seen;  // done() runs on the delivery thread
  (*log)->append(message(1, 1), [&seen](result<void> r) {
    EXPECT_TRUE(r.ok()) << r.err().message;
    seen.set_value(current_time_slice());
  });
  EXPECT_EQ(seen.get_future().get(), 350us);
}

TEST(KafkaLog, DestructionFlushesWhatWasAppended) {
  auto o = options("destroy-topic");
  Outcomes out;
  {
    auto log = stream::make_kafka_log(o);
    ASSERT_TRUE(log.ok()) << log.err().message;
    for (int i = 0; i < 200; ++i) (*log)->append(message(i % 4, i), out.callback());
  }  // no flush: the destructor waits
  ASSERT_EQ(out.done.load(), 200);
  for (auto& r : out.results) EXPECT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(test::read_topic(broker->bootstrap(), "destroy-topic", 200).size(), 200u);
}

TEST(KafkaLog, QueueFullFailsAtOnce) {
  auto o = options("full-topic");
  o.max_queued = 10;
  o.linger = 200ms;  // keep them queued
  auto log = stream::make_kafka_log(o);
  ASSERT_TRUE(log.ok()) << log.err().message;
  Outcomes out;
  for (int i = 0; i < 30; ++i) (*log)->append(message(1, i), out.callback());
  (*log)->flush(20s);
  ASSERT_EQ(out.done.load(), 30);
  int ok = 0, unavailable = 0;
  for (auto& r : out.results) r.ok() ? ++ok : (r.code() == errc::unavailable ? ++unavailable : 0);
  EXPECT_EQ(ok + unavailable, 30);
  EXPECT_GE(unavailable, 20 - 10);
  EXPECT_LE(ok, 10 + 10);
  // What was acked is in the topic, nothing else.
  EXPECT_EQ(test::read_topic(broker->bootstrap(), "full-topic", static_cast<std::size_t>(ok)).size(),
            static_cast<std::size_t>(ok));
}

// Last: stops the broker.
TEST(KafkaLog, ZBrokerDownAppendsFailAfterTheDeliveryTimeoutNeverOk) {
  metrics::Registry registry;
  auto o = options("down-topic");
  o.delivery_timeout = 3s;
  o.metrics = &registry;
  auto log = stream::make_kafka_log(o);
  ASSERT_TRUE(log.ok()) << log.err().message;
  Outcomes warm;
  (*log)->append(message(1, 1), warm.callback());
  (*log)->flush(10s);
  ASSERT_EQ(warm.done.load(), 1);
  ASSERT_TRUE(warm.results[0].ok());

  broker->stop();
  Outcomes out;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) (*log)->append(message(i % 3, 100 + i), out.callback());
  ASSERT_TRUE(test::wait_for([&] { return out.done.load() == 20; }, 15s));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, 2500ms);  // failed by the delivery timeout, not before
  for (auto& r : out.results) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), errc::unavailable);
  }
  EXPECT_FALSE((*log)->ping().ok());
  EXPECT_NE(registry.serialize().find("chat_kafka_produce_errors_total 20"), std::string::npos);
}

}  // namespace
