#pragma once
// Test data and helpers shared by the store tests of every backend (SQLite here, MongoDB in
// tests/services/store).
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <future>
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

inline std::vector<std::string> ids_of(const std::vector<Message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.id);
  return out;
}

}  // namespace chat::store::fixtures
