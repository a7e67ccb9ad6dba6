#include "store/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/object_id.hpp"
#include "core/sched.hpp"
#include "store/message_journal.hpp"
#include "store/paced_vfs.hpp"
#include "store/store.hpp"
#include "unit/store/read_state_contract.hpp"
#include "unit/store/store_fixtures.hpp"

namespace chat::store {
namespace {

namespace fs = std::filesystem;
using namespace fixtures;
using namespace std::chrono_literals;

std::string hex_id(std::uint32_t n) { return make_object_id(0x65000000u + n, n); }

// Blocks the writer thread inside a callback until release() is called, so a test can decide
// what is queued together.
class WriterGate {
 public:
  void block(Store& store, const std::string& sender, const std::string& receiver) {
    auto entered = std::make_shared<std::promise<void>>();
    auto entered_f = entered->get_future();
    auto gate = gate_.get_future().share();
    store.append_message(make_message(sender, receiver, "gate"),
                         [entered, gate, this](result<Appended> r) {
                           gate_result_ok_ = r.ok();
                           entered->set_value();
                           gate.wait();
                         });
    entered_f.wait();
  }
  void release() { gate_.set_value(); }
  bool gate_message_ok() const { return gate_result_ok_; }

 private:
  std::promise<void> gate_;
  std::atomic<bool> gate_result_ok_{false};
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> open_store(SqliteOptions opts = {}) {
    if (opts.path.empty()) opts.path = db_path();
    auto r = SqliteStore::open(opts);
    if (!r.ok()) {
      ADD_FAILURE() << "open failed: " << r.err().message;
      return nullptr;
    }
    return std::move(r).value();
  }
  std::string db_path() const { return (dir_.path() / "sub" / "chat.sqlite").string(); }

  /// A store whose writer indexes journaled messages only when flushed or when a read position
  /// waits for them (its interval is ten minutes): what a test appends stays unindexed.
  std::unique_ptr<SqliteStore> open_store_indexing_on_demand() {
    SqliteOptions opts;
    opts.path = db_path();
    opts.index_interval_ms = 600'000;
    return open_store(opts);
  }

  /// A store in `dir_/name` with alice as a user and `sent` (20,000 messages from bob to her)
  /// journaled and not indexed, which its next flush indexes in one transaction unless a
  /// synchronous write cuts it: the index-cut tests' start. `opts` gives the other options and
  /// gets the path and the index settings used (to reopen the same store).
  std::unique_ptr<SqliteStore> open_store_with_a_large_backlog(SqliteOptions& opts,
                                                               const std::string& name,
                                                               std::vector<Message>& sent) {
    opts.path = (dir_.path() / name / "chat.sqlite").string();
    opts.index_interval_ms = 600'000;
    opts.index_batch = 100'000;
    auto store = open_store(opts);
    if (!store) return nullptr;
    EXPECT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
    for (int i = 0; i < 20000; ++i) sent.push_back(make_message(bob_, alice_, "m" + std::to_string(i)));
    EXPECT_EQ(append_all_and_wait(*store, sent), 0u);
    return store;
  }

  TempDir dir_;
  const std::string alice_ = hex_id(1);
  const std::string bob_ = hex_id(2);
  const std::string carol_ = hex_id(3);
};

// --- conversation ids -------------------------------------------------------------------------

TEST(DirectConversationId, SymmetricNormalisedAndDistinct) {
  const std::string a = "65f0a1b2c3d4e5f601234567";
  const std::string b = "65f0a1b2c3d4e5f60123456a";
  EXPECT_EQ(direct_conversation_id(a, b), direct_conversation_id(b, a));
  EXPECT_EQ(direct_conversation_id(a, b), "d:" + a + ":" + b);
  EXPECT_EQ(direct_conversation_id("65F0A1B2C3D4E5F601234567", b), direct_conversation_id(a, b));
  EXPECT_NE(direct_conversation_id(a, b), direct_conversation_id(a, "65f0a1b2c3d4e5f60123456b"));
  EXPECT_NE(direct_conversation_id(a, b), direct_conversation_id(a, a));
}

// --- users ------------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, CreateUserAndLookUpByIdAndEmail) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->ping().ok());
  const User u = make_user(alice_, "alice@example.com", "Alice");
  auto created = store->create_user(u);
  ASSERT_TRUE(created.ok()) << created.err().message;
  EXPECT_EQ(created->id, alice_);

  auto by_id = store->user_by_id(alice_);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->email, "alice@example.com");
  EXPECT_EQ(by_id->password_hash, u.password_hash);
  EXPECT_EQ(by_id->full_name, "Alice");
  EXPECT_EQ(by_id->profile_picture, "");
  EXPECT_EQ(by_id->bio, "bio of Alice");
  EXPECT_EQ(by_id->created_at, u.created_at);
  EXPECT_EQ(by_id->updated_at, u.updated_at);

  auto by_email = store->user_by_email("alice@example.com");
  ASSERT_TRUE(by_email.ok());
  EXPECT_EQ(by_email->id, alice_);

  auto missing = store->user_by_id(bob_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), errc::not_found);
  auto missing_email = store->user_by_email("nobody@example.com");
  ASSERT_FALSE(missing_email.ok());
  EXPECT_EQ(missing_email.code(), errc::not_found);
  // Stored as given: the caller normalises.
  EXPECT_EQ(store->user_by_email("ALICE@example.com").code(), errc::not_found);
}

TEST_F(SqliteStoreTest, DuplicateEmailIsAlreadyExists) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "same@example.com", "Alice")).ok());
  auto dup = store->create_user(make_user(bob_, "same@example.com", "Bob"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.code(), errc::already_exists);
  EXPECT_EQ(dup.err().message, "User account already exists with this email");
  EXPECT_EQ(store->user_by_id(bob_).code(), errc::not_found);
  EXPECT_EQ(store->user_by_email("same@example.com")->full_name, "Alice");
  // The store still writes after a failed job.
  EXPECT_TRUE(store->create_user(make_user(bob_, "bob@example.com", "Bob")).ok());
}

TEST_F(SqliteStoreTest, UsersExceptOrdersByNameCaseInsensitiveAndExcludes) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(hex_id(10), "c@x.io", "carol")).ok());
  ASSERT_TRUE(store->create_user(make_user(hex_id(11), "b@x.io", "Bob")).ok());
  ASSERT_TRUE(store->create_user(make_user(hex_id(12), "a@x.io", "alice")).ok());
  ASSERT_TRUE(store->create_user(make_user(hex_id(13), "d@x.io", "Dave")).ok());
  ASSERT_TRUE(store->create_user(make_user(hex_id(14), "z@x.io", "Zed")).ok());

  auto others = store->users_except(hex_id(13));
  ASSERT_TRUE(others.ok());
  std::vector<std::string> names;
  for (const auto& u : *others) names.push_back(u.full_name);
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "Bob", "carol", "Zed"}));

  auto all = store->users_except(hex_id(99));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
}

TEST_F(SqliteStoreTest, UpdateUserAppliesOnlyPresentFields) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());

  UserPatch bio_only;
  bio_only.bio = "new bio";
  auto r = store->update_user(alice_, bio_only, 1800000000000);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->bio, "new bio");
  EXPECT_EQ(r->full_name, "Alice");
  EXPECT_EQ(r->profile_picture, "");
  EXPECT_EQ(r->updated_at, 1800000000000);
  EXPECT_EQ(r->created_at, 1700000000000);

  UserPatch two;
  two.full_name = "Alice Liddell";
  two.profile_picture = "https://img.example/a.png";
  r = store->update_user(alice_, two, 1800000000001);
  ASSERT_TRUE(r.ok());
  auto stored = store->user_by_id(alice_);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->full_name, "Alice Liddell");
  EXPECT_EQ(stored->profile_picture, "https://img.example/a.png");
  EXPECT_EQ(stored->bio, "new bio");
  EXPECT_EQ(stored->updated_at, 1800000000001);
  EXPECT_EQ(stored->email, "alice@example.com");

  UserPatch clear;
  clear.bio = "";
  r = store->update_user(alice_, clear, 1800000000002);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(store->user_by_id(alice_)->bio, "");
  EXPECT_EQ(store->user_by_id(alice_)->full_name, "Alice Liddell");

  auto missing = store->update_user(bob_, two, 1);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), errc::not_found);
}

TEST_F(SqliteStoreTest, SetPasswordHash) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
  ASSERT_TRUE(store->set_password_hash(alice_, "$2b$10$legacyhash").ok());
  EXPECT_EQ(store->user_by_id(alice_)->password_hash, "$2b$10$legacyhash");
  EXPECT_EQ(store->user_by_email("alice@example.com")->password_hash, "$2b$10$legacyhash");
  auto missing = store->set_password_hash(bob_, "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), errc::not_found);
}

// --- messages ---------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, ConversationPagesOf50_50_20) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<Message> sent;
  for (int i = 0; i < 120; ++i) {
    Message m = make_message(i % 3 ? alice_ : bob_, i % 3 ? bob_ : alice_, "m" + std::to_string(i));
    auto r = append_and_wait(*store, m);
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_FALSE(r->duplicate);
    EXPECT_EQ(r->message.id, m.id);
    sent.push_back(m);
  }
  const std::string conv = direct_conversation_id(alice_, bob_);

  auto p1 = store->conversation_page(conv, "", 50);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->messages.size(), 50u);
  EXPECT_TRUE(p1->has_more);
  EXPECT_EQ(p1->messages.front().id, sent[70].id);
  EXPECT_EQ(p1->messages.back().id, sent[119].id);

  auto p2 = store->conversation_page(conv, p1->messages.front().id, 50);
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2->messages.size(), 50u);
  EXPECT_TRUE(p2->has_more);
  EXPECT_EQ(p2->messages.front().id, sent[20].id);
  EXPECT_EQ(p2->messages.back().id, sent[69].id);

  auto p3 = store->conversation_page(conv, p2->messages.front().id, 50);
  ASSERT_TRUE(p3.ok());
  ASSERT_EQ(p3->messages.size(), 20u);
  EXPECT_FALSE(p3->has_more);
  EXPECT_EQ(p3->messages.front().id, sent[0].id);

  // Every message once, oldest → newest, all fields round-tripped.
  std::vector<Message> all = p3->messages;
  all.insert(all.end(), p2->messages.begin(), p2->messages.end());
  all.insert(all.end(), p1->messages.begin(), p1->messages.end());
  ASSERT_EQ(all.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(all[i].id, sent[i].id);
    EXPECT_EQ(all[i].conversation_id, conv);
    EXPECT_EQ(all[i].sender_id, sent[i].sender_id);
    EXPECT_EQ(all[i].receiver_id, sent[i].receiver_id);
    EXPECT_EQ(all[i].text, sent[i].text);
    EXPECT_EQ(all[i].image, sent[i].image);
    EXPECT_EQ(all[i].client_msg_id, "");
    EXPECT_EQ(all[i].created_at, sent[i].created_at);
    EXPECT_EQ(all[i].updated_at, sent[i].updated_at);
    if (i > 0) {
      EXPECT_LT(all[i - 1].id, all[i].id);
    }
  }

  // Limits at the edges.
  auto exact = store->conversation_page(conv, "", 120);
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->messages.size(), 120u);
  EXPECT_FALSE(exact->has_more);
  auto one_short = store->conversation_page(conv, "", 119);
  EXPECT_EQ(one_short->messages.size(), 119u);
  EXPECT_TRUE(one_short->has_more);
  EXPECT_EQ(one_short->messages.front().id, sent[1].id);
  auto huge = store->conversation_page(conv, "", std::numeric_limits<std::size_t>::max());
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(huge->messages.size(), 120u);
  EXPECT_FALSE(huge->has_more);
  auto zero = store->conversation_page(conv, "", 0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->messages.empty());
  EXPECT_TRUE(zero->has_more);
  auto one = store->conversation_page(conv, sent[1].id, 1);
  ASSERT_EQ(one->messages.size(), 1u);
  EXPECT_EQ(one->messages[0].id, sent[0].id);
  EXPECT_FALSE(one->has_more);

  // Unknown before ids: bounds by comparison, whether or not they exist.
  auto after_all = store->conversation_page(conv, make_object_id(0xffffffffu, 0xffffff), 50);
  ASSERT_TRUE(after_all.ok());
  EXPECT_EQ(ids_of(after_all->messages), ids_of(p1->messages));
  auto before_all = store->conversation_page(conv, "000000000000000000000000", 50);
  ASSERT_TRUE(before_all.ok());
  EXPECT_TRUE(before_all->messages.empty());
  EXPECT_FALSE(before_all->has_more);

  auto other = store->conversation_page(direct_conversation_id(alice_, carol_), "", 50);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->messages.empty());
  EXPECT_FALSE(other->has_more);
  EXPECT_FALSE(store->conversation_page(direct_conversation_id(alice_, carol_), "", 0)->has_more);
}

TEST_F(SqliteStoreTest, BothMembersSeeTheSameConversation) {
  auto store = open_store();
  ASSERT_TRUE(store);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(append_and_wait(*store, make_message(alice_, bob_, "ab" + std::to_string(i))).ok());
    ASSERT_TRUE(append_and_wait(*store, make_message(bob_, alice_, "ba" + std::to_string(i))).ok());
  }
  ASSERT_TRUE(append_and_wait(*store, make_message(alice_, carol_, "ac")).ok());

  auto from_alice = store->conversation_page(direct_conversation_id(alice_, bob_), "", 100);
  auto from_bob = store->conversation_page(direct_conversation_id(bob_, alice_), "", 100);
  ASSERT_TRUE(from_alice.ok());
  ASSERT_TRUE(from_bob.ok());
  ASSERT_EQ(from_alice->messages.size(), 20u);
  EXPECT_EQ(ids_of(from_alice->messages), ids_of(from_bob->messages));
  for (const auto& m : from_alice->messages) EXPECT_NE(m.text, "ac");
  EXPECT_EQ(store->conversation_page(direct_conversation_id(carol_, alice_), "", 100)
                ->messages.size(),
            1u);
  store->flush();

  // The first message created the conversation and its two members.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT c.kind, group_concat(m.user_id, ',') FROM conversations c "
                               "JOIN (SELECT * FROM conversation_members ORDER BY user_id) m "
                               "ON m.conversation_id = c.id WHERE c.id = ?1 GROUP BY c.id",
                               -1, &s, nullptr),
            SQLITE_OK);
  const std::string conv = direct_conversation_id(alice_, bob_);
  sqlite3_bind_text(s, 1, conv.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "direct");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 1))),
            alice_ + "," + bob_);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

// Append callbacks run on the journal thread when no executor is set: they see its slice.
std::chrono::microseconds journal_thread_slice_seen(Store& store, const Message& m) {
  std::promise<std::chrono::microseconds> seen;
  store.append_message(m, [&seen](result<Appended>) { seen.set_value(current_time_slice()); });
  return seen.get_future().get();
}

TEST_F(SqliteStoreTest, TheJournalThreadAsksForTheConfiguredSlice) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  const auto default_slice = default_time_slice();
  ASSERT_NE(default_slice, 400us);
  {
    SqliteOptions o;
    o.journal_thread_slice = 400us;
    auto store = open_store(o);
    ASSERT_TRUE(store);
    EXPECT_EQ(journal_thread_slice_seen(*store, make_message(alice_, bob_, "a")), 400us);
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(journal_thread_slice_seen(*store, make_message(alice_, bob_, "b")), default_slice);
}

// The slice (sched_getattr's sched_runtime, in µs) and nice value of this process's thread
// named `name`; nullopt while there is none.
struct ThreadSched {
  std::chrono::microseconds slice{0};
  int nice = 0;
};
std::optional<ThreadSched> thread_sched(const std::string& name) {
  struct {  // struct sched_attr, SCHED_ATTR_SIZE_VER1
    std::uint32_t size, policy;
    std::uint64_t flags;
    std::int32_t nice;
    std::uint32_t priority;
    std::uint64_t runtime, deadline, period;
    std::uint32_t util_min, util_max;
  } a{};
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string n;
    if (!std::getline(comm, n) || n != name) continue;
    const auto tid = std::stol(task.path().filename().string());
    if (::syscall(SYS_sched_getattr, tid, &a, sizeof a, 0) != 0) return std::nullopt;
    return ThreadSched{std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::nanoseconds(a.runtime)),
                       a.nice};
  }
  return std::nullopt;
}

// A thread starts with its creator's slice: the indexer and the checkpointer must not run with
// the short one of whoever opened the store (the journal's wake-ups would no longer preempt them).
TEST_F(SqliteStoreTest, TheBackgroundThreadsTakeTheKernelsSliceWhateverTheOpenersIs) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  const auto kernels = default_time_slice();
  ASSERT_NE(kernels, 250us);
  std::unique_ptr<SqliteStore> store;
  std::thread([&] {
    ASSERT_EQ(request_time_slice(250us), 250us);
    store = open_store();
  }).join();
  ASSERT_TRUE(store);
  ASSERT_TRUE(append_and_wait(*store, make_message(alice_, bob_, "a")).ok());
  store->flush();
  for (const char* name : {"store-indexer", "store-checkpnt"}) {
    std::optional<ThreadSched> seen;
    for (int i = 0; i < 200; ++i) {  // the checkpointer sets its own as it starts: up to 2 s
      seen = thread_sched(name);
      if (seen && seen->nice == 10 && seen->slice != 250us) break;
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(seen) << name;
    EXPECT_EQ(seen->slice, kernels) << name;
    EXPECT_EQ(seen->nice, 10) << name;
  }
  // The journal thread, asked for nothing (journal_thread_slice 0), takes the default too.
  EXPECT_EQ(journal_thread_slice_seen(*store, make_message(alice_, bob_, "b")), kernels);
}

TEST_F(SqliteStoreTest, ClientMsgIdMakesAppendIdempotent) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Message first = make_message(alice_, bob_, "hello", "cm-1");
  auto r1 = append_and_wait(*store, first);
  ASSERT_TRUE(r1.ok());
  EXPECT_FALSE(r1->duplicate);

  Message retry = make_message(alice_, bob_, "hello again", "cm-1");
  auto r2 = append_and_wait(*store, retry);
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  EXPECT_TRUE(r2->duplicate);
  EXPECT_EQ(r2->message.id, first.id);
  EXPECT_EQ(r2->message.text, "hello");
  EXPECT_EQ(r2->message.client_msg_id, "cm-1");

  // The key is per sender; an empty key never deduplicates.
  auto r3 = append_and_wait(*store, make_message(bob_, alice_, "from bob", "cm-1"));
  ASSERT_TRUE(r3.ok());
  EXPECT_FALSE(r3->duplicate);
  EXPECT_FALSE(append_and_wait(*store, make_message(alice_, bob_, "x"))->duplicate);
  EXPECT_FALSE(append_and_wait(*store, make_message(alice_, bob_, "x"))->duplicate);

  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 50);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->messages.size(), 4u);
  for (const auto& m : page->messages) EXPECT_NE(m.id, retry.id);
}

TEST_F(SqliteStoreTest, DuplicateInsideOneBatchAndOneCommitPerBatch) {
  auto store = open_store();
  ASSERT_TRUE(store);
  WriterGate gate;
  gate.block(*store, alice_, carol_);

  const std::uint64_t commits_before = store->commits();
  Message a = make_message(alice_, bob_, "first", "same-key");
  Message b = make_message(alice_, bob_, "second", "same-key");
  Message c = make_message(bob_, alice_, "other");
  std::promise<result<Appended>> pa, pb, pc;
  store->append_message(a, [&](result<Appended> r) { pa.set_value(std::move(r)); });
  store->append_message(b, [&](result<Appended> r) { pb.set_value(std::move(r)); });
  store->append_message(c, [&](result<Appended> r) { pc.set_value(std::move(r)); });
  EXPECT_EQ(store->pending_writes(), 3u);
  gate.release();

  auto ra = pa.get_future().get();
  auto rb = pb.get_future().get();
  auto rc = pc.get_future().get();
  ASSERT_TRUE(ra.ok());
  ASSERT_TRUE(rb.ok());
  ASSERT_TRUE(rc.ok());
  EXPECT_TRUE(gate.gate_message_ok());
  EXPECT_FALSE(ra->duplicate);
  EXPECT_TRUE(rb->duplicate);
  EXPECT_EQ(rb->message.id, a.id);
  EXPECT_EQ(rb->message.text, "first");
  EXPECT_FALSE(rc->duplicate);
  // The three jobs queued behind the gate were committed together.
  EXPECT_EQ(store->commits(), commits_before + 1);
  EXPECT_EQ(store->pending_writes(), 0u);

  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 50);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), (std::vector<std::string>{a.id, c.id}));
}

TEST_F(SqliteStoreTest, FailingMessageDoesNotFailItsBatch) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Message original = make_message(alice_, bob_, "original");
  ASSERT_TRUE(append_and_wait(*store, original).ok());

  WriterGate gate;
  gate.block(*store, alice_, carol_);
  Message same_id = make_message(alice_, bob_, "reuses an id");
  same_id.id = original.id;  // primary key violation: a caller bug, not a duplicate
  Message no_receiver = make_message(alice_, bob_, "no receiver");
  no_receiver.receiver_id.clear();
  Message good = make_message(bob_, alice_, "fine");
  std::promise<result<Appended>> p1, p2, p3;
  store->append_message(same_id, [&](result<Appended> r) { p1.set_value(std::move(r)); });
  store->append_message(no_receiver, [&](result<Appended> r) { p2.set_value(std::move(r)); });
  store->append_message(good, [&](result<Appended> r) { p3.set_value(std::move(r)); });
  gate.release();

  auto r1 = p1.get_future().get();
  auto r2 = p2.get_future().get();
  auto r3 = p3.get_future().get();
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.code(), errc::internal);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.code(), errc::invalid_argument);
  ASSERT_TRUE(r3.ok()) << r3.err().message;

  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 50);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->messages.size(), 2u);
  EXPECT_EQ(page->messages[0].text, "original");
  EXPECT_EQ(page->messages[1].text, "fine");
}

// Checkpoints run on their own thread while appends go on, and the WAL stays bounded: a
// passive checkpoint alone may never catch up with a writer that keeps committing (the WAL
// then never restarts), which the writer's own checkpoint past a size limit prevents.
TEST_F(SqliteStoreTest, WalStaysBoundedUnderContinuousWrites) {
  auto store = open_store();
  ASSERT_TRUE(store);
  constexpr int kMessages = 160'000;  // in rounds of 40,000 (the queue holds 65,536)
  std::atomic<int> ok{0};
  std::uintmax_t largest_wal = 0;
  const std::filesystem::path wal = db_path() + "-wal";
  // Many conversations, so that each commit dirties many pages (~160 MB of WAL frames in all).
  for (int i = 0; i < kMessages; ++i) {
    const auto a = hex_id(1000 + static_cast<std::uint32_t>(i % 3000));
    store->append_message(make_message(a, hex_id(9), std::string(200, 'x')), [&](result<Appended> r) {
      if (r.ok()) ++ok;
    });
    if (i % 2000 == 0) {
      std::error_code ec;
      largest_wal = std::max(largest_wal, std::filesystem::file_size(wal, ec));
    }
    if (i % 40'000 == 39'999) store->flush();
  }
  store->flush();
  std::error_code ec;
  largest_wal = std::max(largest_wal, std::filesystem::file_size(wal, ec));
  EXPECT_EQ(ok.load(), kMessages);
  EXPECT_GT(store->checkpoints(), 0u);
  // 8,000 pages before the writer checkpoints itself, plus one commit's frames.
  EXPECT_LT(largest_wal, 64u << 20) << "the WAL grew to " << largest_wal << " bytes";
  // The message journal keeps only what is not indexed yet: its segments are reused, few.
  const std::string journal = SqliteStore::journal_path(db_path());
  std::uintmax_t journal_bytes = 0;
  for (std::size_t n = 0; n < 64; ++n) {
    const auto size = std::filesystem::file_size(MessageJournal::segment_path(journal, n), ec);
    if (!ec) journal_bytes += size;
  }
  EXPECT_LE(journal_bytes, 64u << 20);
  auto page = store->conversation_page(direct_conversation_id(hex_id(1000), hex_id(9)), "", 5);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->messages.size(), 5u);
}

// The indexer's and checkpoints' writes reach the disk in chunks (paced_vfs.hpp), unless
// paced_writes is off; either way the same messages are stored.
TEST_F(SqliteStoreTest, IndexWritesAreSyncedInChunksUnlessPacingIsOff) {
  auto index_many = [&](SqliteOptions opts) {
    auto store = open_store(opts);
    if (!store) return std::size_t{0};
    std::atomic<int> ok{0};
    for (int i = 0; i < 20'000; ++i) {  // ~3,000 conversations: megabytes of index pages
      const auto a = hex_id(1000 + static_cast<std::uint32_t>(i % 3000));
      store->append_message(make_message(a, hex_id(9), std::string(200, 'x')),
                            [&](result<Appended> r) {
                              if (r.ok()) ++ok;
                            });
    }
    store->flush();
    EXPECT_EQ(ok.load(), 20'000);
    auto page = store->conversation_page(direct_conversation_id(hex_id(1000), hex_id(9)), "", 50);
    return page.ok() ? page->messages.size() : std::size_t{0};
  };
  SqliteOptions off;
  off.path = (dir_.path() / "unpaced" / "chat.sqlite").string();
  off.paced_writes = false;
  const std::uint64_t before = paced_vfs_syncs();
  EXPECT_EQ(index_many(off), 7u);  // 20,000 messages over 3,000 conversations: 6 or 7 each
  EXPECT_EQ(paced_vfs_syncs(), before);
  EXPECT_EQ(index_many(SqliteOptions{}), 7u);
  EXPECT_GT(paced_vfs_syncs(), before + 4);
}

// chatd hands each committed batch's append callbacks to an I/O strand: they must arrive there
// in commit order, only after the commit, and never hold up synchronous writes.
TEST_F(SqliteStoreTest, CallbackExecutorReceivesCommittedBatchesInOrder) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::mutex mu;
  std::vector<std::function<void()>> handed;
  store->set_callback_executor([&](std::function<void()> fn) {
    std::lock_guard lock(mu);
    handed.push_back(std::move(fn));
  });
  constexpr int kMessages = 500;
  std::vector<int> order;
  std::atomic<int> ran{0};
  for (int i = 0; i < kMessages; ++i) {
    store->append_message(make_message(alice_, bob_, std::to_string(i)), [&, i](result<Appended> r) {
      EXPECT_TRUE(r.ok());
      order.push_back(i);  // the executor below runs everything on this thread
      ++ran;
    });
  }
  store->flush();
  // Durable, but no callback ran: they wait in the executor.
  EXPECT_EQ(ran.load(), 0);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", kMessages + 1);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->messages.size(), static_cast<std::size_t>(kMessages));
  // A synchronous write is answered by the writer itself, not through the executor.
  EXPECT_TRUE(store->create_user(make_user(carol_, "carol@example.com", "Carol")).ok());
  std::vector<std::function<void()>> batches;
  {
    std::lock_guard lock(mu);
    batches.swap(handed);
  }
  EXPECT_GE(batches.size(), 1u);
  for (auto& fn : batches) fn();
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  // Back to the writer thread.
  store->set_callback_executor({});
  std::promise<void> inline_done;
  store->append_message(make_message(alice_, bob_, "inline"), [&](result<Appended>) { inline_done.set_value(); });
  EXPECT_EQ(inline_done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

TEST_F(SqliteStoreTest, GroupCommitGroupsConcurrentAppends) {
  auto store = open_store();
  ASSERT_TRUE(store);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  constexpr int kTotal = kThreads * kPerThread;
  const std::string receiver = hex_id(500);

  std::vector<std::atomic<int>> calls(kTotal);
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<bool> writing{true};
  std::atomic<int> reads{0};
  // A reader runs against the WAL while the writer commits.
  std::thread reader([&] {
    while (writing.load()) {
      auto p = store->conversation_page(direct_conversation_id(hex_id(100), receiver), "", 50);
      if (!p.ok()) ++failed;
      ++reads;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string sender = hex_id(100 + static_cast<std::uint32_t>(t));
      for (int i = 0; i < kPerThread; ++i) {
        const int index = t * kPerThread + i;
        store->append_message(make_message(sender, receiver, std::to_string(index)),
                              [&, index](result<Appended> r) {
                                calls[index].fetch_add(1);
                                if (r.ok() && !r->duplicate) {
                                  ++ok;
                                } else {
                                  ++failed;
                                }
                              });
      }
    });
  }
  for (auto& th : threads) th.join();
  store->flush();
  writing = false;
  reader.join();

  EXPECT_EQ(ok.load(), kTotal);
  EXPECT_EQ(failed.load(), 0);
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(calls[i].load(), 1) << "callback " << i;
  const std::uint64_t commits = store->commits();
  EXPECT_GT(commits, 0u);
  EXPECT_LT(commits, static_cast<std::uint64_t>(kTotal / 4)) << "appends were not grouped";
  std::printf("[ info ] %d appends in %llu commits (%.1f per commit), %d concurrent reads\n",
              kTotal, static_cast<unsigned long long>(commits),
              static_cast<double>(kTotal) / static_cast<double>(commits), reads.load());

  // Everything is readable, each conversation in its sender's order.
  int total = 0;
  for (int t = 0; t < kThreads; ++t) {
    const std::string conv = direct_conversation_id(hex_id(100 + static_cast<std::uint32_t>(t)),
                                                    receiver);
    std::string before;
    int expected = kPerThread - 1;
    for (;;) {
      auto p = store->conversation_page(conv, before, 500);
      ASSERT_TRUE(p.ok());
      for (auto it = p->messages.rbegin(); it != p->messages.rend(); ++it) {
        ASSERT_EQ(it->text, std::to_string(t * kPerThread + expected));
        --expected;
        ++total;
      }
      if (!p->has_more) break;
      before = p->messages.front().id;
    }
    EXPECT_EQ(expected, -1);
  }
  EXPECT_EQ(total, kTotal);
}

TEST_F(SqliteStoreTest, FullQueueRejectsAtOnceAndLosesNothing) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.max_pending_writes = 4;
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  WriterGate gate;
  gate.block(*store, alice_, carol_);  // the writer is busy: nothing leaves the queue

  constexpr int kFlood = 1000;
  const auto caller = std::this_thread::get_id();
  std::vector<std::atomic<int>> calls(kFlood);
  std::atomic<int> ok{0};
  std::atomic<int> rejected{0};
  std::atomic<int> rejected_elsewhere{0};
  std::atomic<int> other{0};
  for (int i = 0; i < kFlood; ++i) {
    store->append_message(make_message(alice_, bob_, std::to_string(i)),
                          [&, i](result<Appended> r) {
                            calls[i].fetch_add(1);
                            if (r.ok()) {
                              ++ok;
                            } else if (r.code() == errc::unavailable &&
                                       r.err().message == "store queue full") {
                              ++rejected;
                              if (std::this_thread::get_id() != caller) ++rejected_elsewhere;
                            } else {
                              ++other;
                            }
                          });
  }
  // Rejections were immediate, on this thread.
  EXPECT_EQ(rejected.load(), kFlood - 4);
  EXPECT_EQ(rejected_elsewhere.load(), 0);
  EXPECT_EQ(store->pending_writes(), 4u);
  auto sync = store->create_user(make_user(alice_, "alice@example.com", "Alice"));
  ASSERT_FALSE(sync.ok());
  EXPECT_EQ(sync.code(), errc::unavailable);

  gate.release();
  store->flush();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(other.load(), 0);
  for (int i = 0; i < kFlood; ++i) ASSERT_EQ(calls[i].load(), 1) << "callback " << i;
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 100);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->messages.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(page->messages[i].text, std::to_string(i));
  EXPECT_EQ(store->user_by_id(alice_).code(), errc::not_found);
}

TEST_F(SqliteStoreTest, CallbacksMayAppendButNotBlockOnTheWriter) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::promise<result<Appended>> chained;
  std::promise<result<User>> sync_from_callback;
  store->append_message(make_message(alice_, bob_, "one"), [&](result<Appended> r) {
    sync_from_callback.set_value(store->create_user(make_user(alice_, "a@x.io", "A")));
    store->flush();  // must not wait for itself
    store->append_message(make_message(alice_, bob_, "two"),
                          [&](result<Appended> r2) { chained.set_value(std::move(r2)); });
  });
  auto sync = sync_from_callback.get_future().get();
  ASSERT_FALSE(sync.ok());
  EXPECT_EQ(sync.code(), errc::internal);
  auto two = chained.get_future().get();
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->message.text, "two");
}

// --- durability, media, open ------------------------------------------------------------------

TEST_F(SqliteStoreTest, DataSurvivesReopen) {
  std::vector<Message> sent;
  std::atomic<int> fired{0};
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
    ASSERT_TRUE(store->put_media(hex_id(7), "image/png", std::string("\x89PNG\0\x01", 6)).ok());
    for (int i = 0; i < 30; ++i) {
      sent.push_back(
          make_message(alice_, bob_, "persist " + std::to_string(i), "k" + std::to_string(i)));
      store->append_message(sent.back(), [&](result<Appended> r) { fired += r.ok() ? 1 : 1000; });
    }
    store->flush();
    EXPECT_EQ(fired.load(), 30);
    // Queued but not flushed: the destructor commits them.
    for (int i = 30; i < 60; ++i) {
      sent.push_back(make_message(alice_, bob_, "persist " + std::to_string(i)));
      store->append_message(sent.back(), [&](result<Appended> r) { fired += r.ok() ? 1 : 1000; });
    }
  }
  EXPECT_EQ(fired.load(), 60);

  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->ping().ok());
  auto u = store->user_by_email("alice@example.com");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->id, alice_);
  auto m = store->media(hex_id(7));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->bytes, std::string("\x89PNG\0\x01", 6));
  auto page = store->conversation_page(direct_conversation_id(bob_, alice_), "", 100);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(sent));
  // The idempotency index survived too.
  auto again = append_and_wait(*store, make_message(alice_, bob_, "retry", "k3"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->message.id, sent[3].id);
}

// --- the message journal ----------------------------------------------------------------------

// Holds the main database's write lock from a connection of its own: the store's writer cannot
// index meanwhile (its transactions fail after busy_timeout_ms and are retried), while appends
// are still journaled and acknowledged.
class MainDbLock {
 public:
  explicit MainDbLock(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path;
      return;
    }
    sqlite3_busy_timeout(db_, 5000);
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      ADD_FAILURE() << "cannot lock " << path << ": " << sqlite3_errmsg(db_);
  }
  ~MainDbLock() { release(); }
  MainDbLock(const MainDbLock&) = delete;
  MainDbLock& operator=(const MainDbLock&) = delete;
  void release() {
    if (!db_) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Records left in the message journal of a closed store (-1 when it cannot be read).
std::int64_t journal_rows(const std::string& db_path) {
  std::vector<JournalRecord> records;
  MessageJournal::Options o;
  o.base_path = SqliteStore::journal_path(db_path);
  auto j = MessageJournal::open(o, records);
  return j.ok() ? static_cast<std::int64_t>(records.size()) : -1;
}

// Writes `rows` into the journal at `base_path` (seq 1, 2, …), as a crash would leave them.
void put_journal_rows_at(const std::string& base_path, const std::vector<Message>& rows) {
  std::vector<JournalRecord> records;
  MessageJournal::Options o;
  o.base_path = base_path;
  auto j = MessageJournal::open(o, records);
  ASSERT_TRUE(j.ok()) << j.err().message;
  for (std::size_t i = 0; i < rows.size(); ++i) ASSERT_TRUE(j.value()->add(i + 1, rows[i]).ok());
  ASSERT_TRUE(j.value()->commit().ok());
}

// The same into the journal of a closed store at its default place.
void put_journal_rows(const std::string& db_path, const std::vector<Message>& rows) {
  put_journal_rows_at(SqliteStore::journal_path(db_path), rows);
}

// The SQLite journal of earlier versions, as one of them would have left it after a crash.
void put_legacy_journal_rows(const std::string& db_path, const std::vector<Message>& rows) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(SqliteStore::legacy_journal_path(db_path).c_str(), &db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode = WAL;"
                         "CREATE TABLE journal (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,"
                         " conversation_id TEXT NOT NULL, sender_id TEXT NOT NULL,"
                         " receiver_id TEXT NOT NULL, text TEXT NOT NULL, image TEXT NOT NULL,"
                         " client_msg_id TEXT NOT NULL, created_at INTEGER NOT NULL,"
                         " updated_at INTEGER NOT NULL);"
                         "CREATE TABLE journal_quarantine AS SELECT * FROM journal WHERE 0;"
                         "PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1,
                               &st, nullptr),
            SQLITE_OK);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Message& m = rows[i];
    sqlite3_bind_int64(st, 1, static_cast<std::int64_t>(i + 1));
    int col = 2;
    for (const std::string* v : {&m.id, &m.conversation_id, &m.sender_id, &m.receiver_id, &m.text,
                                 &m.image, &m.client_msg_id})
      sqlite3_bind_text(st, col++, v->c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 9, m.created_at);
    sqlite3_bind_int64(st, 10, m.updated_at);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
}

// An acknowledged message is durable before it is in the main database: a process that dies
// with its messages only journaled loses none of them, and their clientMsgIds stay known.
TEST_F(SqliteStoreTest, AcknowledgedMessagesAreReplayedAfterACrash) {
  { ASSERT_TRUE(open_store()); }  // the schema exists before the child appends
  constexpr int kMessages = 200;
  std::vector<Message> sent;
  for (int i = 0; i < kMessages; ++i)
    sent.push_back(make_message(alice_, bob_, "m" + std::to_string(i), "k" + std::to_string(i)));

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Every append acknowledged while the writer cannot index; then the process dies.
    SqliteOptions opts;
    opts.path = db_path();
    opts.busy_timeout_ms = 20;
    auto r = SqliteStore::open(opts);
    if (!r.ok()) ::_exit(2);
    MainDbLock lock(db_path());
    int ok = 0;
    for (const Message& m : sent) ok += append_and_wait(*r.value(), m).ok() ? 1 : 0;
    ::_exit(ok == kMessages && r.value()->unindexed_messages() == kMessages ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "2: open failed, 3: not all acknowledged and unindexed";
  EXPECT_EQ(journal_rows(db_path()), kMessages);

  auto store = open_store();
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 500);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(sent));
  auto again = append_and_wait(*store, make_message(alice_, bob_, "retry", "k7"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->message.id, sent[7].id);
  store.reset();
  EXPECT_EQ(journal_rows(db_path()), 0) << "replayed rows stay in the journal";
}

// A replay that fails (here a trigger rolls the transaction back, as a full disk would fail
// it) fails the open and leaves the journal as it was: the next open replays it all.
TEST_F(SqliteStoreTest, AFailedReplayKeepsTheJournalForTheNextOpen) {
  { ASSERT_TRUE(open_store()); }
  const std::vector<Message> rows = {make_message(alice_, bob_, "one"),
                                     make_message(alice_, bob_, "stop"),
                                     make_message(alice_, bob_, "three")};
  auto exec_main = [&](const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  exec_main("CREATE TRIGGER stop BEFORE INSERT ON messages WHEN NEW.text = 'stop'"
            " BEGIN SELECT RAISE(ROLLBACK, 'stopped'); END");
  put_journal_rows(db_path(), rows);
  {
    SqliteOptions opts;
    opts.path = db_path();
    auto failed = SqliteStore::open(opts);
    ASSERT_FALSE(failed.ok());
    EXPECT_NE(failed.err().message.find("replay"), std::string::npos) << failed.err().message;
  }
  EXPECT_EQ(journal_rows(db_path()), 3) << "a failed open dropped journaled messages";
  exec_main("DROP TRIGGER stop");
  auto store = open_store();
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(rows));
}

// The journal may live elsewhere (its own disk): written there, replayed from there, and a
// journal left at the default place before the option was set is replayed too.
TEST_F(SqliteStoreTest, TheJournalCanLiveInADirectoryOfItsOwn) {
  { ASSERT_TRUE(open_store()); }
  const std::vector<Message> before = {make_message(alice_, bob_, "left at the default place")};
  put_journal_rows(db_path(), before);
  SqliteOptions opts;
  opts.path = db_path();
  opts.journal_path = (dir_.path() / "journal-disk" / "chat.db.msglog").string();
  const std::vector<Message> crashed = {make_message(alice_, bob_, "left in the journal dir"),
                                        make_message(bob_, alice_, "and another")};
  put_journal_rows_at(opts.journal_path, crashed);
  std::vector<Message> all = before;
  all.insert(all.end(), crashed.begin(), crashed.end());
  {
    auto store = open_store(opts);
    ASSERT_TRUE(store);
    auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 10);
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(ids_of(page->messages), ids_of(all));
  }
  EXPECT_EQ(journal_rows(db_path()), 0) << "the default place's journal was not cleared";
  // Acknowledged appends are in the journal directory, not next to the database.
  opts.index_interval_ms = 600'000;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto r = SqliteStore::open(opts);
    if (!r.ok()) ::_exit(2);
    MainDbLock lock(db_path());
    const bool ok = append_and_wait(*r.value(), make_message(alice_, bob_, "only journaled")).ok();
    ::_exit(ok && r.value()->unindexed_messages() == 1 ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(journal_rows(db_path()), 0);
  std::vector<JournalRecord> records;
  MessageJournal::Options o;
  o.base_path = opts.journal_path;
  {
    auto j = MessageJournal::open(o, records);
    ASSERT_TRUE(j.ok());
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].m.text, "only journaled");
  }
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->messages.size(), 4u);
  EXPECT_EQ(page->messages.back().text, "only journaled");
}

// A journal left by an earlier version (a SQLite database) is replayed once, then removed.
TEST_F(SqliteStoreTest, TheJournalOfAnEarlierVersionIsReplayedAndRemoved) {
  { ASSERT_TRUE(open_store()); }
  std::vector<Message> sent;
  for (int i = 0; i < 3; ++i)
    sent.push_back(make_message(alice_, bob_, "old" + std::to_string(i), "o" + std::to_string(i)));
  put_legacy_journal_rows(db_path(), sent);
  auto store = open_store();
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(sent));
  EXPECT_FALSE(fs::exists(SqliteStore::legacy_journal_path(db_path())));
  auto again = append_and_wait(*store, make_message(alice_, bob_, "retry", "o1"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->message.id, sent[1].id);
}

// A read returns every message acknowledged before it, indexed or not yet, without waiting for
// the index: the store merges the journaled messages the main database does not have yet.
TEST_F(SqliteStoreTest, ReadsSeeAcknowledgedMessagesWithoutWaitingForTheIndex) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  const std::string conv = direct_conversation_id(alice_, bob_);
  std::vector<Message> sent;
  for (int i = 0; i < 50; ++i) {
    sent.push_back(make_message(alice_, bob_, "m" + std::to_string(i)));
    ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  }
  sent.push_back(make_message(bob_, alice_, "reply"));
  ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());

  // Pages and summaries, all from the backlog, then all from the main database: the same.
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    auto all = store->conversation_page(conv, "", 100);
    ASSERT_TRUE(all.ok()) << all.err().message;
    EXPECT_EQ(ids_of(all->messages), ids_of(sent));
    EXPECT_FALSE(all->has_more);
    auto newest = store->conversation_page(conv, "", 20);
    ASSERT_TRUE(newest.ok());
    EXPECT_EQ(ids_of(newest->messages), ids_of({sent.end() - 20, sent.end()}));
    EXPECT_TRUE(newest->has_more);
    auto older = store->conversation_page(conv, newest->messages.front().id, 40);
    ASSERT_TRUE(older.ok());
    EXPECT_EQ(ids_of(older->messages), ids_of({sent.begin(), sent.end() - 20}));
    EXPECT_FALSE(older->has_more);
    auto a = store->conversation_summaries(alice_);
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 1u);
    EXPECT_EQ(a->front().conversation_id, conv);
    EXPECT_EQ(a->front().peer_id, bob_);
    ASSERT_TRUE(a->front().last_message.has_value());
    EXPECT_EQ(a->front().last_message->text, "reply");
    EXPECT_EQ(a->front().unread, 1u);  // bob's reply; her own messages are not unread
    EXPECT_EQ(a->front().last_read_id, "");
    auto b = store->conversation_summaries(bob_);
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->size(), 1u);
    EXPECT_EQ(b->front().peer_id, alice_);
    EXPECT_EQ(b->front().unread, 50u);
    auto carol = store->conversation_summaries(carol_);
    ASSERT_TRUE(carol.ok());
    EXPECT_TRUE(carol->empty());
  };
  check("backlog only");
  EXPECT_EQ(store->unindexed_messages(), 51u) << "a read waited for the index";
  store->flush();
  ASSERT_EQ(store->unindexed_messages(), 0u);
  check("indexed");

  // Both at once: 30 indexed pages' worth behind 10 new ones; bob read up to the 40th.
  ASSERT_EQ(store->mark_read(conv, bob_, sent[39].id).value(), sent[39].id);
  for (int i = 0; i < 10; ++i) {
    sent.push_back(make_message(alice_, bob_, "n" + std::to_string(i)));
    ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  }
  ASSERT_EQ(store->unindexed_messages(), 10u);
  auto page = store->conversation_page(conv, "", 15);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of({sent.end() - 15, sent.end()}));
  EXPECT_TRUE(page->has_more);
  auto b = store->conversation_summaries(bob_);
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ(b->front().last_message->text, "n9");
  EXPECT_EQ(b->front().last_read_id, sent[39].id);
  EXPECT_EQ(b->front().unread, 10u + 10u);  // m40..m49 indexed, n0..n9 not yet
  EXPECT_EQ(store->unindexed_messages(), 10u);
}

// A write that reads no message (a profile, a user, media) does not wait for the index of the
// appends before it, and neither does a read position (it clamps to the unindexed ones too).
TEST_F(SqliteStoreTest, WritesThatReadNoMessageDoNotWaitForTheIndex) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
  std::vector<Message> sent;
  for (int i = 0; i < 30; ++i) {
    sent.push_back(make_message(bob_, alice_, "m" + std::to_string(i)));
    ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  }
  UserPatch bio;
  bio.bio = "busy";
  auto updated = store->update_user(alice_, bio, 1800000000000);
  ASSERT_TRUE(updated.ok()) << updated.err().message;
  EXPECT_EQ(updated->bio, "busy");
  ASSERT_TRUE(store->put_media("m1", "image/png", "png").ok());
  ASSERT_TRUE(store->set_password_hash(alice_, "hash").ok());
  EXPECT_EQ(store->unindexed_messages(), 30u) << "a write that reads no message indexed the backlog";
  EXPECT_EQ(store->user_by_id(alice_)->bio, "busy");

  // Nor does a read position: it clamps to the newest of both halves, and makes the
  // conversation's rows, which only the index would have made so far.
  const std::string conv = direct_conversation_id(alice_, bob_);
  auto read = store->mark_read(conv, alice_, sent[10].id);
  ASSERT_TRUE(read.ok()) << read.err().message;
  EXPECT_EQ(*read, sent[10].id);
  auto past = store->mark_read(conv, alice_, make_object_id(0xfffffff0u, 1));
  ASSERT_TRUE(past.ok()) << past.err().message;
  EXPECT_EQ(*past, sent.back().id) << "clamped to the newest unindexed message";
  EXPECT_EQ(store->unindexed_messages(), 30u) << "a read position waited for the index";
  auto outsider = store->mark_read(conv, carol_, sent.back().id);
  ASSERT_FALSE(outsider.ok());
  EXPECT_EQ(outsider.code(), errc::not_found);
  EXPECT_EQ(store->last_read(conv, bob_).value(), "");

  // The index then finds the rows there; the position holds, and counts what comes after it.
  store->flush();
  ASSERT_EQ(store->unindexed_messages(), 0u);
  sent.push_back(make_message(bob_, alice_, "later"));
  ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  auto a = store->conversation_summaries(alice_);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ(a->front().last_read_id, sent[29].id);
  EXPECT_EQ(a->front().unread, 1u);
  store.reset();
  store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->last_read(conv, alice_).value(), sent[29].id);
  auto page = store->conversation_page(conv, "", 100);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(sent));
}

// Such a write arriving while the writer indexes a large backlog stops that transaction early
// (what it has indexed is committed, the rest goes back to the queue): every message is still
// indexed exactly once, in order. Whether the write came before or during the transaction is
// up to the scheduler; both must end the same.
TEST_F(SqliteStoreTest, AWriteThatReadsNoMessageCutsALargeIndexTransactionShort) {
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    SqliteOptions opts;
    std::vector<Message> sent;
    auto store = open_store_with_a_large_backlog(opts, "cut" + std::to_string(round), sent);
    ASSERT_TRUE(store);
    ASSERT_EQ(store->unindexed_messages(), sent.size());
    std::thread flusher([&] { store->flush(); });  // indexes the 20,000 in one transaction
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * round));  // into it, or not
    UserPatch bio;
    bio.bio = "r" + std::to_string(round);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(store->update_user(alice_, bio, 1800000000000 + i).ok());
    flusher.join();
    EXPECT_EQ(store->unindexed_messages(), 0u);
    store.reset();
    opts.index_interval_ms = 200;
    store = open_store(opts);  // reopened: what the journal replays must be there once too
    ASSERT_TRUE(store);
    auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 30000);
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(ids_of(page->messages), ids_of(sent));
    EXPECT_EQ(store->user_by_id(alice_)->bio, bio.bio);
  }
}

// Synchronous writes go ahead of the index, but a steady stream of them (writers that never
// leave the queue empty) takes turns with it: else the index stops, max_unindexed fills up and
// the appends wait for good.
TEST_F(SqliteStoreTest, ASteadyStreamOfSynchronousWritesDoesNotStopTheIndex) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.index_interval_ms = 1;
  opts.max_unindexed = 500;
  opts.max_batch = 2;  // with 8 writers, always some queued: the stream never pauses
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> updates{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t)
    writers.emplace_back([&] {
      UserPatch bio;
      bio.bio = "busy";
      while (!stop) {
        if (!store->update_user(alice_, bio, 1800000000000).ok()) ADD_FAILURE() << "update failed";
        ++updates;
      }
    });
  while (updates < 100) std::this_thread::yield();  // the stream is on
  const int n = 2000;
  std::atomic<int> acked{0};
  std::promise<void> all_acked;
  for (int i = 0; i < n; ++i)
    store->append_message(make_message(bob_, alice_, "m" + std::to_string(i)), [&](result<Appended> r) {
      EXPECT_TRUE(r.ok());
      if (++acked == n) all_acked.set_value();
    });
  // Generous: it takes well under a second; a stopped index never ends.
  const bool done = all_acked.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  const int acked_in_time = acked;
  stop = true;
  for (auto& w : writers) w.join();
  if (!done) store.reset();  // the callbacks still to come use this frame
  ASSERT_TRUE(done) << acked_in_time << " of " << n << " appends acknowledged: the index stopped";
  store->flush();
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", n);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->messages.size(), static_cast<std::size_t>(n));
}

// An index transaction stops early for waiting synchronous writes only once it has run
// min_index_run_us: with it at 0, writes streaming while 20,000 messages are indexed cut that
// transaction (more than one index commit holds messages); with it longer than the whole
// transaction, the same stream leaves it whole (one), where a cut every 32 messages once made a
// steady stream of read positions shrink every index transaction to 32 messages and the appends
// wait on the index. Every write succeeds and every message is indexed once either way.
TEST_F(SqliteStoreTest, AnIndexTransactionStopsForWritesOnlyAfterItsMinimumRun) {
  for (const int min_run_us : {0, 600'000'000}) {
    SCOPED_TRACE(min_run_us);
    std::atomic<int> index_commits{0};
    SqliteOptions opts;
    opts.min_index_run_us = min_run_us;
    opts.after_index_commit = [&] { ++index_commits; };
    std::vector<Message> sent;
    auto store = open_store_with_a_large_backlog(opts, "min-run" + std::to_string(min_run_us), sent);
    ASSERT_TRUE(store);
    ASSERT_EQ(store->unindexed_messages(), sent.size());
    std::atomic<bool> flushed{false};
    std::thread flusher([&] {
      store->flush();  // the 20,000 in one transaction, unless cut
      flushed = true;
    });
    UserPatch bio;
    bio.bio = "streaming";
    int writes = 0;
    while (!flushed || writes < 20) {  // one after the other: always one waiting or running
      ASSERT_TRUE(store->update_user(alice_, bio, 1800000000000 + writes).ok());
      ++writes;
    }
    flusher.join();
    EXPECT_EQ(store->unindexed_messages(), 0u);
    if (min_run_us == 0) EXPECT_GT(index_commits.load(), 1);
    else EXPECT_EQ(index_commits.load(), 1);
    expect_page(*store, direct_conversation_id(alice_, bob_), "", 30000, sent, false);
  }
}

// A transaction of synchronous writes alone that fails (the main database locked by another
// process) fails those writes and nothing else: the index is not put on its failure back-off,
// so a flush right after indexes at once (it gave up after index_wait_ms, the index backing off).
TEST_F(SqliteStoreTest, AFailedWriteAloneDoesNotHoldTheIndexBack) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.busy_timeout_ms = 20;
  opts.index_interval_ms = 600'000;  // the back-off is one interval
  opts.index_wait_ms = 3000;
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
  {
    MainDbLock lock(db_path());
    UserPatch bio;
    bio.bio = "locked out";
    auto r = store->update_user(alice_, bio, 1800000000000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), errc::unavailable);
  }
  ASSERT_TRUE(append_and_wait(*store, make_message(bob_, alice_, "after")).ok());
  store->flush();  // gives up after index_wait_ms
  EXPECT_EQ(store->unindexed_messages(), 0u);
}

// Many read positions in one synchronous write: one transaction, one commit for all (a chat
// server writes a burst of markRead events this way instead of a commit each).
TEST_F(SqliteStoreTest, ManyReadPositionsAreOneCommit) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<Message> sent;
  for (int i = 0; i < 20; ++i) sent.push_back(make_message(bob_, alice_, "m" + std::to_string(i)));
  ASSERT_EQ(append_all_and_wait(*store, sent), 0u);
  store->flush();
  const std::uint64_t before = store->index_commits();
  std::vector<ReadMark> marks;
  const std::string conv = direct_conversation_id(alice_, bob_);
  for (const Message& m : sent) marks.push_back({conv, alice_, m.id});
  auto results = store->mark_read_many(marks);
  EXPECT_EQ(store->index_commits() - before, 1u);
  ASSERT_EQ(results.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].err().message;
    EXPECT_EQ(results[i].value(), sent[i].id);
  }
  store.reset();
  store = open_store();  // durable
  ASSERT_TRUE(store);
  EXPECT_EQ(store->last_read(conv, alice_).value(), sent.back().id);
}

// The database failing fails every mark of the write (the transaction is rolled back).
TEST_F(SqliteStoreTest, ManyReadPositionsFailTogetherWhenTheDatabaseDoes) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.busy_timeout_ms = 20;
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  const Message m = make_message(bob_, alice_, "hi");
  ASSERT_TRUE(append_and_wait(*store, m).ok());
  store->flush();
  const std::string conv = direct_conversation_id(alice_, bob_);
  {
    MainDbLock lock(db_path());
    auto results = store->mark_read_many({{conv, alice_, m.id}, {conv, bob_, m.id}});
    ASSERT_EQ(results.size(), 2u);
    for (const auto& r : results) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.code(), errc::unavailable);
    }
  }
  EXPECT_EQ(store->last_read(conv, alice_).value(), "");
  auto again = store->mark_read_many({{conv, alice_, m.id}});
  ASSERT_TRUE(again[0].ok());
  EXPECT_EQ(again[0].value(), m.id);
}

// A message indexed between a read's two steps is in both halves (the writer has committed it
// and not yet dropped it from the backlog): the read returns it once, and counts it once.
TEST_F(SqliteStoreTest, AMessageInBothHalvesIsReadOnce) {
  std::mutex mu;
  std::condition_variable cv;
  bool committed = false;
  bool release = false;
  SqliteOptions opts;
  opts.path = db_path();
  opts.index_interval_ms = 600'000;
  opts.after_index_commit = [&] {
    std::unique_lock lk(mu);
    committed = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  };
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  const std::string conv = direct_conversation_id(alice_, bob_);
  std::vector<Message> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back(make_message(bob_, alice_, "m" + std::to_string(i)));
    ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  }
  std::thread flusher([&] { store->flush(); });
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return committed; });
  }
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    expect_page(*store, conv, "", 50, sent, false);
    expect_page(*store, conv, "", 4, {sent.end() - 4, sent.end()}, true);
    expect_page(*store, conv, sent[6].id, 4, {sent.begin() + 2, sent.begin() + 6}, true);
    auto a = store->conversation_summaries(alice_);
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 1u);
    EXPECT_EQ(a->front().last_message->id, sent.back().id);
    EXPECT_EQ(a->front().unread, 10u);
  };
  check("in both halves");  // the writer waits in the hook, between its commit and its drop
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  flusher.join();
  EXPECT_EQ(store->unindexed_messages(), 0u);
  check("indexed");
}

// Summaries of a user with conversations in every state at once: indexed only, indexed with
// newer unindexed messages, and unindexed only (no row in the main database yet).
TEST_F(SqliteStoreTest, SummariesMergeConversationsInEveryState) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  const std::string dave = hex_id(4);
  auto send = [&](const std::string& from, const std::string& to, const std::string& text) {
    Message m = make_message(from, to, text);
    EXPECT_TRUE(append_and_wait(*store, m).ok());
    return m;
  };
  send(dave, alice_, "dave 1");
  const Message dave_last = send(alice_, dave, "to dave");
  send(bob_, alice_, "bob 1");
  const Message bob_read = send(bob_, alice_, "bob 2");
  store->flush();
  ASSERT_EQ(store->unindexed_messages(), 0u);
  ASSERT_TRUE(store->mark_read(direct_conversation_id(alice_, bob_), alice_, bob_read.id).ok());
  send(bob_, alice_, "bob 3");
  const Message bob_last = send(bob_, alice_, "bob 4");
  send(carol_, alice_, "carol 1");
  const Message carol_last = send(carol_, alice_, "carol 2");
  ASSERT_EQ(store->unindexed_messages(), 4u);
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    auto a = store->conversation_summaries(alice_);
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 3u);
    std::map<std::string, const ConversationSummary*> by_peer;
    for (const auto& c : *a) by_peer[c.peer_id] = &c;
    ASSERT_EQ(by_peer.size(), 3u);
    EXPECT_EQ(by_peer[dave]->last_message->id, dave_last.id);
    EXPECT_EQ(by_peer[dave]->unread, 1u);
    EXPECT_EQ(by_peer[bob_]->last_message->id, bob_last.id);
    EXPECT_EQ(by_peer[bob_]->unread, 2u);
    EXPECT_EQ(by_peer[carol_]->last_message->id, carol_last.id);
    EXPECT_EQ(by_peer[carol_]->unread, 2u);
    EXPECT_EQ(by_peer[carol_]->conversation_id, direct_conversation_id(alice_, carol_));
  };
  check("mixed");
  store->flush();
  check("indexed");
}

// The summaries find a user's unindexed conversations by member: both members see one, no one
// else does, the lookup follows conversations leaving the backlog (indexed) and coming back, and
// a user's messages to themselves show in no summary, indexed or not (the main database's need a
// peer).
TEST_F(SqliteStoreTest, UnindexedConversationsAreFoundByTheirMembersOnly) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  const std::string dave = hex_id(4);
  using Peers = std::map<std::string, std::size_t>;  // peer → unread
  auto peers = [&](const std::string& user) {
    Peers out;
    auto summaries = store->conversation_summaries(user);
    EXPECT_TRUE(summaries.ok());
    if (summaries.ok())
      for (const auto& c : *summaries) out[c.peer_id] = c.unread;
    return out;
  };
  auto send = [&](const std::string& from, const std::string& to) {
    ASSERT_TRUE(append_and_wait(*store, make_message(from, to, "hi")).ok());
  };
  auto check = [&](const char* when, std::size_t unindexed, const Peers& alice, const Peers& bob,
                   const Peers& carol) {
    SCOPED_TRACE(when);
    EXPECT_EQ(store->unindexed_messages(), unindexed);
    EXPECT_EQ(peers(alice_), alice);
    EXPECT_EQ(peers(bob_), bob);
    EXPECT_EQ(peers(carol_), carol);
    EXPECT_EQ(peers(dave), Peers{});
  };
  send(alice_, bob_);
  send(carol_, alice_);
  send(dave, dave);
  check("alice-bob, carol-alice, unindexed", 3, {{bob_, 0}, {carol_, 1}}, {{alice_, 1}}, {{alice_, 0}});
  store->flush();
  check("indexed", 0, {{bob_, 0}, {carol_, 1}}, {{alice_, 1}}, {{alice_, 0}});
  send(bob_, alice_);
  send(bob_, carol_);
  send(dave, dave);
  check("again, and bob-carol", 3, {{bob_, 1}, {carol_, 1}}, {{alice_, 1}, {carol_, 0}},
        {{alice_, 0}, {bob_, 1}});
  store->flush();
  check("indexed again", 0, {{bob_, 1}, {carol_, 1}}, {{alice_, 1}, {carol_, 0}},
        {{alice_, 0}, {bob_, 1}});
}

// With several I/O threads, ids are made on two threads at once and journal order is not always
// id order: reads of unindexed messages still order them by id, as the main database does.
TEST_F(SqliteStoreTest, UnindexedMessagesAreReadInIdOrder) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  const std::string conv = direct_conversation_id(alice_, bob_);
  std::vector<Message> sent;
  for (std::uint32_t counter : {5u, 3u, 4u}) {  // journaled 5, 3, 4
    sent.push_back(make_message(bob_, alice_, "m" + std::to_string(counter)));
    sent.back().id = make_object_id(1'900'000'000, counter);
    ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  }
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    expect_page(*store, conv, "", 10, {sent[1], sent[2], sent[0]}, false);  // by id: 3, 4, 5
    expect_page(*store, conv, sent[0].id, 1, {sent[2]}, true);               // before 5: 4
    auto a = store->conversation_summaries(alice_);
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 1u);
    EXPECT_EQ(a->front().last_message->id, sent[0].id);
    EXPECT_EQ(a->front().unread, 3u);
  };
  check("unindexed");
  EXPECT_EQ(store->unindexed_messages(), 3u);
  store->flush();
  check("indexed");
}

// A read copies only what it can return of a long unindexed backlog (a page below its cursor,
// the unread window): the same answers as from the main database.
TEST_F(SqliteStoreTest, LongUnindexedBacklogsAreReadInPart) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  const std::string conv = direct_conversation_id(alice_, bob_);
  const std::size_t n = kUnreadWindow + 500;
  std::vector<Message> sent;
  for (std::size_t i = 0; i < n; ++i) sent.push_back(make_message(bob_, alice_, "m" + std::to_string(i)));
  ASSERT_EQ(append_all_and_wait(*store, sent), 0u);
  auto check = [&](const char* when, std::size_t unread) {
    SCOPED_TRACE(when);
    expect_page(*store, conv, "", 50, {sent.end() - 50, sent.end()}, true);
    expect_page(*store, conv, sent[700].id, 50, {sent.begin() + 650, sent.begin() + 700}, true);
    expect_page(*store, conv, sent[30].id, 50, {sent.begin(), sent.begin() + 30}, false);
    auto a = store->conversation_summaries(alice_);
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->size(), 1u);
    EXPECT_EQ(a->front().last_message->id, sent.back().id);
    EXPECT_EQ(a->front().unread, unread);
  };
  check("unindexed", kUnreadWindow);
  EXPECT_EQ(store->unindexed_messages(), n);
  ASSERT_EQ(store->mark_read(conv, alice_, sent[n - 300].id).value(), sent[n - 300].id);
  EXPECT_EQ(store->conversation_summaries(alice_)->front().unread, 299u);
  ASSERT_EQ(store->mark_read(conv, alice_, sent[0].id).value(), sent[n - 300].id);
  EXPECT_EQ(store->unindexed_messages(), n);
  store->flush();
  ASSERT_TRUE(store->mark_read(conv, alice_, sent[0].id).ok());  // forward only: no change
  EXPECT_EQ(store->conversation_summaries(alice_)->front().unread, 299u);
  check("indexed", 299);
}

// More than the window unread, the newest of it not indexed yet: the window is the newest
// kUnreadWindow of both parts, so the count does not change when the index catches up (it fell
// 1,000 → 990 when the main database's part was counted over a whole window of its own).
TEST_F(SqliteStoreTest, TheUnreadWindowSpansTheIndexedAndUnindexedParts) {
  auto store = open_store_indexing_on_demand();
  ASSERT_TRUE(store);
  std::vector<Message> bobs;
  for (std::size_t i = 0; i < kUnreadWindow + 5; ++i) bobs.push_back(make_message(bob_, alice_, "b"));
  ASSERT_EQ(append_all_and_wait(*store, bobs), 0u);
  store->flush();
  auto unread = [&] {
    auto a = store->conversation_summaries(alice_);
    EXPECT_TRUE(a.ok() && a->size() == 1u);
    return a.ok() && !a->empty() ? a->front().unread : 0u;
  };
  EXPECT_EQ(unread(), kUnreadWindow);
  // Ten of alice's own, unindexed: they take ten places of the window.
  std::vector<Message> alices;
  for (int i = 0; i < 10; ++i) alices.push_back(make_message(alice_, bob_, "a"));
  ASSERT_EQ(append_all_and_wait(*store, alices), 0u);
  ASSERT_EQ(store->unindexed_messages(), 10u);
  EXPECT_EQ(unread(), kUnreadWindow - 10);
  // Five more of bob's, unindexed: five places more, five unread more.
  std::vector<Message> more;
  for (int i = 0; i < 5; ++i) more.push_back(make_message(bob_, alice_, "b"));
  ASSERT_EQ(append_all_and_wait(*store, more), 0u);
  EXPECT_EQ(unread(), kUnreadWindow - 10);
  store->flush();
  ASSERT_EQ(store->unindexed_messages(), 0u);
  EXPECT_EQ(unread(), kUnreadWindow - 10) << "the same once indexed";
  // A read position inside the window: exact on either side of the index.
  ASSERT_TRUE(store->mark_read(direct_conversation_id(alice_, bob_), alice_, bobs[bobs.size() - 3].id).ok());
  ASSERT_EQ(append_all_and_wait(*store, {make_message(bob_, alice_, "b")}), 0u);
  EXPECT_EQ(unread(), 2u + 5u + 1u);
  store->flush();
  EXPECT_EQ(unread(), 2u + 5u + 1u);
}

// Without readers the writer still indexes on its interval (the journal is then trimmed), and
// a read behind a backlog spread over several index transactions gets all of it.
TEST_F(SqliteStoreTest, IndexingRunsOnItsIntervalAndCatchesUpForAReader) {
  {
    SqliteOptions opts;
    opts.path = db_path();
    opts.index_interval_ms = 20;
    auto store = open_store(opts);
    ASSERT_TRUE(store);
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(append_and_wait(*store, make_message(alice_, bob_, "m" + std::to_string(i))).ok());
    for (int i = 0; i < 500 && store->unindexed_messages() > 0; ++i)
      std::this_thread::sleep_for(10ms);
    EXPECT_EQ(store->unindexed_messages(), 0u) << "not indexed after 5 s";
    EXPECT_GT(store->index_commits(), 0u);
  }
  SqliteOptions opts;
  opts.path = db_path();
  opts.index_interval_ms = 600'000;
  opts.index_batch = 10;  // the backlog below takes three index transactions
  opts.index_wait_ms = 5'000;
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  for (int i = 0; i < 25; ++i)
    ASSERT_TRUE(append_and_wait(*store, make_message(bob_, carol_, "n" + std::to_string(i))).ok());
  auto page = store->conversation_page(direct_conversation_id(bob_, carol_), "", 100);
  ASSERT_TRUE(page.ok()) << page.err().message;
  EXPECT_EQ(page->messages.size(), 25u);
}

// A crash after the main database's commit and before the journal was trimmed leaves rows that
// are indexed already: the replay stores nothing twice.
TEST_F(SqliteStoreTest, ReplayOfAlreadyIndexedRowsStoresNothingTwice) {
  std::vector<Message> sent;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    for (int i = 0; i < 5; ++i) {
      sent.push_back(make_message(alice_, bob_, "m" + std::to_string(i), "k" + std::to_string(i)));
      ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
    }
  }
  ASSERT_EQ(journal_rows(db_path()), 0);
  put_journal_rows(db_path(), sent);  // back, as if the trim had not happened
  ASSERT_EQ(journal_rows(db_path()), 5);
  auto store = open_store();
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 100);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(sent));
  store.reset();
  EXPECT_EQ(journal_rows(db_path()), 0);
}

// A journaled row the database refuses (here a trigger stands for corruption or a future
// constraint) does not stop the store from opening: it is kept aside, the others are replayed.
TEST_F(SqliteStoreTest, AJournalRowTheDatabaseRefusesIsQuarantinedAtReplay) {
  { ASSERT_TRUE(open_store()); }
  const std::vector<Message> rows = {make_message(alice_, bob_, "one"),
                                     make_message(alice_, bob_, "poison"),
                                     make_message(alice_, bob_, "three")};
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.text = 'poison'"
                           " BEGIN SELECT RAISE(ABORT, 'refused'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  put_journal_rows(db_path(), rows);
  auto store = open_store();
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), (std::vector<std::string>{rows[0].id, rows[2].id}));
  store.reset();
  EXPECT_EQ(journal_rows(db_path()), 0);
  std::ifstream kept(SqliteStore::quarantine_path(db_path()));
  std::vector<std::string> lines;
  for (std::string line; std::getline(kept, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"id\":\"" + rows[1].id + "\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"text\":\"poison\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("refused"), std::string::npos) << lines[0];
}

// The id check of an append: an id indexed long ago (no longer among the journaled ones) is
// still refused, as is one still journaled.
TEST_F(SqliteStoreTest, AReusedIdIsRefusedJournaledOrIndexed) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const Message first = make_message(alice_, bob_, "first");
  ASSERT_TRUE(append_and_wait(*store, first).ok());
  Message journaled_twin = make_message(alice_, bob_, "twin");
  journaled_twin.id = first.id;
  auto r1 = append_and_wait(*store, journaled_twin);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.code(), errc::internal);

  store->flush();  // indexed; the next journal batch forgets it
  ASSERT_TRUE(append_and_wait(*store, make_message(bob_, alice_, "later")).ok());
  Message indexed_twin = make_message(alice_, bob_, "twin again");
  indexed_twin.id = first.id;
  auto r2 = append_and_wait(*store, indexed_twin);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.code(), errc::internal);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->messages.size(), 2u);
  EXPECT_EQ(page->messages[0].text, "first");
}

// While the main database cannot be written, appends are still acknowledged (the journal has
// them); indexing is retried, reads show the journaled messages meanwhile, and nothing is lost
// once the database is writable again.
TEST_F(SqliteStoreTest, IndexFailuresAreRetriedAndLoseNothing) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.busy_timeout_ms = 20;
  opts.index_interval_ms = 10;
  opts.index_wait_ms = 300;
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  MainDbLock lock(db_path());
  std::vector<Message> sent;
  for (int i = 0; i < 100; ++i) {
    sent.push_back(make_message(alice_, bob_, "m" + std::to_string(i), "c" + std::to_string(i)));
    ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
  }
  auto blocked = store->conversation_page(direct_conversation_id(alice_, bob_), "", 200);
  ASSERT_TRUE(blocked.ok()) << blocked.err().message;
  EXPECT_EQ(ids_of(blocked->messages), ids_of(sent));
  EXPECT_EQ(store->unindexed_messages(), 100u);
  // Retries of journaled clientMsgIds are duplicates meanwhile.
  auto retry = append_and_wait(*store, make_message(alice_, bob_, "again", "c42"));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->message.id, sent[42].id);

  lock.release();
  store->flush();
  EXPECT_EQ(store->unindexed_messages(), 0u);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 200);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), ids_of(sent));
}

// One store per database: a second one would trim journal rows the first has not indexed.
TEST_F(SqliteStoreTest, ASecondStoreOnTheSameDatabaseIsRefused) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.busy_timeout_ms = 50;
  auto first = open_store(opts);
  ASSERT_TRUE(first);
  auto second = SqliteStore::open(opts);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.code(), errc::unavailable);
  EXPECT_NE(second.err().message.find("another process"), std::string::npos)
      << second.err().message;
  first.reset();
  EXPECT_TRUE(SqliteStore::open(opts).ok());
}

// clientMsgIds are indexed in generations; a retry finds its first message in any of them,
// from the main database (flushed) and after a reopen (the filter is rebuilt from it).
TEST_F(SqliteStoreTest, ClientMsgIdsAreFoundInEveryKeyGeneration) {
  SqliteOptions opts;
  opts.path = db_path();
  opts.client_keys_per_generation = 8;
  std::vector<Message> sent;
  auto retry_all = [&](SqliteStore& store) {
    for (std::size_t i = 0; i < sent.size(); ++i) {
      auto r = append_and_wait(store, make_message(alice_, bob_, "retry", "key-" + std::to_string(i)));
      ASSERT_TRUE(r.ok());
      EXPECT_TRUE(r->duplicate) << i;
      EXPECT_EQ(r->message.id, sent[i].id) << i;
    }
  };
  {
    auto store = open_store(opts);
    ASSERT_TRUE(store);
    for (int i = 0; i < 40; ++i) {
      sent.push_back(make_message(alice_, bob_, "m", "key-" + std::to_string(i)));
      ASSERT_TRUE(append_and_wait(*store, sent.back()).ok());
    }
    store->flush();
    retry_all(*store);
  }
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  retry_all(*store);
  ASSERT_TRUE(append_and_wait(*store, make_message(alice_, bob_, "new", "key-40")).ok());
  store->flush();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(DISTINCT key_gen), count(*) FROM messages",
                               -1, &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(s, 0), 6);  // 41 keys, 8 per generation
  EXPECT_EQ(sqlite3_column_int64(s, 1), 41);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

// A database of schema version 1 (clientMsgIds in a unique index) is migrated in place.
TEST_F(SqliteStoreTest, SchemaVersion1IsMigrated) {
  const Message old = make_message(alice_, bob_, "from version 1", "old-key");
  {
    fs::create_directories(fs::path(db_path()).parent_path());
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              nullptr),
              SQLITE_OK);
    const std::string v1 =
        "PRAGMA journal_mode = WAL;"
        "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL UNIQUE,"
        " password_hash TEXT NOT NULL DEFAULT '', full_name TEXT NOT NULL DEFAULT '',"
        " profile_picture TEXT NOT NULL DEFAULT '', bio TEXT NOT NULL DEFAULT '',"
        " created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX users_by_name ON users(full_name COLLATE NOCASE, id);"
        "CREATE TABLE conversations (id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL,"
        " created_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE conversation_members (conversation_id TEXT NOT NULL REFERENCES"
        " conversations(id) ON DELETE CASCADE, user_id TEXT NOT NULL, last_read_id TEXT,"
        " PRIMARY KEY (conversation_id, user_id)) WITHOUT ROWID;"
        "CREATE INDEX conversation_members_by_user ON conversation_members(user_id);"
        "CREATE TABLE messages (id TEXT PRIMARY KEY NOT NULL, conversation_id TEXT NOT NULL"
        " REFERENCES conversations(id), sender_id TEXT NOT NULL, receiver_id TEXT NOT NULL"
        " DEFAULT '', text TEXT NOT NULL DEFAULT '', image TEXT NOT NULL DEFAULT '',"
        " client_msg_id TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL DEFAULT 0,"
        " updated_at INTEGER NOT NULL DEFAULT 0);"
        "CREATE INDEX messages_by_conversation ON messages(conversation_id, id);"
        "CREATE UNIQUE INDEX messages_by_client_msg_id ON messages(sender_id, client_msg_id)"
        " WHERE client_msg_id <> '';"
        "CREATE TABLE media (id TEXT PRIMARY KEY NOT NULL, content_type TEXT NOT NULL DEFAULT"
        " '', bytes BLOB NOT NULL, created_at INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO conversations VALUES ('" + old.conversation_id + "', 'direct', 1);"
        "INSERT INTO conversation_members VALUES ('" + old.conversation_id + "', '" + alice_ +
        "', NULL), ('" + old.conversation_id + "', '" + bob_ + "', NULL);"
        "INSERT INTO messages VALUES ('" + old.id + "', '" + old.conversation_id + "', '" +
        alice_ + "', '" + bob_ + "', 'from version 1', '', 'old-key', 1, 1);"
        "PRAGMA user_version = 1;";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, v1.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_close(db);
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->ping().ok());
  auto retry = append_and_wait(*store, make_message(alice_, bob_, "retry", "old-key"));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->message.id, old.id);
  const Message next = make_message(alice_, bob_, "from version 2", "new-key");
  ASSERT_TRUE(append_and_wait(*store, next).ok());
  auto page = store->conversation_page(old.conversation_id, "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), (std::vector<std::string>{old.id, next.id}));
}

TEST_F(SqliteStoreTest, MediaRoundTripsBinaryBytes) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::string bytes;
  for (int rep = 0; rep < 64; ++rep)
    for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<char>(b));
  ASSERT_EQ(bytes.size(), 16384u);
  ASSERT_TRUE(store->put_media(hex_id(1), "image/jpeg", bytes).ok());
  ASSERT_TRUE(store->put_media(hex_id(2), "application/octet-stream", "").ok());

  auto m = store->media(hex_id(1));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->content_type, "image/jpeg");
  EXPECT_EQ(m->bytes, bytes);
  auto empty = store->media(hex_id(2));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->bytes, "");
  EXPECT_EQ(empty->content_type, "application/octet-stream");

  ASSERT_TRUE(store->put_media(hex_id(1), "image/png", std::string(3, '\0')).ok());
  auto replaced = store->media(hex_id(1));
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->content_type, "image/png");
  EXPECT_EQ(replaced->bytes, std::string(3, '\0'));

  auto missing = store->media(hex_id(3));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), errc::not_found);
}

TEST_F(SqliteStoreTest, OpenFailsCleanlyOnUnusablePaths) {
  const fs::path file = dir_.path() / "a_file";
  std::ofstream(file) << "not a directory";
  const std::string under_file = (file / "db" / "chat.sqlite").string();
  auto r = SqliteStore::open(SqliteOptions{under_file});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::unavailable);
  EXPECT_NE(r.err().message.find(under_file), std::string::npos) << r.err().message;

  // A directory where the file should be.
  auto dir = SqliteStore::open(SqliteOptions{dir_.path().string()});
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.err().message.find(dir_.path().string()), std::string::npos) << dir.err().message;

  // Not an SQLite database.
  auto garbage = SqliteStore::open(SqliteOptions{file.string()});
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.err().message.find(file.string()), std::string::npos) << garbage.err().message;

  auto empty = SqliteStore::open(SqliteOptions{});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.code(), errc::invalid_argument);
}

TEST_F(SqliteStoreTest, SchemaIsVersionedWalAndPagesUseTheIndex) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  auto scalar = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK) {
      while (sqlite3_step(s) == SQLITE_ROW) {
        if (!out.empty()) out += "|";
        out += reinterpret_cast<const char*>(sqlite3_column_text(s, sqlite3_column_count(s) - 1));
      }
    }
    sqlite3_finalize(s);
    return out;
  };
  EXPECT_EQ(scalar("PRAGMA user_version"), "2");
  EXPECT_EQ(scalar("PRAGMA journal_mode"), "wal");
  const std::string plan = scalar(
      "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE conversation_id = 'x' AND id < 'y' "
      "ORDER BY id DESC LIMIT 51");
  EXPECT_NE(plan.find("messages_by_conversation"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  // The clientMsgId lookup: one index search per key generation.
  const std::string dedup = scalar(
      "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE key_gen = 0 AND sender_id = 'a' "
      "AND client_msg_id = 'b' AND client_msg_id <> ''");
  EXPECT_NE(dedup.find("SEARCH messages USING INDEX messages_by_client_key (key_gen=? AND "
                       "sender_id=? AND client_msg_id=?)"),
            std::string::npos)
      << dedup;
  const std::string by_email =
      scalar("EXPLAIN QUERY PLAN SELECT * FROM users WHERE email = 'a@b.c'");
  EXPECT_NE(by_email.find("INDEX"), std::string::npos) << by_email;
  // A newer schema than this build knows is refused.
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto r = SqliteStore::open(SqliteOptions{db_path()});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().message.find("schema version 99"), std::string::npos) << r.err().message;
}

// --- read positions and conversation summaries ---------------------------------------------

struct SqliteBackend {
  TempDir dir;
  std::unique_ptr<Store> open() {
    auto r = SqliteStore::open(SqliteOptions{(dir.path() / "chat.sqlite").string()});
    if (!r.ok()) ADD_FAILURE() << r.err().message;
    return r.ok() ? std::move(r).value() : nullptr;
  }
};

TEST_F(SqliteStoreTest, ReadPositionsSurviveReopen) {
  Message first, second;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    first = make_message(bob_, alice_, "first");
    second = make_message(bob_, alice_, "second");
    ASSERT_TRUE(append_and_wait(*store, first).ok());
    ASSERT_TRUE(append_and_wait(*store, second).ok());
    ASSERT_EQ(store->mark_read(direct_conversation_id(alice_, bob_), alice_, first.id).value(),
              first.id);
  }
  auto store = open_store();
  ASSERT_TRUE(store);
  auto s = store->conversation_summaries(alice_);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ((*s)[0].last_read_id, first.id);
  EXPECT_EQ((*s)[0].unread, 1u);
  ASSERT_TRUE((*s)[0].last_message);
  EXPECT_EQ((*s)[0].last_message->id, second.id);
  EXPECT_EQ((*s)[0].last_message->text, "second");
  EXPECT_EQ((*s)[0].last_message->image, second.image);
  EXPECT_EQ((*s)[0].last_message->created_at, second.created_at);
  // Still never backwards after a reopen.
  EXPECT_EQ(store->mark_read(direct_conversation_id(alice_, bob_), alice_, "0").value(), first.id);
}

TEST_F(SqliteStoreTest, MarkReadIsASynchronousWriteAndRefusedOnTheWriterThread) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const Message m = make_message(bob_, alice_, "hi");
  std::promise<result<std::string>> from_callback;
  store->append_message(m, [&](result<Appended>) {
    from_callback.set_value(store->mark_read(m.conversation_id, alice_, m.id));
  });
  auto r = from_callback.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::internal);
  EXPECT_EQ(store->mark_read(m.conversation_id, alice_, m.id).value(), m.id);
}

// The statements as the store runs them: index searches only (no table or index SCAN, no
// temporary b-tree), the messages read through the (conversation_id, id) index.
TEST_F(SqliteStoreTest, ReadStateQueriesUseTheIndexes) {
  { ASSERT_TRUE(open_store()); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto plan_of = [&](std::string_view sql) {
    std::string out;
    sqlite3_stmt* s = nullptr;
    const std::string explain = "EXPLAIN QUERY PLAN " + std::string(sql);
    if (sqlite3_prepare_v2(db, explain.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sqlite3_errmsg(db) << " in " << sql;
      return out;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
      out += reinterpret_cast<const char*>(sqlite3_column_text(s, 3));
      out += "\n";
    }
    sqlite3_finalize(s);
    return out;
  };
  auto only_searches = [](const std::string& plan) {
    std::size_t pos = 0;
    while ((pos = plan.find("SCAN", pos)) != std::string::npos) {
      // "SCAN CONSTANT ROW" (no table) is fine; anything else scans a table or an index.
      if (plan.compare(pos, 17, "SCAN CONSTANT ROW") != 0) return false;
      ++pos;
    }
    return plan.find("TEMP B-TREE") == std::string::npos;
  };
  for (const char* name : {"mark_read", "conversation_summaries", "conversation_page"}) {
    const std::string_view sql = SqliteStore::query_sql(name);
    ASSERT_FALSE(sql.empty()) << name;
    const std::string plan = plan_of(sql);
    EXPECT_TRUE(only_searches(plan)) << name << ":\n" << plan;
    EXPECT_NE(plan.find("messages_by_conversation"), std::string::npos) << name << ":\n" << plan;
  }
  const std::string summaries = plan_of(SqliteStore::query_sql("conversation_summaries"));
  EXPECT_NE(summaries.find("conversation_members_by_user"), std::string::npos) << summaries;
  // The unread count is a bounded range of the index, not every message of the conversation.
  EXPECT_NE(summaries.find("messages_by_conversation (conversation_id=? AND id>?)"),
            std::string::npos)
      << summaries;
  EXPECT_TRUE(SqliteStore::query_sql("nonsense").empty());
  sqlite3_close(db);
}

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, ReadStateContract, SqliteBackend);

// The same with the index deferred (but for flush()): every read and read position then works
// on messages the main database does not have yet.
struct SqliteUnindexedBackend {
  TempDir dir;
  std::unique_ptr<Store> open() {
    SqliteOptions opts{(dir.path() / "chat.sqlite").string()};
    opts.index_interval_ms = 600'000;
    auto r = SqliteStore::open(opts);
    if (!r.ok()) ADD_FAILURE() << r.err().message;
    return r.ok() ? std::move(r).value() : nullptr;
  }
};
INSTANTIATE_TYPED_TEST_SUITE_P(SqliteUnindexed, ReadStateContract, SqliteUnindexedBackend);
}  // namespace contract
}  // namespace chat::store
