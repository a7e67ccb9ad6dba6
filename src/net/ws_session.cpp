#include "net/ws_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/field.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <mutex>
#include <vector>

#include "core/log.hpp"
#include "net/ws_frame.hpp"

namespace chat::net::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// Frames at least this large are queued by reference (a fan-out shares one copy); smaller ones
// are copied into the connection's outgoing bytes, so that one write() carries many of them.
constexpr std::size_t kShareThreshold = 2048;
// Reads go to a per-thread buffer: an idle connection holds no read buffer of its own, only
// the bytes of an incomplete frame.
constexpr std::size_t kScratchSize = 64 * 1024;
constexpr auto kCloseTimeout = std::chrono::seconds(5);

class WsSession;
// The connections armed while a SendBatch lives on this thread (null when none does).
thread_local std::vector<std::shared_ptr<WsSession>>* t_send_batch = nullptr;
thread_local std::vector<std::shared_ptr<WsSession>> t_send_batch_storage;

// The WebSocket protocol after the HTTP upgrade, framed here (ws_frame.hpp) rather than by
// Beast's websocket::stream: every frame that is queued when the socket can be written goes out
// in one gather write, and every frame that arrived is parsed from one read. Sending is
// thread-safe (a mutex around the outgoing bytes); everything else runs on the connection's
// strand (the socket's executor).
class WsSession final : public WsConnection, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket socket, std::shared_ptr<WsHandler> handler, const WsOptions& opts,
            std::shared_ptr<void> guard)
      : socket_(std::move(socket)),
        handler_(std::move(handler)),
        opts_(opts),
        reader_(opts.max_message),
        guard_(std::move(guard)) {}

  void start(beast::flat_buffer&& buffer, const http::request<http::string_body>& req) {
    error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return finish();
    std::string_view version = req[http::field::sec_websocket_version];
    std::string_view key = req[http::field::sec_websocket_key];
    if (version != "13") {
      return reject("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n",
                    "Unsupported WebSocket version");
    }
    if (!ws::valid_client_key(key)) return reject("400 Bad Request", "", "Bad Sec-WebSocket-Key");
    std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " + ws::accept_key(key) + "\r\nServer: chatd\r\n\r\n";
    {
      std::lock_guard lock(mu_);
      owned_tail().append(response);
      queued_.fetch_add(response.size(), std::memory_order_relaxed);
      armed_ = true;  // the flush is posted below, after on_open
    }
    // Bytes the client sent right behind its upgrade request are the first frames.
    if (buffer.size() > 0) {
      const auto* p = static_cast<const char*>(buffer.data().data());
      partial_.assign(p, buffer.size());
    }
    handler_->on_open(shared_from_this());
    if (done_) return;
    // Posted after whatever on_open posted, so that the 101 response and the handler's first
    // frames (the Engine.IO open packet) usually leave in one write.
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flush(); });
    if (!partial_.empty()) {
      std::string first = std::move(partial_);
      partial_.clear();
      if (!consume(first.data(), first.size())) return;
    }
    on_readable({});  // data may already wait: read before waiting for readiness
  }

  bool send(std::shared_ptr<const std::string> frame, bool binary) override {
    const std::size_t n = frame->size();
    std::unique_lock lock(mu_);
    if (closed_ || close_queued_) return false;
    if (queued_.load(std::memory_order_relaxed) + n > opts_.max_queued_bytes) {
      lock.unlock();
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->drop_slow_consumer(); });
      return false;
    }
    queue_frame_locked(binary ? ws::Opcode::binary : ws::Opcode::text, std::move(frame));
    return true;
  }

  void close() override {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->start_close(ws::kCloseNormal); });
  }

  std::size_t queued_bytes() const override { return queued_.load(std::memory_order_relaxed); }

 private:
  // One element of the outgoing bytes: copied frames, or one large frame by reference.
  struct Segment {
    std::string bytes;
    std::shared_ptr<const std::string> shared;
    const std::string& data() const { return shared ? *shared : bytes; }
    std::size_t size() const { return data().size(); }
  };

  // ---- reading (strand) ---------------------------------------------------------------------

  void do_wait() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      self->on_readable(ec);
    });
  }

  void on_readable(error_code ec) {
    if (done_ || reading_stopped_) return;
    if (ec) return finish();
    thread_local std::array<char, kScratchSize> scratch;
    const std::size_t n = socket_.read_some(asio::buffer(scratch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return do_wait();
    if (ec) return finish();  // EOF or reset: the transport is gone
    bool ok;
    if (partial_.empty()) {
      ok = consume(scratch.data(), n);
    } else {
      partial_.append(scratch.data(), n);
      std::string buf = std::move(partial_);
      partial_.clear();
      ok = consume(buf.data(), buf.size(), &buf);
    }
    if (!ok || done_ || reading_stopped_) return;
    // A full buffer may have left bytes in the socket: come back after the other connections.
    if (n == scratch.size()) {
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_readable({}); });
    } else {
      do_wait();  // edge-triggered readiness: everything available was read
    }
  }

  /// Parses `data`; keeps an incomplete frame in partial_ (taking `owner`, the string that holds
  /// `data`, when nothing was consumed: a large frame arriving over many reads is then not
  /// copied again on each). False when reading is over.
  bool consume(char* data, std::size_t size, std::string* owner = nullptr) {
    auto r = reader_.parse(data, size, [this](ws::Event&& ev) { on_event(std::move(ev)); });
    if (done_) return false;
    if (r.error) {
      spdlog::debug("websocket protocol error: {}", r.reason);
      fail(r.error);
      return false;
    }
    if (r.closed || reading_stopped_) return false;
    if (r.consumed < size) {
      if (r.consumed == 0 && owner) partial_ = std::move(*owner);
      else partial_.assign(data + r.consumed, size - r.consumed);
      // A frame is capped by max_message; partial_ never holds more than one.
      if (partial_.capacity() > 4 * kScratchSize && partial_.size() < kScratchSize) partial_.shrink_to_fit();
    }
    return true;
  }

  void on_event(ws::Event&& ev) {
    if (done_) return;
    switch (ev.kind) {
      case ws::Event::Kind::message:
        if (!close_queued_) handler_->on_frame(std::move(ev.data), ev.binary);
        return;
      case ws::Event::Kind::ping: {
        std::lock_guard lock(mu_);
        if (!close_queued_) queue_control_locked(ws::Opcode::pong, ev.data);
        return;
      }
      case ws::Event::Kind::pong:
        return;
      case ws::Event::Kind::close:
        reading_stopped_ = true;
        if (close_sent_) return finish();  // the reply to our close: done
        // The peer closes first: echo its code, then the connection ends once that is written.
        queue_close(ev.close_code == ws::kCloseNoStatus ? std::uint16_t{ws::kCloseNormal} : ev.close_code);
        return;
    }
  }

  // ---- closing (strand) ---------------------------------------------------------------------

  /// A protocol violation: a close frame with `code`, and no more reading.
  void fail(std::uint16_t code) {
    reading_stopped_ = true;
    queue_close(code);
  }

  /// Server-initiated close: after the queued frames; the peer's reply (or the timeout) ends it.
  void start_close(std::uint16_t code) {
    if (done_) return;
    queue_close(code);
  }

  void queue_close(std::uint16_t code) {
    {
      std::lock_guard lock(mu_);
      if (close_queued_) return;
      close_queued_ = true;
      queue_control_locked(ws::Opcode::close, ws::close_payload(code));
    }
    close_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
    close_timer_->expires_after(kCloseTimeout);
    close_timer_->async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->finish();
    });
  }

  void drop_slow_consumer() {
    if (done_) return;
    spdlog::debug("websocket send queue over {} bytes: disconnecting a slow consumer", opts_.max_queued_bytes);
    if (opts_.on_slow_consumer) opts_.on_slow_consumer();
    finish();
  }

  void reject(std::string_view status, std::string_view extra_headers, std::string_view body) {
    reading_stopped_ = true;
    auto text = std::make_shared<std::string>();
    *text = "HTTP/1.1 " + std::string(status) + "\r\n" + std::string(extra_headers) +
            "Connection: close\r\nContent-Type: text/plain\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
    asio::async_write(socket_, asio::buffer(*text), [self = shared_from_this(), text](error_code, std::size_t) {
      self->finish();
    });
  }

  void finish() {
    if (done_) return;
    done_ = true;
    reading_stopped_ = true;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      pending_.clear();
      queued_.store(0, std::memory_order_relaxed);
    }
    if (close_timer_) close_timer_->cancel();
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    partial_ = std::string();
    if (auto h = std::move(handler_)) h->on_close();
  }

  // ---- writing ------------------------------------------------------------------------------

  std::string& owned_tail() {
    if (pending_.empty() || pending_.back().shared) pending_.emplace_back();
    return pending_.back().bytes;
  }

  /// Appends a frame and makes sure a flush will write it. mu_ held.
  void queue_frame_locked(ws::Opcode op, std::shared_ptr<const std::string> payload) {
    const std::size_t n = payload->size();
    std::string& tail = owned_tail();
    const std::size_t header = ws::append_frame_header(tail, op, n);
    if (n >= kShareThreshold) pending_.push_back(Segment{{}, std::move(payload)});
    else tail.append(*payload);
    queued_.fetch_add(header + n, std::memory_order_relaxed);
    arm_locked();
  }

  void queue_control_locked(ws::Opcode op, std::string_view payload) {
    std::string& tail = owned_tail();
    const std::size_t before = tail.size();
    ws::append_frame(tail, op, payload);
    queued_.fetch_add(tail.size() - before, std::memory_order_relaxed);
    if (op == ws::Opcode::close) close_sent_ = true;
    arm_locked();
  }

  void arm_locked() {
    if (armed_) return;  // a flush is posted or a write is in flight: it will take these
    armed_ = true;
    if (t_send_batch) t_send_batch->push_back(shared_from_this());  // written at its end
    else asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flush(); });
  }

 public:
  /// At the end of a SendBatch, on its thread, with armed_ ours: writes what is pending in one
  /// non-blocking sendmsg, under mu_, so that finish() (which sets closed_ under it before it
  /// closes the socket) cannot close the descriptor meanwhile. Whatever is left (the kernel took
  /// part, an error, a close frame to follow through) is the strand's flush.
  void write_batched() {
    {
      std::lock_guard lock(mu_);
      if (closed_) {
        armed_ = false;
        return;
      }
      if (!close_sent_) {
        constexpr std::size_t kMaxIov = 64;
        std::array<iovec, kMaxIov> iov;
        std::size_t count = 0, total = 0;
        for (const Segment& seg : pending_) {
          if (count == kMaxIov) break;
          iov[count++] = iovec{const_cast<char*>(seg.data().data()), seg.size()};
          total += seg.size();
        }
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = count;
        const ssize_t r = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        const std::size_t n = r > 0 ? static_cast<std::size_t>(r) : 0;
        queued_.fetch_sub(n, std::memory_order_relaxed);
        if (n == total && count == pending_.size()) {
          pending_.clear();
          armed_ = false;
          return;
        }
        drop_front_locked(n);
      }
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flush(); });
  }

 private:
  /// Removes the first n pending bytes (written). mu_ held.
  void drop_front_locked(std::size_t n) {
    auto it = pending_.begin();
    while (it != pending_.end() && n >= it->size()) n -= (it++)->size();
    pending_.erase(pending_.begin(), it);
    if (n == 0) return;
    Segment& seg = pending_.front();
    if (seg.shared) {
      seg.bytes.assign(*seg.shared, n);
      seg.shared.reset();
    } else {
      seg.bytes.erase(0, n);
    }
  }

  /// On the strand, with armed_ set: writes everything pending in one gather write, or disarms.
  /// The write is tried at once on the non-blocking socket: nearly always the kernel takes it
  /// whole, and then no asynchronous operation is made (its allocation, ~700 bytes with the
  /// buffer sequence copied into it, made a heartbeat's burst of pings raise RSS by ~300 bytes
  /// per idle connection; and its completion is one more handler per flush). Only what the
  /// kernel did not take waits for the socket to be writable.
  void flush() {
    // A few rounds here, then the rest from a posted flush: other work on this thread (other
    // connections' reads) gets its turn while other threads keep appending frames.
    for (int round = 0;; ++round) {
      if (done_) return;
      if (round == 4) {
        asio::post(socket_.get_executor(), [self = shared_from_this()] { self->flush(); });
        return;
      }
      {
        std::lock_guard lock(mu_);
        if (pending_.empty()) {
          armed_ = false;
          return;
        }
        writing_.swap(pending_);
      }
      buffers_.clear();
      written_ = 0;
      for (const auto& s : writing_) {
        buffers_.emplace_back(asio::buffer(s.data()));
        written_ += s.size();
      }
      error_code ec;
      const std::size_t n = socket_.write_some(buffers_, ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
      if (ec || n == written_) {
        if (!written(ec)) return;
        continue;  // what was queued meanwhile (armed_ stays set until nothing is)
      }
      // The rest when the socket can take it. The buffers stay valid: writing_ owns the bytes.
      std::size_t skip = n;
      auto first = buffers_.begin();
      while (skip >= first->size()) skip -= (first++)->size();
      buffers_.erase(buffers_.begin(), first);
      buffers_.front() += skip;
      asio::async_write(socket_, buffers_, [self = shared_from_this()](error_code ec, std::size_t) {
        if (self->written(ec)) self->flush();
      });
      return;
    }
  }

  /// After writing_ went out (or failed). Returns whether to flush again.
  bool written(error_code ec) {
    writing_.clear();
    if (writing_.capacity() > 64) writing_ = {};
    if (buffers_.capacity() > 64) buffers_ = {};
    if (done_) return false;
    if (ec) {
      finish();
      return false;
    }
    queued_.fetch_sub(written_, std::memory_order_relaxed);
    bool close_written;
    {
      std::lock_guard lock(mu_);
      close_written = close_sent_ && pending_.empty();
    }
    // Our close frame is out. If reading is over (the peer closed first, or its bytes broke the
    // protocol) the connection ends now; otherwise the peer's close reply (or the timer) ends it.
    if (close_written && reading_stopped_) {
      finish();
      return false;
    }
    return true;
  }

  tcp::socket socket_;
  std::shared_ptr<WsHandler> handler_;
  WsOptions opts_;
  ws::FrameReader reader_;
  std::shared_ptr<void> guard_;

  // strand state
  std::string partial_;  ///< an incomplete frame
  std::vector<Segment> writing_;
  std::vector<asio::const_buffer> buffers_;
  std::size_t written_ = 0;
  std::unique_ptr<asio::steady_timer> close_timer_;
  bool done_ = false;
  bool reading_stopped_ = false;

  // guarded by mu_
  std::mutex mu_;
  std::vector<Segment> pending_;
  bool armed_ = false;
  bool closed_ = false;
  bool close_queued_ = false;
  bool close_sent_ = false;
  std::atomic<std::size_t> queued_{0};
};

}  // namespace

}  // namespace chat::net::detail

namespace chat::net {

SendBatch::SendBatch() : outer_(detail::t_send_batch == nullptr) {
  if (outer_) detail::t_send_batch = &detail::t_send_batch_storage;
}

SendBatch::~SendBatch() {
  if (!outer_) return;
  std::vector<std::shared_ptr<detail::WsSession>> armed;
  armed.swap(detail::t_send_batch_storage);
  detail::t_send_batch = nullptr;  // what the writes arm (nothing, normally) is posted
  for (const auto& s : armed) s->write_batched();
  armed.clear();
  armed.swap(detail::t_send_batch_storage);  // keeps the capacity
}

}  // namespace chat::net

namespace chat::net::detail {

void start_websocket(beast::tcp_stream&& stream, beast::flat_buffer&& buffer,
                     http::request<http::string_body>&& req, std::shared_ptr<WsHandler> handler,
                     const WsOptions& options, std::shared_ptr<void> guard) {
  stream.expires_never();
  auto session = std::make_shared<WsSession>(stream.release_socket(), std::move(handler), options,
                                             std::move(guard));
  session->start(std::move(buffer), req);
}

}  // namespace chat::net::detail
