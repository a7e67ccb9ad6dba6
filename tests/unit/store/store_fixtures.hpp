#pragma once
// Test data and helpers shared by the store tests of every backend (SQLite here, MongoDB in
// tests/services/store).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "core/object_id.hpp"
#include "store/store.hpp"

namespace chat::store::fixtures {

/// A fresh directory (`<tmp>/<prefix>XXXXXX`) for one test, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "chat_store_test_") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline User make_user(const std::string& id, const std::string& email, const std::string& name) {
  User u;
  u.id = id;
  u.email = email;
  u.password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
  u.full_name = name;
  u.profile_picture = "";
  u.bio = "bio of " + name;
  u.created_at = 1700000000000;
  u.updated_at = 1700000000000;
  return u;
}

/// A new id each call; an image URL for odd-length texts, none for even ones.
inline Message make_message(const std::string& sender, const std::string& receiver,
                            const std::string& text, const std::string& client_msg_id = "") {
  Message m;
  m.id = new_object_id();
  m.conversation_id = direct_conversation_id(sender, receiver);
  m.sender_id = sender;
  m.receiver_id = receiver;
  m.text = text;
  m.image = text.size() % 2 ? "https://img.example/" + text + ".png" : "";
  m.client_msg_id = client_msg_id;
  m.created_at = 1700000000000 + static_cast<std::int64_t>(text.size());
  m.updated_at = m.created_at;
  return m;
}

/// Appends and waits for the callback.
inline result<Appended> append_and_wait(Store& store, Message m) {
  std::promise<result<Appended>> p;
  auto f = p.get_future();
  store.append_message(std::move(m), [&p](result<Appended> r) { p.set_value(std::move(r)); });
  return f.get();
}

/// Appends them all at once (journal batches of many) and waits for every callback; returns
/// how many failed.
inline std::size_t append_all_and_wait(Store& store, const std::vector<Message>& ms) {
  struct State {
    std::atomic<std::size_t> left;
    std::atomic<std::size_t> failed{0};
    std::promise<void> done;
  };
  auto st = std::make_shared<State>();
  st->left = ms.size();
  if (ms.empty()) return 0;
  for (const Message& m : ms)
    store.append_message(m, [st](result<Appended> r) {
      if (!r.ok()) ++st->failed;
      if (--st->left == 0) st->done.set_value();
    });
  st->done.get_future().wait();
  return st->failed;
}

inline std::vector<std::string> ids_of(const std::vector<Message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.id);
  return out;
}

/// Checks one page of a conversation (`before`, `limit` as conversation_page takes them): its
/// messages, oldest first, are `want`, and has_more is `more`.
inline void expect_page(Store& store, const std::string& conversation_id, const std::string& before,
                        std::size_t limit, const std::vector<Message>& want, bool more) {
  auto page = store.conversation_page(conversation_id, before, limit);
  ASSERT_TRUE(page.ok()) << page.err().message;
  EXPECT_EQ(ids_of(page->messages), ids_of(want)) << "before '" << before << "', limit " << limit;
  EXPECT_EQ(page->has_more, more) << "before '" << before << "', limit " << limit;
}

}  // namespace chat::store::fixtures
