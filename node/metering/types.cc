#include "node/metering/types.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace unimeter::metering {
namespace {

bool HasNul(const std::string& text) { return text.find('\0') != std::string::npos; }

absl::Status CheckText(const std::string& text, size_t bytes_max, const char* what) {
  if (text.size() > bytes_max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", text.size(), " bytes; at most ", bytes_max, " allowed"));
  }
  if (HasNul(text)) return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL byte"));
  return absl::OkStatus();
}

absl::Status ValidateDimensions(const std::vector<Dimension>& dimensions) {
  if (dimensions.size() > kDimensionsPerMetricMax) {
    return absl::InvalidArgumentError(absl::StrCat("metric has ", dimensions.size(),
                                                   " dimensions; at most ", kDimensionsPerMetricMax,
                                                   " allowed"));
  }
  for (size_t i = 0; i < dimensions.size(); ++i) {
    const Dimension& dimension = dimensions[i];
    absl::Status status = CheckText(dimension.key, kDimensionKeyBytesMax, "dimension key");
    if (!status.ok()) return status;
    for (size_t j = 0; j < i; ++j) {
      if (dimensions[j].key == dimension.key) {
        return absl::InvalidArgumentError(
            absl::StrCat("duplicate dimension key '", dimension.key, "'"));
      }
    }
    if (dimension.values.size() > kValuesPerDimensionMax) {
      return absl::InvalidArgumentError(absl::StrCat("dimension '", dimension.key, "' has ",
                                                     dimension.values.size(),
                                                     " values; at most 8 allowed"));
    }
    for (const std::string& value : dimension.values) {
      status = CheckText(value, kDimensionValueBytesMax, "dimension value");
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateThresholds(const std::vector<Threshold>& thresholds) {
  if (thresholds.size() > kThresholdsPerMetricMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric has ", thresholds.size(), " thresholds; at most 8 allowed"));
  }
  for (const Threshold& threshold : thresholds) {
    absl::Status status = CheckText(threshold.code, kThresholdCodeBytesMax, "threshold code");
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace

uint8_t NormalizeBillingCycleDay(uint8_t billing_cycle_day) {
  if (billing_cycle_day < kBillingCycleDayMin) return kBillingCycleDayMin;
  if (billing_cycle_day > kBillingCycleDayMax) return kBillingCycleDayMax;
  return billing_cycle_day;
}

void NormalizeMetricSchema(MetricSchema& schema) {
  schema.billing_cycle_day = NormalizeBillingCycleDay(schema.billing_cycle_day);
}

absl::Status ValidateMetricSchema(const MetricSchema& schema) {
  if (schema.code.empty()) return absl::InvalidArgumentError("metric code is empty");
  absl::Status status = CheckText(schema.code, kMetricCodeBytesMax, "metric code");
  if (!status.ok()) return status;
  if (static_cast<uint8_t>(schema.agg_type) > kAggregationTypeMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("agg_type ", static_cast<int>(schema.agg_type), " is not one of 0-4"));
  }
  status = CheckText(schema.field_name, kFieldNameBytesMax, "field_name");
  if (!status.ok()) return status;
  status = ValidateDimensions(schema.dimensions);
  if (!status.ok()) return status;
  status = ValidateThresholds(schema.thresholds);
  if (!status.ok()) return status;
  if (schema.billing_cycle_day < kBillingCycleDayMin ||
      schema.billing_cycle_day > kBillingCycleDayMax) {
    return absl::InvalidArgumentError(absl::StrCat("billing_cycle_day ",
                                                   static_cast<int>(schema.billing_cycle_day),
                                                   " is not normalised to 1-28"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEvent(const Event& event) {
  absl::Status status = CheckText(event.metric_code, kMetricCodeBytesMax, "metric code");
  if (!status.ok()) return status;
  if (static_cast<uint8_t>(event.operation) > kOperationTypeMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("operation_type ", static_cast<int>(event.operation), " is not one of 0-2"));
  }
  if (event.properties.size() > kPropertiesPerEventMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("event has ", event.properties.size(), " properties; at most 255"));
  }
  for (const Property& property : event.properties) {
    status = CheckText(property.key, kPropertyKeyBytesMax, "property key");
    if (!status.ok()) return status;
    status = CheckText(property.value, kPropertyValueBytesMax, "property value");
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

void AggValue::MergeFrom(const AggValue& other) {
  sum = SaturatingAdd(sum, other.sum);
  count = count + other.count < count ? UINT64_MAX : count + other.count;
  max = std::max(max, other.max);
  if (other.has_last && (!has_last || other.last_timestamp_ns > last_timestamp_ns)) {
    last_value = other.last_value;
    last_timestamp_ns = other.last_timestamp_ns;
    has_last = true;
  }
  alert_flags |= other.alert_flags;
}

uint64_t AggValue::SumClamped() const {
  return sum > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(sum);
}

}  // namespace unimeter::metering
