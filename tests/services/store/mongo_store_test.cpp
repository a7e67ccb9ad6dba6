// MongoStore against FerretDB (MongoDB wire, SQLite backend), started by this process on a free
// port in a temp dir through scripts/services/ferretdb.sh and stopped at the end (--watch-pid
// stops it too if the test dies). Every test uses its own database.
#include "store/mongo_store.hpp"

#include <gtest/gtest.h>
#include <mongoc/mongoc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/object_id.hpp"
#include "store/store.hpp"
#include "services/ports.hpp"
#include "unit/store/read_state_contract.hpp"
#include "unit/store/store_fixtures.hpp"

namespace chat::store {
namespace {

namespace fs = std::filesystem;
using namespace fixtures;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One FerretDB per test process, started on first use.
class Ferret {
 public:
  static Ferret& get() {
    static Ferret f;
    return f;
  }

  bool ensure_started() {
    if (started_) return true;
    if (dir_.empty()) {
      std::string tmpl = (fs::temp_directory_path() / "chat_mongo_test_XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) return false;
      dir_ = tmpl;
    }
    auto start = [&](int port) {
      return run("start --dir '" + dir_ + "' --port " + std::to_string(port) + " --watch-pid " +
                 std::to_string(::getpid()));
    };
    if (port_ == 0) {
      port_ = test::start_on_free_port(start);
      started_ = port_ != 0;
    } else {
      started_ = start(port_);  // a restart keeps the port the URIs name
    }
    return started_;
  }
  bool stop() {
    if (dir_.empty()) return true;
    started_ = false;
    return run("stop --dir '" + dir_ + "'");
  }
  void remove() {
    stop();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  /// A fresh database's URI (`extra` is appended to the query string).
  std::string fresh_uri(const std::string& extra = "") {
    static std::atomic<int> n{0};
    std::string uri = "mongodb://127.0.0.1:" + std::to_string(port_) + "/t" +
                      std::to_string(::getpid()) + "_" + std::to_string(++n);
    uri += "?serverSelectionTimeoutMS=2000";
    if (!extra.empty()) uri += "&" + extra;
    return uri;
  }

 private:
  bool run(const std::string& args) {
    const char* env = std::getenv("CHAT_SCRIPTS");
    const std::string scripts = env && *env ? env : CHAT_DEFAULT_SCRIPTS;
    const std::string log = dir_ + "/script.log";
    const std::string cmd = "'" + scripts + "/services/ferretdb.sh' " + args + " 2>>'" + log + "'";
    if (std::system(cmd.c_str()) == 0) return true;
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    ADD_FAILURE() << "ferretdb.sh " << args << " failed:\n" << s.str();
    return false;
  }

  std::string dir_;
  int port_ = 0;
  bool started_ = false;
};

class FerretEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { Ferret::get().remove(); }
};
[[maybe_unused]] auto* const kEnv = ::testing::AddGlobalTestEnvironment(new FerretEnvironment);

// Raw libmongoc access to the store's database: documents as the old server wrote them, and a
// look at what the store wrote.
class RawDb {
 public:
  explicit RawDb(const std::string& uri) {
    bson_error_t e;
    uri_ = mongoc_uri_new_with_error(uri.c_str(), &e);
    client_ = uri_ ? mongoc_client_new_from_uri(uri_) : nullptr;
    if (client_) mongoc_client_set_error_api(client_, MONGOC_ERROR_API_VERSION_2);
    db_ = uri_ && mongoc_uri_get_database(uri_) ? mongoc_uri_get_database(uri_) : "chat";
  }
  ~RawDb() {
    if (client_) mongoc_client_destroy(client_);
    if (uri_) mongoc_uri_destroy(uri_);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  /// Inserts a document given as (relaxed/canonical) extended JSON.
  void insert_json(const char* coll, const std::string& json) {
    bson_error_t e;
    bson_t* doc = bson_new_from_json(reinterpret_cast<const std::uint8_t*>(json.data()),
                                     static_cast<ssize_t>(json.size()), &e);
    ASSERT_TRUE(doc) << e.message << " in " << json;
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    const bool ok = mongoc_collection_insert_one(c, doc, nullptr, nullptr, &e);
    mongoc_collection_destroy(c);
    bson_destroy(doc);
    ASSERT_TRUE(ok) << e.message;
  }

  std::int64_t count(const char* coll, const std::string& filter_json = "{}") {
    bson_error_t e;
    bson_t* filter =
        bson_new_from_json(reinterpret_cast<const std::uint8_t*>(filter_json.data()),
                           static_cast<ssize_t>(filter_json.size()), &e);
    if (!filter) return -1;
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    const std::int64_t n = mongoc_collection_count_documents(c, filter, nullptr, nullptr, nullptr, &e);
    if (n < 0) ADD_FAILURE() << e.message;
    mongoc_collection_destroy(c);
    bson_destroy(filter);
    return n;
  }

  /// The documents matching `filter_json`, as canonical extended JSON (types visible).
  std::vector<std::string> find_json(const char* coll, const std::string& filter_json) {
    std::vector<std::string> out;
    bson_error_t e;
    bson_t* filter =
        bson_new_from_json(reinterpret_cast<const std::uint8_t*>(filter_json.data()),
                           static_cast<ssize_t>(filter_json.size()), &e);
    if (!filter) return out;
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    mongoc_cursor_t* cur = mongoc_collection_find_with_opts(c, filter, nullptr, nullptr);
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cur, &doc)) {
      char* j = bson_as_canonical_extended_json(doc, nullptr);
      out.emplace_back(j);
      bson_free(j);
    }
    if (mongoc_cursor_error(cur, &e)) ADD_FAILURE() << e.message;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    bson_destroy(filter);
    return out;
  }

  /// index name → "unique" or "" for a collection.
  std::map<std::string, std::string> indexes(const char* coll) {
    std::map<std::string, std::string> out;
    mongoc_collection_t* c = mongoc_client_get_collection(client_, db_.c_str(), coll);
    mongoc_cursor_t* cur = mongoc_collection_find_indexes_with_opts(c, nullptr);
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cur, &doc)) {
      bson_iter_t it;
      std::string name;
      bool unique = false;
      if (bson_iter_init_find(&it, doc, "name")) name = bson_iter_utf8(&it, nullptr);
      if (bson_iter_init_find(&it, doc, "unique")) unique = bson_iter_as_bool(&it);
      out[name] = unique ? "unique" : "";
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) ADD_FAILURE() << e.message;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    return out;
  }

 private:
  mongoc_uri_t* uri_ = nullptr;
  mongoc_client_t* client_ = nullptr;
  std::string db_;
};

std::string hex_id(std::uint32_t n) { return make_object_id(0x65000000u + n, n); }

// Blocks the writer thread inside a callback until release(), so a test decides what is queued
// together.
class WriterGate {
 public:
  void block(Store& store, const std::string& sender, const std::string& receiver) {
    auto entered = std::make_shared<std::promise<void>>();
    auto entered_f = entered->get_future();
    auto gate = gate_.get_future().share();
    store.append_message(make_message(sender, receiver, "gate"),
                         [entered, gate](result<Appended>) {
                           entered->set_value();
                           gate.wait();
                         });
    entered_f.wait();
  }
  void release() { gate_.set_value(); }

 private:
  std::promise<void> gate_;
};

class MongoStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Ferret::get().ensure_started());
    uri_ = Ferret::get().fresh_uri();
  }
  std::unique_ptr<MongoStore> open_store(MongoOptions opts = {}) {
    if (opts.uri.empty()) opts.uri = uri_;
    auto r = MongoStore::open(opts);
    if (!r.ok()) {
      ADD_FAILURE() << "open failed: " << r.err().message;
      return nullptr;
    }
    return std::move(r).value();
  }

  std::string uri_;
  const std::string alice_ = hex_id(1);
  const std::string bob_ = hex_id(2);
  const std::string carol_ = hex_id(3);
};

// --- open, indexes ----------------------------------------------------------------------------

TEST_F(MongoStoreTest, OpenCreatesTheIndexesAndIsRepeatable) {
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    EXPECT_EQ(store->database(), uri_.substr(uri_.rfind('/') + 1, uri_.find('?') - uri_.rfind('/') - 1));
    ASSERT_TRUE(store->ping().ok());
  }
  auto again = open_store();  // the indexes exist already: no error
  ASSERT_TRUE(again);
  RawDb raw(uri_);
  auto users = raw.indexes("users");
  ASSERT_TRUE(users.contains("email_1"));
  EXPECT_EQ(users["email_1"], "unique");
  auto messages = raw.indexes("messages");
  EXPECT_TRUE(messages.contains("senderId_1_receiverId_1__id_-1"));
  EXPECT_TRUE(messages.contains("receiverId_1_senderId_1__id_-1"));
  EXPECT_TRUE(messages.contains("senderId_1_clientMsgId_1"));
  EXPECT_EQ(messages["senderId_1_clientMsgId_1"], "") << "must not be unique (old messages)";
  EXPECT_TRUE(raw.indexes("reads").contains("userId_1"));
}

TEST_F(MongoStoreTest, BadUriIsInvalidArgument) {
  auto r = MongoStore::open(MongoOptions{"not a uri"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::invalid_argument);
}

// --- users ------------------------------------------------------------------------------------

TEST_F(MongoStoreTest, UsersCreateLookUpUpdate) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto created = store->create_user(make_user(alice_, "alice@example.com", "alice"));
  ASSERT_TRUE(created.ok()) << created.err().message;
  ASSERT_TRUE(store->create_user(make_user(bob_, "bob@example.com", "Bob")).ok());
  ASSERT_TRUE(store->create_user(make_user(carol_, "carol@example.com", "Carol")).ok());

  auto by_id = store->user_by_id(alice_);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->email, "alice@example.com");
  EXPECT_EQ(by_id->full_name, "alice");
  EXPECT_EQ(by_id->bio, "bio of alice");
  EXPECT_EQ(by_id->password_hash, make_user(alice_, "", "").password_hash);
  EXPECT_EQ(by_id->created_at, 1700000000000);
  auto by_email = store->user_by_email("alice@example.com");
  ASSERT_TRUE(by_email.ok());
  EXPECT_EQ(by_email->id, alice_);

  EXPECT_EQ(store->user_by_id(hex_id(9)).code(), errc::not_found);
  EXPECT_EQ(store->user_by_id("not-an-id").code(), errc::not_found);
  EXPECT_EQ(store->user_by_email("nobody@example.com").code(), errc::not_found);

  auto dup = store->create_user(make_user(hex_id(4), "alice@example.com", "Other"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.code(), errc::already_exists);
  EXPECT_EQ(dup.err().message, "User account already exists with this email");
  auto same_id = store->create_user(make_user(alice_, "new@example.com", "Other"));
  ASSERT_FALSE(same_id.ok());
  EXPECT_EQ(same_id.code(), errc::already_exists);
  EXPECT_EQ(store->create_user(make_user("xyz", "x@example.com", "X")).code(),
            errc::invalid_argument);

  // Ordered by name, case-insensitively, without the caller.
  auto others = store->users_except(bob_);
  ASSERT_TRUE(others.ok());
  ASSERT_EQ(others->size(), 2u);
  EXPECT_EQ((*others)[0].id, alice_);
  EXPECT_EQ((*others)[1].id, carol_);
  EXPECT_EQ(store->users_except("nobody")->size(), 3u);

  UserPatch patch;
  patch.bio = "new bio";
  auto updated = store->update_user(alice_, patch, 1800000000000);
  ASSERT_TRUE(updated.ok()) << updated.err().message;
  EXPECT_EQ(updated->bio, "new bio");
  EXPECT_EQ(updated->full_name, "alice") << "absent fields unchanged";
  EXPECT_EQ(updated->updated_at, 1800000000000);
  EXPECT_EQ(updated->created_at, 1700000000000);
  EXPECT_EQ(store->user_by_id(alice_)->bio, "new bio");
  EXPECT_EQ(store->update_user(hex_id(9), patch, 1).code(), errc::not_found);

  ASSERT_TRUE(store->set_password_hash(alice_, "$2b$10$newhash").ok());
  EXPECT_EQ(store->user_by_id(alice_)->password_hash, "$2b$10$newhash");
  EXPECT_EQ(store->set_password_hash(hex_id(9), "x").code(), errc::not_found);
}

// --- compatibility with the old Node server -------------------------------------------------

TEST_F(MongoStoreTest, DocumentsOfTheOldServerAreReadable) {
  auto store = open_store();
  ASSERT_TRUE(store);
  RawDb raw(uri_);
  // As Mongoose saved them: no conversationId/clientMsgId, optional fields missing, bcrypt.
  const std::string bcrypt = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
  raw.insert_json("users", R"({"_id": {"$oid": ")" + alice_ + R"("}, "email": "old@example.com",
      "password": ")" + bcrypt + R"(", "full_name": "Old Timer", "o_auth_provider": null,
      "createdAt": {"$date": "2024-01-02T03:04:05.678Z"},
      "updatedAt": {"$date": "2024-01-02T03:04:05.678Z"}, "__v": 0})");
  const std::string old1 = make_object_id(0x65000000u, 1);
  const std::string old2 = make_object_id(0x65000001u, 2);
  raw.insert_json("messages", R"({"_id": {"$oid": ")" + old1 + R"("}, "senderId": {"$oid": ")" +
                                  alice_ + R"("}, "receiverId": {"$oid": ")" + bob_ +
                                  R"("}, "text": "from the old days",
      "createdAt": {"$date": "2024-01-02T03:04:05.678Z"}, "updatedAt": {"$date": "2024-01-02T03:04:05.678Z"}, "__v": 0})");
  raw.insert_json("messages", R"({"_id": {"$oid": ")" + old2 + R"("}, "senderId": {"$oid": ")" +
                                  bob_ + R"("}, "receiverId": {"$oid": ")" + alice_ +
                                  R"("}, "image": "https://res.cloudinary.com/x.png",
      "createdAt": {"$date": "2024-01-02T03:04:06Z"}, "updatedAt": {"$date": "2024-01-02T03:04:06Z"}, "__v": 0})");

  auto u = store->user_by_email("old@example.com");
  ASSERT_TRUE(u.ok()) << u.err().message;
  EXPECT_EQ(u->id, alice_);
  EXPECT_EQ(u->password_hash, bcrypt);
  EXPECT_EQ(u->full_name, "Old Timer");
  EXPECT_EQ(u->bio, "");
  EXPECT_EQ(u->profile_picture, "");
  EXPECT_EQ(u->created_at, 1704164645678);

  const Message now = make_message(alice_, bob_, "and today");
  ASSERT_TRUE(append_and_wait(*store, now).ok());
  auto page = store->conversation_page(direct_conversation_id(bob_, alice_), "", 10);
  ASSERT_TRUE(page.ok()) << page.err().message;
  ASSERT_EQ(page->messages.size(), 3u);
  EXPECT_EQ(ids_of(page->messages), (std::vector<std::string>{old1, old2, now.id}));
  const Message& first = page->messages[0];
  EXPECT_EQ(first.text, "from the old days");
  EXPECT_EQ(first.sender_id, alice_);
  EXPECT_EQ(first.receiver_id, bob_);
  EXPECT_EQ(first.conversation_id, direct_conversation_id(alice_, bob_));
  EXPECT_EQ(first.image, "");
  EXPECT_EQ(first.created_at, 1704164645678);
  EXPECT_EQ(page->messages[1].image, "https://res.cloudinary.com/x.png");
  EXPECT_EQ(page->messages[1].text, "");

  // The old messages count in summaries and read positions too.
  auto s = store->conversation_summaries(bob_);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ((*s)[0].peer_id, alice_);
  EXPECT_EQ((*s)[0].unread, 2u);
  EXPECT_EQ(store->mark_read(direct_conversation_id(alice_, bob_), bob_, old1).value(), old1);
  EXPECT_EQ(store->conversation_summaries(bob_)->at(0).unread, 1u);
}

TEST_F(MongoStoreTest, WrittenDocumentsHaveTheMongooseShape) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
  const Message with_key = make_message(alice_, bob_, "hi", "cm-1");
  const Message without_key = make_message(bob_, alice_, "yo");
  ASSERT_TRUE(append_and_wait(*store, with_key).ok());
  ASSERT_TRUE(append_and_wait(*store, without_key).ok());
  RawDb raw(uri_);
  auto users = raw.find_json("users", "{}");
  ASSERT_EQ(users.size(), 1u);
  const std::string& u = users[0];
  EXPECT_NE(u.find(R"("_id" : { "$oid" : ")" + alice_), std::string::npos) << u;
  EXPECT_NE(u.find(R"("password" : "$argon2id$)"), std::string::npos) << u;
  EXPECT_NE(u.find(R"("createdAt" : { "$date" : { "$numberLong" : "1700000000000" } })"),
            std::string::npos)
      << u;
  EXPECT_NE(u.find(R"("__v" : { "$numberInt" : "0" })"), std::string::npos) << u;

  EXPECT_EQ(raw.count("messages", R"({"senderId": {"$oid": ")" + alice_ + R"("}})"), 1);
  auto m = raw.find_json("messages", R"({"_id": {"$oid": ")" + with_key.id + R"("}})");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(m[0].find(R"("receiverId" : { "$oid" : ")" + bob_), std::string::npos) << m[0];
  EXPECT_NE(m[0].find(R"("conversationId" : ")" + with_key.conversation_id), std::string::npos) << m[0];
  EXPECT_NE(m[0].find(R"("clientMsgId" : "cm-1")"), std::string::npos) << m[0];
  EXPECT_NE(m[0].find(R"("updatedAt" : { "$date")"), std::string::npos) << m[0];
  auto n = raw.find_json("messages", R"({"_id": {"$oid": ")" + without_key.id + R"("}})");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].find("clientMsgId"), std::string::npos) << "only when set: " << n[0];
}

// --- messages ---------------------------------------------------------------------------------

TEST_F(MongoStoreTest, PagesGoBackwardsWithHasMore) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<Message> sent;
  auto failed = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < 25; ++i) {
    sent.push_back(make_message(i % 2 ? alice_ : bob_, i % 2 ? bob_ : alice_, std::to_string(i)));
    store->append_message(sent.back(), [failed](result<Appended> r) { *failed += r.ok() ? 0 : 1; });
  }
  ASSERT_TRUE(append_and_wait(*store, make_message(alice_, carol_, "elsewhere")).ok());
  store->flush();
  ASSERT_EQ(failed->load(), 0);
  const std::string conv = direct_conversation_id(alice_, bob_);

  auto p1 = store->conversation_page(conv, "", 10);
  ASSERT_TRUE(p1.ok()) << p1.err().message;
  EXPECT_TRUE(p1->has_more);
  EXPECT_EQ(ids_of(p1->messages), ids_of({sent.begin() + 15, sent.end()}));
  auto p2 = store->conversation_page(conv, p1->messages.front().id, 10);
  ASSERT_TRUE(p2.ok());
  EXPECT_TRUE(p2->has_more);
  EXPECT_EQ(ids_of(p2->messages), ids_of({sent.begin() + 5, sent.begin() + 15}));
  auto p3 = store->conversation_page(conv, p2->messages.front().id, 10);
  ASSERT_TRUE(p3.ok());
  EXPECT_FALSE(p3->has_more);
  EXPECT_EQ(ids_of(p3->messages), ids_of({sent.begin(), sent.begin() + 5}));
  // Exactly the number left: no more after it.
  auto exact = store->conversation_page(conv, sent[5].id, 5);
  ASSERT_TRUE(exact.ok());
  EXPECT_FALSE(exact->has_more);
  EXPECT_EQ(exact->messages.size(), 5u);
  EXPECT_EQ(p1->messages.back().text, "24");
  EXPECT_EQ(p1->messages.back().image, sent.back().image);

  EXPECT_EQ(store->conversation_page(conv, "garbage", 10).code(), errc::invalid_argument);
  EXPECT_TRUE(store->conversation_page("d:nonsense", "", 10)->messages.empty());
  EXPECT_TRUE(store->conversation_page(direct_conversation_id(bob_, carol_), "", 10)->messages.empty());
}

TEST_F(MongoStoreTest, ClientMsgIdMakesAppendIdempotent) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Message first = make_message(alice_, bob_, "hello", "cm-1");
  auto r1 = append_and_wait(*store, first);
  ASSERT_TRUE(r1.ok()) << r1.err().message;
  EXPECT_FALSE(r1->duplicate);
  Message retry = make_message(alice_, bob_, "hello again", "cm-1");
  auto r2 = append_and_wait(*store, retry);
  ASSERT_TRUE(r2.ok()) << r2.err().message;
  EXPECT_TRUE(r2->duplicate);
  EXPECT_EQ(r2->message.id, first.id);
  EXPECT_EQ(r2->message.text, "hello");
  EXPECT_EQ(r2->message.client_msg_id, "cm-1");
  // Per sender; an empty key never deduplicates.
  EXPECT_FALSE(append_and_wait(*store, make_message(bob_, alice_, "from bob", "cm-1"))->duplicate);
  EXPECT_FALSE(append_and_wait(*store, make_message(alice_, bob_, "x"))->duplicate);
  EXPECT_FALSE(append_and_wait(*store, make_message(alice_, bob_, "x"))->duplicate);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 50);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->messages.size(), 4u);
}

TEST_F(MongoStoreTest, OneBulkPerBatchWithDuplicatesAndBadMessagesInside) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const Message original = make_message(alice_, bob_, "original");
  ASSERT_TRUE(append_and_wait(*store, original).ok());
  WriterGate gate;
  gate.block(*store, alice_, carol_);
  const std::uint64_t before = store->batches();
  Message a = make_message(alice_, bob_, "first", "same-key");
  Message b = make_message(alice_, bob_, "second", "same-key");
  Message same_id = make_message(alice_, bob_, "reuses an id");
  same_id.id = original.id;
  Message bad = make_message(alice_, bob_, "bad sender");
  bad.sender_id = "not-an-object-id";
  Message c = make_message(bob_, alice_, "other");
  std::vector<std::promise<result<Appended>>> p(5);
  int i = 0;
  for (const Message* m : {&a, &b, &same_id, &bad, &c}) {
    store->append_message(*m, [&p, i](result<Appended> r) { p[i].set_value(std::move(r)); });
    ++i;
  }
  EXPECT_EQ(store->pending_writes(), 5u);
  gate.release();
  std::vector<result<Appended>> r;
  for (auto& x : p) r.push_back(x.get_future().get());
  ASSERT_TRUE(r[0].ok()) << r[0].err().message;
  EXPECT_FALSE(r[0]->duplicate);
  ASSERT_TRUE(r[1].ok());
  EXPECT_TRUE(r[1]->duplicate);
  EXPECT_EQ(r[1]->message.id, a.id);
  ASSERT_FALSE(r[2].ok());
  EXPECT_EQ(r[2].code(), errc::internal);
  ASSERT_FALSE(r[3].ok());
  EXPECT_EQ(r[3].code(), errc::invalid_argument);
  ASSERT_TRUE(r[4].ok());
  EXPECT_EQ(store->batches(), before + 1) << "the queued messages went in one bulk write";
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 50);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->messages), (std::vector<std::string>{original.id, a.id, c.id}));
  EXPECT_EQ(page->messages[0].text, "original");
}

TEST_F(MongoStoreTest, FullQueueRejectsAtOnce) {
  MongoOptions opts;
  opts.writer_queue = 4;
  auto store = open_store(opts);
  ASSERT_TRUE(store);
  WriterGate gate;
  gate.block(*store, alice_, carol_);
  std::atomic<int> ok{0}, rejected{0}, other{0};
  for (int i = 0; i < 100; ++i) {
    store->append_message(make_message(alice_, bob_, std::to_string(i)), [&](result<Appended> r) {
      if (r.ok()) {
        ++ok;
      } else if (r.code() == errc::unavailable && r.err().message == "store queue full") {
        ++rejected;
      } else {
        ++other;
      }
    });
  }
  EXPECT_EQ(rejected.load(), 96) << "rejections are immediate";
  EXPECT_EQ(store->pending_writes(), 4u);
  gate.release();
  store->flush();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(store->conversation_page(direct_conversation_id(alice_, bob_), "", 100)->messages.size(),
            4u);
}

TEST_F(MongoStoreTest, ConcurrentAppendsAreGroupedAndQueuedOnesSurviveClose) {
  constexpr int kThreads = 4, kPerThread = 300, kTotal = kThreads * kPerThread;
  std::atomic<int> ok{0}, failed{0};
  std::uint64_t batches = 0;
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string sender = hex_id(100 + static_cast<std::uint32_t>(t));
        for (int i = 0; i < kPerThread; ++i)
          store->append_message(make_message(sender, bob_, std::to_string(i)),
                                [&](result<Appended> r) { (r.ok() && !r->duplicate ? ok : failed)++; });
      });
    }
    for (auto& th : threads) th.join();
    store->flush();
    batches = store->batches();
    EXPECT_EQ(ok.load(), kTotal);
    EXPECT_GT(batches, 0u);
    EXPECT_LT(batches, static_cast<std::uint64_t>(kTotal / 4)) << "appends were not grouped";
    // Not flushed: the destructor writes what is still queued.
    for (int i = 0; i < 100; ++i)
      store->append_message(make_message(alice_, carol_, std::to_string(i)),
                            [&](result<Appended> r) { (r.ok() && !r->duplicate ? ok : failed)++; });
  }
  EXPECT_EQ(ok.load(), kTotal + 100);
  EXPECT_EQ(failed.load(), 0);
  RawDb raw(uri_);
  EXPECT_EQ(raw.count("messages"), kTotal + 100);
  std::printf("[ info ] %d appends in %llu bulk writes\n", kTotal,
              static_cast<unsigned long long>(batches));
  auto store = open_store();
  ASSERT_TRUE(store);
  auto page = store->conversation_page(direct_conversation_id(hex_id(102), bob_), "", 1000);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->messages.size(), static_cast<std::size_t>(kPerThread));
  for (int i = 0; i < kPerThread; ++i) ASSERT_EQ(page->messages[i].text, std::to_string(i));
}

TEST_F(MongoStoreTest, UpsertMessagesTwiceStoresEachOnce) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::vector<Message> batch;
  for (int i = 0; i < 50; ++i)
    batch.push_back(make_message(i % 3 ? alice_ : bob_, i % 3 ? bob_ : alice_,
                                 "m" + std::to_string(i), i % 5 ? "" : "k" + std::to_string(i)));
  ASSERT_TRUE(store->upsert_messages(batch).ok());
  RawDb raw(uri_);
  EXPECT_EQ(raw.count("messages"), 50);
  // A replay (with changed contents) writes nothing and changes nothing.
  std::vector<Message> replay = batch;
  for (auto& m : replay) m.text = "changed";
  replay.push_back(make_message(alice_, bob_, "new one"));
  ASSERT_TRUE(store->upsert_messages(replay).ok());
  ASSERT_TRUE(store->upsert_messages(replay).ok());
  EXPECT_EQ(raw.count("messages"), 51);
  EXPECT_EQ(raw.count("messages", R"({"text": "changed"})"), 0);
  auto page = store->conversation_page(direct_conversation_id(alice_, bob_), "", 100);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->messages.size(), 51u);
  EXPECT_EQ(page->messages[0].text, "m0");
  EXPECT_EQ(page->messages[5].client_msg_id, "k5");
  EXPECT_EQ(page->messages[5].created_at, batch[5].created_at);
  // Invalid messages are reported; the valid ones of the batch are stored.
  Message bad = make_message(alice_, bob_, "bad");
  bad.receiver_id = "nope";
  const Message good = make_message(alice_, bob_, "good");
  auto r = store->upsert_messages({bad, good});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::invalid_argument);
  EXPECT_EQ(raw.count("messages"), 52);
  EXPECT_TRUE(store->upsert_messages({}).ok());
}

// --- read positions (beyond the shared contract) --------------------------------------------

TEST_F(MongoStoreTest, MarkReadKnownCountsMessagesStillInFlight) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const std::string conv = direct_conversation_id(alice_, bob_);
  const std::string in_flight = new_object_id();
  // Nothing stored yet, but the cluster knows a message: alice is a member.
  auto r = store->mark_read_known(conv, alice_, make_object_id(0xfffffff0u, 1), in_flight);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r.value(), in_flight) << "clamped to the newest known message";
  EXPECT_EQ(store->last_read(conv, alice_).value(), in_flight);
  EXPECT_EQ(store->mark_read_known(conv, carol_, in_flight, in_flight).code(), errc::not_found);
  EXPECT_EQ(store->mark_read(conv, bob_, in_flight).code(), errc::not_found)
      << "without newest_known nothing is stored: not a member";
  // A stored message newer than newest_known is the bound.
  const Message later = make_message(bob_, alice_, "later");
  ASSERT_TRUE(append_and_wait(*store, later).ok());
  EXPECT_EQ(store->mark_read_known(conv, alice_, make_object_id(0xfffffff0u, 1), in_flight).value(),
            later.id);
  EXPECT_EQ(store->last_read(conv, alice_).value(), later.id);
  EXPECT_EQ(store->last_read(conv, bob_).value(), "");
  EXPECT_EQ(store->last_read("garbage", bob_).value(), "");
}

TEST_F(MongoStoreTest, ManyReadPositionsAreTwoRoundTrips) {
  MongoOptions counting;
  counting.count_commands = true;
  auto store = open_store(counting);
  ASSERT_TRUE(store);
  // 200 readers (more than a find's default first batch of 101), each in a conversation whose newest message the cluster knows (in flight).
  constexpr int kReaders = 200;
  std::vector<ReadMark> marks;
  std::vector<std::string> known;
  std::vector<std::string> peers;
  for (int i = 0; i < kReaders; ++i) {
    peers.push_back(make_object_id(0x60000000u + static_cast<std::uint32_t>(i), 7));
    known.push_back(new_object_id());
    marks.push_back({direct_conversation_id(alice_, peers.back()), peers.back(), known.back()});
  }
  marks.push_back({direct_conversation_id(alice_, peers[0]), carol_, known[0]});  // not a member
  known.push_back(known[0]);
  const std::uint64_t before = store->commands();
  auto r = store->mark_read_many_known(marks, known);
  EXPECT_EQ(store->commands() - before, 2u) << "one bulk of upserts and one find";
  ASSERT_EQ(r.size(), kReaders + 1u);
  for (int i = 0; i < kReaders; ++i) {
    ASSERT_TRUE(r[i].ok()) << i << ": " << r[i].err().message;
    EXPECT_EQ(r[i].value(), known[i]);
    EXPECT_EQ(store->last_read(marks[i].conversation_id, peers[i]).value(), known[i]);
  }
  EXPECT_EQ(r[kReaders].code(), errc::not_found);

  // The same readers further: a bulk that updates stored documents (FerretDB 1.24 does not
  // answer a hundred updates of one that match documents: see mark_read_many_known).
  marks.pop_back();
  known.pop_back();
  for (int i = 0; i < kReaders; ++i) marks[i].up_to_id = known[i] = new_object_id();
  const std::uint64_t further = store->commands();
  r = store->mark_read_many_known(marks, known);
  EXPECT_EQ(store->commands() - further, 2u);
  ASSERT_EQ(r.size(), static_cast<std::size_t>(kReaders));
  for (int i = 0; i < kReaders; ++i) {
    ASSERT_TRUE(r[i].ok()) << i << ": " << r[i].err().message;
    EXPECT_EQ(r[i].value(), known[i]);
  }
  EXPECT_EQ(store->last_read(marks.back().conversation_id, peers.back()).value(), known.back());

  // The same reader twice in a batch: each result is its position after that mark (a second
  // round of two round trips), and an older mark never moves a position back.
  const std::string conv = marks[0].conversation_id;
  const std::string older = make_object_id(1, 1);
  const std::string newer = new_object_id();
  const std::uint64_t again = store->commands();
  auto twice = store->mark_read_many_known({{conv, peers[0], older}, {conv, peers[0], newer}},
                                           {known[0], newer});
  EXPECT_EQ(store->commands() - again, 4u);
  ASSERT_TRUE(twice[0].ok() && twice[1].ok());
  EXPECT_EQ(twice[0].value(), known[0]) << "not moved back";
  EXPECT_EQ(twice[1].value(), newer);
}

// --- media ------------------------------------------------------------------------------------

TEST_F(MongoStoreTest, MediaRoundTripsBinaryBytes) {
  auto store = open_store();
  ASSERT_TRUE(store);
  std::string bytes;
  for (int rep = 0; rep < 64; ++rep)
    for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<char>(b));
  ASSERT_TRUE(store->put_media(hex_id(1), "image/jpeg", bytes).ok());
  ASSERT_TRUE(store->put_media(hex_id(2), "application/octet-stream", "").ok());
  auto m = store->media(hex_id(1));
  ASSERT_TRUE(m.ok()) << m.err().message;
  EXPECT_EQ(m->content_type, "image/jpeg");
  EXPECT_EQ(m->bytes, bytes);
  EXPECT_EQ(store->media(hex_id(2))->bytes, "");
  ASSERT_TRUE(store->put_media(hex_id(1), "image/png", std::string(3, '\0')).ok());
  auto replaced = store->media(hex_id(1));
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->content_type, "image/png");
  EXPECT_EQ(replaced->bytes, std::string(3, '\0'));
  EXPECT_EQ(store->media(hex_id(3)).code(), errc::not_found);
}

// --- server down ------------------------------------------------------------------------------

TEST_F(MongoStoreTest, ServerDownIsUnavailableWithinBoundsAndRecovers) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_user(make_user(alice_, "alice@example.com", "Alice")).ok());
  ASSERT_TRUE(Ferret::get().stop());

  // serverSelectionTimeoutMS=2000 in the URI: each call gives up after about that.
  auto timed = [](auto&& call) {
    const auto t0 = Clock::now();
    auto r = call();
    return std::pair{std::move(r), Clock::now() - t0};
  };
  auto [ping, ping_t] = timed([&] { return store->ping(); });
  ASSERT_FALSE(ping.ok());
  EXPECT_EQ(ping.code(), errc::unavailable) << ping.err().message;
  EXPECT_LT(ping_t, 8s);
  auto [user, user_t] = timed([&] { return store->user_by_id(alice_); });
  ASSERT_FALSE(user.ok());
  EXPECT_EQ(user.code(), errc::unavailable) << user.err().message;
  EXPECT_LT(user_t, 8s);
  auto [appended, append_t] =
      timed([&] { return append_and_wait(*store, make_message(alice_, bob_, "lost?")); });
  ASSERT_FALSE(appended.ok());
  EXPECT_EQ(appended.code(), errc::unavailable) << appended.err().message;
  EXPECT_LT(append_t, 8s);
  auto [opened, open_t] = timed([&] { return MongoStore::open(MongoOptions{uri_}); });
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.code(), errc::unavailable);
  EXPECT_LT(open_t, 8s);

  ASSERT_TRUE(Ferret::get().ensure_started());
  const auto deadline = Clock::now() + 15s;
  while (!store->ping().ok() && Clock::now() < deadline) std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(store->ping().ok()) << "the pool reconnects by itself";
  auto again = store->user_by_id(alice_);
  ASSERT_TRUE(again.ok()) << again.err().message;
  EXPECT_EQ(again->email, "alice@example.com");
  const Message m = make_message(alice_, bob_, "back");
  ASSERT_TRUE(append_and_wait(*store, m).ok());
  EXPECT_EQ(ids_of(store->conversation_page(m.conversation_id, "", 10)->messages),
            std::vector<std::string>{m.id});
}

// --- the shared Store contract ----------------------------------------------------------------

struct MongoBackend {
  std::unique_ptr<Store> open() {
    if (!Ferret::get().ensure_started()) return nullptr;
    auto r = MongoStore::open(MongoOptions{Ferret::get().fresh_uri()});
    if (!r.ok()) ADD_FAILURE() << r.err().message;
    return r.ok() ? std::move(r).value() : nullptr;
  }
};

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(Mongo, ReadStateContract, MongoBackend);
}  // namespace contract
}  // namespace chat::store
