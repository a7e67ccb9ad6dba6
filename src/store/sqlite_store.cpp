#include "store/sqlite_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdlib>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "core/log.hpp"
#include "core/time.hpp"

namespace chat::store {
namespace {

constexpr int kSchemaVersion = 1;

// Group conversations later only need rows with kind = 'group' and more members: messages point
// at a conversation, membership is its own table, receiver_id is only meaningful for 'direct'.
constexpr const char* kSchema = R"sql(
CREATE TABLE users (
  id              TEXT PRIMARY KEY NOT NULL,
  email           TEXT NOT NULL UNIQUE,
  password_hash   TEXT NOT NULL DEFAULT '',
  full_name       TEXT NOT NULL DEFAULT '',
  profile_picture TEXT NOT NULL DEFAULT '',
  bio             TEXT NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX users_by_name ON users(full_name COLLATE NOCASE, id);

CREATE TABLE conversations (
  id         TEXT PRIMARY KEY NOT NULL,
  kind       TEXT NOT NULL,
  created_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE conversation_members (
  conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  user_id         TEXT NOT NULL,
  last_read_id    TEXT,
  PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX conversation_members_by_user ON conversation_members(user_id);

CREATE TABLE messages (
  id              TEXT PRIMARY KEY NOT NULL,
  conversation_id TEXT NOT NULL REFERENCES conversations(id),
  sender_id       TEXT NOT NULL,
  receiver_id     TEXT NOT NULL DEFAULT '',
  text            TEXT NOT NULL DEFAULT '',
  image           TEXT NOT NULL DEFAULT '',
  client_msg_id   TEXT NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE UNIQUE INDEX messages_by_client_msg_id ON messages(sender_id, client_msg_id)
  WHERE client_msg_id <> '';

CREATE TABLE media (
  id           TEXT PRIMARY KEY NOT NULL,
  content_type TEXT NOT NULL DEFAULT '',
  bytes        BLOB NOT NULL,
  created_at   INTEGER NOT NULL DEFAULT 0
);
)sql";

#define CHAT_USER_COLS \
  "id, email, password_hash, full_name, profile_picture, bio, created_at, updated_at"
#define CHAT_MSG_COLS \
  "id, conversation_id, sender_id, receiver_id, text, image, client_msg_id, created_at, updated_at"
#define CHAT_LAST_MSG_COLS                                                                    \
  "last.id, last.conversation_id, last.sender_id, last.receiver_id, last.text, last.image,"   \
  " last.client_msg_id, last.created_at, last.updated_at"

// Every statement any connection runs; each connection prepares all of them once.
enum Q : int {
  kUserInsert,
  kUserById,
  kUserByEmail,
  kUsersExcept,
  kUserUpdate,
  kUserSetPassword,
  kMsgByClientId,
  kConvInsert,
  kMemberInsert,
  kMsgInsert,
  kPageNewest,
  kPageBefore,
  kMarkRead,
  kSummaries,
  kMediaPut,
  kMediaGet,
  kLastRead,
  kPing,
  kBegin,
  kCommit,
  kRollback,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kQueryCount,
};

constexpr std::array<const char*, kQueryCount> kSql = {
    "INSERT INTO users (" CHAT_USER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "SELECT " CHAT_USER_COLS " FROM users WHERE id = ?1",
    "SELECT " CHAT_USER_COLS " FROM users WHERE email = ?1",
    "SELECT " CHAT_USER_COLS " FROM users WHERE id <> ?1 ORDER BY full_name COLLATE NOCASE, id",
    "UPDATE users SET full_name = coalesce(?2, full_name),"
    " profile_picture = coalesce(?3, profile_picture), bio = coalesce(?4, bio), updated_at = ?5"
    " WHERE id = ?1",
    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
    // The `<> ''` term lets the planner use the partial unique index.
    "SELECT " CHAT_MSG_COLS
    " FROM messages WHERE sender_id = ?1 AND client_msg_id = ?2 AND client_msg_id <> ''",
    "INSERT INTO conversations (id, kind, created_at) VALUES (?1, 'direct', ?2)"
    " ON CONFLICT (id) DO NOTHING",
    "INSERT INTO conversation_members (conversation_id, user_id) VALUES (?1, ?2)"
    " ON CONFLICT DO NOTHING",
    // A duplicate clientMsgId (or id) inserts nothing: the append looks the first one up then,
    // so the common case costs one statement and no lookup.
    "INSERT INTO messages (" CHAT_MSG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    " ON CONFLICT DO NOTHING",
    "SELECT " CHAT_MSG_COLS
    " FROM messages WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2",
    "SELECT " CHAT_MSG_COLS
    " FROM messages WHERE conversation_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    // Clamped to the newest message: a read position past it would hide messages to come.
    "UPDATE conversation_members SET last_read_id = max(coalesce(last_read_id, ''),"
    " min(?3, coalesce((SELECT id FROM messages WHERE conversation_id = ?1"
    " ORDER BY id DESC LIMIT 1), '')))"
    " WHERE conversation_id = ?1 AND user_id = ?2 RETURNING coalesce(last_read_id, '')",
    // Index range scans only: the newest message is the last entry of (conversation_id, id);
    // unread messages are counted after max(read position, the (kUnreadWindow+1)-th newest id),
    // so the count reads at most kUnreadWindow rows however long the history.
    "SELECT me.conversation_id, coalesce(me.last_read_id, ''), peer.user_id,"
    " (SELECT count(*) FROM messages u WHERE u.conversation_id = me.conversation_id"
    "   AND u.id > max(coalesce(me.last_read_id, ''),"
    "     coalesce((SELECT w.id FROM messages w WHERE w.conversation_id = me.conversation_id"
    "       ORDER BY w.id DESC LIMIT 1 OFFSET ?2), ''))"
    "   AND u.sender_id = peer.user_id),"
    " last.id IS NOT NULL, " CHAT_LAST_MSG_COLS
    " FROM conversation_members me"
    " JOIN conversations c ON c.id = me.conversation_id AND c.kind = 'direct'"
    " JOIN conversation_members peer"
    "   ON peer.conversation_id = me.conversation_id AND peer.user_id <> me.user_id"
    " LEFT JOIN messages last ON last.id = (SELECT l.id FROM messages l"
    "   WHERE l.conversation_id = me.conversation_id ORDER BY l.id DESC LIMIT 1)"
    " WHERE me.user_id = ?1",
    "INSERT INTO media (id, content_type, bytes, created_at) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (id) DO UPDATE SET content_type = excluded.content_type,"
    " bytes = excluded.bytes, created_at = excluded.created_at",
    "SELECT content_type, bytes FROM media WHERE id = ?1",
    "SELECT coalesce(last_read_id, '') FROM conversation_members"
    " WHERE conversation_id = ?1 AND user_id = ?2",
    "PRAGMA user_version",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT job",
    "RELEASE job",
    "ROLLBACK TO job",
};

#undef CHAT_USER_COLS
#undef CHAT_MSG_COLS
#undef CHAT_LAST_MSG_COLS

errc map_sqlite_code(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return errc::unavailable;
    default:
      return errc::internal;
  }
}

// One connection and its prepared statements. Used by one thread at a time.
class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    for (sqlite3_stmt*& s : stmts_) {
      sqlite3_finalize(s);
      s = nullptr;
    }
    if (db_) sqlite3_close(db_);
  }

  result<void> open(const std::string& path, int flags, int busy_timeout_ms) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      return error{map_sqlite_code(rc), "cannot open database '" + path + "': " + msg};
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    return {};
  }

  result<void> prepare_all() {
    for (int q = 0; q < kQueryCount; ++q) {
      const int rc = sqlite3_prepare_v3(db_, kSql[q], -1, SQLITE_PREPARE_PERSISTENT, &stmts_[q],
                                        nullptr);
      if (rc != SQLITE_OK) return fail(rc, std::string("prepare '") + kSql[q] + "'");
    }
    return {};
  }

  /// sqlite3_exec for set-up statements (pragmas, schema).
  result<void> exec(const char* sql) {
    char* msg = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
    if (rc == SQLITE_OK) return {};
    std::string text = msg ? msg : sqlite3_errstr(rc);
    sqlite3_free(msg);
    return error{map_sqlite_code(rc), std::string(sql).substr(0, 60) + ": " + text};
  }

  /// A single-row pragma's first column as text ("" when none).
  std::string pragma_text(const char* sql) {
    sqlite3_stmt* s = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      if (const unsigned char* t = sqlite3_column_text(s, 0))
        out = reinterpret_cast<const char*>(t);
    }
    sqlite3_finalize(s);
    return out;
  }

  error fail(int rc, std::string_view what) const {
    return error{map_sqlite_code(rc), std::string(what) + ": " + sqlite3_errmsg(db_)};
  }

  sqlite3* db() const { return db_; }
  sqlite3_stmt* stmt(Q q) const { return stmts_[q]; }
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

  /// Runs a statement that returns no rows (transaction control).
  result<void> run(Q q, std::string_view what);

 private:
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, kQueryCount> stmts_{};
};

// Scoped use of a cached statement: binds, steps, reads; reset on destruction so the read
// transaction ends and no bound pointer outlives the caller's data (binds are SQLITE_STATIC).
class Stmt {
 public:
  Stmt(Conn& c, Q q) : c_(c), s_(c.stmt(q)) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

  Stmt& text(int i, std::string_view v) {
    // A null pointer would bind NULL; "" must stay an empty string.
    const char* p = v.data() ? v.data() : "";
    note(sqlite3_bind_text64(s_, i, p, v.size(), SQLITE_STATIC, SQLITE_UTF8));
    return *this;
  }
  Stmt& opt_text(int i, const std::optional<std::string>& v) {  // NULL when absent
    if (v) return text(i, std::string_view(*v));
    note(sqlite3_bind_null(s_, i));
    return *this;
  }
  Stmt& blob(int i, std::string_view v) {
    const char* p = v.data() ? v.data() : "";
    note(sqlite3_bind_blob64(s_, i, p, v.size(), SQLITE_STATIC));
    return *this;
  }
  Stmt& integer(int i, std::int64_t v) {
    note(sqlite3_bind_int64(s_, i, v));
    return *this;
  }

  /// SQLITE_ROW, SQLITE_DONE or an error code (a failed bind is reported here).
  int step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(s_);
  }

  std::string col_text(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, i));
    const int n = sqlite3_column_bytes(s_, i);
    return p && n > 0 ? std::string(p, static_cast<std::size_t>(n)) : std::string();
  }
  std::int64_t col_int(int i) const { return sqlite3_column_int64(s_, i); }

  error fail(int rc, std::string_view what) const { return c_.fail(rc, what); }

 private:
  void note(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  Conn& c_;
  sqlite3_stmt* s_;
  int bind_rc_ = SQLITE_OK;
};

result<void> Conn::run(Q q, std::string_view what) {
  Stmt s(*this, q);
  const int rc = s.step();
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
  return s.fail(rc, what);
}

User read_user(const Stmt& s) {
  User u;
  u.id = s.col_text(0);
  u.email = s.col_text(1);
  u.password_hash = s.col_text(2);
  u.full_name = s.col_text(3);
  u.profile_picture = s.col_text(4);
  u.bio = s.col_text(5);
  u.created_at = s.col_int(6);
  u.updated_at = s.col_int(7);
  return u;
}

// The CHAT_MSG_COLS columns, starting at column `first`.
Message read_message(const Stmt& s, int first = 0) {
  Message m;
  m.id = s.col_text(first + 0);
  m.conversation_id = s.col_text(first + 1);
  m.sender_id = s.col_text(first + 2);
  m.receiver_id = s.col_text(first + 3);
  m.text = s.col_text(first + 4);
  m.image = s.col_text(first + 5);
  m.client_msg_id = s.col_text(first + 6);
  m.created_at = s.col_int(first + 7);
  m.updated_at = s.col_int(first + 8);
  return m;
}

result<User> query_user(Conn& c, Q q, std::string_view key) {
  Stmt s(c, q);
  s.text(1, key);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return read_user(s);
  if (rc == SQLITE_DONE) return error{errc::not_found, "user not found"};
  return s.fail(rc, "read user");
}

result<Message> message_by_client_id(Conn& c, std::string_view sender_id,
                                     std::string_view client_msg_id) {
  Stmt s(c, kMsgByClientId);
  s.text(1, sender_id).text(2, client_msg_id);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return read_message(s);
  if (rc == SQLITE_DONE) return error{errc::not_found, "message not found"};
  return s.fail(rc, "find message by client_msg_id");
}

// ---------------------------------------------------------------------------------------------
// Write jobs: run() executes inside the batch transaction (in its own savepoint) and stages the
// outcome; deliver() hands it over once the transaction committed, or the batch's failure.

/// Conversations known to exist with their members (so appends skip three inserts). Touched
/// only by the writer thread. A conversation is added once its job succeeded; everything is
/// forgotten when a batch fails, since its inserts were rolled back.
struct KnownConversations {
  std::unordered_set<std::string> ids;
  std::vector<std::string> pending;  // added by the batch in progress
  static constexpr std::size_t kMax = 100'000;
};

struct WriteJob {
  virtual ~WriteJob() = default;
  /// The job's own error, if any: the runner rolls its savepoint back.
  virtual std::optional<error> run(Conn& w, KnownConversations& known) = 0;
  virtual void deliver(const error* batch_failure) = 0;
  /// False when a failure of the job can only come from its last statement, which SQLite
  /// undoes by itself (statement-level ABORT) — no savepoint needed.
  virtual bool needs_savepoint() const { return true; }
  /// True when deliver() may run on another thread (SqliteStore::set_callback_executor).
  virtual bool deliver_elsewhere() const { return false; }
};

template <class T>
struct SyncJob final : WriteJob {
  explicit SyncJob(std::function<result<T>(Conn&)> b) : body(std::move(b)) {}

  std::optional<error> run(Conn& w, KnownConversations&) override {
    staged.emplace(body(w));
    if (staged->ok()) return std::nullopt;
    return staged->err();
  }
  void deliver(const error* batch_failure) override {
    if (batch_failure || !staged) {
      promise.set_value(batch_failure ? *batch_failure : error{errc::internal, "write not run"});
    } else {
      promise.set_value(std::move(*staged));
    }
  }

  std::function<result<T>(Conn&)> body;
  std::promise<result<T>> promise;
  std::optional<result<T>> staged;
};

struct AppendJob final : WriteJob {
  AppendJob(Message msg, Store::AppendCallback cb) : m(std::move(msg)), done(std::move(cb)) {}

  // Every statement before the message insert is an idempotent insert-if-absent.
  bool needs_savepoint() const override { return false; }
  bool deliver_elsewhere() const override { return true; }

  std::optional<error> run(Conn& w, KnownConversations& known) override {
    staged.reset();
    if (auto r = append(w, known); !r.ok()) {
      staged.emplace(r.err());
      return r.err();
    }
    return std::nullopt;
  }

  result<void> append(Conn& w, KnownConversations& known) {
    if (m.id.empty() || m.conversation_id.empty() || m.sender_id.empty() || m.receiver_id.empty())
      return error{errc::invalid_argument, "message needs id, conversation, sender and receiver"};
    const bool new_conversation = !known.ids.contains(m.conversation_id);
    if (new_conversation) {
      {
        Stmt s(w, kConvInsert);
        s.text(1, m.conversation_id).integer(2, m.created_at);
        if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "insert conversation");
      }
      for (const std::string* member : {&m.sender_id, &m.receiver_id}) {
        Stmt s(w, kMemberInsert);
        s.text(1, m.conversation_id).text(2, *member);
        if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "insert conversation member");
      }
    }
    Stmt s(w, kMsgInsert);
    s.text(1, m.id).text(2, m.conversation_id).text(3, m.sender_id).text(4, m.receiver_id);
    s.text(5, m.text).text(6, m.image).text(7, m.client_msg_id);
    s.integer(8, m.created_at).integer(9, m.updated_at);
    if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "insert message");
    if (new_conversation && known.ids.size() < KnownConversations::kMax) {
      known.ids.insert(m.conversation_id);
      known.pending.push_back(m.conversation_id);
    }
    if (sqlite3_changes(w.db()) == 0) {
      // Nothing inserted: a retry of a clientMsgId stored before (possibly earlier in this
      // batch: the lookup runs on the writer connection), or an id that already exists.
      if (!m.client_msg_id.empty()) {
        auto existing = message_by_client_id(w, m.sender_id, m.client_msg_id);
        if (existing.ok()) {
          staged.emplace(Appended{std::move(existing).value(), true});
          return {};
        }
        if (existing.code() != errc::not_found) return existing.err();
      }
      return error{errc::internal, "a message with this id exists (ids are unique)"};
    }
    staged.emplace(Appended{std::move(m), false});
    return {};
  }

  void deliver(const error* batch_failure) override {
    result<Appended> r = batch_failure ? result<Appended>(*batch_failure)
                         : staged     ? std::move(*staged)
                                      : result<Appended>(errc::internal, "append not run");
    try {
      done(std::move(r));
    } catch (const std::exception& e) {
      spdlog::error("store: append callback threw: {}", e.what());
    } catch (...) {
      spdlog::error("store: append callback threw");
    }
  }

  Message m;
  Store::AppendCallback done;
  std::optional<result<Appended>> staged;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct SqliteStore::Impl {
  SqliteOptions opts;
  std::unique_ptr<Conn> writer_conn;
  KnownConversations known;  // writer thread only

  // Write queue. `accepted` counts jobs ever queued, `completed` jobs delivered: flush() waits
  // for completed to reach the accepted count it saw.
  mutable std::mutex mu;
  std::condition_variable work_cv;
  std::condition_variable done_cv;
  std::deque<std::unique_ptr<WriteJob>> queue;
  std::uint64_t accepted = 0;
  std::uint64_t completed = 0;
  bool stopping = false;
  CallbackExecutor callback_executor;
  std::thread writer;
  std::atomic<std::size_t> pending{0};
  std::atomic<std::uint64_t> commits{0};

  // Read pool.
  std::mutex readers_mu;
  std::condition_variable readers_cv;
  std::vector<std::unique_ptr<Conn>> readers;
  std::vector<Conn*> free_readers;

  // Checkpoints. The WAL is copied back into the database by a thread of its own (a passive
  // checkpoint never blocks the writer), so that the writer's commits do not stall for the
  // copy: inline autocheckpoints of a large WAL were the writer's longest pauses (latency
  // tails). A passive checkpoint cannot always finish while commits keep coming, and the WAL
  // only restarts from its beginning after one that did; so past kInlineCheckpointPages the
  // writer checkpoints itself (little is left to copy by then), which bounds the WAL's size.
  static constexpr int kBackgroundCheckpointPages = 2000;
  static constexpr int kInlineCheckpointPages = 8000;
  std::unique_ptr<Conn> checkpoint_conn;
  std::thread checkpointer;
  std::mutex checkpoint_mu;
  std::condition_variable checkpoint_cv;
  bool checkpoint_wanted = false;  // guarded by checkpoint_mu
  bool checkpoint_stop = false;    // guarded by checkpoint_mu
  std::atomic<std::uint64_t> checkpoints{0};

  /// sqlite3_wal_hook on the writer connection: runs after each commit with the WAL's size.
  static int on_wal_commit(void* arg, sqlite3* db, const char*, int pages) {
    auto* self = static_cast<Impl*>(arg);
    if (pages >= kInlineCheckpointPages) {
      (void)sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      self->checkpoints.fetch_add(1, std::memory_order_relaxed);
    } else if (pages >= kBackgroundCheckpointPages && self->checkpointer.joinable()) {
      {
        std::lock_guard lk(self->checkpoint_mu);
        self->checkpoint_wanted = true;
      }
      self->checkpoint_cv.notify_one();
    }
    return SQLITE_OK;
  }

  void checkpoint_loop() {
    for (;;) {
      {
        std::unique_lock lk(checkpoint_mu);
        checkpoint_cv.wait(lk, [&] { return checkpoint_wanted || checkpoint_stop; });
        if (checkpoint_stop) return;
        checkpoint_wanted = false;
      }
      const int rc = sqlite3_wal_checkpoint_v2(checkpoint_conn->db(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                               nullptr, nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        spdlog::warn("store: background checkpoint failed: {}", sqlite3_errstr(rc));
      checkpoints.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void stop_checkpointer() {
    if (!checkpointer.joinable()) return;
    {
      std::lock_guard lk(checkpoint_mu);
      checkpoint_stop = true;
    }
    checkpoint_cv.notify_all();
    checkpointer.join();
  }

  ~Impl() {
    if (writer.joinable()) {
      {
        std::lock_guard lk(mu);
        stopping = true;
      }
      work_cv.notify_all();
      writer.join();
    }
    stop_checkpointer();
    // Readers first: the last connection to close checkpoints and removes the WAL.
    checkpoint_conn.reset();
    free_readers.clear();
    readers.clear();
    writer_conn.reset();
  }

  bool on_writer_thread() const { return std::this_thread::get_id() == writer.get_id(); }

  /// Takes `job` (moves from it) unless the queue is full or the store is closing.
  result<void> enqueue(std::unique_ptr<WriteJob>& job) {
    {
      std::lock_guard lk(mu);
      if (stopping) return error{errc::unavailable, "store closing"};
      if (queue.size() >= opts.max_pending_writes)
        return error{errc::unavailable, "store queue full"};
      queue.push_back(std::move(job));
      ++accepted;
      pending.store(queue.size(), std::memory_order_relaxed);
    }
    work_cv.notify_one();
    return {};
  }

  template <class T>
  result<T> run_sync(std::function<result<T>(Conn&)> body) {
    if (on_writer_thread())
      return error{errc::internal, "synchronous store write from the store's writer thread"};
    auto job = std::make_unique<SyncJob<T>>(std::move(body));
    auto future = job->promise.get_future();
    std::unique_ptr<WriteJob> base = std::move(job);
    if (auto r = enqueue(base); !r.ok()) return r.err();
    return future.get();
  }

  void writer_loop() {
    std::vector<std::unique_ptr<WriteJob>> batch;
    batch.reserve(std::min<std::size_t>(opts.max_batch, 4096));
    for (;;) {
      {
        std::unique_lock lk(mu);
        work_cv.wait(lk, [&] { return !queue.empty() || stopping; });
        if (queue.empty()) return;  // stopping, and everything is delivered
        const std::size_t n = std::min(queue.size(), opts.max_batch);
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        pending.store(queue.size(), std::memory_order_relaxed);
      }
      run_batch(batch);
      const std::size_t n = batch.size();
      batch.clear();
      {
        std::lock_guard lk(mu);
        completed += n;
      }
      done_cv.notify_all();
    }
  }

  // One transaction for the whole batch: one fsync however many jobs. Each job runs in a
  // savepoint so its own failure (a constraint, a missing row) is undone without touching the
  // others; a failure of the transaction itself (disk full, I/O error) fails every job.
  void run_batch(std::vector<std::unique_ptr<WriteJob>>& batch) {
    Conn& w = *writer_conn;
    auto fail_all = [&](const error& e) {
      if (w.in_transaction()) (void)w.run(kRollback, "rollback");
      for (const auto& id : known.pending) known.ids.erase(id);  // their inserts are undone
      known.pending.clear();
      spdlog::warn("store: write batch of {} failed: {}", batch.size(), e.message);
      for (auto& job : batch) job->deliver(&e);
    };

    if (auto r = w.run(kBegin, "begin transaction"); !r.ok()) return fail_all(r.err());
    known.pending.clear();
    for (auto& job : batch) {
      const bool savepoint = job->needs_savepoint();
      if (savepoint)
        if (auto r = w.run(kSavepoint, "savepoint"); !r.ok()) return fail_all(r.err());
      std::optional<error> job_error = job->run(w, known);
      if (!job_error) {
        if (savepoint)
          if (auto r = w.run(kRelease, "release savepoint"); !r.ok()) return fail_all(r.err());
        continue;
      }
      // SQLite may have rolled the whole transaction back (FULL, IOERR, BUSY, NOMEM).
      if (job_error->code == errc::unavailable || !w.in_transaction())
        return fail_all(*job_error);
      if (!savepoint) continue;
      if (auto r = w.run(kRollbackTo, "rollback to savepoint"); !r.ok()) return fail_all(r.err());
      if (auto r = w.run(kRelease, "release savepoint"); !r.ok()) return fail_all(r.err());
    }
    if (auto r = w.run(kCommit, "commit"); !r.ok()) return fail_all(r.err());
    commits.fetch_add(1, std::memory_order_relaxed);
    CallbackExecutor exec;
    {
      std::lock_guard lk(mu);
      exec = callback_executor;
    }
    if (!exec) {
      for (auto& job : batch) job->deliver(nullptr);
      return;
    }
    // Synchronous writers wait on this thread's promise; appends' callbacks go to the executor.
    auto handed = std::make_shared<std::vector<std::unique_ptr<WriteJob>>>();
    for (auto& job : batch) {
      if (job->deliver_elsewhere()) handed->push_back(std::move(job));
      else job->deliver(nullptr);
    }
    if (handed->empty()) return;
    exec([handed] {
      for (auto& job : *handed) job->deliver(nullptr);
    });
  }

  // Read pool: a connection per concurrent reader, handed out under a mutex.
  class Lease {
   public:
    explicit Lease(Impl& impl) : impl_(impl) {
      std::unique_lock lk(impl_.readers_mu);
      impl_.readers_cv.wait(lk, [&] { return !impl_.free_readers.empty(); });
      conn_ = impl_.free_readers.back();
      impl_.free_readers.pop_back();
    }
    ~Lease() {
      {
        std::lock_guard lk(impl_.readers_mu);
        impl_.free_readers.push_back(conn_);
      }
      impl_.readers_cv.notify_one();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Conn& conn() { return *conn_; }

   private:
    Impl& impl_;
    Conn* conn_ = nullptr;
  };
};

namespace {

// Runs before the statements are prepared (they need the tables), hence plain exec.
result<void> create_schema(Conn& w, const std::string& path) {
  auto with_path = [&](error e) -> result<void> {
    if (w.in_transaction()) (void)w.exec("ROLLBACK");
    e.message = "database '" + path + "': " + e.message;
    return e;
  };
  if (auto r = w.exec("BEGIN IMMEDIATE"); !r.ok()) return with_path(r.err());
  const std::string version_text = w.pragma_text("PRAGMA user_version");
  if (version_text.empty()) return with_path(w.fail(sqlite3_errcode(w.db()), "read user_version"));
  const int version = std::atoi(version_text.c_str());
  if (version == 0) {
    if (auto r = w.exec(kSchema); !r.ok()) return with_path(r.err());
    const std::string set = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
    if (auto r = w.exec(set.c_str()); !r.ok()) return with_path(r.err());
  } else if (version != kSchemaVersion) {
    return with_path(error{errc::internal, "unsupported schema version " + version_text +
                                               " (this build knows " +
                                               std::to_string(kSchemaVersion) + ")"});
  }
  if (auto r = w.exec("COMMIT"); !r.ok()) return with_path(r.err());
  return {};
}

}  // namespace

result<std::unique_ptr<SqliteStore>> SqliteStore::open(const SqliteOptions& options) {
  if (options.path.empty()) return error{errc::invalid_argument, "database path is empty"};
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->opts.max_pending_writes = std::max<std::size_t>(impl->opts.max_pending_writes, 1);
  impl->opts.max_batch = std::max<std::size_t>(impl->opts.max_batch, 1);
  impl->opts.readers = std::max<std::size_t>(impl->opts.readers, 1);
  const std::string& path = impl->opts.path;

  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return error{errc::unavailable, "cannot create directory '" + parent.string() +
                                          "' for database '" + path + "': " + ec.message()};
    }
  }

  impl->writer_conn = std::make_unique<Conn>();
  Conn& w = *impl->writer_conn;
  if (auto r = w.open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout_ms);
      !r.ok())
    return r.err();
  // WAL lets readers run while the writer commits; FULL fsyncs each commit (acknowledged writes
  // survive power loss), which is why the writer groups commits.
  if (auto r = w.exec("PRAGMA journal_mode = WAL"); !r.ok())
    return error{r.code(), "database '" + path + "': " + r.err().message};
  if (std::string mode = w.pragma_text("PRAGMA journal_mode"); mode != "wal")
    return error{errc::unavailable,
                 "database '" + path + "': cannot enable WAL mode (journal_mode=" + mode + ")"};
  // A 64 MiB page cache and memory-mapped reads keep the hot index pages out of read() calls
  // (profiled: with the 2 MiB default the writer spent a third of its time in page syscalls).
  if (auto r = w.exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                      "PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456;");
      !r.ok())
    return error{r.code(), "database '" + path + "': " + r.err().message};
  if (auto r = create_schema(w, path); !r.ok()) return r.err();
  if (auto r = w.prepare_all(); !r.ok())
    return error{r.code(), "database '" + path + "': " + r.err().message};

  for (std::size_t i = 0; i < impl->opts.readers; ++i) {
    auto c = std::make_unique<Conn>();
    if (auto r = c->open(path, SQLITE_OPEN_READONLY, options.busy_timeout_ms); !r.ok())
      return r.err();
    (void)c->exec("PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;");
    if (auto r = c->prepare_all(); !r.ok())
      return error{r.code(), "database '" + path + "': " + r.err().message};
    impl->free_readers.push_back(c.get());
    impl->readers.push_back(std::move(c));
  }

  // Checkpoints on a thread of their own (see Impl::on_wal_commit); replaces autocheckpoint.
  // Copying the WAL less often than SQLite's default (~4 MiB) also copies a hot index page
  // rewritten by many commits once per checkpoint (measured with ~40 MiB autocheckpoints: a
  // third fewer bytes written per message).
  impl->checkpoint_conn = std::make_unique<Conn>();
  if (auto r = impl->checkpoint_conn->open(path, SQLITE_OPEN_READWRITE, options.busy_timeout_ms); !r.ok())
    return r.err();
  sqlite3_wal_hook(w.db(), &Impl::on_wal_commit, impl.get());
  try {
    impl->checkpointer = std::thread([p = impl.get()] { p->checkpoint_loop(); });
  } catch (const std::system_error& e) {
    return error{errc::unavailable, std::string("cannot start the store checkpoint thread: ") + e.what()};
  }
  try {
    impl->writer = std::thread([p = impl.get()] { p->writer_loop(); });
  } catch (const std::system_error& e) {
    return error{errc::unavailable,
                 std::string("cannot start the store writer thread: ") + e.what()};
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SqliteStore::~SqliteStore() = default;

result<User> SqliteStore::create_user(const User& user) {
  return impl_->run_sync<User>([&user](Conn& w) -> result<User> {
    Stmt s(w, kUserInsert);
    s.text(1, user.id).text(2, user.email).text(3, user.password_hash).text(4, user.full_name);
    s.text(5, user.profile_picture).text(6, user.bio);
    s.integer(7, user.created_at).integer(8, user.updated_at);
    const int rc = s.step();
    if (rc == SQLITE_DONE) return user;
    if (rc == SQLITE_CONSTRAINT_UNIQUE &&
        std::string_view(sqlite3_errmsg(w.db())).find("users.email") != std::string_view::npos)
      return error{errc::already_exists, "User account already exists with this email"};
    return s.fail(rc, "insert user");
  });
}

result<User> SqliteStore::user_by_id(std::string_view id) {
  Impl::Lease lease(*impl_);
  return query_user(lease.conn(), kUserById, id);
}

result<User> SqliteStore::user_by_email(std::string_view email) {
  Impl::Lease lease(*impl_);
  return query_user(lease.conn(), kUserByEmail, email);
}

result<std::vector<User>> SqliteStore::users_except(std::string_view id) {
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), kUsersExcept);
  s.text(1, id);
  std::vector<User> out;
  for (;;) {
    const int rc = s.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return s.fail(rc, "list users");
    out.push_back(read_user(s));
  }
}

result<User> SqliteStore::update_user(std::string_view id, const UserPatch& patch,
                                      std::int64_t now_ms) {
  return impl_->run_sync<User>([id, &patch, now_ms](Conn& w) -> result<User> {
    {
      Stmt s(w, kUserUpdate);
      s.text(1, id).opt_text(2, patch.full_name).opt_text(3, patch.profile_picture);
      s.opt_text(4, patch.bio);
      s.integer(5, now_ms);
      if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "update user");
      if (sqlite3_changes(w.db()) == 0) return error{errc::not_found, "user not found"};
    }
    return query_user(w, kUserById, id);
  });
}

result<void> SqliteStore::set_password_hash(std::string_view id, std::string_view hash) {
  return impl_->run_sync<void>([id, hash](Conn& w) -> result<void> {
    Stmt s(w, kUserSetPassword);
    s.text(1, id).text(2, hash);
    if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "set password hash");
    if (sqlite3_changes(w.db()) == 0) return error{errc::not_found, "user not found"};
    return {};
  });
}

void SqliteStore::append_message(Message m, AppendCallback done) {
  std::unique_ptr<WriteJob> job = std::make_unique<AppendJob>(std::move(m), std::move(done));
  if (auto r = impl_->enqueue(job); !r.ok()) job->deliver(&r.err());
}

result<MessagePage> SqliteStore::conversation_page(std::string_view conversation_id,
                                                   std::string_view before_id,
                                                   std::size_t limit) {
  // One row more than asked tells whether older messages exist.
  constexpr auto kMaxLimit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max() - 1);
  limit = std::min(limit, kMaxLimit);
  const auto fetch = static_cast<std::int64_t>(limit + 1);

  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), before_id.empty() ? kPageNewest : kPageBefore);
  s.text(1, conversation_id);
  if (before_id.empty()) {
    s.integer(2, fetch);
  } else {
    s.text(2, before_id).integer(3, fetch);
  }
  MessagePage page;
  for (;;) {
    const int rc = s.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return s.fail(rc, "read conversation page");
    if (page.messages.size() == limit) {
      page.has_more = true;
      break;
    }
    page.messages.push_back(read_message(s));
  }
  std::reverse(page.messages.begin(), page.messages.end());
  return page;
}

result<std::string> SqliteStore::mark_read(std::string_view conversation_id,
                                           std::string_view user_id,
                                           std::string_view up_to_id) {
  if (up_to_id.empty()) return error{errc::invalid_argument, "read position is empty"};
  return impl_->run_sync<std::string>(
      [conversation_id, user_id, up_to_id](Conn& w) -> result<std::string> {
        Stmt s(w, kMarkRead);
        s.text(1, conversation_id).text(2, user_id).text(3, up_to_id);
        int rc = s.step();
        if (rc == SQLITE_DONE)
          return error{errc::not_found, "not a member of the conversation"};
        if (rc != SQLITE_ROW) return s.fail(rc, "mark read");
        std::string last_read = s.col_text(0);
        // The row is already updated; stepping to the end finishes the statement cleanly.
        while ((rc = s.step()) == SQLITE_ROW) {
        }
        if (rc != SQLITE_DONE) return s.fail(rc, "mark read");
        return last_read;
      });
}

result<std::vector<ConversationSummary>> SqliteStore::conversation_summaries(
    std::string_view user_id) {
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), kSummaries);
  s.text(1, user_id).integer(2, static_cast<std::int64_t>(kUnreadWindow));
  std::vector<ConversationSummary> out;
  for (;;) {
    const int rc = s.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return s.fail(rc, "read conversation summaries");
    ConversationSummary c;
    c.conversation_id = s.col_text(0);
    c.last_read_id = s.col_text(1);
    c.peer_id = s.col_text(2);
    c.unread = static_cast<std::size_t>(std::max<std::int64_t>(s.col_int(3), 0));
    if (s.col_int(4) != 0) c.last_message = read_message(s, 5);
    out.push_back(std::move(c));
  }
}

result<std::string> SqliteStore::last_read(std::string_view conversation_id, std::string_view user_id) {
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), kLastRead);
  s.text(1, conversation_id).text(2, user_id);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::string{};
  if (rc != SQLITE_ROW) return s.fail(rc, "read a read position");
  return s.col_text(0);
}

std::string_view SqliteStore::query_sql(std::string_view name) {
  if (name == "mark_read") return kSql[kMarkRead];
  if (name == "conversation_summaries") return kSql[kSummaries];
  if (name == "conversation_page") return kSql[kPageBefore];
  return {};
}

result<void> SqliteStore::put_media(std::string_view id, std::string_view content_type,
                                    std::string_view bytes) {
  const std::int64_t now = chat::now_ms();
  return impl_->run_sync<void>([id, content_type, bytes, now](Conn& w) -> result<void> {
    Stmt s(w, kMediaPut);
    s.text(1, id).text(2, content_type).blob(3, bytes).integer(4, now);
    if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "store media");
    return {};
  });
}

result<Media> SqliteStore::media(std::string_view id) {
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), kMediaGet);
  s.text(1, id);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return error{errc::not_found, "media not found"};
  if (rc != SQLITE_ROW) return s.fail(rc, "read media");
  return Media{s.col_text(0), s.col_text(1)};
}

result<void> SqliteStore::ping() {
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), kPing);
  const int rc = s.step();
  if (rc != SQLITE_ROW) return s.fail(rc, "ping");
  if (s.col_int(0) != kSchemaVersion) return error{errc::internal, "unexpected schema version"};
  return {};
}

void SqliteStore::flush() {
  if (impl_->on_writer_thread()) return;
  std::unique_lock lk(impl_->mu);
  const std::uint64_t target = impl_->accepted;
  impl_->done_cv.wait(lk, [&] { return impl_->completed >= target; });
}

std::size_t SqliteStore::pending_writes() const {
  return impl_->pending.load(std::memory_order_relaxed);
}

void SqliteStore::set_callback_executor(CallbackExecutor exec) {
  std::lock_guard lk(impl_->mu);
  impl_->callback_executor = std::move(exec);
}

std::uint64_t SqliteStore::checkpoints() const {
  return impl_->checkpoints.load(std::memory_order_relaxed);
}

std::uint64_t SqliteStore::commits() const {
  return impl_->commits.load(std::memory_order_relaxed);
}

}  // namespace chat::store
