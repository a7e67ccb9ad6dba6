// The Engine.IO session state machine, driven through Server::handle_http / handle_upgrade with
// fake transports (no sockets): requests are built by hand, responses captured, WebSockets are
// FakeWsConnection. The io_context runs on the test thread only, so every handler runs between
// two lines of a test and the fakes can be inspected without races.
#include "engineio/server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <cctype>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engineio/packet.hpp"
#include "fakes/fake_ws.hpp"

namespace chat::engineio {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using fakes::binary_frame;
using fakes::CapturedResponse;
using fakes::FakeWsConnection;
using fakes::text_frame;
using fakes::WsFrame;

/// The upper layer: records what Engine.IO hands it.
class RecordingHandler final : public ConnectionHandler {
 public:
  struct Message {
    std::string data;
    bool binary;
    friend bool operator==(const Message&, const Message&) = default;
  };
  void on_message(std::string&& data, bool binary) override { messages.push_back({std::move(data), binary}); }
  void on_close(std::string_view reason) override { closes.emplace_back(reason); }

  std::vector<Message> messages;
  std::vector<std::string> closes;
};

std::shared_ptr<const std::string> bytes(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

std::string error_body(int code, std::string_view message) {
  return "{\"code\":" + std::to_string(code) + ",\"message\":\"" + std::string(message) + "\"}";
}

class EngineIoServerTest : public ::testing::Test {
 protected:
  /// Defaults that keep timers out of the way; tests about timers shorten them.
  static Options quiet_options() {
    Options o;
    o.ping_interval = 10s;
    o.ping_timeout = 5s;
    o.upgrade_timeout = 10s;
    o.max_payload = 12345;
    return o;
  }

  void start(Options o = quiet_options()) {
    o.on_slow_consumer = [this] { ++slow_consumers_; };
    server_ = std::make_unique<Server>(std::move(o), ioc_, [this](std::shared_ptr<Connection> c) {
      auto h = std::make_shared<RecordingHandler>();
      conns_.push_back(c);
      handlers_.push_back(h);
      return h;
    });
  }

  void TearDown() override {
    if (server_) {
      server_->close_all();
      fakes::drain(ioc_);
    }
  }

  /// Sends an HTTP request on the Engine.IO path; the response may come later.
  CapturedResponse http(std::string method, std::string query, std::string body = {},
                        net::Headers headers = {}) {
    CapturedResponse r;
    server_->handle_http(fakes::make_request(std::move(method), "/socket.io/", std::move(query),
                                             std::move(body), std::move(headers)),
                         r.responder());
    return r;
  }
  std::string poll_query(const std::string& sid) { return "EIO=4&transport=polling&sid=" + sid; }
  CapturedResponse get(const std::string& sid) { return http("GET", poll_query(sid)); }
  CapturedResponse post(const std::string& sid, std::string body) {
    return http("POST", poll_query(sid), std::move(body), {{"content-type", "text/plain;charset=UTF-8"}});
  }

  bool wait(const CapturedResponse& r, std::chrono::milliseconds timeout = 5s) {
    return fakes::run_until(ioc_, [&] { return r.ready(); }, timeout);
  }
  bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
    return fakes::run_until(ioc_, pred, timeout);
  }
  void drain() { fakes::drain(ioc_); }

  /// Polling handshake; returns the sid (and checks the response is a 200).
  std::string handshake() {
    auto r = http("GET", "EIO=4&transport=polling&t=N8hyd6w");
    EXPECT_TRUE(wait(r));
    EXPECT_EQ(r.status(), 200);
    const auto body = r.body();
    const auto at = body.find("\"sid\":\"");
    if (at == std::string::npos) {
      ADD_FAILURE() << "no sid in " << body;
      return {};
    }
    return body.substr(at + 7, 20);
  }

  /// A WebSocket session opened without a sid: the handler src/net would drive.
  std::shared_ptr<net::WsHandler> open_websocket(const std::shared_ptr<FakeWsConnection>& ws) {
    auto h = server_->handle_upgrade(
        fakes::make_request("GET", "/socket.io/", "EIO=4&transport=websocket", {}, {{"upgrade", "websocket"}}));
    EXPECT_TRUE(h);
    if (!h) return nullptr;
    h->on_open(ws);
    EXPECT_TRUE(wait_for([&] { return ws->size() >= 1; }));
    return h;
  }

  RecordingHandler& handler(std::size_t i = 0) { return *handlers_.at(i); }
  Connection& conn(std::size_t i = 0) { return *conns_.at(i); }

  // Declared first: destroyed last, after everything holding timers of it.
  boost::asio::io_context ioc_;
  std::vector<std::shared_ptr<Connection>> conns_;
  std::vector<std::shared_ptr<RecordingHandler>> handlers_;
  std::unique_ptr<Server> server_;
  int slow_consumers_ = 0;
};

// ---- HTTP errors --------------------------------------------------------------------------------

TEST_F(EngineIoServerTest, ErrorResponsesCarryTheReferenceCodes) {
  start();
  const std::string sid = handshake();
  struct Case {
    std::string method, query;
    int code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"GET", "EIO=3&transport=polling", 5, "Unsupported protocol version"},
      {"GET", "transport=polling", 5, "Unsupported protocol version"},
      {"GET", "EIO=4&transport=flash", 0, "Transport unknown"},
      {"GET", "EIO=4", 0, "Transport unknown"},
      {"GET", "EIO=4&transport=polling&sid=doesnotexist", 1, "Session ID unknown"},
      {"POST", "EIO=4&transport=polling&sid=doesnotexist", 1, "Session ID unknown"},
      {"POST", "EIO=4&transport=polling", 2, "Bad handshake method"},
      {"PUT", "EIO=4&transport=polling", 2, "Bad handshake method"},
      {"GET", "EIO=4&transport=websocket", 3, "Bad request"},
      {"DELETE", poll_query(sid), 3, "Bad request"},
  };
  for (const auto& c : cases) {
    auto r = http(c.method, c.query, c.method == "POST" ? "40" : "");
    ASSERT_TRUE(wait(r)) << c.method << " " << c.query;
    EXPECT_EQ(r.status(), 400) << c.method << " " << c.query;
    EXPECT_EQ(r.body(), error_body(c.code, c.message)) << c.method << " " << c.query;
    EXPECT_TRUE(r.content_type().starts_with("application/json")) << r.content_type();
  }
  EXPECT_EQ(server_->connections(), 1u);  // only the handshake made a session
  EXPECT_EQ(handlers_.size(), 1u);
}

TEST_F(EngineIoServerTest, BinaryPostIsABadRequest) {
  start();
  const std::string sid = handshake();
  auto r = http("POST", poll_query(sid), "4hello", {{"content-type", "application/octet-stream"}});
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
  EXPECT_EQ(r.body(), error_body(3, "Bad request"));
  EXPECT_TRUE(handler().messages.empty());
}

TEST_F(EngineIoServerTest, PollingDisabledMeansUnknownTransport) {
  Options o = quiet_options();
  o.allow_polling = false;
  start(o);
  auto r = http("GET", "EIO=4&transport=polling");
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
  EXPECT_EQ(r.body(), error_body(0, "Transport unknown"));
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(EngineIoServerTest, BadUpgradeRequestsAreRefused) {
  start();
  const std::string sid = handshake();
  auto upgrade = [&](std::string query) {
    return server_->handle_upgrade(fakes::make_request("GET", "/socket.io/", std::move(query)));
  };
  EXPECT_EQ(upgrade("EIO=3&transport=websocket"), nullptr);
  EXPECT_EQ(upgrade("transport=websocket"), nullptr);
  EXPECT_EQ(upgrade("EIO=4&transport=polling"), nullptr);
  EXPECT_EQ(upgrade("EIO=4&transport=websocket&sid=doesnotexist"), nullptr);
  EXPECT_NE(upgrade("EIO=4&transport=websocket&sid=" + sid), nullptr);
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(EngineIoServerTest, UpgradeRefusedWhenUpgradesAreOff) {
  Options o = quiet_options();
  o.allow_upgrades = false;
  start(o);
  auto r = http("GET", "EIO=4&transport=polling");
  ASSERT_TRUE(wait(r));
  const std::string sid = conn().sid();
  EXPECT_EQ(r.body(), "0{\"sid\":\"" + sid +
                          "\",\"upgrades\":[],\"pingInterval\":10000,\"pingTimeout\":5000,\"maxPayload\":12345}");
  EXPECT_EQ(server_->handle_upgrade(fakes::make_request("GET", "/socket.io/", "EIO=4&transport=websocket&sid=" + sid)),
            nullptr);
}

// ---- polling ------------------------------------------------------------------------------------

TEST_F(EngineIoServerTest, PollingHandshakeSendsTheExactOpenPacket) {
  start();
  auto r = http("GET", "EIO=4&transport=polling&t=abc", {}, {{"user-agent", "test"}});
  ASSERT_TRUE(wait(r));
  ASSERT_EQ(conns_.size(), 1u);
  const std::string sid = conn().sid();
  ASSERT_EQ(sid.size(), 20u);
  for (char c : sid) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << sid;
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.content_type(), "text/plain; charset=UTF-8");
  EXPECT_EQ(r.body(), "0{\"sid\":\"" + sid +
                          "\",\"upgrades\":[\"websocket\"],\"pingInterval\":10000,\"pingTimeout\":5000,"
                          "\"maxPayload\":12345}");
  EXPECT_EQ(r.count(), 1u);
  EXPECT_EQ(conn().transport(), "polling");
  EXPECT_EQ(conn().request().query, "EIO=4&transport=polling&t=abc");
  EXPECT_EQ(conn().request().header("user-agent"), "test");
  EXPECT_EQ(server_->connections(), 1u);

  // Another handshake is another session.
  const std::string sid2 = handshake();
  EXPECT_NE(sid2, sid);
  EXPECT_EQ(server_->connections(), 2u);
}

TEST_F(EngineIoServerTest, GetIsHeldUntilAMessageIsSent) {
  start();
  const std::string sid = handshake();
  auto r = get(sid);
  fakes::run_for(ioc_, 30ms);
  EXPECT_FALSE(r.ready()) << r.body();

  EXPECT_TRUE(conn().send(message_frame("hello")));
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.content_type(), "text/plain; charset=UTF-8");
  EXPECT_EQ(r.body(), "4hello");
  EXPECT_EQ(r.count(), 1u);

  // The next poll is held again, and answered by the next message only.
  auto r2 = get(sid);
  drain();
  EXPECT_FALSE(r2.ready());
  conn().send(message_frame("again"));
  ASSERT_TRUE(wait(r2));
  EXPECT_EQ(r2.body(), "4again");
}

TEST_F(EngineIoServerTest, QueuedPacketsAreJoinedWithRecordSeparators) {
  start();
  const std::string sid = handshake();
  conn().send(message_frame("a"));
  conn().send(message_frame("bb"));
  conn().send(message_frame("\xc3\xa9"));
  drain();
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.body(), "4a\x1e" "4bb\x1e" "4\xc3\xa9");
  // The queue was emptied by that poll.
  auto r2 = get(sid);
  drain();
  EXPECT_FALSE(r2.ready());
}

TEST_F(EngineIoServerTest, BinaryIsBase64OverPolling) {
  start();
  const std::string sid = handshake();
  conn().send(bytes("\x01\x02\x03"), true);
  conn().send_packet(message_frame("51-[\"x\",{\"_placeholder\":true,\"num\":0}]"), {bytes("\xff"s), bytes(""s)});
  drain();
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.body(), "bAQID\x1e" "451-[\"x\",{\"_placeholder\":true,\"num\":0}]\x1e" "b/w==\x1e" "b");
}

TEST_F(EngineIoServerTest, PostDeliversEveryPacketInOrder) {
  start();
  const std::string sid = handshake();
  auto r = post(sid, "4hello\x1e" "4world\x1e" "bAQID\x1e" "6\x1e" "4");
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.body(), "ok");
  using M = RecordingHandler::Message;
  EXPECT_EQ(handler().messages,
            (std::vector<M>{{"hello", false}, {"world", false}, {"\x01\x02\x03", true}, {"", false}}));
  EXPECT_TRUE(handler().closes.empty());
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(EngineIoServerTest, PostGarbageIsA400AndEndsTheSession) {
  start();
  const std::string sid = handshake();
  auto r = post(sid, "4ok\x1ehello");
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
  EXPECT_TRUE(handler().messages.empty());  // nothing of a malformed payload is delivered
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport error"});  // as the reference names it
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_FALSE(conn().send(message_frame("late")));

  auto r2 = get(sid);
  ASSERT_TRUE(wait(r2));
  EXPECT_EQ(r2.status(), 400);
  EXPECT_EQ(r2.body(), error_body(1, "Session ID unknown"));
}

TEST_F(EngineIoServerTest, SecondConcurrentGetIs400AndClosesTheFirst) {
  start();
  const std::string sid = handshake();
  auto first = get(sid);
  drain();
  ASSERT_FALSE(first.ready());
  auto second = get(sid);
  ASSERT_TRUE(wait(second));
  ASSERT_TRUE(wait(first));
  EXPECT_EQ(second.status(), 400);
  EXPECT_EQ(second.body(), error_body(3, "Bad request"));
  EXPECT_EQ(first.status(), 200);
  EXPECT_EQ(first.body(), "1");
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport error"});
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(EngineIoServerTest, ClientCloseAnswersThePendingGetWithNoop) {
  start();
  const std::string sid = handshake();
  auto pending = get(sid);
  drain();
  auto close = post(sid, "1");
  ASSERT_TRUE(wait(close));
  ASSERT_TRUE(wait(pending));
  EXPECT_EQ(close.status(), 200);
  EXPECT_EQ(close.body(), "ok");
  EXPECT_EQ(pending.body(), "6");
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport close"});
  EXPECT_EQ(server_->connections(), 0u);

  auto later = get(sid);
  ASSERT_TRUE(wait(later));
  EXPECT_EQ(later.status(), 400);
  EXPECT_EQ(later.body(), error_body(1, "Session ID unknown"));
}

TEST_F(EngineIoServerTest, ServerCloseWithoutPendingGetIsToldOnTheNextPoll) {
  start();
  const std::string sid = handshake();
  conn().send(message_frame("dropped"));
  conn().close();
  drain();
  EXPECT_EQ(handler().closes, std::vector<std::string>{"forced close"});
  EXPECT_FALSE(conn().send(message_frame("after")));

  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.body(), "1");
  EXPECT_EQ(server_->connections(), 0u);

  auto r2 = get(sid);
  ASSERT_TRUE(wait(r2));
  EXPECT_EQ(r2.status(), 400);
  EXPECT_EQ(r2.body(), error_body(1, "Session ID unknown"));
  EXPECT_EQ(handler().closes.size(), 1u);  // exactly once
}

TEST_F(EngineIoServerTest, ServerCloseAnswersAPendingGetWithClose) {
  start();
  const std::string sid = handshake();
  auto pending = get(sid);
  drain();
  conn().close();
  ASSERT_TRUE(wait(pending));
  EXPECT_EQ(pending.body(), "1");
  EXPECT_EQ(handler().closes, std::vector<std::string>{"forced close"});
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
}

TEST_F(EngineIoServerTest, ServerCloseForgetsTheSessionWhenTheClientNeverPollsAgain) {
  Options o = quiet_options();
  o.ping_interval = 30ms;
  o.ping_timeout = 30ms;
  start(o);
  const std::string sid = handshake();
  conn().close();
  drain();
  EXPECT_EQ(server_->connections(), 1u);  // kept so that the next poll can be told
  ASSERT_TRUE(wait_for([&] { return server_->connections() == 0; }));
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
}

TEST_F(EngineIoServerTest, CloseAllClosesEverySession) {
  start();
  const std::string a = handshake();
  handshake();
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  ASSERT_EQ(server_->connections(), 3u);
  auto pending = get(a);
  drain();
  server_->close_all();
  ASSERT_TRUE(wait(pending));
  EXPECT_EQ(pending.body(), "1");
  EXPECT_TRUE(ws->closed());
  for (auto& hd : handlers_) EXPECT_EQ(hd->closes.size(), 1u);
  h->on_close();
  drain();
  for (auto& hd : handlers_) EXPECT_EQ(hd->closes.size(), 1u);
}

TEST_F(EngineIoServerTest, CloseAllReasonIsServerShuttingDown) {
  start();
  handshake();
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  server_->close_all();
  drain();
  ASSERT_EQ(handlers_.size(), 2u);
  for (auto& hd : handlers_) EXPECT_EQ(hd->closes, std::vector<std::string>{"server shutting down"});
}

TEST_F(EngineIoServerTest, SendQueueOverflowClosesASlowPollingClient) {
  Options o = quiet_options();
  o.max_buffered_bytes = 100;
  start(o);
  const std::string sid = handshake();
  const std::string chunk(30, 'x');
  for (int i = 0; i < 3; ++i) conn().send(message_frame(chunk));  // 93 bytes: fits
  drain();
  EXPECT_TRUE(handler().closes.empty());
  EXPECT_EQ(slow_consumers_, 0);
  conn().send(message_frame(chunk));  // 124 bytes: over
  drain();
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport error"});
  EXPECT_EQ(slow_consumers_, 1);
  EXPECT_FALSE(conn().send(message_frame(chunk)));
  drain();
  EXPECT_EQ(slow_consumers_, 1);

  // Not a forced close: the session is gone at once, nothing of the dropped queue is delivered.
  EXPECT_EQ(server_->connections(), 0u);
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
  EXPECT_EQ(r.body(), error_body(1, "Session ID unknown"));
}

TEST_F(EngineIoServerTest, PolledQueueDoesNotCountAgainstTheBound) {
  Options o = quiet_options();
  o.max_buffered_bytes = 100;
  start(o);
  const std::string sid = handshake();
  const std::string chunk(60, 'x');
  for (int i = 0; i < 5; ++i) {
    conn().send(message_frame(chunk));
    drain();
    auto r = get(sid);
    ASSERT_TRUE(wait(r));
    EXPECT_EQ(r.body(), "4" + chunk);
  }
  EXPECT_TRUE(handler().closes.empty());
  EXPECT_EQ(slow_consumers_, 0);
}

// ---- heartbeat ----------------------------------------------------------------------------------

TEST_F(EngineIoServerTest, PingIsSentAfterThePingInterval) {
  Options o = quiet_options();
  o.ping_interval = 50ms;
  start(o);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string sid = handshake();
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  EXPECT_EQ(r.body(), "2");
}

TEST_F(EngineIoServerTest, PingIsQueuedWhenNoGetIsPending) {
  Options o = quiet_options();
  o.ping_interval = 20ms;
  start(o);
  const std::string sid = handshake();
  fakes::run_for(ioc_, 60ms);
  conn().send(message_frame("m"));
  drain();
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  // Exactly one ping: the next one waits for the pong.
  EXPECT_EQ(r.body(), "2\x1e" "4m");
}

TEST_F(EngineIoServerTest, PongsKeepAPollingSessionAlive) {
  Options o = quiet_options();
  o.ping_interval = 40ms;
  o.ping_timeout = 150ms;
  start(o);
  const std::string sid = handshake();
  // 8 rounds take longer than ping_interval + ping_timeout: without pongs it would be closed.
  for (int round = 0; round < 8; ++round) {
    auto r = get(sid);
    ASSERT_TRUE(wait(r)) << round;
    ASSERT_EQ(r.body(), "2") << round;
    auto pong = post(sid, "3");
    ASSERT_TRUE(wait(pong));
    ASSERT_EQ(pong.body(), "ok");
  }
  EXPECT_TRUE(handler().closes.empty());
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(EngineIoServerTest, MissingPongClosesWithPingTimeout) {
  Options o = quiet_options();
  o.ping_interval = 30ms;
  o.ping_timeout = 30ms;
  start(o);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string sid = handshake();
  ASSERT_TRUE(wait_for([&] { return !handler().closes.empty(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 60ms);
  EXPECT_EQ(handler().closes, std::vector<std::string>{"ping timeout"});
  // As in the reference server, the session is gone at once (no close packet is kept for it).
  EXPECT_EQ(server_->connections(), 0u);
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);
  EXPECT_EQ(r.body(), error_body(1, "Session ID unknown"));
}

TEST_F(EngineIoServerTest, WebSocketHeartbeat) {
  Options o = quiet_options();
  o.ping_interval = 30ms;
  o.ping_timeout = 100ms;
  start(o);
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  for (int round = 0; round < 6; ++round) {
    ASSERT_TRUE(wait_for([&] { return ws->size() == std::size_t(2 + round); })) << round;
    EXPECT_EQ(ws->last(), text_frame("2"));
    h->on_frame("3", false);
  }
  EXPECT_TRUE(handler().closes.empty());
  // Stop answering.
  ASSERT_TRUE(wait_for([&] { return !handler().closes.empty(); }));
  EXPECT_EQ(handler().closes, std::vector<std::string>{"ping timeout"});
  EXPECT_TRUE(ws->closed());
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(EngineIoServerTest, PingFromAV4ClientIsAnError) {
  start();
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  h->on_frame("2", false);
  ASSERT_TRUE(wait_for([&] { return !handler().closes.empty(); }));
  EXPECT_TRUE(ws->closed());
  EXPECT_EQ(server_->connections(), 0u);
}

// ---- WebSocket ----------------------------------------------------------------------------------

TEST_F(EngineIoServerTest, WebSocketFirstSession) {
  start();
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  ASSERT_EQ(conns_.size(), 1u);
  const std::string sid = conn().sid();
  EXPECT_EQ(ws->frame(0), text_frame("0{\"sid\":\"" + sid +
                                     "\",\"upgrades\":[],\"pingInterval\":10000,\"pingTimeout\":5000,"
                                     "\"maxPayload\":12345}"));
  EXPECT_EQ(conn().transport(), "websocket");
  EXPECT_EQ(server_->connections(), 1u);

  h->on_frame("4x", false);
  h->on_frame("\x00\x01"s, true);
  h->on_frame("bAQID", false);
  h->on_frame("6", false);
  drain();
  using M = RecordingHandler::Message;
  EXPECT_EQ(handler().messages, (std::vector<M>{{"x", false}, {"\x00\x01"s, true}, {"\x01\x02\x03", true}}));

  EXPECT_TRUE(conn().send(message_frame("y")));
  EXPECT_TRUE(conn().send(bytes("\x02"), true));
  EXPECT_TRUE(conn().send_packet(message_frame("51-[\"b\",{\"_placeholder\":true,\"num\":0}]"), {bytes("zz")}));
  drain();
  EXPECT_EQ(ws->frames_from(1),
            (std::vector<WsFrame>{text_frame("4y"), binary_frame("\x02"),
                                  text_frame("451-[\"b\",{\"_placeholder\":true,\"num\":0}]"), binary_frame("zz")}));

  // Polling requests for a WebSocket session are refused.
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.status(), 400);

  // The peer goes away.
  h->on_close();
  drain();
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport close"});
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_FALSE(conn().send(message_frame("late")));
}

TEST_F(EngineIoServerTest, WebSocketParseErrorClosesTheSession) {
  start();
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  h->on_frame("9nope", false);
  h->on_frame("4after", false);
  drain();
  EXPECT_TRUE(ws->closed());
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport error"});  // as the reference names it
  EXPECT_TRUE(handler().messages.empty());
  h->on_close();
  drain();
  EXPECT_EQ(handler().closes.size(), 1u);
}

TEST_F(EngineIoServerTest, ServerCloseOfAWebSocketSession) {
  start();
  auto ws = std::make_shared<FakeWsConnection>();
  auto h = open_websocket(ws);
  conn().close();
  drain();
  EXPECT_TRUE(ws->closed());
  EXPECT_EQ(handler().closes, std::vector<std::string>{"forced close"});
  EXPECT_EQ(server_->connections(), 0u);
  h->on_close();  // src/net reports the close that followed
  drain();
  EXPECT_EQ(handler().closes.size(), 1u);
}

TEST_F(EngineIoServerTest, WebSocketHandshakeFailureForgetsTheSession) {
  start();
  auto h = server_->handle_upgrade(fakes::make_request("GET", "/socket.io/", "EIO=4&transport=websocket"));
  ASSERT_TRUE(h);
  h->on_close();  // no on_open: the WebSocket handshake itself failed
  ASSERT_TRUE(wait_for([&] { return server_->connections() == 0; }));
}

TEST_F(EngineIoServerTest, SlowWebSocketConsumerIsRefused) {
  start();
  auto ws = std::make_shared<FakeWsConnection>(200);
  auto h = open_websocket(ws);
  drain();
  EXPECT_TRUE(conn().send(message_frame(std::string(10, 'a'))));
  EXPECT_FALSE(conn().send(message_frame(std::string(500, 'a'))));
}

// ---- upgrade ------------------------------------------------------------------------------------

struct Upgrade {
  std::shared_ptr<FakeWsConnection> ws = std::make_shared<FakeWsConnection>();
  std::shared_ptr<net::WsHandler> handler;
};

class EngineIoUpgradeTest : public EngineIoServerTest {
 protected:
  Upgrade begin_upgrade(const std::string& sid) {
    Upgrade u;
    u.handler = server_->handle_upgrade(
        fakes::make_request("GET", "/socket.io/", "EIO=4&transport=websocket&sid=" + sid));
    EXPECT_TRUE(u.handler);
    if (u.handler) u.handler->on_open(u.ws);
    drain();
    return u;
  }
};

TEST_F(EngineIoUpgradeTest, ProbeThenUpgradeMovesTheSessionToWebSocket) {
  start();
  const std::string sid = handshake();
  auto pending = get(sid);
  drain();
  auto u = begin_upgrade(sid);
  EXPECT_EQ(u.ws->size(), 0u);  // no open packet on an upgrade
  EXPECT_FALSE(pending.ready());

  u.handler->on_frame("2probe", false);
  ASSERT_TRUE(wait(pending));
  EXPECT_EQ(u.ws->frames(), std::vector<WsFrame>{text_frame("3probe")});
  EXPECT_EQ(pending.body(), "6");
  EXPECT_EQ(conn().transport(), "polling");

  // A poll during the upgrade completes at once.
  auto during = get(sid);
  ASSERT_TRUE(wait(during));
  EXPECT_EQ(during.body(), "6");

  // Queued before the switch: goes over the WebSocket once it is settled, in order.
  conn().send(message_frame("before1"));
  conn().send(message_frame("before2"));
  drain();
  u.handler->on_frame("5", false);
  drain();
  EXPECT_EQ(conn().transport(), "websocket");
  conn().send(message_frame("after"));
  conn().send(bytes("\x07"), true);
  drain();
  EXPECT_EQ(u.ws->frames(), (std::vector<WsFrame>{text_frame("3probe"), text_frame("4before1"), text_frame("4before2"),
                                                  text_frame("4after"), binary_frame("\x07")}));

  // Messages now come over the WebSocket.
  u.handler->on_frame("4from-ws", false);
  drain();
  ASSERT_EQ(handler().messages.size(), 1u);
  EXPECT_EQ(handler().messages[0].data, "from-ws");

  // Polling is over for this sid.
  auto late_get = get(sid);
  auto late_post = post(sid, "4x");
  ASSERT_TRUE(wait(late_get));
  ASSERT_TRUE(wait(late_post));
  EXPECT_EQ(late_get.status(), 400);
  EXPECT_EQ(late_post.status(), 400);
  EXPECT_EQ(handler().messages.size(), 1u);
  EXPECT_TRUE(handler().closes.empty());

  // The upgraded WebSocket closing ends the session.
  u.handler->on_close();
  drain();
  EXPECT_EQ(handler().closes, std::vector<std::string>{"transport close"});
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(EngineIoUpgradeTest, SendsFromAnotherThreadDuringTheSwitchKeepTheirOrder) {
  start();
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  u.handler->on_frame("2probe", false);
  drain();
  constexpr int kCount = 200;
  std::thread sender([&] {
    for (int i = 0; i < kCount; ++i) conn().send(message_frame(std::to_string(i)));
  });
  u.handler->on_frame("5", false);
  // The io_context runs here while the sender is still sending.
  ASSERT_TRUE(wait_for([&] { return u.ws->size() >= kCount + 1; }));
  sender.join();
  drain();
  auto frames = u.ws->frames_from(1);
  ASSERT_EQ(frames.size(), std::size_t(kCount));
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(frames[i], text_frame("4" + std::to_string(i))) << i;
}

TEST_F(EngineIoUpgradeTest, ProbeWithQueuedMessagesFlushesThemToThePendingGet) {
  start();
  const std::string sid = handshake();
  auto pending = get(sid);
  drain();
  auto u = begin_upgrade(sid);
  // Sent while the GET is pending: answered at once, before the probe.
  conn().send(message_frame("m"));
  ASSERT_TRUE(wait(pending));
  EXPECT_EQ(pending.body(), "4m");
  u.handler->on_frame("2probe", false);
  drain();
  EXPECT_EQ(u.ws->frames(), std::vector<WsFrame>{text_frame("3probe")});
}

TEST_F(EngineIoUpgradeTest, SecondWebSocketForAnUpgradedSessionIsClosed) {
  start();
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  u.handler->on_frame("2probe", false);
  u.handler->on_frame("5", false);
  drain();
  ASSERT_EQ(conn().transport(), "websocket");

  auto second = begin_upgrade(sid);
  EXPECT_TRUE(second.ws->closed());
  second.handler->on_frame("2probe", false);
  second.handler->on_close();
  drain();
  EXPECT_EQ(second.ws->size(), 0u);
  // The session and its WebSocket are untouched.
  EXPECT_FALSE(u.ws->closed());
  EXPECT_TRUE(handler().closes.empty());
  conn().send(message_frame("still"));
  drain();
  EXPECT_EQ(u.ws->last(), text_frame("4still"));
}

TEST_F(EngineIoUpgradeTest, SecondProbeDuringAnUpgradeIsClosed) {
  start();
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  auto other = begin_upgrade(sid);
  EXPECT_TRUE(other.ws->closed());
  EXPECT_FALSE(u.ws->closed());
  u.handler->on_frame("2probe", false);
  drain();
  EXPECT_EQ(u.ws->frames(), std::vector<WsFrame>{text_frame("3probe")});
}

TEST_F(EngineIoUpgradeTest, UpgradeTimeoutClosesTheProbeAndPollingContinues) {
  Options o = quiet_options();
  o.upgrade_timeout = 100ms;
  start(o);
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  u.handler->on_frame("2probe", false);
  drain();
  ASSERT_EQ(u.ws->size(), 1u);
  ASSERT_TRUE(wait_for([&] { return u.ws->closed(); }));
  u.handler->on_close();  // src/net reports the close
  drain();
  EXPECT_TRUE(handler().closes.empty());
  EXPECT_EQ(conn().transport(), "polling");

  // Polling works as before: a GET is held again (no more upgrade noops) until a message.
  auto r = get(sid);
  drain();
  EXPECT_FALSE(r.ready());
  conn().send(message_frame("still polling"));
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.body(), "4still polling");
  auto p = post(sid, "4up");
  ASSERT_TRUE(wait(p));
  EXPECT_EQ(p.body(), "ok");
  ASSERT_EQ(handler().messages.size(), 1u);
  EXPECT_EQ(u.ws->size(), 1u);  // nothing went to the dead probe
}

TEST_F(EngineIoUpgradeTest, UnexpectedFrameDuringProbeAbortsTheUpgrade) {
  start();
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  u.handler->on_frame("4hello", false);
  drain();
  EXPECT_TRUE(u.ws->closed());
  EXPECT_TRUE(handler().messages.empty());
  EXPECT_TRUE(handler().closes.empty());
  // "5" before "2probe" on a new candidate aborts as well.
  auto u2 = begin_upgrade(sid);
  EXPECT_FALSE(u2.ws->closed());
  u2.handler->on_frame("5", false);
  drain();
  EXPECT_TRUE(u2.ws->closed());
  EXPECT_EQ(conn().transport(), "polling");
  conn().send(message_frame("m"));
  drain();
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.body(), "4m");
}

TEST_F(EngineIoUpgradeTest, ProbeClosedByTheClientKeepsPolling) {
  start();
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  u.handler->on_frame("2probe", false);
  u.handler->on_close();
  drain();
  EXPECT_TRUE(handler().closes.empty());
  EXPECT_EQ(server_->connections(), 1u);
  conn().send(message_frame("m"));
  drain();
  auto r = get(sid);
  ASSERT_TRUE(wait(r));
  EXPECT_EQ(r.body(), "4m");
  // And a later upgrade can still succeed.
  auto again = begin_upgrade(sid);
  again.handler->on_frame("2probe", false);
  again.handler->on_frame("5", false);
  drain();
  EXPECT_EQ(conn().transport(), "websocket");
}

TEST_F(EngineIoUpgradeTest, HeartbeatFollowsTheUpgradedTransport) {
  Options o = quiet_options();
  o.ping_interval = 30ms;
  o.ping_timeout = 200ms;
  start(o);
  const std::string sid = handshake();
  auto u = begin_upgrade(sid);
  u.handler->on_frame("2probe", false);
  u.handler->on_frame("5", false);
  drain();
  ASSERT_EQ(conn().transport(), "websocket");
  // The first ping may have been queued before the switch (it is flushed to the WebSocket then);
  // answering every ping over the WebSocket keeps the session alive.
  std::size_t seen = 1;
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(wait_for([&] { return u.ws->size() > seen; })) << round;
    seen = u.ws->size();
    EXPECT_EQ(u.ws->last(), text_frame("2"));
    u.handler->on_frame("3", false);
  }
  EXPECT_TRUE(handler().closes.empty());
}

}  // namespace
}  // namespace chat::engineio
