#include "http_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <charconv>
#include <memory>
#include <optional>

namespace chat::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

struct Shared {
  Endpoint server;
  std::string prefix;
  std::size_t first = 0;
  std::size_t count = 0;
  std::size_t next = 0;
  std::size_t done = 0;
  std::vector<BenchUser> users;
  std::optional<chat::error> failure;
  const std::function<void(std::size_t)>* progress = nullptr;
};

/// One keep-alive connection signing up users one after another until none are left.
class Worker : public std::enable_shared_from_this<Worker> {
 public:
  Worker(asio::io_context& ioc, Shared& s) : stream_(ioc), s_(s) {}

  void start() { next(); }

 private:
  void next() {
    if (s_.failure || s_.next >= s_.count) return;
    index_ = s_.next++;
    attempts_ = 0;
    send();
  }

  void send() {
    if (!connected_) return connect();
    const std::size_t n = s_.first + index_;
    json::object body{{"email", s_.prefix + std::to_string(n) + "@bench.test"},
                      {"password", "bench-password-" + std::to_string(n)},
                      {"full_name", "Bench User " + std::to_string(n)}};
    req_ = {};
    req_.method(http::verb::post);
    req_.target("/api/v1/auth/signup");
    req_.version(11);
    req_.set(http::field::host, s_.server.host + ":" + std::to_string(s_.server.port));
    req_.set(http::field::content_type, "application/json");
    req_.keep_alive(true);
    req_.body() = json::serialize(body);
    req_.prepare_payload();
    stream_.expires_after(std::chrono::seconds(60));
    http::async_write(stream_, req_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return self->retry("write: " + ec.message());
      self->res_ = {};
      http::async_read(self->stream_, self->buffer_, self->res_,
                       [self](error_code e, std::size_t) { self->on_response(e); });
    });
  }

  void connect() {
    error_code ec;
    auto addr = asio::ip::make_address(s_.server.host, ec);
    if (ec) return fatal(errc::invalid_argument, "bad host " + s_.server.host);
    stream_.expires_after(std::chrono::seconds(10));
    stream_.async_connect(tcp::endpoint(addr, s_.server.port), [self = shared_from_this()](error_code e) {
      if (e) return self->retry("connect: " + e.message());
      self->connected_ = true;
      self->send();
    });
  }

  void on_response(error_code ec) {
    if (ec) return retry("read: " + ec.message());
    if (!res_.keep_alive()) {
      error_code ignored;
      stream_.socket().close(ignored);
      connected_ = false;
    }
    const unsigned status = res_.result_int();
    if (status == 429)
      return fatal(errc::rate_limited,
                   "signup rate limited (429): start chatd with --rate-limit-auth off --rate-limit-api off");
    if (status != 201 && status != 200)
      return fatal(errc::internal, "signup answered " + std::to_string(status) + ": " + res_.body().substr(0, 300));
    boost::system::error_code jec;
    json::value v = json::parse(res_.body(), jec);
    const json::object* o = jec ? nullptr : v.if_object();
    const json::value* user = o ? o->if_contains("user") : nullptr;
    const json::value* token = o ? o->if_contains("token") : nullptr;
    const json::value* id = user && user->is_object() ? user->get_object().if_contains("_id") : nullptr;
    if (!id || !id->is_string() || !token || !token->is_string())
      return fatal(errc::internal, "signup answer without user._id and token: " + res_.body().substr(0, 300));
    s_.users[index_] = BenchUser{std::string(id->get_string()), std::string(token->get_string())};
    ++s_.done;
    if (s_.progress && *s_.progress) (*s_.progress)(s_.done);
    next();
  }

  void retry(std::string why) {
    error_code ignored;
    stream_.socket().close(ignored);
    connected_ = false;
    buffer_.consume(buffer_.size());
    if (++attempts_ > 3) return fatal(errc::unavailable, "signup " + why);
    send();
  }

  void fatal(errc code, std::string why) {
    if (!s_.failure) s_.failure = chat::error{code, std::move(why)};
    error_code ignored;
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  Shared& s_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  std::size_t index_ = 0;
  int attempts_ = 0;
  bool connected_ = false;
};

}  // namespace

result<Endpoint> parse_url(const std::string& url) {
  std::string_view s = url;
  if (s.starts_with("http://")) s.remove_prefix(7);
  else if (s.starts_with("ws://")) s.remove_prefix(5);
  else if (s.find("://") != std::string_view::npos) return error{errc::invalid_argument, "only http:// URLs: " + url};
  if (auto slash = s.find('/'); slash != std::string_view::npos) s = s.substr(0, slash);
  Endpoint e;
  std::string_view host = s;
  std::string_view port;
  if (s.starts_with('[')) {  // [::1]:5000
    auto close = s.find(']');
    if (close == std::string_view::npos) return error{errc::invalid_argument, "bad URL " + url};
    host = s.substr(1, close - 1);
    if (close + 1 < s.size() && s[close + 1] == ':') port = s.substr(close + 2);
  } else if (auto colon = s.rfind(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  e.host = host == "localhost" || host.empty() ? "127.0.0.1" : std::string(host);
  if (port.empty()) {
    e.port = 80;
  } else {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc{} || p != port.data() + port.size() || v == 0 || v > 65535)
      return error{errc::invalid_argument, "bad port in URL " + url};
    e.port = static_cast<std::uint16_t>(v);
  }
  return e;
}

result<std::vector<BenchUser>> signup_users(const Endpoint& server, const std::string& email_prefix,
                                            std::size_t first, std::size_t count,
                                            std::size_t concurrency,
                                            const std::function<void(std::size_t)>& progress) {
  asio::io_context ioc{1};
  Shared s;
  s.server = server;
  s.prefix = email_prefix;
  s.first = first;
  s.count = count;
  s.users.resize(count);
  s.progress = &progress;
  for (std::size_t i = 0; i < std::max<std::size_t>(1, std::min(concurrency, count)); ++i)
    std::make_shared<Worker>(ioc, s)->start();
  ioc.run();
  if (s.failure) return *s.failure;
  if (s.done != count) return error{errc::internal, "signup finished early"};
  return std::move(s.users);
}

}  // namespace chat::bench
