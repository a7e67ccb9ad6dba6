#include "bus/presence_view.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "bus/wire.hpp"

namespace chat::bus {
namespace {

using T = PresenceView::Transitions;

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(PresenceView, LocalUsersGoOnlineAndOffline) {
  PresenceView v("me", 1000);
  T t;
  v.add_local("u1", t);
  v.add_local("u1", t);  // already there: no transition
  EXPECT_EQ(t, (T{{"u1", true}}));
  EXPECT_TRUE(v.is_online("u1"));
  t.clear();
  v.remove_local("u1", t);
  EXPECT_EQ(t, (T{{"u1", false}}));
  EXPECT_FALSE(v.is_online("u1"));
  t.clear();
  v.remove_local("u1", t);
  EXPECT_TRUE(t.empty());
}

TEST(PresenceView, AUserIsOnlineWhileAnyInstanceHasIt) {
  PresenceView v("me", 1000);
  T t;
  v.add_local("u", t);
  v.remote_online("b", "u", 0, t);
  v.remote_online("c", "u", 0, t);
  EXPECT_EQ(t, (T{{"u", true}}));
  t.clear();
  v.remove_local("u", t);
  v.remote_offline("b", "u", 0, t);
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(v.is_online("u"));
  v.remote_offline("c", "u", 0, t);
  EXPECT_EQ(t, (T{{"u", false}}));
}

TEST(PresenceView, OwnEchoesAreIgnored) {
  PresenceView v("me", 1000);
  T t;
  v.remote_online("me", "u", 0, t);
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(v.is_online("u"));
  EXPECT_FALSE(v.heartbeat("me", 5, 5, 0));
}

TEST(PresenceView, SilentInstancesExpireButSelfNeverDoes) {
  PresenceView v("me", 1000);
  T t;
  v.add_local("mine", t);
  v.remote_online("b", "u1", 100, t);
  v.remote_online("b", "u2", 100, t);
  v.remote_online("c", "u3", 100, t);
  t.clear();
  EXPECT_FALSE(v.heartbeat("c", 1, wire::member_hash("u3"), 900));
  v.expire(1100, t);  // b: 1000 ms since heard: still there
  EXPECT_TRUE(t.empty());
  v.expire(1101, t);  // b gone; c heard at 900
  EXPECT_EQ(sorted({t[0].first, t[1].first}), (std::vector<std::string>{"u1", "u2"}));
  EXPECT_FALSE(t[0].second);
  EXPECT_EQ(v.instances(), std::vector<std::string>{"c"});
  t.clear();
  v.expire(100000, t);
  EXPECT_EQ(t, (T{{"u3", false}}));
  EXPECT_TRUE(v.is_online("mine"));  // own users are kept whatever the clock says
  EXPECT_EQ(v.online_users(), std::vector<std::string>{"mine"});
}

TEST(PresenceView, HeartbeatDetectsUnknownAndDivergedInstances) {
  PresenceView v("me", 1000);
  T t;
  EXPECT_TRUE(v.heartbeat("b", 0, 0, 0));  // never seen: fetch its set
  EXPECT_FALSE(v.heartbeat("b", 0, 0, 0));
  v.remote_online("b", "u1", 0, t);
  EXPECT_FALSE(v.heartbeat("b", 1, wire::member_hash("u1"), 0));
  EXPECT_TRUE(v.heartbeat("b", 1, wire::member_hash("u2"), 0));  // same size, other member
  EXPECT_TRUE(v.heartbeat("b", 2, wire::member_hash("u1"), 0));
}

TEST(PresenceView, ReplaceInstanceOnlyReportsRealChanges) {
  PresenceView v("me", 1000);
  T t;
  v.remote_online("b", "keep", 0, t);
  v.remote_online("b", "drop", 0, t);
  t.clear();
  v.replace_instance("b", {"keep", "new"}, 10, t);
  EXPECT_EQ(t, (T{{"new", true}, {"drop", false}}));
  EXPECT_FALSE(v.heartbeat("b", 2, wire::member_hash("keep") ^ wire::member_hash("new"), 10));
}

TEST(PresenceView, GoneInstanceTakesItsUsersOffline) {
  PresenceView v("me", 1000);
  T t;
  v.add_local("shared", t);
  v.remote_online("b", "shared", 0, t);
  v.remote_online("b", "only-b", 0, t);
  t.clear();
  v.remove_instance("b", t);
  EXPECT_EQ(t, (T{{"only-b", false}}));
  EXPECT_TRUE(v.is_online("shared"));
  t.clear();
  v.remove_instance("me", t);  // cannot remove self
  EXPECT_TRUE(v.is_online("shared"));
}

TEST(PresenceView, ResyncReplacesEveryOtherInstance) {
  PresenceView v("me", 1000);
  T t;
  v.add_local("mine", t);
  v.remote_online("stale", "s1", 0, t);
  v.remote_online("b", "b1", 0, t);
  t.clear();
  std::unordered_map<std::string, PresenceView::Snapshot> snap{
      {"b", {{"b1", "b2"}, 500}}, {"c", {{"c1"}, 400}}, {"me", {{"ghost"}, 400}}};
  v.replace_all(snap, t);
  EXPECT_EQ(sorted(v.online_users()), (std::vector<std::string>{"b1", "b2", "c1", "mine"}));
  EXPECT_EQ(sorted(v.instances()), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(std::count(t.begin(), t.end(), std::pair<std::string, bool>{"s1", false}), 1);
  EXPECT_EQ(std::count(t.begin(), t.end(), std::pair<std::string, bool>{"b1", true}), 0);
  // Last-heard times come from the snapshot: c (400) expires before b (500).
  t.clear();
  v.expire(1450, t);
  EXPECT_EQ(t, (T{{"c1", false}}));
}

TEST(PresenceView, OwnCountAndDigestFollowTheLocalSet) {
  PresenceView v("me", 1000);
  T t;
  v.add_local("a", t);
  v.add_local("b", t);
  v.remove_local("a", t);
  EXPECT_EQ(v.own_count(), 1u);
  EXPECT_EQ(v.own_digest(), wire::member_hash("b"));
}

}  // namespace
}  // namespace chat::bus
