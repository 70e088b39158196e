// Goal: the exact-range aggregate follows each aggregation type's rule over exactly the
// events inside [start, end), counts only registered events of the metric, honours AND
// filters on declared pairs and corrections, and rejects bad filters.
#include "node/server/range_query.h"

#include <gtest/gtest.h>

namespace unimeter {
namespace {

metering::SchemaRef Schema(metering::AggregationType type) {
  metering::MetricSchema schema;
  schema.code = "m";
  schema.agg_type = type;
  schema.dimensions.push_back({"region", {"eu", "us"}});
  return *metering::CompiledSchema::Create(schema);
}

StoredEvent Event(uint64_t offset, int64_t timestamp, uint64_t value, const char* region,
                  uint8_t operation = 0) {
  StoredEvent event;
  event.offset = offset;
  event.timestamp_ns = timestamp;
  event.metric_code = "m";
  event.value = value;
  event.operation = operation;
  event.registered = true;
  event.properties = {{"region", region}};
  return event;
}

TEST(RangeQuery, EachTypeOverTheExactRange) {
  std::vector<StoredEvent> events = {Event(1, 10, 5, "eu"), Event(2, 20, 7, "us"),
                                     Event(3, 30, 3, "eu"), Event(4, 40, 9, "eu")};
  events[2].negative_correction = true;
  StoredEvent unregistered = Event(5, 25, 1000, "eu");
  unregistered.registered = false;
  events.push_back(unregistered);
  const auto sum =
      ComputeRangeAggregate(*Schema(metering::AggregationType::kSum), events, 10, 40, {});
  EXPECT_EQ(static_cast<uint64_t>(sum->sum), 5u + 7u - 3u);
  const auto count =
      ComputeRangeAggregate(*Schema(metering::AggregationType::kCount), events, 15, 41, {});
  EXPECT_EQ(count->count, 3u);
  const auto max =
      ComputeRangeAggregate(*Schema(metering::AggregationType::kMax), events, 0, 35, {});
  EXPECT_EQ(max->max, 7u);
  const auto latest =
      ComputeRangeAggregate(*Schema(metering::AggregationType::kLatest), events, 0, 35, {});
  EXPECT_EQ(latest->last_value, 3u);
  EXPECT_EQ(latest->last_timestamp_ns, 30);
  const std::vector<metering::Filter> eu = {{"region", "eu"}};
  const auto filtered =
      ComputeRangeAggregate(*Schema(metering::AggregationType::kSum), events, 0, 100, eu);
  EXPECT_EQ(static_cast<uint64_t>(filtered->sum), 5u - 3u + 9u);
  const std::vector<metering::Filter> undeclared = {{"region", "asia"}};
  EXPECT_EQ(
      ComputeRangeAggregate(*Schema(metering::AggregationType::kSum), events, 0, 100, undeclared)
          ->sum,
      0u);
  const std::vector<metering::Filter> twice = {{"region", "eu"}, {"region", "us"}};
  EXPECT_FALSE(
      ComputeRangeAggregate(*Schema(metering::AggregationType::kSum), events, 0, 100, twice).ok());
}

TEST(RangeQuery, CountUniqueReplaysAddAndRemove) {
  const std::vector<StoredEvent> events = {Event(1, 1, 42, "eu", 1), Event(2, 2, 43, "eu", 1),
                                           Event(3, 3, 42, "eu", 2), Event(4, 4, 44, "eu", 0)};
  const auto value =
      ComputeRangeAggregate(*Schema(metering::AggregationType::kCountUnique), events, 0, 10, {});
  EXPECT_EQ(value->count, 2u);  // {43, 44}.
}

}  // namespace
}  // namespace unimeter
