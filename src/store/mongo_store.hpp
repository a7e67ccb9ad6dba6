#pragma once
// The cluster storage backend: MongoDB (or a MongoDB-wire server such as FerretDB) through
// libmongoc. Collections are compatible with the old Node server's Mongoose models, so a
// database it wrote is used as is (docs/mongo.md has the mapping and the indexes).
// Only apps/ includes this header.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.hpp"

namespace chat::store {

struct MongoOptions {
  /// mongodb://host:port/<database>?options. The database is the URI's path ("chat" when
  /// absent). serverSelectionTimeoutMS, connectTimeoutMS and socketTimeoutMS default to 5000
  /// when the URI does not set them, so no call waits for a dead server forever.
  std::string uri;
  std::size_t max_pool = 16;          ///< pooled connections at most (callers beyond wait)
  std::size_t writer_queue = 100000;  ///< append_message() jobs queued at most (beyond → unavailable)
  /// Count the commands sent (commands()): a diagnostic, off by default, since libmongoc's
  /// command monitoring copies every bulk's documents into its event.
  bool count_commands = false;
};

/// Store on MongoDB. Thread-safety: every method may be called concurrently from any thread
/// (a mongoc_client_pool_t hands a connection to each call). Blocking: every method except
/// append_message() does network round trips, each bounded by the URI's timeouts.
///
/// Writes: append_message() queues to one writer thread that turns everything queued (up to
/// 1000 messages) into one unordered bulk insert and runs the callbacks on that thread after
/// the server acknowledged it (write concern from the URI, default w:1). The other writes
/// (users, read positions, media) run on the calling thread. No multi-document transactions
/// (FerretDB has none): every write is a single-document operation or an unordered bulk.
///
/// Errors: unavailable when the server cannot be reached within the timeouts (or the writer
/// queue is full), already_exists for a taken email, invalid_argument for ids that are not
/// ObjectIds where one is needed, not_found as the Store contract says, internal otherwise.
///
/// put_media() with an existing id replaces the stored media.
class MongoStore final : public Store {
 public:
  /// Blocking: connects (a ping bounded by serverSelectionTimeoutMS), creates the indexes,
  /// starts the writer thread. invalid_argument for a malformed URI, unavailable when the
  /// server does not answer, internal when it refuses the indexes.
  static result<std::unique_ptr<MongoStore>> open(const MongoOptions& options);

  /// Writes what is queued (failing it at once with unavailable if the server is down), stops
  /// the writer thread and closes the pool.
  ~MongoStore() override;
  MongoStore(const MongoStore&) = delete;
  MongoStore& operator=(const MongoStore&) = delete;

  /// Blocking. Idempotent bulk write used by chat-worker: one unordered bulk of upserts by
  /// _id with $setOnInsert, so a message whose _id exists is left as is and replaying a batch
  /// writes nothing new. ok only when every message is stored (inserted now or before).
  /// Messages with ids that are not ObjectIds are skipped and reported as invalid_argument
  /// (after the valid ones were written: retrying the batch is harmless).
  /// client_msg_id is stored but not deduplicated here (the producer deduplicates).
  result<void> upsert_messages(const std::vector<Message>& batch);

  /// mark_read() for cluster mode, where messages may still be on their way to the database:
  /// the clamp bound is max(newest stored message, newest_known), and a non-empty
  /// newest_known counts as membership (the user must still be one of the conversation's two
  /// members). mark_read(c, u, id) is mark_read_known(c, u, id, "").
  result<std::string> mark_read_known(std::string_view conversation_id, std::string_view user_id,
                                      std::string_view up_to_id, std::string_view newest_known);
  /// mark_read_known() for each of `marks` with newest_known[i] (absent or "": none), the results
  /// in their order, as if made one after another. A mark whose newest_known is at or past its
  /// up_to_id needs no query of the messages; the positions are then written in one bulk of
  /// upserts and read back in one find on the primary (per repeat of a reader in the batch):
  /// two round trips for a batch of distinct readers, where one mark_read each was one or two.
  /// An update refused alone fails its mark alone (a duplicate key, lost to another instance's
  /// insert of the same new document, is sent once more); a bulk without an answer is sent once
  /// more, then fails every mark not yet answered, as a failed read-back does.
  std::vector<result<std::string>> mark_read_many_known(const std::vector<ReadMark>& marks,
                                                        const std::vector<std::string>& newest_known);

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
  /// mark_read_many_known(marks, {}).
  std::vector<result<std::string>> mark_read_many(const std::vector<ReadMark>& marks) override;
  result<std::string> last_read(std::string_view conversation_id,
                                std::string_view user_id) override;
  result<std::vector<ConversationSummary>> conversation_summaries(
      std::string_view user_id) override;

  result<void> put_media(std::string_view id, std::string_view content_type,
                         std::string_view bytes) override;
  result<Media> media(std::string_view id) override;

  /// The server answers {ping: 1}.
  result<void> ping() override;
  /// Blocks until every message queued before the call was written (or failed). Returns at
  /// once when called from the writer thread (an append callback).
  void flush() override;

  /// append_message() jobs waiting in the queue (not counting the batch being written).
  std::size_t pending_writes() const;
  /// Bulk writes the writer thread sent since open().
  std::uint64_t batches() const;
  /// Commands sent to the server since open(), from any thread: its round trips (libmongoc's
  /// command monitoring; connection handshakes and server monitoring are not counted). 0 unless
  /// MongoOptions::count_commands.
  std::uint64_t commands() const;
  /// The database name in use (from the URI, "chat" by default).
  const std::string& database() const;

  struct Impl;  // public only so the .cpp's helpers can name it; defined in mongo_store.cpp

 private:
  explicit MongoStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::store
