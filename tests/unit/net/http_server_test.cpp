// HttpServer's I/O threads: what they are set up with before they run the io_context.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>
#include <latch>
#include <thread>

#include "core/sched.hpp"
#include "net/http_server.hpp"

namespace chat::net {
namespace {

using namespace std::chrono_literals;

/// The slice of each of the server's `threads` I/O threads, read on those threads.
std::vector<std::chrono::microseconds> io_thread_slices(unsigned threads,
                                                        std::chrono::microseconds slice) {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = threads;
  o.thread_slice = slice;
  HttpServer server(o, [](Request&&, Responder r) { r(Response::text(404, "no", "text/plain")); });
  EXPECT_TRUE(server.listen().ok());
  std::thread io([&] { server.run(); });
  // One task per thread: each waits for all the others, so no thread can run two of them.
  std::latch all_in(threads);
  std::vector<std::promise<std::chrono::microseconds>> seen(threads);
  for (auto& p : seen)
    boost::asio::post(server.io_context(), [&all_in, &p] {
      all_in.arrive_and_wait();
      p.set_value(current_time_slice());
    });
  std::vector<std::chrono::microseconds> slices;
  for (auto& p : seen) slices.push_back(p.get_future().get());
  server.stop();
  io.join();
  return slices;
}

TEST(HttpServerTest, EveryIoThreadAsksForTheConfiguredSlice) {
  if (current_time_slice().count() == 0)
    GTEST_SKIP() << "this kernel keeps no per-thread time slice (Linux < 6.12)";
  const auto default_slice = default_time_slice();
  ASSERT_NE(default_slice, 300us);
  for (auto slice : io_thread_slices(3, 300us)) EXPECT_EQ(slice, 300us);
  // Without the option the threads keep the kernel's default.
  for (auto slice : io_thread_slices(2, 0us)) EXPECT_EQ(slice, default_slice);
}

}  // namespace
}  // namespace chat::net
