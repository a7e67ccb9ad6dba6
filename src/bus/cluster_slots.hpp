#pragma once
// Redis Cluster slot routing, kept small and in one place (hiredis 0.14 has no cluster support):
// CRC16 key slots with {hash tags}, the slot → master map from CLUSTER SLOTS, and MOVED errors.
// Pure functions over parsed replies; everything here is unit-tested (tests/unit/bus).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/resp.hpp"
#include "core/result.hpp"

namespace chat::bus::cluster {

inline constexpr int kSlots = 16384;

/// CRC16-CCITT (XModem), as Redis uses it: crc16("123456789") == 0x31C3.
std::uint16_t crc16(std::string_view data);
/// The key's slot: the CRC of the text between the first '{' and the next '}' when that is
/// non-empty, else of the whole key; modulo 16384.
int key_slot(std::string_view key);

struct Node {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const Node&) const = default;
  std::string address() const;  ///< "host:port"
};

/// "host:port" (the last ':' separates the port, so "::1:6379" works). nullopt when malformed.
std::optional<Node> parse_address(std::string_view text);

struct Moved {
  int slot = 0;
  Node node;
};
/// "MOVED 3999 127.0.0.1:6381" → {3999, 127.0.0.1:6381}; nullopt for any other error text.
std::optional<Moved> parse_moved(std::string_view error);

/// Which master serves each slot.
class SlotMap {
 public:
  /// From a CLUSTER SLOTS reply: [[start, end, [host, port, id, …], replicas…], …]. An empty host
  /// (a node that does not know its own address) becomes `default_host`. Errors: malformed
  /// reply (internal) or slots not all covered (unavailable: the cluster is not ready).
  static result<SlotMap> from_cluster_slots(const resp::Reply& reply,
                                            std::string_view default_host);
  /// A map where one node serves every slot (a single Redis).
  static SlotMap single(Node node);

  const std::vector<Node>& nodes() const { return nodes_; }
  /// Index into nodes() of the master serving `slot` (0 <= slot < kSlots).
  std::size_t node_index(int slot) const { return slot_node_[static_cast<std::size_t>(slot)]; }
  /// One node (a single Redis, or a one-master cluster) serves every slot: no hashing then (the
  /// CRC was 2 % of a cluster-mode chatd's CPU at 20,000 messages/s with a single Redis).
  std::size_t node_for_key(std::string_view key) const {
    return nodes_.size() == 1 ? 0 : node_index(key_slot(key));
  }
  /// Index of `node` in nodes(), if it is one of them.
  std::optional<std::size_t> find(const Node& node) const;
  /// After a MOVED to a known node: routes the slot there. False when the node is unknown (the
  /// caller must reload the whole map).
  bool apply(const Moved& moved);
  bool operator==(const SlotMap&) const = default;

 private:
  std::vector<Node> nodes_;
  std::vector<std::uint16_t> slot_node_;
};

}  // namespace chat::bus::cluster
