#pragma once
// What the Redis bus writes to and reads from Redis as text: the connection URL, key and
// channel names, the event envelope and the presence messages. Pure and unit-tested; every
// decoder takes untrusted bytes (anything published on the channels) and returns nullopt on
// malformed input.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/bus.hpp"
#include "bus/cluster_slots.hpp"
#include "core/result.hpp"

namespace chat::bus::wire {

struct RedisTarget {
  std::vector<cluster::Node> seeds;  ///< one for a single Redis; any nodes of a cluster
  std::string username;              ///< ACL user ("" = default)
  std::string password;              ///< "" = no AUTH
  int db = 0;                        ///< SELECT (single Redis only; a cluster has db 0)
};
/// "redis://[[user]:password@]host[:port][/db]" or a comma list of seeds
/// "redis://h1:p1,h2:p2" (each item may repeat the scheme). Port defaults to 6379; the password
/// may be %-encoded.
result<RedisTarget> parse_redis_url(std::string_view url);

/// Instance ids: 1–64 of [A-Za-z0-9._:-]. User ids: 1–64 of [A-Za-z0-9_-].
bool valid_instance_id(std::string_view id);
bool valid_user_id(std::string_view id);

/// "chat:u:{<user>}": the braces make the channel's slot the user's.
std::string user_channel(std::string_view user_id);
/// The user id of a user channel, or nullopt.
std::optional<std::string_view> user_from_channel(std::string_view channel);

inline constexpr std::string_view kPresenceChannel = "chat:presence";
inline constexpr std::string_view kInstancesKey = "chat:instances";
/// "chat:presence:{<instance>}": the SET of an instance's online users.
std::string presence_key(std::string_view instance_id);

/// Envelope: "1|<origin>|<0|1 recoverable>|<except length>|<except><payload>".
std::string encode_event(std::string_view origin, const UserEvent& ev);
struct DecodedEvent {
  std::string origin;
  UserEvent event;  ///< user_id left empty (it comes from the channel)
};
std::optional<DecodedEvent> decode_event(std::string_view data);

struct PresenceMessage {
  enum class Kind : char { online = '+', offline = '-', heartbeat = 'h', gone = 'x' };
  Kind kind = Kind::heartbeat;
  std::string instance;
  std::string user;          ///< online / offline
  std::uint64_t count = 0;   ///< heartbeat: size of the instance's set
  std::uint64_t digest = 0;  ///< heartbeat: xor of member_hash over the set
};
/// "+ inst user", "- inst user", "h inst count digest", "x inst".
std::string encode_presence(const PresenceMessage& m);
std::optional<PresenceMessage> decode_presence(std::string_view data);
/// FNV-1a 64: the same on every instance (xor-ed into a set digest, order independent).
std::uint64_t member_hash(std::string_view user_id);

}  // namespace chat::bus::wire
