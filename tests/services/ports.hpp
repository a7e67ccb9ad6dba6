#pragma once
// Ports for the services the tests start (Redis, Kafka, FerretDB). A port read back from
// bind(0) lies in the kernel's ephemeral range, which is also where every outgoing connection of
// the tests running in parallel takes its local port: one of them can take it between the check
// and the service's own bind ("Address already in use", seen in CI). So ports are drawn at random
// below that range, where connect() never goes, and a start that still loses a race (two test
// processes drawing the same port) is retried on a new one.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <set>

namespace chat::test {

/// True when nothing is bound to 127.0.0.1:port now.
inline bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
inline int ephemeral_low() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (!(f >> low) || low < 12000) low = 32768;
  return low;
}

/// A port nothing is bound to now, below the ephemeral range; when `also_free_at` is non-zero,
/// port + also_free_at is free and below it too (Redis Cluster's bus port is port + 10000).
/// Never a port (nor a port + also_free_at) this process was given before, so several ports
/// asked for one service cannot collide before it binds them.
inline int free_port(int also_free_at = 0) {
  static std::mt19937 rng(std::random_device{}());  // not pid/time: ctest -j starts many at once
  static std::set<int> given;
  std::uniform_int_distribution<int> dist(10000, ephemeral_low() - 1 - also_free_at);
  for (;;) {
    const int p = dist(rng);
    const int q = also_free_at == 0 ? p : p + also_free_at;
    if (given.contains(p) || given.contains(q) || !port_free(p) || !port_free(q)) continue;
    given.insert(p);
    given.insert(q);
    return p;
  }
}

/// Calls start(port) on fresh free ports until it returns true, at most `attempts` times.
/// Returns the port it started on, or 0.
template <class Start>
int start_on_free_port(Start&& start, int attempts = 3, int also_free_at = 0) {
  for (int i = 0; i < attempts; ++i) {
    const int port = free_port(also_free_at);
    if (start(port)) return port;
  }
  return 0;
}

}  // namespace chat::test
