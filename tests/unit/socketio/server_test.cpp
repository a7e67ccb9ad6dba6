// The Socket.IO server over a real Engine.IO server with fake transports: each test client is a
// WebSocket-first Engine.IO connection (engine().handle_upgrade + FakeWsConnection) whose frames
// the test writes and reads byte for byte. The io_context runs on the test thread only.
#include "socketio/server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_ws.hpp"

namespace chat::socketio {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using fakes::binary_frame;
using fakes::CapturedResponse;
using fakes::FakeWsConnection;
using fakes::text_frame;
using fakes::WsFrame;
namespace json = boost::json;

/// One client: its WebSocket as src/net would drive it.
struct Peer {
  std::shared_ptr<FakeWsConnection> ws = std::make_shared<FakeWsConnection>();
  std::shared_ptr<net::WsHandler> handler;
  std::size_t read = 1;  ///< frames already taken (the open packet is frame 0)
  bool gone = false;     ///< on_close() delivered
};

struct ReceivedEvent {
  SocketPtr socket;
  Event event;
  Ack ack;
};

class SocketIoServerTest : public ::testing::Test {
 protected:
  static engineio::Options engine_options() {
    engineio::Options o;
    o.ping_interval = 10s;  // no heartbeat frames in the way
    o.ping_timeout = 5s;
    return o;
  }
  static Options no_recovery() {
    Options o;
    o.recovery = false;
    return o;
  }

  /// Creates the server with "/" (and the handlers below) plus `extra` namespaces.
  void start(Options o, std::vector<std::string> extra = {}, engineio::Options eo = engine_options()) {
    server_ = std::make_unique<Server>(std::move(o), std::move(eo), ioc_);
    wire(server_->of("/"));
    for (const auto& n : extra) wire(server_->of(n));
  }

  void wire(Namespace& nsp) {
    nsp.on_connection([this](const SocketPtr& s) { connections_.push_back(s); });
    nsp.on_event([this](const SocketPtr& s, Event&& ev, Ack ack) {
      events_.push_back(ReceivedEvent{s, std::move(ev), std::move(ack)});
    });
    nsp.on_disconnect([this](const SocketPtr& s, std::string_view reason) {
      disconnects_.emplace_back(s->id(), std::string(reason));
    });
  }

  void TearDown() override {
    if (!server_) return;
    // Closing breaks the Engine.IO session <-> Socket.IO client reference cycle.
    server_->engine().close_all();
    fakes::drain(ioc_);
    for (auto& p : peers_)
      if (!p->gone && p->handler) p->handler->on_close();
    fakes::drain(ioc_);
    for (auto& t : threads_) t.join();
  }

  Peer& open() {
    auto p = std::make_unique<Peer>();
    p->handler = server_->engine().handle_upgrade(
        fakes::make_request("GET", "/socket.io/", "EIO=4&transport=websocket", {},
                            {{"user-agent", "sio-test"}, {"upgrade", "websocket"}}));
    EXPECT_TRUE(p->handler);
    if (p->handler) p->handler->on_open(p->ws);
    EXPECT_TRUE(wait_for([&] { return p->ws->size() >= 1; }));
    EXPECT_TRUE(p->ws->frame(0).data.starts_with("0{\"sid\":\"")) << p->ws->frame(0).data;
    peers_.push_back(std::move(p));
    return *peers_.back();
  }

  /// The client sends a text frame (an Engine.IO packet, e.g. "40").
  void send(Peer& p, std::string frame) {
    p.handler->on_frame(std::move(frame), false);
    drain();
  }
  void send_binary(Peer& p, std::string bytes) {
    p.handler->on_frame(std::move(bytes), true);
    drain();
  }
  /// The transport goes away (what src/net reports when the TCP connection drops).
  void drop(Peer& p) {
    p.handler->on_close();
    p.gone = true;
    drain();
  }

  /// Frames received since the last take().
  std::vector<WsFrame> take(Peer& p) {
    drain();
    auto f = p.ws->frames_from(p.read);
    p.read += f.size();
    return f;
  }
  /// Waits for the next frame and takes it (an empty text frame on timeout).
  WsFrame next(Peer& p, std::chrono::milliseconds timeout = 5s) {
    if (!wait_for([&] { return p.ws->size() > p.read; }, timeout)) return WsFrame{};
    return p.ws->frame(p.read++);
  }

  /// Sends a CONNECT and returns the reply frame.
  std::string connect(Peer& p, std::string frame = "40") {
    send(p, std::move(frame));
    return next(p).data;
  }

  /// The "sid" (or another string field) of a CONNECT reply such as 40{"sid":"…"}.
  static std::string field(const std::string& reply, std::string_view name, std::size_t skip = 2) {
    auto v = json::parse(reply.substr(skip));
    auto* s = v.as_object().if_contains(name);
    return s && s->is_string() ? std::string(s->get_string()) : std::string();
  }

  /// The offset appended by recovery: the last element of an event frame "42[…]".
  static std::string offset_of(const std::string& event_frame) {
    auto v = json::parse(event_frame.substr(2));
    const auto& arr = v.as_array();
    return arr.empty() || !arr.back().is_string() ? std::string() : std::string(arr.back().get_string());
  }

  bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
    return fakes::run_until(ioc_, pred, timeout);
  }
  void drain() { fakes::drain(ioc_); }

  boost::asio::io_context ioc_;
  std::vector<SocketPtr> connections_;
  std::vector<ReceivedEvent> events_;
  std::vector<std::pair<std::string, std::string>> disconnects_;  // socket id, reason
  std::vector<std::thread> threads_;
  std::unique_ptr<Server> server_;
  std::vector<std::unique_ptr<Peer>> peers_;
};

// ---- connect ------------------------------------------------------------------------------------

TEST_F(SocketIoServerTest, ConnectToTheMainNamespace) {
  start(no_recovery());
  auto& p = open();
  const std::string reply = connect(p);
  ASSERT_EQ(connections_.size(), 1u);
  const SocketPtr s = connections_[0];
  EXPECT_EQ(reply, "40{\"sid\":\"" + s->id() + "\"}");
  EXPECT_EQ(s->id().size(), 20u);
  EXPECT_EQ(p.ws->frame(0).data.find(s->id()), std::string::npos);  // not the Engine.IO sid
  EXPECT_EQ(s->nsp(), "/");
  EXPECT_TRUE(s->connected());
  EXPECT_FALSE(s->recovered());
  EXPECT_TRUE(s->auth().empty());
  EXPECT_EQ(s->handshake().header("user-agent"), "sio-test");
  EXPECT_EQ(server_->of("/").socket_count(), 1u);
  EXPECT_FALSE(p.ws->closed());
  EXPECT_TRUE(take(p).empty());

  // Another client gets another socket id.
  auto& q = open();
  const std::string reply2 = connect(q);
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), s->id());
  EXPECT_EQ(reply2, "40{\"sid\":\"" + connections_[1]->id() + "\"}");
  EXPECT_EQ(server_->of("/").socket_count(), 2u);
}

TEST_F(SocketIoServerTest, ConnectReplyCarriesAPidWithRecovery) {
  Options o;
  o.recovery = true;
  start(o);
  auto& p = open();
  const std::string reply = connect(p);
  ASSERT_EQ(connections_.size(), 1u);
  const std::string pid = field(reply, "pid");
  EXPECT_EQ(pid.size(), 20u);
  EXPECT_NE(pid, connections_[0]->id());
  EXPECT_EQ(reply, "40{\"sid\":\"" + connections_[0]->id() + "\",\"pid\":\"" + pid + "\"}");
}

TEST_F(SocketIoServerTest, ConnectOverPolling) {
  start(no_recovery());
  auto http = [&](std::string method, std::string query, std::string body = {}) {
    CapturedResponse r;
    server_->engine().handle_http(fakes::make_request(std::move(method), "/socket.io/", std::move(query),
                                                      std::move(body)),
                                  r.responder());
    EXPECT_TRUE(wait_for([&] { return r.ready(); }));
    return r;
  };
  auto hs = http("GET", "EIO=4&transport=polling");
  const std::string sid = field(hs.body(), "sid", 1);
  ASSERT_EQ(sid.size(), 20u);
  const std::string q = "EIO=4&transport=polling&sid=" + sid;
  EXPECT_EQ(http("POST", q, "40").body(), "ok");
  auto reply = http("GET", q);
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_EQ(reply.body(), "40{\"sid\":\"" + connections_[0]->id() + "\"}");
  EXPECT_EQ(http("POST", q, "42[\"hi\"]\x1e" "42[\"there\"]").body(), "ok");
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].event.name(), "hi");
  EXPECT_EQ(events_[1].event.name(), "there");
  connections_[0]->emit(R"(["a"])");
  connections_[0]->emit(R"(["b"])");
  drain();
  EXPECT_EQ(http("GET", q).body(), "42[\"a\"]\x1e" "42[\"b\"]");
}

TEST_F(SocketIoServerTest, AuthPayloadIsVisibleToMiddleware) {
  start(Options{});  // recovery on: pid/offset are not part of the auth
  std::optional<json::object> seen;
  server_->of("/").use([&](const SocketPtr& s, Namespace::Next next) {
    seen = s->auth();
    s->data = std::string("alice");
    next(std::nullopt);
  });
  auto& p = open();
  const std::string reply = connect(p, R"(40{"token":"abc","n":1,"pid":"unknown","offset":"7"})");
  ASSERT_TRUE(seen);
  EXPECT_EQ(json::serialize(*seen), R"({"token":"abc","n":1})");
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_TRUE(reply.starts_with("40{\"sid\":\"" + connections_[0]->id() + "\"")) << reply;
  EXPECT_EQ(json::serialize(connections_[0]->auth()), R"({"token":"abc","n":1})");
  EXPECT_EQ(std::any_cast<std::string>(connections_[0]->data), "alice");
  EXPECT_FALSE(connections_[0]->recovered());
}

// chatd's setting: the payload (with the token) is seen by the middleware, then not kept.
TEST_F(SocketIoServerTest, AuthPayloadIsFreedAfterMiddlewareWithoutKeepAuth) {
  Options o;
  o.keep_auth = false;
  start(o);
  std::optional<json::object> seen;
  server_->of("/").use([&](const SocketPtr& s, Namespace::Next next) {
    seen = s->auth();
    next(std::nullopt);
  });
  auto& p = open();
  const std::string reply = connect(p, R"(40{"token":"abc"})");
  ASSERT_TRUE(seen);
  EXPECT_EQ(json::serialize(*seen), R"({"token":"abc"})");
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_TRUE(reply.starts_with("40{\"sid\":")) << reply;
  EXPECT_TRUE(connections_[0]->auth().empty());
}

TEST_F(SocketIoServerTest, MiddlewaresRunInOrder) {
  start(no_recovery());
  std::vector<int> order;
  server_->of("/").use([&](const SocketPtr&, Namespace::Next next) {
    order.push_back(1);
    next(std::nullopt);
  });
  server_->of("/").use([&](const SocketPtr&, Namespace::Next next) {
    order.push_back(2);
    next(std::nullopt);
  });
  auto& p = open();
  connect(p);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(connections_.size(), 1u);
}

TEST_F(SocketIoServerTest, MiddlewareRefusalIsAConnectError) {
  start(no_recovery());
  int calls = 0;
  server_->of("/").use([&](const SocketPtr& s, Namespace::Next next) {
    ++calls;
    const auto* token = s->auth().if_contains("token");
    if (token && *token == "good") return next(std::nullopt);
    if (token) return next(ConnectError{"bad token", ""});
    next(ConnectError{"not authorized", R"({"code":401,"hint":"login"})"});
  });
  bool second_ran = false;
  server_->of("/").use([&](const SocketPtr&, Namespace::Next next) {
    second_ran = true;
    next(std::nullopt);
  });
  auto& p = open();
  EXPECT_EQ(connect(p), R"(44{"message":"not authorized","data":{"code":401,"hint":"login"}})");
  EXPECT_FALSE(second_ran);
  EXPECT_TRUE(connections_.empty());
  EXPECT_EQ(server_->of("/").socket_count(), 0u);
  EXPECT_FALSE(p.ws->closed());  // the Engine.IO connection stays: the client may retry

  EXPECT_EQ(connect(p, R"(40{"token":"nope"})"), R"(44{"message":"bad token"})");
  EXPECT_TRUE(connections_.empty());

  // A retry on the same connection succeeds.
  const std::string ok = connect(p, R"(40{"token":"good"})");
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_EQ(ok, "40{\"sid\":\"" + connections_[0]->id() + "\"}");
  EXPECT_TRUE(second_ran);
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(disconnects_.empty());
}

TEST_F(SocketIoServerTest, MiddlewareMayCallNextFromAnotherThread) {
  start(no_recovery());
  std::promise<void> go;
  std::shared_future<void> gate = go.get_future().share();
  server_->of("/").use([&, gate](const SocketPtr&, Namespace::Next next) {
    threads_.emplace_back([gate, next = std::move(next)] {
      gate.wait();
      next(std::nullopt);
    });
  });
  auto& p = open();
  send(p, "40");
  EXPECT_TRUE(take(p).empty());  // not decided yet
  go.set_value();
  const WsFrame reply = next(p);
  ASSERT_EQ(connections_.size(), 1u);
  EXPECT_EQ(reply, text_frame("40{\"sid\":\"" + connections_[0]->id() + "\"}"));
  // Events work after an asynchronous accept.
  send(p, R"(42["after"])");
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].event.name(), "after");
}

TEST_F(SocketIoServerTest, AsyncRefusalFromAnotherThread) {
  start(no_recovery());
  server_->of("/").use([&](const SocketPtr&, Namespace::Next next) {
    threads_.emplace_back([next = std::move(next)] { next(ConnectError{"later no", "\"why\""}); });
  });
  auto& p = open();
  send(p, "40");
  EXPECT_EQ(next(p), text_frame(R"(44{"message":"later no","data":"why"})"));
  EXPECT_TRUE(connections_.empty());
}

TEST_F(SocketIoServerTest, UnknownNamespaceIsRefused) {
  start(no_recovery(), {"/admin"});
  auto& p = open();
  EXPECT_EQ(connect(p, "40/x,"), R"(44/x,{"message":"Invalid namespace"})");
  EXPECT_EQ(connect(p, R"(40/nope,{"token":"t"})"), R"(44/nope,{"message":"Invalid namespace"})");
  EXPECT_FALSE(p.ws->closed());
  EXPECT_TRUE(connections_.empty());

  // The same connection may then join real namespaces.
  const std::string main = connect(p);
  const std::string admin = connect(p, "40/admin,");
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_EQ(main, "40{\"sid\":\"" + connections_[0]->id() + "\"}");
  EXPECT_EQ(admin, "40/admin,{\"sid\":\"" + connections_[1]->id() + "\"}");
  EXPECT_EQ(connections_[1]->nsp(), "/admin");
  EXPECT_EQ(server_->of("/admin").socket_count(), 1u);

  send(p, R"(42/admin,["in-admin"])");
  send(p, R"(42["in-main"])");
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].socket, connections_[1]);
  EXPECT_EQ(events_[1].socket, connections_[0]);
}

// ---- events and acks ----------------------------------------------------------------------------

TEST_F(SocketIoServerTest, EventIsDispatchedAndAcked) {
  start(no_recovery());
  auto& p = open();
  connect(p);
  send(p, R"(4217["hello",1,{"a":[true,null]},"x"])");
  ASSERT_EQ(events_.size(), 1u);
  ReceivedEvent e = events_[0];
  EXPECT_EQ(e.socket, connections_[0]);
  EXPECT_EQ(e.event.name(), "hello");
  EXPECT_EQ(json::serialize(e.event.args), R"(["hello",1,{"a":[true,null]},"x"])");
  EXPECT_TRUE(e.event.buffers.empty());
  ASSERT_TRUE(e.ack);
  EXPECT_TRUE(take(p).empty());  // nothing until the handler acks

  e.ack(R"(["ok",{"n":2}])");
  e.ack(R"(["twice"])");  // only the first call counts
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame(R"(4317["ok",{"n":2}])")});

  // Without an ack id the Ack is empty.
  send(p, R"(42["fire-and-forget"])");
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_FALSE(events_[1].ack);
}

TEST_F(SocketIoServerTest, AckFromAnotherThreadAndInANamespace) {
  start(no_recovery(), {"/admin"});
  auto& p = open();
  connect(p, "40/admin,");
  send(p, R"(42/admin,5["q"])");
  ASSERT_EQ(events_.size(), 1u);
  Ack ack = events_[0].ack;
  std::thread([ack] { ack(R"([42])"); }).join();
  EXPECT_EQ(next(p), text_frame(R"(43/admin,5[42])"));
}

TEST_F(SocketIoServerTest, BinaryAck) {
  start(no_recovery());
  auto& p = open();
  connect(p);
  send(p, R"(423["get"])");
  ASSERT_EQ(events_.size(), 1u);
  events_[0].ack(R"([{"_placeholder":true,"num":0},"meta"])", {"\x00\x01\xff"s});
  EXPECT_EQ(take(p), (std::vector<WsFrame>{text_frame(R"(461-3[{"_placeholder":true,"num":0},"meta"])"),
                                           binary_frame("\x00\x01\xff"s)}));
}

TEST_F(SocketIoServerTest, BinaryEventFromTheClient) {
  start(no_recovery());
  auto& p = open();
  connect(p);
  send(p, R"(452-9["upload",{"_placeholder":true,"num":0},{"n":{"_placeholder":true,"num":1}}])");
  EXPECT_TRUE(events_.empty());  // waits for its attachments
  send_binary(p, "\xff\x00"s);
  EXPECT_TRUE(events_.empty());
  send_binary(p, "second");
  ASSERT_EQ(events_.size(), 1u);
  const auto& e = events_[0];
  EXPECT_EQ(e.event.name(), "upload");
  EXPECT_EQ(json::serialize(e.event.args),
            R"(["upload",{"_placeholder":true,"num":0},{"n":{"_placeholder":true,"num":1}}])");
  EXPECT_EQ(e.event.buffers, (std::vector<std::string>{"\xff\x00"s, "second"}));
  ASSERT_TRUE(e.ack);
  e.ack("[true]");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame("439[true]")});
  EXPECT_FALSE(p.ws->closed());
}

TEST_F(SocketIoServerTest, EmitWithBuffers) {
  start(no_recovery());
  auto& p = open();
  connect(p);
  connections_[0]->emit(R"(["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])",
                        {"abc", "\x00"s});
  EXPECT_EQ(take(p),
            (std::vector<WsFrame>{text_frame(R"(452-["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"),
                                  binary_frame("abc"), binary_frame("\x00"s)}));
  connections_[0]->emit(R"(["plain",1])");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame(R"(42["plain",1])")});
}

TEST_F(SocketIoServerTest, AckWithoutHandlerIsEmpty) {
  server_ = std::make_unique<Server>(no_recovery(), engine_options(), ioc_);
  server_->of("/");  // no on_event handler
  auto& p = open();
  connect(p);
  send(p, R"(428["x"])");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame("438[]")});
}

// ---- rooms --------------------------------------------------------------------------------------

TEST_F(SocketIoServerTest, RoomsJoinEmitExceptLeave) {
  start(no_recovery());
  auto& a = open();
  auto& b = open();
  auto& c = open();
  connect(a);
  connect(b);
  connect(c);
  ASSERT_EQ(connections_.size(), 3u);
  auto sa = connections_[0], sb = connections_[1], sc = connections_[2];
  sa->join("r");
  sb->join("r");
  sb->join("r");  // twice is once

  auto& nsp = server_->of("/");
  nsp.emit_to("r", R"(["m",1])");
  EXPECT_EQ(take(a), std::vector<WsFrame>{text_frame(R"(42["m",1])")});
  EXPECT_EQ(take(b), std::vector<WsFrame>{text_frame(R"(42["m",1])")});
  EXPECT_TRUE(take(c).empty());

  nsp.emit_to("r", R"(["m",2])", sa->id());
  EXPECT_TRUE(take(a).empty());
  EXPECT_EQ(take(b), std::vector<WsFrame>{text_frame(R"(42["m",2])")});

  // Every socket is in the room named after its id.
  nsp.emit_to(sc->id(), R"(["direct"])");
  EXPECT_TRUE(take(a).empty());
  EXPECT_TRUE(take(b).empty());
  EXPECT_EQ(take(c), std::vector<WsFrame>{text_frame(R"(42["direct"])")});
  // It may leave its own room, and join it again.
  sc->leave(sc->id());
  nsp.emit_to(sc->id(), R"(["direct",2])");
  EXPECT_TRUE(take(c).empty());
  sc->join(sc->id());
  sc->join(sc->id());  // twice is once
  nsp.emit_to(sc->id(), R"(["direct",3])");
  EXPECT_EQ(take(c), std::vector<WsFrame>{text_frame(R"(42["direct",3])")});
  // Another socket may join a room named after a socket's id: each member gets it once, and
  // `except` still applies to the owner.
  sa->join(sc->id());
  nsp.emit_to(sc->id(), R"(["direct",4])");
  EXPECT_EQ(take(a), std::vector<WsFrame>{text_frame(R"(42["direct",4])")});
  EXPECT_EQ(take(c), std::vector<WsFrame>{text_frame(R"(42["direct",4])")});
  nsp.emit_to(sc->id(), R"(["direct",5])", sc->id());
  EXPECT_EQ(take(a), std::vector<WsFrame>{text_frame(R"(42["direct",5])")});
  EXPECT_TRUE(take(c).empty());
  sa->leave(sc->id());

  sa->leave("r");
  nsp.emit_to("r", R"(["m",3])");
  EXPECT_TRUE(take(a).empty());
  EXPECT_EQ(take(b), std::vector<WsFrame>{text_frame(R"(42["m",3])")});

  nsp.emit_to("nobody", R"(["m",4])");
  for (Peer* p : {&a, &b, &c}) EXPECT_TRUE(take(*p).empty());

  nsp.emit_all(R"(["all"])");
  for (Peer* p : {&a, &b, &c}) EXPECT_EQ(take(*p), std::vector<WsFrame>{text_frame(R"(42["all"])")});

  // A disconnected socket leaves its rooms.
  send(b, "41");
  nsp.emit_to("r", R"(["m",5])");
  nsp.emit_all(R"(["all2"])");
  EXPECT_TRUE(take(b).empty());
  EXPECT_EQ(take(a), std::vector<WsFrame>{text_frame(R"(42["all2"])")});  // a had left "r"
  EXPECT_EQ(take(c), std::vector<WsFrame>{text_frame(R"(42["all2"])")});
}

TEST_F(SocketIoServerTest, NamespacesHaveSeparateRooms) {
  start(no_recovery(), {"/admin"});
  auto& p = open();
  connect(p);
  connect(p, "40/admin,");
  connections_[0]->join("r");
  connections_[1]->join("r");
  server_->of("/admin").emit_to("r", R"(["x"])");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame(R"(42/admin,["x"])")});
  server_->of("/admin").emit_all(R"(["y"])");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame(R"(42/admin,["y"])")});
}

// ---- protocol errors and timeouts ---------------------------------------------------------------

TEST_F(SocketIoServerTest, RepeatedConnectClosesTheConnection) {
  start(no_recovery());
  auto& p = open();
  connect(p);
  send(p, "40");
  EXPECT_TRUE(p.ws->closed());
  ASSERT_EQ(disconnects_.size(), 1u);
  EXPECT_EQ(disconnects_[0].first, connections_[0]->id());
  EXPECT_FALSE(connections_[0]->connected());
  EXPECT_EQ(server_->of("/").socket_count(), 0u);
  EXPECT_EQ(server_->engine().connections(), 0u);
}

TEST_F(SocketIoServerTest, RepeatedConnectWhileTheFirstIsPendingCloses) {
  start(no_recovery());
  std::vector<Namespace::Next> held;
  server_->of("/").use([&](const SocketPtr&, Namespace::Next next) { held.push_back(std::move(next)); });
  auto& p = open();
  send(p, "40");
  send(p, "40");
  EXPECT_TRUE(p.ws->closed());
  ASSERT_EQ(held.size(), 1u);
  held[0](std::nullopt);  // too late: the connection is gone
  drain();
  EXPECT_TRUE(connections_.empty());
  EXPECT_EQ(server_->of("/").socket_count(), 0u);
}

TEST_F(SocketIoServerTest, EventBeforeConnectCloses) {
  start(no_recovery());
  auto& p = open();
  send(p, R"(42["early"])");
  EXPECT_TRUE(p.ws->closed());
  EXPECT_TRUE(events_.empty());
  EXPECT_EQ(server_->engine().connections(), 0u);
}

TEST_F(SocketIoServerTest, EventForANamespaceNotJoinedCloses) {
  start(no_recovery(), {"/admin"});
  auto& p = open();
  connect(p);
  send(p, R"(42/admin,["x"])");
  EXPECT_TRUE(p.ws->closed());
  EXPECT_TRUE(events_.empty());
  ASSERT_EQ(disconnects_.size(), 1u);
}

TEST_F(SocketIoServerTest, MalformedPacketsClose) {
  start(no_recovery());
  for (std::string bad : {"42[\"x\"", "49", "42{\"not\":\"array\"}", "42[\"connect\"]", "44{\"message\":\"x\"}",
                          "4abc"}) {
    auto& p = open();
    connect(p);
    send(p, bad);
    EXPECT_TRUE(p.ws->closed()) << bad;
  }
  EXPECT_TRUE(events_.empty());
  // An attachment nobody announced.
  auto& p = open();
  connect(p);
  send_binary(p, "stray");
  EXPECT_TRUE(p.ws->closed());
}

TEST_F(SocketIoServerTest, ConnectTimeoutClosesAnIdleConnection) {
  Options o = no_recovery();
  o.connect_timeout = 150ms;
  start(o);
  const auto t0 = std::chrono::steady_clock::now();
  auto& idle = open();
  auto& active = open();
  connect(active);
  ASSERT_TRUE(wait_for([&] { return idle.ws->closed(); }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  fakes::run_for(ioc_, 100ms);
  EXPECT_FALSE(active.ws->closed());
  EXPECT_EQ(server_->engine().connections(), 1u);
}

TEST_F(SocketIoServerTest, RefusedConnectionStillTimesOut) {
  Options o = no_recovery();
  o.connect_timeout = 50ms;
  start(o);
  server_->of("/").use([](const SocketPtr&, Namespace::Next next) { next(ConnectError{"no", ""}); });
  auto& p = open();
  EXPECT_EQ(connect(p), R"(44{"message":"no"})");
  ASSERT_TRUE(wait_for([&] { return p.ws->closed(); }));
}

// ---- disconnect ---------------------------------------------------------------------------------

TEST_F(SocketIoServerTest, ClientDisconnect) {
  start(Options{});  // recovery on: a client disconnect is still final
  auto& p = open();
  const std::string reply = connect(p);
  const std::string pid = field(reply, "pid");
  ASSERT_EQ(connections_.size(), 1u);
  const auto s = connections_[0];
  s->join("r");
  s->emit(R"(["seen"])");
  const std::string offset = offset_of(next(p).data);
  ASSERT_FALSE(offset.empty());

  send(p, "41");
  ASSERT_EQ(disconnects_.size(), 1u);
  EXPECT_EQ(disconnects_[0], std::make_pair(s->id(), "client namespace disconnect"s));
  EXPECT_FALSE(s->connected());
  EXPECT_EQ(server_->of("/").socket_count(), 0u);
  EXPECT_FALSE(p.ws->closed());  // only the namespace is left
  EXPECT_TRUE(take(p).empty());  // no reply
  server_->of("/").emit_to("r", R"(["after"])");
  s->emit(R"(["after2"])");
  EXPECT_TRUE(take(p).empty());

  // No recovery for it.
  const std::string again = connect(p, R"(40{"pid":")" + pid + R"(","offset":")" + offset + R"("})");
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), s->id());
  EXPECT_FALSE(connections_[1]->recovered());
  EXPECT_NE(field(again, "pid"), pid);
  EXPECT_TRUE(take(p).empty());  // nothing replayed
}

TEST_F(SocketIoServerTest, ServerDisconnect) {
  start(no_recovery(), {"/admin"});
  auto& p = open();
  connect(p);
  connect(p, "40/admin,");
  ASSERT_EQ(connections_.size(), 2u);
  connections_[1]->disconnect();
  EXPECT_TRUE(wait_for([&] { return !disconnects_.empty(); }));
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame("41/admin,")});
  EXPECT_EQ(disconnects_[0], std::make_pair(connections_[1]->id(), "server namespace disconnect"s));
  EXPECT_FALSE(connections_[1]->connected());
  EXPECT_TRUE(connections_[0]->connected());
  EXPECT_FALSE(p.ws->closed());

  connections_[0]->disconnect();
  EXPECT_TRUE(wait_for([&] { return disconnects_.size() == 2; }));
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame("41")});
  connections_[0]->disconnect();  // already gone: nothing more
  drain();
  EXPECT_TRUE(take(p).empty());
  EXPECT_EQ(disconnects_.size(), 2u);
}

TEST_F(SocketIoServerTest, TransportCloseDisconnectsEveryNamespace) {
  start(no_recovery(), {"/admin"});
  auto& p = open();
  connect(p);
  connect(p, "40/admin,");
  drop(p);
  ASSERT_EQ(disconnects_.size(), 2u);
  for (const auto& [id, reason] : disconnects_) EXPECT_EQ(reason, "transport close");
  EXPECT_EQ(server_->of("/").socket_count(), 0u);
  EXPECT_EQ(server_->of("/admin").socket_count(), 0u);
  EXPECT_EQ(server_->engine().connections(), 0u);
}

// ---- connection state recovery ------------------------------------------------------------------

class SocketIoRecoveryTest : public SocketIoServerTest {
 protected:
  /// Connects a client and returns {sid, pid}.
  std::pair<std::string, std::string> connect_fresh(Peer& p, std::string frame = "40") {
    const std::string reply = connect(p, std::move(frame));
    return {field(reply, "sid"), field(reply, "pid")};
  }
  static std::string resume_frame(const std::string& pid, const std::string& offset, std::string extra = {}) {
    return R"(40{"pid":")" + pid + R"(","offset":")" + offset + "\"" + extra + "}";
  }
};

TEST_F(SocketIoRecoveryTest, EmitsCarryAnOffset) {
  start(Options{});
  auto& p = open();
  connect_fresh(p);
  auto s = connections_[0];
  s->emit(R"(["a",1])");
  s->emit(R"(["b"])");
  server_->of("/").emit_to(s->id(), R"(["typing"])", {}, /*recoverable=*/false);
  server_->of("/").emit_all(R"(["c",{"k":[]}])");
  auto frames = take(p);
  ASSERT_EQ(frames.size(), 4u);
  const std::string o1 = offset_of(frames[0].data), o2 = offset_of(frames[1].data),
                    o4 = offset_of(frames[3].data);
  EXPECT_EQ(frames[0].data, R"(42["a",1,")" + o1 + "\"]");
  EXPECT_EQ(frames[1].data, R"(42["b",")" + o2 + "\"]");
  EXPECT_EQ(frames[2].data, R"(42["typing"])");
  EXPECT_EQ(frames[3].data, R"(42["c",{"k":[]},")" + o4 + "\"]");
  EXPECT_FALSE(o1.empty());
  EXPECT_NE(o1, o2);
  EXPECT_NE(o2, o4);
  // Binary events carry one too (after the placeholders); acks do not.
  s->emit(R"(["bin",{"_placeholder":true,"num":0}])", {"z"});
  frames = take(p);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(frames[0].data.starts_with(R"(451-["bin",{"_placeholder":true,"num":0},")")) << frames[0].data;
  EXPECT_EQ(frames[1], binary_frame("z"));
  send(p, R"(421["q"])");
  ASSERT_EQ(events_.size(), 1u);
  events_[0].ack(R"(["r"])");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame(R"(431["r"])")});
}

TEST_F(SocketIoRecoveryTest, MissedEventsAreReplayedBeforeTheConnectReply) {
  start(Options{});
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  auto s = connections_[0];
  s->join("room");
  s->emit(R"(["seen"])");
  const std::string last = offset_of(next(p).data);

  drop(p);
  ASSERT_EQ(disconnects_.size(), 1u);
  EXPECT_EQ(disconnects_[0], std::make_pair(sid, "transport close"s));
  EXPECT_FALSE(s->connected());
  EXPECT_EQ(server_->of("/").socket_count(), 0u);

  // While away: to its own room, to a room it had joined, to everyone, binary; "typing" is
  // not recoverable.
  auto& nsp = server_->of("/");
  nsp.emit_to(sid, R"(["missed",1])");
  nsp.emit_to("room", R"(["missed",2])");
  nsp.emit_all(R"(["missed",3])");
  nsp.emit_to(sid, R"(["typing"])", {}, false);
  s->emit(R"(["missed",{"_placeholder":true,"num":0}])", {"bytes"});

  auto& q = open();
  send(q, resume_frame(pid, last, R"(,"token":"t")"));
  auto frames = take(q);
  ASSERT_EQ(frames.size(), 6u);
  EXPECT_TRUE(frames[0].data.starts_with(R"(42["missed",1,")")) << frames[0].data;
  EXPECT_TRUE(frames[1].data.starts_with(R"(42["missed",2,")")) << frames[1].data;
  EXPECT_TRUE(frames[2].data.starts_with(R"(42["missed",3,")")) << frames[2].data;
  EXPECT_TRUE(frames[3].data.starts_with(R"(451-["missed",{"_placeholder":true,"num":0},")")) << frames[3].data;
  EXPECT_EQ(frames[4], binary_frame("bytes"));
  EXPECT_EQ(frames[5], text_frame("40{\"sid\":\"" + sid + "\",\"pid\":\"" + pid + "\"}"));

  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_EQ(connections_[1], s);  // the same socket resumed
  EXPECT_TRUE(s->recovered());
  EXPECT_TRUE(s->connected());
  EXPECT_EQ(json::serialize(s->auth()), R"({"token":"t"})");
  EXPECT_EQ(nsp.socket_count(), 1u);

  // Its rooms were kept; new emits go to the new transport.
  nsp.emit_to("room", R"(["back"])");
  auto back = next(q);
  EXPECT_TRUE(back.data.starts_with(R"(42["back",")")) << back.data;
  EXPECT_TRUE(take(p).empty());  // nothing to the old one
}

TEST_F(SocketIoRecoveryTest, EventsTheClientDidNotConfirmAreReplayed) {
  start(Options{});
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  auto s = connections_[0];
  s->emit(R"(["e1"])");
  s->emit(R"(["e2"])");
  s->emit(R"(["e3"])");
  auto frames = take(p);
  ASSERT_EQ(frames.size(), 3u);
  // The client only processed e1 before the transport broke.
  drop(p);
  auto& q = open();
  send(q, resume_frame(pid, offset_of(frames[0].data)));
  EXPECT_EQ(take(q), (std::vector<WsFrame>{frames[1], frames[2],
                                           text_frame("40{\"sid\":\"" + sid + "\",\"pid\":\"" + pid + "\"}")}));
  EXPECT_TRUE(s->recovered());
}

TEST_F(SocketIoRecoveryTest, PingTimeoutIsRecoverable) {
  engineio::Options eo = engine_options();
  eo.ping_interval = 30ms;
  eo.ping_timeout = 30ms;
  start(Options{}, {}, eo);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  // Never answer the pings.
  ASSERT_TRUE(wait_for([&] { return !disconnects_.empty(); }));
  EXPECT_EQ(disconnects_[0].second, "ping timeout");
  server_->of("/").emit_to(sid, R"(["m"])");
  auto& q = open();
  send(q, resume_frame(pid, "0"));
  std::vector<WsFrame> frames;
  for (auto& f : take(q))
    if (f != text_frame("2")) frames.push_back(f);  // this connection's pings may interleave
  ASSERT_GE(frames.size(), 2u);
  EXPECT_TRUE(frames[0].data.starts_with(R"(42["m",")")) << frames[0].data;
  EXPECT_EQ(frames[1], text_frame("40{\"sid\":\"" + sid + "\",\"pid\":\"" + pid + "\"}"));
}

TEST_F(SocketIoRecoveryTest, MiddlewareStillRunsOnRecovery) {
  start(Options{});
  bool refuse = false;
  server_->of("/").use([&](const SocketPtr& s, Namespace::Next next) {
    if (refuse) return next(ConnectError{"expired token", ""});
    next(std::nullopt);
  });
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  server_->of("/").emit_to(sid, R"(["m"])");
  refuse = true;
  auto& q = open();
  EXPECT_EQ(connect(q, resume_frame(pid, "0")), R"(44{"message":"expired token"})");
  EXPECT_TRUE(take(q).empty());  // nothing replayed to a refused client
  // The session is spent.
  refuse = false;
  const std::string reply = connect(q, resume_frame(pid, "0"));
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), sid);
  EXPECT_FALSE(connections_[1]->recovered());
}

TEST_F(SocketIoRecoveryTest, UnknownPidIsAFreshSession) {
  start(Options{});
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  server_->of("/").emit_to(sid, R"(["m"])");
  auto& q = open();
  const std::string reply = connect(q, resume_frame("AAAAAAAAAAAAAAAAAAAA", "0"));
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), sid);
  EXPECT_FALSE(connections_[1]->recovered());
  EXPECT_TRUE(reply.starts_with("40{\"sid\":\"" + connections_[1]->id() + "\"")) << reply;
  EXPECT_TRUE(take(q).empty());

  // A malformed offset is a fresh session too.
  auto& r = open();
  connect(r, resume_frame(pid, "not-a-number"));
  ASSERT_EQ(connections_.size(), 3u);
  EXPECT_FALSE(connections_[2]->recovered());
}

TEST_F(SocketIoRecoveryTest, OffsetStillKeptResumes) {
  Options o;
  o.recent_packets = 2;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  for (int i = 1; i <= 4; ++i) connections_[0]->emit("[\"e" + std::to_string(i) + "\"]");
  auto frames = take(p);
  ASSERT_EQ(frames.size(), 4u);
  drop(p);
  // Only e3 and e4 are kept; a client that saw e2 can resume.
  auto& q = open();
  send(q, resume_frame(pid, offset_of(frames[1].data)));
  EXPECT_EQ(take(q), (std::vector<WsFrame>{frames[2], frames[3],
                                           text_frame("40{\"sid\":\"" + sid + "\",\"pid\":\"" + pid + "\"}")}));
}

TEST_F(SocketIoRecoveryTest, OffsetOlderThanWhatWasKeptIsAFreshSession) {
  Options o;
  o.recent_packets = 2;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  for (int i = 1; i <= 4; ++i) connections_[0]->emit("[\"e" + std::to_string(i) + "\"]");
  auto frames = take(p);
  ASSERT_EQ(frames.size(), 4u);
  drop(p);
  // e2 was evicted: a client that only saw e1 cannot be brought up to date.
  auto& q = open();
  const std::string reply = connect(q, resume_frame(pid, offset_of(frames[0].data)));
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), sid);
  EXPECT_FALSE(connections_[1]->recovered());
  EXPECT_NE(field(reply, "pid"), pid);
  EXPECT_TRUE(take(q).empty());
}

TEST_F(SocketIoRecoveryTest, SessionExpiresAfterMaxDisconnection) {
  Options o;
  o.max_disconnection = 30ms;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  server_->of("/").emit_to(sid, R"(["m"])");
  std::this_thread::sleep_for(50ms);
  auto& q = open();
  connect(q, resume_frame(pid, "0"));
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), sid);
  EXPECT_FALSE(connections_[1]->recovered());
  EXPECT_TRUE(take(q).empty());
}

TEST_F(SocketIoRecoveryTest, SweepDropsExpiredSessions) {
  Options o;
  o.max_disconnection = 200ms;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  connections_[0]->join("room");
  std::weak_ptr<Socket> weak = connections_[0];
  connections_.clear();
  drop(p);
  disconnects_.clear();
  server_->sweep_sessions();  // not expired yet: kept
  EXPECT_FALSE(weak.expired());
  std::this_thread::sleep_for(250ms);
  EXPECT_FALSE(weak.expired());
  server_->sweep_sessions();
  EXPECT_TRUE(weak.expired());  // no longer in any room or session table
}

TEST_F(SocketIoRecoveryTest, SweepKeepsLiveSessions) {
  Options o;
  o.max_disconnection = 10s;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  server_->sweep_sessions();
  server_->of("/").emit_to(sid, R"(["m"])");
  auto& q = open();
  send(q, resume_frame(pid, "0"));
  auto frames = take(q);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_TRUE(connections_.back()->recovered());
}

TEST_F(SocketIoRecoveryTest, TooManyMissedPacketsIsNotRecoverable) {
  Options o;
  o.max_missed_packets = 3;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  for (int i = 0; i < 4; ++i) server_->of("/").emit_to(sid, "[\"m" + std::to_string(i) + "\"]");
  auto& q = open();
  connect(q, resume_frame(pid, "0"));
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), sid);
  EXPECT_FALSE(connections_[1]->recovered());
  EXPECT_TRUE(take(q).empty());
}

TEST_F(SocketIoRecoveryTest, ExactlyMaxMissedPacketsIsStillRecoverable) {
  Options o;
  o.max_missed_packets = 3;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  for (int i = 0; i < 3; ++i) server_->of("/").emit_to(sid, "[\"m" + std::to_string(i) + "\"]");
  auto& q = open();
  send(q, resume_frame(pid, "0"));
  EXPECT_EQ(take(q).size(), 4u);
  EXPECT_TRUE(connections_.back()->recovered());
}

TEST_F(SocketIoRecoveryTest, EventsDeliveredBeforeTheDisconnectDoNotCountAsMissed) {
  Options o;
  o.max_missed_packets = 3;  // recent_packets stays 256
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  for (int i = 0; i < 3; ++i) connections_[0]->emit("[\"seen" + std::to_string(i) + "\"]");
  auto frames = take(p);
  ASSERT_EQ(frames.size(), 3u);
  drop(p);
  server_->of("/").emit_to(sid, R"(["missed"])");  // one missed event, well under the limit
  auto& q = open();
  send(q, resume_frame(pid, offset_of(frames[2].data)));
  auto replay = take(q);
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_TRUE(replay[0].data.starts_with(R"(42["missed",")")) << replay[0].data;
  EXPECT_EQ(replay[1], text_frame("40{\"sid\":\"" + sid + "\",\"pid\":\"" + pid + "\"}"));
  EXPECT_TRUE(connections_.back()->recovered());
}

TEST_F(SocketIoRecoveryTest, ASecondDisconnectionAfterARecoveryIsRecoverable) {
  Options o;
  o.max_missed_packets = 3;
  o.recent_packets = 1;
  start(o);
  auto& p = open();
  const auto [sid, pid] = connect_fresh(p);
  drop(p);
  for (int i = 0; i < 3; ++i) server_->of("/").emit_to(sid, "[\"m" + std::to_string(i) + "\"]");
  auto& q = open();
  send(q, resume_frame(pid, "0"));
  auto replay = take(q);
  ASSERT_EQ(replay.size(), 4u);
  ASSERT_TRUE(connections_.back()->recovered());
  // Connected again: the client confirms the last replayed event; one more event arrives.
  connections_.back()->emit(R"(["live"])");
  auto live = take(q);
  ASSERT_EQ(live.size(), 1u);
  drop(q);
  server_->of("/").emit_to(sid, R"(["missed again"])");  // one missed event
  auto& r = open();
  send(r, resume_frame(pid, offset_of(live[0].data)));
  auto again = take(r);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_TRUE(again[0].data.starts_with(R"(42["missed again",")")) << again[0].data;
  EXPECT_EQ(again[1], text_frame("40{\"sid\":\"" + sid + "\",\"pid\":\"" + pid + "\"}"));
}

TEST_F(SocketIoRecoveryTest, RecoveryOffMeansNoOffsetsAndNoSessions) {
  start(no_recovery());
  auto& p = open();
  const std::string reply = connect(p);
  EXPECT_EQ(field(reply, "pid"), "");
  const std::string sid = connections_[0]->id();
  connections_[0]->emit(R"(["x"])");
  EXPECT_EQ(take(p), std::vector<WsFrame>{text_frame(R"(42["x"])")});
  drop(p);
  auto& q = open();
  connect(q, R"(40{"pid":"whatever","offset":"1"})");
  ASSERT_EQ(connections_.size(), 2u);
  EXPECT_NE(connections_[1]->id(), sid);
  // Without recovery the auth is passed through untouched.
  EXPECT_EQ(json::serialize(connections_[1]->auth()), R"({"pid":"whatever","offset":"1"})");
}

}  // namespace
}  // namespace chat::socketio
