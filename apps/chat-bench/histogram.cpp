#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>

#include <boost/json.hpp>

namespace chat::bench {

namespace json = boost::json;

std::size_t Histogram::index_of(std::uint64_t v) noexcept {
  constexpr std::uint64_t kExact = std::uint64_t{1} << kSubBits;
  if (v < kExact) return static_cast<std::size_t>(v);
  const int top = std::bit_width(v) - 1;  // floor(log2 v) >= kSubBits
  if (top > kMaxExponent) return kBuckets - 1;
  const int shift = top - (kSubBits - 1);  // keep kSubBits bits: mantissa in [2^(k-1), 2^k)
  const std::uint64_t mantissa = v >> shift;
  const std::size_t half = std::size_t{1} << (kSubBits - 1);
  return static_cast<std::size_t>(kExact + (top - kSubBits) * half + (mantissa - half));
}

std::uint64_t Histogram::highest_of(std::size_t index) noexcept {
  constexpr std::uint64_t kExact = std::uint64_t{1} << kSubBits;
  if (index < kExact) return index;
  const std::size_t half = std::size_t{1} << (kSubBits - 1);
  const std::size_t rel = index - kExact;
  const int top = static_cast<int>(rel / half) + kSubBits;
  const std::uint64_t mantissa = half + rel % half;
  const int shift = top - (kSubBits - 1);
  return ((mantissa + 1) << shift) - 1;
}

void Histogram::record(std::int64_t value_us) noexcept {
  if (value_us < 0) value_us = 0;
  ++counts_[index_of(static_cast<std::uint64_t>(value_us))];
  ++count_;
  sum_ += static_cast<std::uint64_t>(value_us);
  min_ = std::min(min_, value_us);
  max_ = std::max(max_, value_us);
}

void Histogram::merge(const Histogram& o) noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

std::int64_t Histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      if (i == kBuckets - 1) return max_;  // the overflow bucket: its values were clamped
      return std::min<std::int64_t>(static_cast<std::int64_t>(highest_of(i)), max_);
    }
  }
  return max_;
}

json::value Histogram::to_json() const {
  json::array b;
  for (std::size_t i = 0; i < kBuckets; ++i)
    if (counts_[i]) b.push_back(json::array{i, counts_[i]});
  return json::object{{"n", count_}, {"sum", sum_}, {"min", min()}, {"max", max_}, {"b", std::move(b)}};
}

bool Histogram::from_json(const json::value& v) {
  *this = Histogram{};
  const auto* o = v.if_object();
  if (!o) return false;
  const auto* b = o->if_contains("b");
  if (!b || !b->is_array()) return false;
  std::uint64_t n = 0;
  for (const auto& e : b->get_array()) {
    const auto* pair = e.if_array();
    if (!pair || pair->size() != 2 || !(*pair)[0].is_number() || !(*pair)[1].is_number()) {
      *this = Histogram{};
      return false;
    }
    boost::system::error_code ec1, ec2;
    auto idx = (*pair)[0].to_number<std::uint64_t>(ec1);
    auto cnt = (*pair)[1].to_number<std::uint64_t>(ec2);
    if (ec1 || ec2 || idx >= kBuckets) {
      *this = Histogram{};
      return false;
    }
    counts_[idx] += cnt;
    n += cnt;
  }
  count_ = n;
  auto num = [&](const char* k) -> std::int64_t {
    const auto* x = o->if_contains(k);
    boost::system::error_code ec;
    std::int64_t r = x && x->is_number() ? x->to_number<std::int64_t>(ec) : 0;
    return ec ? 0 : r;
  };
  sum_ = static_cast<std::uint64_t>(num("sum"));
  min_ = n ? num("min") : INT64_MAX;
  max_ = num("max");
  return true;
}

json::value Histogram::summary_json() const {
  return json::object{{"count", count_},        {"mean", std::round(mean() * 10) / 10},
                      {"p50", percentile(0.5)}, {"p90", percentile(0.9)},
                      {"p99", percentile(0.99)}, {"p999", percentile(0.999)},
                      {"max", max_}};
}

SortedSamples::SortedSamples(std::vector<double> values) : v_(std::move(values)) {
  std::sort(v_.begin(), v_.end());
  double sum = 0;
  for (double x : v_) sum += x;
  if (!v_.empty()) mean_ = sum / static_cast<double>(v_.size());
}

double SortedSamples::q(double f) const noexcept {
  if (v_.empty()) return 0;
  const auto at = static_cast<std::size_t>(f * static_cast<double>(v_.size()));
  return v_[std::min(v_.size() - 1, at)];
}

}  // namespace chat::bench
