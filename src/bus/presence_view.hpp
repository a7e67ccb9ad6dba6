#pragma once
// The cluster-wide presence view of one instance: {instance → (users, last heard)}. A user is
// online when any instance still in the view has it. Pure (no I/O, no clock, no locking: the
// caller passes monotonic milliseconds and serialises access); every mutation appends the
// users whose cluster-wide state changed to `out`, in order.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/hash.hpp"

namespace chat::bus {

class PresenceView {
 public:
  /// (user id, online)
  using Transitions = std::vector<std::pair<std::string, bool>>;

  /// `self`: this instance (its users never expire); `ttl_ms`: how long another instance stays
  /// in the view without being heard from.
  PresenceView(std::string self, std::int64_t ttl_ms);

  void add_local(const std::string& user, Transitions& out);
  void remove_local(const std::string& user, Transitions& out);

  /// A delta from another instance (ignored when `instance` is self). Touches it.
  void remote_online(const std::string& instance, const std::string& user, std::int64_t now_ms,
                     Transitions& out);
  void remote_offline(const std::string& instance, const std::string& user, std::int64_t now_ms,
                      Transitions& out);
  /// A heartbeat with the instance's own count and digest of its set. Returns true when the
  /// view's copy differs (or the instance was unknown): the caller should fetch the whole set
  /// and replace_instance() it.
  bool heartbeat(const std::string& instance, std::uint64_t count, std::uint64_t digest,
                 std::int64_t now_ms);
  /// The whole set of one instance (a fetch after a heartbeat mismatch), last heard at `seen_ms`.
  void replace_instance(const std::string& instance, const std::vector<std::string>& users,
                        std::int64_t seen_ms, Transitions& out);
  /// The instance said goodbye.
  void remove_instance(const std::string& instance, Transitions& out);
  struct Snapshot {
    std::vector<std::string> users;
    std::int64_t last_seen_ms = 0;
  };
  /// A full resync: exactly these other instances exist, with these sets and last-heard times.
  void replace_all(const std::unordered_map<std::string, Snapshot>& instances, Transitions& out);
  /// Drops the other instances not heard from within the ttl.
  void expire(std::int64_t now_ms, Transitions& out);

  bool is_online(std::string_view user) const;
  std::vector<std::string> online_users() const;
  std::size_t online_count() const { return holders_.size(); }
  /// Other instances currently in the view.
  std::vector<std::string> instances() const;
  /// This instance's set: count and digest (what its heartbeats announce).
  std::uint64_t own_count() const;
  std::uint64_t own_digest() const;

 private:
  struct Instance {
    std::unordered_set<std::string> users;
    std::uint64_t digest = 0;
    std::int64_t last_seen_ms = 0;
  };
  Instance& touch(const std::string& instance, std::int64_t now_ms);
  void add(Instance& inst, const std::string& user, Transitions& out);
  void remove(Instance& inst, const std::string& user, Transitions& out);
  void drop(std::unordered_map<std::string, Instance>::iterator it, Transitions& out);

  std::string self_;
  std::int64_t ttl_ms_;
  std::unordered_map<std::string, Instance> instances_;  // self included
  std::unordered_map<std::string, std::uint32_t, StringViewHash, std::equal_to<>>
      holders_;  // user → number of instances that have it
};

}  // namespace chat::bus
