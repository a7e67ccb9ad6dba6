#pragma once
// The Store contract for read positions and conversation summaries (mark_read(),
// conversation_summaries()), written once and run against every implementation: SqliteStore in
// store_tests, the FakeStore in chat_tests, so the fake the chat tests rely on cannot drift.
//
// Usage: a backend type with `std::unique_ptr<chat::store::Store> open()` (called once per test,
// the backend object lives as long as the store), then
//   INSTANTIATE_TYPED_TEST_SUITE_P(Name, ReadStateContract, BackendType);
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/object_id.hpp"
#include "store/store.hpp"

namespace chat::store::contract {

inline std::string user_id(std::uint32_t n) { return make_object_id(0x66000000u + n, n); }

template <class Backend>
class ReadStateContract : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = backend_.open();
    ASSERT_TRUE(store_) << "backend did not open";
  }

  /// Appends a message (a new, larger id each time) and waits until it is stored.
  Message send(const std::string& from, const std::string& to, const std::string& text) {
    Message m = make(from, to, text);
    std::promise<result<Appended>> p;
    auto f = p.get_future();
    store_->append_message(m, [&p](result<Appended> r) { p.set_value(std::move(r)); });
    auto r = f.get();
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return m;
  }

  /// Queues `n` messages at once (grouped commits) and waits for all of them.
  std::vector<Message> send_many(const std::string& from, const std::string& to, std::size_t n) {
    std::vector<Message> out;
    auto failed = std::make_shared<std::atomic<int>>(0);
    for (std::size_t i = 0; i < n; ++i) {
      out.push_back(make(from, to, "bulk " + std::to_string(i)));
      store_->append_message(out.back(), [failed](result<Appended> r) {
        if (!r.ok() || r->duplicate) ++*failed;
      });
    }
    store_->flush();
    EXPECT_EQ(failed->load(), 0);
    return out;
  }

  /// The summary of `user`'s conversation with `peer`, if listed (fails the test on errors).
  std::optional<ConversationSummary> summary(const std::string& user, const std::string& peer) {
    auto all = store_->conversation_summaries(user);
    EXPECT_TRUE(all.ok()) << (all.ok() ? "" : all.err().message);
    if (!all.ok()) return std::nullopt;
    std::optional<ConversationSummary> found;
    for (auto& c : all.value()) {
      if (c.peer_id != peer) continue;
      EXPECT_FALSE(found) << "peer listed twice";
      found = std::move(c);
    }
    return found;
  }

  std::size_t unread(const std::string& user, const std::string& peer) {
    auto s = summary(user, peer);
    EXPECT_TRUE(s) << "no summary for " << peer;
    return s ? s->unread : 0;
  }

  Backend backend_;
  std::unique_ptr<Store> store_;
  const std::string alice_ = user_id(1);
  const std::string bob_ = user_id(2);
  const std::string carol_ = user_id(3);
  const std::string ab_ = direct_conversation_id(alice_, bob_);

 private:
  static Message make(const std::string& from, const std::string& to, const std::string& text) {
    Message m;
    m.id = new_object_id();
    m.conversation_id = direct_conversation_id(from, to);
    m.sender_id = from;
    m.receiver_id = to;
    m.text = text;
    m.created_at = m.updated_at = 1700000000000;
    return m;
  }
};

TYPED_TEST_SUITE_P(ReadStateContract);

TYPED_TEST_P(ReadStateContract, NoConversationsMeansNoSummaries) {
  auto none = this->store_->conversation_summaries(this->alice_);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  // Other people's conversations do not show up.
  this->send(this->bob_, this->carol_, "not for alice");
  auto still = this->store_->conversation_summaries(this->alice_);
  ASSERT_TRUE(still.ok());
  EXPECT_TRUE(still->empty());
  EXPECT_EQ(this->store_->conversation_summaries(this->bob_)->size(), 1u);
}

TYPED_TEST_P(ReadStateContract, UnreadCountsOnlyThePeersMessagesPerConversation) {
  const auto& [alice, bob, carol] = std::tie(this->alice_, this->bob_, this->carol_);
  for (int i = 0; i < 3; ++i) this->send(bob, alice, "b" + std::to_string(i));
  this->send(alice, bob, "a0");
  this->send(carol, alice, "c0");
  const Message last_ab = this->send(alice, bob, "a1");

  auto all = this->store_->conversation_summaries(alice);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  auto with_bob = this->summary(alice, bob);
  ASSERT_TRUE(with_bob);
  EXPECT_EQ(with_bob->conversation_id, this->ab_);
  EXPECT_EQ(with_bob->unread, 3u) << "alice's own two messages are not unread for her";
  EXPECT_EQ(with_bob->last_read_id, "");
  ASSERT_TRUE(with_bob->last_message);
  EXPECT_EQ(with_bob->last_message->id, last_ab.id) << "newest message, whoever sent it";
  EXPECT_EQ(with_bob->last_message->text, "a1");
  EXPECT_EQ(with_bob->last_message->sender_id, alice);
  EXPECT_EQ(with_bob->last_message->receiver_id, bob);
  EXPECT_EQ(with_bob->last_message->conversation_id, this->ab_);
  EXPECT_EQ(this->unread(alice, carol), 1u);
  EXPECT_EQ(this->summary(alice, carol)->last_message->text, "c0");

  // The same conversation from the other side.
  EXPECT_EQ(this->unread(bob, alice), 2u);
  EXPECT_EQ(this->summary(bob, alice)->last_message->id, last_ab.id);
  EXPECT_FALSE(this->summary(bob, carol)) << "bob and carol never talked";
  EXPECT_EQ(this->unread(carol, alice), 0u);
  EXPECT_EQ(this->store_->conversation_summaries(carol)->size(), 1u);
}

TYPED_TEST_P(ReadStateContract, MarkReadMovesForwardOnly) {
  const auto& [alice, bob] = std::tie(this->alice_, this->bob_);
  std::vector<Message> from_bob;
  for (int i = 0; i < 4; ++i) from_bob.push_back(this->send(bob, alice, "m" + std::to_string(i)));
  ASSERT_EQ(this->unread(alice, bob), 4u);

  auto r = this->store_->mark_read(this->ab_, alice, from_bob[1].id);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r.value(), from_bob[1].id);
  EXPECT_EQ(this->unread(alice, bob), 2u);
  EXPECT_EQ(this->summary(alice, bob)->last_read_id, from_bob[1].id);

  // Older (or equal) positions change nothing and report where the reader really is.
  const std::string zero(24, '0');
  for (const auto& older : {from_bob[0].id, from_bob[1].id, zero}) {
    auto back = this->store_->mark_read(this->ab_, alice, older);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back.value(), from_bob[1].id);
  }
  EXPECT_EQ(this->unread(alice, bob), 2u);

  // Reading alice's own reply's position covers bob's messages before it.
  const Message reply = this->send(alice, bob, "reply");
  EXPECT_EQ(this->unread(alice, bob), 2u);
  EXPECT_EQ(this->store_->mark_read(this->ab_, alice, reply.id).value(), reply.id);
  EXPECT_EQ(this->unread(alice, bob), 0u);

  // New messages after the read position are unread again.
  this->send(bob, alice, "later");
  EXPECT_EQ(this->unread(alice, bob), 1u);
  EXPECT_EQ(this->summary(alice, bob)->last_read_id, reply.id);

  // Each member has their own position: bob read nothing, and alice's reply is his only unread.
  EXPECT_EQ(this->unread(bob, alice), 1u);
  EXPECT_EQ(this->summary(bob, alice)->last_read_id, "");
}

TYPED_TEST_P(ReadStateContract, MarkReadPastTheNewestMessageIsClamped) {
  const auto& [alice, bob] = std::tie(this->alice_, this->bob_);
  this->send(bob, alice, "one");
  const Message newest = this->send(bob, alice, "two");
  const std::string future = make_object_id(0xfffffff0u, 1);
  auto r = this->store_->mark_read(this->ab_, alice, future);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r.value(), newest.id);
  EXPECT_EQ(this->unread(alice, bob), 0u);
  // Messages arriving later still count: the bogus position did not hide them.
  this->send(bob, alice, "three");
  EXPECT_EQ(this->unread(alice, bob), 1u);
}

TYPED_TEST_P(ReadStateContract, MarkReadNeedsAMember) {
  const auto& [alice, bob, carol] = std::tie(this->alice_, this->bob_, this->carol_);
  const Message m = this->send(bob, alice, "hi");
  // Never exchanged a message: no conversation, no membership.
  auto none = this->store_->mark_read(direct_conversation_id(alice, carol), alice, m.id);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.code(), errc::not_found);
  // An outsider cannot move a position in someone else's conversation.
  auto outsider = this->store_->mark_read(this->ab_, carol, m.id);
  ASSERT_FALSE(outsider.ok());
  EXPECT_EQ(outsider.code(), errc::not_found);
  auto empty = this->store_->mark_read(this->ab_, alice, "");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.code(), errc::invalid_argument);
  EXPECT_EQ(this->unread(alice, bob), 1u);
  // The failures wrote nothing; a good call still works.
  EXPECT_EQ(this->store_->mark_read(this->ab_, alice, m.id).value(), m.id);
  EXPECT_EQ(this->unread(alice, bob), 0u);
}

TYPED_TEST_P(ReadStateContract, UnreadLooksAtTheNewestWindowOnly) {
  const auto& [alice, bob] = std::tie(this->alice_, this->bob_);
  auto bulk = this->send_many(bob, alice, kUnreadWindow + 5);
  EXPECT_EQ(this->unread(alice, bob), kUnreadWindow);
  EXPECT_EQ(this->summary(alice, bob)->last_message->id, bulk.back().id);
  // Alice's own messages take room in the window: a lower bound, as documented.
  this->send_many(alice, bob, 10);
  EXPECT_EQ(this->unread(alice, bob), kUnreadWindow - 10);
  // Inside the window, the count is exact again.
  ASSERT_TRUE(this->store_->mark_read(this->ab_, alice, bulk[bulk.size() - 8].id).ok());
  EXPECT_EQ(this->unread(alice, bob), 7u);
  EXPECT_EQ(this->unread(bob, alice), 10u);
}

// mark_read_many is mark_read for each, the results in their order: a failing mark (not a
// member, empty) fails alone, and two marks of one reader both apply (forward only).
TYPED_TEST_P(ReadStateContract, ManyReadPositionsAtOnceAreEachAMarkRead) {
  const auto& [alice, bob, carol] = std::tie(this->alice_, this->bob_, this->carol_);
  const Message b0 = this->send(bob, alice, "b0");
  const Message b1 = this->send(bob, alice, "b1");
  const Message a0 = this->send(alice, bob, "a0");
  const Message c0 = this->send(carol, alice, "c0");
  const std::string ac = direct_conversation_id(alice, carol);
  const std::string future = make_object_id(0xfffffff0u, 1);
  auto results = this->store_->mark_read_many({
      {this->ab_, alice, b0.id},     // forward
      {this->ab_, carol, b0.id},     // an outsider: not_found
      {ac, alice, future},           // clamped to the newest
      {this->ab_, bob, a0.id},       // the other member's own position
      {this->ab_, alice, ""},        // empty: invalid_argument
      {this->ab_, alice, b1.id},     // the same reader again, further
  });
  ASSERT_EQ(results.size(), 6u);
  ASSERT_TRUE(results[0].ok()) << results[0].err().message;
  EXPECT_EQ(results[0].value(), b0.id);
  ASSERT_FALSE(results[1].ok());
  EXPECT_EQ(results[1].code(), errc::not_found);
  ASSERT_TRUE(results[2].ok());
  EXPECT_EQ(results[2].value(), c0.id);
  ASSERT_TRUE(results[3].ok());
  EXPECT_EQ(results[3].value(), a0.id);
  ASSERT_FALSE(results[4].ok());
  EXPECT_EQ(results[4].code(), errc::invalid_argument);
  ASSERT_TRUE(results[5].ok());
  EXPECT_EQ(results[5].value(), b1.id);
  EXPECT_EQ(this->summary(alice, bob)->last_read_id, b1.id);
  EXPECT_EQ(this->unread(alice, bob), 0u);
  EXPECT_EQ(this->unread(alice, carol), 0u);
  EXPECT_EQ(this->unread(bob, alice), 0u);
  EXPECT_FALSE(this->summary(carol, bob)) << "the outsider's mark made no conversation";
  EXPECT_TRUE(this->store_->mark_read_many({}).empty());
}

REGISTER_TYPED_TEST_SUITE_P(ReadStateContract, NoConversationsMeansNoSummaries,
                            UnreadCountsOnlyThePeersMessagesPerConversation,
                            MarkReadMovesForwardOnly, MarkReadPastTheNewestMessageIsClamped,
                            MarkReadNeedsAMember, UnreadLooksAtTheNewestWindowOnly,
                            ManyReadPositionsAtOnceAreEachAMarkRead);

}  // namespace chat::store::contract
