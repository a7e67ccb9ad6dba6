#include "core/object_id.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "core/time.hpp"

namespace chat {
namespace {

struct ProcessUnique {
  std::array<unsigned char, 5> bytes{};
  std::uint32_t counter_start = 0;
  ProcessUnique() {
    unsigned char buf[8];
    if (RAND_bytes(buf, sizeof buf) != 1) {
      auto t = std::chrono::steady_clock::now().time_since_epoch().count();
      for (unsigned i = 0; i < sizeof buf; ++i) buf[i] = static_cast<unsigned char>(t >> (i * 8));
    }
    for (int i = 0; i < 5; ++i) bytes[i] = buf[i];
    counter_start = (buf[5] << 16 | buf[6] << 8 | buf[7]) & 0x7fffff;
  }
};

const ProcessUnique& process_unique() {
  static const ProcessUnique p;
  return p;
}

constexpr char kHex[] = "0123456789abcdef";

void put_hex(std::string& out, std::uint32_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    unsigned char b = static_cast<unsigned char>(v >> (i * 8));
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string make_object_id(std::uint32_t seconds, std::uint32_t counter) {
  std::string out;
  out.reserve(24);
  put_hex(out, seconds, 4);
  for (unsigned char b : process_unique().bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  put_hex(out, counter & 0xffffff, 3);
  return out;
}

std::string new_object_id() {
  // One atomic word holds (seconds << 24 | counter): taking the max of "now" and "last + 1" keeps
  // ids strictly increasing even when the counter wraps or the wall clock steps back.
  static std::atomic<std::uint64_t> last{0};
  const auto now = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::uint64_t prev = last.load(std::memory_order_relaxed);
  std::uint64_t next;
  do {
    const std::uint64_t floor = (now << 24) | process_unique().counter_start;
    next = prev + 1 > floor ? prev + 1 : floor;
  } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
  return make_object_id(static_cast<std::uint32_t>(next >> 24),
                        static_cast<std::uint32_t>(next & 0xffffff));
}

StampedId new_stamped_id() {
  static std::mutex mu;
  static std::int64_t last_ms = 0;
  std::lock_guard lock(mu);
  last_ms = std::max(now_ms(), last_ms);  // never backwards, even if the wall clock is
  return StampedId{new_object_id(), last_ms};
}

bool is_object_id(std::string_view s) noexcept {
  if (s.size() != 24) return false;
  for (char c : s)
    if (hex_value(c) < 0) return false;
  return true;
}

std::uint32_t object_id_seconds(std::string_view id) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 4 | static_cast<std::uint32_t>(hex_value(id[i]));
  return v;
}

}  // namespace chat
