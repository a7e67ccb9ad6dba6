#include "channel.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>

namespace chat::bench {
namespace {

/// A closable queue of lines.
class LineQueue {
 public:
  void push(std::string line) {
    {
      std::lock_guard lock(m_);
      q_.push_back(std::move(line));
    }
    cv_.notify_all();
  }
  void close() {
    {
      std::lock_guard lock(m_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  std::optional<std::string> pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_);
    cv_.wait_for(lock, timeout, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    std::string s = std::move(q_.front());
    q_.pop_front();
    return s;
  }
  bool closed() const {
    std::lock_guard lock(m_);
    return closed_ && q_.empty();
  }

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  bool closed_ = false;
};

class LocalEnd final : public Channel {
 public:
  LocalEnd(std::shared_ptr<LineQueue> in, std::shared_ptr<LineQueue> out) : in_(std::move(in)), out_(std::move(out)) {}
  ~LocalEnd() override { out_->close(); }
  void send(const std::string& line) override { out_->push(line); }
  std::optional<std::string> receive(std::chrono::milliseconds t) override { return in_->pop(t); }
  bool closed() const override { return in_->closed(); }

 private:
  std::shared_ptr<LineQueue> in_, out_;
};

/// Reads lines from `fd` into a queue on a thread of its own until EOF. The thread shares the
/// queue (not `this`): the stdin reader of a worker is detached and may outlive the channel.
class FdEnd final : public Channel {
 public:
  FdEnd(int read_fd, int write_fd, bool own_fds)
      : rfd_(read_fd), wfd_(write_fd), own_(own_fds), q_(std::make_shared<LineQueue>()) {
    reader_ = std::thread([fd = rfd_, q = q_] { read_loop(fd, *q); });
  }
  ~FdEnd() override {
    if (own_) {
      ::close(wfd_);  // the child sees EOF on its stdin
      reader_.join();  // ends with the child's stdout (the caller waited for the child)
      ::close(rfd_);
    } else {
      reader_.detach();  // blocked on our own stdin until the process exits
    }
  }
  void send(const std::string& line) override {
    std::lock_guard lock(write_m_);
    std::string s = line + "\n";
    const char* p = s.data();
    std::size_t left = s.size();
    while (left > 0) {
      ssize_t n = ::write(wfd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the other side is gone: receive() reports it
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  std::optional<std::string> receive(std::chrono::milliseconds t) override { return q_->pop(t); }
  bool closed() const override { return q_->closed(); }

 private:
  static void read_loop(int fd, LineQueue& q) {
    std::string buf;
    char chunk[65536];
    for (;;) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
        q.push(buf.substr(start, nl - start));
      buf.erase(0, start);
    }
    q.close();
  }

  int rfd_, wfd_;
  bool own_;
  std::mutex write_m_;
  std::shared_ptr<LineQueue> q_;
  std::thread reader_;
};

}  // namespace

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> make_local_channel_pair() {
  auto a = std::make_shared<LineQueue>();
  auto b = std::make_shared<LineQueue>();
  return {std::make_unique<LocalEnd>(a, b), std::make_unique<LocalEnd>(b, a)};
}

std::unique_ptr<Channel> make_stdio_channel() {
  std::cout.flush();
  return std::make_unique<FdEnd>(STDIN_FILENO, STDOUT_FILENO, false);
}

result<ChildProcess> spawn_child(const std::string& exe, const std::vector<std::string>& args) {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0) return error{errc::internal, std::strerror(errno)};
  if (::pipe2(from_child, O_CLOEXEC) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    return error{errc::internal, std::strerror(errno)};
  }
  std::vector<std::string> argv_s;
  argv_s.push_back(exe);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return error{errc::internal, std::string("fork: ") + std::strerror(errno)};
  if (pid == 0) {
    ::dup2(to_child[0], STDIN_FILENO);
    ::dup2(from_child[1], STDOUT_FILENO);
    ::execv(exe.c_str(), argv.data());
    std::perror("chat-bench: exec worker");
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  ChildProcess c;
  c.pid = pid;
  c.channel = std::make_unique<FdEnd>(from_child[0], to_child[1], true);
  return c;
}

int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace chat::bench
