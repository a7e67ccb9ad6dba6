// chat-fsync-bench: how long this machine's disk takes to make a small write durable, the floor
// under every latency of a store that acknowledges a message only once it is on disk (chatd's
// journal commits once per group of appends: one write and one fdatasync).
//
//   chat-fsync-bench [--writes 4000] [--bytes 2500] [--interval-us 500] [--dir DIR]
//                    [--background-mb 0] [--background-period-ms 200] [--background-chunk-kb 0]
//
// Each write of --bytes is followed by fdatasync, then a pause of --interval-us (a journal
// committing every 500 µs, ten 250-byte messages a commit, is the default). Two files are
// measured one after the other: one that grows with each write ("append": the size changes,
// so every fdatasync also commits the file system's journal) and one written in place after
// being filled with zeros ("overwrite": data only). --background-mb writes that many MiB to a
// third file every --background-period-ms and syncs it, as the store's indexer and
// checkpoints do; with --background-chunk-kb it streams them instead, a chunk at a time, as the
// store's paced VFS (src/store/paced_vfs.hpp) does (sync_file_range: start each chunk's
// write-back, wait for the one before), so that at most two chunks are ever queued at the disk
// ahead of a journal sync. Besides the latencies, the CPU the writing thread spent per write and
// fdatasync (CLOCK_THREAD_CPUTIME_ID: the kernel's work to submit the write-back and the cache
// flush and to take their completions, which in a virtual machine includes the exits to the
// hypervisor). Prints a table, then one line "RESULT {json}".
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "histogram.hpp"
#include "proc_stats.hpp"

namespace {

using chat::bench::thread_cpu_us;

struct Args {
  std::size_t writes = 4000;
  std::size_t bytes = 2500;
  std::size_t interval_us = 500;
  std::size_t background_mb = 0;
  std::size_t background_period_ms = 200;
  std::size_t background_chunk_kb = 0;  // 0: one write of background_mb, then fdatasync
  std::string dir;
};

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    auto num = [&](std::size_t& out) { return chat::bench::parse_number(v, out); };
    bool ok = true;
    if (k == "--writes") ok = num(a.writes) && a.writes > 0;
    else if (k == "--bytes") ok = num(a.bytes) && a.bytes > 0 && a.bytes <= (1u << 20);
    else if (k == "--interval-us") ok = num(a.interval_us);
    else if (k == "--background-mb") ok = num(a.background_mb) && a.background_mb <= 1024;
    else if (k == "--background-period-ms") ok = num(a.background_period_ms) && a.background_period_ms > 0;
    else if (k == "--background-chunk-kb") ok = num(a.background_chunk_kb) && a.background_chunk_kb <= (1u << 20);
    else if (k == "--dir") a.dir = v;
    else ok = false;
    if (!ok) return false;
  }
  return true;
}

struct Figures {
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;
  double cpu_us = 0;  // the thread's CPU per write + fdatasync
};

/// Each write+fdatasync's duration (µs), and the thread's CPU over all of them.
struct Samples {
  std::vector<double> us;
  double cpu_us = 0;
};

Figures summarise(Samples s) {
  const double n = static_cast<double>(s.us.size());
  const chat::bench::SortedSamples us(std::move(s.us));
  return {us.q(0.50), us.q(0.90), us.q(0.99), us.q(0.999), us.max(), us.mean(), s.cpu_us / n};
}


/// Writes and syncs `a.writes` records into `path`; empty samples on an I/O error (reported).
Samples measure(const Args& a, const std::string& path, bool preallocate) {
  Samples out;
  std::vector<double>& us = out.us;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    return out;
  }
  const std::vector<char> rec(a.bytes, 'm');
  bool failed = false;
  if (preallocate) {
    const std::vector<char> zeros(1 << 20, 0);
    const std::size_t total = a.writes * a.bytes;
    for (std::size_t off = 0; off < total && !failed; off += zeros.size())
      failed = ::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(off)) < 0;
    failed = failed || ::fsync(fd) != 0;
  }
  us.reserve(a.writes);
  for (std::size_t i = 0; i < a.writes && !failed; ++i) {
    const double c0 = thread_cpu_us();
    const auto t0 = std::chrono::steady_clock::now();
    failed = ::pwrite(fd, rec.data(), rec.size(), static_cast<off_t>(i * a.bytes)) != static_cast<ssize_t>(rec.size()) ||
             ::fdatasync(fd) != 0;
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    out.cpu_us += thread_cpu_us() - c0;
    if (a.interval_us) std::this_thread::sleep_for(std::chrono::microseconds(a.interval_us));
  }
  if (failed) {
    std::perror(path.c_str());
    us.clear();
  }
  ::close(fd);
  ::unlink(path.c_str());
  return out;
}

std::string json(const char* name, const Figures& f) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\"%s\":{\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p999\":%.0f,\"max\":%.0f,\"mean\":%.1f,"
                "\"cpu_us\":%.1f}",
                name, f.p50, f.p90, f.p99, f.p999, f.max, f.mean, f.cpu_us);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, a)) {
    std::fputs("usage: chat-fsync-bench [--writes N] [--bytes B] [--interval-us U] [--dir DIR]\n"
               "                        [--background-mb M] [--background-period-ms P]"
               " [--background-chunk-kb K]\n",
               stderr);
    return 2;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool temp_dir = a.dir.empty();
  if (temp_dir) {
    a.dir = (fs::temp_directory_path() / ("chat-fsync-bench-" + std::to_string(::getpid()))).string();
  }
  fs::create_directories(a.dir, ec);
  if (ec) {
    std::fprintf(stderr, "chat-fsync-bench: %s: %s\n", a.dir.c_str(), ec.message().c_str());
    return 1;
  }

  // The background writer: --background-mb every period, then fdatasync (the indexer's shape).
  std::atomic<bool> stop{false};
  std::thread background;
  if (a.background_mb) {
    background = std::thread([&] {
      const std::string path = a.dir + "/background.bin";
      const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return;
      const std::vector<char> chunk(a.background_mb << 20, 'b');
      off_t off = 0;
      const std::size_t step = a.background_chunk_kb ? std::min(chunk.size(), a.background_chunk_kb << 10) : chunk.size();
      while (!stop.load()) {
        bool failed = false;
        for (std::size_t done = 0; done < chunk.size() && !failed; done += step) {
          const std::size_t n = std::min(step, chunk.size() - done);
          const off_t at = off + static_cast<off_t>(done);
          failed = ::pwrite(fd, chunk.data() + done, n, at) < 0;
          if (failed || step == chunk.size()) continue;
          failed = ::sync_file_range(fd, at, static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE) != 0;
          if (!failed && done > 0)
            failed = ::sync_file_range(fd, at - static_cast<off_t>(step), static_cast<off_t>(step),
                                       SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                           SYNC_FILE_RANGE_WAIT_AFTER) != 0;
        }
        if (failed || ::fdatasync(fd) != 0) break;
        off = (off + static_cast<off_t>(chunk.size())) % (static_cast<off_t>(chunk.size()) * 16);
        std::this_thread::sleep_for(std::chrono::milliseconds(a.background_period_ms));
      }
      ::close(fd);
      ::unlink(path.c_str());
    });
  }
  const Samples grow = measure(a, a.dir + "/append.bin", false);
  const Samples in_place = grow.us.empty() ? grow : measure(a, a.dir + "/overwrite.bin", true);
  stop = true;
  if (background.joinable()) background.join();
  if (temp_dir) fs::remove_all(a.dir, ec);
  if (grow.us.empty() || in_place.us.empty()) return 1;

  const Figures g = summarise(grow), p = summarise(in_place);
  std::printf("chat-fsync-bench: %zu writes of %zu bytes, each followed by fdatasync, every %zu µs; "
              "background %zu MiB every %zu ms (chunks of %zu KiB; 0: one write)\n",
              a.writes, a.bytes, a.interval_us, a.background_mb, a.background_period_ms, a.background_chunk_kb);
  std::printf("  latency (µs)    p50     p90     p99   p99.9     max    mean   CPU/sync (µs)\n");
  for (const auto& [name, f] : {std::pair{"append", g}, std::pair{"overwrite", p}})
    std::printf("  %-10s  %7.0f %7.0f %7.0f %7.0f %7.0f %7.1f   %7.1f\n", name, f.p50, f.p90, f.p99,
                f.p999, f.max, f.mean, f.cpu_us);
  std::printf("RESULT {\"scenario\":\"fsync\",\"writes\":%zu,\"bytes\":%zu,\"interval_us\":%zu,"
              "\"background_mb\":%zu,\"background_period_ms\":%zu,\"background_chunk_kb\":%zu,\"latency_us\":{%s,%s}}\n",
              a.writes, a.bytes, a.interval_us, a.background_mb, a.background_period_ms, a.background_chunk_kb,
              json("append", g).c_str(), json("overwrite", p).c_str());
  return 0;
}
