#include "net/ws_session.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <deque>

#include "core/log.hpp"

namespace chat::net::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using error_code = boost::system::error_code;

class WsSession final : public WsConnection, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(beast::tcp_stream&& stream, std::shared_ptr<WsHandler> handler, const WsOptions& opts,
            std::shared_ptr<void> guard)
      : ws_(std::move(stream)), handler_(std::move(handler)), opts_(opts), guard_(std::move(guard)) {}

  void start(beast::flat_buffer&& buffer, beast::http::request<beast::http::string_body>&& req) {
    // The HTTP session read into an 8 KiB buffer; an idle WebSocket should not keep that for
    // its lifetime (profiled: most of the per-connection RSS). Keep only unread bytes, if any.
    if (buffer.size() > 0) {
      buffer_ = std::move(buffer);
      buffer_.shrink_to_fit();
    }
    beast::get_lowest_layer(ws_).expires_never();
    // Liveness is Engine.IO's job (its own pings): no WebSocket-level idle timeout.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.read_message_max(opts_.max_message);
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(beast::http::field::server, "chatd");
    }));
    auto self = shared_from_this();
    ws_.async_accept(req, [self](error_code ec) { self->on_accept(ec); });
  }

  bool send(std::shared_ptr<const std::string> frame, bool binary) override {
    if (closed_.load(std::memory_order_relaxed)) return false;
    const std::size_t n = frame->size();
    if (queued_.fetch_add(n, std::memory_order_relaxed) + n > opts_.max_queued_bytes) {
      queued_.fetch_sub(n, std::memory_order_relaxed);
      asio::post(ws_.get_executor(), [self = shared_from_this()] { self->drop_slow_consumer(); });
      return false;
    }
    asio::post(ws_.get_executor(), [self = shared_from_this(), frame = std::move(frame), binary]() mutable {
      self->enqueue(std::move(frame), binary);
    });
    return true;
  }

  void close() override {
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      self->close_requested_ = true;
      if (!self->writing_) self->do_close();
    });
  }

  std::size_t queued_bytes() const override { return queued_.load(std::memory_order_relaxed); }

 private:
  struct Out {
    std::shared_ptr<const std::string> frame;
    bool binary;
  };

  void on_accept(error_code ec) {
    if (ec) return finish();
    handler_->on_open(shared_from_this());
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (ec) return finish();
    std::string data = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    // A burst can grow the buffer; give large capacity back instead of holding it while idle.
    if (buffer_.capacity() > 16 * 1024) buffer_.shrink_to_fit();
    const bool binary = ws_.got_binary();
    if (!done_) handler_->on_frame(std::move(data), binary);
    if (!done_) do_read();
  }

  void enqueue(std::shared_ptr<const std::string> frame, bool binary) {
    if (done_ || close_requested_) {
      queued_.fetch_sub(frame->size(), std::memory_order_relaxed);
      return;
    }
    out_.push_back(Out{std::move(frame), binary});
    if (!writing_) do_write();
  }

  void do_write() {
    writing_ = true;
    const Out& o = out_.front();
    ws_.binary(o.binary);
    ws_.async_write(asio::buffer(*o.frame), [self = shared_from_this()](error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(error_code ec) {
    writing_ = false;
    if (done_) {  // finish() already gave back the bytes of everything queued
      out_.clear();
      return;
    }
    queued_.fetch_sub(out_.front().frame->size(), std::memory_order_relaxed);
    out_.pop_front();
    if (ec) return finish();
    if (!out_.empty()) return do_write();
    if (close_requested_) do_close();
  }

  void do_close() {
    if (closing_ || done_) return;
    closing_ = true;
    ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](error_code) {
      // The read loop ends with the peer's close reply (or the timeout): finish() runs there.
      beast::get_lowest_layer(self->ws_).expires_after(std::chrono::seconds(5));
    });
  }

  void drop_slow_consumer() {
    if (done_) return;
    spdlog::debug("websocket send queue over {} bytes: disconnecting a slow consumer", opts_.max_queued_bytes);
    if (opts_.on_slow_consumer) opts_.on_slow_consumer();
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
    finish();
  }

  void finish() {
    if (done_) return;
    done_ = true;
    closed_.store(true, std::memory_order_relaxed);
    for (auto& o : out_) queued_.fetch_sub(o.frame->size(), std::memory_order_relaxed);
    if (!writing_) out_.clear();
    handler_->on_close();
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::shared_ptr<WsHandler> handler_;
  WsOptions opts_;
  std::deque<Out> out_;
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> closed_{false};
  bool writing_ = false;
  bool close_requested_ = false;
  bool closing_ = false;
  bool done_ = false;
  std::shared_ptr<void> guard_;
};

}  // namespace

void start_websocket(beast::tcp_stream&& stream, beast::flat_buffer&& buffer,
                     beast::http::request<beast::http::string_body>&& req,
                     std::shared_ptr<WsHandler> handler, const WsOptions& options,
                     std::shared_ptr<void> guard) {
  auto session = std::make_shared<WsSession>(std::move(stream), std::move(handler), options, std::move(guard));
  session->start(std::move(buffer), std::move(req));
}

}  // namespace chat::net::detail
