#include "sio_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <random>

#include "core/base64.hpp"
#include "core/hash.hpp"
#include "engineio/packet.hpp"
#include "net/ws_frame.hpp"
#include "socketio/packet.hpp"

namespace chat::bench {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

// The WebSocket client side (RFC 6455) is written here rather than taken from Beast: the load
// generator must spend its core on the wire, and Beast's per-message read composition (a
// completion, its executor and timers for every frame) cost more than the rest of the client.
// Every read takes whatever the socket holds and parses every complete frame in it; everything
// the handlers emit meanwhile leaves in one write at the end of the batch.

constexpr std::size_t kMaxMessage = 16 * 1024 * 1024;  ///< as Beast's read_message_max before
constexpr std::size_t kInitialRead = 4096;             ///< per connection (idle holds thousands)
constexpr std::size_t kMaxRead = 256 * 1024;           ///< growth limit for batched reads
constexpr std::size_t kMinFree = 1024;
constexpr std::size_t kMaxHandshake = 16 * 1024;
constexpr auto kHandshakeTimeout = std::chrono::seconds(30);

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// A seed for a connection's masking-key generator (xorshift32, never 0). From one
/// std::random_device per thread: constructing one per connection cost about a quarter of the
/// generator's CPU per connection in the `idle` scenario (perf: std::random_device::_M_init).
std::uint32_t mask_seed() {
  thread_local std::uint64_t state = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) | rd();
  }();
  state += 0x9e3779b97f4a7c15ULL;  // splitmix64: distinct, well-mixed seeds from one state
  return static_cast<std::uint32_t>(mix64(state)) | 1u;
}

class Connection final : public SioConnection, public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& ioc, SioHandler& h, ConnectTarget t, std::string auth, std::size_t tag)
      : sock_(ioc), timer_(ioc), handler_(h), target_(std::move(t)), auth_(std::move(auth)), tag_(tag) {
    mask_state_ = mask_seed();
  }

  void start() override {
    // Asynchronously, so that a connection failing at once (bad address, no file descriptors)
    // reports its close from a handler, never from inside the caller's loop.
    asio::post(sock_.get_executor(), [self = shared_from_this()] { self->do_start(); });
  }

  std::uint64_t emit(std::string_view json_array, bool with_ack) override {
    if (done_) return 0;
    const std::uint64_t id = with_ack ? ++last_ack_id_ : 0;
    // Engine.IO message '4' + Socket.IO EVENT '2' on "/" + the ack id + the array.
    char head[24] = {'4', '2'};
    std::size_t head_len = 2;
    if (with_ack) head_len = static_cast<std::size_t>(std::to_chars(head + 2, head + sizeof head, id).ptr - head);
    append_masked_frame(0x1, {std::string_view(head, head_len), json_array});
    if (!in_dispatch_) flush();
    return id;
  }

  void close() override {
    if (done_) return;
    done_ = true;
    error_code ignored;
    timer_.cancel();
    sock_.close(ignored);
  }

  void disconnect() override {
    if (done_) return;
    if (state_ == State::connected && !writing_) {
      static constexpr char kNormalClosure[2] = {0x03, static_cast<char>(0xe8)};  // 1000
      append_masked_frame(0x1, {"41"});
      append_masked_frame(0x8, {std::string_view(kNormalClosure, 2)});
      error_code ec;
      (void)sock_.write_some(asio::buffer(pending_), ec);  // best effort: closing either way
    }
    close();
  }

  bool connected() const override { return state_ == State::connected && !done_; }
  std::size_t tag() const override { return tag_; }
  std::uint64_t pongs() const override { return pongs_; }
  std::size_t queued_bytes() const override { return pending_.size() + in_flight_.size(); }

 private:
  enum class State { connecting, handshake, wait_open, wait_connect, connected };

  void do_start() {
    if (done_) return;
    error_code ec;
    auto addr = asio::ip::make_address(target_.host, ec);
    if (ec) return fail("bad host address " + target_.host);
    const tcp::endpoint remote(addr, target_.port);
    sock_.open(remote.protocol(), ec);
    if (ec) return fail("socket: " + ec.message());
    if (target_.source_address) {
      auto src = asio::ip::make_address(*target_.source_address, ec);
      if (ec) return fail("bad source address " + *target_.source_address);
      // Let connect() pick the port per destination instead of reserving one at bind() time:
      // without this, bind() exhausts the ephemeral range at ~28k sockets per source address.
      int one = 1;
      ::setsockopt(sock_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sock_.bind(tcp::endpoint(src, 0), ec);
      if (ec) return fail("bind " + *target_.source_address + ": " + ec.message());
    }
    arm_timer();
    sock_.async_connect(remote, [self = shared_from_this()](error_code e) { self->on_tcp(e); });
  }

  /// One deadline for the TCP connect and one for the WebSocket handshake; none afterwards (the
  /// Engine.IO heartbeat is the server's business, as with the official client).
  void arm_timer() {
    timer_.expires_after(kHandshakeTimeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->done_) return;
      if (self->state_ == State::connecting) self->fail("connect: timeout");
      else if (self->state_ == State::handshake) self->fail("websocket handshake: timeout");
    });
  }

  void on_tcp(error_code ec) {
    if (done_) return;
    if (ec) return fail("connect: " + ec.message());
    sock_.set_option(tcp::no_delay(true), ec);
    // Writes go out with a direct non-blocking send; only a short write waits in async_write.
    sock_.non_blocking(true, ec);
    if (ec) return fail("socket: " + ec.message());
    std::array<unsigned char, 16> nonce{};
    for (std::size_t i = 0; i < nonce.size(); i += 4) {
      const std::uint32_t m = next_mask();
      std::memcpy(nonce.data() + i, &m, 4);
    }
    const std::string key = base64_encode(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
    expected_accept_ = net::ws::accept_key(key);
    pending_ = "GET " + target_.path + "?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + target_.host + ":" +
               std::to_string(target_.port) +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: chat-bench\r\n\r\n";
    state_ = State::handshake;
    arm_timer();
    flush();
    if (!done_) do_read();
  }

  void do_read() {
    make_room();
    sock_.async_read_some(asio::buffer(rbuf_.get() + rend_, rcap_ - rend_),
                          [self = shared_from_this()](error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(error_code ec, std::size_t n) {
    if (done_) return;
    if (ec) return fail("read: " + ec.message());
    const bool filled = rend_ + n == rcap_;
    rend_ += n;
    if (state_ == State::handshake) {
      parse_handshake();
      if (done_) return;
      if (state_ == State::handshake) return do_read();
    }
    in_dispatch_ = true;
    parse_frames();
    in_dispatch_ = false;
    if (done_) return;
    flush();
    if (done_) return;
    // A read that filled the buffer suggests a backlog: read more per syscall next time.
    if (filled && rcap_ < kMaxRead) grow(std::min(kMaxRead, rcap_ * 2));
    do_read();
  }

  /// Keeps the unparsed tail at the front and at least kMinFree bytes (or the whole frame being
  /// received, when its size is known) free after it.
  void make_room() {
    const std::size_t used = rend_ - rbeg_;
    if (used == 0) {
      rbeg_ = rend_ = 0;
      // A huge message made the buffer huge: give it back.
      if (rcap_ > kMaxRead) {
        rbuf_.reset();
        rcap_ = 0;
      }
    } else if (rbeg_ > 0) {
      std::memmove(rbuf_.get(), rbuf_.get() + rbeg_, used);
      rbeg_ = 0;
      rend_ = used;
    }
    const std::size_t want = std::max({rcap_, kInitialRead, need_, rend_ + kMinFree});
    if (!rbuf_) grow(want);
    else if (want > rcap_) grow(std::max(want, rcap_ + rcap_ / 2));
  }

  void grow(std::size_t cap) {
    if (cap <= rcap_ && rbuf_) return;
    auto b = std::make_unique_for_overwrite<char[]>(cap);
    if (rend_ > rbeg_) std::memcpy(b.get(), rbuf_.get() + rbeg_, rend_ - rbeg_);
    rend_ -= rbeg_;
    rbeg_ = 0;
    rbuf_ = std::move(b);
    rcap_ = cap;
  }

  void parse_handshake() {
    std::string_view data(rbuf_.get() + rbeg_, rend_ - rbeg_);
    const std::size_t end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (data.size() > kMaxHandshake) fail("websocket handshake: response too large");
      return;
    }
    std::string_view head = data.substr(0, end);
    std::size_t eol = head.find("\r\n");
    const std::string_view status = head.substr(0, eol);
    if (!(status.starts_with("HTTP/1.1 101") || status.starts_with("HTTP/1.0 101")))
      return fail("websocket handshake: " + std::string(status.substr(0, 60)));
    bool upgrade = false, accepted = false;
    while (eol != std::string_view::npos) {
      head.remove_prefix(eol + 2);
      eol = head.find("\r\n");
      const std::string_view line = head.substr(0, eol);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
      if (iequals(name, "upgrade")) upgrade = iequals(value, "websocket");
      else if (iequals(name, "sec-websocket-accept")) accepted = value == expected_accept_;
      else if (iequals(name, "sec-websocket-extensions") && !value.empty())
        return fail("websocket handshake: unrequested extension");
    }
    if (!upgrade) return fail("websocket handshake: no upgrade to websocket");
    if (!accepted) return fail("websocket handshake: bad Sec-WebSocket-Accept");
    rbeg_ += end + 4;
    timer_.cancel();
    state_ = State::wait_open;
  }

  /// Dispatches every complete frame in the buffer; stops at an incomplete one (need_ = its size).
  void parse_frames() {
    need_ = 0;
    while (!done_) {
      const auto* p = reinterpret_cast<const unsigned char*>(rbuf_.get() + rbeg_);
      const std::size_t avail = rend_ - rbeg_;
      if (avail < 2) return;
      const unsigned b0 = p[0], b1 = p[1];
      if (b1 & 0x80) return fail("read: masked frame from the server");
      if (b0 & 0x70) return fail("read: reserved bits set");
      std::uint64_t len = b1 & 0x7f;
      std::size_t hdr = 2;
      if (len == 126) {
        if (avail < 4) return;
        len = (std::uint64_t{p[2]} << 8) | p[3];
        hdr = 4;
      } else if (len == 127) {
        if (avail < 10) return;
        len = 0;
        for (int i = 2; i < 10; ++i) len = (len << 8) | p[i];
        hdr = 10;
      }
      if (len > kMaxMessage) return fail("read: message too big");
      if (avail - hdr < len) {
        need_ = hdr + static_cast<std::size_t>(len);
        return;
      }
      const std::string_view payload(rbuf_.get() + rbeg_ + hdr, static_cast<std::size_t>(len));
      rbeg_ += hdr + static_cast<std::size_t>(len);
      on_frame((b0 & 0x80) != 0, b0 & 0x0f, payload);
    }
  }

  void on_frame(bool fin, unsigned opcode, std::string_view payload) {
    switch (opcode) {
      case 0x0:  // continuation
        if (!in_fragments_) return fail("read: unexpected continuation frame");
        if (frag_.size() + payload.size() > kMaxMessage) return fail("read: message too big");
        frag_.append(payload);
        if (fin) {
          in_fragments_ = false;
          const std::string message = std::move(frag_);
          frag_.clear();
          handle_frame(message);
        }
        return;
      case 0x1:  // text
        if (in_fragments_) return fail("read: expected a continuation frame");
        if (fin) return handle_frame(payload);
        in_fragments_ = true;
        frag_.assign(payload);
        return;
      case 0x2:
        return fail("unexpected binary frame");
      case 0x8: {  // close: answer with the status code, as the RFC asks, then drop the socket
        if (!fin || payload.size() > 125) return fail("read: bad control frame");
        append_masked_frame(0x8, {payload.substr(0, std::min<std::size_t>(payload.size(), 2))});
        flush();
        return fail("closed by server");
      }
      case 0x9:  // ping
        if (!fin || payload.size() > 125) return fail("read: bad control frame");
        append_masked_frame(0xA, {payload});
        return;
      case 0xA:  // pong
        if (!fin || payload.size() > 125) return fail("read: bad control frame");
        return;
      default:
        return fail("read: bad opcode");
    }
  }

  void handle_frame(std::string_view frame) {
    // Hot path: EVENT / ACK on "/" ("42[…]", "43<id>[…]"): the JSON goes to the handler as is.
    if (frame.size() > 2 && frame[0] == '4' && (frame[1] == '2' || frame[1] == '3') && state_ == State::connected)
      return handle_event_or_ack(frame.substr(1));
    auto p = engineio::decode_text_frame(frame);
    if (!p) return fail("bad Engine.IO packet");
    switch (p->type) {
      case engineio::PacketType::open:
        if (state_ != State::wait_open) return fail("unexpected open packet");
        state_ = State::wait_connect;
        send_text("40" + auth_);
        return;
      case engineio::PacketType::ping:
        ++pongs_;
        send_text(std::string("3") + p->data);
        return;
      case engineio::PacketType::close:
        return fail("Engine.IO close");
      case engineio::PacketType::message:
        return handle_message(p->data);
      default:
        return;  // noop, pong, upgrade: nothing to do for a WebSocket-only client
    }
  }

  void handle_event_or_ack(std::string_view text) {
    std::size_t i = 1;
    std::uint64_t id = 0;
    bool has_id = false;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 18; ++i) {
      id = id * 10 + static_cast<std::uint64_t>(text[i] - '0');
      has_id = true;
    }
    if (i >= text.size() || text[i] != '[') return handle_message(text);  // unusual: the full decoder
    // The handler validates the JSON while it extracts what it needs (one pass, no DOM).
    if (text[0] == '2') handler_.on_event(*this, text.substr(i));
    else if (has_id) handler_.on_ack(*this, id, text.substr(i));
  }

  void handle_message(std::string_view text) {
    auto pkt = socketio::decode(text);
    if (!pkt) return fail("bad Socket.IO packet: " + pkt.err().message);
    if (pkt->nsp != "/") return;
    switch (pkt->type) {
      case socketio::PacketType::connect:
        if (state_ != State::wait_connect) return fail("unexpected CONNECT");
        state_ = State::connected;
        handler_.on_connect(*this);
        return;
      case socketio::PacketType::connect_error:
        return fail("connect_error " + pkt->data);
      case socketio::PacketType::disconnect:
        return fail("disconnected by server");
      case socketio::PacketType::event:
      case socketio::PacketType::ack:
        if (pkt->type == socketio::PacketType::event) handler_.on_event(*this, pkt->data);
        else if (pkt->id) handler_.on_ack(*this, *pkt->id, pkt->data);
        return;
      default:
        return;  // binary events: not used by the chat
    }
  }

  void send_text(std::string_view payload) {
    if (done_) return;
    append_masked_frame(0x1, {payload});
    if (!in_dispatch_) flush();
  }

  std::uint32_t next_mask() noexcept {  // xorshift32: masks need not be unpredictable on loopback
    mask_state_ ^= mask_state_ << 13;
    mask_state_ ^= mask_state_ >> 17;
    mask_state_ ^= mask_state_ << 5;
    return mask_state_;
  }

  /// Appends one masked frame (FIN set) whose payload is the concatenation of `parts`.
  void append_masked_frame(unsigned opcode, std::initializer_list<std::string_view> parts) {
    std::size_t n = 0;
    for (auto s : parts) n += s.size();
    char hdr[14];
    std::size_t h = 0;
    hdr[h++] = static_cast<char>(0x80 | opcode);
    if (n < 126) {
      hdr[h++] = static_cast<char>(0x80 | n);
    } else if (n < 65536) {
      hdr[h++] = static_cast<char>(0x80 | 126);
      hdr[h++] = static_cast<char>((n >> 8) & 0xff);
      hdr[h++] = static_cast<char>(n & 0xff);
    } else {
      hdr[h++] = static_cast<char>(0x80 | 127);
      for (int s = 56; s >= 0; s -= 8) hdr[h++] = static_cast<char>((static_cast<std::uint64_t>(n) >> s) & 0xff);
    }
    const std::uint32_t m = next_mask();
    const unsigned char key[4] = {static_cast<unsigned char>(m >> 24), static_cast<unsigned char>(m >> 16),
                                  static_cast<unsigned char>(m >> 8), static_cast<unsigned char>(m)};
    std::memcpy(hdr + h, key, 4);
    h += 4;
    const std::size_t at = pending_.size();
    pending_.resize(at + h + n);
    char* out = pending_.data() + at;
    std::memcpy(out, hdr, h);
    out += h;
    for (auto s : parts) {
      if (!s.empty()) std::memcpy(out, s.data(), s.size());
      out += s.size();
    }
    net::ws::apply_mask(pending_.data() + at + h, n, key);
  }

  // Everything queued leaves in one send; a short write hands the rest to async_write, and what
  // is queued meanwhile waits for its completion (one writer, in order).
  void flush() {
    if (writing_ || done_ || pending_.empty()) return;
    error_code ec;
    std::size_t n = sock_.write_some(asio::buffer(pending_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      n = 0;
      ec = {};
    }
    if (ec) return fail("write: " + ec.message());
    if (n == pending_.size()) {
      pending_.clear();
      return;
    }
    in_flight_.assign(pending_, n);
    pending_.clear();
    writing_ = true;
    asio::async_write(sock_, asio::buffer(in_flight_),
                      [self = shared_from_this()](error_code e, std::size_t) { self->on_write(e); });
  }

  void on_write(error_code ec) {
    writing_ = false;
    in_flight_.clear();
    if (done_) return;
    if (ec) return fail("write: " + ec.message());
    flush();
  }

  void fail(std::string why) {
    if (done_) return;
    done_ = true;
    error_code ignored;
    timer_.cancel();
    sock_.close(ignored);
    handler_.on_close(*this, why);
  }

  tcp::socket sock_;
  asio::steady_timer timer_;
  SioHandler& handler_;
  ConnectTarget target_;
  std::string auth_;
  std::size_t tag_;
  State state_ = State::connecting;
  std::string expected_accept_;
  // Read buffer: [rbeg_, rend_) holds received bytes not yet parsed.
  std::unique_ptr<char[]> rbuf_;
  std::size_t rcap_ = 0, rbeg_ = 0, rend_ = 0;
  std::size_t need_ = 0;  ///< size of the incomplete frame at rbeg_, when known
  std::string frag_;      ///< a fragmented message being reassembled
  bool in_fragments_ = false;
  std::string pending_;    ///< frames waiting for the next flush
  std::string in_flight_;  ///< the rest of a short write, in async_write
  std::uint32_t mask_state_ = 1;
  bool writing_ = false;
  bool in_dispatch_ = false;  ///< handlers are running on a read batch: flush after it
  bool done_ = false;
  std::uint64_t last_ack_id_ = 0;
  std::uint64_t pongs_ = 0;
};

}  // namespace

std::shared_ptr<SioConnection> SioConnection::make(asio::io_context& ioc, SioHandler& handler,
                                                   ConnectTarget target, std::string auth_json,
                                                   std::size_t tag) {
  return std::make_shared<Connection>(ioc, handler, std::move(target), std::move(auth_json), tag);
}

}  // namespace chat::bench
