#include "bus/presence_view.hpp"

#include "bus/wire.hpp"

namespace chat::bus {

PresenceView::PresenceView(std::string self, std::int64_t ttl_ms)
    : self_(std::move(self)), ttl_ms_(ttl_ms) {
  instances_[self_];
}

PresenceView::Instance& PresenceView::touch(const std::string& instance, std::int64_t now_ms) {
  Instance& inst = instances_[instance];
  inst.last_seen_ms = std::max(inst.last_seen_ms, now_ms);
  return inst;
}

void PresenceView::add(Instance& inst, const std::string& user, Transitions& out) {
  if (!inst.users.insert(user).second) return;
  inst.digest ^= wire::member_hash(user);
  if (++holders_[user] == 1) out.emplace_back(user, true);
}

void PresenceView::remove(Instance& inst, const std::string& user, Transitions& out) {
  if (inst.users.erase(user) == 0) return;
  inst.digest ^= wire::member_hash(user);
  auto it = holders_.find(user);
  if (it != holders_.end() && --it->second == 0) {
    holders_.erase(it);
    out.emplace_back(user, false);
  }
}

void PresenceView::drop(std::unordered_map<std::string, Instance>::iterator it, Transitions& out) {
  Instance inst = std::move(it->second);
  instances_.erase(it);
  for (const auto& user : inst.users) {
    auto h = holders_.find(user);
    if (h != holders_.end() && --h->second == 0) {
      holders_.erase(h);
      out.emplace_back(user, false);
    }
  }
}

void PresenceView::add_local(const std::string& user, Transitions& out) {
  add(instances_[self_], user, out);
}

void PresenceView::remove_local(const std::string& user, Transitions& out) {
  remove(instances_[self_], user, out);
}

void PresenceView::remote_online(const std::string& instance, const std::string& user,
                                 std::int64_t now_ms, Transitions& out) {
  if (instance == self_) return;
  add(touch(instance, now_ms), user, out);
}

void PresenceView::remote_offline(const std::string& instance, const std::string& user,
                                  std::int64_t now_ms, Transitions& out) {
  if (instance == self_) return;
  remove(touch(instance, now_ms), user, out);
}

bool PresenceView::heartbeat(const std::string& instance, std::uint64_t count,
                             std::uint64_t digest, std::int64_t now_ms) {
  if (instance == self_) return false;
  bool known = instances_.contains(instance);
  Instance& inst = touch(instance, now_ms);
  return !known || inst.users.size() != count || inst.digest != digest;
}

void PresenceView::replace_instance(const std::string& instance,
                                    const std::vector<std::string>& users, std::int64_t seen_ms,
                                    Transitions& out) {
  if (instance == self_) return;
  Instance& inst = touch(instance, seen_ms);
  std::unordered_set<std::string> wanted(users.begin(), users.end());
  // Additions first, then removals, so a user present in both old and new never flaps.
  for (const auto& u : wanted) add(inst, u, out);
  std::vector<std::string> gone;
  for (const auto& u : inst.users)
    if (!wanted.contains(u)) gone.push_back(u);
  for (const auto& u : gone) remove(inst, u, out);
}

void PresenceView::remove_instance(const std::string& instance, Transitions& out) {
  if (instance == self_) return;
  if (auto it = instances_.find(instance); it != instances_.end()) drop(it, out);
}

void PresenceView::replace_all(const std::unordered_map<std::string, Snapshot>& instances,
                               Transitions& out) {
  for (const auto& [id, snap] : instances) replace_instance(id, snap.users, snap.last_seen_ms, out);
  for (auto it = instances_.begin(); it != instances_.end();) {
    if (it->first == self_ || instances.contains(it->first)) {
      ++it;
    } else {
      auto next = std::next(it);
      drop(it, out);
      it = next;
    }
  }
}

void PresenceView::expire(std::int64_t now_ms, Transitions& out) {
  for (auto it = instances_.begin(); it != instances_.end();) {
    if (it->first != self_ && now_ms - it->second.last_seen_ms > ttl_ms_) {
      auto next = std::next(it);
      drop(it, out);
      it = next;
    } else {
      ++it;
    }
  }
}

bool PresenceView::is_online(std::string_view user) const { return holders_.find(user) != holders_.end(); }

std::vector<std::string> PresenceView::online_users() const {
  std::vector<std::string> out;
  out.reserve(holders_.size());
  for (const auto& [u, n] : holders_) out.push_back(u);
  return out;
}

std::vector<std::string> PresenceView::instances() const {
  std::vector<std::string> out;
  for (const auto& [id, inst] : instances_)
    if (id != self_) out.push_back(id);
  return out;
}

std::uint64_t PresenceView::own_count() const { return instances_.at(self_).users.size(); }
std::uint64_t PresenceView::own_digest() const { return instances_.at(self_).digest; }

}  // namespace chat::bus
