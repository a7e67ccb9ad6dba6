// The latency histogram of chat-bench: bucket boundaries, percentiles against an exact sort,
// merging and the JSON round trip used between worker processes.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <random>
#include <utility>
#include <vector>

#include "histogram.hpp"

using chat::bench::Histogram;
using chat::bench::SortedSamples;

TEST(BenchHistogram, SmallValuesAreExact) {
  Histogram h;
  for (int v = 0; v < 128; ++v) h.record(v);
  EXPECT_EQ(h.count(), 128u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 127);
  EXPECT_EQ(h.percentile(0.5), 63);
  EXPECT_EQ(h.percentile(1.0), 127);
  EXPECT_EQ(h.percentile(0.0), 0);
}

TEST(BenchHistogram, BucketsCoverEveryValueOnceAndInOrder) {
  std::uint64_t prev_hi = 0;
  for (std::size_t i = 1; i < 2000 && i < Histogram::kBuckets; ++i) {
    const std::uint64_t lo = Histogram::highest_of(i - 1) + 1;
    const std::uint64_t hi = Histogram::highest_of(i);
    ASSERT_GE(hi, lo) << i;
    EXPECT_EQ(Histogram::index_of(lo), i);
    EXPECT_EQ(Histogram::index_of(hi), i);
    EXPECT_GT(hi, prev_hi);
    prev_hi = hi;
    // relative width below 1/64: 7 significant bits
    EXPECT_LE(static_cast<double>(hi - lo), static_cast<double>(lo) / 64.0 + 1) << i;
  }
}

TEST(BenchHistogram, PercentilesWithinOnePercentOfExact) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> d(7.0, 1.5);  // µs: a long tail like real latencies
  std::vector<std::int64_t> values;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<std::int64_t>(d(rng));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto exact = values[static_cast<std::size_t>(std::ceil(q * values.size())) - 1];
    const auto got = h.percentile(q);
    EXPECT_GE(got, exact) << q;  // never under-reports
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * 1.016 + 1) << q;
  }
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.percentile(1.0), values.back());
}

TEST(BenchHistogram, NegativeAndHugeValuesAreClamped) {
  Histogram h;
  h.record(-5);
  h.record(std::int64_t{1} << 50);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), std::int64_t{1} << 50);
  EXPECT_EQ(h.percentile(1.0), std::int64_t{1} << 50);
}

TEST(BenchHistogram, MergeAndJsonRoundTrip) {
  Histogram a, b;
  for (int i = 0; i < 1000; ++i) a.record(i * 10);
  for (int i = 0; i < 500; ++i) b.record(100000 + i);
  Histogram m = a;
  m.merge(b);
  EXPECT_EQ(m.count(), 1500u);
  EXPECT_EQ(m.max(), 100499);
  EXPECT_EQ(m.min(), 0);

  Histogram back;
  ASSERT_TRUE(back.from_json(boost::json::parse(boost::json::serialize(m.to_json()))));
  EXPECT_EQ(back.count(), m.count());
  EXPECT_EQ(back.max(), m.max());
  EXPECT_EQ(back.min(), m.min());
  for (double q : {0.1, 0.5, 0.66, 0.9, 0.99}) EXPECT_EQ(back.percentile(q), m.percentile(q)) << q;
  EXPECT_DOUBLE_EQ(back.mean(), m.mean());
}

TEST(BenchHistogram, MalformedJsonGivesAnEmptyHistogram) {
  Histogram h;
  h.record(5);
  EXPECT_FALSE(h.from_json(boost::json::parse(R"({"b":[[999999999,1]]})")));
  EXPECT_EQ(h.count(), 0u);
  EXPECT_FALSE(h.from_json(boost::json::parse(R"({"b":[["x",1]]})")));
  EXPECT_FALSE(h.from_json(boost::json::parse(R"([1,2])")));
  EXPECT_FALSE(h.from_json(boost::json::parse(R"({"b":[[1,-1]]})")));
  EXPECT_EQ(h.count(), 0u);
}

// The platform probes' exact statistics: the sample at floor(q·n), fractions of a µs kept.
TEST(BenchSortedSamples, QuantilesMeanAndMaxOfUnsortedSamples) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i + 0.25);  // 100.25 … 1.25, unsorted
  const SortedSamples s(std::move(v));
  EXPECT_FALSE(s.empty());
  EXPECT_DOUBLE_EQ(s.q(0.0), 1.25);
  EXPECT_DOUBLE_EQ(s.q(0.5), 51.25);
  EXPECT_DOUBLE_EQ(s.q(0.99), 100.25);
  EXPECT_DOUBLE_EQ(s.q(1.0), 100.25);  // clamped to the last sample
  EXPECT_DOUBLE_EQ(s.max(), 100.25);
  EXPECT_DOUBLE_EQ(s.mean(), 50.75);
  const SortedSamples none({});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.q(0.5), 0.0);
  EXPECT_EQ(none.max(), 0.0);
  EXPECT_EQ(none.mean(), 0.0);
}
