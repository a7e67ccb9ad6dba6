// WebSocket sessions over a real loopback connection: what SendBatch changes about who writes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "net/http_server.hpp"
#include "net/websocket.hpp"

namespace chat::net {
namespace {

using namespace std::chrono_literals;

struct OpenHandler : WsHandler {
  std::promise<std::shared_ptr<WsConnection>> opened;
  void on_open(std::shared_ptr<WsConnection> conn) override { opened.set_value(std::move(conn)); }
  void on_frame(std::string&&, bool) override {}
  void on_close() override {}
};

// A chatd-like server with one I/O thread, which the test can hold busy, and a raw client.
class WsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    o.websocket.max_queued_bytes = 64u << 20;
    o.upgrade = [this](const Request&) { return handler_; };
    server_ = std::make_unique<HttpServer>(o, [](Request&&, Responder r) {
      r(Response::text(404, "no", "text/plain"));
    });
    auto port = server_->listen();
    ASSERT_TRUE(port.ok());
    io_ = std::thread([this] { server_->run(); });

    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port.value());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const std::string req =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    ASSERT_EQ(::write(fd_, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char c;
      ASSERT_EQ(read_within(&c, 1, 5000ms), 1u);
      head += c;
    }
    ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
    auto f = handler_->opened.get_future();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    conn_ = f.get();
  }

  void TearDown() override {
    release();
    if (fd_ >= 0) ::close(fd_);
    conn_.reset();
    if (server_) server_->stop();
    if (io_.joinable()) io_.join();
  }

  /// Keeps the I/O thread busy (inside a handler) until release(): nothing posted to it runs.
  void hold_io_thread() {
    auto entered = std::make_shared<std::promise<void>>();
    auto f = entered->get_future();
    boost::asio::post(server_->io_context(), [this, entered] {
      entered->set_value();
      release_.get_future().wait();
    });
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    held_ = true;
  }
  void release() {
    if (held_) release_.set_value();
    held_ = false;
  }

  /// Reads up to n bytes, waiting at most `limit` for the first; 0 on timeout or EOF.
  std::size_t read_within(char* p, std::size_t n, std::chrono::milliseconds limit) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(limit.count())) != 1) return 0;
    const ssize_t r = ::read(fd_, p, n);
    return r > 0 ? static_cast<std::size_t>(r) : 0;
  }

  /// Reads one unmasked server frame's payload; nullopt when none comes within `limit`.
  std::optional<std::string> read_frame(std::chrono::milliseconds limit) {
    auto exact = [&](std::size_t n) -> std::optional<std::string> {
      std::string s(n, '\0');
      for (std::size_t got = 0; got < n;) {
        const std::size_t r = read_within(s.data() + got, n - got, limit);
        if (r == 0) return std::nullopt;
        got += r;
      }
      return s;
    };
    auto h = exact(2);
    if (!h) return std::nullopt;
    std::uint64_t len = static_cast<unsigned char>((*h)[1]) & 0x7f;
    if (len >= 126) {
      auto ext = exact(len == 126 ? 2 : 8);
      if (!ext) return std::nullopt;
      len = 0;
      for (unsigned char c : *ext) len = (len << 8) | c;
    }
    return exact(len);
  }

  std::shared_ptr<OpenHandler> handler_ = std::make_shared<OpenHandler>();
  std::unique_ptr<HttpServer> server_;
  std::thread io_;
  int fd_ = -1;
  std::shared_ptr<WsConnection> conn_;
  std::promise<void> release_;
  bool held_ = false;
};

TEST_F(WsSessionTest, WithoutABatchTheConnectionsStrandWrites) {
  hold_io_thread();
  ASSERT_TRUE(conn_->send(std::make_shared<const std::string>("posted"), false));
  EXPECT_FALSE(read_frame(300ms).has_value());  // the flush waits for the I/O thread
  release();
  EXPECT_EQ(read_frame(5000ms), "posted");
}

TEST_F(WsSessionTest, ABatchWritesFromItsOwnThreadWhenItEnds) {
  hold_io_thread();
  {
    SendBatch batch;
    ASSERT_TRUE(conn_->send(std::make_shared<const std::string>("one"), false));
    {
      SendBatch nested;  // one batch: nothing is written at its end
      ASSERT_TRUE(conn_->send(std::make_shared<const std::string>(std::string(3000, 'b')), false));
    }
    ASSERT_TRUE(conn_->send(std::make_shared<const std::string>("three"), false));
  }
  // The I/O thread is still held: these bytes were written by this thread, in order.
  EXPECT_EQ(read_frame(5000ms), "one");
  EXPECT_EQ(read_frame(5000ms), std::string(3000, 'b'));
  EXPECT_EQ(read_frame(5000ms), "three");
  EXPECT_EQ(conn_->queued_bytes(), 0u);
  release();
  // And the connection goes on as before: the next frame, without a batch.
  ASSERT_TRUE(conn_->send(std::make_shared<const std::string>("after"), false));
  EXPECT_EQ(read_frame(5000ms), "after");
}

TEST_F(WsSessionTest, WhatTheKernelDoesNotTakeIsLeftToTheStrand) {
  // Far more than a loopback socket buffers while the client does not read: the batch's write
  // takes part of the shared frame, the strand writes the rest once the I/O thread is free.
  std::string big(24u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  hold_io_thread();
  {
    SendBatch batch;
    ASSERT_TRUE(conn_->send(std::make_shared<const std::string>(big), false));
    ASSERT_TRUE(conn_->send(std::make_shared<const std::string>("tail"), false));
  }
  EXPECT_GT(conn_->queued_bytes(), 0u);
  EXPECT_LT(conn_->queued_bytes(), big.size());
  release();
  EXPECT_EQ(read_frame(10000ms), big);
  EXPECT_EQ(read_frame(5000ms), "tail");
}

TEST_F(WsSessionTest, BatchesRacingTheConnectionsEndAreRefusedOnceItEnds) {
  // Another thread sends in batches while the peer goes away, so batch ends race the session's
  // end (under the sanitizers: no use of a freed session or buffer); from the end on send()
  // refuses, and nothing stays queued.
  std::atomic<bool> refused{false};
  std::thread sender([&] {
    const auto frame = std::make_shared<const std::string>(std::string(100, 'x'));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!refused && std::chrono::steady_clock::now() < deadline) {
      SendBatch batch;
      for (int i = 0; i < 4; ++i)
        if (!conn_->send(frame, false)) refused = true;
    }
  });
  ASSERT_TRUE(read_frame(5000ms).has_value());  // the batches are writing
  ::shutdown(fd_, SHUT_RDWR);  // the server reads EOF, its session ends
  sender.join();
  EXPECT_TRUE(refused.load());
  EXPECT_FALSE(conn_->send(std::make_shared<const std::string>("late"), false));
  EXPECT_EQ(conn_->queued_bytes(), 0u);
}

}  // namespace
}  // namespace chat::net
