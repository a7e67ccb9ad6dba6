#pragma once
// The store chatd uses in cluster mode: a decorator over the shared database (MongoStore) that
// sends new messages through the durable stream (Kafka) instead of writing them itself.
// chat-worker writes the stream into the database; until it has, the messages this instance
// acknowledged are kept in a bounded in-memory window and merged into history pages, so a
// sender never sees its own message missing.
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "bus/bus.hpp"
#include "store/store.hpp"
#include "stream/message_log.hpp"

namespace chat::cluster {

struct ClusterStoreOptions {
  /// How long an acknowledged message stays in the in-memory window (the worker normally stores
  /// it within milliseconds; this covers a database outage of that length).
  std::chrono::milliseconds recent_window{10 * 60 * 1000};
  std::size_t max_recent = 200'000;  ///< messages kept at most (oldest dropped first)
  /// Idempotency keys (sender, clientMsgId) are remembered this long, cluster-wide when a bus
  /// is given: long enough for any client retry, short enough that Redis holds only minutes of
  /// traffic (a key with its record is ~400 bytes).
  std::chrono::milliseconds idempotency_ttl{10 * 60 * 1000};
  /// The database's mark_read_many with, per mark, a clamp bound that includes messages not
  /// stored yet (see MongoStore::mark_read_many_known); empty: the base store's mark_read_many.
  std::function<std::vector<result<std::string>>(const std::vector<store::ReadMark>& marks,
                                                 const std::vector<std::string>& newest_known)>
      mark_read_known;
};

/// Thread-safe. `base`, `log` and `bus` (optional) must outlive it.
class ClusterStore final : public store::Store {
 public:
  ClusterStore(store::Store& base, stream::MessageLog& log, bus::Bus* bus, ClusterStoreOptions options);

  result<store::User> create_user(const store::User& user) override { return base_.create_user(user); }
  result<store::User> user_by_id(std::string_view id) override { return base_.user_by_id(id); }
  result<store::User> user_by_email(std::string_view email) override { return base_.user_by_email(email); }
  result<std::vector<store::User>> users_except(std::string_view id) override { return base_.users_except(id); }
  result<store::User> update_user(std::string_view id, const store::UserPatch& patch,
                                  std::int64_t now_ms) override {
    return base_.update_user(id, patch, now_ms);
  }
  result<void> set_password_hash(std::string_view id, std::string_view hash) override {
    return base_.set_password_hash(id, hash);
  }
  result<std::string> last_read(std::string_view conversation_id, std::string_view user_id) override {
    return base_.last_read(conversation_id, user_id);
  }
  result<std::vector<store::ConversationSummary>> conversation_summaries(std::string_view user_id) override {
    return base_.conversation_summaries(user_id);
  }
  result<void> put_media(std::string_view id, std::string_view content_type, std::string_view bytes) override {
    return base_.put_media(id, content_type, bytes);
  }
  result<store::Media> media(std::string_view id) override { return base_.media(id); }
  result<void> ping() override { return base_.ping(); }

  /// Produces the message to the log; `done` runs on the log's delivery thread once the broker
  /// acknowledged it (or it failed). A retry of a (sender_id, client_msg_id) this instance has
  /// seen acknowledged is answered at once as a duplicate. Any other retry (the first attempt
  /// failed, timed out — it may still have been stored — is in flight, or was made on another
  /// instance, known through Redis) is produced again with the first id and time: the worker's
  /// upsert by _id stores it once, it is acked only once durable, and it is fanned out again
  /// (clients deduplicate newMessage by _id) rather than risk never being delivered.
  void append_message(store::Message m, AppendCallback done) override;
  /// The database's page merged with this instance's acknowledged messages not stored yet.
  result<store::MessagePage> conversation_page(std::string_view conversation_id,
                                               std::string_view before_id, std::size_t limit) override;
  /// mark_read_many() of one.
  result<std::string> mark_read(std::string_view conversation_id, std::string_view user_id,
                                std::string_view up_to_id) override;
  /// The positions written with mark_read_known, each clamped to the newest message stored or
  /// acknowledged (here, or recently elsewhere: see the .cpp).
  std::vector<result<std::string>> mark_read_many(const std::vector<store::ReadMark>& marks) override;
  void flush() override;

  std::size_t recent_size() const;

 private:
  void produce(store::Message m, AppendCallback done);
  void remember(const store::Message& m);
  void prune_locked(std::int64_t now);
  std::optional<store::Message> local_duplicate(const std::string& key) const;
  std::string newest_recent(std::string_view conversation_id) const;

  store::Store& base_;
  stream::MessageLog& log_;
  bus::Bus* bus_;
  ClusterStoreOptions opts_;

  // One copy of each message, shared by the three indexes below: at high rates the window holds
  // `max_recent` messages, and a copy in each index (with their map nodes) was ~1.8 KiB a message
  // and a working set that made every lookup a cache miss.
  using MessagePtr = std::shared_ptr<const store::Message>;
  struct Recent {
    MessagePtr message;
    std::int64_t added_ms;
  };
  mutable std::mutex mu_;
  std::deque<Recent> recent_;  ///< acknowledged messages, in acknowledgement order
  /// conversation id → message id → message (for page merges). An inner key views the id of
  /// the message its entry holds.
  std::unordered_map<std::string, std::map<std::string_view, MessagePtr>> by_conversation_;
  struct Claimed {
    MessagePtr message;  ///< the first attempt
    bool acked = false;  ///< the broker acknowledged it
  };
  /// "<sender>|<clientMsgId>" → first attempt, for idempotency without (or while without) Redis.
  std::unordered_map<std::string, Claimed> by_client_id_;
};

}  // namespace chat::cluster
