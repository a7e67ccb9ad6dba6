#include "proc_stats.hpp"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace chat::bench {

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double thread_cpu_us() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

std::optional<ProcSample> sample_process(int pid) {
  ProcSample s;
  s.at_ns = now_ns();
  const std::string dir = "/proc/" + std::to_string(pid);
  {
    std::ifstream f(dir + "/stat");
    std::string line;
    if (!f || !std::getline(f, line)) return std::nullopt;
    // The command name (field 2) is in parentheses and may contain spaces: count from the last ')'.
    auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(line.substr(close + 1));
    std::string field;
    std::uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && (in >> field); ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    s.cpu_ticks = utime + stime;
  }
  {
    std::ifstream f(dir + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.starts_with("VmRSS:")) {
        s.rss_kb = std::stoull(line.substr(6));
        break;
      }
    }
  }
  return s;
}

double cpu_percent(const ProcSample& a, const ProcSample& b) {
  const double secs = static_cast<double>(b.at_ns - a.at_ns) / 1e9;
  if (secs <= 0) return 0;
  static const long hz = ::sysconf(_SC_CLK_TCK);
  return 100.0 * static_cast<double>(b.cpu_ticks - a.cpu_ticks) / static_cast<double>(hz) / secs;
}

}  // namespace chat::bench
