#pragma once
// The embedded storage backend: one SQLite file in WAL mode, one writer thread that group-commits
// queued writes, and a small pool of read-only connections. Only apps/ includes this header.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.hpp"

namespace chat::store {

struct SqliteOptions {
  std::string path;                     ///< database file; its parent directory is created
  /// The message journal's base path (its directory is created); empty: journal_path(path).
  /// A journal left at the default place (or moved) is replayed too.
  std::string journal_path{};
  std::size_t max_pending_writes = 65536;  ///< write jobs queued at most (beyond → unavailable)
  std::size_t max_batch = 4096;         ///< write jobs committed at most per transaction
  std::size_t readers = 4;              ///< read-only connections (at least 1)
  int busy_timeout_ms = 5000;           ///< wait for locks held by other processes
  /// Journaled messages not yet in the main database at most (plus one journal batch), kept
  /// in memory too (~300 bytes each); at the limit appends wait (queue, then unavailable)
  /// until the writer indexed some.
  std::size_t max_unindexed = 131072;
  std::size_t index_batch = 16384;      ///< journaled messages indexed at most per transaction
  int index_interval_ms = 200;          ///< index at least this often, and at most unless asked
  int index_wait_ms = 30000;            ///< flush() waits this long for the index (then warns)
  /// An index transaction stops early for a waiting synchronous write (a read position, a
  /// profile) only once it has run this long (µs), so that a steady stream of them (a read
  /// position per message seen) still leaves the index most of the writer's time. A waiting
  /// write waits at most about this much for the index, plus its commit.
  int min_index_run_us = 5000;
  /// A journal transaction starts at most this often (µs; 0: as soon as appends wait), so
  /// that under load more appends share each fsync. Adds at most this much to an append.
  int min_commit_interval_us = 500;
  /// clientMsgIds per generation of the lookup index (see sqlite_store.cpp); tests use few.
  std::size_t client_keys_per_generation = 1 << 17;
  /// Main database and WAL files are written back every 256 KiB (paced_vfs.hpp), so that the
  /// indexer's and checkpoints' bursts do not queue megabytes at the disk ahead of the
  /// journal's commits. Off: SQLite's default VFS.
  bool paced_writes = true;
  /// Scheduler time slice the journal thread asks for (request_time_slice in core/sched.hpp), so
  /// that its wake-ups preempt the writer's long transactions on the same core; 0: the kernel's.
  std::chrono::microseconds journal_thread_slice{0};
  /// Tests only: runs on the writer thread after an index commit, before its messages leave the
  /// in-memory backlog (so a read can see them in both halves). Empty in production.
  std::function<void()> after_index_commit{};
};

/// Runs a committed batch's append callbacks (see SqliteStore::set_callback_executor).
using CallbackExecutor = std::function<void(std::function<void()>)>;

/// Store on SQLite. Durability: a write is acknowledged (callback/return) only after the COMMIT
/// of its transaction returned with synchronous=FULL, i.e. after fsync.
///
/// Appends are made durable in a message journal first: append-only segment files next to the
/// database (journal_path(), see MessageJournal). The journal thread groups every queued
/// append (up to max_batch) into one journal commit (one write, one fdatasync), checks each
/// (an id must be new; a (sender, clientMsgId) stored before makes it a duplicate) and
/// acknowledges it once that commit is durable. The writer thread then moves journaled messages into the main
/// database in large transactions (up to index_batch, at least every index_interval_ms), and
/// runs the synchronous writes (users, media, read positions), each in its own savepoint so
/// that one job's constraint failure does not fail the others. They run in the writer's next
/// transaction, in their order, without waiting for the index of the appends before them (an
/// index transaction in progress stops early for them; when both are due, they take turns).
/// Reads that return messages (conversation_page, conversation_summaries) see every message
/// journaled before the call without waiting for the index either: they merge the main
/// database's rows with the journaled messages not in it yet, which the store keeps in memory
/// by conversation until their index commit; a read position (mark_read) is clamped to the
/// newest of both, and makes the conversation's rows if only unindexed messages have it yet.
/// open() replays into the database what the journal still holds.
///
/// Thread-safety: all methods may be called concurrently from any thread. Callbacks of
/// append_message() run on the journal thread unless set_callback_executor() says
/// otherwise: from there, append_message() is allowed, but the synchronous writes
/// return errc::internal (they would wait for the store's threads) and flush() returns at once.
///
/// put_media() with an existing id replaces the stored media.
class SqliteStore final : public Store {
 public:
  /// Opens (creating if needed) the database and its schema, starts the writer thread.
  /// Errors (message names the path): invalid_argument for an empty path, unavailable when the
  /// directory or file cannot be created/opened, internal for a file that is not a usable
  /// database (not SQLite, unknown schema version).
  static result<std::unique_ptr<SqliteStore>> open(const SqliteOptions& options);

  /// Flushes every queued write, indexes everything journaled, stops the threads and closes.
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  result<User> create_user(const User& user) override;
  result<User> user_by_id(std::string_view id) override;
  result<User> user_by_email(std::string_view email) override;
  result<std::vector<User>> users_except(std::string_view id) override;
  result<User> update_user(std::string_view id, const UserPatch& patch,
                           std::int64_t now_ms) override;
  result<void> set_password_hash(std::string_view id, std::string_view hash) override;

  void append_message(Message m, AppendCallback done) override;
  result<MessagePage> conversation_page(std::string_view conversation_id,
                                        std::string_view before_id, std::size_t limit) override;

  result<std::string> mark_read(std::string_view conversation_id, std::string_view user_id,
                                std::string_view up_to_id) override;
  /// In one synchronous write: one transaction, one commit for all of them.
  std::vector<result<std::string>> mark_read_many(const std::vector<ReadMark>& marks) override;
  result<std::string> last_read(std::string_view conversation_id, std::string_view user_id) override;
  result<std::vector<ConversationSummary>> conversation_summaries(
      std::string_view user_id) override;

  result<void> put_media(std::string_view id, std::string_view content_type,
                         std::string_view bytes) override;
  result<Media> media(std::string_view id) override;

  result<void> ping() override;
  void flush() override;

  /// Write jobs (appends and synchronous writes) waiting in the queues, not counting batches
  /// being committed. Never blocks.
  std::size_t pending_writes() const;
  /// Journal transactions (group commits of appends) committed since open(). Never blocks.
  std::uint64_t commits() const;
  /// Main-database transactions committed by the writer since open(). Never blocks.
  std::uint64_t index_commits() const;
  /// Messages acknowledged (journaled) and not yet in the main database; at most
  /// SqliteOptions::max_unindexed. Takes the queue's lock briefly.
  std::size_t unindexed_messages() const;
  /// WAL checkpoints run since open() (most on the store's checkpoint thread). Never blocks.
  std::uint64_t checkpoints() const;

  /// From now on each committed batch's append callbacks are handed to `exec` as one function
  /// (in commit order; `exec` must run them in that order, e.g. on a strand), so that the writer
  /// starts the next transaction while the previous batch's acknowledgements and fan-out run
  /// elsewhere. Empty: on the writer thread (the default). A batch handed over and never run
  /// (its executor stopped) was still committed. Thread-safe.
  void set_callback_executor(CallbackExecutor exec);

  /// The SQL text of a statement ("mark_read", "conversation_summaries", "conversation_page";
  /// "" for other names), so tests can check its query plan. Pure.
  static std::string_view query_sql(std::string_view name);

  /// The message journal of a database file: the base path of its segments and lock (see
  /// MessageJournal). Pure.
  static std::string journal_path(std::string_view database_path);
  /// The SQLite message journal of earlier versions, replayed (then deleted) at open. Pure.
  static std::string legacy_journal_path(std::string_view database_path);
  /// Where the replay at open keeps journaled messages the database refuses (JSON lines). Pure.
  static std::string quarantine_path(std::string_view database_path);

  struct Impl;  // public only so the .cpp's helpers can name it; defined in sqlite_store.cpp

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::store
