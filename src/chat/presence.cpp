#include "chat/presence.hpp"

namespace chat {

bool LocalPresence::connect(const std::string& user_id) {
  std::lock_guard lock(mu_);
  return ++connections_[user_id] == 1;
}

bool LocalPresence::disconnect(const std::string& user_id) {
  std::lock_guard lock(mu_);
  auto it = connections_.find(user_id);
  if (it == connections_.end()) return false;
  if (--it->second > 0) return false;
  connections_.erase(it);
  return true;
}

bool LocalPresence::is_online(std::string_view user_id) const {
  std::lock_guard lock(mu_);
  return connections_.contains(std::string(user_id));
}

std::vector<std::string> LocalPresence::online_users() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(connections_.size());
  for (const auto& [id, n] : connections_) out.push_back(id);
  return out;
}

std::size_t LocalPresence::online_count() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

}  // namespace chat
