// The chat-worker core (batching, dead letters, backoff, commits, revocations) against fakes.
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <map>
#include <set>

#include "metrics/metrics.hpp"
#include "options.hpp"
#include "stream/message_log.hpp"
#include "worker.hpp"

namespace {
using namespace chat;
using namespace chat::worker;
using std::chrono::milliseconds;

const std::string kTopic = "chat-messages";

store::Message message(int i) {
  store::Message m;
  char id[25];
  std::snprintf(id, sizeof id, "%024x", 0x1000 + i);
  m.id = id;
  m.sender_id = "65a1b2c3d4e5f60718293a01";
  m.receiver_id = "65a1b2c3d4e5f60718293a02";
  m.conversation_id = "conv-" + std::to_string(i % 3);
  m.text = "message " + std::to_string(i);
  m.created_at = m.updated_at = 1000 + i;
  return m;
}

// An in-memory partitioned log with a consumer position per partition, pause, commits and
// scripted revocations.
class FakeSource : public RecordSource {
 public:
  std::map<int, std::vector<Record>> log;  // partition → records (offset = index)
  std::map<int, std::int64_t> position;    // next offset to hand out
  std::map<TopicPartition, std::int64_t> committed;
  std::vector<std::map<TopicPartition, std::int64_t>> commits;
  bool paused = false;
  int pause_calls = 0, resume_calls = 0, polls = 0, polls_while_paused = 0;
  std::function<void(FakeSource&)> on_poll;  // runs at the start of every poll
  std::vector<TopicPartition> revoked;
  bool fail_commit = false;

  void add(int partition, std::string value) {
    auto& p = log[partition];
    Record r{{kTopic, partition}, static_cast<std::int64_t>(p.size()), "k", std::move(value)};
    p.push_back(std::move(r));
  }
  // Revokes `partition` and assigns it again: the position goes back to the committed offset.
  void revoke(int partition) {
    TopicPartition tp{kTopic, partition};
    revoked.push_back(tp);
    position[partition] = committed.contains(tp) ? committed[tp] : 0;
  }

  std::vector<Record> poll(milliseconds, std::size_t max) override {
    ++polls;
    if (paused) ++polls_while_paused;
    if (on_poll) on_poll(*this);
    std::vector<Record> out;
    if (paused) return out;
    for (auto& [p, recs] : log) {
      auto& pos = position[p];
      while (out.size() < max && pos < static_cast<std::int64_t>(recs.size()))
        out.push_back(recs[static_cast<std::size_t>(pos++)]);
    }
    return out;
  }
  std::vector<TopicPartition> take_revoked() override { return std::exchange(revoked, {}); }
  void pause() override {
    paused = true;
    ++pause_calls;
  }
  void resume() override {
    paused = false;
    ++resume_calls;
  }
  result<void> commit(const std::map<TopicPartition, std::int64_t>& next) override {
    if (fail_commit) return error{errc::unavailable, "commit failed"};
    commits.push_back(next);
    for (auto& [tp, o] : next) committed[tp] = o;
    return {};
  }
};

class FakeDeadLetters : public DeadLetterSink {
 public:
  std::vector<DeadLetter> got;
  int failures_left = 0;
  int calls = 0;
  result<void> dead_letter(const std::vector<DeadLetter>& records) override {
    ++calls;
    if (failures_left > 0) {
      --failures_left;
      return error{errc::unavailable, "dlq down"};
    }
    got.insert(got.end(), records.begin(), records.end());
    return {};
  }
};

class FakeSink : public MessageSink {
 public:
  std::vector<store::Message> written;  // every successful write, in order (duplicates kept)
  int failures_left = 0;
  int calls = 0;
  std::vector<std::size_t> sizes;  // of every call, failed ones included
  std::function<void()> on_write;
  result<void> write(const std::vector<store::Message>& batch) override {
    ++calls;
    sizes.push_back(batch.size());
    if (on_write) on_write();
    if (failures_left > 0) {
      --failures_left;
      return error{errc::unavailable, "db down"};
    }
    written.insert(written.end(), batch.begin(), batch.end());
    return {};
  }
};

WorkerOptions fast() {
  WorkerOptions o;
  o.batch_max = 10;
  o.batch_wait = milliseconds(0);
  o.poll_timeout = milliseconds(0);
  o.backoff_min = milliseconds(1);
  o.backoff_max = milliseconds(4);
  return o;
}

struct Harness {
  FakeSource source;
  FakeDeadLetters dlq;
  FakeSink sink;
  metrics::Registry registry;
  WorkerOptions options = fast();
  std::unique_ptr<Worker> worker;
  Worker& w() {
    if (!worker) worker = std::make_unique<Worker>(source, dlq, sink, registry, options);
    return *worker;
  }
  void drain(int max_rounds = 100) {
    for (int i = 0; i < max_rounds && w().run_once();) ++i;
  }
  std::string metric(const std::string& line_prefix) {
    std::string s = registry.serialize();
    auto at = s.find("\n" + line_prefix + " ");
    if (at == std::string::npos) return "";
    auto start = at + line_prefix.size() + 2;
    return s.substr(start, s.find('\n', start) - start);
  }
};

TEST(Worker, WritesEverythingAndCommitsNextOffsets) {
  Harness h;
  for (int i = 0; i < 25; ++i) h.source.add(i % 2, stream::encode_record(message(i)));
  h.drain();
  ASSERT_EQ(h.sink.written.size(), 25u);
  std::set<std::string> ids;
  for (auto& m : h.sink.written) ids.insert(m.id);
  EXPECT_EQ(ids.size(), 25u);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 13);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 1})], 12);
  // Batches of at most batch_max.
  EXPECT_EQ(h.sink.calls, 3);
  EXPECT_EQ(h.metric("chat_worker_written_total"), "25");
  EXPECT_EQ(h.metric("chat_worker_consumed_total"), "25");
  EXPECT_TRUE(h.dlq.got.empty());
  EXPECT_FALSE(h.w().run_once());  // nothing left
}

TEST(Worker, PoisonGoesToDeadLettersAndDoesNotBlockThePartition) {
  Harness h;
  h.source.add(0, stream::encode_record(message(1)));
  h.source.add(0, "not json at all");
  h.source.add(0, R"({"v":1,"_id":"nope"})");
  h.source.add(0, stream::encode_record(message(2)));
  h.drain();
  ASSERT_EQ(h.dlq.got.size(), 2u);
  EXPECT_EQ(h.dlq.got[0].record.offset, 1);
  EXPECT_EQ(h.dlq.got[0].record.value, "not json at all");
  EXPECT_NE(h.dlq.got[0].reason.find("not JSON"), std::string::npos);
  EXPECT_EQ(h.dlq.got[1].record.offset, 2);
  EXPECT_NE(h.dlq.got[1].reason.find("_id"), std::string::npos);
  ASSERT_EQ(h.sink.written.size(), 2u);
  EXPECT_EQ(h.sink.written[0].id, message(1).id);
  EXPECT_EQ(h.sink.written[1].id, message(2).id);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 4);
  EXPECT_EQ(h.metric("chat_worker_dead_letters_total"), "2");
}

TEST(Worker, OnlyPoisonStillCommits) {
  Harness h;
  h.source.add(3, "garbage");
  h.drain();
  EXPECT_EQ(h.dlq.got.size(), 1u);
  EXPECT_EQ(h.sink.calls, 0);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 3})], 1);
}

TEST(Worker, SinkFailurePausesRetriesThenCommitsOnce) {
  Harness h;
  for (int i = 0; i < 5; ++i) h.source.add(0, stream::encode_record(message(i)));
  h.sink.failures_left = 4;
  // No commit may happen while the write has not succeeded.
  h.sink.on_write = [&] {
    if (h.sink.failures_left > 0) {
      EXPECT_TRUE(h.source.commits.empty());
    }
  };
  h.drain();
  // Bulks of 10 → 5 → 2 → 1 failed; then five bulks of one.
  EXPECT_EQ(h.sink.sizes, (std::vector<std::size_t>{5, 5, 2, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(h.sink.written.size(), 5u);  // written once, after the failures
  EXPECT_EQ(h.source.pause_calls, 1);
  EXPECT_EQ(h.source.resume_calls, 1);
  EXPECT_FALSE(h.source.paused);
  EXPECT_GT(h.source.polls_while_paused, 0);  // group membership kept alive
  ASSERT_EQ(h.source.commits.size(), 1u);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 5);
  EXPECT_EQ(h.metric("chat_worker_db_errors_total"), "4");
}

TEST(Worker, AFailedBulkIsRetriedSmallerAndTheSizeGrowsBackAfterSuccess) {
  // A bulk that outlasts the driver's timeout would fail the same way forever if retried whole.
  Harness h;
  h.options.batch_max = 8;
  for (int i = 0; i < 8; ++i) h.source.add(0, stream::encode_record(message(i)));
  h.sink.failures_left = 2;
  ASSERT_TRUE(h.w().run_once());
  EXPECT_EQ(h.sink.sizes, (std::vector<std::size_t>{8, 4, 2, 2, 2, 2}));
  EXPECT_EQ(h.sink.written.size(), 8u);
  for (int i = 0; i < 8; ++i) h.source.add(0, stream::encode_record(message(100 + i)));
  h.sink.sizes.clear();
  ASSERT_TRUE(h.w().run_once());
  EXPECT_EQ(h.sink.sizes, (std::vector<std::size_t>{4, 4})) << "doubled back after the success";
  for (int i = 0; i < 8; ++i) h.source.add(0, stream::encode_record(message(200 + i)));
  h.sink.sizes.clear();
  ASSERT_TRUE(h.w().run_once());
  EXPECT_EQ(h.sink.sizes, (std::vector<std::size_t>{8}));
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 24);
}

TEST(Worker, BackoffGrowsExponentiallyToTheCap) {
  Harness h;
  h.options.backoff_min = milliseconds(10);
  h.options.backoff_max = milliseconds(40);
  h.source.add(0, stream::encode_record(message(0)));
  h.sink.failures_left = 5;
  std::vector<std::chrono::steady_clock::time_point> at;
  h.sink.on_write = [&] { at.push_back(std::chrono::steady_clock::now()); };
  h.drain();
  ASSERT_EQ(at.size(), 6u);
  std::vector<long> gaps;
  for (std::size_t i = 1; i < at.size(); ++i)
    gaps.push_back(std::chrono::duration_cast<milliseconds>(at[i] - at[i - 1]).count());
  // 10, 20, 40, 40, 40 ms (at least; scheduling may add a little).
  const long expected[] = {10, 20, 40, 40, 40};
  for (std::size_t i = 0; i < gaps.size(); ++i) {
    EXPECT_GE(gaps[i], expected[i]) << "gap " << i;
    EXPECT_LT(gaps[i], expected[i] + 200) << "gap " << i;
  }
}

TEST(Worker, DeadLetterFailureRetriesAndBlocksTheCommit) {
  Harness h;
  h.source.add(0, "bad");
  h.source.add(0, stream::encode_record(message(1)));
  h.dlq.failures_left = 2;
  h.drain();
  EXPECT_EQ(h.dlq.calls, 3);
  EXPECT_EQ(h.dlq.got.size(), 1u);
  EXPECT_EQ(h.sink.written.size(), 1u);
  EXPECT_EQ(h.source.commits.size(), 1u);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 2);
}

TEST(Worker, DeadLettersAreNotRepeatedWhenOnlyTheDatabaseRetries) {
  Harness h;
  h.source.add(0, "bad");
  h.source.add(0, stream::encode_record(message(1)));
  h.sink.failures_left = 3;
  h.drain();
  EXPECT_EQ(h.dlq.calls, 1);
  EXPECT_EQ(h.dlq.got.size(), 1u);
}

TEST(Worker, RecordsArrivingWhileRetryingAreKeptForTheNextBatch) {
  Harness h;
  h.options.batch_max = 3;
  for (int i = 0; i < 3; ++i) h.source.add(0, stream::encode_record(message(i)));
  h.sink.failures_left = 2;
  // A source that keeps delivering while "paused" (e.g. records already fetched): nothing of it
  // may be lost.
  int extra = 3;
  h.source.on_poll = [&](FakeSource& s) {
    if (s.paused && extra < 8) {
      s.add(0, stream::encode_record(message(extra++)));
      s.paused = false;  // hand it out despite the pause
    }
  };
  h.drain();
  std::set<std::string> ids;
  for (auto& m : h.sink.written) ids.insert(m.id);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(extra));
  EXPECT_EQ(h.sink.written.size(), static_cast<std::size_t>(extra));
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], extra);
}

TEST(Worker, RevokedPartitionDuringRetryIsDroppedAndReadAgain) {
  Harness h;
  for (int i = 0; i < 4; ++i) h.source.add(i % 2, stream::encode_record(message(i)));
  h.sink.failures_left = 2;
  bool revoked = false;
  h.source.on_poll = [&](FakeSource& s) {
    if (s.paused && !revoked) {
      revoked = true;
      s.revoke(1);  // the group took partition 1 away (and gave it back: position rewinds)
    }
  };
  h.drain();
  // Partition 0's records were written once by the retried batch; partition 1's were dropped
  // uncommitted and read again from the committed offset, then written.
  std::map<std::string, int> times;
  for (auto& m : h.sink.written) ++times[m.id];
  EXPECT_EQ(times.size(), 4u);
  for (auto& [id, n] : times) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 2);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 1})], 2);
  // The first commit (after the retries) must not name the revoked partition.
  ASSERT_FALSE(h.source.commits.empty());
  EXPECT_FALSE(h.source.commits[0].contains(TopicPartition{kTopic, 1}));
  EXPECT_GE(h.w().counts().dropped_on_revoke, 2u);
}

TEST(Worker, AllRevokedEndsTheRetryAndResumes) {
  Harness h;
  h.source.add(0, stream::encode_record(message(0)));
  h.sink.failures_left = 1000;
  h.source.on_poll = [&](FakeSource& s) {
    if (s.paused) {
      s.revoke(0);
      s.on_poll = nullptr;
    }
  };
  EXPECT_TRUE(h.w().run_once());
  EXPECT_FALSE(h.source.paused);
  EXPECT_TRUE(h.source.commits.empty());
  EXPECT_LE(h.sink.calls, 2);
}

TEST(Worker, StopDuringRetryLeavesTheBatchUncommitted) {
  Harness h;
  h.source.add(0, stream::encode_record(message(0)));
  h.sink.failures_left = 1000;
  h.sink.on_write = [&] {
    if (h.sink.calls == 3) h.w().stop();
  };
  EXPECT_TRUE(h.w().run_once());
  EXPECT_EQ(h.sink.calls, 3);
  EXPECT_TRUE(h.source.commits.empty());
  EXPECT_FALSE(h.source.paused);
}

TEST(Worker, StopFinishesTheCurrentBatch) {
  Harness h;
  for (int i = 0; i < 5; ++i) h.source.add(0, stream::encode_record(message(i)));
  h.sink.on_write = [&] { h.w().stop(); };
  h.w().run();  // returns after the batch in progress
  EXPECT_EQ(h.sink.written.size(), 5u);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 5);
}

TEST(Worker, CommitFailureIsCountedAndRecordsAreWrittenAgainIdempotently) {
  Harness h;
  h.source.add(0, stream::encode_record(message(0)));
  h.source.fail_commit = true;
  h.drain();
  EXPECT_EQ(h.w().counts().commit_errors, 1u);
  EXPECT_TRUE(h.source.committed.empty());
  // After a restart the record is read from the (old) committed offset and written again.
  h.source.fail_commit = false;
  h.source.position[0] = 0;
  h.drain();
  EXPECT_EQ(h.sink.written.size(), 2u);
  EXPECT_EQ(h.sink.written[0].id, h.sink.written[1].id);
  EXPECT_EQ(h.source.committed[(TopicPartition{kTopic, 0})], 1);
}

TEST(Worker, LagGaugeFollowsTheSource) {
  struct LagSource : FakeSource {
    std::int64_t lag() override { return 42; }
  };
  LagSource source;
  FakeDeadLetters dlq;
  FakeSink sink;
  metrics::Registry registry;
  Worker w(source, dlq, sink, registry, fast());
  w.run_once();
  EXPECT_NE(registry.serialize().find("chat_worker_consumer_lag_messages 42"), std::string::npos);
}

// --- configuration ---------------------------------------------------------------------------

TEST(WorkerConfig, DefaultsAndRequiredSettings) {
  const char* argv[] = {"chat-worker"};
  auto r = load_worker_config(1, argv, {{"KAFKA_BROKERS", "k:9092"}, {"MONGODB_URI", "mongodb://m/chat"}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.topic, "chat-messages");
  EXPECT_EQ(r->config.group, "chat-worker");
  EXPECT_EQ(r->config.dlq_topic, "chat-messages.dlq");
  EXPECT_EQ(r->config.metrics_port, 9400);
  EXPECT_EQ(r->config.batch_max, 500u);
  EXPECT_EQ(r->config.batch_wait_ms, 20);

  auto missing = load_worker_config(1, argv, {{"MONGODB_URI", "mongodb://m/chat"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.err().message.find("KAFKA_BROKERS"), std::string::npos);
  auto no_mongo = load_worker_config(1, argv, {{"KAFKA_BROKERS", "k:9092"}});
  ASSERT_FALSE(no_mongo.ok());
  EXPECT_NE(no_mongo.err().message.find("MONGODB_URI"), std::string::npos);
}

TEST(WorkerConfig, FlagsOverrideEnvironment) {
  const char* argv[] = {"chat-worker", "--kafka-topic", "t1", "--batch-max=7", "--metrics-port", "0"};
  auto r = load_worker_config(6, argv,
                              {{"KAFKA_BROKERS", "k:9092"}, {"MONGODB_URI", "mongodb://m"},
                               {"KAFKA_TOPIC", "env-topic"}, {"BATCH_MAX", "9"},
                               {"KAFKA_GROUP", "g2"}, {"KAFKA_USERNAME", "u"},
                               {"KAFKA_PASSWORD", "p"}});
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->config.topic, "t1");
  EXPECT_EQ(r->config.dlq_topic, "t1.dlq");
  EXPECT_EQ(r->config.batch_max, 7u);
  EXPECT_EQ(r->config.metrics_port, 0);
  EXPECT_EQ(r->config.group, "g2");
  EXPECT_EQ(r->config.username, "u");
}

TEST(WorkerConfig, BadValuesNameTheSetting) {
  const std::map<std::string, std::string> env{{"KAFKA_BROKERS", "k"}, {"MONGODB_URI", "m"}};
  const char* a1[] = {"w", "--batch-max", "0"};
  auto r1 = load_worker_config(3, a1, env);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.err().message.find("--batch-max/BATCH_MAX"), std::string::npos);
  const char* a2[] = {"w", "--nope", "1"};
  EXPECT_FALSE(load_worker_config(3, a2, env).ok());
  const char* a3[] = {"w", "--metrics-port", "70000"};
  EXPECT_FALSE(load_worker_config(3, a3, env).ok());
  auto env2 = env;
  env2["KAFKA_USERNAME"] = "u";  // without a password
  const char* a4[] = {"w"};
  EXPECT_FALSE(load_worker_config(1, a4, env2).ok());
  const char* a5[] = {"w", "--help"};
  auto help = load_worker_config(2, a5, {});
  ASSERT_TRUE(help.ok());
  EXPECT_TRUE(help->help);
  EXPECT_NE(worker_help_text().find("KAFKA_DLQ_TOPIC"), std::string::npos);
}

}  // namespace
