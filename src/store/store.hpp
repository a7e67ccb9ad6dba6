#pragma once
// The storage interface: users, messages (grouped in conversations) and media. Implementations:
// sqlite_store (embedded default) and, with the cluster issue, mongo_store.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace chat::store {

struct User {
  std::string id;  ///< 24-hex ObjectId
  std::string email;  ///< normalised (trimmed, lower-case); unique
  std::string password_hash;  ///< Argon2id ($argon2id$…) or legacy bcrypt ($2a$/$2b$/$2y$)
  std::string full_name;
  std::string profile_picture;  ///< URL ("" when none)
  std::string bio;
  std::int64_t created_at = 0;  ///< ms since epoch
  std::int64_t updated_at = 0;
};

struct UserPatch {
  std::optional<std::string> full_name;
  std::optional<std::string> profile_picture;
  std::optional<std::string> bio;
};

struct Message {
  std::string id;               ///< 24-hex ObjectId, time-ordered
  std::string conversation_id;  ///< see direct_conversation_id()
  std::string sender_id;
  std::string receiver_id;
  std::string text;
  std::string image;          ///< URL ("" when none)
  std::string client_msg_id;  ///< sender-chosen idempotency key ("" when none)
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

struct Appended {
  Message message;         ///< the stored message (the earlier one when `duplicate`)
  bool duplicate = false;  ///< (sender_id, client_msg_id) already existed: nothing was written
};

struct MessagePage {
  std::vector<Message> messages;  ///< oldest → newest
  bool has_more = false;          ///< older messages exist before messages.front()
};

/// A read position to move (Store::mark_read_many()).
struct ReadMark {
  std::string conversation_id;
  std::string user_id;
  std::string up_to_id;
};

/// One direct conversation of a user, as seen by that user (Store::conversation_summaries()).
struct ConversationSummary {
  std::string peer_id;          ///< the other member
  std::string conversation_id;  ///< direct_conversation_id(user, peer)
  std::optional<Message> last_message;  ///< the newest message, either direction
  /// Messages sent by the peer after last_read_id, counted among the conversation's
  /// kUnreadWindow newest messages: exact unless more than kUnreadWindow messages (of either
  /// side) follow the read position, a lower bound (at most kUnreadWindow) otherwise.
  std::size_t unread = 0;
  std::string last_read_id;  ///< the user's read position ("" when never marked)
};

/// How many of a conversation's newest messages conversation_summaries() looks at to count
/// unread ones: the cost of a summary is bounded however long the history.
inline constexpr std::size_t kUnreadWindow = 1000;

struct Media {
  std::string content_type;
  std::string bytes;
};

/// The conversation of two users: the same id whatever the order of the arguments.
/// A direct conversation has exactly two members; group conversations get other ids later.
std::string direct_conversation_id(std::string_view a, std::string_view b);

/// Thread-safety: every method may be called from any thread concurrently.
/// Blocking: every method except append_message() may block on disk I/O; call them from a
/// TaskPool thread, never from an I/O thread.
/// Errors: not_found, already_exists, invalid_argument, unavailable (disk full, locked, queue
/// full), internal.
class Store {
 public:
  virtual ~Store() = default;

  /// Inserts a user; `user.id` and timestamps are set by the caller. already_exists when the
  /// email is taken.
  virtual result<User> create_user(const User& user) = 0;
  virtual result<User> user_by_id(std::string_view id) = 0;
  virtual result<User> user_by_email(std::string_view email) = 0;
  /// Every user but `id`, ordered by full_name.
  virtual result<std::vector<User>> users_except(std::string_view id) = 0;
  /// Applies the fields present in `patch`, sets updated_at = now_ms; returns the new user.
  virtual result<User> update_user(std::string_view id, const UserPatch& patch,
                                   std::int64_t now_ms) = 0;
  virtual result<void> set_password_hash(std::string_view id, std::string_view hash) = 0;

  using AppendCallback = std::function<void(result<Appended>)>;
  /// Non-blocking. Queues `m` (id, conversation and timestamps set by the caller) for the next
  /// group commit. `done` runs exactly once, on a thread of the store's (see the backend), after
  /// the transaction holding the message is durable (or failed): keep it short, post real work
  /// elsewhere.
  /// When (sender_id, client_msg_id) already exists, nothing is written and `done` gets the
  /// stored message with duplicate = true. A full queue → done(unavailable) at once.
  virtual void append_message(Message m, AppendCallback done) = 0;
  /// Up to `limit` messages of a conversation, newest page first, returned oldest → newest;
  /// `before_id` ("" for the newest page) excludes it and everything newer.
  virtual result<MessagePage> conversation_page(std::string_view conversation_id,
                                                std::string_view before_id,
                                                std::size_t limit) = 0;

  /// Moves `user_id`'s read position in the conversation forward to `up_to_id`: last_read_id
  /// becomes max(last_read_id, up_to_id), ids compared as strings (24-hex lower-case ObjectIds
  /// sort by time). It never moves backwards, and never past the conversation's newest message
  /// (a later `up_to_id` is clamped to it, so a bogus id cannot hide messages still to come).
  /// Returns the resulting last_read_id (unchanged when `up_to_id` is older).
  /// A synchronous write (queued behind earlier writes, durable when it returns).
  /// Errors: not_found when `user_id` is not a member of the conversation (e.g. the two users
  /// never exchanged a message), invalid_argument for an empty `up_to_id`.
  virtual result<std::string> mark_read(std::string_view conversation_id,
                                        std::string_view user_id, std::string_view up_to_id) = 0;
  /// mark_read() for each of `marks`, the results in their order. A backend may write them
  /// together (SqliteStore: one transaction, one commit); this default moves them one by one.
  virtual std::vector<result<std::string>> mark_read_many(const std::vector<ReadMark>& marks);

 protected:
  /// mark_read_many() of one mark: the mark_read() of a backend that writes batches, so that
  /// both take one path.
  result<std::string> mark_read_as_many(std::string_view conversation_id, std::string_view user_id,
                                        std::string_view up_to_id);

 public:
  /// Every direct conversation of `user_id` with its newest message and unread count (see
  /// ConversationSummary), in no particular order; empty when the user has none. One call for
  /// all of them: cost O(conversations × (log n + kUnreadWindow)), never a whole history.
  /// The read position of `user_id` in a conversation ("" when none, or not a member).
  virtual result<std::string> last_read(std::string_view conversation_id, std::string_view user_id) = 0;
  virtual result<std::vector<ConversationSummary>> conversation_summaries(
      std::string_view user_id) = 0;

  virtual result<void> put_media(std::string_view id, std::string_view content_type,
                                 std::string_view bytes) = 0;
  virtual result<Media> media(std::string_view id) = 0;

  /// Readiness probe: ok when the store can serve queries.
  virtual result<void> ping() = 0;
  /// Blocks until every message queued before the call is committed. Used at shutdown.
  virtual void flush() = 0;
};

}  // namespace chat::store
