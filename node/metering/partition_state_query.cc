// Queries of node/metering/partition_state.h (product-semantics 6, WP 7.6, 7.7, 7.11).
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/metering/partition_state.h"

namespace unimeter::metering {
namespace {

absl::Status CheckDistinctKeys(absl::Span<const std::string> keys, const char* what) {
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (keys[i] == keys[j]) {
        return absl::InvalidArgumentError(absl::StrCat(what, " key '", keys[i], "' repeated"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

const PartitionState::Series* PartitionState::FindSeries(uint64_t account_id,
                                                         uint32_t metric_id) const {
  const uint32_t* slot = series_index_.Find(SeriesKey{account_id, metric_id});
  return slot == nullptr ? nullptr : &series_[*slot];
}

// Buckets (of any period rule) overlapping [start_ns, end_ns) after mapping negative times
// to the epoch. REQUIRES: start_ns < end_ns.
std::vector<const PartitionState::Bucket*> PartitionState::OverlappingBuckets(const Series& series,
                                                                              int64_t start_ns,
                                                                              int64_t end_ns) {
  UM_CHECK_LT(start_ns, end_ns);
  const int64_t low = std::max<int64_t>(start_ns, 0);
  const int64_t high = std::max<int64_t>(end_ns - 1, 0);  // Inclusive.
  // A bucket ending after `low` starts after low - (longest bucket).
  const __int128 first_start = static_cast<__int128>(low) - series.bucket_length_max_ns;
  const int64_t first_start_ns =
      first_start < INT64_MIN ? INT64_MIN : static_cast<int64_t>(first_start);
  auto it = std::lower_bound(
      series.buckets.begin(), series.buckets.end(), first_start_ns,
      [](const Bucket& bucket, int64_t start) { return bucket.range.start_ns < start; });
  std::vector<const Bucket*> result;
  for (; it != series.buckets.end() && it->range.start_ns <= high; ++it) {
    if (it->range.end_ns > low) result.push_back(&*it);
  }
  return result;
}

bool PartitionState::MergeSlice(const Bucket& bucket, uint64_t slice_id, AggValue* merged) {
  const std::vector<SliceAgg>& slices = bucket.slices.view();
  auto it =
      std::lower_bound(slices.begin(), slices.end(), slice_id,
                       [](const SliceAgg& slice, uint64_t id) { return slice.slice_id < id; });
  if (it == slices.end() || it->slice_id != slice_id) return false;
  merged->MergeFrom(it->value);
  return true;
}

absl::StatusOr<AggValue> PartitionState::QueryUsage(uint64_t account_id,
                                                    absl::string_view metric_code, int64_t start_ns,
                                                    int64_t end_ns,
                                                    absl::Span<const Filter> filters) const {
  if (filters.size() > kQueryFiltersMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(filters.size(), " filters; at most ", kQueryFiltersMax));
  }
  for (size_t i = 0; i < filters.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (filters[i].key == filters[j].key) {
        return absl::InvalidArgumentError(
            absl::StrCat("filter key '", filters[i].key, "' repeated"));
      }
    }
  }
  AggValue merged;
  if (end_ns <= start_ns) return merged;
  const std::optional<uint32_t> metric_id = FindMetricId(metric_code);
  if (!metric_id.has_value() || metrics_[*metric_id].schema == nullptr) return merged;
  const CompiledSchema& schema = *metrics_[*metric_id].schema;
  uint64_t slice_id = 0;
  for (const Filter& filter : filters) {
    const int dimension = schema.FindDimension(filter.key);
    if (dimension < 0) return merged;
    const std::optional<uint64_t> pair_hash = schema.DeclaredPairHash(dimension, filter.value);
    if (!pair_hash.has_value()) return merged;
    slice_id ^= *pair_hash;
  }
  const Series* series = FindSeries(account_id, *metric_id);
  if (series == nullptr) return merged;
  for (const Bucket* bucket : OverlappingBuckets(*series, start_ns, end_ns)) {
    if (filters.empty()) {
      merged.MergeFrom(bucket->total);
    } else {
      MergeSlice(*bucket, slice_id, &merged);
    }
  }
  if (!filters.empty()) merged.alert_flags = 0;
  return merged;
}

AggValue PartitionState::QueryRealtime(uint64_t account_id, absl::string_view metric_code,
                                       int64_t now_ns) const {
  AggValue result;
  const std::optional<uint32_t> metric_id = FindMetricId(metric_code);
  if (!metric_id.has_value() || metrics_[*metric_id].schema == nullptr) return result;
  const Series* series = FindSeries(account_id, *metric_id);
  if (series == nullptr) return result;
  const BucketRange range = metrics_[*metric_id].schema->BucketFor(now_ns);
  auto it =
      std::lower_bound(series->buckets.begin(), series->buckets.end(), range,
                       [](const Bucket& bucket, const BucketRange& r) { return bucket.range < r; });
  if (it != series->buckets.end() && it->range == range) result = it->total;
  return result;
}

absl::StatusOr<std::vector<BreakdownCell>> PartitionState::QueryBreakdown(
    uint64_t account_id, absl::string_view metric_code, int64_t start_ns, int64_t end_ns,
    absl::Span<const std::string> group_by) const {
  if (group_by.size() < kGroupByKeysMin || group_by.size() > kGroupByKeysMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(group_by.size(), " group-by keys; 1 to 4 required"));
  }
  absl::Status status = CheckDistinctKeys(group_by, "group-by");
  if (!status.ok()) return status;
  const std::optional<uint32_t> metric_id = FindMetricId(metric_code);
  if (!metric_id.has_value() || metrics_[*metric_id].schema == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("metric '", metric_code, "' is not registered"));
  }
  const CompiledSchema& schema = *metrics_[*metric_id].schema;
  std::vector<int> dimensions;
  for (const std::string& key : group_by) {
    const int dimension = schema.FindDimension(key);
    if (dimension < 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", key, "' is not a declared dimension"));
    }
    dimensions.push_back(dimension);
  }
  std::vector<BreakdownCell> cells;
  const Series* series = FindSeries(account_id, *metric_id);
  if (end_ns <= start_ns || series == nullptr) return cells;
  for (const int dimension : dimensions) {
    if (schema.dimensions()[dimension].values.empty()) return cells;  // An empty product.
  }
  const std::vector<const Bucket*> buckets = OverlappingBuckets(*series, start_ns, end_ns);
  // Odometer over value indexes; the last key varies fastest.
  std::vector<size_t> index(dimensions.size(), 0);
  while (cells.size() < kBreakdownEntriesMax) {
    uint64_t slice_id = 0;
    for (size_t k = 0; k < dimensions.size(); ++k) {
      slice_id ^= schema.pair_hash(dimensions[k], index[k]);
    }
    AggValue merged;
    bool contributed = false;
    for (const Bucket* bucket : buckets) contributed |= MergeSlice(*bucket, slice_id, &merged);
    if (contributed) {
      BreakdownCell cell;
      for (size_t k = 0; k < dimensions.size(); ++k) {
        const Dimension& dimension = schema.dimensions()[dimensions[k]];
        cell.pairs.push_back(Filter{dimension.key, dimension.values[index[k]]});
      }
      merged.alert_flags = 0;
      cell.value = merged;
      cells.push_back(std::move(cell));
    }
    size_t k = dimensions.size();
    while (k > 0) {
      --k;
      if (++index[k] < schema.dimensions()[dimensions[k]].values.size()) break;
      index[k] = 0;
      if (k == 0) return cells;
    }
  }
  return cells;
}

std::vector<SchemaRef> PartitionState::ListMetrics() const {
  std::vector<SchemaRef> schemas;
  for (const Metric& metric : metrics_) {
    if (metric.schema != nullptr) schemas.push_back(metric.schema);
  }
  std::sort(schemas.begin(), schemas.end(),
            [](const SchemaRef& a, const SchemaRef& b) { return a->code() < b->code(); });
  return schemas;
}

}  // namespace unimeter::metering
