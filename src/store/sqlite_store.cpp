#include "store/sqlite_store.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <future>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/hash.hpp"
#include "core/json_text.hpp"
#include "core/log.hpp"
#include "core/sched.hpp"
#include "core/time.hpp"
#include "store/key_filter.hpp"
#include "store/message_journal.hpp"
#include "store/paced_vfs.hpp"
#include "store/pending_index.hpp"

namespace chat::store {
namespace {

constexpr int kSchemaVersion = 2;

// The clientMsgId lookup index. Keys are random, and a random insert into a large B-tree writes
// a page per insert (measured: without the old unique index, 1.5M appends took 21.9 s instead
// of 35.7 s); so keys are grouped in generations of client_keys_per_generation (key_gen):
// inserts only touch the newest generation's pages, which stay few and cached. A lookup probes
// each generation, and runs only when the in-memory filter says the key may exist. Uniqueness
// of (sender, clientMsgId) is kept by the journal thread, which alone decides what is appended.
#define CHAT_CLIENT_KEY_INDEX                                                   \
  "CREATE INDEX messages_by_client_key ON messages(key_gen, sender_id, client_msg_id)" \
  " WHERE client_msg_id <> '';"

// Schema 1 → 2: the unique (sender_id, client_msg_id) index becomes the generations index.
constexpr const char* kMigrateTo2 =
    "ALTER TABLE messages ADD COLUMN key_gen INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX messages_by_client_msg_id;" CHAT_CLIENT_KEY_INDEX;

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
  updated_at      INTEGER NOT NULL DEFAULT 0,
  key_gen         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
)sql" CHAT_CLIENT_KEY_INDEX R"sql(

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
  kMsgIdExists,
  kConvInsert,
  kMemberInsert,
  kMsgInsert,
  kPageNewest,
  kPageBefore,
  kMarkRead,
  kSummaries,
  kUnreadInWindow,
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
  kBeginRead,
  // The journal of earlier versions, a SQLite database (replayed once, see replay_legacy_journal).
  kJournalScan,
  kQueryCount,
};

// Which connections prepare a statement: the main database's, the legacy journal's, or both.
enum class Db { main, journal, both };
constexpr Db db_of(int q) {
  if (q >= kJournalScan) return Db::journal;
  if (q >= kBegin) return Db::both;
  return Db::main;
}

constexpr std::array<const char*, kQueryCount> kSql = {
    "INSERT INTO users (" CHAT_USER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    "SELECT " CHAT_USER_COLS " FROM users WHERE id = ?1",
    "SELECT " CHAT_USER_COLS " FROM users WHERE email = ?1",
    "SELECT " CHAT_USER_COLS " FROM users WHERE id <> ?1 ORDER BY full_name COLLATE NOCASE, id",
    "UPDATE users SET full_name = coalesce(?2, full_name),"
    " profile_picture = coalesce(?3, profile_picture), bio = coalesce(?4, bio), updated_at = ?5"
    " WHERE id = ?1",
    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
    // The `<> ''` term lets the planner use the partial index.
    "SELECT " CHAT_MSG_COLS " FROM messages"
    " WHERE key_gen = ?3 AND sender_id = ?1 AND client_msg_id = ?2 AND client_msg_id <> ''",
    "SELECT 1 FROM messages WHERE id = ?1",
    "INSERT INTO conversations (id, kind, created_at) VALUES (?1, 'direct', ?2)"
    " ON CONFLICT (id) DO NOTHING",
    "INSERT INTO conversation_members (conversation_id, user_id) VALUES (?1, ?2)"
    " ON CONFLICT DO NOTHING",
    // A duplicate clientMsgId (or id) inserts nothing: the append looks the first one up then,
    // so the common case costs one statement and no lookup.
    "INSERT INTO messages (" CHAT_MSG_COLS ", key_gen)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
    "SELECT " CHAT_MSG_COLS
    " FROM messages WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2",
    "SELECT " CHAT_MSG_COLS
    " FROM messages WHERE conversation_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    // Clamped to the newest message: a read position past it would hide messages to come. ?4:
    // the newest of the conversation's messages not indexed yet ('' if none).
    "UPDATE conversation_members SET last_read_id = max(coalesce(last_read_id, ''),"
    " min(?3, max(coalesce((SELECT id FROM messages WHERE conversation_id = ?1"
    " ORDER BY id DESC LIMIT 1), ''), ?4)))"
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
    // The peer's (?4) messages after the read position (?2) among the newest ?3 of those up to
    // ?5 (the newest a summary read): the main database's part of a window some of whose newest
    // messages are not indexed yet.
    "SELECT count(*) FROM messages u WHERE u.conversation_id = ?1 AND u.id <= ?5"
    " AND u.id > max(?2, coalesce((SELECT w.id FROM messages w WHERE w.conversation_id = ?1"
    "   AND w.id <= ?5 ORDER BY w.id DESC LIMIT 1 OFFSET ?3), ''))"
    " AND u.sender_id = ?4",
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
    "BEGIN",
    "SELECT seq, " CHAT_MSG_COLS " FROM journal ORDER BY seq",
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
  ~Conn() { close(); }

  void close() {
    for (sqlite3_stmt*& s : stmts_) {
      sqlite3_finalize(s);
      s = nullptr;
    }
    if (db_) sqlite3_close(db_);
    db_ = nullptr;
  }

  /// `vfs`: a registered VFS's name (paced_vfs()), or null for the default.
  result<void> open(const std::string& path, int flags, int busy_timeout_ms,
                    const char* vfs = nullptr) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      return error{map_sqlite_code(rc), "cannot open database '" + path + "': " + msg};
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busy_timeout_ms);
    return {};
  }

  /// Prepares the statements of `db` (and those of both databases).
  result<void> prepare_all(Db db) {
    for (int q = 0; q < kQueryCount; ++q) {
      if (db_of(q) != db && db_of(q) != Db::both) continue;
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

  /// The first column of a one-row query's row (integer parameters bound to ?1, ?2, …), as
  /// text ("" for NULL or no row) and as an integer (0 likewise). For set-up and open-time
  /// queries: the statement is prepared for the call.
  struct Scalar {
    std::string text;
    std::int64_t integer = 0;
  };
  result<Scalar> scalar(const char* sql, std::initializer_list<std::int64_t> params = {}) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql, -1, &s, nullptr);
    int index = 1;
    for (std::int64_t p : params)
      if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, index++, p);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    Scalar out;
    if (rc == SQLITE_ROW) {
      if (const unsigned char* t = sqlite3_column_text(s, 0))
        out.text = reinterpret_cast<const char*>(t);
      out.integer = sqlite3_column_int64(s, 0);
      rc = SQLITE_DONE;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return fail(rc, sql);
    return out;
  }

  /// A single-row pragma's first column as text ("" when none or on error).
  std::string pragma_text(const char* sql) {
    auto r = scalar(sql);
    return r.ok() ? std::move(r->text) : std::string();
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

/// Probes the key generations newest first (a retry is most likely recent).
result<Message> message_by_client_id(Conn& c, std::string_view sender_id,
                                     std::string_view client_msg_id, std::int64_t max_gen) {
  for (std::int64_t gen = max_gen; gen >= 0; --gen) {
    Stmt s(c, kMsgByClientId);
    s.text(1, sender_id).text(2, client_msg_id).integer(3, gen);
    const int rc = s.step();
    if (rc == SQLITE_ROW) return read_message(s);
    if (rc != SQLITE_DONE) return s.fail(rc, "find message by client_msg_id");
  }
  return error{errc::not_found, "message not found"};
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// Write jobs. Synchronous writes (users, media, read positions) are WriteJobs run by the writer
// inside its batch transaction, each in its own savepoint; deliver() hands the outcome over once
// the transaction committed, or the batch's failure. Appends are AppendJobs, made durable by
// the journal thread (see SqliteStore::Impl).

/// Conversations known to exist with their members (so indexing skips three inserts). Touched
/// only by the writer thread. A conversation is added once its insert succeeded; everything is
/// forgotten when a batch fails, since its inserts were rolled back.
struct KnownConversations {
  std::unordered_set<std::string> ids;
  std::vector<std::string> pending;  // added by the batch in progress
  static constexpr std::size_t kMax = 100'000;
};

/// The clientMsgId generation new keys go to (see CHAT_CLIENT_KEY_INDEX). Writer thread only.
struct KeyGeneration {
  std::int64_t gen = 0;
  std::int64_t keys = 0;  // in `gen`, counting the batch in progress
  std::int64_t limit = 1 << 17;
};

struct WriteJob {
  virtual ~WriteJob() = default;
  /// The job's own error, if any: the runner rolls its savepoint back.
  virtual std::optional<error> run(Conn& w) = 0;
  virtual void deliver(const error* batch_failure) = 0;
  // No job waits for the index of the appends queued before it, which under load is a
  // backlog of up to max_unindexed messages (a profile update or a read position waited for it
  // as history reads did): users and media read no message, and a read position clamps to the
  // unindexed messages as well (mark_read).
};

template <class T>
struct SyncJob final : WriteJob {
  explicit SyncJob(std::function<result<T>(Conn&)> b) : body(std::move(b)) {}

  std::optional<error> run(Conn& w) override {
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

struct AppendJob {
  AppendJob(Message msg, Store::AppendCallback cb) : m(std::move(msg)), done(std::move(cb)) {}

  void deliver(const error* batch_failure) {
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
  // Computed (and their table slots prefetched) a few jobs ahead by the journal thread.
  std::uint64_t id_h = 0;
  KeyFilter::Hashes key{0, 0};  // when m.client_msg_id is not empty
};

using MessagePtr = std::shared_ptr<const Message>;

/// A journaled message on its way into the main database; `seq` is its journal row.
struct IndexItem {
  std::uint64_t seq = 0;
  MessagePtr m;
  // The message's keys in the pending indexes (journal_pending's items), so that forgetting it
  // needs no hashing and its slots can be fetched ahead.
  std::uint64_t id_h = 0;
  std::uint64_t key_h = 0;  // when has_key
  bool has_key = false;
};

/// Inserts the rows of a message's conversation and its two members, unless there.
result<void> insert_conversation_rows(Conn& w, const Message& m) {
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
  return {};
}

/// Inserts a message (and its conversation and members, unless known) into the main database.
/// Idempotent: a message whose id is stored already inserts nothing, which makes replaying
/// the journal after a crash safe.
result<void> index_message(Conn& w, KnownConversations& known, KeyGeneration& keys,
                           const Message& m) {
  const bool new_conversation = !known.ids.contains(m.conversation_id);
  if (new_conversation) {
    if (auto r = insert_conversation_rows(w, m); !r) return r;
  }
  Stmt s(w, kMsgInsert);
  s.text(1, m.id).text(2, m.conversation_id).text(3, m.sender_id).text(4, m.receiver_id);
  s.text(5, m.text).text(6, m.image).text(7, m.client_msg_id);
  s.integer(8, m.created_at).integer(9, m.updated_at);
  if (!m.client_msg_id.empty() && keys.keys >= keys.limit) {
    ++keys.gen;
    keys.keys = 0;
  }
  s.integer(10, keys.gen);
  if (int rc = s.step(); rc != SQLITE_DONE) return s.fail(rc, "insert message");
  if (!m.client_msg_id.empty()) ++keys.keys;
  if (new_conversation && known.ids.size() < KnownConversations::kMax) {
    known.ids.insert(m.conversation_id);
    known.pending.push_back(m.conversation_id);
  }
  return {};
}

/// The pending-index hash of a message id.
std::uint64_t id_hash(std::string_view id) { return std::hash<std::string_view>{}(id); }

/// The journaled messages of one conversation that are not in the main database yet, by id:
/// [head, end) of `messages` (the writer drops them from the front as it indexes). Kept in id
/// order as they come, so that a read copies only what it can return (a page, the unread
/// window) however long the backlog: under the lock the journal thread takes before it acks.
struct ConversationBacklog {
  std::vector<MessagePtr> messages;  // by id from `head` on (null before it)
  std::size_t head = 0;
  MessagePtr first;  // the message that made it: its sender and receiver are the members
};

/// Background work (indexing, checkpoints) yields the CPU to the threads acknowledging
/// messages: on a busy core its large transactions otherwise delay them by whole time slices.
/// Raising a thread's nice value needs no privilege; failing to is harmless. (SCHED_IDLE was
/// tried: near saturation the indexer then starved until the unindexed bound stopped the
/// journal, and acknowledgements stalled for hundreds of milliseconds.) It also takes the
/// kernel's default time slice, whatever slice the thread that opened the store had (a thread
/// starts with its creator's): the journal and I/O threads preempt it on waking only while
/// their slices are shorter than its own.
void lower_thread_priority() {
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
  (void)request_time_slice(std::chrono::microseconds{0});
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// A journal and a database, three threads. An append is made durable by the *journal thread*:
// it checks the message (ids unique, clientMsgId not seen before) and adds it to the message
// journal (MessageJournal: append-only segment files), one write and one fdatasync for every
// append queued (the group commit); then the append is acknowledged. A journal record costs a
// sequential append of ~250 bytes, where the main database's indexes (by conversation, by
// clientMsgId) cost a random page each. The *writer thread* moves journaled messages into the
// main database behind, many thousands per transaction (so a hot index page is written once
// for many messages), and runs the synchronous writes. Reads that show messages merge what the
// main database returns with the journaled messages it does not have yet (`backlog`, kept in
// memory by conversation until their index commit), so a reader sees every message
// acknowledged before its call without waiting for the writer. The journal keeps a message until
// the main database's commit holding it is durable; what is left in it at open (a crash) is
// replayed into the main database, which ignores ids it has.
struct SqliteStore::Impl {
  SqliteOptions opts;
  const char* vfs = nullptr;  // every connection to the main database opens through it
  std::unique_ptr<Conn> writer_conn;
  KnownConversations known;  // writer thread only
  KeyGeneration key_gen;     // writer thread only

  // Everything below up to the read pool is guarded by `mu`. Sync jobs: `accepted` counts jobs
  // ever queued, `completed` jobs delivered (flush() waits for its count). Appends: counted
  // alike, and `journaled_seq`/`indexed_seq` are the last journal row written/indexed.
  mutable std::mutex mu;
  std::condition_variable work_cv;     // the writer waits for work
  std::condition_variable append_cv;   // the journal thread waits for appends or index room
  std::condition_variable done_cv;     // flush(): progress was made
  std::deque<std::unique_ptr<WriteJob>> queue;
  std::deque<std::unique_ptr<AppendJob>> append_queue;
  std::deque<IndexItem> to_index;      // journaled, not handed to the writer yet
  std::size_t unindexed = 0;           // journaled, not indexed yet (to_index + in flight)
  // The same messages (to_index and the writer's batch in flight) by conversation: the reads
  // merge them with the main database's rows instead of waiting for the writer, which runs at
  // nice +10 with up to max_unindexed messages behind under load (a history read waited 20-30
  // ms at 10,000 msg/s, ~2 s at the maximum). Added by the journal thread with to_index, before
  // the appends are acknowledged; dropped by the writer once their index commit is done. So an
  // acknowledged message is in one or the other at any time (in both for a moment).
  std::unordered_map<std::string, ConversationBacklog, StringViewHash, std::equal_to<>> backlog;
  // The same conversations by member (both of a direct conversation's), so that a user's
  // summaries find theirs without scanning every busy conversation under `mu`. The entries
  // point into `backlog`, whose elements stay in place until erased.
  std::unordered_map<std::string, std::vector<const ConversationBacklog*>, StringViewHash,
                     std::equal_to<>>
      backlog_by_user;
  std::uint64_t accepted = 0;
  std::uint64_t completed = 0;
  std::uint64_t appends_accepted = 0;
  std::uint64_t appends_done = 0;
  std::uint64_t journaled_seq = 0;
  std::uint64_t indexed_seq = 0;
  std::int64_t indexed_key_gen = 0;    // the newest key generation of what is indexed
  bool index_now = false;              // flush() waits for the index: do not wait to batch
  bool stopping = false;
  bool journal_finished = false;
  bool index_abandoned = false;        // closing after an indexing failure (see writer_loop)
  CallbackExecutor callback_executor;
  std::thread writer;
  std::thread journaler;
  std::atomic<std::size_t> pending{0};
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> index_commits{0};
  // A synchronous write is queued (set under `mu`): the writer's index transaction in
  // progress stops early and commits what it has with the writes waiting, so that they wait
  // for a few dozen inserts rather than up to index_batch of them.
  std::atomic<bool> sync_waiting{false};

  // The journal thread's own state.
  std::unique_ptr<MessageJournal> journal;
  std::unique_ptr<Conn> probe_conn;    // read-only, main database: is an id / clientMsgId stored?
  std::uint64_t next_seq = 1;
  std::uint64_t released_seq = 0;      // journal records up to this one are released
  bool journal_replayed = false;       // open() replayed the journal into the main database
  // Journaled, not known to be indexed; owns the messages the indexes below point to.
  std::deque<IndexItem> journal_pending;
  PendingIndex pending_ids;          // by id_hash(id)
  PendingIndex pending_client_keys;  // by KeyFilter::hash(sender, clientMsgId).h1
  // Every (sender, clientMsgId) stored or journaled, and the greatest ids journaled and in the
  // main database: an append whose key the filter never saw needs no clientMsgId lookup, and
  // one whose id is greater than every id in the database (ObjectIds grow) no id lookup there.
  std::unique_ptr<KeyFilter> client_key_filter;
  std::string max_id;
  std::string max_indexed_id;
  std::int64_t probe_max_gen = 0;  // the newest key generation the lookups must probe

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
    lower_thread_priority();
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
    {
      std::lock_guard lk(mu);
      stopping = true;
    }
    work_cv.notify_all();
    append_cv.notify_all();
    // The journal thread drains the appends, then the writer indexes everything journaled.
    if (journaler.joinable()) journaler.join();
    {
      std::lock_guard lk(mu);
      journal_finished = true;
    }
    work_cv.notify_all();
    if (writer.joinable()) writer.join();
    stop_checkpointer();
    // Everything journaled is indexed now (unless indexing was abandoned): the journal can be
    // emptied, and the next open has nothing to replay. Not when open() failed before its
    // replay was durable: the journal keeps what it holds for the next open.
    if (journal && journal_replayed) {
      if (!index_abandoned && indexed_seq >= journaled_seq) journal->clear();
      else journal->release(indexed_seq);
    }
    journal.reset();
    // Readers first: the last connection to close checkpoints and removes the WAL.
    probe_conn.reset();
    checkpoint_conn.reset();
    free_readers.clear();
    readers.clear();
    writer_conn.reset();
  }

  bool on_writer_thread() const { return std::this_thread::get_id() == writer.get_id(); }
  bool on_journal_thread() const { return std::this_thread::get_id() == journaler.get_id(); }
  bool on_store_thread() const { return on_writer_thread() || on_journal_thread(); }

  std::size_t queued_locked() const { return queue.size() + append_queue.size(); }

  /// Refuses a job when the queues are full or the store is closing. Caller holds `mu`.
  std::optional<error> refuse_locked() const {
    if (stopping) return error{errc::unavailable, "store closing"};
    if (queued_locked() >= opts.max_pending_writes)
      return error{errc::unavailable, "store queue full"};
    return std::nullopt;
  }

  /// Takes `job` (moves from it) unless refused.
  result<void> enqueue(std::unique_ptr<WriteJob>& job) {
    {
      std::lock_guard lk(mu);
      if (auto e = refuse_locked()) return *e;
      if (queue.empty()) sync_waiting.store(true, std::memory_order_relaxed);
      queue.push_back(std::move(job));
      ++accepted;
      pending.store(queued_locked(), std::memory_order_relaxed);
    }
    work_cv.notify_one();
    return {};
  }

  result<void> enqueue(std::unique_ptr<AppendJob>& job) {
    {
      std::lock_guard lk(mu);
      if (auto e = refuse_locked()) return *e;
      append_queue.push_back(std::move(job));
      ++appends_accepted;
      pending.store(queued_locked(), std::memory_order_relaxed);
    }
    append_cv.notify_one();
    return {};
  }

  template <class T>
  result<T> run_sync(std::function<result<T>(Conn&)> body) {
    if (on_store_thread())
      return error{errc::internal, "synchronous store write from the store's own thread"};
    auto job = std::make_unique<SyncJob<T>>(std::move(body));
    auto future = job->promise.get_future();
    std::unique_ptr<WriteJob> base = std::move(job);
    if (auto r = enqueue(base); !r.ok()) return r.err();
    return future.get();
  }

  // --- the backlog of unindexed messages (under `mu`) -------------------------------------

  /// The users whose summaries show a conversation's backlog: its two members; none for a
  /// user's messages to themselves, which the main database's summaries do not show either
  /// (they need a peer; the chat service refuses such messages, the store takes them).
  static std::span<const std::string_view> backlog_members(const ConversationBacklog& b,
                                                           std::array<std::string_view, 2>& out) {
    out = {b.first->sender_id, b.first->receiver_id};
    return {out.data(), out[0] == out[1] ? 0u : 2u};
  }

  void backlog_add(const MessagePtr& m) {
    auto it = backlog.find(m->conversation_id);
    if (it == backlog.end()) {
      it = backlog.emplace(m->conversation_id, ConversationBacklog{{}, 0, m}).first;
      std::array<std::string_view, 2> members;
      for (std::string_view user : backlog_members(it->second, members)) {
        auto u = backlog_by_user.find(user);
        if (u == backlog_by_user.end()) u = backlog_by_user.try_emplace(std::string(user)).first;
        u->second.push_back(&it->second);
      }
    }
    // Journal order is id order but for ids made on two I/O threads at once: a message then
    // goes a few places back.
    ConversationBacklog& b = it->second;
    auto pos = b.messages.end();
    const auto first = b.messages.begin() + static_cast<std::ptrdiff_t>(b.head);
    while (pos != first && (*std::prev(pos))->id > m->id) --pos;
    b.messages.insert(pos, m);
  }

  /// A conversation's oldest unindexed message (its rows are made from it) and its newest
  /// (the clamp of a read position); both null if it has none.
  std::pair<MessagePtr, MessagePtr> backlog_ends(std::string_view conversation_id) {
    std::lock_guard lk(mu);
    auto it = backlog.find(conversation_id);
    if (it == backlog.end()) return {};
    return {it->second.messages[it->second.head], it->second.messages.back()};
  }

  void backlog_erase(decltype(backlog)::iterator it) {
    std::array<std::string_view, 2> members;
    for (std::string_view user : backlog_members(it->second, members)) {
      auto u = backlog_by_user.find(user);
      if (u == backlog_by_user.end()) continue;
      std::erase(u->second, &it->second);
      if (u->second.empty()) backlog_by_user.erase(u);
    }
    backlog.erase(it);
  }

  /// Drops an index batch's messages, now in the main database. Each conversation's messages
  /// leave in the order they came (to_index is one FIFO), so each is its backlog's head (but
  /// for one that came out of id order).
  void backlog_drop(const std::vector<IndexItem>& items) {
    for (const IndexItem& item : items) {
      auto it = backlog.find(item.m->conversation_id);
      if (it == backlog.end()) continue;
      ConversationBacklog& b = it->second;
      auto pos = std::find(b.messages.begin() + static_cast<std::ptrdiff_t>(b.head),
                           b.messages.end(), item.m);
      if (pos == b.messages.end()) continue;
      if (pos - b.messages.begin() == static_cast<std::ptrdiff_t>(b.head)) {
        b.messages[b.head++].reset();
      } else {
        b.messages.erase(pos);
      }
      if (b.head == b.messages.size()) {
        backlog_erase(it);
      } else if (b.head >= 64 && 2 * b.head >= b.messages.size()) {
        b.messages.erase(b.messages.begin(), b.messages.begin() + static_cast<std::ptrdiff_t>(b.head));
        b.head = 0;
      }
    }
  }

  /// The newest `max` of a conversation's unindexed messages with ids below `before_id` ("":
  /// all), by id.
  std::vector<MessagePtr> backlog_of(std::string_view conversation_id, std::string_view before_id,
                                     std::size_t max) {
    std::lock_guard lk(mu);
    auto it = backlog.find(conversation_id);
    if (it == backlog.end()) return {};
    const ConversationBacklog& b = it->second;
    const auto first = b.messages.begin() + static_cast<std::ptrdiff_t>(b.head);
    const auto end =
        before_id.empty() ? b.messages.end()
                          : std::lower_bound(first, b.messages.end(), before_id,
                                             [](const MessagePtr& m, std::string_view id) { return m->id < id; });
    const auto n = std::min<std::size_t>(max, static_cast<std::size_t>(end - first));
    return {end - static_cast<std::ptrdiff_t>(n), end};
  }

  /// The newest `max` unindexed messages of each direct conversation `user_id` has with another
  /// user, by id (found by member: not a scan of every busy conversation under the lock).
  std::vector<std::vector<MessagePtr>> backlog_of_user(std::string_view user_id, std::size_t max) {
    std::vector<std::vector<MessagePtr>> out;
    std::lock_guard lk(mu);
    auto u = backlog_by_user.find(user_id);
    if (u == backlog_by_user.end()) return out;
    out.reserve(u->second.size());
    for (const ConversationBacklog* b : u->second) {
      const std::size_t n = std::min(max, b->messages.size() - b->head);
      out.emplace_back(b->messages.end() - static_cast<std::ptrdiff_t>(n), b->messages.end());
    }
    return out;
  }

  // --- the journal thread ------------------------------------------------------------------

  void journal_loop() {
    (void)request_time_slice(opts.journal_thread_slice);  // 0: the kernel's default
    std::vector<std::unique_ptr<AppendJob>> batch;
    std::vector<IndexItem> journaled;
    const auto pace = std::chrono::microseconds(opts.min_commit_interval_us);
    auto last_start = std::chrono::steady_clock::time_point{};
    for (;;) {
      // Commit pacing: a busy journal starts a transaction at most every `pace`, so appends that
      // arrive meanwhile share its fsync. Each fsync costs ~80 µs of kernel CPU here; unpaced,
      // a one-core server at a fifth of its maximum committed every ~4 messages.
      if (const auto next = last_start + pace; std::chrono::steady_clock::now() < next)
        std::this_thread::sleep_until(next);
      std::uint64_t indexed = 0;
      bool wake_writer = false;
      {
        std::unique_lock lk(mu);
        append_cv.wait(lk, [&] {
          return (!append_queue.empty() && unindexed < opts.max_unindexed) ||
                 (stopping && append_queue.empty());
        });
        if (append_queue.empty()) {  // stopping, and everything is delivered
          journal_finished = true;
          work_cv.notify_all();
          return;
        }
        const std::size_t n = std::min(append_queue.size(), opts.max_batch);
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(append_queue.front()));
          append_queue.pop_front();
        }
        pending.store(queued_locked(), std::memory_order_relaxed);
        indexed = indexed_seq;
        probe_max_gen = indexed_key_gen;
      }
      last_start = std::chrono::steady_clock::now();
      journal_batch(batch, indexed, journaled);
      const std::size_t n = batch.size();
      {
        std::lock_guard lk(mu);
        const bool was_empty = to_index.empty();
        for (IndexItem& item : journaled) {
          backlog_add(item.m);
          to_index.push_back(std::move(item));
        }
        unindexed += journaled.size();
        if (!journaled.empty()) journaled_seq = to_index.back().seq;
        appends_done += n;
        // The writer indexes on its interval: woken when its timer must start (it waits without
        // one while nothing is to index) or when it must not wait for it.
        wake_writer = (was_empty && !to_index.empty()) || !queue.empty() || index_now ||
                      to_index.size() >= opts.index_batch || unindexed >= opts.max_unindexed;
      }
      journaled.clear();
      if (wake_writer) work_cv.notify_one();
      done_cv.notify_all();
      deliver_appends(batch);
      // After the acknowledgements, and a slice at a time: an index commit makes thousands of
      // messages forgettable at once (~1 ms of work that delayed the next commit); what
      // waits stays findable in the pending keys meanwhile, so lookups answer the same. Twice
      // the batch's size, so that forgetting outpaces journaling.
      forget_indexed(indexed, std::max<std::size_t>(512, 2 * n));
      batch.clear();
    }
  }

  /// Removes a journaled message's id and clientMsgId from the pending indexes (before the
  /// message leaves journal_pending, which owns the messages the indexes point to).
  void forget_keys(const IndexItem& item) {
    pending_ids.erase(item.id_h, item.m.get());
    if (item.has_key) pending_client_keys.erase(item.key_h, item.m.get());
  }

  // How far ahead the journal thread fetches what it is about to touch: the tables are several
  // MiB and probed at random (a cache miss each), the messages to forget were written long ago.
  static constexpr std::size_t kFetchAhead = 8;

  /// Drops (at most `at_most` of) what the main database has from the pending keys (its
  /// lookups find it there).
  void forget_indexed(std::uint64_t indexed, std::size_t at_most) {
    auto fetch = [&](std::size_t i) {
      if (i >= journal_pending.size()) return;
      const IndexItem& it = journal_pending[i];
      __builtin_prefetch(it.m.get());
      pending_ids.prefetch(it.id_h);
      if (it.has_key) pending_client_keys.prefetch(it.key_h);
    };
    for (std::size_t i = 0; i < kFetchAhead; ++i) fetch(i);
    for (; at_most > 0 && !journal_pending.empty() && journal_pending.front().seq <= indexed;
         --at_most) {
      fetch(kFetchAhead);
      const IndexItem& item = journal_pending.front();
      if (item.m->id > max_indexed_id) max_indexed_id = item.m->id;
      forget_keys(item);
      journal_pending.pop_front();
    }
  }

  /// Hashes a job's keys and fetches the slots journal_one() will probe.
  void prepare_keys(AppendJob& job) {
    job.id_h = id_hash(job.m.id);
    pending_ids.prefetch(job.id_h);
    if (job.m.client_msg_id.empty()) return;
    job.key = KeyFilter::hash(job.m.sender_id, job.m.client_msg_id);
    client_key_filter->prefetch(job.key);
    pending_client_keys.prefetch(job.key.h1);
  }

  /// One journal commit for the batch: releases what the main database has durably, checks
  /// and adds each append. Fills `journaled` with the records written once they are durable.
  void journal_batch(std::vector<std::unique_ptr<AppendJob>>& batch, std::uint64_t indexed,
                     std::vector<IndexItem>& journaled) {
    MessageJournal& j = *journal;
    const std::size_t pending_before = journal_pending.size();
    auto fail_all = [&](const error& e) {
      j.discard();
      if (probe_conn->in_transaction()) (void)probe_conn->run(kRollback, "end read");
      while (journal_pending.size() > pending_before) {  // not journaled after all
        forget_keys(journal_pending.back());
        journal_pending.pop_back();
      }
      journaled.clear();
      spdlog::warn("store: journal batch of {} failed: {}", batch.size(), e.message);
      for (auto& job : batch) job->staged.emplace(e);
    };

    if (indexed > released_seq) {
      j.release(indexed);
      released_seq = indexed;
    }
    // One read snapshot of the main database for the batch's lookups.
    if (auto r = probe_conn->run(kBeginRead, "begin read"); !r.ok()) return fail_all(r.err());
    for (std::size_t i = 0; i < kFetchAhead && i < batch.size(); ++i) prepare_keys(*batch[i]);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (i + kFetchAhead < batch.size()) prepare_keys(*batch[i + kFetchAhead]);
      AppendJob& job = *batch[i];
      if (auto e = journal_one(job, journaled)) {
        if (e->code == errc::unavailable) return fail_all(*e);
        job.staged.emplace(std::move(*e));
      }
    }
    (void)probe_conn->run(kCommit, "end read");
    if (auto r = j.commit(); !r.ok()) return fail_all(r.err());
    commits.fetch_add(1, std::memory_order_relaxed);
  }

  /// Checks and journals one append (its staged result on success or duplicate); its keys are
  /// hashed (prepare_keys).
  std::optional<error> journal_one(AppendJob& job, std::vector<IndexItem>& journaled) {
    Message& m = job.m;
    if (m.id.empty() || m.conversation_id.empty() || m.sender_id.empty() || m.receiver_id.empty())
      return error{errc::invalid_argument, "message needs id, conversation, sender and receiver"};
    const bool has_key = !m.client_msg_id.empty();
    const KeyFilter::Hashes& key = job.key;
    if (has_key && client_key_filter->may_contain(key)) {
      // A retry of a clientMsgId (or a false positive): the first message, from the journal or
      // the main database.
      if (const Message* first = pending_client_keys.find(key.h1, [&](const Message& p) {
            return p.sender_id == m.sender_id && p.client_msg_id == m.client_msg_id;
          })) {
        job.staged.emplace(Appended{*first, true});
        return std::nullopt;
      }
      auto existing =
          message_by_client_id(*probe_conn, m.sender_id, m.client_msg_id, probe_max_gen);
      if (existing.ok()) {
        job.staged.emplace(Appended{std::move(existing).value(), true});
        return std::nullopt;
      }
      if (existing.code() != errc::not_found) return existing.err();
    }
    const error id_taken{errc::internal, "a message with this id exists (ids are unique)"};
    if (m.id <= max_id &&
        pending_ids.find(job.id_h, [&](const Message& p) { return p.id == m.id; }))
      return id_taken;
    if (m.id <= max_indexed_id) {  // rare: ids grow, and are indexed a little later
      Stmt s(*probe_conn, kMsgIdExists);
      s.text(1, m.id);
      const int rc = s.step();
      if (rc == SQLITE_ROW) return id_taken;
      if (rc != SQLITE_DONE) return s.fail(rc, "look a message id up");
    }
    const std::uint64_t seq = next_seq;
    if (auto r = journal->add(seq, m); !r.ok()) return r.err();
    ++next_seq;
    auto shared = std::make_shared<const Message>(m);
    if (m.id > max_id) max_id = m.id;
    pending_ids.insert(job.id_h, shared.get());
    if (has_key) {
      client_key_filter->add(key);
      pending_client_keys.insert(key.h1, shared.get());
    }
    journal_pending.push_back(IndexItem{seq, shared, job.id_h, key.h1, has_key});
    journaled.push_back(IndexItem{seq, std::move(shared)});
    job.staged.emplace(Appended{std::move(m), false});
    return std::nullopt;
  }

  /// Runs a journal batch's callbacks: on the executor when there is one, else here.
  void deliver_appends(std::vector<std::unique_ptr<AppendJob>>& batch) {
    CallbackExecutor exec;
    {
      std::lock_guard lk(mu);
      exec = callback_executor;
    }
    if (!exec) {
      for (auto& job : batch) job->deliver(nullptr);
      return;
    }
    auto handed = std::make_shared<std::vector<std::unique_ptr<AppendJob>>>(std::move(batch));
    exec([handed] {
      for (auto& job : *handed) job->deliver(nullptr);
    });
  }

  // --- the writer thread -------------------------------------------------------------------

  void writer_loop() {
    lower_thread_priority();
    std::vector<std::unique_ptr<WriteJob>> jobs;
    std::vector<IndexItem> items;
    using Clock = std::chrono::steady_clock;
    auto last_index = Clock::now();
    auto retry_after = Clock::time_point{};  // after a failed batch: not before this
    bool sync = false;  // this batch: synchronous writes only
    const auto interval = std::chrono::milliseconds(opts.index_interval_ms);
    for (;;) {
      {
        std::unique_lock lk(mu);
        bool index_due = false;
        for (;;) {
          const auto now = Clock::now();
          const bool backing_off = now < retry_after && !stopping;
          index_due =
              !to_index.empty() &&
              (index_now || stopping || to_index.size() >= opts.index_batch ||
               unindexed >= opts.max_unindexed || now >= last_index + interval);
          if (!backing_off && (!queue.empty() || index_due)) break;
          if (stopping && journal_finished && queue.empty() && to_index.empty()) return;
          if (backing_off) work_cv.wait_until(lk, retry_after);
          else if (!to_index.empty()) work_cv.wait_until(lk, last_index + interval);
          else work_cv.wait(lk);
        }
        // Synchronous writes first, in their order and a transaction of their own: none needs
        // the index (see WriteJob). When both are due they take turns, so that a steady stream
        // of them cannot hold the index back until max_unindexed stops the appends (the index
        // transaction runs min_index_run_us at least before it stops for the writes waiting and
        // takes them along: each turn of the index is not a handful of messages).
        sync = !queue.empty() && !(sync && index_due);
        const std::size_t n = sync ? 0 : std::min(to_index.size(), opts.index_batch);
        for (std::size_t i = 0; i < n; ++i) {
          items.push_back(std::move(to_index.front()));
          to_index.pop_front();
        }
        if (sync) take_sync_jobs_locked(jobs);
        if (to_index.empty()) index_now = false;  // else the waiter needs the next batch too
        pending.store(queued_locked(), std::memory_order_relaxed);
      }
      if (!sync) last_index = Clock::now();  // the interval counts index transactions
      std::size_t done = items.size();
      // A failed transaction of synchronous writes alone fails them and leaves the index as it
      // was: no back-off for it, and no abandoning the backlog while closing.
      const bool indexed = run_batch(items, jobs, done) || items.empty();
      if (!indexed) retry_after = Clock::now() + interval;
      if (indexed && !items.empty() && opts.after_index_commit) opts.after_index_commit();
      const std::size_t n = jobs.size();
      jobs.clear();
      {
        std::lock_guard lk(mu);
        completed += n;
        if (indexed && index_abandoned) {
          unindexed -= items.size();
          backlog_drop(items);
          items.clear();
        } else if (indexed) {
          // Stopped early for a synchronous write: the rest goes back, in order, and
          // is indexed right after it (the batch was due; a flush may be waiting for it).
          if (done < items.size()) {
            for (std::size_t i = items.size(); i > done; --i)
              to_index.push_front(std::move(items[i - 1]));
            items.resize(done);
            index_now = true;
          }
          if (!items.empty()) indexed_seq = items.back().seq;
          indexed_key_gen = key_gen.gen;
          unindexed -= items.size();
          backlog_drop(items);
          items.clear();
        } else if (stopping) {
          // Closing: what is not indexed stays in the journal, replayed at the next open. Nothing
          // more is marked indexed, so nothing more is trimmed from the journal.
          spdlog::error("store: {} journaled messages left for the next open to index",
                        unindexed);
          index_abandoned = true;
          to_index.clear();
          backlog.clear();
          backlog_by_user.clear();
          unindexed = 0;
          items.clear();
        } else {
          // Still journaled: retried after the interval (a failure that lasts, such as a full
          // disk, then costs one attempt per interval, not a busy loop).
          for (auto it = items.rbegin(); it != items.rend(); ++it)
            to_index.push_front(std::move(*it));
          items.clear();
        }
      }
      done_cv.notify_all();
      append_cv.notify_one();
    }
  }

  /// When a synchronous write waits, an index transaction that has run min_index_run_us
  /// stops after a multiple of this many messages and commits them with it. The writer runs at
  /// nice +10: on a busy core each message indexed before the stop costs the waiting write ~10×
  /// its CPU time in wall time.
  static constexpr std::size_t kSyncCutEvery = 32;

  /// Moves the queued synchronous writes (up to max_batch) to `jobs`. Under `mu`.
  void take_sync_jobs_locked(std::vector<std::unique_ptr<WriteJob>>& jobs) {
    while (!queue.empty() && jobs.size() < opts.max_batch) {
      jobs.push_back(std::move(queue.front()));
      queue.pop_front();
    }
    sync_waiting.store(!queue.empty(), std::memory_order_relaxed);
  }

  void take_sync_jobs(std::vector<std::unique_ptr<WriteJob>>& jobs) {
    std::lock_guard lk(mu);
    take_sync_jobs_locked(jobs);
    pending.store(queued_locked(), std::memory_order_relaxed);
  }

  // One transaction for the batch: one fsync however many jobs. Each synchronous job runs in a
  // savepoint so its own failure (a constraint, a missing row) is undone without touching the
  // others; a failure of the transaction itself (disk full, I/O error) fails every job and
  // leaves the journaled messages to the next batch. Returns whether `items` were indexed.
  /// `done`: how many of `items` were indexed (all, unless a batch without jobs stopped early
  /// for a synchronous write, see sync_waiting: the writes waiting are then added to `jobs`).
  bool run_batch(const std::vector<IndexItem>& items,
                 std::vector<std::unique_ptr<WriteJob>>& jobs, std::size_t& done) {
    Conn& w = *writer_conn;
    const KeyGeneration keys_before = key_gen;
    auto fail_all = [&](const error& e) {
      if (w.in_transaction()) (void)w.run(kRollback, "rollback");
      for (const auto& id : known.pending) known.ids.erase(id);  // their inserts are undone
      known.pending.clear();
      key_gen = keys_before;
      spdlog::warn("store: write batch of {} messages and {} writes failed: {}", items.size(),
                   jobs.size(), e.message);
      for (auto& job : jobs) job->deliver(&e);
      return false;
    };

    if (auto r = w.run(kBegin, "begin transaction"); !r.ok()) return fail_all(r.err());
    using Clock = std::chrono::steady_clock;
    const auto may_cut_at = Clock::now() + std::chrono::microseconds(opts.min_index_run_us);
    known.pending.clear();
    done = items.size();
    for (std::size_t i = 0; i < items.size(); ++i) {
      const IndexItem& item = items[i];
      // Checked when journaled, so a failure here is the database's (I/O, memory, corruption):
      // the whole batch is retried, the messages stay journaled, nothing is skipped.
      if (auto r = index_message(w, known, key_gen, *item.m); !r.ok())
        return fail_all(error{r.code(), "index message " + item.m->id + ": " + r.err().message});
      if (jobs.empty() && (i + 1) % kSyncCutEvery == 0 && i + 1 < items.size() &&
          sync_waiting.load(std::memory_order_relaxed) && Clock::now() >= may_cut_at) {
        done = i + 1;
        take_sync_jobs(jobs);  // they commit with what is indexed so far: one fsync for both
        break;
      }
    }
    for (auto& job : jobs) {
      if (auto r = w.run(kSavepoint, "savepoint"); !r.ok()) return fail_all(r.err());
      std::optional<error> job_error = job->run(w);
      if (!job_error) {
        if (auto r = w.run(kRelease, "release savepoint"); !r.ok()) return fail_all(r.err());
        continue;
      }
      // SQLite may have rolled the whole transaction back (FULL, IOERR, BUSY, NOMEM).
      if (job_error->code == errc::unavailable || !w.in_transaction())
        return fail_all(*job_error);
      if (auto r = w.run(kRollbackTo, "rollback to savepoint"); !r.ok()) return fail_all(r.err());
      if (auto r = w.run(kRelease, "release savepoint"); !r.ok()) return fail_all(r.err());
    }
    if (auto r = w.run(kCommit, "commit"); !r.ok()) return fail_all(r.err());
    index_commits.fetch_add(1, std::memory_order_relaxed);
    for (auto& job : jobs) job->deliver(nullptr);
    return true;
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
  } else if (version == 1) {
    if (auto r = w.exec(kMigrateTo2); !r.ok()) return with_path(r.err());
    if (auto r = w.exec("PRAGMA user_version = 2"); !r.ok()) return with_path(r.err());
    spdlog::info("store: '{}' migrated to schema version 2", path);
  } else if (version != kSchemaVersion) {
    return with_path(error{errc::internal, "unsupported schema version " + version_text +
                                               " (this build knows " +
                                               std::to_string(kSchemaVersion) + ")"});
  }
  if (auto r = w.exec("COMMIT"); !r.ok()) return with_path(r.err());
  return {};
}

/// Fills the journal thread's client-key filter and greatest id from the main database.
/// `c`: a connection without memory-mapped I/O (the scan reads the whole clientMsgId index).
result<void> load_append_checks(SqliteStore::Impl& impl, Conn& c) {
  // Sized from the greatest rowid (an index lookup; at least the number of messages) rather
  // than a count, which would read the index a second time.
  auto rows = c.scalar("SELECT max(rowid) FROM messages");
  if (!rows.ok()) return rows.err();
  auto max_id = c.scalar("SELECT max(id) FROM messages");
  if (!max_id.ok()) return max_id.err();
  impl.max_id = std::move(max_id->text);
  impl.max_indexed_id = impl.max_id;
  const auto expected = static_cast<std::size_t>(std::max<std::int64_t>(rows->integer, 0)) / 4 * 5;
  impl.client_key_filter =
      std::make_unique<KeyFilter>(std::max<std::size_t>(std::size_t{1} << 16, expected));
  sqlite3_stmt* st = nullptr;
  const char* sql = "SELECT sender_id, client_msg_id FROM messages WHERE client_msg_id <> ''";
  std::vector<KeyFilter::Hashes> keys;  // added in groups, their blocks fetched ahead
  keys.reserve(256);
  int rc = sqlite3_prepare_v2(c.db(), sql, -1, &st, nullptr);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    auto view = [&](int i) {
      return std::string_view(static_cast<const char*>(sqlite3_column_blob(st, i)),
                              static_cast<std::size_t>(sqlite3_column_bytes(st, i)));
    };
    keys.push_back(KeyFilter::hash(view(0), view(1)));
    if (keys.size() == keys.capacity()) {
      impl.client_key_filter->add_all(keys.data(), keys.size());
      keys.clear();
    }
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  impl.client_key_filter->add_all(keys.data(), keys.size());
  if (rc != SQLITE_DONE) return c.fail(rc, "load clientMsgIds");
  return {};
}

/// Appends a journaled message the main database refuses to the quarantine file (one JSON
/// object per line), so that a record that would otherwise stop every start is kept aside.
result<void> quarantine(const std::string& path, std::uint64_t seq, const Message& m,
                        const std::string& why) {
  std::string line = "{\"seq\":" + std::to_string(seq);
  const std::pair<const char*, const std::string*> fields[] = {
      {"id", &m.id},       {"conversationId", &m.conversation_id}, {"senderId", &m.sender_id},
      {"receiverId", &m.receiver_id}, {"text", &m.text}, {"image", &m.image},
      {"clientMsgId", &m.client_msg_id}, {"error", &why}};
  for (const auto& [name, value] : fields) {
    line += ",\"";
    line += name;
    line += "\":";
    append_json_string(line, *value);
  }
  line += ",\"createdAt\":" + std::to_string(m.created_at) +
          ",\"updatedAt\":" + std::to_string(m.updated_at) + "}\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return error{errc::unavailable, "cannot open '" + path + "': " + std::strerror(errno)};
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return error{errc::unavailable, "cannot write '" + path + "': " + std::strerror(err)};
  return {};
}

/// Indexes one journaled message during the replay at open (in the transaction open on the
/// writer connection); a message the database refuses is quarantined and logged.
result<bool> replay_one(SqliteStore::Impl& impl, std::uint64_t seq, const Message& m) {
  Conn& w = *impl.writer_conn;
  auto r = index_message(w, impl.known, impl.key_gen, m);
  if (r.ok()) return true;
  if (r.code() == errc::unavailable || !w.in_transaction()) return r.err();
  const std::string file = SqliteStore::quarantine_path(impl.opts.path);
  spdlog::error("store: journaled message {} cannot be indexed ({}); kept in {}", m.id,
                r.err().message, file);
  if (auto q = quarantine(file, seq, m, r.err().message); !q.ok()) return q.err();
  return false;
}

/// The message journal of earlier versions, a SQLite database: what it holds is replayed (in
/// the transaction open on the writer connection), then its rows are deleted once that
/// transaction committed (see finish_legacy_journal). Returns the messages replayed.
result<std::size_t> replay_legacy_journal(SqliteStore::Impl& impl, Conn& legacy) {
  std::size_t replayed = 0;
  Stmt s(legacy, kJournalScan);
  for (;;) {
    const int rc = s.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return s.fail(rc, "read the legacy journal");
    auto r = replay_one(impl, static_cast<std::uint64_t>(s.col_int(0)), read_message(s, 1));
    if (!r.ok()) return r.err();
    replayed += *r ? 1 : 0;
  }
  return replayed;
}

/// Deletes the legacy journal, or only its rows when it still holds rows an earlier version
/// quarantined (its table journal_quarantine).
void finish_legacy_journal(Conn& legacy, const std::string& path) {
  if (auto r = legacy.exec("DELETE FROM journal"); !r.ok()) {
    spdlog::warn("store: legacy journal '{}': cannot delete its replayed rows: {}", path,
                 r.err().message);
    return;
  }
  auto kept = legacy.scalar("SELECT count(*) FROM journal_quarantine");
  legacy.close();
  if (kept.ok() && kept->integer == 0) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  } else {
    spdlog::warn("store: legacy journal '{}' kept for its table journal_quarantine", path);
  }
}

/// Opens the message journal next to the main database (its lock makes a second process, or
/// store, opening the same database fail here) and replays what a crash left in it into the
/// main database, before any thread runs; then the journal is cleared.
result<void> open_journal(SqliteStore::Impl& impl) {
  const std::string default_path = SqliteStore::journal_path(impl.opts.path);
  const std::string path = impl.opts.journal_path.empty() ? default_path : impl.opts.journal_path;
  auto with_path = [&](error e) -> result<void> {
    e.message = "message journal '" + path + "': " + e.message;
    return e;
  };
  auto open_at = [&](const std::string& base, std::vector<JournalRecord>& records) {
    MessageJournal::Options o;
    o.base_path = base;
    o.lock_wait_ms = impl.opts.busy_timeout_ms;  // as long as for the database's locks
    return MessageJournal::open(o, records);
  };
  std::error_code ec;
  std::vector<JournalRecord> recovered;
  auto opened = open_at(path, recovered);
  if (!opened.ok()) return opened.err();
  impl.journal = std::move(opened).value();
  // A journal at the default place while this one is elsewhere (the option was set since):
  // replayed too (its records first: they are older), then cleared.
  std::unique_ptr<MessageJournal> moved;
  if (path != default_path &&
      std::filesystem::exists(MessageJournal::lock_path(default_path), ec)) {
    std::vector<JournalRecord> old;
    auto m = open_at(default_path, old);
    if (!m.ok()) return m.err();
    moved = std::move(m).value();
    old.insert(old.end(), std::make_move_iterator(recovered.begin()),
               std::make_move_iterator(recovered.end()));
    recovered = std::move(old);
  }

  impl.probe_conn = std::make_unique<Conn>();
  if (auto r = impl.probe_conn->open(impl.opts.path, SQLITE_OPEN_READONLY,
                                     impl.opts.busy_timeout_ms, impl.vfs);
      !r.ok())
    return r.err();
  (void)impl.probe_conn->exec("PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;");
  if (auto r = impl.probe_conn->prepare_all(Db::main); !r.ok()) return r.err();

  // Key generations: new keys continue the newest one. Whole-index reads at open go through a
  // connection without memory-mapped I/O and with a small cache, so that they do not stay in
  // the process's RSS; the count stops at one generation's worth.
  Conn& w = *impl.writer_conn;
  impl.key_gen.limit = static_cast<std::int64_t>(impl.opts.client_keys_per_generation);
  Conn scan;
  if (auto r = scan.open(impl.opts.path, SQLITE_OPEN_READONLY, impl.opts.busy_timeout_ms, impl.vfs);
      !r.ok())
    return r.err();
  (void)scan.exec("PRAGMA mmap_size = 0; PRAGMA cache_size = -2048;");
  {
    auto gen =
        scan.scalar("SELECT coalesce(max(key_gen), 0) FROM messages WHERE client_msg_id <> ''");
    if (!gen.ok()) return with_path(gen.err());
    impl.key_gen.gen = gen->integer;
    auto keys = scan.scalar("SELECT count(*) FROM (SELECT 1 FROM messages WHERE key_gen = ?1"
                            " AND client_msg_id <> '' LIMIT ?2)",
                            {impl.key_gen.gen, impl.key_gen.limit});
    if (!keys.ok()) return with_path(keys.err());
    impl.key_gen.keys = keys->integer;
  }

  // Replay: the legacy journal's rows, then every record, in order, in one transaction of the
  // main database (which ignores ids it has: records indexed before a crash are harmless).
  const std::string legacy_path = SqliteStore::legacy_journal_path(impl.opts.path);
  Conn legacy;
  const bool has_legacy = std::filesystem::exists(legacy_path, ec);
  if (has_legacy) {
    if (auto r = legacy.open(legacy_path, SQLITE_OPEN_READWRITE, impl.opts.busy_timeout_ms); !r.ok())
      return r.err();
    if (auto r = legacy.prepare_all(Db::journal); !r.ok())
      return error{r.code(), "legacy journal '" + legacy_path + "': " + r.err().message};
  }
  auto failed = [&](error e) -> result<void> {
    if (w.in_transaction()) (void)w.run(kRollback, "rollback");
    impl.known.ids.clear();
    return with_path(error{e.code, "replay: " + e.message});
  };
  std::size_t replayed = 0;
  if (auto r = w.run(kBegin, "begin transaction"); !r.ok()) return failed(r.err());
  if (has_legacy) {
    auto r = replay_legacy_journal(impl, legacy);
    if (!r.ok()) return failed(r.err());
    replayed += *r;
  }
  for (const JournalRecord& rec : recovered) {
    auto r = replay_one(impl, rec.seq, rec.m);
    if (!r.ok()) return failed(r.err());
    replayed += *r ? 1 : 0;
  }
  if (auto r = w.run(kCommit, "commit"); !r.ok()) return failed(r.err());
  impl.known.pending.clear();
  // Durable in the main database now: the journals can go.
  impl.journal_replayed = true;
  impl.journal->clear();
  if (moved) moved->clear();
  if (has_legacy) finish_legacy_journal(legacy, legacy_path);
  if (replayed > 0)
    spdlog::info("store: replayed {} journaled messages into '{}'", replayed, impl.opts.path);
  if (auto r = load_append_checks(impl, scan); !r.ok()) return with_path(r.err());
  std::uint64_t last = 0;
  for (const JournalRecord& rec : recovered) last = std::max(last, rec.seq);
  impl.next_seq = last + 1;
  impl.indexed_key_gen = impl.probe_max_gen = impl.key_gen.gen;
  impl.released_seq = last;
  impl.journaled_seq = impl.indexed_seq = last;
  return {};
}

/// Process-wide SQLite settings, applied once before the library initialises. Memory
/// statistics off: with them on, every SQLite allocation takes one global mutex, which the
/// journal, indexer and reader threads then contend for (futex wake-ups in the profile).
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    // SQLITE_MISUSE if the library was initialised already (e.g. by another component): then
    // it keeps its defaults, which are correct, only slower.
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  });
}

}  // namespace

result<std::unique_ptr<SqliteStore>> SqliteStore::open(const SqliteOptions& options) {
  if (options.path.empty()) return error{errc::invalid_argument, "database path is empty"};
  configure_sqlite_once();
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->opts.max_pending_writes = std::max<std::size_t>(impl->opts.max_pending_writes, 1);
  impl->opts.max_batch = std::max<std::size_t>(impl->opts.max_batch, 1);
  impl->opts.readers = std::max<std::size_t>(impl->opts.readers, 1);
  impl->opts.max_unindexed = std::max<std::size_t>(impl->opts.max_unindexed, 1);
  impl->opts.index_batch = std::max<std::size_t>(impl->opts.index_batch, 1);
  impl->opts.index_interval_ms = std::max(impl->opts.index_interval_ms, 1);
  impl->opts.min_commit_interval_us = std::max(impl->opts.min_commit_interval_us, 0);
  impl->opts.min_index_run_us = std::max(impl->opts.min_index_run_us, 0);
  impl->opts.client_keys_per_generation =
      std::max<std::size_t>(impl->opts.client_keys_per_generation, 1);
  const std::string& path = impl->opts.path;
  impl->vfs = impl->opts.paced_writes ? paced_vfs() : nullptr;

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
  if (auto r = w.open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout_ms,
                      impl->vfs);
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
  if (auto r = w.prepare_all(Db::main); !r.ok())
    return error{r.code(), "database '" + path + "': " + r.err().message};

  for (std::size_t i = 0; i < impl->opts.readers; ++i) {
    auto c = std::make_unique<Conn>();
    if (auto r = c->open(path, SQLITE_OPEN_READONLY, options.busy_timeout_ms, impl->vfs); !r.ok())
      return r.err();
    (void)c->exec("PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;");
    if (auto r = c->prepare_all(Db::main); !r.ok())
      return error{r.code(), "database '" + path + "': " + r.err().message};
    impl->free_readers.push_back(c.get());
    impl->readers.push_back(std::move(c));
  }

  // Checkpoints on a thread of their own (see Impl::on_wal_commit); replaces autocheckpoint.
  // Copying the WAL less often than SQLite's default (~4 MiB) also copies a hot index page
  // rewritten by many commits once per checkpoint (measured with ~40 MiB autocheckpoints: a
  // third fewer bytes written per message).
  impl->checkpoint_conn = std::make_unique<Conn>();
  if (auto r = impl->checkpoint_conn->open(path, SQLITE_OPEN_READWRITE,
                                           options.busy_timeout_ms, impl->vfs);
      !r.ok())
    return r.err();
  sqlite3_wal_hook(w.db(), &Impl::on_wal_commit, impl.get());
  try {
    impl->checkpointer = std::thread([p = impl.get()] { p->checkpoint_loop(); });
    pthread_setname_np(impl->checkpointer.native_handle(), "store-checkpnt");
  } catch (const std::system_error& e) {
    return error{errc::unavailable, std::string("cannot start the store checkpoint thread: ") + e.what()};
  }
  if (auto r = open_journal(*impl); !r.ok()) return r.err();
  try {
    impl->writer = std::thread([p = impl.get()] { p->writer_loop(); });
    impl->journaler = std::thread([p = impl.get()] { p->journal_loop(); });
    // Named for top -H and perf: the 15-character limit of Linux thread names.
    pthread_setname_np(impl->writer.native_handle(), "store-indexer");
    pthread_setname_np(impl->journaler.native_handle(), "store-journal");
  } catch (const std::system_error& e) {
    return error{errc::unavailable, std::string("cannot start the store threads: ") + e.what()};
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
  auto job = std::make_unique<AppendJob>(std::move(m), std::move(done));
  if (auto r = impl_->enqueue(job); !r.ok()) job->deliver(&r.err());
}

result<MessagePage> SqliteStore::conversation_page(std::string_view conversation_id,
                                                   std::string_view before_id,
                                                   std::size_t limit) {
  // One row more than asked tells whether older messages exist.
  constexpr auto kMaxLimit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max() - 1);
  limit = std::min(limit, kMaxLimit);
  const auto fetch = static_cast<std::int64_t>(limit + 1);

  // The backlog first, then the main database (a message indexed in between is in both).
  const std::vector<MessagePtr> unindexed =
      impl_->backlog_of(conversation_id, before_id, limit + 1);
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), before_id.empty() ? kPageNewest : kPageBefore);
  s.text(1, conversation_id);
  if (before_id.empty()) {
    s.integer(2, fetch);
  } else {
    s.text(2, before_id).integer(3, fetch);
  }
  std::vector<Message> rows;  // newest first, at most limit + 1
  for (;;) {
    const int rc = s.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return s.fail(rc, "read conversation page");
    rows.push_back(read_message(s));
  }
  // Merge the two, newest first, one copy of each id, until limit + 1.
  MessagePage page;
  auto row = rows.begin();
  auto pend = unindexed.rbegin();
  while (page.messages.size() <= limit && (row != rows.end() || pend != unindexed.rend())) {
    if (pend == unindexed.rend() || (row != rows.end() && row->id > (*pend)->id)) {
      page.messages.push_back(std::move(*row++));
    } else {
      if (row != rows.end() && row->id == (*pend)->id) ++row;
      page.messages.push_back(**pend++);
    }
  }
  if (page.messages.size() > limit) {
    page.has_more = true;
    page.messages.pop_back();
  }
  std::reverse(page.messages.begin(), page.messages.end());
  return page;
}

namespace {

/// mark_read's write, on the writer's connection. Without the index of the appends before it
/// (as a history read): clamped to the newest of the main database's messages and the
/// unindexed ones, and the conversation's rows made here when only unindexed messages have it
/// so far (the index inserts them then, or finds them). An appended message is in the backlog
/// before its ack, so the clamp covers every message a client can have seen. (Under load this
/// write waited for up to max_unindexed messages when it needed the index.) `backlog_ends`: the
/// conversation's oldest and newest unindexed messages (null if none), read on the writer
/// thread, the only one that drops messages from the backlog.
result<std::string> mark_read_on(Conn& w, const std::pair<MessagePtr, MessagePtr>& backlog_ends,
                                 std::string_view conversation_id, std::string_view user_id,
                                 std::string_view up_to_id) {
  if (up_to_id.empty()) return error{errc::invalid_argument, "read position is empty"};
  const auto& [oldest, newest] = backlog_ends;
  const std::string_view newest_id = newest ? std::string_view(newest->id) : "";
  auto update = [&]() -> result<std::string> {
    Stmt s(w, kMarkRead);
    s.text(1, conversation_id).text(2, user_id).text(3, up_to_id).text(4, newest_id);
    int rc = s.step();
    if (rc == SQLITE_DONE) return error{errc::not_found, "not a member of the conversation"};
    if (rc != SQLITE_ROW) return s.fail(rc, "mark read");
    std::string last_read = s.col_text(0);
    // The row is already updated; stepping to the end finishes the statement cleanly.
    while ((rc = s.step()) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return s.fail(rc, "mark read");
    return last_read;
  };
  auto r = update();
  if (r || r.code() != errc::not_found || !oldest) return r;
  if (oldest->sender_id != user_id && oldest->receiver_id != user_id) return r;
  if (auto rows = insert_conversation_rows(w, *oldest); !rows) return rows.err();
  return update();
}

}  // namespace

result<std::string> SqliteStore::mark_read(std::string_view conversation_id,
                                           std::string_view user_id,
                                           std::string_view up_to_id) {
  if (up_to_id.empty()) return error{errc::invalid_argument, "read position is empty"};
  return mark_read_as_many(conversation_id, user_id, up_to_id);
}

std::vector<result<std::string>> SqliteStore::mark_read_many(const std::vector<ReadMark>& marks) {
  using Results = std::vector<result<std::string>>;
  if (marks.empty()) return {};
  Impl* impl = impl_.get();
  auto all = impl_->run_sync<Results>([impl, &marks](Conn& w) -> result<Results> {
    Results out;
    out.reserve(marks.size());
    for (const ReadMark& m : marks) {
      auto r = mark_read_on(w, impl->backlog_ends(m.conversation_id), m.conversation_id, m.user_id,
                            m.up_to_id);
      // A mark of its own (not a member, empty) fails alone; the database's failure fails all
      // (the transaction is rolled back).
      if (!r && r.code() != errc::not_found && r.code() != errc::invalid_argument) return r.err();
      out.push_back(std::move(r));
    }
    return out;
  });
  if (all) return std::move(all.value());
  return Results(marks.size(), all.err());
}

result<std::vector<ConversationSummary>> SqliteStore::conversation_summaries(
    std::string_view user_id) {
  // The backlog first, then the main database (a message indexed in between is in both).
  const std::vector<std::vector<MessagePtr>> unindexed = impl_->backlog_of_user(user_id, kUnreadWindow);
  Impl::Lease lease(*impl_);
  Stmt s(lease.conn(), kSummaries);
  s.text(1, user_id).integer(2, static_cast<std::int64_t>(kUnreadWindow));
  std::vector<ConversationSummary> out;
  for (;;) {
    const int rc = s.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return s.fail(rc, "read conversation summaries");
    ConversationSummary c;
    c.conversation_id = s.col_text(0);
    c.last_read_id = s.col_text(1);
    c.peer_id = s.col_text(2);
    c.unread = static_cast<std::size_t>(std::max<std::int64_t>(s.col_int(3), 0));
    if (s.col_int(4) != 0) c.last_message = read_message(s, 5);
    out.push_back(std::move(c));
  }
  // Each conversation's unindexed messages: a newer last message, more unread ones, or a
  // conversation the main database has no row of yet. Those newer than the main database's
  // newest are counted: that skips any indexed between the two reads (it has them). The window
  // is the newest kUnreadWindow of both parts: when n of them are unindexed, the main
  // database's part is counted again over its newest kUnreadWindow - n (up to the newest it
  // showed), so the count is the same before and after the index catches up (a lower bound when
  // more than kUnreadWindow follow the read position, as the contract says). One exception,
  // short-lived: a message whose id is older than one journaled before it (ids made on two I/O
  // threads at once) and that is still unindexed while the newer one is indexed is not counted
  // until it is indexed too.
  // By conversation id (views into `out`, which the reserve keeps in place): a user with many
  // conversations, many of them unindexed, is not a quadratic search.
  out.reserve(out.size() + unindexed.size());
  std::unordered_map<std::string_view, std::size_t> row_of;
  row_of.reserve(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) row_of.emplace(out[i].conversation_id, i);
  for (const auto& messages : unindexed) {
    const Message& newest = *messages.back();
    ConversationSummary* c = nullptr;
    if (auto row = row_of.find(newest.conversation_id); row != row_of.end()) {
      c = &out[row->second];
    } else {  // each conversation's backlog comes once: no need to add it to row_of
      c = &out.emplace_back();
      c->conversation_id = newest.conversation_id;
      c->peer_id = newest.sender_id == user_id ? newest.receiver_id : newest.sender_id;
    }
    const std::string_view after =
        c->last_message && c->last_message->id > c->last_read_id ? std::string_view(c->last_message->id)
                                                                 : std::string_view(c->last_read_id);
    std::size_t newer = 0;   // past the main database's newest, either side
    std::size_t unread = 0;  // of those, the peer's after the read position
    for (const MessagePtr& m : messages) {  // the newest kUnreadWindow: backlog_of_user copies
      if (!c->last_message || m->id > c->last_message->id) ++newer;
      if (m->sender_id == c->peer_id && m->id > after) ++unread;
    }
    // The main database's part, in the rest of the window.
    if (newer > 0 && c->unread > 0 && c->last_message) {
      std::size_t in_rest = 0;
      if (newer < kUnreadWindow) {
        Stmt u(lease.conn(), kUnreadInWindow);
        u.text(1, c->conversation_id).text(2, c->last_read_id)
            .integer(3, static_cast<std::int64_t>(kUnreadWindow - newer))
            .text(4, c->peer_id).text(5, c->last_message->id);
        const int rc = u.step();
        if (rc != SQLITE_ROW) return u.fail(rc, "count unread messages");
        in_rest = static_cast<std::size_t>(std::max<std::int64_t>(u.col_int(0), 0));
      }
      c->unread = in_rest;
    }
    c->unread = std::min(kUnreadWindow, c->unread + unread);
    if (!c->last_message || newest.id > c->last_message->id) c->last_message = newest;
  }
  return out;
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
  Impl& i = *impl_;
  if (i.on_store_thread()) return;
  std::unique_lock lk(i.mu);
  const std::uint64_t sync_target = i.accepted;
  const std::uint64_t append_target = i.appends_accepted;
  i.done_cv.wait(lk, [&] {
    return i.completed >= sync_target && i.appends_done >= append_target;
  });
  // And in the main database: the writer indexes at once for a waiter.
  const std::uint64_t seq_target = i.journaled_seq;
  if (i.indexed_seq >= seq_target) return;
  i.index_now = true;
  i.work_cv.notify_one();
  // Bounded: while the main database cannot be written (disk full) the messages are safe in
  // the journal, and shutdown must not hang on them.
  if (!i.done_cv.wait_for(lk, std::chrono::milliseconds(i.opts.index_wait_ms),
                          [&] { return i.indexed_seq >= seq_target || i.index_abandoned; }))
    spdlog::warn("store: flush: journaled messages not indexed yet (they stay in the journal)");
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

std::size_t SqliteStore::unindexed_messages() const {
  std::lock_guard lk(impl_->mu);
  return impl_->unindexed;
}

std::uint64_t SqliteStore::index_commits() const {
  return impl_->index_commits.load(std::memory_order_relaxed);
}

std::string SqliteStore::journal_path(std::string_view database_path) {
  return std::string(database_path) + ".msglog";
}

std::string SqliteStore::legacy_journal_path(std::string_view database_path) {
  return std::string(database_path) + ".msgjournal";
}

std::string SqliteStore::quarantine_path(std::string_view database_path) {
  return std::string(database_path) + ".msglog.quarantine";
}

}  // namespace chat::store
