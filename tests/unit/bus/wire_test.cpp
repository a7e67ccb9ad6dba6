#include "bus/wire.hpp"

#include <gtest/gtest.h>

namespace chat::bus::wire {
namespace {

TEST(Wire, ParsesSingleUrl) {
  auto t = parse_redis_url("redis://:s%40cret@localhost:6380/2");
  ASSERT_TRUE(t) << t.err().message;
  ASSERT_EQ(t->seeds.size(), 1u);
  EXPECT_EQ(t->seeds[0], (cluster::Node{"localhost", 6380}));
  EXPECT_EQ(t->password, "s@cret");
  EXPECT_EQ(t->username, "");
  EXPECT_EQ(t->db, 2);

  auto d = parse_redis_url("redis://redis");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->seeds[0], (cluster::Node{"redis", 6379}));
  EXPECT_EQ(d->db, 0);
  EXPECT_EQ(d->password, "");

  auto u = parse_redis_url("redis://alice:pw@h:1/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->username, "alice");
  EXPECT_EQ(u->password, "pw");
}

TEST(Wire, ParsesClusterSeedLists) {
  auto t = parse_redis_url("redis://127.0.0.1:7000,127.0.0.1:7001,redis://h:7002");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->seeds.size(), 3u);
  EXPECT_EQ(t->seeds[1], (cluster::Node{"127.0.0.1", 7001}));
  EXPECT_EQ(t->seeds[2], (cluster::Node{"h", 7002}));
}

TEST(Wire, RejectsBadUrls) {
  EXPECT_FALSE(parse_redis_url(""));
  EXPECT_FALSE(parse_redis_url("http://h:1"));
  EXPECT_FALSE(parse_redis_url("redis://"));
  EXPECT_FALSE(parse_redis_url("redis://h:notaport"));
  EXPECT_FALSE(parse_redis_url("redis://h:70000"));
  EXPECT_FALSE(parse_redis_url("redis://h:1/x"));
  EXPECT_FALSE(parse_redis_url("redis://:%4@h:1"));
  EXPECT_FALSE(parse_redis_url("redis://h:1,"));
}

TEST(Wire, Ids) {
  EXPECT_TRUE(valid_user_id("65f1c0ffee0123456789abcd"));
  EXPECT_FALSE(valid_user_id(""));
  EXPECT_FALSE(valid_user_id("a}b"));
  EXPECT_FALSE(valid_user_id("a b"));
  EXPECT_FALSE(valid_user_id(std::string(65, 'a')));
  EXPECT_TRUE(valid_instance_id("chatd-1.host:8080"));
  EXPECT_FALSE(valid_instance_id("a|b"));
  EXPECT_FALSE(valid_instance_id("a b"));
}

TEST(Wire, UserChannelsRoundTripAndShareTheUsersSlot) {
  auto ch = user_channel("abc123");
  EXPECT_EQ(ch, "chat:u:{abc123}");
  EXPECT_EQ(user_from_channel(ch), "abc123");
  EXPECT_EQ(cluster::key_slot(ch), cluster::key_slot("abc123"));
  EXPECT_FALSE(user_from_channel("chat:u:{}"));
  EXPECT_FALSE(user_from_channel("chat:x:{abc}"));
  EXPECT_FALSE(user_from_channel("chat:u:{abc"));
  EXPECT_FALSE(user_from_channel("chat:u:{a b}"));
}

TEST(Wire, EventEnvelopeRoundTrips) {
  UserEvent ev{"u1", R"(["newMessage",{"text":"a|b|3|"}])", "sock|id", false};
  auto data = encode_event("inst-1", ev);
  auto d = decode_event(data);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->origin, "inst-1");
  EXPECT_EQ(d->event.payload, ev.payload);
  EXPECT_EQ(d->event.except_origin, "sock|id");
  EXPECT_FALSE(d->event.recoverable);
  EXPECT_EQ(d->event.user_id, "");

  UserEvent plain{"u1", "[]", "", true};
  auto p = decode_event(encode_event("i", plain));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->event.recoverable);
  EXPECT_EQ(p->event.except_origin, "");
  EXPECT_EQ(p->event.payload, "[]");
}

TEST(Wire, MalformedEnvelopesAreRejected) {
  for (std::string_view bad : {"", "1", "2|i|1|0|x", "1|i|2|0|x", "1|i|1|9|abc", "1|i|1|-1|x",
                               "1|i|1|x|y", "1||1|0|x", "1|a b|1|0|x", "1|i|1"}) {
    EXPECT_FALSE(decode_event(bad)) << bad;
  }
}

TEST(Wire, PresenceMessagesRoundTrip) {
  using K = PresenceMessage::Kind;
  for (const PresenceMessage& m :
       {PresenceMessage{K::online, "i1", "u1", 0, 0}, PresenceMessage{K::offline, "i1", "u2", 0, 0},
        PresenceMessage{K::heartbeat, "i1", "", 7, 18446744073709551615ull},
        PresenceMessage{K::gone, "i1", "", 0, 0}}) {
    auto d = decode_presence(encode_presence(m));
    ASSERT_TRUE(d) << encode_presence(m);
    EXPECT_EQ(d->kind, m.kind);
    EXPECT_EQ(d->instance, m.instance);
    EXPECT_EQ(d->user, m.user);
    EXPECT_EQ(d->count, m.count);
    EXPECT_EQ(d->digest, m.digest);
  }
}

TEST(Wire, MalformedPresenceIsRejected) {
  for (std::string_view bad : {"", "+", "+ ", "+ i", "+ i u extra", "+ i a}b", "h i 1", "h i x 1",
                               "h i 1 2 3", "x i u", "? i u", "+ i u ", "+  u", "+i u"}) {
    EXPECT_FALSE(decode_presence(bad)) << bad;
  }
}

TEST(Wire, MemberHashIsStable) {
  // FNV-1a 64 of "a": every instance must compute the same digest.
  EXPECT_EQ(member_hash("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_NE(member_hash("ab"), member_hash("ba"));
}

}  // namespace
}  // namespace chat::bus::wire
