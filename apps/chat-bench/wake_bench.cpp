// chat-wake-bench: what it costs this machine to wake a sleeping thread, on the same core and on
// the other one. A server's work per message includes such wake-ups (a client's bytes wake its
// I/O thread, a commit wakes the thread that acknowledges): on bare metal they cost a microsecond
// or two, in some virtual machines ten times that, and that cost is then part of every figure
// chat-bench reports.
//
//   chat-wake-bench [--iterations 20000] [--cores A,B] [--gap-us 200]
//
// --cores: the two cores (default: the first two this process may run on; with only one, it
// says so and exits with status 77, "skipped").
//
// Three measurements, over pipes, one byte at a time:
// - same core: two threads on the first core answer each other: the round trip, and each
//   thread's CPU per round trip (CLOCK_THREAD_CPUTIME_ID);
// - two cores: the same with the second thread on the second core (each round trip wakes a
//   sleeping thread on the other core twice);
// - one wake: a thread on the first core writes a byte every --gap-us (busy-waiting in between,
//   so that its core never sleeps) to a thread on the second core that sleeps in read(): the
//   write()'s duration is what a wake-up costs the waker (the inter-processor interrupt), and
//   the sleeper's CPU per wake what it costs the woken thread;
// - behind a busy thread: on the first core a thread at nice +10 computes in bursts of 5 ms every
//   20 ms (as the store's indexer runs a transaction) while a thread on the same core is woken
//   from the second one every 500 µs (4,000 times): how long each wake waits before the woken
//   thread runs, with the kernel's default time slice for it and with a 100 µs one
//   (request_time_slice, core/sched.hpp; Linux >= 6.12, else the two rows are alike).
// Prints a table, then one line "RESULT {json}".
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "args.hpp"
#include "core/sched.hpp"
#include "histogram.hpp"
#include "proc_stats.hpp"

namespace {

using chat::bench::now_ns;
using chat::bench::thread_cpu_us;

struct Args {
  std::size_t iterations = 20000;
  int core_a = -1;  // -1: the first two allowed cores
  int core_b = -1;
  std::size_t gap_us = 200;
};

/// The first two cores of this process's affinity mask; false when it has fewer.
bool first_two_cores(int& a, int& b) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return false;
  a = b = -1;
  for (int c = 0; c < CPU_SETSIZE && b < 0; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    (a < 0 ? a : b) = c;
  }
  return b >= 0;
}

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    bool ok = true;
    if (k == "--iterations") {
      ok = chat::bench::parse_number(v, a.iterations) && a.iterations > 0;
    } else if (k == "--gap-us") {
      ok = chat::bench::parse_number(v, a.gap_us);
    } else if (k == "--cores") {
      const auto comma = v.find(',');
      ok = comma != std::string::npos && chat::bench::parse_number(v.substr(0, comma), a.core_a) &&
           chat::bench::parse_number(v.substr(comma + 1), a.core_b) && a.core_a >= 0 && a.core_b >= 0 &&
           a.core_a != a.core_b;
    } else {
      ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

bool pin(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set) == 0;
}


double now_us() { return static_cast<double>(now_ns()) / 1e3; }

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (::pipe(fd) != 0) fd[0] = fd[1] = -1;
  }
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  bool ok() const { return fd[0] >= 0; }
};

bool put(int fd) {
  const char c = 'w';
  return ::write(fd, &c, 1) == 1;
}
bool get(int fd) {
  char c;
  return ::read(fd, &c, 1) == 1;
}

struct RoundTrip {
  bool ok = false;
  double rtt_us = 0;       // mean
  double cpu_first = 0;    // µs of CPU per round trip, the initiating thread
  double cpu_second = 0;   // and the answering one
};

/// Ping-pong between a thread on `first` (this one) and one on `second`.
RoundTrip round_trip(const Args& a, int first, int second) {
  RoundTrip r;
  Pipe there, back;
  if (!there.ok() || !back.ok()) return r;
  bool pinned_second = false;
  double answer_cpu = 0;
  std::thread answerer([&] {
    pinned_second = pin(second);
    const double c0 = thread_cpu_us();
    for (std::size_t i = 0; i < a.iterations; ++i)
      if (!get(there.fd[0]) || !put(back.fd[1])) return;
    answer_cpu = thread_cpu_us() - c0;
  });
  const bool pinned_first = pin(first);
  const double c0 = thread_cpu_us(), t0 = now_us();
  bool ok = true;
  for (std::size_t i = 0; i < a.iterations && ok; ++i) ok = put(there.fd[1]) && get(back.fd[0]);
  const double t1 = now_us(), c1 = thread_cpu_us();
  if (!ok) ::close(std::exchange(there.fd[1], -1));  // let the answerer's read end
  answerer.join();
  const double n = static_cast<double>(a.iterations);
  r.ok = ok && pinned_first && pinned_second;
  r.rtt_us = (t1 - t0) / n;
  r.cpu_first = (c1 - c0) / n;
  r.cpu_second = answer_cpu / n;
  return r;
}

struct OneWake {
  bool ok = false;
  double write_p50 = 0, write_p99 = 0, write_mean = 0;  // µs, the waker's write()
  double sleeper_cpu = 0;                                // µs of CPU per wake, the woken thread
};

OneWake one_wake(const Args& a) {
  OneWake w;
  Pipe p;
  if (!p.ok()) return w;
  bool pinned_sleeper = false;
  double sleeper_cpu = 0;
  std::thread sleeper([&] {
    pinned_sleeper = pin(a.core_b);
    const double c0 = thread_cpu_us();
    for (std::size_t i = 0; i < a.iterations; ++i)
      if (!get(p.fd[0])) return;
    sleeper_cpu = thread_cpu_us() - c0;
  });
  const bool pinned_waker = pin(a.core_a);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the sleeper is in read()
  std::vector<double> us;
  us.reserve(a.iterations);
  bool ok = true;
  for (std::size_t i = 0; i < a.iterations && ok; ++i) {
    const double t0 = now_us();
    ok = put(p.fd[1]);
    const double t1 = now_us();
    us.push_back(t1 - t0);
    while (now_us() - t1 < static_cast<double>(a.gap_us)) {
    }  // busy: this core stays awake, the other one goes back to sleep
  }
  if (!ok) ::close(std::exchange(p.fd[1], -1));
  sleeper.join();
  const chat::bench::SortedSamples writes(std::move(us));
  if (writes.empty()) return w;
  w.ok = ok && pinned_waker && pinned_sleeper;
  w.write_p50 = writes.q(0.5);
  w.write_p99 = writes.q(0.99);
  w.write_mean = writes.mean();
  w.sleeper_cpu = sleeper_cpu / static_cast<double>(a.iterations);
  return w;
}

struct BehindBusy {
  bool ok = false;
  std::int64_t slice_us = 0;  // the woken thread's slice while measured (0: no per-thread slices)
  double p50 = 0, p99 = 0, p999 = 0, max = 0;  // µs from the waker's write() to the read()'s return
};

/// A thread on core_a woken from core_b every 500 µs while a nice +10 thread on core_a computes in
/// 5 ms bursts; `slice`: the woken thread's request_time_slice (0: the kernel's default).
BehindBusy behind_busy(const Args& a, std::chrono::microseconds slice) {
  constexpr std::size_t kWakes = 4000;
  constexpr std::int64_t kGapNs = 500'000, kBurstNs = 5'000'000;
  BehindBusy r;
  Pipe p;
  if (!p.ok()) return r;
  std::atomic<bool> stop{false};
  bool pinned_busy = false, pinned_woken = false;
  std::thread busy([&] {
    pinned_busy = pin(a.core_a);
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
    while (!stop.load(std::memory_order_relaxed)) {
      const std::int64_t t0 = now_ns();
      while (now_ns() - t0 < kBurstNs) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
    }
  });
  std::vector<double> waits;
  waits.reserve(kWakes);
  std::thread woken([&] {
    pinned_woken = pin(a.core_a);
    (void)chat::request_time_slice(slice);  // 0: the kernel's default, even if inherited
    r.slice_us = chat::current_time_slice().count();
    std::int64_t sent = 0;
    while (::read(p.fd[0], &sent, sizeof sent) == sizeof sent && sent > 0) {
      waits.push_back(static_cast<double>(now_ns() - sent) / 1e3);
      const std::int64_t t0 = now_ns();  // a little work per wake, as a journal commit has
      while (now_ns() - t0 < 20'000) {
      }
    }
  });
  const bool pinned_waker = pin(a.core_b);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool ok = true;
  for (std::size_t i = 0; i < kWakes && ok; ++i) {
    const std::int64_t due = now_ns() + kGapNs;
    while (now_ns() < due) {
    }
    const std::int64_t t = now_ns();
    ok = ::write(p.fd[1], &t, sizeof t) == sizeof t;
  }
  const std::int64_t end = 0;
  ok = ::write(p.fd[1], &end, sizeof end) == sizeof end && ok;
  woken.join();
  stop = true;
  busy.join();
  const chat::bench::SortedSamples s(std::move(waits));
  if (s.empty()) return r;
  r.ok = ok && pinned_busy && pinned_woken && pinned_waker;
  r.p50 = s.q(0.5);
  r.p99 = s.q(0.99);
  r.p999 = s.q(0.999);
  r.max = s.q(1.0);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) {
    std::fputs("usage: chat-wake-bench [--iterations N] [--cores A,B] [--gap-us G]\n", stderr);
    return 2;
  }
  if (a.core_a < 0 && !first_two_cores(a.core_a, a.core_b)) {
    std::fputs("chat-wake-bench: this process may run on one core only: skipped\n", stderr);
    return 77;
  }
  const RoundTrip same = round_trip(a, a.core_a, a.core_a);
  const RoundTrip cross = round_trip(a, a.core_a, a.core_b);
  const OneWake wake = one_wake(a);
  const BehindBusy busy_default = behind_busy(a, std::chrono::microseconds(0));
  const BehindBusy busy_short = behind_busy(a, std::chrono::microseconds(100));
  if (!same.ok || !cross.ok || !wake.ok || !busy_default.ok || !busy_short.ok) {
    std::fprintf(stderr, "chat-wake-bench: cannot run on cores %d and %d (pinning failed)\n",
                 a.core_a, a.core_b);
    return 1;
  }
  std::printf("chat-wake-bench: %zu round trips of one byte over pipes; cores %d and %d\n",
              a.iterations, a.core_a, a.core_b);
  std::printf("  %-26s %12s %22s\n", "", "round trip", "CPU per round trip");
  for (const auto& [name, r] : {std::pair{"both threads on one core", same},
                                std::pair{"one thread on each core", cross}})
    std::printf("  %-26s %9.2f us %12.2f + %.2f us\n", name, r.rtt_us, r.cpu_first, r.cpu_second);
  std::printf("  waking a thread asleep on the other core (every %zu us): the waker's write()\n"
              "  p50 %.2f us, p99 %.2f us, mean %.2f us; the woken thread's CPU %.2f us per wake\n",
              a.gap_us, wake.write_p50, wake.write_p99, wake.write_mean, wake.sleeper_cpu);
  std::printf("  woken on a core where a nice +10 thread computes 5 ms bursts: wait until it runs\n");
  for (const auto& [name, b] : {std::pair{"kernel's default slice", busy_default},
                                std::pair{"100 us slice", busy_short}})
    std::printf("  %-24s (%5lld us) p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n", name,
                static_cast<long long>(b.slice_us), b.p50, b.p99, b.p999, b.max);
  auto busy_json = [](const BehindBusy& b) {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "{\"slice_us\":%lld,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
                  static_cast<long long>(b.slice_us), b.p50, b.p99, b.p999, b.max);
    return std::string(buf);
  };
  std::printf("RESULT {\"scenario\":\"wake\",\"iterations\":%zu,\"cores\":[%d,%d],\"gap_us\":%zu,"
              "\"same_core\":{\"rtt_us\":%.2f,\"cpu_us\":[%.2f,%.2f]},"
              "\"cross_core\":{\"rtt_us\":%.2f,\"cpu_us\":[%.2f,%.2f]},\"wake\":{\"write_us\":"
              "{\"p50\":%.2f,\"p99\":%.2f,\"mean\":%.2f},\"woken_cpu_us\":%.2f},"
              "\"behind_busy_us\":{\"default_slice\":%s,\"short_slice\":%s}}\n",
              a.iterations, a.core_a, a.core_b, a.gap_us, same.rtt_us, same.cpu_first,
              same.cpu_second, cross.rtt_us, cross.cpu_first, cross.cpu_second, wake.write_p50,
              wake.write_p99, wake.write_mean, wake.sleeper_cpu, busy_json(busy_default).c_str(),
              busy_json(busy_short).c_str());
  return 0;
}
