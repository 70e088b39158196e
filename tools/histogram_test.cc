// Tests of the bench's log-linear latency histogram: bucket arithmetic covers every uint64
// without gaps, percentiles are exact for small values and within 1/128 above, merging works.
#include "tools/histogram.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace unimeter::tools {
namespace {

TEST(NearestRankQuantileTest, PicksTheElementAtTheRankClampedToTheLast) {
  const std::vector<double> sorted = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(NearestRankQuantile(sorted, 0.0), 1);
  EXPECT_EQ(NearestRankQuantile(sorted, 0.5), 6);
  EXPECT_EQ(NearestRankQuantile(sorted, 0.9), 10);
  EXPECT_EQ(NearestRankQuantile(sorted, 0.99), 10);
  EXPECT_EQ(NearestRankQuantile(sorted, 1.0), 10);
  EXPECT_EQ(NearestRankQuantile({42}, 0.5), 42);
}

TEST(LatencyHistogramTest, BucketsAreContiguousAndCoverUint64) {
  EXPECT_EQ(LatencyHistogram::BucketIndex(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(255), 255u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(256), 256u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(257), 256u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(258), 257u);
  const size_t last = LatencyHistogram::BucketCount() - 1;
  EXPECT_EQ(LatencyHistogram::BucketIndex(std::numeric_limits<uint64_t>::max()), last);
  EXPECT_EQ(LatencyHistogram::BucketHighest(last), std::numeric_limits<uint64_t>::max());
  for (size_t i = 0; i + 1 < LatencyHistogram::BucketCount(); ++i) {
    ASSERT_EQ(LatencyHistogram::BucketHighest(i) + 1, LatencyHistogram::BucketLowest(i + 1)) << i;
    ASSERT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketLowest(i)), i);
    ASSERT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketHighest(i)), i);
  }
}

TEST(LatencyHistogramTest, PercentilesOfAUniformRange) {
  LatencyHistogram histogram;
  for (uint64_t v = 1; v <= 100'000; ++v) {
    histogram.Record(v * 1000);  // 1 us .. 100 ms in ns.
  }
  EXPECT_EQ(histogram.count(), 100'000u);
  EXPECT_EQ(histogram.min(), 1000u);
  EXPECT_EQ(histogram.max(), 100'000'000u);
  EXPECT_NEAR(histogram.mean(), 50'000'500.0, 1.0);
  const struct {
    double quantile;
    double expected;
  } cases[] = {{0.5, 50e6}, {0.9, 90e6}, {0.99, 99e6}, {0.999, 99.9e6}, {1.0, 100e6}};
  for (const auto& c : cases) {
    const double got = static_cast<double>(histogram.Percentile(c.quantile));
    EXPECT_GE(got, c.expected) << c.quantile;  // Reported as the bucket's highest value.
    EXPECT_LE(got, c.expected * (1.0 + 1.0 / 128)) << c.quantile;
  }
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram histogram;
  for (uint64_t v : {5, 1, 3, 2, 4}) {
    histogram.Record(v);
  }
  EXPECT_EQ(histogram.Percentile(0.2), 1u);
  EXPECT_EQ(histogram.Percentile(0.5), 3u);
  EXPECT_EQ(histogram.Percentile(0.0), 1u);
  EXPECT_EQ(histogram.Percentile(1.0), 5u);
}

TEST(LatencyHistogramTest, MergeAndClear) {
  LatencyHistogram a;
  LatencyHistogram b;
  EXPECT_EQ(a.Percentile(0.99), 0u);
  for (int i = 0; i < 99; ++i) {
    a.Record(10);
  }
  b.Record(1'000'000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 100u);
  EXPECT_EQ(a.Percentile(0.99), 10u);
  EXPECT_GE(a.Percentile(0.999), 1'000'000u);
  EXPECT_EQ(a.max(), 1'000'000u);
  EXPECT_EQ(a.min(), 10u);
  a.Clear();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.Percentile(0.5), 0u);
}

}  // namespace
}  // namespace unimeter::tools
