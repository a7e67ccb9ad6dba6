#include "sio_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <netinet/in.h>

#include <random>

#include "engineio/packet.hpp"
#include "socketio/packet.hpp"

namespace chat::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

class Connection final : public SioConnection, public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& ioc, SioHandler& h, ConnectTarget t, std::string auth, std::size_t tag)
      : ws_(ioc), handler_(h), target_(std::move(t)), auth_(std::move(auth)), tag_(tag) {
    std::random_device rd;
    mask_state_ = rd() | 1u;
  }

  void start() override {
    // Asynchronously, so that a connection failing at once (bad address, no file descriptors)
    // reports its close from a handler, never from inside the caller's loop.
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->do_start(); });
  }

  void do_start() {
    if (done_) return;
    error_code ec;
    auto addr = asio::ip::make_address(target_.host, ec);
    if (ec) return fail("bad host address " + target_.host);
    const tcp::endpoint remote(addr, target_.port);
    auto& sock = beast::get_lowest_layer(ws_).socket();
    sock.open(remote.protocol(), ec);
    if (ec) return fail("socket: " + ec.message());
    if (target_.source_address) {
      auto src = asio::ip::make_address(*target_.source_address, ec);
      if (ec) return fail("bad source address " + *target_.source_address);
      // Let connect() pick the port per destination instead of reserving one at bind() time:
      // without this, bind() exhausts the ephemeral range at ~28k sockets per source address.
      int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sock.bind(tcp::endpoint(src, 0), ec);
      if (ec) return fail("bind " + *target_.source_address + ": " + ec.message());
    }
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(ws_).async_connect(
        remote, [self = shared_from_this()](error_code e) { self->on_tcp(e); });
  }

  std::uint64_t emit(std::string_view json_array, bool with_ack) override {
    if (done_) return 0;
    std::uint64_t id = with_ack ? ++last_ack_id_ : 0;
    std::string frame = "4";
    frame += socketio::encode_event("/", json_array, with_ack ? std::optional<std::uint64_t>(id) : std::nullopt);
    send_frame(frame);
    return id;
  }

  void close() override {
    if (done_) return;
    done_ = true;
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  bool connected() const override { return state_ == State::connected && !done_; }
  std::size_t tag() const override { return tag_; }
  std::uint64_t pongs() const override { return pongs_; }
  std::size_t queued_bytes() const override { return pending_.size() + in_flight_.size(); }

 private:
  enum class State { connecting, wait_open, wait_connect, connected };

  void on_tcp(error_code ec) {
    if (done_) return;
    if (ec) return fail("connect: " + ec.message());
    auto& stream = beast::get_lowest_layer(ws_);
    stream.expires_never();
    stream.socket().set_option(tcp::no_delay(true), ec);
    auto t = websocket::stream_base::timeout::suggested(beast::role_type::client);
    t.handshake_timeout = std::chrono::seconds(30);
    ws_.set_option(t);
    ws_.read_message_max(16 * 1024 * 1024);
    ws_.auto_fragment(false);
    // The mask only has to be unpredictable to intermediaries; there are none on loopback.
    ws_.secure_prng(false);
    const std::string host = target_.host + ":" + std::to_string(target_.port);
    ws_.async_handshake(host, target_.path + "?EIO=4&transport=websocket",
                        [self = shared_from_this()](error_code e) { self->on_handshake(e); });
  }

  void on_handshake(error_code ec) {
    if (done_) return;
    if (ec) return fail("websocket handshake: " + ec.message());
    state_ = State::wait_open;
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (done_) return;
    if (ec) return fail(ec == websocket::error::closed ? "closed by server" : "read: " + ec.message());
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      return fail("unexpected binary frame");
    }
    auto data = buffer_.cdata();
    std::string_view frame(static_cast<const char*>(data.data()), data.size());
    handle_frame(frame);
    buffer_.consume(buffer_.size());
    if (!done_) do_read();
  }

  void handle_frame(std::string_view frame) {
    // Hot path: EVENT / ACK on "/" ("42[…]", "43<id>[…]") parsed in one pass, with the JSON in a
    // stack arena, so the generator spends its core on the wire rather than on allocations.
    if (frame.size() > 2 && frame[0] == '4' && (frame[1] == '2' || frame[1] == '3') && state_ == State::connected)
      return handle_event_or_ack(frame.substr(1));
    auto p = engineio::decode_text_frame(frame);
    if (!p) return fail("bad Engine.IO packet");
    switch (p->type) {
      case engineio::PacketType::open:
        if (state_ != State::wait_open) return fail("unexpected open packet");
        state_ = State::wait_connect;
        send_frame("40" + auth_);
        return;
      case engineio::PacketType::ping:
        ++pongs_;
        send_frame(std::string("3") + p->data);
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
    alignas(16) unsigned char arena[16384];
    json::monotonic_resource mr(arena, sizeof arena);
    json::parse_options opts;
    opts.max_depth = socketio::kMaxJsonDepth;
    error_code ec;
    json::value v = json::parse(text.substr(i), ec, &mr, opts);
    if (ec || !v.is_array()) return fail("bad event payload");
    if (text[0] == '2') handler_.on_event(*this, v.get_array());
    else if (has_id) handler_.on_ack(*this, id, v.get_array());
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
      case socketio::PacketType::ack: {
        auto v = socketio::parse_json(pkt->data);
        if (!v || !v->is_array()) return fail("bad event payload");
        if (pkt->type == socketio::PacketType::event) handler_.on_event(*this, v->get_array());
        else if (pkt->id) handler_.on_ack(*this, *pkt->id, v->get_array());
        return;
      }
      default:
        return;  // binary events: not used by the chat
    }
  }

  // Writes bypass Beast's write path: frames are masked here and appended to one buffer, and a
  // single write carries everything queued while the previous one was in flight (one syscall for
  // many messages under load). Beast still does the handshake and all reading; the server side
  // sends no WebSocket pings (Engine.IO has its own), so Beast never writes a control frame
  // concurrently, except the close reply when the server closes, after which nothing is written.
  void send_frame(std::string_view payload) {
    if (done_) return;
    append_masked_frame(pending_, payload);
    if (!writing_) flush();
  }

  std::uint32_t next_mask() noexcept {  // xorshift32: masks need not be unpredictable on loopback
    mask_state_ ^= mask_state_ << 13;
    mask_state_ ^= mask_state_ >> 17;
    mask_state_ ^= mask_state_ << 5;
    return mask_state_;
  }

  void append_masked_frame(std::string& out, std::string_view payload) {
    const std::size_t n = payload.size();
    out.push_back(static_cast<char>(0x81));  // FIN + text
    if (n < 126) {
      out.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
      out.push_back(static_cast<char>(0x80 | 126));
      out.push_back(static_cast<char>((n >> 8) & 0xff));
      out.push_back(static_cast<char>(n & 0xff));
    } else {
      out.push_back(static_cast<char>(0x80 | 127));
      for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> s) & 0xff));
    }
    const std::uint32_t m = next_mask();
    const char key[4] = {static_cast<char>(m >> 24), static_cast<char>(m >> 16), static_cast<char>(m >> 8),
                         static_cast<char>(m)};
    out.append(key, 4);
    const std::size_t at = out.size();
    out.append(payload);
    char* p = out.data() + at;
    for (std::size_t i = 0; i < n; ++i) p[i] ^= key[i & 3];
  }

  void flush() {
    if (pending_.empty() || done_) return;
    in_flight_.swap(pending_);
    pending_.clear();
    writing_ = true;
    asio::async_write(beast::get_lowest_layer(ws_).socket(), asio::buffer(in_flight_),
                      [self = shared_from_this()](error_code ec, std::size_t) { self->on_write(ec); });
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
    beast::get_lowest_layer(ws_).socket().close(ignored);
    handler_.on_close(*this, why);
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  SioHandler& handler_;
  ConnectTarget target_;
  std::string auth_;
  std::size_t tag_;
  State state_ = State::connecting;
  std::string pending_;    ///< frames waiting for the write in flight
  std::string in_flight_;  ///< the write in flight
  std::uint32_t mask_state_ = 1;
  bool writing_ = false;
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
