// ClusterStore: acks after the log's ack, history merged with messages not yet stored, and
// idempotent retries that can never ack a message that was not stored.
#include "cluster/cluster_store.hpp"

#include <gtest/gtest.h>

#include <deque>

#include "core/object_id.hpp"
#include "fakes/fake_store.hpp"

namespace chat::cluster {
namespace {

/// A log whose acknowledgements the test gives by hand.
class ManualLog final : public stream::MessageLog {
 public:
  struct Pending {
    store::Message m;
    Done done;
  };
  void append(const store::Message& m, Done done) override {
    appended.push_back(m);
    pending.push_back({m, std::move(done)});
  }
  result<void> ping() override { return {}; }
  void flush(std::chrono::milliseconds) override { flushed = true; }

  void ack_next(result<void> r = {}) {
    ASSERT_FALSE(pending.empty());
    auto p = std::move(pending.front());
    pending.pop_front();
    p.done(std::move(r));
  }

  std::vector<store::Message> appended;
  std::deque<Pending> pending;
  bool flushed = false;
};

/// Only claim() matters to the store; it answers from a map, or fails when `down`.
class ClaimBus final : public bus::Bus {
 public:
  void on_user_event(EventHandler) override {}
  void on_presence(PresenceHandler) override {}
  void start() override {}
  void stop() override {}
  void publish(bus::UserEvent) override {}
  void user_connected(const std::string&) override {}
  void user_disconnected(const std::string&) override {}
  const Presence& presence() const override { return presence_; }
  bool ready() const override { return !down; }
  void claim(std::string key, std::string value, std::chrono::milliseconds, ClaimCallback cb) override {
    if (down) return cb(error{errc::unavailable, "redis down"});
    auto [it, inserted] = keys.emplace(key, value);
    if (inserted) return cb(std::optional<std::string>{});
    cb(std::optional<std::string>{it->second});
  }
  std::unique_ptr<ratelimit::RateLimiter> rate_limiter(std::string, std::uint32_t, std::int64_t) override {
    return nullptr;
  }
  std::map<std::string, std::string> keys;
  bool down = false;

 private:
  LocalPresence presence_;
};

const std::string kAlice = "aaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kBob = "bbbbbbbbbbbbbbbbbbbbbbbb";

store::Message message(std::string text, std::string client_id = "") {
  store::Message m;
  m.id = new_object_id();
  m.conversation_id = store::direct_conversation_id(kAlice, kBob);
  m.sender_id = kAlice;
  m.receiver_id = kBob;
  m.text = std::move(text);
  m.client_msg_id = std::move(client_id);
  m.created_at = m.updated_at = 1'700'000'000'000;
  return m;
}

struct Captured {
  std::optional<result<store::Appended>> r;
  store::Store::AppendCallback cb() {
    return [this](result<store::Appended> x) { r.emplace(std::move(x)); };
  }
};

std::vector<std::string> page_texts(store::Store& s, std::string before = "", std::size_t limit = 50) {
  auto p = s.conversation_page(store::direct_conversation_id(kAlice, kBob), before, limit);
  EXPECT_TRUE(p.ok());
  std::vector<std::string> out;
  for (auto& m : p->messages) out.push_back(m.text);
  return out;
}

TEST(ClusterStore, AcksOnlyAfterTheLogAcknowledged) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  Captured c;
  store.append_message(message("hi"), c.cb());
  EXPECT_FALSE(c.r) << "acked before the broker answered";
  ASSERT_EQ(log.appended.size(), 1u);
  log.ack_next();
  ASSERT_TRUE(c.r && c.r->ok());
  EXPECT_FALSE((*c.r)->duplicate);
  EXPECT_EQ((*c.r)->message.text, "hi");
}

TEST(ClusterStore, AProduceFailureIsTheSendersErrorAndNeverInHistory) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  Captured c;
  store.append_message(message("lost"), c.cb());
  log.ack_next(error{errc::unavailable, "broker down"});
  ASSERT_TRUE(c.r);
  ASSERT_FALSE(c.r->ok());
  EXPECT_EQ(c.r->code(), errc::unavailable);
  EXPECT_TRUE(page_texts(store).empty());
}

TEST(ClusterStore, HistoryHasAcknowledgedMessagesBeforeTheWorkerStoresThem) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  // "one" is already in the database (the worker wrote it); "two" is only acknowledged.
  auto one = message("one");
  base.append_message(one, [](auto) {});
  Captured c;
  store.append_message(message("two"), c.cb());
  EXPECT_EQ(page_texts(store), std::vector<std::string>{"one"}) << "unacknowledged message shown";
  log.ack_next();
  EXPECT_EQ(page_texts(store), (std::vector<std::string>{"one", "two"}));
  // Once the worker stores it, it is there once.
  base.append_message(log.appended.back(), [](auto) {});
  EXPECT_EQ(page_texts(store), (std::vector<std::string>{"one", "two"}));
}

TEST(ClusterStore, MergedPagesKeepTheLimitAndPaginate) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto m = message("m" + std::to_string(i));
    ids.push_back(m.id);
    if (i % 2 == 0) {
      base.append_message(m, [](auto) {});  // stored
    } else {
      Captured c;
      store.append_message(m, c.cb());  // only acknowledged
      log.ack_next();
    }
  }
  auto p = store.conversation_page(store::direct_conversation_id(kAlice, kBob), "", 3);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->messages.size(), 3u);
  EXPECT_TRUE(p->has_more);
  EXPECT_EQ(p->messages.front().text, "m2");
  EXPECT_EQ(p->messages.back().text, "m4");
  EXPECT_EQ(page_texts(store, p->messages.front().id, 3), (std::vector<std::string>{"m0", "m1"}));
}

TEST(ClusterStore, UnstoredOlderMessagesStillMakeANextPage) {
  // The database has the two newest (stored by a worker) but not the oldest yet.
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  for (int i = 0; i < 3; ++i) {
    Captured c;
    store.append_message(message("m" + std::to_string(i)), c.cb());
    log.ack_next();
    if (i > 0) base.append_message(log.appended.back(), [](auto) {});
  }
  auto p = store.conversation_page(store::direct_conversation_id(kAlice, kBob), "", 2);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->messages.size(), 2u);
  EXPECT_EQ(p->messages.front().text, "m1");
  EXPECT_TRUE(p->has_more) << "m0 is only in the window, and still older";
  EXPECT_EQ(page_texts(store, p->messages.front().id, 2), std::vector<std::string>{"m0"});
}

TEST(ClusterStore, ARetryOfAnAcknowledgedSendIsADuplicateAnsweredAtOnce) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  Captured first, retry;
  store.append_message(message("hi", "c-1"), first.cb());
  log.ack_next();
  store.append_message(message("hi", "c-1"), retry.cb());
  ASSERT_TRUE(retry.r && retry.r->ok());
  EXPECT_TRUE((*retry.r)->duplicate);
  EXPECT_EQ((*retry.r)->message.id, (*first.r)->message.id);
  EXPECT_EQ(log.appended.size(), 1u) << "already durable: nothing to produce";
  EXPECT_EQ(page_texts(store).size(), 1u);
}

TEST(ClusterStore, ADuplicatesCallbackMayUseTheStore) {
  // The ack of a duplicate runs the caller's code: it must not hold the store's lock (a callback
  // reading history would deadlock).
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  Captured first;
  store.append_message(message("hi", "c-9"), first.cb());
  log.ack_next();
  std::size_t seen = 0;
  store.append_message(message("hi", "c-9"), [&](result<store::Appended> r) {
    ASSERT_TRUE(r.ok());
    seen = store.recent_size() + page_texts(store).size();
  });
  EXPECT_EQ(seen, 2u);
}

TEST(ClusterStore, ARetryAfterAFailedSendIsProducedAgainWithTheFirstId) {
  // A delivery timeout does not prove the record was not stored: reusing the id lets the
  // worker's upsert keep one copy whichever attempt made it.
  fakes::FakeStore base;
  ManualLog log;
  ClusterStore store(base, log, nullptr, {});
  Captured first, retry;
  store.append_message(message("hi", "c-2"), first.cb());
  log.ack_next(error{errc::unavailable, "timeout"});
  store.append_message(message("hi", "c-2"), retry.cb());
  EXPECT_FALSE(retry.r) << "acked before the broker has it";
  log.ack_next();
  ASSERT_TRUE(retry.r && retry.r->ok());
  EXPECT_FALSE((*retry.r)->duplicate) << "the first attempt was never delivered: fan it out";
  EXPECT_EQ(log.appended[1].id, log.appended[0].id);
}

TEST(ClusterStore, IdempotencyKeysAreClaimedClusterWideThroughTheBus) {
  fakes::FakeStore base;
  ManualLog log;
  ClaimBus bus;
  // Two instances sharing one Redis: the retry goes through the second.
  ClusterStore a(base, log, &bus, {}), b(base, log, &bus, {});
  Captured first, retry;
  a.append_message(message("hi", "c-3"), first.cb());
  log.ack_next();
  ASSERT_EQ(bus.keys.size(), 1u);
  EXPECT_EQ(bus.keys.begin()->first, "chat:cmid:{" + kAlice + "}:c-3");
  b.append_message(message("hi", "c-3"), retry.cb());
  log.ack_next();
  ASSERT_TRUE(retry.r && retry.r->ok());
  EXPECT_EQ((*retry.r)->message.id, (*first.r)->message.id);
  EXPECT_EQ(log.appended[1].id, log.appended[0].id) << "re-produced with the original id";
  EXPECT_EQ((*retry.r)->message.created_at, (*first.r)->message.created_at);

  // Redis down: each instance still deduplicates its own retries.
  bus.down = true;
  Captured x, y;
  b.append_message(message("yo", "c-4"), x.cb());
  log.ack_next();
  b.append_message(message("yo", "c-4"), y.cb());
  ASSERT_TRUE(y.r && y.r->ok());
  EXPECT_TRUE((*y.r)->duplicate);
  EXPECT_EQ((*y.r)->message.id, (*x.r)->message.id);
}

TEST(ClusterStore, MarkReadMayReachMessagesNotStoredYet) {
  fakes::FakeStore base;
  ManualLog log;
  std::string seen_newest;
  ClusterStoreOptions opts;
  opts.mark_read_known = [&](const std::vector<store::ReadMark>& marks,
                             const std::vector<std::string>& newest) {
    seen_newest = newest.at(0);
    return std::vector<result<std::string>>{marks.at(0).up_to_id};
  };
  ClusterStore store(base, log, nullptr, opts);
  Captured c;
  store.append_message(message("x"), c.cb());
  log.ack_next();
  auto r = store.mark_read(store::direct_conversation_id(kAlice, kBob), kBob, (*c.r)->message.id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen_newest, (*c.r)->message.id);
}

TEST(ClusterStore, MarkReadAcceptsARecentIdSentThroughAnotherInstanceButNotAFutureOne) {
  fakes::FakeStore base;
  ManualLog log;
  std::string seen_newest = "unset";
  ClusterStoreOptions opts;
  opts.mark_read_known = [&](const std::vector<store::ReadMark>& marks,
                             const std::vector<std::string>& newest) {
    seen_newest = newest.at(0);
    return std::vector<result<std::string>>{marks.at(0).up_to_id};
  };
  ClusterStore store(base, log, nullptr, opts);
  const auto conv = store::direct_conversation_id(kAlice, kBob);
  const std::string recent = new_object_id();  // made "now" elsewhere, unknown here
  ASSERT_TRUE(store.mark_read(conv, kBob, recent).ok());
  EXPECT_EQ(seen_newest, recent);
  ASSERT_TRUE(store.mark_read(conv, kBob, "ffffffff0000000000000000").ok());
  EXPECT_EQ(seen_newest, "") << "an id from the future must stay clamped by the database";
  ASSERT_TRUE(store.mark_read(conv, kBob, "000000010000000000000000").ok());
  EXPECT_EQ(seen_newest, "") << "an old id must already be stored";
}

TEST(ClusterStore, ManyReadPositionsAreOneCallWithEachMarksNewestKnownMessage) {
  fakes::FakeStore base;
  ManualLog log;
  std::vector<std::vector<std::string>> calls;
  ClusterStoreOptions opts;
  opts.mark_read_known = [&](const std::vector<store::ReadMark>& marks,
                             const std::vector<std::string>& newest) {
    calls.push_back(newest);
    std::vector<result<std::string>> out;
    for (const auto& m : marks) out.emplace_back(m.up_to_id);
    return out;
  };
  ClusterStore store(base, log, nullptr, opts);
  Captured c;
  store.append_message(message("x"), c.cb());  // alice → bob, acknowledged, not stored
  log.ack_next();
  const std::string stored = (*c.r)->message.id;
  const auto ab = store::direct_conversation_id(kAlice, kBob);
  const std::string carol = "cccccccccccccccccccccccc";
  const auto other = store::direct_conversation_id(kAlice, carol);
  const std::string recent = new_object_id();
  auto r = store.mark_read_many({{ab, kBob, stored},
                                 {other, carol, recent},
                                 {other, carol, "000000010000000000000000"}});
  ASSERT_EQ(calls.size(), 1u) << "one database call for the batch";
  EXPECT_EQ(calls[0], (std::vector<std::string>{stored, recent, ""}));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].value(), recent);
}

TEST(ClusterStore, TheWindowOfUnstoredMessagesIsBounded) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStoreOptions opts;
  opts.max_recent = 3;
  ClusterStore store(base, log, nullptr, opts);
  for (int i = 0; i < 5; ++i) {
    Captured c;
    store.append_message(message("m" + std::to_string(i), "k" + std::to_string(i)), c.cb());
    log.ack_next();
  }
  EXPECT_EQ(store.recent_size(), 3u);
  EXPECT_EQ(page_texts(store), (std::vector<std::string>{"m2", "m3", "m4"}));
  store.flush();
  EXPECT_TRUE(log.flushed);
}

// The window keeps one copy of each message for its three indexes (by arrival, by conversation,
// by idempotency key): pruning one conversation's messages leaves the others' pages whole, and a
// pruned key is forgotten while a kept one still answers with the first message.
TEST(ClusterStore, PruningSharesNothingBetweenConversations) {
  fakes::FakeStore base;
  ManualLog log;
  ClusterStoreOptions opts;
  opts.max_recent = 3;
  ClusterStore store(base, log, nullptr, opts);
  const std::string carol = "cccccccccccccccccccccccc";
  auto to_carol = [&](std::string text, std::string key) {
    store::Message m = message(std::move(text), std::move(key));
    m.receiver_id = carol;
    m.conversation_id = store::direct_conversation_id(kAlice, carol);
    return m;
  };
  Captured c0, c1, c2, c3;
  store.append_message(message("b0", "k0"), c0.cb());
  log.ack_next();
  store.append_message(to_carol("c1", "k1"), c1.cb());
  log.ack_next();
  store.append_message(message("b2", "k2"), c2.cb());
  log.ack_next();
  store.append_message(to_carol("c3", "k3"), c3.cb());  // prunes b0
  log.ack_next();
  EXPECT_EQ(store.recent_size(), 3u);
  EXPECT_EQ(page_texts(store), (std::vector<std::string>{"b2"}));
  auto carol_page = store.conversation_page(store::direct_conversation_id(kAlice, carol), "", 50);
  ASSERT_TRUE(carol_page.ok());
  ASSERT_EQ(carol_page->messages.size(), 2u);
  EXPECT_EQ(carol_page->messages[0].text, "c1");
  EXPECT_EQ(carol_page->messages[1].text, "c3");
  EXPECT_EQ(carol_page->messages[1].id, c3.r->value().message.id);

  // k1 is still in the window: a retry is the first message, answered at once.
  Captured again;
  store.append_message(to_carol("c1 retried", "k1"), again.cb());
  ASSERT_TRUE(again.r.has_value() && again.r->ok());
  EXPECT_TRUE(again.r->value().duplicate);
  EXPECT_EQ(again.r->value().message.id, c1.r->value().message.id);
  EXPECT_EQ(again.r->value().message.text, "c1");
  // k0 was pruned with b0: a retry is produced as a new message.
  const std::size_t appended = log.appended.size();
  Captured late;
  store.append_message(message("b0 retried", "k0"), late.cb());
  EXPECT_FALSE(late.r.has_value());
  ASSERT_EQ(log.appended.size(), appended + 1);
  EXPECT_EQ(log.appended.back().text, "b0 retried");
}

}  // namespace
}  // namespace chat::cluster
