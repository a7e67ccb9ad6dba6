#include "bus/cluster_slots.hpp"

#include <gtest/gtest.h>

#include "bus/resp.hpp"

namespace chat::bus::cluster {
namespace {

resp::Reply parse(std::string_view raw) {
  resp::Parser p;
  EXPECT_TRUE(p.feed(raw.data(), raw.size()));
  resp::Reply r;
  EXPECT_EQ(p.next(r), resp::Parser::Status::reply);
  return r;
}

TEST(ClusterSlots, Crc16MatchesRedis) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(crc16(""), 0);
}

TEST(ClusterSlots, KeySlotMatchesRedis) {
  // Values from CLUSTER KEYSLOT on Redis 7.
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("hello"), 866);
}

TEST(ClusterSlots, HashTags) {
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("chat:u:{abc}"), key_slot("abc"));
  EXPECT_EQ(key_slot("chat:presence:{abc}"), key_slot("chat:u:{abc}"));
  // Empty tag: the whole key. Only the first {...} counts.
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") & 16383);
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
  EXPECT_EQ(key_slot("no close {brace"), crc16("no close {brace") & 16383);
}

TEST(ClusterSlots, ParsesMoved) {
  auto m = parse_moved("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->slot, 3999);
  EXPECT_EQ(m->node, (Node{"127.0.0.1", 6381}));
  auto v6 = parse_moved("MOVED 1 ::1:7000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->node, (Node{"::1", 7000}));
  EXPECT_FALSE(parse_moved("ASK 3999 127.0.0.1:6381"));
  EXPECT_FALSE(parse_moved("MOVED 16384 127.0.0.1:6381"));
  EXPECT_FALSE(parse_moved("MOVED x 127.0.0.1:6381"));
  EXPECT_FALSE(parse_moved("MOVED 12 127.0.0.1"));
  EXPECT_FALSE(parse_moved("MOVED 12 127.0.0.1:0"));
  EXPECT_FALSE(parse_moved("MOVED 12"));
  EXPECT_FALSE(parse_moved("ERR unknown"));
}

// A real CLUSTER SLOTS reply of a 3-master Redis 7.0 cluster (with the networking metadata
// array Redis 7 appends, and a replica entry on the last range).
constexpr std::string_view kSlots =
    "*3\r\n"
    "*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nid1\r\n*0\r\n"
    "*3\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\nid2\r\n*0\r\n"
    "*4\r\n:10923\r\n:16383\r\n*4\r\n$0\r\n\r\n:7002\r\n$3\r\nid3\r\n*0\r\n"
    "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$3\r\nid4\r\n";

TEST(ClusterSlots, ParsesClusterSlots) {
  auto map = SlotMap::from_cluster_slots(parse(kSlots), "seed-host");
  ASSERT_TRUE(map) << map.err().message;
  ASSERT_EQ(map->nodes().size(), 3u);  // replicas are not routed to
  EXPECT_EQ(map->nodes()[map->node_index(0)], (Node{"127.0.0.1", 7000}));
  EXPECT_EQ(map->nodes()[map->node_index(5460)], (Node{"127.0.0.1", 7000}));
  EXPECT_EQ(map->nodes()[map->node_index(5461)], (Node{"127.0.0.1", 7001}));
  // An empty host means "the address you reached me at".
  EXPECT_EQ(map->nodes()[map->node_index(16383)], (Node{"seed-host", 7002}));
  EXPECT_EQ(map->node_for_key("foo"), map->node_index(12182));
}

TEST(ClusterSlots, RejectsIncompleteOrMalformedMaps) {
  auto partial = SlotMap::from_cluster_slots(
      parse("*1\r\n*3\r\n:0\r\n:100\r\n*2\r\n$1\r\nh\r\n:1\r\n"), "x");
  ASSERT_FALSE(partial);
  EXPECT_EQ(partial.code(), errc::unavailable);
  EXPECT_FALSE(SlotMap::from_cluster_slots(parse("-ERR nope\r\n"), "x"));
  EXPECT_FALSE(SlotMap::from_cluster_slots(parse("*1\r\n:1\r\n"), "x"));
  EXPECT_FALSE(SlotMap::from_cluster_slots(
      parse("*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n"), "x"));  // start > end
  EXPECT_FALSE(SlotMap::from_cluster_slots(
      parse("*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n"), "x"));  // beyond the slots
  EXPECT_FALSE(SlotMap::from_cluster_slots(
      parse("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$1\r\nh\r\n:70000\r\n"), "x"));  // bad port
  EXPECT_FALSE(SlotMap::from_cluster_slots(parse("*1\r\n*2\r\n:0\r\n:16383\r\n"), "x"));
}

TEST(ClusterSlots, MovedReroutesKnownNodesOnly) {
  auto map = SlotMap::from_cluster_slots(parse(kSlots), "127.0.0.1");
  ASSERT_TRUE(map);
  EXPECT_TRUE(map->apply({42, Node{"127.0.0.1", 7001}}));
  EXPECT_EQ(map->nodes()[map->node_index(42)].port, 7001);
  EXPECT_EQ(map->nodes()[map->node_index(43)].port, 7000);
  EXPECT_FALSE(map->apply({42, Node{"127.0.0.1", 7999}}));
}

TEST(ClusterSlots, SingleServesEverything) {
  auto map = SlotMap::single({"localhost", 6379});
  EXPECT_EQ(map.node_index(0), 0u);
  EXPECT_EQ(map.node_index(16383), 0u);
  EXPECT_EQ(map.nodes().size(), 1u);
}

}  // namespace
}  // namespace chat::bus::cluster
