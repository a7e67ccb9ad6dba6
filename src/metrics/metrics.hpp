#pragma once
// A thin facade over prometheus-cpp so that the rest of the code does not include its headers.
// Handles (Counter, Gauge, Histogram) are cheap to copy, thread-safe, and live as long as the
// Registry that made them.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace chat::metrics {

using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  Counter() = default;
  explicit Counter(prometheus::Counter* c) : c_(c) {}
  void inc(double v = 1.0) const;
  double value() const;
 private:
  prometheus::Counter* c_ = nullptr;
};

class Gauge {
 public:
  Gauge() = default;
  explicit Gauge(prometheus::Gauge* g) : g_(g) {}
  void set(double v) const;
  void inc(double v = 1.0) const;
  void dec(double v = 1.0) const;
  double value() const;
 private:
  prometheus::Gauge* g_ = nullptr;
};

class Histogram {
 public:
  Histogram() = default;
  explicit Histogram(prometheus::Histogram* h) : h_(h) {}
  void observe(double v) const;
 private:
  prometheus::Histogram* h_ = nullptr;
};

/// Owns every metric of the process. Thread-safe.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Counter counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram histogram(std::string_view name, std::string_view help,
                      const std::vector<double>& buckets, const Labels& labels = {});

  /// `hook` runs before every scrape (to sample queue depths, /proc, …).
  void on_collect(std::function<void()> hook);
  /// Prometheus text exposition format (version 0.0.4).
  std::string serialize();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Registers process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds
/// (prom-client's names), sampled from /proc at each scrape.
void register_process_metrics(Registry& registry);

}  // namespace chat::metrics
