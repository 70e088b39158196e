#include "sim/reference_model.h"

#include <limits>
#include <map>
#include <memory>
#include <utility>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "node/metering/schema.h"

namespace unimeter::sim {
namespace {

constexpr uint32_t kPartition = 5;
constexpr uint64_t kAccount = 5;  // In kPartition.
constexpr int64_t kAll = std::numeric_limits<int64_t>::max();

int64_t At(int year, int month, int day) {
  return absl::ToUnixNanos(absl::FromCivil(absl::CivilDay(year, month, day), absl::UTCTimeZone()));
}

metering::LogEntry Put(const std::string& code, metering::AggregationType agg, uint8_t period,
                       uint8_t cycle_day) {
  metering::MetricSchema schema;
  schema.code = code;
  schema.agg_type = agg;
  schema.period_type = period;
  schema.billing_cycle_day = cycle_day;
  schema.dimensions = {{"r", {"a", "b"}}};
  absl::StatusOr<metering::SchemaRef> compiled = metering::CompiledSchema::Create(schema);
  EXPECT_TRUE(compiled.ok());
  return metering::LogEntry::Put(*compiled);
}

metering::LogEntry PutWithThresholds(const std::string& code, metering::AggregationType agg,
                                     std::vector<metering::Threshold> thresholds) {
  metering::MetricSchema schema;
  schema.code = code;
  schema.agg_type = agg;
  schema.period_type = 2;  // DAY
  schema.thresholds = std::move(thresholds);
  absl::StatusOr<metering::SchemaRef> compiled = metering::CompiledSchema::Create(schema);
  EXPECT_TRUE(compiled.ok());
  return metering::LogEntry::Put(*compiled);
}

metering::BatchEvent Event(const std::string& code, int64_t timestamp_ns, uint64_t value,
                           std::vector<metering::Property> properties = {},
                           metering::OperationType operation = metering::OperationType::kNone) {
  metering::BatchEvent event;
  event.account_id = kAccount;
  event.metric_code = code;
  event.timestamp_ns = timestamp_ns;
  event.value = value;
  event.operation = operation;
  event.registered = true;
  event.dedup_class = metering::DedupClass::kContent;
  event.properties = std::move(properties);
  return event;
}

metering::LogEntry Batch(std::vector<metering::BatchEvent> events) {
  auto batch = std::make_shared<metering::EventBatch>();
  batch->events = std::move(events);
  return metering::LogEntry::Events(batch);
}

// A node whose answers come from a table: (code, query start, filters as "k=v") -> value;
// zeros for anything else.
class TableNode {
 public:
  void Set(const std::string& code, int64_t start_ns, const std::string& slice, RefValue value) {
    answers_[{code, start_ns, slice}] = value;
  }
  UsageQuery Query() {
    return [this](uint64_t account, const std::string& code, int64_t start_ns, int64_t,
                  const std::vector<RefFilter>& filters) -> absl::StatusOr<RefValue> {
      EXPECT_EQ(account, kAccount);
      std::string slice;
      for (const RefFilter& filter : filters) {
        slice += (slice.empty() ? "" : "&") + filter.key + "=" + filter.value;
      }
      ++queries_;
      const auto found = answers_.find({code, start_ns, slice});
      return found == answers_.end() ? RefValue{} : found->second;
    };
  }
  int queries() const { return queries_; }

 private:
  std::map<std::tuple<std::string, int64_t, std::string>, RefValue> answers_;
  int queries_ = 0;
};

RefValue Max(uint64_t max) { return RefValue{0, 0, max, 0, 0}; }

// Values worked out by hand from product-semantics 3-5, not by the model.
TEST(ReferenceModelTest, MatchesHandComputedBucketsSlicesAndRules) {
  ReferenceModel model;
  uint64_t index = 0;
  model.Apply(kPartition, ++index, Put("x", metering::AggregationType::kMax, 1, 15));
  model.Apply(kPartition, ++index, Put("l", metering::AggregationType::kLatest, 0, 1));
  model.Apply(kPartition, ++index, Put("u", metering::AggregationType::kCountUnique, 2, 1));
  model.Apply(kPartition, ++index, Put("s", metering::AggregationType::kSum, 2, 1));
  const int64_t t = At(2026, 1, 1);
  const uint64_t u64_max = std::numeric_limits<uint64_t>::max();
  model.Apply(
      kPartition, ++index,
      Batch({// CALENDAR day 15: 2026-03-10 is in [02-15, 03-15); 03-15 00:00 starts the next.
             Event("x", At(2026, 3, 10), 7, {{"r", "a"}}), Event("x", At(2026, 3, 15), 3),
             // Only the first "r" counts: x is undeclared, so no slice.
             Event("x", At(2026, 2, 15) - 1, 9, {{"r", "x"}, {"r", "a"}}),
             // LATEST: older and equal timestamps never replace.
             Event("l", t + 10, 1, {{"r", "b"}}), Event("l", t + 5, 2), Event("l", t + 10, 3),
             // COUNT_UNIQUE: {4, 5} - 4, a REMOVE of an absent 6 is a no-op.
             Event("u", t + 1, 4), Event("u", t + 2, 4, {}, metering::OperationType::kAdd),
             Event("u", t + 3, 5), Event("u", t + 4, 4, {}, metering::OperationType::kRemove),
             Event("u", t + 5, 6, {}, metering::OperationType::kRemove),
             // SUM in 128 bits.
             Event("s", t + 1, u64_max), Event("s", t + 2, u64_max)}));
  ASSERT_EQ(model.failure(), "");

  TableNode node;
  node.Set("x", At(2026, 2, 15), "", Max(7));
  node.Set("x", At(2026, 2, 15), "r=a", Max(7));
  node.Set("x", At(2026, 3, 15), "", Max(3));
  node.Set("x", At(2026, 1, 15), "", Max(9));
  node.Set("x", 0, "", Max(9));
  const int64_t fixed_681 = int64_t{681} * 2'592'000 * 1'000'000'000;  // 2025-12-08.
  node.Set("l", fixed_681, "", RefValue{0, 0, 0, 1, t + 10});
  node.Set("l", fixed_681, "r=b", RefValue{0, 0, 0, 1, t + 10});
  node.Set("l", 0, "", RefValue{0, 0, 0, 1, t + 10});
  node.Set("u", t, "", RefValue{0, 1, 0, 0, 0});
  node.Set("u", 0, "", RefValue{0, 1, 0, 0, 0});
  const unsigned __int128 two_max = static_cast<unsigned __int128>(u64_max) * 2;
  node.Set("s", t, "", RefValue{two_max, 0, 0, 0, 0});
  node.Set("s", 0, "", RefValue{two_max, 0, 0, 0, 0});
  EXPECT_EQ(model.CheckNode(node.Query()), "");
  // Per bucket: unfiltered, r=a, r=b; plus one total per metric.
  EXPECT_EQ(node.queries(), (3 + 1 + 1 + 1) * 3 + 4);

  node.Set("x", At(2026, 3, 15), "r=b", Max(3));  // A slice the event did not match.
  EXPECT_NE(model.CheckNode(node.Query()).find("S8"), std::string::npos);
  node.Set("x", At(2026, 3, 15), "r=b", Max(0));
  node.Set("l", 0, "", RefValue{0, 0, 0, 3, t + 10});  // An equal timestamp replaced.
  EXPECT_NE(model.CheckNode(node.Query()).find("metric l"), std::string::npos);
}

TEST(ReferenceModelTest, RetentionEvictsAndUnregisteredCodesReadZero) {
  ReferenceModel model;
  model.Apply(kPartition, 1, Put("x", metering::AggregationType::kMax, 2, 1));
  model.Apply(kPartition, 2, Batch({Event("x", At(2026, 1, 1), 4), Event("x", At(2026, 1, 2), 6)}));
  model.Apply(kPartition, 3, metering::LogEntry::Retention(At(2026, 1, 2)));
  TableNode node;
  node.Set("x", At(2026, 1, 2), "", Max(6));
  node.Set("x", 0, "", Max(6));
  EXPECT_EQ(model.CheckNode(node.Query()), "");
  model.Apply(kPartition, 4, metering::LogEntry::Delete("x"));
  EXPECT_NE(model.CheckNode(node.Query()), "");
  TableNode empty;
  EXPECT_EQ(model.CheckNode(empty.Query()), "");
}

TEST(ReferenceModelTest, CanonicalLogMustArriveInOrder) {
  ReferenceModel model;
  model.Apply(kPartition, 2, metering::LogEntry::StartOfEpoch(1));
  EXPECT_NE(model.failure().find("out of order"), std::string::npos);
}

TEST(ReferenceModelTest, EventSetsCatchLossDoubleCountingAndInvention) {
  Ledger ledger(16);
  ledger.schemas.push_back(ledger.schemas[0]);
  ledger.schemas[1].code = "c";
  ledger.events = {SentEvent{kAccount, 10, 1, 0, Outcome::kAcknowledged},
                   SentEvent{kAccount, 11, 2, 1, Outcome::kUnknown},
                   SentEvent{kAccount, 12, 3, 1, Outcome::kRefused}};
  const auto run = [&](std::vector<metering::BatchEvent> events) {
    ReferenceModel model;
    model.Apply(kPartition, 1, Batch(std::move(events)));
    return model.CheckEventSets(ledger);
  };
  EXPECT_EQ(run({Event("m", 10, 1)}), "");
  EXPECT_EQ(run({Event("m", 10, 1), Event("c", 11, 2)}), "");
  EXPECT_NE(run({Event("c", 11, 2)}).find("S1"), std::string::npos);
  EXPECT_NE(run({Event("m", 10, 1), Event("m", 10, 1)}).find("S2"), std::string::npos);
  EXPECT_NE(run({Event("m", 10, 1), Event("c", 11, 2), Event("c", 11, 2)}).find("S2"),
            std::string::npos);
  EXPECT_NE(run({Event("m", 10, 1), Event("c", 12, 3)}).find("refused"), std::string::npos);
  EXPECT_NE(run({Event("m", 10, 1), Event("c", 10, 1)}).find("S3"), std::string::npos);
}

TEST(ReferenceModelTest, ThresholdsCrossOnTheUnfilteredTotalAndAlertLogsAreChecked) {
  ReferenceModel model;
  const int64_t day = At(2025, 12, 1);
  model.Apply(kPartition, 1,
              PutWithThresholds("l", metering::AggregationType::kLatest,
                                {{"high", 10, false}, {"any", 0, true}}));
  // LATEST: 12 crosses both; 11 (newer) stays above "high" (no record) and fires "any";
  // 5 drops below "high" (bit cleared); 20 crosses "high" again.
  model.Apply(kPartition, 2,
              Batch({Event("l", day + 1, 12), Event("l", day + 2, 11), Event("l", day + 3, 5),
                     Event("l", day + 4, 20)}));
  EXPECT_EQ(model.crossings(), 6u);
  const std::vector<RefCrossing> all = {
      {kAccount, "l", 0, "high", 12, day + 1}, {kAccount, "l", 1, "any", 12, day + 1},
      {kAccount, "l", 1, "any", 11, day + 2},  {kAccount, "l", 1, "any", 5, day + 3},
      {kAccount, "l", 0, "high", 20, day + 4}, {kAccount, "l", 1, "any", 20, day + 4}};
  EXPECT_EQ(model.CheckAlerts({all, {}}, /*complete=*/true), "");
  // Split over two nodes, one crossing on both (an owner change): fine.
  EXPECT_EQ(model.CheckAlerts({{all.begin(), all.begin() + 4}, {all.begin() + 3, all.end()}},
                              /*complete=*/true),
            "");
  std::vector<RefCrossing> missing(all.begin(), all.end() - 1);
  EXPECT_NE(model.CheckAlerts({missing}, /*complete=*/true).find("S1"), std::string::npos);
  EXPECT_EQ(model.CheckAlerts({missing}, /*complete=*/false), "");
  std::vector<RefCrossing> twice = all;
  twice.push_back(all[0]);
  EXPECT_NE(model.CheckAlerts({twice}, false).find("S2"), std::string::npos);
  std::vector<RefCrossing> invented = all;
  invented.back().value = 21;
  EXPECT_NE(model.CheckAlerts({invented}, false).find("S3"), std::string::npos);

  // The unfiltered answer carries the flags: "high" (bit 0) and "any" (bit 1) are set.
  TableNode node;
  RefValue value;
  value.last_value = 20;
  value.last_timestamp_ns = day + 4;
  value.alert_flags = 3;
  node.Set("l", At(2025, 12, 1), "", value);
  node.Set("l", 0, "", value);
  EXPECT_EQ(model.CheckNode(node.Query()), "");
  value.alert_flags = 1;
  node.Set("l", 0, "", value);
  EXPECT_NE(model.CheckNode(node.Query()).find("alerts 1"), std::string::npos);
}

}  // namespace
}  // namespace unimeter::sim
