#pragma once
// A log-bucketed latency histogram in the spirit of HdrHistogram: values are microseconds, kept
// with 7 significant bits (relative error below 1%), from 0 to ~2^40 µs. Not thread-safe: keep
// one per thread and merge() at the end.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

namespace chat::bench {

class Histogram {
 public:
  /// Values below 2^kSubBits are exact; above, each power of two is split in 2^(kSubBits-1).
  static constexpr int kSubBits = 7;
  static constexpr int kMaxExponent = 40;  ///< ~12.7 days in µs: anything larger is clamped
  static constexpr std::size_t kBuckets =
      (std::size_t{1} << kSubBits) + (kMaxExponent - kSubBits + 1) * (std::size_t{1} << (kSubBits - 1));

  Histogram() : counts_(kBuckets, 0) {}

  /// Records one value (µs). Negative values (clock skew between processes) count as 0.
  void record(std::int64_t value_us) noexcept;
  void merge(const Histogram& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::int64_t min() const noexcept { return count_ ? min_ : 0; }
  std::int64_t max() const noexcept { return max_; }
  double mean() const noexcept { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }

  /// The value at quantile q in [0,1]: the highest value of the bucket holding the q-th
  /// recorded value (so it never under-reports), clamped to max(). 0 when empty.
  std::int64_t percentile(double q) const noexcept;

  /// Sparse form for shipping between processes: {"n":…, "sum":…, "min":…, "max":…,
  /// "b":[[index,count],…]}.
  boost::json::value to_json() const;
  /// Inverse of to_json(); malformed input gives an empty histogram and false.
  bool from_json(const boost::json::value& v);

  /// {"count","mean","p50","p90","p99","p999","max"} in µs.
  boost::json::value summary_json() const;

  static std::size_t index_of(std::uint64_t v) noexcept;
  /// Highest value that maps to bucket `index`.
  static std::uint64_t highest_of(std::size_t index) noexcept;

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::int64_t min_ = INT64_MAX;
  std::int64_t max_ = 0;
};

/// Exact statistics of a few thousand samples where fractions of a µs matter (the platform
/// probes), unlike in Histogram: sorted once; q(f) is the sample at index floor(f·n), clamped.
class SortedSamples {
 public:
  explicit SortedSamples(std::vector<double> values);
  bool empty() const noexcept { return v_.empty(); }
  double q(double f) const noexcept;  ///< 0 when empty
  double max() const noexcept { return v_.empty() ? 0.0 : v_.back(); }
  double mean() const noexcept { return mean_; }

 private:
  std::vector<double> v_;
  double mean_ = 0;
};

}  // namespace chat::bench
