#pragma once
// An in-memory chat::store::Store for unit tests: the same contract as the real stores
// (store/store.hpp), without disk or threads. One mutex guards everything.
//
// Differences from the real stores, on purpose:
//  - append_message() calls `done` synchronously, on the calling thread, before returning;
//  - test knobs: fail_next_append(), delete_user(), and a few inspectors.
#include <algorithm>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace chat::fakes {

/// Thread-safe. Nothing blocks except on the internal mutex; callbacks run outside it.
class FakeStore final : public store::Store {
 public:
  result<store::User> create_user(const store::User& user) override {
    std::lock_guard lock(mu_);
    for (const auto& [id, u] : users_)
      if (u.email == user.email)
        return error{errc::already_exists, "User account already exists with this email"};
    if (users_.contains(user.id)) return error{errc::already_exists, "user id already exists"};
    users_[user.id] = user;
    return user;
  }

  result<store::User> user_by_id(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto it = users_.find(std::string(id));
    if (it == users_.end()) return error{errc::not_found, "user not found"};
    return it->second;
  }

  result<store::User> user_by_email(std::string_view email) override {
    std::lock_guard lock(mu_);
    for (const auto& [id, u] : users_)
      if (u.email == email) return u;
    return error{errc::not_found, "user not found"};
  }

  result<std::vector<store::User>> users_except(std::string_view id) override {
    std::lock_guard lock(mu_);
    std::vector<store::User> out;
    for (const auto& [uid, u] : users_)
      if (uid != id) out.push_back(u);
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.full_name < b.full_name; });
    return out;
  }

  result<store::User> update_user(std::string_view id, const store::UserPatch& patch,
                                  std::int64_t now_ms) override {
    std::lock_guard lock(mu_);
    auto it = users_.find(std::string(id));
    if (it == users_.end()) return error{errc::not_found, "user not found"};
    store::User& u = it->second;
    if (patch.full_name) u.full_name = *patch.full_name;
    if (patch.profile_picture) u.profile_picture = *patch.profile_picture;
    if (patch.bio) u.bio = *patch.bio;
    u.updated_at = now_ms;
    return u;
  }

  result<void> set_password_hash(std::string_view id, std::string_view hash) override {
    std::lock_guard lock(mu_);
    auto it = users_.find(std::string(id));
    if (it == users_.end()) return error{errc::not_found, "user not found"};
    it->second.password_hash = std::string(hash);
    return {};
  }

  /// Synchronous: `done` has run when this returns.
  void append_message(store::Message m, AppendCallback done) override {
    result<store::Appended> r = append_locked(std::move(m));
    done(std::move(r));
  }

  result<store::MessagePage> conversation_page(std::string_view conversation_id,
                                               std::string_view before_id,
                                               std::size_t limit) override {
    std::lock_guard lock(mu_);
    // Ids are time-ordered ObjectIds: newest first is descending id order.
    std::vector<const store::Message*> newest_first;
    for (const auto& m : messages_)
      if (m.conversation_id == conversation_id && (before_id.empty() || m.id < before_id))
        newest_first.push_back(&m);
    std::sort(newest_first.begin(), newest_first.end(),
              [](const auto* a, const auto* b) { return a->id > b->id; });
    store::MessagePage page;
    page.has_more = newest_first.size() > limit;
    if (newest_first.size() > limit) newest_first.resize(limit);
    for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it)
      page.messages.push_back(**it);
    return page;
  }

  result<std::string> mark_read(std::string_view conversation_id, std::string_view user_id,
                                std::string_view up_to_id) override {
    std::lock_guard lock(mu_);
    if (up_to_id.empty()) return error{errc::invalid_argument, "read position is empty"};
    auto conv = members_.find(std::string(conversation_id));
    if (conv == members_.end()) return error{errc::not_found, "not a member of the conversation"};
    auto member = conv->second.find(std::string(user_id));
    if (member == conv->second.end())
      return error{errc::not_found, "not a member of the conversation"};
    std::string newest;
    for (const auto& m : messages_)
      if (m.conversation_id == conversation_id && m.id > newest) newest = m.id;
    const std::string target = std::min(std::string(up_to_id), newest);
    if (target > member->second) member->second = target;
    return member->second;
  }

  result<std::string> last_read(std::string_view conversation_id, std::string_view user_id) override {
    std::lock_guard lock(mu_);
    auto conv = members_.find(std::string(conversation_id));
    if (conv == members_.end()) return std::string{};
    auto member = conv->second.find(std::string(user_id));
    return member == conv->second.end() ? std::string{} : member->second;
  }

  result<std::vector<store::ConversationSummary>> conversation_summaries(
      std::string_view user_id) override {
    std::lock_guard lock(mu_);
    std::vector<store::ConversationSummary> out;
    for (const auto& [conv_id, members] : members_) {
      auto me = members.find(std::string(user_id));
      if (me == members.end()) continue;
      for (const auto& [peer_id, unused] : members) {
        if (peer_id == user_id) continue;
        store::ConversationSummary c;
        c.peer_id = peer_id;
        c.conversation_id = conv_id;
        c.last_read_id = me->second;
        std::vector<const store::Message*> newest_first;
        for (const auto& m : messages_)
          if (m.conversation_id == conv_id) newest_first.push_back(&m);
        std::sort(newest_first.begin(), newest_first.end(),
                  [](const auto* a, const auto* b) { return a->id > b->id; });
        if (!newest_first.empty()) c.last_message = *newest_first.front();
        if (newest_first.size() > store::kUnreadWindow) newest_first.resize(store::kUnreadWindow);
        for (const auto* m : newest_first)
          if (m->id > c.last_read_id && m->sender_id == peer_id) ++c.unread;
        out.push_back(std::move(c));
      }
    }
    return out;
  }

  result<void> put_media(std::string_view id, std::string_view content_type,
                         std::string_view bytes) override {
    std::lock_guard lock(mu_);
    media_[std::string(id)] = store::Media{std::string(content_type), std::string(bytes)};
    return {};
  }

  result<store::Media> media(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto it = media_.find(std::string(id));
    if (it == media_.end()) return error{errc::not_found, "media not found"};
    return it->second;
  }

  result<void> ping() override { return {}; }
  void flush() override {}

  // ---- test knobs ----

  /// The next append_message() fails with unavailable (a full queue) and stores nothing.
  void fail_next_append() {
    std::lock_guard lock(mu_);
    fail_next_append_ = true;
  }
  /// Removes a user (as if deleted by an administrator). True when it existed.
  bool delete_user(std::string_view id) {
    std::lock_guard lock(mu_);
    return users_.erase(std::string(id)) > 0;
  }

  // ---- inspectors ----

  std::vector<store::Message> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  std::size_t message_count() const {
    std::lock_guard lock(mu_);
    return messages_.size();
  }
  std::size_t user_count() const {
    std::lock_guard lock(mu_);
    return users_.size();
  }
  std::size_t media_count() const {
    std::lock_guard lock(mu_);
    return media_.size();
  }

 private:
  result<store::Appended> append_locked(store::Message m) {
    std::lock_guard lock(mu_);
    if (fail_next_append_) {
      fail_next_append_ = false;
      return error{errc::unavailable, "store queue is full"};
    }
    if (m.id.empty() || m.conversation_id.empty() || m.sender_id.empty() || m.receiver_id.empty())
      return error{errc::invalid_argument, "message needs id, conversation, sender and receiver"};
    if (!m.client_msg_id.empty())
      for (const auto& existing : messages_)
        if (existing.sender_id == m.sender_id && existing.client_msg_id == m.client_msg_id)
          return store::Appended{existing, true};
    messages_.push_back(m);
    // Like the real stores, the first message creates the conversation and its two members.
    members_[m.conversation_id].try_emplace(m.sender_id);
    members_[m.conversation_id].try_emplace(m.receiver_id);
    return store::Appended{std::move(m), false};
  }

  mutable std::mutex mu_;
  std::map<std::string, store::User> users_;  // by id
  std::vector<store::Message> messages_;      // in append order
  // conversation id → member id → last_read_id ("" when never marked)
  std::map<std::string, std::map<std::string, std::string>> members_;
  std::map<std::string, store::Media> media_;
  bool fail_next_append_ = false;
};

}  // namespace chat::fakes
