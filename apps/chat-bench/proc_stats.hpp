#pragma once
// Reads a process's resident memory and CPU time from /proc (Linux only), and this thread's CPU
// time.
#include <cstdint>
#include <optional>

namespace chat::bench {

struct ProcSample {
  std::int64_t at_ns = 0;       ///< steady clock
  std::uint64_t rss_kb = 0;     ///< VmRSS from /proc/PID/status
  std::uint64_t cpu_ticks = 0;  ///< utime + stime from /proc/PID/stat, in clock ticks
};

/// nullopt when the process does not exist (or /proc is unreadable).
std::optional<ProcSample> sample_process(int pid);

/// CPU used between two samples, in % of one core.
double cpu_percent(const ProcSample& a, const ProcSample& b);

/// steady_clock now, in nanoseconds (CLOCK_MONOTONIC: comparable between processes).
std::int64_t now_ns() noexcept;

/// CPU time the calling thread has used, in µs (CLOCK_THREAD_CPUTIME_ID).
double thread_cpu_us() noexcept;

}  // namespace chat::bench
