#include "chat/chat_service.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/object_id.hpp"
#include "core/time.hpp"
#include "fakes/fake_store.hpp"
#include "test_images.hpp"

namespace chat {
namespace {

using fakes::FakeStore;
using test::data_url;

constexpr const char* kSecret = "unit-test-secret-0123456789abcdef";

/// tests/fixtures/auth/fixtures.json → bcrypt section: a hash made by the Node server's library.
struct BcryptFixture {
  std::string password, wrong_password, hash;
};

std::optional<BcryptFixture> bcrypt_fixture() {
  const char* dir = std::getenv("CHAT_FIXTURES");
  std::string path = std::string(dir ? dir : CHAT_SOURCE_FIXTURES) + "/auth/fixtures.json";
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  boost::system::error_code ec;
  auto v = boost::json::parse(ss.str(), ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto* b = v.as_object().if_contains("bcrypt");
  if (!b || !b->is_object()) return std::nullopt;
  auto str = [&](const char* key) -> std::string {
    const auto* s = b->as_object().if_contains(key);
    return s && s->is_string() ? std::string(s->as_string()) : std::string();
  };
  BcryptFixture out{str("password"), str("wrong_password"), str("hash_2b")};
  if (out.password.empty() || out.hash.empty()) return std::nullopt;
  return out;
}

bool has_error(const Validation& v, std::string_view field) {
  for (const auto& [f, msgs] : v.errors.fields())
    if (f == field) return true;
  return false;
}

std::string fields_of(const Validation& v) {
  std::string out;
  for (const auto& [f, msgs] : v.errors.fields()) {
    out += f + ": ";
    for (const auto& m : msgs) out += m + "; ";
  }
  return out.empty() ? "(none)" : out;
}

class ChatServiceTest : public ::testing::Test {
 protected:
  ChatServiceTest() : jwt_(kSecret, 3600), service_(store_, jwt_, presence_, limits()) {}

  static ServiceLimits limits() {
    ServiceLimits l;
    l.max_text = 10;
    l.upload_limit = 4096;
    return l;
  }

  SignupInput signup_input(std::string email, std::string name = "Alice Example",
                           std::string password = "secret123") {
    SignupInput in;
    in.email = std::move(email);
    in.password = std::move(password);
    in.full_name = std::move(name);
    return in;
  }

  /// Signs up a user (validation must pass) and returns it.
  store::User make_user(std::string email, std::string name, std::string password = "secret123") {
    auto in = signup_input(std::move(email), std::move(name), std::move(password));
    auto v = service_.validate_signup(in);
    EXPECT_TRUE(v.ok()) << fields_of(v);
    auto r = service_.signup(in);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return r.ok() ? r->user : store::User{};
  }

  /// A user inserted straight into the store (no password hashing: fast).
  store::User insert_user(std::string name, std::string hash = "$argon2id$unused") {
    store::User u;
    u.id = new_object_id();
    u.email = name + "@example.com";
    u.full_name = name;
    u.password_hash = std::move(hash);
    u.created_at = u.updated_at = now_ms();
    auto r = store_.create_user(u);
    EXPECT_TRUE(r.ok());
    return u;
  }

  /// send() with a synchronous store: the result is there when it returns.
  result<store::Appended> send(SendInput in) {
    std::optional<result<store::Appended>> got;
    int calls = 0;
    service_.send(std::move(in), [&](result<store::Appended> r) {
      ++calls;
      got.emplace(std::move(r));
    });
    EXPECT_EQ(calls, 1) << "done must run exactly once";
    if (!got) return error{errc::internal, "done was not called"};
    return std::move(*got);
  }

  SendInput text_message(const store::User& from, const store::User& to, std::string text,
                         std::string client_msg_id = "") {
    SendInput in;
    in.sender_id = from.id;
    in.receiver_id = to.id;
    in.text = std::move(text);
    in.client_msg_id = std::move(client_msg_id);
    return in;
  }

  FakeStore store_;
  auth::JwtCodec jwt_;
  LocalPresence presence_;
  ChatService service_;
};

// ---- validate_signup ----

TEST_F(ChatServiceTest, ValidateSignupNormalisesInput) {
  auto in = signup_input("  Alice@Example.COM ", "  Alice Example \t");
  auto v = service_.validate_signup(in);
  EXPECT_TRUE(v.ok()) << fields_of(v);
  EXPECT_EQ(in.email, "alice@example.com");
  EXPECT_EQ(in.full_name, "Alice Example");
}

TEST_F(ChatServiceTest, ValidateSignupReportsEachBadField) {
  SignupInput in;
  in.email = "not-an-email";
  in.password = "12345";
  in.full_name = "   ";
  auto v = service_.validate_signup(in);
  EXPECT_FALSE(v.ok());
  EXPECT_FALSE(v.too_large);
  EXPECT_TRUE(has_error(v, "email")) << fields_of(v);
  EXPECT_TRUE(has_error(v, "password")) << fields_of(v);
  EXPECT_TRUE(has_error(v, "full_name")) << fields_of(v);
  EXPECT_FALSE(has_error(v, "profile_picture"));
  EXPECT_EQ(v.errors.fields().size(), 3u) << fields_of(v);

  // Only the bad field is reported.
  auto only_pw = signup_input("bob@example.com", "Bob", "short");
  auto v2 = service_.validate_signup(only_pw);
  EXPECT_TRUE(has_error(v2, "password"));
  EXPECT_EQ(v2.errors.fields().size(), 1u) << fields_of(v2);
}

TEST_F(ChatServiceTest, PasswordLengthCountsCharacters) {
  auto six = signup_input("a@example.com", "A", "123456");
  EXPECT_TRUE(service_.validate_signup(six).ok());
  // Five characters in ten bytes: too short. Six in twelve: fine.
  auto five_wide = signup_input("a@example.com", "A", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
  EXPECT_TRUE(has_error(service_.validate_signup(five_wide), "password"));
  auto six_wide =
      signup_input("a@example.com", "A", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
  EXPECT_TRUE(service_.validate_signup(six_wide).ok());
  auto huge = signup_input("a@example.com", "A", std::string(2000, 'p'));
  EXPECT_TRUE(has_error(service_.validate_signup(huge), "password"));
  auto invalid = signup_input("a@example.com", "A", "\xff\xff\xff\xff\xff\xff\xff");
  EXPECT_TRUE(has_error(service_.validate_signup(invalid), "password"));
}

TEST_F(ChatServiceTest, NameAndBioLimits) {
  auto long_name = signup_input("a@example.com", std::string(101, 'n'));
  EXPECT_TRUE(has_error(service_.validate_signup(long_name), "full_name"));
  auto max_name = signup_input("a@example.com", std::string(100, 'n'));
  EXPECT_TRUE(service_.validate_signup(max_name).ok());
  auto bio = signup_input("a@example.com", "A");
  bio.bio = std::string(501, 'b');
  EXPECT_TRUE(has_error(service_.validate_signup(bio), "bio"));
}

TEST_F(ChatServiceTest, ValidateSignupDecodesADataUrlPicture) {
  auto in = signup_input("a@example.com", "A");
  in.profile_picture = data_url("image/png", test::tiny_png());
  auto v = service_.validate_signup(in);
  EXPECT_TRUE(v.ok()) << fields_of(v);
  ASSERT_TRUE(in.picture.has_value());
  EXPECT_EQ(in.picture->content_type, "image/png");
  EXPECT_EQ(in.picture->bytes, test::tiny_png());
  EXPECT_EQ(in.profile_picture, "");  // replaced by the stored media URL at signup
}

TEST_F(ChatServiceTest, ValidateSignupKeepsHttpPictureUrls) {
  for (const char* url : {"https://res.cloudinary.com/demo/image/upload/a.png",
                          "http://example.com/avatar.jpg", "/media/65f1a2b3c4d5e6f708192a3b.png"}) {
    auto in = signup_input("a@example.com", "A");
    in.profile_picture = url;
    auto v = service_.validate_signup(in);
    EXPECT_TRUE(v.ok()) << url << ": " << fields_of(v);
    EXPECT_EQ(in.profile_picture, url);
    EXPECT_FALSE(in.picture.has_value());
  }
}

TEST_F(ChatServiceTest, ValidateSignupRejectsOtherPictureValues) {
  for (std::string url : {std::string("javascript:alert(1)"), std::string("ftp://x.example/a.png"),
                          std::string("https://x.example/a b.png"),
                          std::string("https://x.example/\"onerror=\"x"),
                          "https://x.example/" + std::string(3000, 'a'),
                          data_url("image/svg+xml", "<svg/>"),
                          data_url("image/png", test::tiny_jpeg())}) {
    auto in = signup_input("a@example.com", "A");
    in.profile_picture = url;
    auto v = service_.validate_signup(in);
    EXPECT_TRUE(has_error(v, "profile_picture")) << url.substr(0, 60);
    EXPECT_FALSE(in.picture.has_value());
  }
}

TEST_F(ChatServiceTest, ValidateSignupOversizePictureIsTooLarge) {
  auto in = signup_input("a@example.com", "A");
  in.profile_picture = data_url("image/png", test::png_of_size(limits().upload_limit + 1));
  auto v = service_.validate_signup(in);
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(v.too_large);
  EXPECT_TRUE(v.errors.empty()) << fields_of(v);
}

// ---- signup / login ----

TEST_F(ChatServiceTest, SignupThenLogin) {
  auto in = signup_input("Alice@Example.com", "Alice");
  ASSERT_TRUE(service_.validate_signup(in).ok());
  auto up = service_.signup(in);
  ASSERT_TRUE(up.ok()) << up.err().message;
  EXPECT_TRUE(is_object_id(up->user.id));
  EXPECT_EQ(up->user.email, "alice@example.com");
  EXPECT_EQ(up->user.full_name, "Alice");
  EXPECT_TRUE(up->user.password_hash.starts_with("$argon2id$")) << up->user.password_hash;
  EXPECT_EQ(up->user.password_hash.find("secret123"), std::string::npos);
  EXPECT_GT(up->user.created_at, 0);
  auto claims = jwt_.verify(up->token, now_ms() / 1000);
  ASSERT_TRUE(claims.ok()) << claims.err().message;
  EXPECT_EQ(claims->user_id, up->user.id);
  EXPECT_EQ(store_.user_count(), 1u);

  // Login normalises the email as signup did.
  auto in_again = service_.login("  ALICE@example.com ", "secret123");
  ASSERT_TRUE(in_again.ok()) << in_again.err().message;
  EXPECT_EQ(in_again->user.id, up->user.id);
  auto claims2 = jwt_.verify(in_again->token, now_ms() / 1000);
  ASSERT_TRUE(claims2.ok());
  EXPECT_EQ(claims2->user_id, up->user.id);
}

TEST_F(ChatServiceTest, LoginFailuresAreIndistinguishable) {
  make_user("alice@example.com", "Alice");
  auto wrong = service_.login("alice@example.com", "secret124");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.code(), errc::unauthorized);
  EXPECT_EQ(wrong.err().message, "Invalid Credentials");

  auto unknown = service_.login("nobody@example.com", "secret123");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.code(), errc::unauthorized);
  EXPECT_EQ(unknown.err().message, "Invalid Credentials");

  auto empty = service_.login("", "");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.code(), errc::unauthorized);
}

TEST_F(ChatServiceTest, DuplicateEmailIsAlreadyExists) {
  make_user("alice@example.com", "Alice");
  auto in = signup_input(" ALICE@example.com", "Other Alice", "another1");
  ASSERT_TRUE(service_.validate_signup(in).ok());
  auto r = service_.signup(in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::already_exists);
  EXPECT_EQ(r.err().message, "User account already exists with this email");
  EXPECT_EQ(store_.user_count(), 1u);
  // The first account is untouched.
  EXPECT_TRUE(service_.login("alice@example.com", "secret123").ok());
  EXPECT_FALSE(service_.login("alice@example.com", "another1").ok());
}

TEST_F(ChatServiceTest, SignupStoresADataUrlPictureAsMedia) {
  auto in = signup_input("pic@example.com", "Pic");
  in.profile_picture = data_url("image/gif", test::tiny_gif());
  ASSERT_TRUE(service_.validate_signup(in).ok());
  auto r = service_.signup(in);
  ASSERT_TRUE(r.ok()) << r.err().message;
  const std::string& url = r->user.profile_picture;
  ASSERT_TRUE(url.starts_with("/media/")) << url;
  EXPECT_TRUE(url.ends_with(".gif")) << url;
  auto media = service_.media(url.substr(7));
  ASSERT_TRUE(media.ok()) << media.err().message;
  EXPECT_EQ(media->content_type, "image/gif");
  EXPECT_EQ(media->bytes, test::tiny_gif());
}

TEST_F(ChatServiceTest, LegacyBcryptHashLogsInAndIsUpgraded) {
  auto fx = bcrypt_fixture();
  ASSERT_TRUE(fx.has_value()) << "tests/fixtures/auth/fixtures.json (bcrypt section) is missing";
  ASSERT_TRUE(fx->hash.starts_with("$2b$")) << fx->hash;
  store::User u = insert_user("legacy", fx->hash);

  // A wrong password neither logs in nor touches the hash.
  auto wrong = service_.login(u.email, fx->wrong_password);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.err().message, "Invalid Credentials");
  EXPECT_EQ(store_.user_by_id(u.id)->password_hash, fx->hash);

  auto ok = service_.login(u.email, fx->password);
  ASSERT_TRUE(ok.ok()) << ok.err().message;
  EXPECT_EQ(ok->user.id, u.id);
  const std::string stored = store_.user_by_id(u.id)->password_hash;
  EXPECT_TRUE(stored.starts_with("$argon2id$")) << stored;
  EXPECT_EQ(ok->user.password_hash, stored);

  // The upgraded hash still accepts the same password, and only it.
  EXPECT_TRUE(service_.login(u.email, fx->password).ok());
  EXPECT_FALSE(service_.login(u.email, fx->wrong_password).ok());
  EXPECT_EQ(store_.user_by_id(u.id)->password_hash, stored);  // no second rehash
}

// ---- authenticate ----

TEST_F(ChatServiceTest, AuthenticateValidToken) {
  store::User u = insert_user("alice");
  auto r = service_.authenticate(jwt_.sign(u.id, now_ms() / 1000));
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->id, u.id);
  EXPECT_EQ(r->email, u.email);
}

TEST_F(ChatServiceTest, AuthenticateRejectsBadTokens) {
  store::User u = insert_user("alice");
  const std::int64_t now = now_ms() / 1000;
  auth::JwtCodec other("another-secret-another-secret-xx", 3600);
  for (const std::string& bad :
       {std::string(""), std::string("garbage"), std::string("a.b.c"),
        other.sign(u.id, now),              // wrong secret
        jwt_.sign(u.id, now - 2 * 3600),    // expired
        jwt_.sign("not-an-object-id", now)}) {
    auto r = service_.authenticate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.code(), errc::unauthorized) << bad;
  }
}

TEST_F(ChatServiceTest, AuthenticateDeletedUserIsNotFound) {
  store::User u = insert_user("ghost");
  const std::string token = jwt_.sign(u.id, now_ms() / 1000);
  ASSERT_TRUE(service_.authenticate(token).ok());
  ASSERT_TRUE(store_.delete_user(u.id));
  auto r = service_.authenticate(token);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::not_found);
  EXPECT_EQ(r.err().message, "User not found");
}

TEST_F(ChatServiceTest, AuthenticateKnownSkipsTheStoreOnlyForUsersSeenBefore) {
  store::User u = insert_user("alice");
  const std::string token = jwt_.sign(u.id, now_ms() / 1000);
  auto first = service_.authenticate_known(token);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value()) << "never seen: must be looked up";
  ASSERT_TRUE(service_.authenticate(token).ok());
  auto again = service_.authenticate_known(token);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ(**again, u.id);
  // A bad token is refused at once, known user or not.
  auth::JwtCodec other("another-secret-another-secret-xx", 3600);
  auto bad = service_.authenticate_known(other.sign(u.id, now_ms() / 1000));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), errc::unauthorized);
  auto expired = service_.authenticate_known(jwt_.sign(u.id, now_ms() / 1000 - 2 * 3600));
  EXPECT_FALSE(expired.ok());
}

// ---- validate_send ----

TEST_F(ChatServiceTest, ValidateSendAcceptsTextAndImages) {
  const std::string me = new_object_id(), peer = new_object_id();
  SendInput text{me, peer, "hello", "", "c-1", std::nullopt};
  auto v = service_.validate_send(text);
  EXPECT_TRUE(v.ok()) << fields_of(v);

  SendInput image{me, peer, "", data_url("image/webp", test::tiny_webp()), "", std::nullopt};
  auto vi = service_.validate_send(image);
  EXPECT_TRUE(vi.ok()) << fields_of(vi);
  ASSERT_TRUE(image.picture.has_value());
  EXPECT_EQ(image.picture->content_type, "image/webp");
  EXPECT_EQ(image.image, "");  // the data URL is consumed
}

TEST_F(ChatServiceTest, ValidateSendErrors) {
  const std::string me = new_object_id(), peer = new_object_id();
  struct Case {
    const char* what;
    SendInput in;
    const char* field;
  };
  std::vector<Case> cases = {
      {"self", {me, me, "hi", "", "", std::nullopt}, "id"},
      {"bad id", {me, "12345", "hi", "", "", std::nullopt}, "id"},
      {"empty id", {me, "", "hi", "", "", std::nullopt}, "id"},
      {"empty", {me, peer, "", "", "", std::nullopt}, "text"},
      {"blank", {me, peer, " \n\t ", "", "", std::nullopt}, "text"},
      {"too long", {me, peer, "12345678901", "", "", std::nullopt}, "text"},
      {"invalid utf-8", {me, peer, "ab\xff", "", "", std::nullopt}, "text"},
      {"bad image", {me, peer, "", "javascript:alert(1)", "", std::nullopt}, "image"},
      {"svg image", {me, peer, "x", data_url("image/svg+xml", "<svg/>"), "", std::nullopt}, "image"},
      {"lying image", {me, peer, "", data_url("image/png", test::tiny_gif()), "", std::nullopt},
       "image"},
      {"long clientMsgId", {me, peer, "hi", "", std::string(65, 'c'), std::nullopt}, "clientMsgId"},
  };
  for (auto& c : cases) {
    auto v = service_.validate_send(c.in);
    EXPECT_FALSE(v.ok()) << c.what;
    EXPECT_TRUE(has_error(v, c.field)) << c.what << ": " << fields_of(v);
    EXPECT_FALSE(c.in.picture.has_value()) << c.what;
  }
}

TEST_F(ChatServiceTest, TextLimitCountsCodePoints) {
  const std::string me = new_object_id(), peer = new_object_id();
  std::string ten_wide, eleven_wide;
  for (int i = 0; i < 10; ++i) ten_wide += "\xf0\x9f\x98\x80";  // 😀, 4 bytes each
  eleven_wide = ten_wide + "\xc3\xa9";
  SendInput ok{me, peer, ten_wide, "", "", std::nullopt};
  EXPECT_TRUE(service_.validate_send(ok).ok()) << "40 bytes but 10 characters";
  SendInput too_long{me, peer, eleven_wide, "", "", std::nullopt};
  EXPECT_TRUE(has_error(service_.validate_send(too_long), "text"));
}

TEST_F(ChatServiceTest, ValidateSendOversizeImageIsTooLarge) {
  const std::string me = new_object_id(), peer = new_object_id();
  SendInput in{me, peer, "",
               data_url("image/png", test::png_of_size(limits().upload_limit + 1)), "",
               std::nullopt};
  auto v = service_.validate_send(in);
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(v.too_large);
  EXPECT_FALSE(has_error(v, "text")) << "no 'needs text or an image' on top of 413";
}

// ---- send ----

TEST_F(ChatServiceTest, SendStoresNotifiesAndCompletes) {
  store::User alice = insert_user("alice"), bob = insert_user("bob");
  std::vector<store::Message> heard;
  std::vector<std::string> order;
  std::string heard_origin;
  service_.on_message([&](const store::Message& m, std::string_view origin) {
    heard.push_back(m);
    heard_origin = origin;
    order.push_back("listener");
  });

  std::optional<result<store::Appended>> got;
  auto in = text_message(alice, bob, "hello bob", "client-1");
  in.origin = "socket-42";
  ASSERT_TRUE(service_.validate_send(in).ok());
  service_.send(std::move(in), [&](result<store::Appended> r) {
    order.push_back("done");
    got.emplace(std::move(r));
  });
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->err().message;
  const store::Message& m = got->value().message;
  EXPECT_FALSE(got->value().duplicate);
  EXPECT_EQ(heard_origin, "socket-42");  // listeners learn who sent it (to skip that socket)
  EXPECT_TRUE(is_object_id(m.id));
  EXPECT_EQ(m.sender_id, alice.id);
  EXPECT_EQ(m.receiver_id, bob.id);
  EXPECT_EQ(m.text, "hello bob");
  EXPECT_EQ(m.image, "");
  EXPECT_EQ(m.client_msg_id, "client-1");
  EXPECT_EQ(m.conversation_id, store::direct_conversation_id(alice.id, bob.id));
  EXPECT_GT(m.created_at, 0);

  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard[0].id, m.id);
  EXPECT_EQ(heard[0].text, "hello bob");
  EXPECT_EQ(order, (std::vector<std::string>{"listener", "done"}));

  ASSERT_EQ(store_.message_count(), 1u);
  EXPECT_EQ(store_.messages()[0].id, m.id);
}

TEST_F(ChatServiceTest, EveryListenerHearsEachMessage) {
  store::User alice = insert_user("alice"), bob = insert_user("bob");
  int a = 0, b = 0;
  service_.on_message([&](const store::Message&, std::string_view) { ++a; });
  service_.on_message([&](const store::Message&, std::string_view) { ++b; });
  ASSERT_TRUE(send(text_message(alice, bob, "1")).ok());
  ASSERT_TRUE(send(text_message(bob, alice, "2")).ok());
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 2);
}

TEST_F(ChatServiceTest, SameClientMsgIdIsADuplicate) {
  store::User alice = insert_user("alice"), bob = insert_user("bob");
  int heard = 0;
  service_.on_message([&](const store::Message&, std::string_view) { ++heard; });

  auto first = send(text_message(alice, bob, "once", "dup-1"));
  ASSERT_TRUE(first.ok()) << first.err().message;
  EXPECT_FALSE(first->duplicate);

  auto second = send(text_message(alice, bob, "once (retry)", "dup-1"));
  ASSERT_TRUE(second.ok()) << second.err().message;
  EXPECT_TRUE(second->duplicate);
  EXPECT_EQ(second->message.id, first->message.id);
  EXPECT_EQ(second->message.text, "once");  // the stored one
  EXPECT_EQ(heard, 1) << "a retried message must not be delivered twice";
  EXPECT_EQ(store_.message_count(), 1u);

  // The key is per sender, and messages without one are never duplicates.
  ASSERT_TRUE(send(text_message(bob, alice, "mine", "dup-1")).ok());
  ASSERT_TRUE(send(text_message(alice, bob, "no key")).ok());
  ASSERT_TRUE(send(text_message(alice, bob, "no key")).ok());
  EXPECT_EQ(heard, 4);
  EXPECT_EQ(store_.message_count(), 4u);
}

TEST_F(ChatServiceTest, SendToUnknownReceiverIsNotFound) {
  store::User alice = insert_user("alice");
  int heard = 0;
  service_.on_message([&](const store::Message&, std::string_view) { ++heard; });
  SendInput in{alice.id, new_object_id(), "anyone there?", "", "", std::nullopt};
  auto r = send(std::move(in));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::not_found);
  EXPECT_EQ(r.err().message, "User not found");
  EXPECT_EQ(heard, 0);
  EXPECT_EQ(store_.message_count(), 0u);
}

TEST_F(ChatServiceTest, StoreFailureReachesDoneWithoutNotifying) {
  store::User alice = insert_user("alice"), bob = insert_user("bob");
  int heard = 0;
  service_.on_message([&](const store::Message&, std::string_view) { ++heard; });
  store_.fail_next_append();
  auto r = send(text_message(alice, bob, "lost"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::unavailable);
  EXPECT_EQ(heard, 0);
  EXPECT_EQ(store_.message_count(), 0u);
  // Only the next one failed.
  EXPECT_TRUE(send(text_message(alice, bob, "kept")).ok());
  EXPECT_EQ(heard, 1);
}

TEST_F(ChatServiceTest, SendWithImageStoresMedia) {
  store::User alice = insert_user("alice"), bob = insert_user("bob");
  SendInput in{alice.id, bob.id, "look", data_url("image/jpeg", test::tiny_jpeg()), "",
               std::nullopt};
  ASSERT_TRUE(service_.validate_send(in).ok());
  auto r = send(std::move(in));
  ASSERT_TRUE(r.ok()) << r.err().message;
  const std::string& url = r->message.image;
  ASSERT_TRUE(url.starts_with("/media/")) << url;
  EXPECT_TRUE(url.ends_with(".jpg")) << url;
  auto media = service_.media(url.substr(7));
  ASSERT_TRUE(media.ok());
  EXPECT_EQ(media->content_type, "image/jpeg");
  EXPECT_EQ(media->bytes, test::tiny_jpeg());
}

// ---- history ----

TEST_F(ChatServiceTest, HistoryOfAnUnknownPeerIsNotFound) {
  store::User alice = insert_user("alice");
  auto r = service_.history(alice.id, new_object_id(), "", 50);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), errc::not_found);
  EXPECT_EQ(r.err().message, "User not found");
}

TEST_F(ChatServiceTest, HistoryHoldsBothDirectionsOldestFirst) {
  store::User alice = insert_user("alice"), bob = insert_user("bob"), carol = insert_user("carol");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = send(i % 2 ? text_message(bob, alice, "m" + std::to_string(i))
                        : text_message(alice, bob, "m" + std::to_string(i)));
    ASSERT_TRUE(r.ok());
    ids.push_back(r->message.id);
  }
  ASSERT_TRUE(send(text_message(alice, carol, "other conversation")).ok());

  auto page = service_.history(alice.id, bob.id, "", 50);
  ASSERT_TRUE(page.ok()) << page.err().message;
  ASSERT_EQ(page->page.messages.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(page->page.messages[i].id, ids[i]);
  EXPECT_FALSE(page->page.has_more);

  // Bob sees the same conversation.
  auto bobs = service_.history(bob.id, alice.id, "", 50);
  ASSERT_TRUE(bobs.ok());
  EXPECT_EQ(bobs->page.messages.size(), 5u);

  // Pages: newest first, each oldest → newest.
  auto newest = service_.history(alice.id, bob.id, "", 2);
  ASSERT_TRUE(newest.ok());
  ASSERT_EQ(newest->page.messages.size(), 2u);
  EXPECT_EQ(newest->page.messages[0].id, ids[3]);
  EXPECT_EQ(newest->page.messages[1].id, ids[4]);
  EXPECT_TRUE(newest->page.has_more);
  auto older = service_.history(alice.id, bob.id, ids[3], 2);
  ASSERT_TRUE(older.ok());
  ASSERT_EQ(older->page.messages.size(), 2u);
  EXPECT_EQ(older->page.messages[0].id, ids[1]);
  EXPECT_EQ(older->page.messages[1].id, ids[2]);
  EXPECT_TRUE(older->page.has_more);
  auto oldest = service_.history(alice.id, bob.id, ids[1], 2);
  ASSERT_TRUE(oldest.ok());
  ASSERT_EQ(oldest->page.messages.size(), 1u);
  EXPECT_EQ(oldest->page.messages[0].id, ids[0]);
  EXPECT_FALSE(oldest->page.has_more);

  // How far the peer has read travels with the page (read ticks survive a reload).
  EXPECT_EQ(page->peer_read_up_to, "");
  ASSERT_TRUE(service_.mark_read(bob.id, alice.id, ids[2]).ok());
  auto after_read = service_.history(alice.id, bob.id, "", 50);
  ASSERT_TRUE(after_read.ok());
  EXPECT_EQ(after_read->peer_read_up_to, ids[2]);
  auto bob_view = service_.history(bob.id, alice.id, "", 50);
  ASSERT_TRUE(bob_view.ok());
  EXPECT_EQ(bob_view->peer_read_up_to, "");  // Alice has read nothing
}

// ---- users ----

TEST_F(ChatServiceTest, UsersExcludesSelfAndShowsPresence) {
  store::User carol = insert_user("carol"), alice = insert_user("alice"),
              bob = insert_user("bob");
  auto online_of = [&](const std::string& id) -> std::optional<bool> {
    auto r = service_.users(alice.id);
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return std::nullopt;
    for (const auto& v : r.value())
      if (v.user.id == id) return v.online;
    return std::nullopt;
  };

  auto list = service_.users(alice.id);
  ASSERT_TRUE(list.ok()) << list.err().message;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].user.full_name, "bob");
  EXPECT_EQ((*list)[1].user.full_name, "carol");
  for (const auto& v : list.value()) {
    EXPECT_NE(v.user.id, alice.id);
    EXPECT_FALSE(v.online);
  }

  // Two connections (two tabs) need two disconnects.
  EXPECT_TRUE(presence_.connect(bob.id));
  EXPECT_FALSE(presence_.connect(bob.id));
  EXPECT_EQ(online_of(bob.id), true);
  EXPECT_EQ(online_of(carol.id), false);
  EXPECT_FALSE(presence_.disconnect(bob.id));
  EXPECT_EQ(online_of(bob.id), true);
  EXPECT_TRUE(presence_.disconnect(bob.id));
  EXPECT_EQ(online_of(bob.id), false);
  EXPECT_FALSE(presence_.disconnect(bob.id));  // extra disconnects are harmless
  EXPECT_EQ(online_of(bob.id), false);
  EXPECT_EQ(presence_.online_count(), 0u);

  // The caller being online does not put them in their own list.
  presence_.connect(alice.id);
  auto again = service_.users(alice.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->size(), 2u);
}

TEST_F(ChatServiceTest, UsersCarryUnreadCountsAndLastMessages) {
  store::User alice = insert_user("alice"), bob = insert_user("bob"), carol = insert_user("carol"),
              dave = insert_user("dave");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(send(text_message(bob, alice, "b" + std::to_string(i))).ok());
  auto from_carol = send(text_message(carol, alice, "c"));
  auto to_bob = send(text_message(alice, bob, "a"));
  ASSERT_TRUE(from_carol.ok());
  ASSERT_TRUE(to_bob.ok());

  auto view_of = [&](const store::User& viewer, const store::User& other) -> UserView {
    auto r = service_.users(viewer.id);
    EXPECT_TRUE(r.ok());
    if (r.ok())
      for (auto& v : r.value())
        if (v.user.id == other.id) return v;
    ADD_FAILURE() << other.full_name << " not listed for " << viewer.full_name;
    return {};
  };
  UserView b = view_of(alice, bob);
  EXPECT_EQ(b.unread, 3u) << "alice's own message is not unread";
  ASSERT_TRUE(b.last_message);
  EXPECT_EQ(b.last_message->id, to_bob->message.id);
  EXPECT_EQ(b.last_message->text, "a");
  UserView c = view_of(alice, carol);
  EXPECT_EQ(c.unread, 1u);
  ASSERT_TRUE(c.last_message);
  EXPECT_EQ(c.last_message->id, from_carol->message.id);
  UserView d = view_of(alice, dave);
  EXPECT_EQ(d.unread, 0u);
  EXPECT_FALSE(d.last_message);
  // Per viewer: bob has one unread (alice's), nothing with carol.
  EXPECT_EQ(view_of(bob, alice).unread, 1u);
  EXPECT_EQ(view_of(bob, alice).last_message->id, to_bob->message.id);
  EXPECT_EQ(view_of(bob, carol).unread, 0u);
  EXPECT_FALSE(view_of(bob, carol).last_message);
  // The list keeps its order and fields.
  auto list = service_.users(alice.id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].user.full_name, "bob");
  EXPECT_EQ((*list)[1].user.full_name, "carol");
  EXPECT_EQ((*list)[2].user.full_name, "dave");
  EXPECT_EQ((*list)[0].user.email, "bob@example.com");
}

TEST_F(ChatServiceTest, MarkReadValidatesThePeerAndTheMessageId) {
  store::User alice = insert_user("alice"), bob = insert_user("bob"), carol = insert_user("carol");
  auto m = send(text_message(bob, alice, "hi"));
  ASSERT_TRUE(m.ok());
  const std::string id = m->message.id;

  auto code_of = [&](std::string_view peer, std::string_view up_to) {
    auto r = service_.mark_read(alice.id, peer, up_to);
    return r.ok() ? std::optional<errc>() : std::optional<errc>(r.code());
  };
  for (std::string_view bad :
       {"", "not-an-id", "zzzzzzzzzzzzzzzzzzzzzzzz", "65f0a1b2c3d4e5f6012345"})
    EXPECT_EQ(code_of(bad, id), errc::invalid_argument) << bad;
  for (std::string_view bad : {"", "x", "65f0a1b2c3d4e5f60123456g", "65f0a1b2c3d4e5f6012345678"})
    EXPECT_EQ(code_of(bob.id, bad), errc::invalid_argument) << bad;
  EXPECT_EQ(code_of(alice.id, id), errc::invalid_argument) << "own conversation";

  auto unknown = service_.mark_read(alice.id, new_object_id(), id);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.code(), errc::not_found);
  EXPECT_EQ(unknown.err().message, "User not found");
  auto never = service_.mark_read(alice.id, carol.id, id);
  ASSERT_FALSE(never.ok());
  EXPECT_EQ(never.code(), errc::not_found);
  EXPECT_EQ(never.err().message, "Conversation not found");
  // Nothing moved.
  EXPECT_EQ(service_.users(alice.id)->front().unread, 1u);
}

// A peer the service has seen (here: as the receiver of a message) is not looked up in the store
// again: in cluster mode every lookup is a database round trip. Deleting users from the store,
// which the product never does, shows it: the marks still reach the store.
TEST_F(ChatServiceTest, MarkReadLooksUpAPeerOnlyUntilTheServiceKnowsIt) {
  store::User alice = insert_user("alice"), bob = insert_user("bob"), carol = insert_user("carol");
  auto to_bob = send(text_message(alice, bob, "hi"));  // bob known from now on
  ASSERT_TRUE(to_bob.ok());
  auto to_alice = send(text_message(bob, alice, "hey"));  // alice too
  ASSERT_TRUE(to_alice.ok());
  auto from_carol = send(text_message(carol, alice, "yo"));  // carol only sent: not known
  ASSERT_TRUE(from_carol.ok());
  for (const auto& u : {alice, bob, carol}) ASSERT_TRUE(store_.delete_user(u.id));
  auto r = service_.mark_read_many({{alice.id, bob.id, to_alice->message.id},
                                    {bob.id, alice.id, to_bob->message.id},
                                    {alice.id, carol.id, from_carol->message.id}});
  ASSERT_EQ(r.size(), 3u);
  ASSERT_TRUE(r[0].ok()) << r[0].err().message;
  EXPECT_EQ(r[0].value(), to_alice->message.id);
  ASSERT_TRUE(r[1].ok()) << r[1].err().message;
  EXPECT_EQ(r[1].value(), to_bob->message.id);
  ASSERT_FALSE(r[2].ok()) << "a peer never seen is looked up";
  EXPECT_EQ(r[2].err().message, "User not found");
}

TEST_F(ChatServiceTest, MarkReadMovesTheReadPositionForwardOnly) {
  store::User alice = insert_user("alice"), bob = insert_user("bob");
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = send(text_message(bob, alice, "m" + std::to_string(i)));
    ASSERT_TRUE(r.ok());
    ids.push_back(r->message.id);
  }
  auto unread = [&] {
    auto r = service_.users(alice.id);
    EXPECT_TRUE(r.ok());
    return r.ok() && !r->empty() ? r->front().unread : std::size_t{999};
  };
  ASSERT_EQ(unread(), 4u);

  // Upper-case ids are accepted and the position is stored in lower case.
  std::string upper_peer = bob.id, upper_msg = ids[1];
  for (auto& ch : upper_peer) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  for (auto& ch : upper_msg) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  auto r = service_.mark_read(alice.id, upper_peer, upper_msg);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r.value(), ids[1]);
  EXPECT_EQ(unread(), 2u);

  auto back = service_.mark_read(alice.id, bob.id, ids[0]);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), ids[1]) << "never backwards";
  EXPECT_EQ(unread(), 2u);

  EXPECT_EQ(service_.mark_read(alice.id, bob.id, ids[3]).value(), ids[3]);
  EXPECT_EQ(unread(), 0u);
  // Bob's own view is untouched by alice's reads.
  EXPECT_EQ(service_.users(bob.id)->front().unread, 0u);
  ASSERT_TRUE(send(text_message(bob, alice, "more")).ok());
  EXPECT_EQ(unread(), 1u);
}

// Forwards to a FakeStore and counts the queries users() makes.
class CountingStore final : public store::Store {
 public:
  explicit CountingStore(store::Store& inner) : inner_(inner) {}
  result<store::User> create_user(const store::User& u) override { return inner_.create_user(u); }
  result<store::User> user_by_id(std::string_view id) override {
    ++by_id;
    return inner_.user_by_id(id);
  }
  result<store::User> user_by_email(std::string_view e) override { return inner_.user_by_email(e); }
  result<std::vector<store::User>> users_except(std::string_view id) override {
    return inner_.users_except(id);
  }
  result<store::User> update_user(std::string_view id, const store::UserPatch& p,
                                  std::int64_t now) override {
    return inner_.update_user(id, p, now);
  }
  result<void> set_password_hash(std::string_view id, std::string_view h) override {
    return inner_.set_password_hash(id, h);
  }
  void append_message(store::Message m, AppendCallback done) override {
    inner_.append_message(std::move(m), std::move(done));
  }
  result<store::MessagePage> conversation_page(std::string_view c, std::string_view b,
                                               std::size_t l) override {
    ++pages;
    return inner_.conversation_page(c, b, l);
  }
  result<std::string> mark_read(std::string_view c, std::string_view u,
                                std::string_view up_to) override {
    return inner_.mark_read(c, u, up_to);
  }
  result<std::string> last_read(std::string_view c, std::string_view u) override {
    return inner_.last_read(c, u);
  }
  result<std::vector<store::ConversationSummary>> conversation_summaries(
      std::string_view u) override {
    ++summaries;
    if (fail_summaries) return error{errc::unavailable, "store queue full"};
    return inner_.conversation_summaries(u);
  }
  result<void> put_media(std::string_view id, std::string_view ct, std::string_view b) override {
    return inner_.put_media(id, ct, b);
  }
  result<store::Media> media(std::string_view id) override { return inner_.media(id); }
  result<void> ping() override { return inner_.ping(); }
  void flush() override { inner_.flush(); }

  int by_id = 0, pages = 0, summaries = 0;
  bool fail_summaries = false;

 private:
  store::Store& inner_;
};

TEST_F(ChatServiceTest, UsersMakesOneSummaryQueryWhateverTheNumberOfUsers) {
  store::User alice = insert_user("alice");
  std::vector<store::User> others;
  for (int i = 0; i < 20; ++i) {
    others.push_back(insert_user("user" + std::to_string(i)));
    ASSERT_TRUE(send(text_message(others.back(), alice, "hello")).ok());
  }
  CountingStore counting(store_);
  ChatService service(counting, jwt_, presence_, limits());
  auto list = service.users(alice.id);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 20u);
  for (const auto& v : list.value()) {
    EXPECT_EQ(v.unread, 1u) << v.user.full_name;
    ASSERT_TRUE(v.last_message);
    EXPECT_EQ(v.last_message->sender_id, v.user.id);
  }
  EXPECT_EQ(counting.summaries, 1);
  EXPECT_EQ(counting.pages, 0);
  EXPECT_EQ(counting.by_id, 0);

  // A failing summary query fails the list instead of showing wrong counts.
  counting.fail_summaries = true;
  auto failed = service.users(alice.id);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), errc::unavailable);
}

// ---- profile ----

TEST_F(ChatServiceTest, UpdateProfile) {
  store::User alice = insert_user("alice");
  ProfileInput nothing;
  EXPECT_TRUE(has_error(service_.validate_profile(nothing), "profile"));

  ProfileInput in;
  in.full_name = "  Alice Cooper ";
  in.bio = "hi";
  in.profile_picture = data_url("image/png", test::tiny_png());
  auto v = service_.validate_profile(in);
  ASSERT_TRUE(v.ok()) << fields_of(v);
  EXPECT_EQ(in.full_name, "Alice Cooper");
  auto r = service_.update_profile(alice.id, in);
  ASSERT_TRUE(r.ok()) << r.err().message;
  EXPECT_EQ(r->full_name, "Alice Cooper");
  EXPECT_EQ(r->bio, "hi");
  EXPECT_TRUE(r->profile_picture.starts_with("/media/")) << r->profile_picture;
  EXPECT_EQ(store_.user_by_id(alice.id)->full_name, "Alice Cooper");

  ProfileInput bad;
  bad.full_name = " ";
  bad.profile_picture = "javascript:alert(1)";
  auto vb = service_.validate_profile(bad);
  EXPECT_TRUE(has_error(vb, "full_name"));
  EXPECT_TRUE(has_error(vb, "profile_picture"));
}

}  // namespace
}  // namespace chat
