#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "core/time.hpp"
#include "metrics/metrics.hpp"

namespace chat::metrics {
namespace {

struct ProcStat {
  double cpu_seconds = 0;
  double start_seconds_since_boot = 0;
  double vsize = 0;
  double rss_bytes = 0;
};

ProcStat read_proc_stat() {
  ProcStat s;
  std::ifstream f("/proc/self/stat");
  std::string line;
  if (!std::getline(f, line)) return s;
  // Fields after the command name (which may contain spaces) start after the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream in(line.substr(close + 2));
  std::string field;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // Field 3 is the state; utime=14, stime=15, starttime=22, vsize=23, rss=24 (1-based).
  for (int i = 3; in >> field; ++i) {
    if (i == 14 || i == 15) s.cpu_seconds += std::stod(field) / tick;
    else if (i == 22) s.start_seconds_since_boot = std::stod(field) / tick;
    else if (i == 23) s.vsize = std::stod(field);
    else if (i == 24) {
      s.rss_bytes = std::stod(field) * page;
      break;
    }
  }
  return s;
}

double boot_time_seconds() {
  std::ifstream f("/proc/stat");
  std::string key;
  double value = 0;
  while (f >> key) {
    if (key == "btime") {
      f >> value;
      return value;
    }
    f.ignore(1 << 16, '\n');
  }
  return 0;
}

double count_open_fds() {
  double n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
    n -= 3;  // ".", ".." and the descriptor of the listing itself
  }
  return n;
}

}  // namespace

void register_process_metrics(Registry& registry) {
  auto cpu = registry.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
  auto rss = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
  auto vsz = registry.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
  auto fds = registry.gauge("process_open_fds", "Number of open file descriptors.");
  auto max_fds = registry.gauge("process_max_fds", "Maximum number of open file descriptors.");
  auto start = registry.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
  const ProcStat at_start = read_proc_stat();
  start.set(boot_time_seconds() + at_start.start_seconds_since_boot);
  registry.on_collect([=] {
    static std::mutex mu;  // two concurrent scrapes must not both add the same CPU delta
    std::lock_guard lock(mu);
    ProcStat s = read_proc_stat();
    if (s.cpu_seconds > cpu.value()) cpu.inc(s.cpu_seconds - cpu.value());
    rss.set(s.rss_bytes);
    vsz.set(s.vsize);
    fds.set(count_open_fds());
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) max_fds.set(static_cast<double>(rl.rlim_cur));
  });
}

}  // namespace chat::metrics
