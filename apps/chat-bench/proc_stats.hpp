#pragma once
// Reads a process's resident memory and CPU time from /proc (Linux only).
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

}  // namespace chat::bench
