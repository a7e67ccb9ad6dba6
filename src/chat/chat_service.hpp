#pragma once
// The chat domain: sign-up, login, profiles, users with presence, history and the send
// pipeline. Sees only interfaces (Store, Presence); knows nothing of HTTP or sockets.
#include <cstddef>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <unordered_set>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.hpp"
#include "chat/presence.hpp"
#include "chat/validation.hpp"
#include "store/store.hpp"

namespace chat {

struct ServiceLimits {
  std::size_t max_text = 4000;             ///< characters (code points) per message
  std::size_t upload_limit = 5 * 1024 * 1024;  ///< bytes per decoded image
  std::size_t max_bio = 500;
  std::size_t max_name = 100;
};

/// Result of a validate_* call: field errors (→ 400) or an oversize image (→ 413).
struct Validation {
  FieldErrors errors;
  bool too_large = false;
  bool ok() const noexcept { return errors.empty() && !too_large; }
};

struct SignupInput {
  std::string email, password, full_name, profile_picture, bio;
  std::optional<Image> picture;  ///< set by validate_signup when profile_picture is a data URL
};

struct ProfileInput {
  std::optional<std::string> full_name, profile_picture, bio;
  std::optional<Image> picture;
};

struct SendInput {
  std::string sender_id, receiver_id, text, image, client_msg_id;
  std::optional<Image> picture;
  std::string origin{};  ///< who sent it (e.g. a socket id), handed to listeners; "" for REST
};

struct AuthResult {
  store::User user;
  std::string token;
};

struct UserView {
  store::User user;
  bool online = false;
  /// Messages from this user after the caller's read position (see store::ConversationSummary).
  std::size_t unread = 0;
  /// The newest message between the caller and this user, either direction (none yet: nullopt).
  std::optional<store::Message> last_message;
};

/// Thread-safe. Methods marked blocking run store queries or password hashing: call them from a
/// TaskPool thread. validate_* are cheap and pure (apart from normalising their input).
class ChatService {
 public:
  /// A newly stored message and the `origin` of its SendInput.
  using MessageListener = std::function<void(const store::Message&, std::string_view origin)>;
  using SendCallback = std::function<void(result<store::Appended>)>;

  ChatService(store::Store& store, const auth::JwtCodec& jwt, const Presence& presence,
              ServiceLimits limits);

  Validation validate_signup(SignupInput& in) const;
  Validation validate_profile(ProfileInput& in) const;
  Validation validate_send(SendInput& in) const;

  /// Blocking. already_exists "User account already exists with this email".
  result<AuthResult> signup(const SignupInput& in);
  /// Blocking. unauthorized "Invalid Credentials" for an unknown email or a wrong password,
  /// after the same amount of work. Upgrades legacy bcrypt hashes to Argon2id on success.
  result<AuthResult> login(std::string_view email, std::string_view password);
  /// Blocking. unauthorized (token) or not_found "User not found" (deleted user).
  result<store::User> authenticate(std::string_view token) const;
  /// Non-blocking: checks the token and, when its user is already known to exist (seen by this
  /// process: users are never deleted), returns the user id without a store read. unauthorized
  /// for a bad token; nullopt when the user must be looked up (call authenticate() from the pool).
  result<std::optional<std::string>> authenticate_known(std::string_view token) const;
  result<store::User> update_profile(std::string_view user_id, const ProfileInput& in);
  /// Blocking. Every user but `user_id`, ordered by name, with presence, unread count and last
  /// message of the conversation with the caller (two store queries however many users).
  result<std::vector<UserView>> users(std::string_view user_id);
  /// Blocking (a durable store write). Moves `user_id`'s read position in the conversation with
  /// `peer_id` forward to `up_to_id` (a message id, any case): never backwards, never past the
  /// conversation's newest message. Returns the resulting read position (lower-case id), which
  /// is the old one when `up_to_id` is older.
  /// Errors: invalid_argument (peer or up_to not an ObjectId, peer == user), not_found
  /// "User not found" (unknown peer) or "Conversation not found" (no message exchanged yet).
  result<std::string> mark_read(std::string_view user_id, std::string_view peer_id,
                                std::string_view up_to_id);
  /// mark_read() for many at once (one store write for all: see Store::mark_read_many), the
  /// results in their order.
  struct ReadRequest {
    std::string user_id, peer_id, up_to_id;
  };
  std::vector<result<std::string>> mark_read_many(const std::vector<ReadRequest>& reads);
  /// A page of history and how far the peer has read it.
  struct History {
    store::MessagePage page;
    std::string peer_read_up_to;  ///< "" when the peer has read nothing
  };
  /// not_found when `peer_id` is not a user.
  result<History> history(std::string_view user_id, std::string_view peer_id,
                                     std::string_view before_id, std::size_t limit);
  /// Blocking until the message is queued for storage; `done` runs once it is durable (or
  /// failed), on the store's writer thread. Errors: not_found (receiver), invalid_argument.
  /// Listeners run before `done` for every newly stored (not duplicate) message.
  void send(SendInput in, SendCallback done);
  /// Non-blocking variant for the common case: when the receiver is already known to exist and
  /// there is no image to store, queues the message and returns true (`done` as for send()).
  /// Otherwise returns false and leaves `in` and `done` untouched: call send() from the pool.
  bool try_send_nonblocking(SendInput& in, SendCallback& done);
  result<store::Media> media(std::string_view id);

  /// Called for each stored message (real-time delivery). Register before serving.
  void on_message(MessageListener listener);
  const ServiceLimits& limits() const noexcept { return limits_; }

 private:
  result<std::string> store_image(const Image& image);
  void append(SendInput&& in, std::string image_url, SendCallback&& done);
  bool known_user(std::string_view id) const;
  /// The store's read mark for a markRead request, once checked (the peer exists).
  result<store::ReadMark> read_mark(std::string_view user_id, std::string_view peer_id,
                                    std::string_view up_to_id);
  void remember_user(const std::string& id) const;
  void validate_picture(std::string& url, std::optional<Image>& picture, Validation& v,
                        const char* field) const;

  store::Store& store_;
  const auth::JwtCodec& jwt_;
  const Presence& presence_;
  ServiceLimits limits_;
  std::vector<MessageListener> listeners_;
  // Ids of users known to exist (users are never deleted), so that a message to a known user
  // needs no store read. Bounded: cleared when full.
  mutable std::shared_mutex known_mu_;
  mutable std::unordered_set<std::string> known_users_;
  static constexpr std::size_t kMaxKnownUsers = 1'000'000;
};

}  // namespace chat
