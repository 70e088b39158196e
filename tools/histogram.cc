#include "tools/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "node/base/check.h"

namespace unimeter::tools {

double NearestRankQuantile(const std::vector<double>& sorted, double quantile) {
  UM_CHECK(!sorted.empty());
  const size_t rank = static_cast<size_t>(quantile * static_cast<double>(sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank)];
}

LatencyHistogram::LatencyHistogram() : counts_(BucketCount(), 0) {}

size_t LatencyHistogram::BucketCount() {
  return BucketIndex(std::numeric_limits<uint64_t>::max()) + 1;
}

size_t LatencyHistogram::BucketIndex(uint64_t value) {
  if (value < 2 * kSubBucketCount) {
    return static_cast<size_t>(value);
  }
  const int top_bit = std::bit_width(value) - 1;  // >= kSubBucketBits + 1.
  const int shift = top_bit - kSubBucketBits;     // >= 1.
  return static_cast<size_t>(shift + 1) * kSubBucketCount + ((value >> shift) - kSubBucketCount);
}

uint64_t LatencyHistogram::BucketLowest(size_t index) {
  if (index < 2 * kSubBucketCount) {
    return index;
  }
  const int shift = static_cast<int>(index / kSubBucketCount) - 1;
  const uint64_t sub = index % kSubBucketCount + kSubBucketCount;
  return sub << shift;
}

uint64_t LatencyHistogram::BucketHighest(size_t index) {
  if (index < 2 * kSubBucketCount) {
    return index;
  }
  const int shift = static_cast<int>(index / kSubBucketCount) - 1;
  return BucketLowest(index) + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Record(uint64_t value) {
  const size_t index = BucketIndex(value);
  UM_CHECK_LT(index, counts_.size());
  ++counts_[index];
  min_ = count_ == 0 ? value : std::min(min_, value);
  max_ = std::max(max_, value);
  ++count_;
  total_ += static_cast<long double>(value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  UM_CHECK_EQ(counts_.size(), other.counts_.size());
  for (size_t i = 0; i < counts_.size(); ++i) {
    counts_[i] += other.counts_[i];
  }
  if (other.count_ != 0) {
    min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  }
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  total_ += other.total_;
}

void LatencyHistogram::Clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = 0;
  max_ = 0;
  total_ = 0;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(total_ / static_cast<long double>(count_));
}

uint64_t LatencyHistogram::Percentile(double quantile) const {
  if (count_ == 0) {
    return 0;
  }
  quantile = std::clamp(quantile, 0.0, 1.0);
  const uint64_t rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(quantile * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::min(BucketHighest(i), max_);
    }
  }
  return max_;
}

}  // namespace unimeter::tools
