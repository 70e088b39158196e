// tools/histogram.h
//
// LatencyHistogram: a log-linear histogram in the spirit of HdrHistogram, written for
// unimeter-bench. Values below 2 * 128 have their own bucket; above, every power of two is
// split into 128 equal sub-buckets, so a reported percentile is within 1/128 (< 0.8 %) of the
// true value. Fixed memory (7,424 counters covers every uint64), O(1) recording, mergeable.
// Not thread-safe: give each worker its own and Merge them at the end.
#ifndef UNIMETER_TOOLS_HISTOGRAM_H_
#define UNIMETER_TOOLS_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace unimeter::tools {

// The exact nearest-rank quantile of `sorted` (ascending, not empty): the element at
// floor(quantile * size), clamped to the last. For the probes' small sample sets.
double NearestRankQuantile(const std::vector<double>& sorted, double quantile);

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBucketCount = uint64_t{1} << kSubBucketBits;  // 128.

  LatencyHistogram();

  void Record(uint64_t value);
  void Merge(const LatencyHistogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const;
  // The smallest recorded bucket value v such that at least `quantile` (0..1] of the recorded
  // values are <= v, reported as the bucket's highest value (capped at max()). 0 if empty.
  uint64_t Percentile(double quantile) const;

  // Bucket arithmetic (public for tests).
  static size_t BucketIndex(uint64_t value);
  static uint64_t BucketLowest(size_t index);
  static uint64_t BucketHighest(size_t index);
  static size_t BucketCount();

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = 0;
  uint64_t max_ = 0;
  long double total_ = 0;
};

}  // namespace unimeter::tools

#endif  // UNIMETER_TOOLS_HISTOGRAM_H_
