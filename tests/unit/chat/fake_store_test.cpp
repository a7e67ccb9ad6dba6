// The fake must honour the Store contract, or the chat tests built on it prove nothing.
#include "fakes/fake_store.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/object_id.hpp"
#include "unit/store/read_state_contract.hpp"

namespace chat::fakes {
namespace {

store::User user(std::string id, std::string email, std::string name) {
  store::User u;
  u.id = std::move(id);
  u.email = std::move(email);
  u.full_name = std::move(name);
  return u;
}

store::Message message(std::string id, std::string conv, std::string client_msg_id = "") {
  store::Message m;
  m.id = std::move(id);
  m.conversation_id = std::move(conv);
  m.sender_id = "s";
  m.receiver_id = "r";
  m.text = "t";
  m.client_msg_id = std::move(client_msg_id);
  return m;
}

result<store::Appended> append(FakeStore& s, store::Message m) {
  std::optional<result<store::Appended>> got;
  s.append_message(std::move(m), [&](result<store::Appended> r) { got.emplace(std::move(r)); });
  EXPECT_TRUE(got.has_value()) << "append_message must be synchronous in the fake";
  return got ? std::move(*got) : result<store::Appended>(errc::internal);
}

TEST(FakeStore, UsersByIdEmailAndOrder) {
  FakeStore s;
  ASSERT_TRUE(s.create_user(user("1", "b@x.io", "Zed")).ok());
  ASSERT_TRUE(s.create_user(user("2", "a@x.io", "Amy")).ok());
  ASSERT_TRUE(s.create_user(user("3", "c@x.io", "Max")).ok());
  auto dup = s.create_user(user("4", "a@x.io", "Other"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.code(), errc::already_exists);
  EXPECT_EQ(dup.err().message, "User account already exists with this email");

  EXPECT_EQ(s.user_by_email("a@x.io")->id, "2");
  EXPECT_EQ(s.user_by_email("nobody@x.io").code(), errc::not_found);
  EXPECT_EQ(s.user_by_id("3")->full_name, "Max");
  EXPECT_EQ(s.user_by_id("9").code(), errc::not_found);

  auto others = s.users_except("3");
  ASSERT_TRUE(others.ok());
  ASSERT_EQ(others->size(), 2u);
  EXPECT_EQ((*others)[0].full_name, "Amy");
  EXPECT_EQ((*others)[1].full_name, "Zed");

  store::UserPatch patch;
  patch.bio = "hello";
  auto updated = s.update_user("1", patch, 42);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->bio, "hello");
  EXPECT_EQ(updated->full_name, "Zed");
  EXPECT_EQ(updated->updated_at, 42);
  EXPECT_EQ(s.update_user("9", patch, 1).code(), errc::not_found);

  EXPECT_TRUE(s.set_password_hash("1", "$argon2id$x").ok());
  EXPECT_EQ(s.user_by_id("1")->password_hash, "$argon2id$x");
  EXPECT_EQ(s.set_password_hash("9", "h").code(), errc::not_found);

  EXPECT_TRUE(s.delete_user("1"));
  EXPECT_FALSE(s.delete_user("1"));
  EXPECT_EQ(s.user_by_id("1").code(), errc::not_found);
}

TEST(FakeStore, AppendIsIdempotentPerSenderAndKey) {
  FakeStore s;
  auto a = append(s, message("a1", "c", "k"));
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->duplicate);
  auto b = append(s, message("a2", "c", "k"));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->duplicate);
  EXPECT_EQ(b->message.id, "a1");
  auto other_sender = message("a3", "c", "k");
  other_sender.sender_id = "s2";
  EXPECT_FALSE(append(s, other_sender)->duplicate);
  EXPECT_EQ(s.message_count(), 2u);

  s.fail_next_append();
  auto failed = append(s, message("a4", "c"));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), errc::unavailable);
  EXPECT_TRUE(append(s, message("a5", "c")).ok());
  EXPECT_EQ(s.message_count(), 3u);
}

TEST(FakeStore, PagesNewestFirstReturnedOldestFirst) {
  FakeStore s;
  std::vector<std::string> ids;
  for (std::uint32_t i = 0; i < 5; ++i) {
    ids.push_back(make_object_id(1'700'000'000 + i, i));
    ASSERT_TRUE(append(s, message(ids.back(), "c")).ok());
  }
  ASSERT_TRUE(append(s, message(make_object_id(1'700'000'100, 9), "other")).ok());

  auto p1 = s.conversation_page("c", "", 2);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->messages.size(), 2u);
  EXPECT_EQ(p1->messages[0].id, ids[3]);
  EXPECT_EQ(p1->messages[1].id, ids[4]);
  EXPECT_TRUE(p1->has_more);

  auto p2 = s.conversation_page("c", ids[3], 3);
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2->messages.size(), 3u);
  EXPECT_EQ(p2->messages[0].id, ids[0]);
  EXPECT_EQ(p2->messages[2].id, ids[2]);
  EXPECT_FALSE(p2->has_more);

  EXPECT_TRUE(s.conversation_page("none", "", 10)->messages.empty());
  EXPECT_TRUE(s.conversation_page("c", "", 0)->messages.empty());
  EXPECT_TRUE(s.conversation_page("c", "", 0)->has_more);
}

TEST(FakeStore, Media) {
  FakeStore s;
  EXPECT_EQ(s.media("x.png").code(), errc::not_found);
  ASSERT_TRUE(s.put_media("x.png", "image/png", std::string("\x89PNG\0", 5)).ok());
  auto m = s.media("x.png");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->content_type, "image/png");
  EXPECT_EQ(m->bytes, std::string("\x89PNG\0", 5));
  EXPECT_TRUE(s.ping().ok());
}

}  // namespace
}  // namespace chat::fakes

namespace chat::store::contract {

struct FakeBackend {
  std::unique_ptr<Store> open() { return std::make_unique<fakes::FakeStore>(); }
};
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, ReadStateContract, FakeBackend);

}  // namespace chat::store::contract
