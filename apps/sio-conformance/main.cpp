// sio-conformance: the server that the public Socket.IO / Engine.IO protocol test suites expect
// (see PROTOCOL.md, "Conformance harness"), built from the same protocol code as chatd.
#include <boost/json/serialize.hpp>

#include <charconv>
#include <iostream>
#include <string>

#include "core/log.hpp"
#include "engineio/server.hpp"
#include "net/http_server.hpp"
#include "socketio/server.hpp"

namespace {

struct Flags {
  std::string host = "127.0.0.1";
  int port = 3000;
  int ping_interval = 300;
  int ping_timeout = 200;
  int connect_timeout = 1000;
  long max_payload = 1'000'000;
};

bool parse_int(const char* s, long& out) {
  std::string_view v(s);
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc{} && p == v.data() + v.size() && out >= 0;
}

// Raw Engine.IO echo on /engine.io/: every message goes back as it came.
class Echo final : public chat::engineio::ConnectionHandler {
 public:
  explicit Echo(std::shared_ptr<chat::engineio::Connection> c) : conn_(std::move(c)) {}
  void on_message(std::string&& data, bool binary) override {
    if (binary) conn_->send(std::make_shared<const std::string>(std::move(data)), true);
    else conn_->send(chat::engineio::message_frame(data), false);
  }
  void on_close(std::string_view) override { conn_.reset(); }

 private:
  std::shared_ptr<chat::engineio::Connection> conn_;
};

// The arguments of an event without its name, as a JSON array.
std::string rest_of(const boost::json::array& args) {
  boost::json::array rest(args.begin() + 1, args.end());
  return boost::json::serialize(rest);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << "sio-conformance [--host 127.0.0.1] [--port 3000] [--ping-interval 300] [--ping-timeout 200]\n"
                   "                [--connect-timeout 1000] [--max-payload 1000000]\n";
      return 0;
    }
    long v = 0;
    if (i + 1 >= argc || (a != "--host" && !parse_int(argv[i + 1], v))) {
      std::cerr << "sio-conformance: bad or missing value for " << a << "\n";
      return 2;
    }
    if (a == "--host") f.host = argv[++i];
    else if (a == "--port" && v <= 65535) f.port = static_cast<int>(v), ++i;
    else if (a == "--ping-interval") f.ping_interval = static_cast<int>(v), ++i;
    else if (a == "--ping-timeout") f.ping_timeout = static_cast<int>(v), ++i;
    else if (a == "--connect-timeout") f.connect_timeout = static_cast<int>(v), ++i;
    else if (a == "--max-payload") f.max_payload = v, ++i;
    else {
      std::cerr << "sio-conformance: unknown flag " << a << "\n";
      return 2;
    }
  }
  chat::init_logging("warn");

  chat::engineio::Options eo;
  eo.ping_interval = std::chrono::milliseconds(f.ping_interval);
  eo.ping_timeout = std::chrono::milliseconds(f.ping_timeout);
  eo.max_payload = static_cast<std::size_t>(f.max_payload);

  chat::socketio::Options so;
  so.connect_timeout = std::chrono::milliseconds(f.connect_timeout);
  so.recovery = false;

  chat::net::ServerOptions no;
  no.host = f.host;
  no.port = static_cast<std::uint16_t>(f.port);
  no.threads = 1;
  no.body_limit = [&](std::string_view, std::string_view) { return eo.max_payload; };
  no.websocket.max_message = eo.max_payload;

  // The servers need the io_context, which the HTTP server owns: wire the handlers afterwards.
  chat::engineio::Server* echo = nullptr;
  chat::socketio::Server* sio = nullptr;
  auto route = [&](std::string_view path) -> int {
    if (path.starts_with("/socket.io/") || path == "/socket.io") return 1;
    if (path.starts_with("/engine.io/") || path == "/engine.io") return 2;
    return 0;
  };
  no.upgrade = [&](const chat::net::Request& req) -> std::shared_ptr<chat::net::WsHandler> {
    switch (route(req.path)) {
      case 1: return sio->engine().handle_upgrade(req);
      case 2: return echo->handle_upgrade(req);
      default: return nullptr;
    }
  };
  no.on_stop = [&] {
    sio->engine().close_all();
    echo->close_all();
  };
  chat::net::HttpServer http(no, [&](chat::net::Request&& req, chat::net::Responder respond) {
    // CORS origin "*", as the test suites configure the reference server.
    respond = respond.wrap([](chat::net::Response& r) { r.set("Access-Control-Allow-Origin", "*"); });
    if (req.method == "OPTIONS") {
      chat::net::Response r;
      r.status = 204;
      r.set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
      if (auto h = req.header("access-control-request-headers"); !h.empty())
        r.set("Access-Control-Allow-Headers", std::string(h));
      return respond(std::move(r));
    }
    switch (route(req.path)) {
      case 1: return sio->engine().handle_http(std::move(req), std::move(respond));
      case 2: return echo->handle_http(std::move(req), std::move(respond));
      default: return respond(chat::net::Response::json(404, R"({"message":"Not found"})"));
    }
  });

  chat::engineio::Server echo_server(eo, http.io_context(), [](std::shared_ptr<chat::engineio::Connection> c) {
    return std::make_shared<Echo>(std::move(c));
  });
  chat::socketio::Server sio_server(so, eo, http.io_context());
  echo = &echo_server;
  sio = &sio_server;

  auto on_connection = [](const chat::socketio::SocketPtr& s) {
    boost::json::array args{"auth", s->auth()};
    s->emit(boost::json::serialize(args));
  };
  sio_server.of("/custom").on_connection(on_connection);
  auto& main_nsp = sio_server.of("/");
  main_nsp.on_connection(on_connection);
  main_nsp.on_event([](const chat::socketio::SocketPtr& s, chat::socketio::Event&& ev, chat::socketio::Ack ack) {
    if (ev.name() == "message") {
      boost::json::array out = ev.args;
      out[0] = "message-back";
      s->emit(boost::json::serialize(out), std::move(ev.buffers));
    } else if (ev.name() == "message-with-ack" && ack) {
      ack(rest_of(ev.args), std::move(ev.buffers));
    }
  });

  auto port = http.listen();
  if (!port) {
    std::cerr << "sio-conformance: " << port.err().message << "\n";
    return 1;
  }
  std::cout << "sio-conformance listening on http://" << f.host << ":" << port.value() << std::endl;
  http.run();
  return 0;
}
