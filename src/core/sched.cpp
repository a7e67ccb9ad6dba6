#include "core/sched.hpp"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <thread>

namespace chat {
namespace {

// glibc 2.36 has no wrapper for sched_setattr/sched_getattr; the layout is the kernel's
// (include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER1).
struct SchedAttr {
  std::uint32_t size;
  std::uint32_t sched_policy;
  std::uint64_t sched_flags;
  std::int32_t sched_nice;
  std::uint32_t sched_priority;
  std::uint64_t sched_runtime;  // SCHED_OTHER since Linux 6.12: the EEVDF slice, in ns
  std::uint64_t sched_deadline;
  std::uint64_t sched_period;
  std::uint32_t sched_util_min;
  std::uint32_t sched_util_max;
};

/// The calling thread's attributes.
bool get_attr(SchedAttr& a) {
#if defined(__linux__) && defined(SYS_sched_getattr)
  a = SchedAttr{};
  return ::syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) == 0;
#else
  (void)a;
  return false;
#endif
}

}  // namespace

std::chrono::microseconds current_time_slice() {
  SchedAttr a;
  if (!get_attr(a) || a.sched_policy != SCHED_OTHER) return std::chrono::microseconds{0};
  // Kernels before 6.12 leave sched_runtime at zero for a normal thread.
  return std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::nanoseconds(a.sched_runtime));
}

std::chrono::microseconds request_time_slice(std::chrono::microseconds slice) {
#if defined(__linux__) && defined(SYS_sched_setattr)
  SchedAttr a;
  if (!get_attr(a) || a.sched_policy != SCHED_OTHER) return std::chrono::microseconds{0};
  // sched_nice is part of the request: it is read back first so that the thread keeps its own.
  a.size = sizeof a;
  a.sched_flags &= 0x01;  // SCHED_FLAG_RESET_ON_FORK: kept as it was; nothing else asked for
  // Zero is the kernel's default slice (and no longer a custom one that children inherit).
  a.sched_runtime = slice.count() <= 0
                        ? 0
                        : static_cast<std::uint64_t>(
                              std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count());
  if (::syscall(SYS_sched_setattr, 0, &a, 0) != 0) return std::chrono::microseconds{0};
  return current_time_slice();
#else
  (void)slice;
  return std::chrono::microseconds{0};
#endif
}

std::chrono::microseconds default_time_slice() {
  std::chrono::microseconds slice{0};
  std::thread([&slice] { slice = request_time_slice(std::chrono::microseconds{0}); }).join();
  return slice;
}

std::optional<std::chrono::microseconds> parse_time_slice(std::string_view text) {
  if (text == "0" || text == "off") return std::chrono::microseconds{0};
  std::int64_t scale = 0;
  if (text.ends_with("us")) scale = 1;
  else if (text.ends_with("ms")) scale = 1000;
  else return std::nullopt;
  text.remove_suffix(2);
  long long n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || p != text.data() + text.size() || n <= 0 || n > 100'000 / scale ||
      n * scale < 100)
    return std::nullopt;
  return std::chrono::microseconds{n * scale};
}

}  // namespace chat
