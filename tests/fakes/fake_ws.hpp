#pragma once
// Socket-free fakes for the protocol layers (Engine.IO, Socket.IO):
//  - FakeWsConnection: a net::WsConnection that records the frames sent to it;
//  - CapturedResponse: a net::Responder whose responses are kept for inspection;
//  - make_request(): a net::Request as src/net would build it;
//  - run_until() / drain(): drive a boost::asio::io_context on the test thread.
//
// Nothing here closes by itself: when a test wants the peer to go away it calls the WsHandler's
// on_close() (what src/net does after close() or a broken connection).
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http.hpp"
#include "net/websocket.hpp"

namespace chat::fakes {

/// One frame as sent to a WebSocket.
struct WsFrame {
  std::string data;
  bool binary = false;
  friend bool operator==(const WsFrame&, const WsFrame&) = default;
};

/// gtest printer: the bytes as a C-like literal.
inline void PrintTo(const WsFrame& f, std::ostream* os) {
  *os << (f.binary ? "binary \"" : "text \"");
  for (unsigned char c : f.data) {
    if (c == '\\' || c == '"') *os << '\\' << c;
    else if (c >= 0x20 && c < 0x7f) *os << c;
    else {
      static const char* hex = "0123456789abcdef";
      *os << "\\x" << hex[c >> 4] << hex[c & 15];
    }
  }
  *os << '"';
}

inline WsFrame text_frame(std::string s) { return WsFrame{std::move(s), false}; }
inline WsFrame binary_frame(std::string s) { return WsFrame{std::move(s), true}; }

/// Records frames. Thread-safe (one mutex). After close(), send() returns false and records
/// nothing, like a closing connection of src/net. With a byte limit, a send that would exceed it
/// is refused and the connection counts as closed (a slow consumer).
class FakeWsConnection final : public net::WsConnection {
 public:
  explicit FakeWsConnection(std::size_t max_bytes = std::numeric_limits<std::size_t>::max())
      : max_bytes_(max_bytes) {}

  bool send(std::shared_ptr<const std::string> frame, bool binary) override {
    std::lock_guard lock(mu_);
    if (closed_) return false;
    if (frame->size() > max_bytes_ - bytes_) {
      closed_ = true;
      return false;
    }
    bytes_ += frame->size();
    frames_.push_back(WsFrame{*frame, binary});
    return true;
  }

  void close() override {
    std::lock_guard lock(mu_);
    closed_ = true;
    ++close_calls_;
  }

  std::size_t queued_bytes() const override { return 0; }

  // ---- inspection ----------------------------------------------------------------------------

  std::vector<WsFrame> frames() const {
    std::lock_guard lock(mu_);
    return frames_;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return frames_.size();
  }
  /// Frame `i` (an empty text frame when there is no such frame, so that a failed expectation
  /// reads well instead of crashing).
  WsFrame frame(std::size_t i) const {
    std::lock_guard lock(mu_);
    return i < frames_.size() ? frames_[i] : WsFrame{};
  }
  WsFrame last() const {
    std::lock_guard lock(mu_);
    return frames_.empty() ? WsFrame{} : frames_.back();
  }
  /// Frames from index `from` on.
  std::vector<WsFrame> frames_from(std::size_t from) const {
    std::lock_guard lock(mu_);
    if (from >= frames_.size()) return {};
    return std::vector<WsFrame>(frames_.begin() + static_cast<std::ptrdiff_t>(from), frames_.end());
  }
  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }
  int close_calls() const {
    std::lock_guard lock(mu_);
    return close_calls_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<WsFrame> frames_;
  std::size_t bytes_ = 0;
  const std::size_t max_bytes_;
  bool closed_ = false;
  int close_calls_ = 0;
};

/// Captures what a net::Responder is given. Copies share the captured responses. Thread-safe.
class CapturedResponse {
 public:
  CapturedResponse() : state_(std::make_shared<State>()) {}

  /// A responder feeding this capture (normally used once).
  net::Responder responder() const {
    return net::Responder([s = state_](net::Response r) {
      std::lock_guard lock(s->mu);
      s->responses.push_back(std::move(r));
    });
  }

  bool ready() const {
    std::lock_guard lock(state_->mu);
    return !state_->responses.empty();
  }
  std::size_t count() const {
    std::lock_guard lock(state_->mu);
    return state_->responses.size();
  }
  /// The first response; a default (status 0) one if none came yet.
  net::Response get() const {
    std::lock_guard lock(state_->mu);
    return state_->responses.empty() ? net::Response{0, {}, {}, false} : state_->responses.front();
  }
  int status() const { return get().status; }
  std::string body() const { return get().body; }
  std::string content_type() const { return std::string(get().header("content-type")); }

 private:
  struct State {
    std::mutex mu;
    std::vector<net::Response> responses;
  };
  std::shared_ptr<State> state_;
};

/// A request as src/net hands it over: `query` is the raw query string.
inline net::Request make_request(std::string method, std::string path, std::string query,
                                 std::string body = {}, net::Headers headers = {}) {
  net::Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  r.target = r.path + (r.query.empty() ? "" : "?" + r.query);
  r.headers = std::move(headers);
  r.body = std::move(body);
  r.remote_ip = "127.0.0.1";
  return r;
}

/// Runs every handler that is ready (posted work), without waiting for timers.
inline void drain(boost::asio::io_context& ioc) {
  if (ioc.stopped()) ioc.restart();
  while (ioc.poll() > 0) {
  }
}

/// Runs `ioc` on the calling thread until `pred()` holds (checked after each batch of ready
/// handlers) or `timeout` has passed. Returns whether `pred()` held.
inline bool run_until(boost::asio::io_context& ioc, const std::function<bool()>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (ioc.stopped()) ioc.restart();
  auto guard = boost::asio::make_work_guard(ioc);  // run_for() waits instead of returning
  for (;;) {
    while (ioc.poll() > 0) {
    }
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ioc.run_for(std::chrono::milliseconds(1));
  }
}

/// Runs `ioc` for `d` (used to show that something does NOT happen within a period).
inline void run_for(boost::asio::io_context& ioc, std::chrono::milliseconds d) {
  if (ioc.stopped()) ioc.restart();
  auto guard = boost::asio::make_work_guard(ioc);
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) ioc.run_until(deadline);
}

}  // namespace chat::fakes
