#pragma once
// Who is online. The local implementation counts this process's connections per user; the
// cluster issue adds a Redis-backed registry behind the same interface.
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chat {

/// Thread-safe.
class Presence {
 public:
  virtual ~Presence() = default;
  virtual bool is_online(std::string_view user_id) const = 0;
  /// Ids of every online user (unordered).
  virtual std::vector<std::string> online_users() const = 0;
};

/// Connection counts per user in this process. connect()/disconnect() return true when the
/// user's state changed (first connection / last one gone).
class LocalPresence final : public Presence {
 public:
  bool connect(const std::string& user_id);
  bool disconnect(const std::string& user_id);
  bool is_online(std::string_view user_id) const override;
  std::vector<std::string> online_users() const override;
  std::size_t online_count() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::size_t> connections_;
};

}  // namespace chat
