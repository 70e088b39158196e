// Goal: schema validation messages and normalisation, and the bucket merge of
// product-semantics 4.3.
#include "node/metering/types.h"

#include "gtest/gtest.h"

namespace unimeter::metering {
namespace {

MetricSchema ValidSchema() {
  MetricSchema schema;
  schema.code = "compute_seconds";
  schema.agg_type = AggregationType::kSum;
  schema.dimensions = {{"provider", {"aws", "gcp", "azure"}}};
  schema.thresholds = {{"soft", 100, false}};
  return schema;
}

TEST(TypesTest, ValidSchemaPasses) { EXPECT_TRUE(ValidateMetricSchema(ValidSchema()).ok()); }

TEST(TypesTest, SchemaRulesAreEnforced) {
  auto expect_invalid = [](MetricSchema schema) {
    const absl::Status status = ValidateMetricSchema(schema);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_FALSE(status.message().empty());
  };
  MetricSchema schema = ValidSchema();
  schema.code = "";
  expect_invalid(schema);
  schema.code = std::string(64, 'c');
  expect_invalid(schema);
  schema = ValidSchema();
  schema.agg_type = static_cast<AggregationType>(5);
  expect_invalid(schema);
  schema = ValidSchema();
  schema.dimensions = {{"a", {}}, {"b", {}}, {"c", {}}, {"d", {}}, {"e", {}}};
  expect_invalid(schema);
  schema = ValidSchema();
  schema.dimensions = {{"a", {}}, {"a", {}}};
  expect_invalid(schema);
  schema = ValidSchema();
  schema.dimensions = {{"a", {"1", "2", "3", "4", "5", "6", "7", "8", "9"}}};
  expect_invalid(schema);
  schema = ValidSchema();
  schema.dimensions = {{std::string(32, 'k'), {}}};
  expect_invalid(schema);
  schema = ValidSchema();
  schema.thresholds.assign(9, Threshold{"t", 1, false});
  expect_invalid(schema);
  schema = ValidSchema();
  schema.billing_cycle_day = 0;
  expect_invalid(schema);
  schema.code = std::string(63, 'c');
  schema.billing_cycle_day = 29;
  NormalizeMetricSchema(schema);
  EXPECT_EQ(schema.billing_cycle_day, 28);
  EXPECT_TRUE(ValidateMetricSchema(schema).ok());
  EXPECT_EQ(NormalizeBillingCycleDay(0), 1);
  EXPECT_EQ(NormalizeBillingCycleDay(15), 15);
}

TEST(TypesTest, MergeFollowsSection43) {
  AggValue a;
  a.sum = 5;
  a.count = 2;
  a.max = 7;
  a.last_value = 1;
  a.last_timestamp_ns = 10;
  a.has_last = true;
  a.alert_flags = 1;
  AggValue b;
  b.sum = kSumMax;
  b.count = 3;
  b.max = 4;
  b.last_value = 2;
  b.last_timestamp_ns = 20;
  b.has_last = true;
  b.alert_flags = 4;
  AggValue merged = a;
  merged.MergeFrom(b);
  EXPECT_EQ(merged.sum, kSumMax);  // Saturates.
  EXPECT_EQ(merged.SumClamped(), UINT64_MAX);
  EXPECT_EQ(merged.count, 5u);
  EXPECT_EQ(merged.max, 7u);
  EXPECT_EQ(merged.last_value, 2u);
  EXPECT_EQ(merged.last_timestamp_ns, 20);
  EXPECT_EQ(merged.alert_flags, 5u);
  // A bucket without a reading never supplies last_value, even with a larger timestamp.
  AggValue no_reading;
  no_reading.last_timestamp_ns = 99;
  merged.MergeFrom(no_reading);
  EXPECT_EQ(merged.last_value, 2u);
  // Ties keep the value merged first.
  AggValue tie = b;
  tie.last_value = 3;
  merged.MergeFrom(tie);
  EXPECT_EQ(merged.last_value, 2u);
}

}  // namespace
}  // namespace unimeter::metering
