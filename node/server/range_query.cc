#include "node/server/range_query.h"

#include "absl/container/btree_set.h"

namespace unimeter {
namespace {

// The value of the first property named `key`, or null.
const std::string* FirstProperty(const StoredEvent& event, const std::string& key) {
  for (const metering::Property& property : event.properties) {
    if (property.key == key) {
      return &property.value;
    }
  }
  return nullptr;
}

bool MatchesAll(const StoredEvent& event, absl::Span<const metering::Filter> filters) {
  for (const metering::Filter& filter : filters) {
    const std::string* value = FirstProperty(event, filter.key);
    if (value == nullptr || *value != filter.value) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<metering::AggValue> ComputeRangeAggregate(
    const metering::CompiledSchema& schema, absl::Span<const StoredEvent> events, int64_t start_ns,
    int64_t end_ns, absl::Span<const metering::Filter> filters) {
  if (filters.size() > metering::kDimensionsPerMetricMax) {
    return absl::InvalidArgumentError("more than 4 filters");
  }
  for (size_t i = 0; i < filters.size(); ++i) {
    for (size_t j = i + 1; j < filters.size(); ++j) {
      if (filters[i].key == filters[j].key) {
        return absl::InvalidArgumentError("a filter key appears twice");
      }
    }
    const int dimension = schema.FindDimension(filters[i].key);
    if (dimension < 0 || !schema.DeclaredPairHash(dimension, filters[i].value).has_value()) {
      return metering::AggValue{};  // Undeclared key or value: zeros.
    }
  }
  metering::AggValue value;
  absl::btree_set<uint64_t> members;
  for (const StoredEvent& event : events) {
    if (!event.registered || event.metric_code != schema.code() || event.timestamp_ns < start_ns ||
        event.timestamp_ns >= end_ns || !MatchesAll(event, filters)) {
      continue;
    }
    switch (schema.agg_type()) {
      case metering::AggregationType::kCount:
        ++value.count;
        break;
      case metering::AggregationType::kSum:
        if (event.negative_correction) {
          value.sum = value.sum > event.value ? value.sum - event.value : 0;
        } else {
          value.sum = metering::SaturatingAdd(value.sum, event.value);
        }
        break;
      case metering::AggregationType::kMax:
        value.max = std::max(value.max, event.value);
        break;
      case metering::AggregationType::kLatest:
        if (!value.has_last || event.timestamp_ns > value.last_timestamp_ns) {
          value.has_last = true;
          value.last_value = event.value;
          value.last_timestamp_ns = event.timestamp_ns;
        }
        break;
      case metering::AggregationType::kCountUnique:
        if (event.operation == static_cast<uint8_t>(metering::OperationType::kRemove)) {
          members.erase(event.value);
        } else {
          members.insert(event.value);
        }
        value.count = members.size();
        break;
    }
  }
  return value;
}

}  // namespace unimeter
