#pragma once
// result<T>: a value or an error (chat::errc + message). Component APIs return it instead of
// throwing; untrusted input never produces an exception past its handler.
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace chat {

enum class errc {
  invalid_argument,  ///< bad input from a client (validation, malformed data)
  not_found,
  already_exists,
  unauthorized,
  forbidden,
  too_large,
  rate_limited,
  unavailable,  ///< a dependency is down or a queue is full: retry later
  internal,     ///< a bug or an unexpected failure of a dependency
};

const char* to_string(errc e) noexcept;

struct error {
  errc code;
  std::string message;
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  result(error e) : v_(std::move(e)) {}               // NOLINT
  result(errc c, std::string msg = {}) : v_(error{c, std::move(msg)}) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const chat::error& err() const { assert(!ok()); return std::get<1>(v_); }
  errc code() const { return err().code; }

 private:
  std::variant<T, chat::error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : e_(std::move(e)), ok_(false) {}  // NOLINT
  result(errc c, std::string msg = {}) : e_{c, std::move(msg)}, ok_(false) {}
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const chat::error& err() const { assert(!ok_); return e_; }
  errc code() const { return err().code; }

 private:
  chat::error e_{errc::internal, {}};
  bool ok_ = true;
};

}  // namespace chat
