#pragma once
// Line-based control channel between the coordinator and its workers: in-process queues for a
// single-process run, pipes to a child's stdin/stdout for --procs N.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace chat::bench {

/// Thread-safe: send() and receive() may be called from different threads.
class Channel {
 public:
  virtual ~Channel() = default;
  /// Sends one line (no '\n' inside).
  virtual void send(const std::string& line) = 0;
  /// Next line; nullopt on timeout or when the other side has gone (then closed() is true).
  virtual std::optional<std::string> receive(std::chrono::milliseconds timeout) = 0;
  virtual bool closed() const = 0;
};

/// Two connected in-process ends.
std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> make_local_channel_pair();

/// The worker's end in a child process: lines to stdout, from stdin.
std::unique_ptr<Channel> make_stdio_channel();

struct ChildProcess {
  pid_t pid = -1;
  std::unique_ptr<Channel> channel;
};

/// Starts `exe args…` with its stdin/stdout connected to the returned channel (stderr inherited).
result<ChildProcess> spawn_child(const std::string& exe, const std::vector<std::string>& args);

/// Waits for a child; returns its exit status (128+signal when killed).
int wait_child(pid_t pid);

}  // namespace chat::bench
