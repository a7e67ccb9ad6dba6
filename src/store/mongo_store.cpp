#include "store/mongo_store.hpp"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "core/log.hpp"
#include "core/object_id.hpp"
#include "core/text.hpp"
#include "core/time.hpp"

namespace chat::store {
namespace {

constexpr const char* kUsers = "users";
constexpr const char* kMessages = "messages";
constexpr const char* kReads = "reads";
constexpr const char* kMedia = "media";
constexpr std::size_t kMaxBatch = 1000;  // messages per bulk write of the writer thread

// ---------------------------------------------------------------------------------------------
// libmongoc process state and small RAII helpers.

void mongoc_log_to_spdlog(mongoc_log_level_t level, const char* domain, const char* message,
                          void*) {
  const std::string_view msg = message ? message : "";
  switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
      spdlog::error("mongoc[{}]: {}", domain ? domain : "", msg);
      break;
    case MONGOC_LOG_LEVEL_WARNING:
      // FerretDB has no endSessions command: libmongoc warns on every pool shutdown.
      if (msg.find("endSessions") != std::string_view::npos) {
        spdlog::debug("mongoc[{}]: {}", domain ? domain : "", msg);
      } else {
        spdlog::warn("mongoc[{}]: {}", domain ? domain : "", msg);
      }
      break;
    default:
      spdlog::trace("mongoc[{}]: {}", domain ? domain : "", msg);
      break;
  }
}

// mongoc_init()/mongoc_cleanup() once per process, whatever the number of stores.
void ensure_mongoc() {
  static const struct Guard {
    Guard() {
      mongoc_init();
      mongoc_log_set_handler(&mongoc_log_to_spdlog, nullptr);
    }
    ~Guard() {
      mongoc_log_set_handler(nullptr, nullptr);  // spdlog may be gone at exit
      mongoc_cleanup();
    }
  } guard;
  (void)guard;
}

class Bson {
 public:
  Bson() { bson_init(&b_); }
  ~Bson() { bson_destroy(&b_); }
  Bson(const Bson&) = delete;
  Bson& operator=(const Bson&) = delete;
  bson_t* get() { return &b_; }
  const bson_t* get() const { return &b_; }

 private:
  bson_t b_;
};

struct CollectionDel {
  void operator()(mongoc_collection_t* c) const { mongoc_collection_destroy(c); }
};
struct CursorDel {
  void operator()(mongoc_cursor_t* c) const { mongoc_cursor_destroy(c); }
};
struct BulkDel {
  void operator()(mongoc_bulk_operation_t* b) const { mongoc_bulk_operation_destroy(b); }
};
struct FamOptsDel {
  void operator()(mongoc_find_and_modify_opts_t* o) const { mongoc_find_and_modify_opts_destroy(o); }
};
using Collection = std::unique_ptr<mongoc_collection_t, CollectionDel>;
using Cursor = std::unique_ptr<mongoc_cursor_t, CursorDel>;
using Bulk = std::unique_ptr<mongoc_bulk_operation_t, BulkDel>;
using FamOpts = std::unique_ptr<mongoc_find_and_modify_opts_t, FamOptsDel>;
struct ReadPrefsDel {
  void operator()(mongoc_read_prefs_t* p) const { mongoc_read_prefs_destroy(p); }
};
using ReadPrefs = std::unique_ptr<mongoc_read_prefs_t, ReadPrefsDel>;

// Server error codes that mean "not reachable / not primary now": retry later.
bool is_transient_server_code(std::uint32_t code) {
  switch (code) {
    case 6:      // HostUnreachable
    case 7:      // HostNotFound
    case 89:     // NetworkTimeout
    case 91:     // ShutdownInProgress
    case 189:    // PrimarySteppedDown
    case 9001:   // SocketException
    case 10107:  // NotWritablePrimary
    case 11600:  // InterruptedAtShutdown
    case 11602:  // InterruptedDueToReplStateChange
    case 13435:  // NotPrimaryNoSecondaryOk
    case 13436:  // NotPrimaryOrSecondary
      return true;
    default:
      return false;
  }
}

error map_error(const bson_error_t& e, std::string_view what) {
  errc code = errc::internal;
  if (e.domain == MONGOC_ERROR_SERVER_SELECTION || e.domain == MONGOC_ERROR_STREAM) {
    code = errc::unavailable;
  } else if (e.domain == MONGOC_ERROR_CLIENT && e.code == MONGOC_ERROR_CLIENT_AUTHENTICATE) {
    code = errc::unavailable;
  } else if (e.domain == MONGOC_ERROR_BSON) {
    code = errc::invalid_argument;  // e.g. text that is not UTF-8
  } else if (e.code == 11000 || e.code == 11001) {
    code = errc::already_exists;
  } else if ((e.domain == MONGOC_ERROR_SERVER || e.domain == MONGOC_ERROR_WRITE_CONCERN) &&
             is_transient_server_code(e.code)) {
    code = errc::unavailable;
  }
  return error{code, std::string(what) + ": " + e.message};
}

// A failed bulk whose every failure is a duplicate key (and no write concern error): for
// idempotent inserts, everything is stored.
bool only_duplicate_keys(const bson_t* reply) {
  bson_iter_t it, arr;
  if (bson_iter_init_find(&it, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
      bson_iter_recurse(&it, &arr) && bson_iter_next(&arr))
    return false;
  if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
      !bson_iter_recurse(&it, &arr))
    return false;
  bool any = false;
  while (bson_iter_next(&arr)) {
    bson_iter_t f;
    if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &f) || !bson_iter_find(&f, "code"))
      return false;
    const std::int64_t code = bson_iter_as_int64(&f);
    if (code != 11000 && code != 11001) return false;
    any = true;
  }
  return any;
}

// findAndModify returning the document after the update: `read` gets it. `what` names the
// operation in errors; `missing` is the error when the reply holds no document.
template <class Read>
auto find_and_modify(mongoc_collection_t* coll, const bson_t* query, const bson_t* update,
                     mongoc_find_and_modify_flags_t flags, std::string_view what, error missing,
                     Read read) -> decltype(read(static_cast<const bson_t*>(nullptr))) {
  FamOpts fam(mongoc_find_and_modify_opts_new());
  mongoc_find_and_modify_opts_set_update(fam.get(), update);
  mongoc_find_and_modify_opts_set_flags(fam.get(), flags);
  Bson reply;
  bson_error_t e;
  if (!mongoc_collection_find_and_modify_with_opts(coll, query, fam.get(), reply.get(), &e))
    return map_error(e, what);
  bson_iter_t it;
  if (!bson_iter_init_find(&it, reply.get(), "value") || !BSON_ITER_HOLDS_DOCUMENT(&it))
    return missing;
  std::uint32_t len = 0;
  const std::uint8_t* data = nullptr;
  bson_iter_document(&it, &len, &data);
  bson_t value;
  if (!bson_init_static(&value, data, len))
    return error{errc::internal, std::string(what) + ": bad reply"};
  return read(&value);
}

// Parses a 24-hex id; false for anything else.
bool parse_oid(std::string_view s, bson_oid_t* out) {
  if (!is_object_id(s)) return false;
  const std::string copy(s);
  bson_oid_init_from_string(out, copy.c_str());
  return true;
}

std::string oid_hex(const bson_oid_t* oid) {
  char buf[25];
  bson_oid_to_string(oid, buf);
  return std::string(buf, 24);
}

// The two members of a direct conversation id ("d:<a>:<b>", see direct_conversation_id).
struct Pair {
  std::string a, b;  // lower-case hex
  bson_oid_t oa, ob;
};
std::optional<Pair> parse_direct(std::string_view conversation_id) {
  constexpr std::size_t kLen = 2 + 24 + 1 + 24;
  if (conversation_id.size() != kLen || conversation_id.substr(0, 2) != "d:" ||
      conversation_id[26] != ':')
    return std::nullopt;
  Pair p;
  p.a = to_lower_ascii(conversation_id.substr(2, 24));
  p.b = to_lower_ascii(conversation_id.substr(27, 24));
  if (!parse_oid(p.a, &p.oa) || !parse_oid(p.b, &p.ob)) return std::nullopt;
  return p;
}

void append_str(bson_t* doc, const char* key, std::string_view v) {
  bson_append_utf8(doc, key, -1, v.data() ? v.data() : "", static_cast<int>(v.size()));
}

// A field as a string: UTF-8 as is, an ObjectId as hex, "" when missing, null or other types
// (documents written by Mongoose may lack optional fields).
std::string get_str(const bson_t* doc, const char* key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key)) return {};
  switch (bson_iter_type(&it)) {
    case BSON_TYPE_UTF8: {
      std::uint32_t len = 0;
      const char* s = bson_iter_utf8(&it, &len);
      return std::string(s, len);
    }
    case BSON_TYPE_OID:
      return oid_hex(bson_iter_oid(&it));
    default:
      return {};
  }
}

// Why a bulk failed: the single operations that did (their index in the bulk; the others were
// written), and whether the whole bulk is in doubt (no answer, a write concern error, or a
// failure that names no operation).
struct WriteError {
  std::size_t index;
  std::int64_t code;
  std::string message;
};
struct BulkFailure {
  std::vector<WriteError> writes;
  bool whole = true;
};
BulkFailure bulk_failure(const bson_t* reply, std::size_t bulk_size) {
  BulkFailure out;
  bson_iter_t it, arr;
  if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
      bson_iter_recurse(&it, &arr)) {
    while (bson_iter_next(&arr)) {
      bson_t item;
      std::uint32_t len = 0;
      const std::uint8_t* data = nullptr;
      if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) continue;
      bson_iter_document(&arr, &len, &data);
      if (!bson_init_static(&item, data, len)) continue;
      bson_iter_t f;
      std::int64_t index = -1, code = 0;
      if (bson_iter_init_find(&f, &item, "index")) index = bson_iter_as_int64(&f);
      if (bson_iter_init_find(&f, &item, "code")) code = bson_iter_as_int64(&f);
      if (index < 0 || static_cast<std::size_t>(index) >= bulk_size) continue;
      out.writes.push_back({static_cast<std::size_t>(index), code, get_str(&item, "errmsg")});
    }
  }
  const bool wc_error = bson_iter_init_find(&it, reply, "writeConcernErrors") &&
                        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr) &&
                        bson_iter_next(&arr);
  out.whole = out.writes.empty() || wc_error;
  return out;
}

std::int64_t get_ms(const bson_t* doc, const char* key) {
  bson_iter_t it;
  if (!bson_iter_init_find(&it, doc, key)) return 0;
  switch (bson_iter_type(&it)) {
    case BSON_TYPE_DATE_TIME:
      return bson_iter_date_time(&it);
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
      return bson_iter_as_int64(&it);
    default:
      return 0;
  }
}

User read_user(const bson_t* doc) {
  User u;
  u.id = get_str(doc, "_id");
  u.email = get_str(doc, "email");
  u.password_hash = get_str(doc, "password");
  u.full_name = get_str(doc, "full_name");
  u.profile_picture = get_str(doc, "profile_picture");
  u.bio = get_str(doc, "bio");
  u.created_at = get_ms(doc, "createdAt");
  u.updated_at = get_ms(doc, "updatedAt");
  return u;
}

Message read_message(const bson_t* doc) {
  Message m;
  m.id = get_str(doc, "_id");
  m.sender_id = get_str(doc, "senderId");
  m.receiver_id = get_str(doc, "receiverId");
  // Computed rather than read: messages of the old server have no conversationId.
  m.conversation_id = direct_conversation_id(m.sender_id, m.receiver_id);
  m.text = get_str(doc, "text");
  m.image = get_str(doc, "image");
  m.client_msg_id = get_str(doc, "clientMsgId");
  m.created_at = get_ms(doc, "createdAt");
  m.updated_at = get_ms(doc, "updatedAt");
  return m;
}

// The message fields as Mongoose writes them, plus conversationId and clientMsgId (only when
// set). `_id` is left to the caller (an insert has it, an upsert's $setOnInsert must not).
struct MessageOids {
  bson_oid_t id, sender, receiver;
};
std::optional<MessageOids> message_oids(const Message& m) {
  MessageOids o;
  if (!parse_oid(m.id, &o.id) || !parse_oid(m.sender_id, &o.sender) ||
      !parse_oid(m.receiver_id, &o.receiver))
    return std::nullopt;
  return o;
}
void append_message_fields(bson_t* doc, const Message& m, const MessageOids& o) {
  BSON_APPEND_OID(doc, "senderId", &o.sender);
  BSON_APPEND_OID(doc, "receiverId", &o.receiver);
  append_str(doc, "text", m.text);
  append_str(doc, "image", m.image);
  BSON_APPEND_DATE_TIME(doc, "createdAt", m.created_at);
  BSON_APPEND_DATE_TIME(doc, "updatedAt", m.updated_at);
  BSON_APPEND_INT32(doc, "__v", 0);
  append_str(doc, "conversationId", m.conversation_id);
  if (!m.client_msg_id.empty()) append_str(doc, "clientMsgId", m.client_msg_id);
}

// {$or: [{senderId: a, receiverId: b}, {senderId: b, receiverId: a}]} (+ an _id range): the
// history of two users, including the old server's messages, which have no conversationId.
// Served by the {senderId: 1, receiverId: 1, _id: -1} index, one branch each.
void append_pair_filter(bson_t* filter, const Pair& p) {
  bson_t arr, branch;
  BSON_APPEND_ARRAY_BEGIN(filter, "$or", &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &branch);
  BSON_APPEND_OID(&branch, "senderId", &p.oa);
  BSON_APPEND_OID(&branch, "receiverId", &p.ob);
  bson_append_document_end(&arr, &branch);
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "1", &branch);
  BSON_APPEND_OID(&branch, "senderId", &p.ob);
  BSON_APPEND_OID(&branch, "receiverId", &p.oa);
  bson_append_document_end(&arr, &branch);
  bson_append_array_end(filter, &arr);
}
void append_id_range(bson_t* filter, const char* op, const bson_oid_t& bound) {
  bson_t range;
  BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &range);
  BSON_APPEND_OID(&range, op, &bound);
  bson_append_document_end(filter, &range);
}

// find() options: sort by _id (1 or -1), a limit (0: none), and an optional projection.
void append_find_opts(bson_t* opts, int sort_dir, std::int64_t limit,
                      std::initializer_list<const char*> projection = {}) {
  bson_t sort;
  BSON_APPEND_DOCUMENT_BEGIN(opts, "sort", &sort);
  BSON_APPEND_INT32(&sort, "_id", sort_dir);
  bson_append_document_end(opts, &sort);
  if (limit > 0) BSON_APPEND_INT64(opts, "limit", limit);
  if (projection.size() > 0) {
    bson_t proj;
    BSON_APPEND_DOCUMENT_BEGIN(opts, "projection", &proj);
    for (const char* f : projection) BSON_APPEND_INT32(&proj, f, 1);
    bson_append_document_end(opts, &proj);
  }
}

std::string read_key(std::string_view conversation_id, std::string_view user_id) {
  std::string k(conversation_id);
  k += '|';
  k += user_id;
  return k;
}

struct AppendJob {
  Message m;
  Store::AppendCallback done;
};

void deliver(AppendJob& job, result<Appended> r) {
  try {
    job.done(std::move(r));
  } catch (const std::exception& e) {
    spdlog::error("mongo store: append callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("mongo store: append callback threw");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct MongoStore::Impl {
  MongoOptions opts;
  std::string db_name;
  mongoc_uri_t* uri = nullptr;
  mongoc_client_pool_t* pool = nullptr;

  // Append queue. `accepted` counts jobs ever queued, `completed` jobs delivered.
  mutable std::mutex mu;
  std::condition_variable work_cv;
  std::condition_variable done_cv;
  std::deque<AppendJob> queue;
  std::uint64_t accepted = 0;
  std::uint64_t completed = 0;
  bool stopping = false;
  std::thread writer;
  std::atomic<std::size_t> pending{0};
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> commands{0};  // started, counted by libmongoc's command monitoring

  ~Impl() {
    if (writer.joinable()) {
      {
        std::lock_guard lk(mu);
        stopping = true;
      }
      work_cv.notify_all();
      writer.join();
    }
    if (pool) mongoc_client_pool_destroy(pool);
    if (uri) mongoc_uri_destroy(uri);
  }

  bool on_writer_thread() const { return std::this_thread::get_id() == writer.get_id(); }

  // A pooled connection for the duration of one call.
  class Lease {
   public:
    explicit Lease(Impl& impl) : impl_(impl), client_(mongoc_client_pool_pop(impl.pool)) {}
    ~Lease() { mongoc_client_pool_push(impl_.pool, client_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    mongoc_client_t* client() const { return client_; }
    Collection coll(const char* name) const {
      return Collection(mongoc_client_get_collection(client_, impl_.db_name.c_str(), name));
    }

   private:
    Impl& impl_;
    mongoc_client_t* client_;
  };

  // Runs find() and calls `each(doc)` per document.
  template <class F>
  static result<void> find_each(mongoc_collection_t* coll, const bson_t* filter,
                                const bson_t* opts, std::string_view what, F&& each,
                                const mongoc_read_prefs_t* prefs = nullptr) {
    Cursor cur(mongoc_collection_find_with_opts(coll, filter, opts, prefs));
    const bson_t* doc = nullptr;
    while (mongoc_cursor_next(cur.get(), &doc)) each(doc);
    bson_error_t e;
    if (mongoc_cursor_error(cur.get(), &e)) return map_error(e, what);
    return {};
  }

  result<User> find_user(const bson_t* filter) {
    Lease l(*this);
    auto users = l.coll(kUsers);
    Bson opts;
    BSON_APPEND_INT64(opts.get(), "limit", 1);
    std::optional<User> found;
    auto r = find_each(users.get(), filter, opts.get(), "read user",
                       [&](const bson_t* d) { found = read_user(d); });
    if (!r.ok()) return r.err();
    if (!found) return error{errc::not_found, "user not found"};
    return std::move(*found);
  }

  // The newest message of two users (either direction), if any.
  result<std::optional<Message>> newest_message(mongoc_collection_t* messages, const Pair& p,
                                                bool id_only) {
    Bson filter, opts;
    append_pair_filter(filter.get(), p);
    if (id_only) {
      append_find_opts(opts.get(), -1, 1, {"_id"});
    } else {
      append_find_opts(opts.get(), -1, 1);
    }
    std::optional<Message> newest;
    auto r = find_each(messages, filter.get(), opts.get(), "read newest message",
                       [&](const bson_t* d) {
                         if (id_only) {
                           newest.emplace();
                           newest->id = get_str(d, "_id");
                         } else {
                           newest = read_message(d);
                         }
                       });
    if (!r.ok()) return r.err();
    return newest;
  }

  result<void> create_index(mongoc_client_t* client, const char* coll, const bson_t* keys,
                            const char* name, bool unique) {
    Bson cmd, reply;
    bson_t indexes, index;
    append_str(cmd.get(), "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(cmd.get(), "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
    BSON_APPEND_DOCUMENT(&index, "key", keys);
    append_str(&index, "name", name);
    if (unique) BSON_APPEND_BOOL(&index, "unique", true);
    bson_append_document_end(&indexes, &index);
    bson_append_array_end(cmd.get(), &indexes);
    bson_error_t e;
    const bool ok = mongoc_client_write_command_with_opts(client, db_name.c_str(), cmd.get(),
                                                          nullptr, reply.get(), &e);
    if (ok) return {};
    // An index with these keys but another name or options (made by hand, or an older Mongoose
    // schema): keep it, the queries work the same.
    if (e.code == 85 || e.code == 86) {
      spdlog::warn("mongo store: index {}.{} differs from the expected one, kept as is: {}", coll,
                   name, e.message);
      return {};
    }
    return map_error(e, std::string("create index ") + coll + "." + name);
  }

  result<void> create_indexes() {
    Lease l(*this);
    struct Spec {
      const char* coll;
      const char* name;
      std::vector<std::pair<const char*, int>> keys;
      bool unique;
    };
    // Names are the ones MongoDB derives from the keys, as Mongoose's `unique: true` on email
    // makes "email_1": re-creating an existing index is then a no-op.
    const Spec specs[] = {
        {kUsers, "email_1", {{"email", 1}}, true},
        // History (both $or branches), newest message, unread window; distinct receivers.
        {kMessages, "senderId_1_receiverId_1__id_-1",
         {{"senderId", 1}, {"receiverId", 1}, {"_id", -1}}, false},
        // distinct senders to a user (conversation_summaries).
        {kMessages, "receiverId_1_senderId_1__id_-1",
         {{"receiverId", 1}, {"senderId", 1}, {"_id", -1}}, false},
        // append_message() idempotency lookup. Not unique: FerretDB 1.24 has no
        // partialFilterExpression, and a unique compound index would collide on messages
        // without clientMsgId (all of the old server's).
        {kMessages, "senderId_1_clientMsgId_1", {{"senderId", 1}, {"clientMsgId", 1}}, false},
        {kReads, "userId_1", {{"userId", 1}}, false},
    };
    for (const Spec& s : specs) {
      Bson keys;
      for (const auto& [field, dir] : s.keys) BSON_APPEND_INT32(keys.get(), field, dir);
      if (auto r = create_index(l.client(), s.coll, keys.get(), s.name, s.unique); !r.ok())
        return r;
    }
    return {};
  }

  // ---- writer thread -------------------------------------------------------------------------

  result<void> enqueue(AppendJob& job) {
    {
      std::lock_guard lk(mu);
      if (stopping) return error{errc::unavailable, "store closing"};
      if (queue.size() >= opts.writer_queue) return error{errc::unavailable, "store queue full"};
      queue.push_back(std::move(job));
      ++accepted;
      pending.store(queue.size(), std::memory_order_relaxed);
    }
    work_cv.notify_one();
    return {};
  }

  void writer_loop() {
    std::vector<AppendJob> batch;
    bool server_down = false;
    bool closing = false;
    for (;;) {
      {
        std::unique_lock lk(mu);
        work_cv.wait(lk, [&] { return !queue.empty() || stopping; });
        if (queue.empty()) return;
        const std::size_t n = std::min(queue.size(), kMaxBatch);
        for (std::size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        pending.store(queue.size(), std::memory_order_relaxed);
        closing = stopping;
      }
      if (closing && server_down) {
        // Closing with the server down: one timeout was enough, fail the rest at once.
        for (auto& job : batch)
          deliver(job, error{errc::unavailable, "store closing, database unavailable"});
      } else {
        server_down = !write_batch(batch);
      }
      const std::size_t n = batch.size();
      batch.clear();
      {
        std::lock_guard lk(mu);
        completed += n;
      }
      done_cv.notify_all();
    }
  }

  // Looks up the already stored messages of (senderId, clientMsgId) pairs, in one query.
  result<std::map<std::pair<std::string, std::string>, Message>> stored_by_client_id(
      mongoc_collection_t* messages,
      const std::vector<std::pair<bson_oid_t, std::string>>& keys) {
    std::map<std::pair<std::string, std::string>, Message> out;
    if (keys.empty()) return out;
    Bson filter;
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(filter.get(), "$or", &arr);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::string idx = std::to_string(i);
      bson_t branch;
      BSON_APPEND_DOCUMENT_BEGIN(&arr, idx.c_str(), &branch);
      BSON_APPEND_OID(&branch, "senderId", &keys[i].first);
      append_str(&branch, "clientMsgId", keys[i].second);
      bson_append_document_end(&arr, &branch);
    }
    bson_append_array_end(filter.get(), &arr);
    Bson opts;
    append_find_opts(opts.get(), 1, 0);  // the earliest one wins if several exist
    auto r = find_each(messages, filter.get(), opts.get(), "look up client_msg_id",
                       [&](const bson_t* d) {
                         Message m = read_message(d);
                         out.try_emplace({m.sender_id, m.client_msg_id}, std::move(m));
                       });
    if (!r.ok()) return r.err();
    return out;
  }

  // One bulk insert for the batch; every job's callback runs before it returns. False when the
  // database could not be reached.
  bool write_batch(std::vector<AppendJob>& batch) {
    const std::size_t n = batch.size();
    std::vector<std::optional<result<Appended>>> res(n);
    std::vector<std::optional<MessageOids>> oids(n);
    std::vector<std::size_t> dup_of(n, n);  // index of the batch's first job with the same key
    std::map<std::pair<std::string, std::string>, std::size_t> first_with_key;
    std::vector<std::pair<bson_oid_t, std::string>> lookup;
    for (std::size_t i = 0; i < n; ++i) {
      Message& m = batch[i].m;
      m.sender_id = to_lower_ascii(m.sender_id);
      m.receiver_id = to_lower_ascii(m.receiver_id);
      m.id = to_lower_ascii(m.id);
      if (m.conversation_id.empty()) {
        res[i] = error{errc::invalid_argument, "message needs id, conversation, sender and receiver"};
        continue;
      }
      oids[i] = message_oids(m);
      if (!oids[i]) {
        res[i] = error{errc::invalid_argument, "message id, sender and receiver must be ObjectIds"};
        continue;
      }
      if (m.client_msg_id.empty()) continue;
      auto [it, inserted] = first_with_key.try_emplace({m.sender_id, m.client_msg_id}, i);
      if (!inserted) {
        dup_of[i] = it->second;
      } else {
        lookup.emplace_back(oids[i]->sender, m.client_msg_id);
      }
    }

    bool reachable = true;
    auto fail_rest = [&](const error& e) {
      for (std::size_t i = 0; i < n; ++i)
        if (!res[i] && dup_of[i] == n) res[i] = e;
      if (e.code == errc::unavailable) reachable = false;
    };

    {
      Lease l(*this);
      auto messages = l.coll(kMessages);
      auto stored = stored_by_client_id(messages.get(), lookup);
      if (!stored.ok()) {
        fail_rest(stored.err());
      } else {
        for (const auto& [key, i] : first_with_key) {
          auto it = stored->find(key);
          if (it != stored->end()) res[i] = Appended{it->second, true};
        }
      }

      Bson bulk_opts;
      BSON_APPEND_BOOL(bulk_opts.get(), "ordered", false);
      Bulk bulk(mongoc_collection_create_bulk_operation_with_opts(messages.get(), bulk_opts.get()));
      std::vector<std::size_t> bulk_index;  // bulk position → batch index
      for (std::size_t i = 0; i < n; ++i) {
        if (res[i] || dup_of[i] != n) continue;
        Bson doc;
        BSON_APPEND_OID(doc.get(), "_id", &oids[i]->id);
        append_message_fields(doc.get(), batch[i].m, *oids[i]);
        bson_error_t e;
        if (!mongoc_bulk_operation_insert_with_opts(bulk.get(), doc.get(), nullptr, &e)) {
          res[i] = map_error(e, "insert message");
          continue;
        }
        bulk_index.push_back(i);
      }
      if (!bulk_index.empty()) {
        Bson reply;
        bson_error_t e;
        const bool ok = mongoc_bulk_operation_execute(bulk.get(), reply.get(), &e) != 0;
        batches.fetch_add(1, std::memory_order_relaxed);
        if (!ok) {
          // Per-message failures come as writeErrors; anything else failed the whole bulk.
          const BulkFailure failure = bulk_failure(reply.get(), bulk_index.size());
          for (const WriteError& w : failure.writes) {
            // The only unique index on messages is _id: a caller reused an id.
            res[bulk_index[w.index]] =
                w.code == 11000 ? error{errc::internal, "message id already exists: " + w.message}
                                : error{errc::internal, "insert message: " + w.message};
          }
          if (failure.whole) {
            const error whole = map_error(e, "write messages");
            for (std::size_t i : bulk_index)
              if (!res[i]) res[i] = whole;
            if (whole.code == errc::unavailable) reachable = false;
          }
        }
        for (std::size_t i : bulk_index)
          if (!res[i]) res[i] = Appended{batch[i].m, false};
      }
    }

    for (std::size_t i = 0; i < n; ++i) {
      if (dup_of[i] == n) continue;
      const auto& first = res[dup_of[i]];
      if (first && first->ok()) {
        res[i] = Appended{first->value().message, true};
      } else if (first) {
        res[i] = first->err();
      } else {
        res[i] = error{errc::internal, "append not run"};
      }
    }
    for (std::size_t i = 0; i < n; ++i)
      deliver(batch[i], res[i] ? std::move(*res[i])
                               : result<Appended>(errc::internal, "append not run"));
    return reachable;
  }
};

// ---------------------------------------------------------------------------------------------

result<std::unique_ptr<MongoStore>> MongoStore::open(const MongoOptions& options) {
  ensure_mongoc();
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->opts.max_pool = std::max<std::size_t>(impl->opts.max_pool, 1);
  impl->opts.writer_queue = std::max<std::size_t>(impl->opts.writer_queue, 1);

  bson_error_t e;
  impl->uri = mongoc_uri_new_with_error(options.uri.c_str(), &e);
  if (!impl->uri) return error{errc::invalid_argument, std::string("MongoDB URI: ") + e.message};
  // Bounded waits when the server is down (libmongoc's defaults: 30 s selection, 10 s connect,
  // 5 min socket).
  for (const auto& [key, ms] : {std::pair{MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000},
                                std::pair{MONGOC_URI_CONNECTTIMEOUTMS, 5000},
                                std::pair{MONGOC_URI_SOCKETTIMEOUTMS, 10000}}) {
    if (!mongoc_uri_has_option(impl->uri, key)) mongoc_uri_set_option_as_int32(impl->uri, key, ms);
  }
  const char* db = mongoc_uri_get_database(impl->uri);
  impl->db_name = db && *db ? db : "chat";

  impl->pool = mongoc_client_pool_new(impl->uri);
  if (!impl->pool) return error{errc::invalid_argument, "MongoDB URI rejected by libmongoc"};
  mongoc_client_pool_set_error_api(impl->pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_set_appname(impl->pool, "chatd");
  mongoc_client_pool_max_size(impl->pool, static_cast<std::uint32_t>(
                                              std::min<std::size_t>(impl->opts.max_pool, 10000)));
  // Command monitoring counts the round trips (commands(); handshakes and server monitoring are
  // not commands). Set before any client leaves the pool, as libmongoc requires.
  if (impl->opts.count_commands) {
    mongoc_apm_callbacks_t* apm = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(apm, [](const mongoc_apm_command_started_t* event) {
      static_cast<Impl*>(mongoc_apm_command_started_get_context(event))
          ->commands.fetch_add(1, std::memory_order_relaxed);
    });
    const bool apm_set = mongoc_client_pool_set_apm_callbacks(impl->pool, apm, impl.get());
    mongoc_apm_callbacks_destroy(apm);
    if (!apm_set) return error{errc::internal, "MongoDB: cannot set command monitoring"};
  }

  std::unique_ptr<MongoStore> store(new MongoStore(std::move(impl)));
  if (auto r = store->ping(); !r.ok()) return r.err();
  if (auto r = store->impl_->create_indexes(); !r.ok()) return r.err();
  try {
    store->impl_->writer = std::thread([p = store->impl_.get()] { p->writer_loop(); });
  } catch (const std::system_error& ex) {
    return error{errc::unavailable, std::string("cannot start the store writer thread: ") + ex.what()};
  }
  return store;
}

MongoStore::MongoStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MongoStore::~MongoStore() = default;

const std::string& MongoStore::database() const { return impl_->db_name; }

std::size_t MongoStore::pending_writes() const {
  return impl_->pending.load(std::memory_order_relaxed);
}

std::uint64_t MongoStore::batches() const { return impl_->batches.load(std::memory_order_relaxed); }

std::uint64_t MongoStore::commands() const { return impl_->commands.load(std::memory_order_relaxed); }

result<void> MongoStore::ping() {
  Impl::Lease l(*impl_);
  Bson cmd, reply;
  BSON_APPEND_INT32(cmd.get(), "ping", 1);
  bson_error_t e;
  if (!mongoc_client_command_simple(l.client(), "admin", cmd.get(), nullptr, reply.get(), &e))
    return map_error(e, "ping MongoDB");
  return {};
}

void MongoStore::flush() {
  if (impl_->on_writer_thread()) return;
  std::unique_lock lk(impl_->mu);
  const std::uint64_t target = impl_->accepted;
  impl_->done_cv.wait(lk, [&] { return impl_->completed >= target; });
}

// ---- users -----------------------------------------------------------------------------------

result<User> MongoStore::create_user(const User& user) {
  bson_oid_t oid;
  if (!parse_oid(user.id, &oid)) return error{errc::invalid_argument, "user id must be an ObjectId"};
  Bson doc;
  BSON_APPEND_OID(doc.get(), "_id", &oid);
  append_str(doc.get(), "email", user.email);
  append_str(doc.get(), "password", user.password_hash);
  append_str(doc.get(), "full_name", user.full_name);
  append_str(doc.get(), "profile_picture", user.profile_picture);
  append_str(doc.get(), "bio", user.bio);
  // o_auth_provider / o_auth_id are left out (Mongoose fills its defaults on read); a null
  // would collide in a unique sparse index on them, a missing field does not.
  BSON_APPEND_DATE_TIME(doc.get(), "createdAt", user.created_at);
  BSON_APPEND_DATE_TIME(doc.get(), "updatedAt", user.updated_at);
  BSON_APPEND_INT32(doc.get(), "__v", 0);
  bson_error_t e;
  {
    Impl::Lease l(*impl_);
    auto users = l.coll(kUsers);
    if (mongoc_collection_insert_one(users.get(), doc.get(), nullptr, nullptr, &e)) {
      User out = user;
      out.id = oid_hex(&oid);
      return out;
    }
  }
  error err = map_error(e, "insert user");
  if (err.code != errc::already_exists) return err;
  // FerretDB's duplicate key message does not name the index: tell email from id by looking.
  Bson by_email;
  append_str(by_email.get(), "email", user.email);
  auto existing = impl_->find_user(by_email.get());
  if (existing.ok() || existing.code() == errc::not_found) {
    if (existing.ok()) return error{errc::already_exists, "User account already exists with this email"};
    return error{errc::already_exists, "user id already exists"};
  }
  return error{errc::already_exists, "User account already exists with this email"};
}

result<User> MongoStore::user_by_id(std::string_view id) {
  bson_oid_t oid;
  if (!parse_oid(id, &oid)) return error{errc::not_found, "user not found"};
  Bson filter;
  BSON_APPEND_OID(filter.get(), "_id", &oid);
  return impl_->find_user(filter.get());
}

result<User> MongoStore::user_by_email(std::string_view email) {
  Bson filter;
  append_str(filter.get(), "email", email);
  return impl_->find_user(filter.get());
}

result<std::vector<User>> MongoStore::users_except(std::string_view id) {
  Bson filter;
  bson_oid_t oid;
  if (parse_oid(id, &oid)) {
    bson_t ne;
    BSON_APPEND_DOCUMENT_BEGIN(filter.get(), "_id", &ne);
    BSON_APPEND_OID(&ne, "$ne", &oid);
    bson_append_document_end(filter.get(), &ne);
  }
  std::vector<User> out;
  {
    Impl::Lease l(*impl_);
    auto users = l.coll(kUsers);
    auto r = Impl::find_each(users.get(), filter.get(), nullptr, "list users",
                             [&](const bson_t* d) { out.push_back(read_user(d)); });
    if (!r.ok()) return r.err();
  }
  // Sorted here: FerretDB has no collation, and the list is read whole anyway. Case-insensitive
  // as SqliteStore's COLLATE NOCASE, then by id.
  std::vector<std::pair<std::string, std::size_t>> keys;
  keys.reserve(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) keys.emplace_back(to_lower_ascii(out[i].full_name), i);
  std::sort(keys.begin(), keys.end(), [&](const auto& x, const auto& y) {
    if (x.first != y.first) return x.first < y.first;
    return out[x.second].id < out[y.second].id;
  });
  std::vector<User> sorted;
  sorted.reserve(out.size());
  for (const auto& k : keys) sorted.push_back(std::move(out[k.second]));
  return sorted;
}

result<User> MongoStore::update_user(std::string_view id, const UserPatch& patch,
                                     std::int64_t now_ms) {
  bson_oid_t oid;
  if (!parse_oid(id, &oid)) return error{errc::not_found, "user not found"};
  Bson query, update;
  BSON_APPEND_OID(query.get(), "_id", &oid);
  bson_t set;
  BSON_APPEND_DOCUMENT_BEGIN(update.get(), "$set", &set);
  if (patch.full_name) append_str(&set, "full_name", *patch.full_name);
  if (patch.profile_picture) append_str(&set, "profile_picture", *patch.profile_picture);
  if (patch.bio) append_str(&set, "bio", *patch.bio);
  BSON_APPEND_DATE_TIME(&set, "updatedAt", now_ms);
  bson_append_document_end(update.get(), &set);

  Impl::Lease l(*impl_);
  auto users = l.coll(kUsers);
  return find_and_modify(users.get(), query.get(), update.get(), MONGOC_FIND_AND_MODIFY_RETURN_NEW,
                         "update user", error{errc::not_found, "user not found"},
                         [](const bson_t* doc) -> result<User> { return read_user(doc); });
}

result<void> MongoStore::set_password_hash(std::string_view id, std::string_view hash) {
  bson_oid_t oid;
  if (!parse_oid(id, &oid)) return error{errc::not_found, "user not found"};
  Bson query, update, reply;
  BSON_APPEND_OID(query.get(), "_id", &oid);
  bson_t set;
  BSON_APPEND_DOCUMENT_BEGIN(update.get(), "$set", &set);
  append_str(&set, "password", hash);
  bson_append_document_end(update.get(), &set);
  bson_error_t e;
  Impl::Lease l(*impl_);
  auto users = l.coll(kUsers);
  if (!mongoc_collection_update_one(users.get(), query.get(), update.get(), nullptr, reply.get(),
                                    &e))
    return map_error(e, "set password hash");
  bson_iter_t it;
  if (bson_iter_init_find(&it, reply.get(), "matchedCount") && bson_iter_as_int64(&it) == 0)
    return error{errc::not_found, "user not found"};
  return {};
}

// ---- messages --------------------------------------------------------------------------------

void MongoStore::append_message(Message m, AppendCallback done) {
  AppendJob job{std::move(m), std::move(done)};
  if (auto r = impl_->enqueue(job); !r.ok()) deliver(job, r.err());
}

result<void> MongoStore::upsert_messages(const std::vector<Message>& batch) {
  if (batch.empty()) return {};
  Impl::Lease l(*impl_);
  auto messages = l.coll(kMessages);
  // Inserts by _id, an existing _id being a duplicate-key error that counts as stored: the same
  // idempotence as an upsert with $setOnInsert, but an insert is found by the _id index alone,
  // where FerretDB's SQLite backend runs an update's filter as a collection scan (an upsert
  // bulk of n into a collection of N cost n × N: ~40 ms each at a few thousand documents).
  Bson bulk_opts;
  BSON_APPEND_BOOL(bulk_opts.get(), "ordered", false);
  Bulk bulk(mongoc_collection_create_bulk_operation_with_opts(messages.get(), bulk_opts.get()));
  std::size_t invalid = 0, queued = 0;
  std::string first_invalid;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    Message m = batch[i];
    m.id = to_lower_ascii(m.id);
    m.sender_id = to_lower_ascii(m.sender_id);
    m.receiver_id = to_lower_ascii(m.receiver_id);
    if (m.conversation_id.empty()) m.conversation_id = direct_conversation_id(m.sender_id, m.receiver_id);
    auto o = message_oids(m);
    bool added = false;
    bson_error_t e;
    if (o) {
      Bson doc;
      BSON_APPEND_OID(doc.get(), "_id", &o->id);
      append_message_fields(doc.get(), m, *o);
      added = mongoc_bulk_operation_insert_with_opts(bulk.get(), doc.get(), nullptr, &e);
    }
    if (!added) {
      if (invalid++ == 0)
        first_invalid = "message " + std::to_string(i) + " (" + batch[i].id + ")" +
                        (o ? std::string(": ") + e.message : ": ids must be ObjectIds");
      continue;
    }
    ++queued;
  }
  if (queued > 0) {
    Bson reply;
    bson_error_t e;
    if (!mongoc_bulk_operation_execute(bulk.get(), reply.get(), &e) && !only_duplicate_keys(reply.get()))
      return map_error(e, "store messages");
  }
  if (invalid > 0)
    return error{errc::invalid_argument,
                 std::to_string(invalid) + " invalid message(s) skipped, first: " + first_invalid};
  return {};
}

result<MessagePage> MongoStore::conversation_page(std::string_view conversation_id,
                                                  std::string_view before_id, std::size_t limit) {
  bson_oid_t before;
  if (!before_id.empty() && !parse_oid(before_id, &before))
    return error{errc::invalid_argument, "before id must be an ObjectId"};
  MessagePage page;
  auto pair = parse_direct(conversation_id);
  if (!pair) return page;  // not a direct conversation: nothing stored under it
  constexpr auto kMaxLimit = static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max() - 1);
  limit = std::min(limit, kMaxLimit);
  Bson filter, opts;
  append_pair_filter(filter.get(), *pair);
  if (!before_id.empty()) append_id_range(filter.get(), "$lt", before);
  // One more than asked tells whether older messages exist.
  append_find_opts(opts.get(), -1, static_cast<std::int64_t>(limit) + 1);
  Impl::Lease l(*impl_);
  auto messages = l.coll(kMessages);
  auto r = Impl::find_each(messages.get(), filter.get(), opts.get(), "read conversation page",
                           [&](const bson_t* d) {
                             if (page.messages.size() == limit) {
                               page.has_more = true;
                               return;
                             }
                             page.messages.push_back(read_message(d));
                           });
  if (!r.ok()) return r.err();
  std::reverse(page.messages.begin(), page.messages.end());
  return page;
}

// ---- read positions --------------------------------------------------------------------------

result<std::string> MongoStore::mark_read(std::string_view conversation_id,
                                          std::string_view user_id, std::string_view up_to_id) {
  return mark_read_as_many(conversation_id, user_id, up_to_id);
}

result<std::string> MongoStore::mark_read_known(std::string_view conversation_id,
                                                std::string_view user_id,
                                                std::string_view up_to_id,
                                                std::string_view newest_known) {
  return std::move(mark_read_many_known({{std::string(conversation_id), std::string(user_id),
                                          std::string(up_to_id)}},
                                        {std::string(newest_known)})
                       .front());
}

std::vector<result<std::string>> MongoStore::mark_read_many(const std::vector<ReadMark>& marks) {
  return mark_read_many_known(marks, {});
}

std::vector<result<std::string>> MongoStore::mark_read_many_known(
    const std::vector<ReadMark>& marks, const std::vector<std::string>& newest_known) {
  std::vector<result<std::string>> out(marks.size(), error{errc::internal, "mark read: not written"});
  if (marks.empty()) return out;
  // Each valid mark's clamped position, by round: the n-th mark of a reader in a conversation
  // goes in round n, so a round names each reads document once and a repeated reader sees its
  // earlier mark applied first, as one mark_read after another would.
  struct Target {
    std::size_t index;  // into marks
    std::string key;    // the reads document's _id
    std::string conv, user, position;
  };
  std::vector<std::vector<Target>> rounds;
  std::unordered_map<std::string, std::size_t> seen;  // key → marks of it so far

  Impl::Lease l(*impl_);
  auto messages = l.coll(kMessages);
  for (std::size_t i = 0; i < marks.size(); ++i) {
    const ReadMark& m = marks[i];
    if (m.up_to_id.empty()) {
      out[i] = error{errc::invalid_argument, "read position is empty"};
      continue;
    }
    auto pair = parse_direct(m.conversation_id);
    const std::string user = to_lower_ascii(m.user_id);
    if (!pair || (user != pair->a && user != pair->b)) {
      out[i] = error{errc::not_found, "not a member of the conversation"};
      continue;
    }
    const std::string up_to = to_lower_ascii(m.up_to_id);
    const std::string known = i < newest_known.size() ? to_lower_ascii(newest_known[i]) : std::string();
    // The clamp bound is max(newest stored, newest known): when the known message is at or past
    // up_to, the position is up_to whatever is stored, and no query is needed (a receiver
    // marking what it was just delivered in cluster mode).
    std::string bound = known;
    if (known.empty() || known < up_to) {
      auto newest = impl_->newest_message(messages.get(), *pair, true);
      if (!newest.ok()) {
        out[i] = newest.err();
        continue;
      }
      if (*newest && (*newest)->id > bound) bound = (*newest)->id;
    }
    // Membership is "the two users exchanged a message" (stored, or known to be on its way).
    if (bound.empty()) {
      out[i] = error{errc::not_found, "not a member of the conversation"};
      continue;
    }
    std::string conv = "d:" + pair->a + ":" + pair->b;
    std::string key = read_key(conv, user);
    const std::size_t round = seen[key]++;
    if (round == rounds.size()) rounds.emplace_back();
    rounds[round].push_back(Target{i, std::move(key), std::move(conv), user, std::min(up_to, bound)});
  }

  // Per round, one unordered bulk of upserts ($max: string order is time order for lower-case
  // ids) and one find of the documents written (all in its first reply), on the primary: two
  // round trips per round. The updates are idempotent: an update that lost a race for a
  // new document (duplicate key: another instance inserted it) and a bulk that got no answer
  // are sent once more.
  auto reads = l.coll(kReads);
  Bson upsert;
  BSON_APPEND_BOOL(upsert.get(), "upsert", true);
  const ReadPrefs primary(mongoc_read_prefs_new(MONGOC_READ_PRIMARY));
  for (std::size_t r = 0; r < rounds.size(); ++r) {
    std::vector<Target>& round = rounds[r];
    auto fail_from_here = [&](const error& e) {
      for (std::size_t later = r; later < rounds.size(); ++later)
        for (const Target& t : rounds[later]) out[t.index] = e;
    };
    std::vector<const Target*> pending;
    for (const Target& t : round) pending.push_back(&t);
    std::unordered_map<const Target*, error> failed;  // updates refused one by one
    for (int attempt = 0; attempt < 2 && !pending.empty(); ++attempt) {
      Bson bulk_opts;
      BSON_APPEND_BOOL(bulk_opts.get(), "ordered", false);
      Bulk bulk(mongoc_collection_create_bulk_operation_with_opts(reads.get(), bulk_opts.get()));
      bson_error_t e;
      for (const Target* t : pending) {
        Bson selector, update;
        append_str(selector.get(), "_id", t->key);
        bson_t max, soi;
        BSON_APPEND_DOCUMENT_BEGIN(update.get(), "$max", &max);
        append_str(&max, "lastReadId", t->position);
        bson_append_document_end(update.get(), &max);
        BSON_APPEND_DOCUMENT_BEGIN(update.get(), "$setOnInsert", &soi);
        append_str(&soi, "conversationId", t->conv);
        append_str(&soi, "userId", t->user);
        bson_append_document_end(update.get(), &soi);
        // An update of many by _id is an update of one; FerretDB 1.24 needs it: an update of
        // one keeps its query's cursor open until the whole command ends, and a command of
        // about a hundred that match stored documents waits on its own cursors (no answer for
        // 10 s, its busy timeout; 85 were answered, 100 not), where "many" reads each cursor
        // to its end.
        if (!mongoc_bulk_operation_update_many_with_opts(bulk.get(), selector.get(), update.get(),
                                                         upsert.get(), &e)) {
          fail_from_here(map_error(e, "mark read"));
          return out;
        }
      }
      Bson reply;
      if (mongoc_bulk_operation_execute(bulk.get(), reply.get(), &e)) break;
      const BulkFailure failure = bulk_failure(reply.get(), pending.size());
      if (failure.whole) {
        const error whole = map_error(e, "mark read");
        if (whole.code == errc::unavailable && attempt == 0) continue;
        fail_from_here(whole);
        return out;
      }
      std::vector<const Target*> again;
      for (const WriteError& w : failure.writes) {
        if (w.code == 11000 && attempt == 0)
          again.push_back(pending[w.index]);
        else
          failed.insert_or_assign(pending[w.index], error{errc::internal, "mark read: " + w.message});
      }
      pending = std::move(again);
    }
    Bson filter, opts;
    bson_t id, in;
    BSON_APPEND_DOCUMENT_BEGIN(filter.get(), "_id", &id);
    BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
    for (std::size_t k = 0; k < round.size(); ++k)
      append_str(&in, std::to_string(k).c_str(), round[k].key);
    bson_append_array_end(&id, &in);
    bson_append_document_end(filter.get(), &id);
    bson_t proj;
    BSON_APPEND_DOCUMENT_BEGIN(opts.get(), "projection", &proj);
    BSON_APPEND_INT32(&proj, "lastReadId", 1);
    bson_append_document_end(opts.get(), &proj);
    // All in the first reply (a find's first batch is 101 documents by default).
    BSON_APPEND_INT64(opts.get(), "limit", static_cast<std::int64_t>(round.size()));
    BSON_APPEND_INT64(opts.get(), "batchSize", static_cast<std::int64_t>(round.size()));
    BSON_APPEND_BOOL(opts.get(), "singleBatch", true);
    std::unordered_map<std::string, std::string> written;
    auto found = Impl::find_each(
        reads.get(), filter.get(), opts.get(), "read the read positions written",
        [&](const bson_t* d) { written[get_str(d, "_id")] = get_str(d, "lastReadId"); },
        primary.get());
    if (!found.ok()) {
      fail_from_here(found.err());
      return out;
    }
    for (const Target& t : round) {
      if (auto f = failed.find(&t); f != failed.end()) {
        out[t.index] = f->second;
        continue;
      }
      auto it = written.find(t.key);
      if (it == written.end() || it->second.empty())
        out[t.index] = error{errc::internal, "mark read: the position written is not in the database"};
      else
        out[t.index] = it->second;
    }
  }
  return out;
}

result<std::string> MongoStore::last_read(std::string_view conversation_id,
                                          std::string_view user_id) {
  auto pair = parse_direct(conversation_id);
  if (!pair) return std::string{};
  const std::string conv = "d:" + pair->a + ":" + pair->b;
  Bson filter, opts;
  append_str(filter.get(), "_id", read_key(conv, to_lower_ascii(user_id)));
  BSON_APPEND_INT64(opts.get(), "limit", 1);
  std::string out;
  Impl::Lease l(*impl_);
  auto reads = l.coll(kReads);
  auto r = Impl::find_each(reads.get(), filter.get(), opts.get(), "read a read position",
                           [&](const bson_t* d) { out = get_str(d, "lastReadId"); });
  if (!r.ok()) return r.err();
  return out;
}

result<std::vector<ConversationSummary>> MongoStore::conversation_summaries(
    std::string_view user_id) {
  std::vector<ConversationSummary> out;
  const std::string user = to_lower_ascii(user_id);
  bson_oid_t uoid;
  if (!parse_oid(user, &uoid)) return out;

  Impl::Lease l(*impl_);
  auto messages = l.coll(kMessages);
  // The peers: two distinct commands, each a walk of one compound index's distinct values
  // (DISTINCT_SCAN on MongoDB): O(conversations), not O(messages). No $group: FerretDB 1.24
  // lacks $first/$max accumulators.
  std::set<std::string> peers;
  for (const auto& [key, field] : {std::pair{"senderId", "receiverId"},
                                   std::pair{"receiverId", "senderId"}}) {
    Bson cmd, reply;
    append_str(cmd.get(), "distinct", kMessages);
    append_str(cmd.get(), "key", field);
    bson_t q;
    BSON_APPEND_DOCUMENT_BEGIN(cmd.get(), "query", &q);
    BSON_APPEND_OID(&q, key, &uoid);
    bson_append_document_end(cmd.get(), &q);
    bson_error_t e;
    if (!mongoc_collection_read_command_with_opts(messages.get(), cmd.get(), nullptr, nullptr,
                                                  reply.get(), &e))
      return map_error(e, "list conversations");
    bson_iter_t it, arr;
    if (bson_iter_init_find(&it, reply.get(), "values") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
      while (bson_iter_next(&arr))
        if (BSON_ITER_HOLDS_OID(&arr)) peers.insert(oid_hex(bson_iter_oid(&arr)));
    }
  }
  peers.erase(user);  // talking to oneself is not a direct conversation with a peer
  if (peers.empty()) return out;

  // Every read position of the user at once.
  std::unordered_map<std::string, std::string> read_positions;
  {
    auto reads = l.coll(kReads);
    Bson filter;
    append_str(filter.get(), "userId", user);
    auto r = Impl::find_each(reads.get(), filter.get(), nullptr, "read read positions",
                             [&](const bson_t* d) {
                               read_positions[get_str(d, "conversationId")] =
                                   get_str(d, "lastReadId");
                             });
    if (!r.ok()) return r.err();
  }

  for (const std::string& peer : peers) {
    ConversationSummary c;
    c.peer_id = peer;
    c.conversation_id = direct_conversation_id(user, peer);
    if (auto it = read_positions.find(c.conversation_id); it != read_positions.end())
      c.last_read_id = it->second;
    auto pair = parse_direct(c.conversation_id);
    if (!pair) continue;  // cannot happen: both are ObjectIds
    auto newest = impl_->newest_message(messages.get(), *pair, false);
    if (!newest.ok()) return newest.err();
    c.last_message = std::move(*newest);
    if (c.last_message && c.last_message->id > c.last_read_id) {
      // The newest kUnreadWindow messages after the read position, ids and senders only.
      Bson filter, opts;
      append_pair_filter(filter.get(), *pair);
      bson_oid_t after;
      if (parse_oid(c.last_read_id, &after)) append_id_range(filter.get(), "$gt", after);
      append_find_opts(opts.get(), -1, static_cast<std::int64_t>(kUnreadWindow),
                       {"_id", "senderId"});
      auto r = Impl::find_each(messages.get(), filter.get(), opts.get(), "count unread",
                               [&](const bson_t* d) {
                                 if (get_str(d, "senderId") == peer) ++c.unread;
                               });
      if (!r.ok()) return r.err();
    }
    out.push_back(std::move(c));
  }
  return out;
}

// ---- media -----------------------------------------------------------------------------------

result<void> MongoStore::put_media(std::string_view id, std::string_view content_type,
                                   std::string_view bytes) {
  Bson query, doc, opts, reply;
  append_str(query.get(), "_id", id);
  append_str(doc.get(), "_id", id);
  append_str(doc.get(), "contentType", content_type);
  bson_append_binary(doc.get(), "data", -1, BSON_SUBTYPE_BINARY,
                     reinterpret_cast<const std::uint8_t*>(bytes.data()),
                     static_cast<std::uint32_t>(bytes.size()));
  BSON_APPEND_DATE_TIME(doc.get(), "createdAt", chat::now_ms());
  BSON_APPEND_BOOL(opts.get(), "upsert", true);
  bson_error_t e;
  Impl::Lease l(*impl_);
  auto media = l.coll(kMedia);
  if (!mongoc_collection_replace_one(media.get(), query.get(), doc.get(), opts.get(), reply.get(),
                                     &e))
    return map_error(e, "store media");
  return {};
}

result<Media> MongoStore::media(std::string_view id) {
  Bson filter, opts;
  append_str(filter.get(), "_id", id);
  BSON_APPEND_INT64(opts.get(), "limit", 1);
  std::optional<Media> found;
  Impl::Lease l(*impl_);
  auto media = l.coll(kMedia);
  auto r = Impl::find_each(media.get(), filter.get(), opts.get(), "read media",
                           [&](const bson_t* d) {
                             Media m;
                             m.content_type = get_str(d, "contentType");
                             bson_iter_t it;
                             if (bson_iter_init_find(&it, d, "data") && BSON_ITER_HOLDS_BINARY(&it)) {
                               bson_subtype_t sub;
                               std::uint32_t len = 0;
                               const std::uint8_t* data = nullptr;
                               bson_iter_binary(&it, &sub, &len, &data);
                               if (data) m.bytes.assign(reinterpret_cast<const char*>(data), len);
                             }
                             found = std::move(m);
                           });
  if (!r.ok()) return r.err();
  if (!found) return error{errc::not_found, "media not found"};
  return std::move(*found);
}

}  // namespace chat::store
