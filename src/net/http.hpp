#pragma once
// HTTP request/response values handed between the Beast server (net) and the application (api).
// Deliberately free of Beast types so that only src/net compiles Beast.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  ///< upper case, e.g. "GET"
  std::string target;  ///< as received: path + "?" + query
  std::string path;    ///< percent-decoded path, without the query
  std::string query;   ///< raw query string (after '?'), "" when none
  Headers headers;     ///< names in lower case, in received order
  std::string body;
  std::string remote_ip;  ///< peer address of the TCP connection

  /// First header with this (lower-case) name, "" when absent.
  std::string_view header(std::string_view lower_name) const;
  /// Decoded value of a query parameter (first occurrence).
  std::optional<std::string> query_param(std::string_view name) const;
  /// Value of a cookie from the Cookie header.
  std::optional<std::string> cookie(std::string_view name) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  bool close = false;  ///< close the connection after this response

  Response& set(std::string name, std::string value);
  Response& add(std::string name, std::string value);  ///< allows repeats (Set-Cookie)
  std::string_view header(std::string_view name) const;  ///< case-insensitive
  static Response json(int status, std::string body);
  static Response text(int status, std::string body, std::string content_type);
};

/// Completes a request. Call exactly once, from any thread; copies share one completion.
/// If every copy is destroyed without a call, the client gets a 500 (a bug, logged) instead of
/// hanging.
class Responder {
 public:
  using Fn = std::function<void(Response)>;
  Responder() = default;
  explicit Responder(Fn fn);
  void operator()(Response r) const;
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }
  /// Wraps this responder: `f` sees (and may modify) the response before it is sent.
  Responder wrap(std::function<void(Response&)> f) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

/// Called on an I/O thread for every complete request; must not block.
using HttpHandler = std::function<void(Request&&, Responder)>;

/// Percent-decodes `s` ('+' stays '+'); nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_as_space = false);

}  // namespace chat::net
