#include "chat/chat_service.hpp"

#include <unordered_map>

#include "auth/password.hpp"
#include "core/log.hpp"
#include "core/object_id.hpp"
#include "core/text.hpp"
#include "core/time.hpp"

namespace chat {

ChatService::ChatService(store::Store& store, const auth::JwtCodec& jwt, const Presence& presence,
                         ServiceLimits limits)
    : store_(store), jwt_(jwt), presence_(presence), limits_(limits) {}

void ChatService::on_message(MessageListener listener) { listeners_.push_back(std::move(listener)); }

void ChatService::validate_picture(std::string& url, std::optional<Image>& picture, Validation& v,
                                   const char* field) const {
  if (url.empty()) return;
  if (url.starts_with("data:")) {
    auto img = parse_image_data_url(url, limits_.upload_limit);
    if (img) {
      picture = std::move(img.value());
      url.clear();
    } else if (img.code() == errc::too_large) {
      v.too_large = true;
    } else {
      v.errors.add(field, img.err().message);
    }
    return;
  }
  // A plain URL (e.g. an avatar hosted elsewhere, as the old system stored Cloudinary links).
  if (!(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("/media/")) ||
      url.size() > 2048 || url.find_first_of(" \"'<>\\") != std::string::npos)
    v.errors.add(field, "Must be an image data URL or an http(s) URL");
}

Validation ChatService::validate_signup(SignupInput& in) const {
  Validation v;
  in.email = normalize_email(in.email);
  in.full_name = trim(in.full_name);
  if (!is_valid_email(in.email)) v.errors.add("email", "Invalid email address");
  long pw = utf8_length(in.password);
  if (pw < 6) v.errors.add("password", "Password must be at least 6 characters");
  else if (in.password.size() > 1024) v.errors.add("password", "Password must be at most 1024 bytes");
  long name = utf8_length(in.full_name);
  if (name < 1) v.errors.add("full_name", "Full name is required");
  else if (static_cast<std::size_t>(name) > limits_.max_name)
    v.errors.add("full_name", "Full name must be at most " + std::to_string(limits_.max_name) + " characters");
  long bio = utf8_length(in.bio);
  if (bio < 0 || static_cast<std::size_t>(bio) > limits_.max_bio)
    v.errors.add("bio", "Bio must be at most " + std::to_string(limits_.max_bio) + " characters");
  validate_picture(in.profile_picture, in.picture, v, "profile_picture");
  return v;
}

Validation ChatService::validate_profile(ProfileInput& in) const {
  Validation v;
  if (in.full_name) {
    *in.full_name = trim(*in.full_name);
    long name = utf8_length(*in.full_name);
    if (name < 1) v.errors.add("full_name", "Full name is required");
    else if (static_cast<std::size_t>(name) > limits_.max_name)
      v.errors.add("full_name", "Full name must be at most " + std::to_string(limits_.max_name) + " characters");
  }
  if (in.bio) {
    long bio = utf8_length(*in.bio);
    if (bio < 0 || static_cast<std::size_t>(bio) > limits_.max_bio)
      v.errors.add("bio", "Bio must be at most " + std::to_string(limits_.max_bio) + " characters");
  }
  if (in.profile_picture) validate_picture(*in.profile_picture, in.picture, v, "profile_picture");
  if (!in.full_name && !in.bio && !in.profile_picture)
    v.errors.add("profile", "Nothing to update: send full_name, bio or profile_picture");
  return v;
}

Validation ChatService::validate_send(SendInput& in) const {
  Validation v;
  if (!is_object_id(in.receiver_id)) v.errors.add("id", "Invalid user id");
  else if (in.receiver_id == in.sender_id) v.errors.add("id", "You cannot send a message to yourself");
  long len = utf8_length(in.text);
  if (len < 0) v.errors.add("text", "Text must be valid UTF-8");
  else if (static_cast<std::size_t>(len) > limits_.max_text)
    v.errors.add("text", "Text must be at most " + std::to_string(limits_.max_text) + " characters");
  if (!in.image.empty()) {
    auto img = parse_image_data_url(in.image, limits_.upload_limit);
    if (img) in.picture = std::move(img.value());
    else if (img.code() == errc::too_large) v.too_large = true;
    else v.errors.add("image", img.err().message);
    in.image.clear();
  }
  if (trim(in.text).empty() && !in.picture && !v.too_large && v.errors.empty())
    v.errors.add("text", "A message needs text or an image");
  if (in.client_msg_id.size() > 64) v.errors.add("clientMsgId", "clientMsgId must be at most 64 characters");
  return v;
}

result<std::string> ChatService::store_image(const Image& image) {
  std::string id = new_object_id() + "." + image.extension;
  if (auto r = store_.put_media(id, image.content_type, image.bytes); !r) return r.err();
  return "/media/" + id;
}

result<AuthResult> ChatService::signup(const SignupInput& in) {
  auto hash = auth::hash_password(in.password);
  if (!hash) return hash.err();
  store::User u;
  u.id = new_object_id();
  u.email = in.email;
  u.password_hash = std::move(hash.value());
  u.full_name = in.full_name;
  u.bio = in.bio;
  u.profile_picture = in.profile_picture;
  if (in.picture) {
    auto url = store_image(*in.picture);
    if (!url) return url.err();
    u.profile_picture = std::move(url.value());
  }
  u.created_at = u.updated_at = now_ms();
  auto created = store_.create_user(u);
  if (!created) return created.err();
  std::string token = jwt_.sign(created->id, now_ms() / 1000);
  return AuthResult{std::move(created.value()), std::move(token)};
}

result<AuthResult> ChatService::login(std::string_view email, std::string_view password) {
  auto user = store_.user_by_email(normalize_email(email));
  if (!user) {
    if (user.code() != errc::not_found) return user.err();
    // Same work as a real check, so response time does not reveal which emails exist.
    (void)auth::verify_password(password, auth::dummy_hash());
    return error{errc::unauthorized, "Invalid Credentials"};
  }
  if (!auth::verify_password(password, user->password_hash))
    return error{errc::unauthorized, "Invalid Credentials"};
  if (auth::needs_rehash(user->password_hash)) {
    if (auto h = auth::hash_password(password)) {
      if (auto r = store_.set_password_hash(user->id, h.value()); r) user->password_hash = h.value();
      else spdlog::warn("could not upgrade a password hash: {}", r.err().message);
    }
  }
  std::string token = jwt_.sign(user->id, now_ms() / 1000);
  return AuthResult{std::move(user.value()), std::move(token)};
}

result<store::User> ChatService::authenticate(std::string_view token) const {
  auto claims = jwt_.verify(token, now_ms() / 1000);
  if (!claims) return claims.err();
  if (!is_object_id(claims->user_id)) return error{errc::unauthorized, "Invalid token"};
  auto user = store_.user_by_id(claims->user_id);
  if (!user && user.code() == errc::not_found) return error{errc::not_found, "User not found"};
  if (user) remember_user(user->id);
  return user;
}

result<std::optional<std::string>> ChatService::authenticate_known(std::string_view token) const {
  auto claims = jwt_.verify(token, now_ms() / 1000);
  if (!claims) return claims.err();
  if (!is_object_id(claims->user_id)) return error{errc::unauthorized, "Invalid token"};
  std::string id = to_lower_ascii(claims->user_id);
  if (!known_user(id)) return std::optional<std::string>{};
  return std::optional<std::string>{std::move(id)};
}

result<store::User> ChatService::update_profile(std::string_view user_id, const ProfileInput& in) {
  store::UserPatch patch;
  patch.full_name = in.full_name;
  patch.bio = in.bio;
  patch.profile_picture = in.profile_picture;
  if (in.picture) {
    auto url = store_image(*in.picture);
    if (!url) return url.err();
    patch.profile_picture = std::move(url.value());
  }
  return store_.update_user(user_id, patch, now_ms());
}

result<std::vector<UserView>> ChatService::users(std::string_view user_id) {
  auto all = store_.users_except(user_id);
  if (!all) return all.err();
  auto summaries = store_.conversation_summaries(user_id);
  if (!summaries) return summaries.err();
  std::unordered_map<std::string, store::ConversationSummary*> by_peer;
  by_peer.reserve(summaries->size());
  for (auto& c : summaries.value()) by_peer.emplace(c.peer_id, &c);
  std::vector<UserView> out;
  out.reserve(all->size());
  for (auto& u : all.value()) {
    UserView v;
    v.online = presence_.is_online(u.id);
    if (auto it = by_peer.find(u.id); it != by_peer.end()) {
      v.unread = it->second->unread;
      v.last_message = std::move(it->second->last_message);
    }
    v.user = std::move(u);
    out.push_back(std::move(v));
  }
  return out;
}

namespace {

result<std::string> conversation_not_found(result<std::string> r) {
  if (!r && r.code() == errc::not_found) return error{errc::not_found, "Conversation not found"};
  return r;
}

}  // namespace

result<std::string> ChatService::mark_read(std::string_view user_id, std::string_view peer_id,
                                           std::string_view up_to_id) {
  auto one = mark_read_many({{std::string(user_id), std::string(peer_id), std::string(up_to_id)}});
  return std::move(one.front());
}

result<store::ReadMark> ChatService::read_mark(std::string_view user_id, std::string_view peer_id,
                                               std::string_view up_to_id) {
  if (!is_object_id(peer_id)) return error{errc::invalid_argument, "Invalid user id"};
  if (!is_object_id(up_to_id)) return error{errc::invalid_argument, "upTo must be a message id"};
  std::string peer = to_lower_ascii(peer_id);
  if (peer == to_lower_ascii(user_id))
    return error{errc::invalid_argument, "You cannot mark your own conversation as read"};
  // A peer this process has seen is not looked up again (in cluster mode each lookup is a
  // database round trip, and a batch holds up to a thousand marks).
  if (!known_user(peer)) {
    auto found = store_.user_by_id(peer);
    if (!found)
      return found.code() == errc::not_found ? error{errc::not_found, "User not found"} : found.err();
    remember_user(found->id);
  }
  // Ids are compared as strings by the store: only lower-case ones sort by time.
  return store::ReadMark{store::direct_conversation_id(user_id, peer), std::string(user_id),
                         to_lower_ascii(up_to_id)};
}

std::vector<result<std::string>> ChatService::mark_read_many(const std::vector<ReadRequest>& reads) {
  std::vector<result<std::string>> out(reads.size(), error{errc::internal, "not run"});
  std::vector<store::ReadMark> marks;
  std::vector<std::size_t> index_of;  // marks[i] answers reads[index_of[i]]
  for (std::size_t i = 0; i < reads.size(); ++i) {
    auto mark = read_mark(reads[i].user_id, reads[i].peer_id, reads[i].up_to_id);
    if (!mark) {
      out[i] = mark.err();
      continue;
    }
    marks.push_back(std::move(mark.value()));
    index_of.push_back(i);
  }
  auto done = store_.mark_read_many(marks);
  for (std::size_t i = 0; i < done.size() && i < index_of.size(); ++i)
    out[index_of[i]] = conversation_not_found(std::move(done[i]));
  return out;
}

result<ChatService::History> ChatService::history(std::string_view user_id, std::string_view peer_id,
                                                  std::string_view before_id, std::size_t limit) {
  if (peer_id != user_id) {
    auto peer = store_.user_by_id(peer_id);
    if (!peer) return peer.code() == errc::not_found ? error{errc::not_found, "User not found"} : peer.err();
  }
  const std::string conversation = store::direct_conversation_id(user_id, peer_id);
  auto page = store_.conversation_page(conversation, before_id, limit);
  if (!page) return page.err();
  auto read = store_.last_read(conversation, peer_id);
  if (!read) return read.err();
  return History{std::move(page.value()), std::move(read.value())};
}

bool ChatService::known_user(std::string_view id) const {
  std::shared_lock lock(known_mu_);
  return known_users_.contains(std::string(id));
}

void ChatService::remember_user(const std::string& id) const {
  std::unique_lock lock(known_mu_);
  if (known_users_.size() >= kMaxKnownUsers) known_users_.clear();
  known_users_.insert(id);
}

bool ChatService::try_send_nonblocking(SendInput& in, SendCallback& done) {
  if (in.picture || !known_user(in.receiver_id)) return false;
  append(std::move(in), {}, std::move(done));
  return true;
}

void ChatService::send(SendInput in, SendCallback done) {
  if (!known_user(in.receiver_id)) {
    auto receiver = store_.user_by_id(in.receiver_id);
    if (!receiver) {
      done(receiver.code() == errc::not_found ? error{errc::not_found, "User not found"} : receiver.err());
      return;
    }
    remember_user(receiver->id);
  }
  std::string image_url;
  if (in.picture) {
    auto url = store_image(*in.picture);
    if (!url) return done(url.err());
    image_url = std::move(url.value());
  }
  append(std::move(in), std::move(image_url), std::move(done));
}

void ChatService::append(SendInput&& in, std::string image_url, SendCallback&& done) {
  store::Message m;
  m.image = std::move(image_url);
  auto stamp = new_stamped_id();
  m.id = std::move(stamp.id);
  m.conversation_id = store::direct_conversation_id(in.sender_id, in.receiver_id);
  m.sender_id = std::move(in.sender_id);
  m.receiver_id = std::move(in.receiver_id);
  m.text = std::move(in.text);
  m.client_msg_id = std::move(in.client_msg_id);
  m.created_at = m.updated_at = stamp.ms;
  store_.append_message(std::move(m), [this, origin = std::move(in.origin), done = std::move(done)](
                                           result<store::Appended> r) {
    if (r && !r->duplicate)
      for (const auto& l : listeners_) l(r->message, origin);
    done(std::move(r));
  });
}

result<store::Media> ChatService::media(std::string_view id) { return store_.media(id); }

}  // namespace chat
