// node/metering/types.h
//
// Vocabulary of the metering state machine: limits, enums, metric schemas, events and
// aggregate values (product-semantics.md sections 2-4, wire-protocol-v1.md sections 3 and 6).
//
//   MetricSchema    a metric definition as registered; ValidateMetricSchema checks the
//                   limits and NormalizeMetricSchema applies the compat normalisations.
//   Event           one event as it reaches the partition owner (before timestamping).
//   AggValue        one aggregate value; MergeFrom is the bucket merge of section 4.3.
//
// Plain value types, no clocks, no randomness, no I/O.
#ifndef UNIMETER_NODE_METERING_TYPES_H_
#define UNIMETER_NODE_METERING_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace unimeter::metering {

// Limits (wire-protocol-v1.md section 3).
inline constexpr size_t kMetricCodeBytesMax = 63;
inline constexpr size_t kFieldNameBytesMax = 63;
inline constexpr size_t kPropertyKeyBytesMax = 31;
inline constexpr size_t kPropertyValueBytesMax = 63;
inline constexpr size_t kDimensionKeyBytesMax = 31;
inline constexpr size_t kDimensionValueBytesMax = 31;
inline constexpr size_t kDimensionsPerMetricMax = 4;
inline constexpr size_t kValuesPerDimensionMax = 8;
inline constexpr size_t kThresholdsPerMetricMax = 8;
inline constexpr size_t kThresholdCodeBytesMax = 31;
inline constexpr size_t kPropertiesPerEventMax = 255;
inline constexpr size_t kRequestEventsMax = 1024;
inline constexpr size_t kRequestPropertiesMax = 1024;
inline constexpr size_t kQueryFiltersMax = 4;
inline constexpr size_t kGroupByKeysMin = 1;
inline constexpr size_t kGroupByKeysMax = 4;
inline constexpr size_t kBreakdownEntriesMax = 614;
inline constexpr uint32_t kPartitionCount = 256;
inline constexpr uint8_t kBillingCycleDayMin = 1;
inline constexpr uint8_t kBillingCycleDayMax = 28;
// Every non-empty subset of at most 4 matched dimension pairs.
inline constexpr size_t kSlicesPerEventMax = (size_t{1} << kDimensionsPerMetricMax) - 1;

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;
inline constexpr int64_t kNanosPerDay = 86'400 * kNanosPerSecond;
inline constexpr int64_t kFixedPeriodNanos = 30 * kNanosPerDay;
inline constexpr int64_t kDedupWindowNanosDefault = 300 * kNanosPerSecond;
inline constexpr int64_t kIdempotencyWindowNanosDefault = 86'400 * kNanosPerSecond;

static_assert(kSlicesPerEventMax == 15);
static_assert(kThresholdsPerMetricMax <= 64, "alert_flags is a u64 bit set");
static_assert(kBreakdownEntriesMax * 320 <= 196'616, "breakdown reply bound (WP 7.11)");

enum class AggregationType : uint8_t {
  kCount = 0,
  kSum = 1,
  kMax = 2,
  kLatest = 3,
  kCountUnique = 4,
};
inline constexpr uint8_t kAggregationTypeMax = 4;

// Period types as interpreted; the schema stores the raw byte (unknown values as sent).
enum class PeriodType : uint8_t {
  kFixed = 0,
  kCalendar = 1,
  kDay = 2,
};

// The behaviour of a raw period_type byte: unknown values behave as FIXED [compat].
inline PeriodType EffectivePeriodType(uint8_t period_type_raw) {
  if (period_type_raw == 1) return PeriodType::kCalendar;
  if (period_type_raw == 2) return PeriodType::kDay;
  return PeriodType::kFixed;
}

enum class OperationType : uint8_t {
  kNone = 0,
  kAdd = 1,
  kRemove = 2,
};
inline constexpr uint8_t kOperationTypeMax = 2;

struct Dimension {
  std::string key;
  std::vector<std::string> values;  // Allowed values, declaration order.
  bool operator==(const Dimension&) const = default;
};

struct Threshold {
  std::string code;
  uint64_t value = 0;
  bool recurring = false;
  bool operator==(const Threshold&) const = default;
};

struct MetricSchema {
  std::string code;
  AggregationType agg_type = AggregationType::kCount;
  bool recurring = false;  // Stored and returned; no effect [compat].
  std::string field_name;  // Stored and returned; no effect [compat].
  std::vector<Dimension> dimensions;
  std::vector<Threshold> thresholds;
  uint8_t period_type = 0;        // Raw byte as sent; see EffectivePeriodType.
  uint8_t billing_cycle_day = 1;  // Normalised 1-28 (NormalizeMetricSchema).
  bool operator==(const MetricSchema&) const = default;
};

// 0 -> 1 [compat]; above 28 -> 28 [ours].
uint8_t NormalizeBillingCycleDay(uint8_t billing_cycle_day);

// Applies the normalisations of WP 7.3 (billing cycle day).
void NormalizeMetricSchema(MetricSchema& schema);

// InvalidArgument naming the first violated rule: code 1-63 bytes without NUL, agg_type
// <= 4, field_name <= 63, <= 4 dimensions with distinct keys <= 31 bytes and <= 8 values
// <= 31 bytes each, <= 8 thresholds with codes <= 31 bytes, billing_cycle_day 1-28 (call
// NormalizeMetricSchema first).
absl::Status ValidateMetricSchema(const MetricSchema& schema);

struct Property {
  std::string key;
  std::string value;
  bool operator==(const Property&) const = default;
};

// A client-supplied 128-bit idempotency key (extension ingest).
struct IdempotencyKey {
  uint64_t high = 0;
  uint64_t low = 0;
  bool operator==(const IdempotencyKey&) const = default;
  auto operator<=>(const IdempotencyKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H state, const IdempotencyKey& key) {
    return H::combine(std::move(state), key.high, key.low);
  }
};

// One event as received by the partition owner.
struct Event {
  uint64_t account_id = 0;
  std::string metric_code;
  uint64_t value = 0;
  int64_t timestamp_ns = 0;  // 0 = the owner stamps it (product-semantics 8.2).
  OperationType operation = OperationType::kNone;
  std::vector<Property> properties;
  // Extension ingest: the effective dedup key when present.
  std::optional<IdempotencyKey> idempotency_key;
  // Extension ingest: a signed correction of a SUM metric; `value` is the magnitude that
  // is subtracted (never below 0). Only valid for registered SUM metrics.
  bool negative_correction = false;
  bool operator==(const Event&) const = default;
};

// Validates the shape of one event (lengths, operation). Request-level limits (event and
// property counts) are checked by the caller of PartitionState::AcceptEvents.
absl::Status ValidateEvent(const Event& event);

// One aggregate value (WP 6.6) plus `has_last`, which records whether a LATEST reading
// exists (a reading may legitimately carry timestamp 0 or a negative timestamp).
struct AggValue {
  unsigned __int128 sum = 0;  // Saturates at 2^128 - 1.
  uint64_t count = 0;
  uint64_t max = 0;
  uint64_t last_value = 0;
  int64_t last_timestamp_ns = 0;
  uint64_t alert_flags = 0;
  bool has_last = false;  // Not on the wire.

  bool operator==(const AggValue&) const = default;

  // The merge of product-semantics 4.3: sums add (saturating), counts add, max of max,
  // last value from the greater last timestamp (ties keep this value), flags OR.
  void MergeFrom(const AggValue& other);

  // min(sum, 2^64 - 1): the SUM value compared with thresholds and in alert records.
  uint64_t SumClamped() const;
  uint64_t sum_low() const { return static_cast<uint64_t>(sum); }
  uint64_t sum_high() const { return static_cast<uint64_t>(sum >> 64); }
};

inline constexpr unsigned __int128 kSumMax = ~static_cast<unsigned __int128>(0);

inline unsigned __int128 SaturatingAdd(unsigned __int128 a, unsigned __int128 b) {
  const unsigned __int128 result = a + b;
  return result < a ? kSumMax : result;
}

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_TYPES_H_
