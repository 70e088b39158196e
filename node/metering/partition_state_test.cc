// Goal: each rule of product-semantics sections 4-10 as the state machine implements it,
// one focused scenario per test. Method: a Harness plays the owner (AcceptEvents) and a
// replica (Apply) on one PartitionState, then checks queries, alert crossings, ingest
// results, digests and snapshots.
#include "node/metering/partition_state.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/base/checksum.h"
#include "node/base/random.h"
#include "node/metering/hashes.h"

namespace unimeter::metering {
namespace {

constexpr uint32_t kPartition = 7;
constexpr uint64_t kAccount = kPartition + 256 * 3;
constexpr int64_t kSecond = kNanosPerSecond;
constexpr int64_t kT0 = 1'767'225'600 * kSecond;  // 2026-01-01T00:00:00Z
constexpr int64_t kAllTime = INT64_MAX;

Event Ev(const std::string& code, uint64_t value, int64_t timestamp_ns,
         std::vector<Property> properties = {}, OperationType op = OperationType::kNone) {
  Event event;
  event.account_id = kAccount;
  event.metric_code = code;
  event.value = value;
  event.timestamp_ns = timestamp_ns;
  event.operation = op;
  event.properties = std::move(properties);
  return event;
}

MetricSchema Schema(const std::string& code, AggregationType type,
                    std::vector<Dimension> dimensions = {}, std::vector<Threshold> thresholds = {},
                    uint8_t period_type = 0) {
  MetricSchema schema;
  schema.code = code;
  schema.agg_type = type;
  schema.dimensions = std::move(dimensions);
  schema.thresholds = std::move(thresholds);
  schema.period_type = period_type;
  return schema;
}

class Harness {
 public:
  explicit Harness(int64_t dedup_window_ns = kDedupWindowNanosDefault)
      : options_{kPartition, dedup_window_ns, 3600 * kSecond}, state_(options_) {}

  void Append(const LogEntry& entry) {
    state_.Apply(++index_, entry, &output_);
    log_.push_back(entry);
  }
  void Put(const MetricSchema& schema) { Append(LogEntry::Put(*CompiledSchema::Create(schema))); }
  void Delete(const std::string& code) { Append(LogEntry::Delete(code)); }
  void Retention(int64_t cutoff_ns) { Append(LogEntry::Retention(cutoff_ns)); }

  // Accepts and immediately applies.
  IngestResult Ingest(std::vector<Event> events, int64_t now_ns = kT0) {
    Acceptance acceptance = Accept(std::move(events), now_ns);
    if (acceptance.entry.has_value()) Append(*acceptance.entry);
    return acceptance.result;
  }
  // Accepts without applying (the entry is in flight).
  Acceptance Accept(std::vector<Event> events, int64_t now_ns = kT0) {
    absl::StatusOr<Acceptance> acceptance = state_.AcceptEvents(events, now_ns, pending_);
    EXPECT_TRUE(acceptance.ok()) << acceptance.status();
    return *std::move(acceptance);
  }

  AggValue Usage(const std::string& code, std::vector<Filter> filters = {}, int64_t start_ns = 0,
                 int64_t end_ns = kAllTime) const {
    absl::StatusOr<AggValue> value = state_.QueryUsage(kAccount, code, start_ns, end_ns, filters);
    EXPECT_TRUE(value.ok()) << value.status();
    return value.ok() ? *value : AggValue{};
  }

  PartitionState& state() { return state_; }
  PendingDedup& pending() { return pending_; }
  ApplyOutput& output() { return output_; }
  const std::vector<LogEntry>& log() const { return log_; }
  const PartitionOptions& options() const { return options_; }

 private:
  PartitionOptions options_;
  PartitionState state_;
  PendingDedup pending_;
  ApplyOutput output_;
  uint64_t index_ = 0;
  std::vector<LogEntry> log_;
};

TEST(PartitionStateTest, EveryAggregationType) {
  Harness h;
  h.Put(Schema("count", AggregationType::kCount));
  h.Put(Schema("sum", AggregationType::kSum));
  h.Put(Schema("max", AggregationType::kMax));
  h.Put(Schema("latest", AggregationType::kLatest));
  h.Put(Schema("unique", AggregationType::kCountUnique));
  for (const std::string code : {"count", "sum", "max", "latest"}) {
    h.Ingest({Ev(code, 5, kT0 + 1), Ev(code, 9, kT0 + 3), Ev(code, 2, kT0 + 2)});
  }
  EXPECT_EQ(h.Usage("count").count, 3u);
  EXPECT_EQ(h.Usage("count").sum, 0u);  // Only its own fields.
  EXPECT_EQ(h.Usage("sum").sum, 16u);
  EXPECT_EQ(h.Usage("sum").count, 0u);
  EXPECT_EQ(h.Usage("max").max, 9u);
  // LATEST: the older reading (t+2 after t+3) does not overwrite; equal timestamps neither.
  EXPECT_EQ(h.Usage("latest").last_value, 9u);
  EXPECT_EQ(h.Usage("latest").last_timestamp_ns, kT0 + 3);
  h.Ingest({Ev("latest", 4, kT0 + 3, {}, OperationType::kNone)}, kT0);
  EXPECT_EQ(h.Usage("latest").last_value, 9u);
  h.Ingest({Ev("unique", 1, kT0 + 1, {}, OperationType::kAdd),
            Ev("unique", 2, kT0 + 2, {}, OperationType::kNone),
            Ev("unique", 1, kT0 + 3, {}, OperationType::kAdd),
            Ev("unique", 3, kT0 + 4, {}, OperationType::kRemove),  // Absent: no-op.
            Ev("unique", 2, kT0 + 5, {}, OperationType::kRemove)});
  EXPECT_EQ(h.Usage("unique").count, 1u);
}

TEST(PartitionStateTest, CountUniqueSetsArePerBucketAndCountsAdd) {
  Harness h;
  h.Put(Schema("seats", AggregationType::kCountUnique, {}, {}, /*DAY=*/2));
  h.Ingest(
      {Ev("seats", 1, kT0 + 1), Ev("seats", 2, kT0 + 2), Ev("seats", 1, kT0 + kNanosPerDay + 1)});
  EXPECT_EQ(h.Usage("seats", {}, kT0, kT0 + kNanosPerDay).count, 2u);
  // Per-bucket distinct counts add up; not the size of the union.
  EXPECT_EQ(h.Usage("seats", {}, kT0, kT0 + 2 * kNanosPerDay).count, 3u);
}

TEST(PartitionStateTest, SumSaturatesAndThresholdValuesClamp) {
  Harness h;
  h.Put(Schema("sum", AggregationType::kSum, {}, {{"big", UINT64_MAX, false}}));
  h.Ingest({Ev("sum", UINT64_MAX, kT0 + 1), Ev("sum", UINT64_MAX, kT0 + 2)});
  const AggValue value = h.Usage("sum");
  EXPECT_EQ(value.sum, static_cast<unsigned __int128>(UINT64_MAX) * 2);
  EXPECT_EQ(value.sum_high(), 1u);
  ASSERT_EQ(h.output().crossings.size(), 1u);
  EXPECT_EQ(h.output().crossings[0].value_at_cross, UINT64_MAX);
  EXPECT_EQ(SaturatingAdd(kSumMax - 1, 5), kSumMax);
}

TEST(PartitionStateTest, NegativeCorrectionsNeverGoBelowZero) {
  Harness h;
  h.Put(Schema("sum", AggregationType::kSum));
  h.Put(Schema("count", AggregationType::kCount));
  Event minus = Ev("sum", 3, kT0 + 2);
  minus.negative_correction = true;
  h.Ingest({Ev("sum", 5, kT0 + 1), minus});
  EXPECT_EQ(h.Usage("sum").sum, 2u);
  minus.timestamp_ns = kT0 + 3;
  minus.value = 100;
  h.Ingest({minus});
  EXPECT_EQ(h.Usage("sum").sum, 0u);
  // +v and -v with the same timestamp are different events.
  h.Ingest({Ev("sum", 100, kT0 + 3)});
  EXPECT_EQ(h.Usage("sum").sum, 100u);
  Event bad = Ev("count", 1, kT0);
  bad.negative_correction = true;
  EXPECT_EQ(h.state().AcceptEvents({bad}, kT0, h.pending()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PartitionStateTest, DimensionSubsetsCountEventsMatchingMore) {
  Harness h;
  h.Put(Schema("cpu", AggregationType::kSum,
               {{"provider", {"aws", "gcp"}}, {"region", {"us-east", "eu"}}, {"tier", {"a"}}}));
  h.Ingest({Ev("cpu", 10, kT0 + 1, {{"provider", "aws"}, {"region", "us-east"}, {"tier", "a"}}),
            Ev("cpu", 1, kT0 + 2, {{"provider", "aws"}, {"region", "eu"}}),
            Ev("cpu", 100, kT0 + 3, {{"region", "us-east"}, {"provider", "mars"}})});
  EXPECT_EQ(h.Usage("cpu").sum, 111u);
  // The reference server missed the first event here (it also matched "tier").
  EXPECT_EQ(h.Usage("cpu", {{"provider", "aws"}, {"region", "us-east"}}).sum, 10u);
  EXPECT_EQ(h.Usage("cpu", {{"region", "us-east"}, {"provider", "aws"}}).sum, 10u);
  EXPECT_EQ(h.Usage("cpu", {{"provider", "aws"}}).sum, 11u);
  EXPECT_EQ(h.Usage("cpu", {{"region", "us-east"}}).sum, 110u);
  EXPECT_EQ(h.Usage("cpu", {{"tier", "a"}, {"region", "us-east"}, {"provider", "aws"}}).sum, 10u);
  EXPECT_EQ(h.Usage("cpu", {{"provider", "mars"}}), AggValue{});  // Undeclared value.
  EXPECT_EQ(h.Usage("cpu", {{"color", "red"}}), AggValue{});      // Undeclared key.
  EXPECT_EQ(h.state().aggregate_key_count(), 1u + 7 + 2);  // total, 7 subsets, +{eu}, +{aws,eu}
  // Only the first property with a key counts, even if its value does not match.
  h.Ingest({Ev("cpu", 1000, kT0 + 4, {{"provider", "x"}, {"provider", "gcp"}})});
  EXPECT_EQ(h.Usage("cpu", {{"provider", "gcp"}}), AggValue{});
  const std::vector<Filter> five(5, Filter{"provider", "aws"});
  EXPECT_EQ(h.state().QueryUsage(kAccount, "cpu", 0, kAllTime, five).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<Filter> repeated = {{"provider", "aws"}, {"provider", "gcp"}};
  EXPECT_EQ(h.state().QueryUsage(kAccount, "cpu", 0, kAllTime, repeated).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PartitionStateTest, DimensionsSharingValuesNeverMix) {
  // With the spec's separable pair hash, {a=0, b=1} and {a=1, b=0} would share a slice.
  Harness h;
  h.Put(Schema("m", AggregationType::kSum, {{"a", {"0", "1"}}, {"b", {"0", "1"}}}));
  h.Ingest({Ev("m", 1, kT0 + 1, {{"a", "0"}, {"b", "1"}}),
            Ev("m", 10, kT0 + 2, {{"a", "0"}, {"b", "0"}})});
  EXPECT_EQ(h.Usage("m", {{"a", "1"}, {"b", "0"}}), AggValue{});
  EXPECT_EQ(h.Usage("m", {{"a", "1"}, {"b", "1"}}), AggValue{});
  EXPECT_EQ(h.Usage("m", {{"a", "0"}, {"b", "1"}}).sum, 1u);
  EXPECT_EQ(h.Usage("m", {{"a", "0"}, {"b", "0"}}).sum, 10u);
}

TEST(PartitionStateTest, BreakdownOrderNonEmptyAndErrors) {
  Harness h;
  h.Put(Schema("cpu", AggregationType::kSum,
               {{"provider", {"aws", "gcp", "azure"}}, {"region", {"us", "eu"}}}));
  h.Ingest({Ev("cpu", 0, kT0 + 1, {{"provider", "azure"}, {"region", "us"}}),
            Ev("cpu", 5, kT0 + 2, {{"provider", "aws"}, {"region", "eu"}}),
            Ev("cpu", 7, kT0 + 3, {{"provider", "aws"}, {"region", "us"}}),
            Ev("cpu", 9, kT0 + 4, {{"provider", "gcp"}})});
  const std::vector<std::string> keys = {"provider", "region"};
  absl::StatusOr<std::vector<BreakdownCell>> cells =
      h.state().QueryBreakdown(kAccount, "cpu", 0, kAllTime, keys);
  ASSERT_TRUE(cells.ok());
  ASSERT_EQ(cells->size(), 3u);
  EXPECT_EQ((*cells)[0].pairs, (std::vector<Filter>{{"provider", "aws"}, {"region", "us"}}));
  EXPECT_EQ((*cells)[0].value.sum, 7u);
  EXPECT_EQ((*cells)[1].pairs, (std::vector<Filter>{{"provider", "aws"}, {"region", "eu"}}));
  EXPECT_EQ((*cells)[2].pairs, (std::vector<Filter>{{"provider", "azure"}, {"region", "us"}}));
  EXPECT_EQ((*cells)[2].value.sum, 0u);  // Non-empty: an event contributed, value 0.
  const std::vector<std::string> by_region = {"region"};
  cells = h.state().QueryBreakdown(kAccount, "cpu", 0, kAllTime, by_region);
  ASSERT_EQ(cells->size(), 2u);
  EXPECT_EQ((*cells)[0].value.sum, 7u);
  EXPECT_EQ((*cells)[1].value.sum, 5u);
  auto error = [&](std::vector<std::string> group_by, const std::string& code) {
    return h.state().QueryBreakdown(kAccount, code, 0, kAllTime, group_by).status().code();
  };
  EXPECT_EQ(error({}, "cpu"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(error({"provider", "provider"}, "cpu"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(error({"color"}, "cpu"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(error({"provider"}, "nope"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(error({"a", "b", "c", "d", "e"}, "cpu"), absl::StatusCode::kInvalidArgument);
}

TEST(PartitionStateTest, BreakdownStopsAt614Cells) {
  Harness h;
  const std::vector<std::string> values = {"0", "1", "2", "3", "4", "5", "6", "7"};
  h.Put(Schema("m", AggregationType::kCount,
               {{"a", values}, {"b", values}, {"c", values}, {"d", values}}));
  std::vector<Event> batch;
  for (int cell = 0; cell < 4096; cell += 5) {
    batch.push_back(Ev("m", 1, 0,
                       {{"a", values[cell / 512]},
                        {"b", values[cell / 64 % 8]},
                        {"c", values[cell / 8 % 8]},
                        {"d", values[cell % 8]}}));
    if (batch.size() == 64) h.Ingest(std::move(batch)), batch.clear();
  }
  h.Ingest(batch);
  const std::vector<std::string> keys = {"a", "b", "c", "d"};
  absl::StatusOr<std::vector<BreakdownCell>> cells =
      h.state().QueryBreakdown(kAccount, "m", 0, kAllTime, keys);
  ASSERT_TRUE(cells.ok());
  ASSERT_EQ(cells->size(), kBreakdownEntriesMax);
  for (size_t i = 0; i < cells->size(); ++i) {
    const auto& pairs = (*cells)[i].pairs;
    const int cell = (pairs[0].value[0] - '0') * 512 + (pairs[1].value[0] - '0') * 64 +
                     (pairs[2].value[0] - '0') * 8 + (pairs[3].value[0] - '0');
    EXPECT_EQ(cell, static_cast<int>(i) * 5);
  }
}

TEST(PartitionStateTest, NonRecurringFiresOncePerCrossingRecurringEveryEvent) {
  Harness h;
  h.Put(Schema("sum", AggregationType::kSum, {},
               {{"zero", 0, false}, {"ten", 10, false}, {"rec", 10, true}}));
  h.Ingest({Ev("sum", 4, kT0 + 1), Ev("sum", 8, kT0 + 2), Ev("sum", 1, kT0 + 3)});
  const auto& crossings = h.output().crossings;
  ASSERT_EQ(crossings.size(), 4u);
  EXPECT_EQ(crossings[0].threshold_code, "zero");  // Threshold 0 fires on the first event.
  EXPECT_EQ(crossings[0].value_at_cross, 4u);
  EXPECT_EQ(crossings[1].threshold_index, 1u);
  EXPECT_EQ(crossings[1].value_at_cross, 12u);
  EXPECT_EQ(crossings[1].event_timestamp_ns, kT0 + 2);
  EXPECT_EQ(crossings[1].metric_code, "sum");
  EXPECT_EQ(crossings[1].account_id, kAccount);
  EXPECT_EQ(crossings[2].threshold_code, "rec");
  EXPECT_EQ(crossings[3].threshold_code, "rec");  // Recurring: every event at/above.
  EXPECT_EQ(crossings[3].value_at_cross, 13u);
  EXPECT_EQ(h.Usage("sum").alert_flags, 0b111u);
  EXPECT_EQ(h.Usage("sum", {}, kT0, kT0 + 1).alert_flags, 0b111u);
  // A new bucket has its own flags and fires again.
  h.Ingest({Ev("sum", 11, kT0 + kFixedPeriodNanos)});
  EXPECT_EQ(crossings.size(), 7u);
}

TEST(PartitionStateTest, LatestAndCountUniqueClearAndRecross) {
  Harness h;
  h.Put(Schema("gauge", AggregationType::kLatest, {}, {{"high", 50, false}}));
  h.Put(Schema("seats", AggregationType::kCountUnique, {}, {{"two", 2, false}}));
  h.Ingest({Ev("gauge", 60, kT0 + 1), Ev("gauge", 70, kT0 + 2)});
  EXPECT_EQ(h.output().crossings.size(), 1u);
  h.Ingest({Ev("gauge", 10, kT0 + 3)});  // Drops below: bit cleared.
  EXPECT_EQ(h.Usage("gauge").alert_flags, 0u);
  h.Ingest({Ev("gauge", 99, kT0 + 1)});  // Older reading: no change, re-evaluated, below.
  EXPECT_EQ(h.output().crossings.size(), 1u);
  h.Ingest({Ev("gauge", 55, kT0 + 4)});  // Re-crossing fires again.
  EXPECT_EQ(h.output().crossings.size(), 2u);
  h.Ingest({Ev("seats", 1, kT0 + 1), Ev("seats", 2, kT0 + 2), Ev("seats", 2, kT0 + 3)});
  EXPECT_EQ(h.output().crossings.size(), 3u);
  h.Ingest({Ev("seats", 1, kT0 + 4, {}, OperationType::kRemove)});
  EXPECT_EQ(h.Usage("seats").alert_flags, 0u);
  h.Ingest({Ev("seats", 5, kT0 + 5, {}, OperationType::kAdd)});
  ASSERT_EQ(h.output().crossings.size(), 4u);
  EXPECT_EQ(h.output().crossings[3].value_at_cross, 2u);
}

TEST(PartitionStateTest, FlagsOnlyOnUnfilteredResults) {
  Harness h;
  h.Put(Schema("m", AggregationType::kCount, {{"k", {"v"}}}, {{"one", 1, false}}));
  h.Ingest({Ev("m", 1, kT0 + 1, {{"k", "v"}})});
  EXPECT_EQ(h.Usage("m").alert_flags, 1u);
  EXPECT_EQ(h.Usage("m", {{"k", "v"}}).alert_flags, 0u);
  EXPECT_EQ(h.Usage("m", {{"k", "v"}}).count, 1u);
  EXPECT_EQ(h.output().crossings.size(), 1u);  // One per crossing, never per slice.
}

TEST(PartitionStateTest, ThresholdChangeAppliesFromNextEvent) {
  Harness h;
  h.Put(Schema("m", AggregationType::kCount, {}, {{"a", 1, false}, {"b", 1, false}}));
  h.Ingest({Ev("m", 1, kT0 + 1)});
  EXPECT_EQ(h.Usage("m").alert_flags, 0b11u);
  h.Put(Schema("m", AggregationType::kCount, {}, {{"c", 100, false}}));
  EXPECT_EQ(h.Usage("m").alert_flags, 0b11u);  // Not re-evaluated until an event.
  h.Ingest({Ev("m", 1, kT0 + 2)});
  EXPECT_EQ(h.Usage("m").alert_flags, 0u);  // Bit 1 no longer has a threshold.
}

TEST(PartitionStateTest, DedupWithinRequestPendingAndWindow) {
  Harness h(/*dedup_window_ns=*/300 * kSecond);
  h.Put(Schema("m", AggregationType::kSum));
  IngestResult result = h.Ingest({Ev("m", 1, kT0), Ev("m", 1, kT0), Ev("m", 2, kT0)}, kT0);
  EXPECT_EQ(result.n_stored, 2u);
  EXPECT_EQ(result.n_duplicates, 1u);
  EXPECT_EQ(result.outcomes[1], EventOutcome::kDuplicate);
  // In flight (accepted, not applied) still deduplicates.
  Acceptance first = h.Accept({Ev("m", 5, kT0 + 1)}, kT0 + kSecond);
  Acceptance second = h.Accept({Ev("m", 5, kT0 + 1)}, kT0 + 2 * kSecond);
  EXPECT_EQ(second.result.status, IngestStatus::kDuplicate);
  EXPECT_FALSE(second.entry.has_value());
  h.Append(*first.entry);
  // Within the window on log time.
  result = h.Ingest({Ev("m", 1, kT0)}, kT0 + 299 * kSecond);
  EXPECT_EQ(result.status, IngestStatus::kDuplicate);
  EXPECT_EQ(result.last_offset, 0u);
  // A failover to an owner with a slower clock does not shorten the window.
  result = h.Ingest({Ev("m", 9, kT0 + 9)}, kT0 + 299 * kSecond);
  result = h.Ingest({Ev("m", 9, kT0 + 9)}, kT0 - 3600 * kSecond);
  EXPECT_EQ(result.status, IngestStatus::kDuplicate);
  // After the window the same content is a new event.
  result = h.Ingest({Ev("m", 1, kT0)}, kT0 + 300 * kSecond);
  EXPECT_EQ(result.n_stored, 1u);
  EXPECT_EQ(h.Usage("m").sum, 1u + 2 + 5 + 9 + 1);
  // Server-stamped events are never deduplicated.
  result = h.Ingest({Ev("m", 1, 0), Ev("m", 1, 0)}, kT0 + 400 * kSecond);
  EXPECT_EQ(result.n_stored, 2u);
  ASSERT_EQ(h.output().stored_batches.back()->events.size(), 2u);
  EXPECT_EQ(h.output().stored_batches.back()->events[0].timestamp_ns, kT0 + 400 * kSecond);
  EXPECT_EQ(h.output().stored_batches.back()->events[1].timestamp_ns, kT0 + 400 * kSecond + 1);
  // Expired keys are evicted deterministically as log time advances.
  h.Ingest({Ev("m", 1, 0)}, kT0 + 100'000 * kSecond);
  EXPECT_EQ(h.state().content_dedup_key_count(), 0u);
}

// Keys in flight name their metric codes by ids of the pending batches, which are forgotten
// once nothing is pending: a code is never taken for another one, in one request part,
// across parts in flight, or after the ids were forgotten and given out again.
TEST(PartitionStateTest, InFlightKeysOfDifferentCodesNeverCollide) {
  Harness h;
  h.Put(Schema("a", AggregationType::kSum));
  h.Put(Schema("b", AggregationType::kSum));
  Acceptance first = h.Accept({Ev("a", 5, kT0 + 1), Ev("b", 5, kT0 + 1), Ev("a", 5, kT0 + 1)});
  EXPECT_EQ(first.result.n_stored, 2u);  // The second "a" repeats the first.
  EXPECT_EQ(first.result.outcomes[2], EventOutcome::kDuplicate);
  Acceptance second = h.Accept({Ev("unknown", 5, kT0 + 1), Ev("b", 5, kT0 + 1)});
  EXPECT_EQ(second.result.n_stored, 1u);  // "b" is in flight; "unknown" is new.
  EXPECT_EQ(second.result.outcomes[1], EventOutcome::kDuplicate);
  h.Append(*first.entry);
  h.Append(*second.entry);
  // Everything applied: the next part starts the ids afresh ("b" may get "a"'s old id).
  Acceptance third = h.Accept({Ev("b", 7, kT0 + 2)});
  EXPECT_EQ(third.result.n_stored, 1u);
  Acceptance fourth = h.Accept({Ev("a", 7, kT0 + 2), Ev("b", 7, kT0 + 2), Ev("a", 5, kT0 + 1)});
  EXPECT_EQ(fourth.result.n_stored, 1u);  // Only "a" 7 is new.
  EXPECT_EQ(fourth.result.outcomes[0], EventOutcome::kStored);
  EXPECT_EQ(fourth.result.outcomes[1], EventOutcome::kDuplicate);
  EXPECT_EQ(fourth.result.outcomes[2], EventOutcome::kDuplicate);
}

// AcceptParts decides several parts with one entry exactly as AcceptEvents would decide
// them one after the other (keys in the same batch, in flight and applied; conflicts;
// invalid parts taking no offsets), except the server stamps, which continue across parts.
TEST(PartitionStateTest, PartsAcceptedTogetherDecideAsOneAfterAnother) {
  Harness together;
  Harness apart;
  for (Harness* h : {&together, &apart}) {
    h->Put(Schema("m", AggregationType::kSum));
    h->Put(Schema("n", AggregationType::kCount));
  }
  Prng random(20261127);
  auto pick = [&random](uint32_t n) { return static_cast<uint32_t>(random.UniformBelow(n)); };
  auto random_event = [&]() {
    const char* codes[] = {"m", "n", "unknown"};
    Event event = Ev(codes[pick(3)], 1 + pick(3), pick(4) == 0 ? 0 : kT0 + pick(6));
    if (pick(4) == 0) {
      event.idempotency_key = IdempotencyKey{1, pick(4)};
      event.value = 1 + pick(2);  // Same key, other payload: a conflict.
    }
    return event;
  };
  std::vector<LogEntry> together_in_flight;
  std::vector<LogEntry> apart_in_flight;
  size_t stored = 0;
  size_t duplicates = 0;
  size_t conflicts = 0;
  size_t invalid = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<std::vector<Event>> parts(1 + pick(5));
    for (std::vector<Event>& part : parts) {
      part.resize(pick(7));
      for (Event& event : part) event = random_event();
      if (!part.empty() && pick(10) == 0) part[0].account_id = kPartition + 1;  // Invalid.
    }
    const int64_t now_ns = kT0 + round * kSecond;
    std::vector<absl::Span<const Event>> spans(parts.begin(), parts.end());
    PartsAcceptance decided = together.state().AcceptParts(spans, now_ns, together.pending());
    ASSERT_EQ(decided.results.size(), parts.size());
    std::vector<BatchEvent> expected;
    size_t stamp_base = 0;
    for (size_t p = 0; p < parts.size(); ++p) {
      absl::StatusOr<Acceptance> alone =
          apart.state().AcceptEvents(parts[p], now_ns, apart.pending());
      ASSERT_EQ(alone.ok(), decided.results[p].ok()) << "round " << round << " part " << p;
      if (!alone.ok()) {
        ++invalid;
        stamp_base += parts[p].size();
        continue;
      }
      const IngestResult& result = *decided.results[p];
      EXPECT_EQ(result.outcomes, alone->result.outcomes) << "round " << round << " part " << p;
      EXPECT_EQ(result.n_stored, alone->result.n_stored);
      EXPECT_EQ(result.n_duplicates, alone->result.n_duplicates);
      EXPECT_EQ(result.n_conflicts, alone->result.n_conflicts);
      EXPECT_EQ(result.status, alone->result.status);
      EXPECT_EQ(result.last_offset, alone->result.last_offset);
      stored += result.n_stored;
      duplicates += result.n_duplicates;
      conflicts += result.n_conflicts;
      if (alone->entry.has_value()) {
        for (BatchEvent event : alone->entry->batch()->events) {
          if (event.server_stamped) event.timestamp_ns += static_cast<int64_t>(stamp_base);
          expected.push_back(std::move(event));
        }
        apart_in_flight.push_back(*alone->entry);
      }
      stamp_base += parts[p].size();
    }
    ASSERT_EQ(decided.entry.has_value(), !expected.empty());
    if (decided.entry.has_value()) {
      EXPECT_EQ(decided.entry->batch()->events, expected) << "round " << round;
      EXPECT_EQ(decided.entry->batch()->accept_time_ns, now_ns);
      together_in_flight.push_back(*decided.entry);
    }
    if (pick(3) == 0) continue;  // Leave this round in flight.
    for (const LogEntry& entry : together_in_flight) together.Append(entry);
    for (const LogEntry& entry : apart_in_flight) apart.Append(entry);
    together_in_flight.clear();
    apart_in_flight.clear();
    EXPECT_EQ(together.state().next_offset(), apart.state().next_offset());
    EXPECT_EQ(together.Usage("m").sum, apart.Usage("m").sum);
    EXPECT_EQ(together.Usage("n").count, apart.Usage("n").count);
    EXPECT_EQ(together.state().content_dedup_key_count(), apart.state().content_dedup_key_count());
    EXPECT_EQ(together.state().idempotency_key_count(), apart.state().idempotency_key_count());
  }
  // Every kind of decision was taken many times.
  EXPECT_GT(stored, 300u);
  EXPECT_GT(duplicates, 300u);
  EXPECT_GT(conflicts, 20u);
  EXPECT_GT(invalid, 20u);
}

TEST(PartitionStateTest, IdempotencyKeysDuplicateOrConflict) {
  Harness h;
  h.Put(Schema("m", AggregationType::kSum));
  Event keyed = Ev("m", 5, 0);
  keyed.idempotency_key = IdempotencyKey{1, 2};
  IngestResult result = h.Ingest({keyed}, kT0);
  EXPECT_EQ(result.n_stored, 1u);
  result = h.Ingest({keyed}, kT0 + 1000 * kSecond);  // Beyond the content window.
  EXPECT_EQ(result.status, IngestStatus::kDuplicate);
  Event changed = keyed;
  changed.value = 6;
  result = h.Ingest({changed, keyed}, kT0 + 1001 * kSecond);
  EXPECT_EQ(result.outcomes[0], EventOutcome::kConflict);
  EXPECT_EQ(result.outcomes[1], EventOutcome::kDuplicate);
  EXPECT_EQ(result.n_conflicts, 1u);
  EXPECT_EQ(result.n_stored, 0u);
  result = h.Ingest({changed}, kT0 + 3601 * kSecond);  // Idempotency window over.
  EXPECT_EQ(result.n_stored, 1u);
  EXPECT_EQ(h.Usage("m").sum, 11u);
}

TEST(PartitionStateTest, OffsetsAndStatuses) {
  Harness h;
  h.Put(Schema("m", AggregationType::kSum));
  IngestResult result = h.Ingest({});
  EXPECT_EQ(result.status, IngestStatus::kOk);
  EXPECT_EQ(result.last_offset, 0u);
  result = h.Ingest({Ev("m", 1, kT0 + 1), Ev("m", 1, kT0 + 2)});
  EXPECT_EQ(result.last_offset, 1u);  // Offsets 0 and 1 of an empty partition (WP 13).
  result = h.Ingest({Ev("m", 1, kT0 + 2), Ev("unknown", 1, kT0 + 3)});
  EXPECT_EQ(result.status, IngestStatus::kUnknownMetric);
  EXPECT_EQ(result.n_stored, 1u);
  EXPECT_EQ(result.n_duplicates, 1u);
  EXPECT_EQ(result.last_offset, 2u);
  EXPECT_EQ(h.state().next_offset(), 3u);
  Event foreign = Ev("m", 1, 1);
  foreign.account_id = kPartition + 1;
  EXPECT_FALSE(h.state().AcceptEvents({foreign}, kT0, h.pending()).ok());
}

TEST(PartitionStateTest, UnknownMetricsAreNotRetroAggregated) {
  Harness h;
  h.Ingest({Ev("late", 5, kT0 + 1)});
  EXPECT_EQ(h.output().stored_batches.size(), 1u);
  EXPECT_FALSE(h.output().stored_batches[0]->events[0].registered);
  h.Put(Schema("late", AggregationType::kSum));
  EXPECT_EQ(h.Usage("late").sum, 0u);
  h.Ingest({Ev("late", 7, kT0 + 2)});
  EXPECT_EQ(h.Usage("late").sum, 7u);
}

TEST(PartitionStateTest, DeleteThenReregisterShowsOldAggregates) {
  Harness h;
  h.Put(Schema("m", AggregationType::kSum));
  h.Ingest({Ev("m", 5, kT0 + 1)});
  h.Delete("m");
  EXPECT_EQ(h.Usage("m"), AggValue{});
  EXPECT_TRUE(h.state().ListMetrics().empty());
  h.Ingest({Ev("m", 100, kT0 + 2)});  // Unknown while deleted: stored, never aggregated.
  h.Put(Schema("m", AggregationType::kSum));
  EXPECT_EQ(h.Usage("m").sum, 5u);
  h.Delete("never-registered");  // OK even if absent.
}

TEST(PartitionStateTest, SchemaChangeIsNotRetroactive) {
  Harness h;
  h.Put(Schema("m", AggregationType::kSum));  // FIXED
  h.Ingest({Ev("m", 1, kT0 + 1)});
  h.Put(Schema("m", AggregationType::kSum, {}, {}, /*DAY=*/2));
  h.Ingest({Ev("m", 10, kT0 + 2)});
  // Old FIXED bucket [2025-12-08, 2026-01-07) and new DAY bucket overlap: both merge.
  EXPECT_EQ(h.Usage("m", {}, kT0, kT0 + 1).sum, 11u);
  // Far from the DAY bucket, the FIXED bucket still answers for its whole range.
  EXPECT_EQ(h.Usage("m", {}, kT0 + 3 * kNanosPerDay, kT0 + 4 * kNanosPerDay).sum, 1u);
  EXPECT_EQ(h.state().QueryRealtime(kAccount, "m", kT0 + 5).sum, 10u);
  h.Put(Schema("m", AggregationType::kMax, {}, {}, 2));
  h.Ingest({Ev("m", 3, kT0 + 3)});
  const AggValue value = h.Usage("m", {}, kT0, kT0 + 1);
  EXPECT_EQ(value.sum, 11u);  // Old fields kept.
  EXPECT_EQ(value.max, 3u);
}

TEST(PartitionStateTest, QueryRangesUseWholeBuckets) {
  Harness h;
  h.Put(Schema("m", AggregationType::kSum, {}, {}, /*DAY=*/2));
  h.Ingest({Ev("m", 1, kT0 + 10), Ev("m", 2, kT0 + kNanosPerDay), Ev("m", 4, -5)});
  EXPECT_EQ(h.Usage("m", {}, kT0 + 5, kT0 + 6).sum, 1u);
  EXPECT_EQ(h.Usage("m", {}, kT0 + 5, kT0 + kNanosPerDay).sum, 1u);  // End exclusive.
  EXPECT_EQ(h.Usage("m", {}, kT0 + 5, kT0 + kNanosPerDay + 1).sum, 3u);
  EXPECT_EQ(h.Usage("m", {}, kT0 + 5, kT0 + 5).sum, 0u);  // end <= start.
  EXPECT_EQ(h.Usage("m", {}, -100, -50).sum, 4u);         // Negative times read as the epoch.
  EXPECT_EQ(h.state().QueryRealtime(kAccount, "m", kT0 + kNanosPerDay + 7).sum, 2u);
  EXPECT_EQ(h.state().QueryRealtime(kAccount, "unregistered", kT0).sum, 0u);
}

TEST(PartitionStateTest, RetentionEvictsEndedBuckets) {
  Harness h;
  h.Put(Schema("m", AggregationType::kCountUnique, {{"k", {"v"}}}, {}, /*DAY=*/2));
  h.Ingest({Ev("m", 1, kT0 + 1, {{"k", "v"}}), Ev("m", 2, kT0 + kNanosPerDay)});
  EXPECT_EQ(h.state().aggregate_key_count(), 3u);
  h.Retention(kT0 + kNanosPerDay - 1);  // The first bucket has not ended yet.
  EXPECT_EQ(h.output().buckets_evicted, 0u);
  h.Retention(kT0 + kNanosPerDay);
  EXPECT_EQ(h.output().buckets_evicted, 1u);
  EXPECT_EQ(h.output().retention_cutoffs_ns.back(), kT0 + kNanosPerDay);
  EXPECT_EQ(h.Usage("m").count, 1u);
  EXPECT_EQ(h.state().aggregate_key_count(), 1u);
  h.Retention(INT64_MAX);
  EXPECT_EQ(h.state().aggregate_key_count(), 0u);
  // A late event older than the cut-off is still aggregated (until the next sweep).
  h.Ingest({Ev("m", 1, kT0 + 1, {{"k", "v"}})}, kT0 + 10 * kNanosPerDay);
  EXPECT_EQ(h.Usage("m", {{"k", "v"}}).count, 1u);
}

TEST(PartitionStateTest, ReplicasAndSnapshotsAgree) {
  Harness h;
  h.Put(Schema("m", AggregationType::kCountUnique, {{"k", {"v", "w"}}}, {{"t", 2, true}}, 1));
  h.Put(Schema("s", AggregationType::kSum));
  Event keyed = Ev("s", 5, 0);
  keyed.idempotency_key = IdempotencyKey{7, 8};
  h.Ingest({Ev("m", 1, kT0 + 1, {{"k", "v"}}), Ev("m", 2, kT0 + 2, {{"k", "w"}}), keyed,
            Ev("unknown", 3, kT0 + 3)});
  h.Retention(kT0 - 100 * kNanosPerDay);
  PartitionState replica(h.options());
  ApplyOutput output;
  for (size_t i = 0; i < h.log().size(); ++i) {
    // Through the encoding, as a follower would receive it.
    absl::StatusOr<LogEntry> entry = DecodeLogEntry(EncodeLogEntry(h.log()[i]));
    ASSERT_TRUE(entry.ok());
    replica.Apply(i + 1, *entry, &output);
  }
  EXPECT_EQ(replica.Digest(), h.state().Digest());
  EXPECT_EQ(output.crossings, h.output().crossings);
  const std::vector<uint8_t> snapshot = h.state().EncodeSnapshot();
  absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
      PartitionState::DecodeSnapshot(h.options(), snapshot);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)->Digest(), h.state().Digest());
  EXPECT_EQ((*decoded)->EncodeSnapshot(), snapshot);
  EXPECT_EQ((*decoded)->applied_index(), h.state().applied_index());
  // The dedup index survives the snapshot.
  PendingDedup pending;
  absl::StatusOr<Acceptance> again =
      (*decoded)->AcceptEvents({keyed, Ev("m", 1, kT0 + 1, {{"k", "v"}})}, kT0 + 1, pending);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->result.status, IngestStatus::kDuplicate);
  // A different state has a different digest; a corrupt snapshot is refused.
  h.Ingest({Ev("s", 1, kT0 + 50)});
  EXPECT_NE((*decoded)->Digest(), h.state().Digest());
  std::vector<uint8_t> corrupt = snapshot;
  corrupt[corrupt.size() / 2] ^= 1;
  EXPECT_EQ(PartitionState::DecodeSnapshot(h.options(), corrupt).status().code(),
            absl::StatusCode::kDataLoss);
  PartitionOptions other = h.options();
  other.partition_id = 8;
  EXPECT_EQ(PartitionState::DecodeSnapshot(other, snapshot).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PartitionStateTest, CrossingsStayUnconfirmedUntilTheLogConfirmsThem) {
  Harness h;
  h.Put(Schema("sum", AggregationType::kSum, {}, {{"zero", 0, false}, {"rec", 10, true}}));
  h.Ingest({Ev("sum", 4, kT0 + 1)});  // Index 2: "zero".
  h.Ingest({Ev("sum", 8, kT0 + 2)});  // Index 3: "rec".
  const std::deque<UnconfirmedCrossing>& unconfirmed = h.state().unconfirmed_crossings();
  ASSERT_EQ(unconfirmed.size(), 2u);
  EXPECT_EQ(unconfirmed[0].index, 2u);
  EXPECT_EQ(unconfirmed[0].crossing, h.output().crossings[0]);
  EXPECT_EQ(unconfirmed[1].index, 3u);
  EXPECT_EQ(unconfirmed[1].crossing.threshold_code, "rec");
  h.Append(LogEntry::RecordedAlerts(2));  // Index 4.
  ASSERT_EQ(unconfirmed.size(), 1u);
  EXPECT_EQ(unconfirmed[0].index, 3u);
  // Replicated state: in the digest and the snapshot.
  const std::vector<uint8_t> snapshot = h.state().EncodeSnapshot();
  absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
      PartitionState::DecodeSnapshot(h.options(), snapshot);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)->unconfirmed_crossings(), unconfirmed);
  EXPECT_EQ((*decoded)->Digest(), h.state().Digest());
  h.Append(LogEntry::RecordedAlerts(3));
  EXPECT_TRUE(unconfirmed.empty());
  // Retention drops the crossings of events it expires.
  h.Ingest({Ev("sum", 1, kT0 + 3)});
  ASSERT_EQ(unconfirmed.size(), 1u);
  h.Retention(kT0 + 4);
  EXPECT_TRUE(unconfirmed.empty());
}

std::shared_ptr<AlertCopies> Copies(uint32_t recorder, std::vector<uint64_t> offsets,
                                    int64_t event_timestamp_ns) {
  auto copies = std::make_shared<AlertCopies>();
  copies->recorder = recorder;
  for (uint64_t offset : offsets) {
    copies->records.push_back(AlertCopy{
        offset, AlertCrossing{kAccount, "sum", 0, "t", offset, event_timestamp_ns, offset}});
  }
  return copies;
}

TEST(PartitionStateTest, AlertCopiesAreKeptOnceUntilRetention) {
  Harness h;
  h.Append(LogEntry::CopiesOfAlerts(Copies(1, {0, 1, 2}, kT0 + 1)));
  h.Append(LogEntry::CopiesOfAlerts(Copies(2, {0}, kT0 + 5)));
  // A copy sent again after an unknown outcome: the record kept is the first one.
  auto again = Copies(1, {2, 3}, kT0 + 5);
  again->records[0].crossing.value_at_cross = 99;
  h.Append(LogEntry::CopiesOfAlerts(again));
  const auto& copies = h.state().alert_copies();
  ASSERT_EQ(copies.size(), 5u);
  EXPECT_EQ(copies.at({1, 2}).value_at_cross, 2u);
  EXPECT_EQ(copies.at({1, 3}).event_timestamp_ns, kT0 + 5);
  EXPECT_EQ(copies.begin()->first, (PartitionState::AlertCopyKey{1, 0}));
  // Replicated state: in the digest and the snapshot.
  const uint64_t digest = h.state().Digest();
  absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
      PartitionState::DecodeSnapshot(h.options(), h.state().EncodeSnapshot());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)->alert_copies(), copies);
  EXPECT_EQ((*decoded)->Digest(), digest);
  Harness other;
  other.Append(LogEntry::CopiesOfAlerts(Copies(1, {0, 1, 2}, kT0 + 1)));
  EXPECT_NE(other.state().Digest(), digest);
  // Retention drops the copies of records whose event is older than the cutoff, and a
  // copy arriving after the sweep is not kept.
  h.Retention(kT0 + 2);
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies.begin()->first, (PartitionState::AlertCopyKey{1, 3}));
  h.Append(LogEntry::CopiesOfAlerts(Copies(3, {6}, kT0 + 1)));
  EXPECT_EQ(copies.size(), 2u);
  // Each recorder's end stays where its highest copy took it: offsets are never reused.
  EXPECT_EQ(h.state().alert_copy_ends(),
            (absl::btree_map<uint32_t, uint64_t>{{1, 4}, {2, 1}, {3, 7}}));
}

// `state`'s snapshot as an older `version` wrote it: without the last `dropped_bytes`
// before the CRC (the fields added since), the CRC computed again.
std::vector<uint8_t> OlderSnapshot(const PartitionState& state, uint32_t version,
                                   size_t dropped_bytes) {
  std::vector<uint8_t> snapshot = state.EncodeSnapshot();
  snapshot.resize(snapshot.size() - 4 - dropped_bytes);
  snapshot[4] = static_cast<uint8_t>(version);
  const uint32_t crc = Crc32c(snapshot.data(), snapshot.size());
  for (int i = 0; i < 4; ++i) snapshot.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  return snapshot;
}

TEST(PartitionStateTest, VersionThreeSnapshotsHaveNoAlertCopies) {
  Harness h;
  h.Put(Schema("sum", AggregationType::kSum));
  h.Ingest({Ev("sum", 4, kT0 + 1)});
  std::vector<uint8_t> snapshot = OlderSnapshot(h.state(), 3, 8 + 4);  // Two counts of 0.
  absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
      PartitionState::DecodeSnapshot(h.options(), snapshot);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)->Digest(), h.state().Digest());
  // Copies out of order are refused.
  h.Append(LogEntry::CopiesOfAlerts(Copies(1, {0, 1}, kT0 + 1)));
  snapshot = h.state().EncodeSnapshot();
  const size_t record_bytes = 4 + 8 + (8 + 4 + 4 + 2 + 8 + 8 + 8);
  const size_t ends_bytes = 4 + (4 + 8);
  const size_t second_offset = snapshot.size() - 4 - ends_bytes - record_bytes + 4;
  ASSERT_EQ(snapshot[second_offset], 1);
  snapshot[second_offset] = 0;
  const uint32_t crc = Crc32c(snapshot.data(), snapshot.size() - 4);
  for (int i = 0; i < 4; ++i)
    snapshot[snapshot.size() - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
  EXPECT_EQ(PartitionState::DecodeSnapshot(h.options(), snapshot).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(PartitionStateTest, VersionOneSnapshotsHaveNoUnconfirmedCrossings) {
  Harness h;
  h.Put(Schema("sum", AggregationType::kSum));
  h.Ingest({Ev("sum", 4, kT0 + 1)});
  // Version 1 is version 4 without the trailing crossing count (0 here), registry versions
  // (a count and one version: all zero for changes made without one) and alert copies (two
  // counts of 0).
  const std::vector<uint8_t> snapshot = OlderSnapshot(h.state(), 1, 8 + (4 + 12) + 8 + 4);
  absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
      PartitionState::DecodeSnapshot(h.options(), snapshot);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)->Digest(), h.state().Digest());
  EXPECT_TRUE((*decoded)->unconfirmed_crossings().empty());
}

// Registry changes carry the version they were ordered at; a partition that gets them out
// of order (concurrent changes forwarded from different nodes) keeps the newest, so every
// partition ends with the same registry.
TEST(PartitionStateTest, RegistryChangesArrivingOutOfOrderKeepTheNewest) {
  const SchemaRef sum = *CompiledSchema::Create(Schema("m", AggregationType::kSum));
  const SchemaRef max = *CompiledSchema::Create(Schema("m", AggregationType::kMax));
  const RegistryVersion v1{1ull << 32, 1};
  const RegistryVersion v2{1ull << 32, 2};
  const RegistryVersion v3{2ull << 32, 1};
  Harness in_order;
  in_order.Append(LogEntry::Put(sum, v1));
  in_order.Append(LogEntry::Put(max, v2));
  in_order.Append(LogEntry::Delete("m", v3));
  in_order.Append(LogEntry::Put(sum, v1));  // A late copy of the first change.
  Harness reversed;
  reversed.Append(LogEntry::Delete("m", v3));  // The code was never put here: a tombstone.
  reversed.Append(LogEntry::Put(max, v2));
  reversed.Append(LogEntry::Put(sum, v1));
  EXPECT_EQ(in_order.state().FindSchema("m"), nullptr);
  EXPECT_EQ(reversed.state().FindSchema("m"), nullptr);
  Harness swapped;
  swapped.Append(LogEntry::Put(max, v2));
  swapped.Append(LogEntry::Put(sum, v1));
  ASSERT_NE(swapped.state().FindSchema("m"), nullptr);
  EXPECT_EQ(swapped.state().FindSchema("m")->agg_type(), AggregationType::kMax);
  // A newer version wins over an older one, and unversioned changes (a single node) apply in
  // log order as before.
  swapped.Append(LogEntry::Put(sum, v3));
  EXPECT_EQ(swapped.state().FindSchema("m")->agg_type(), AggregationType::kSum);
  Harness plain;
  plain.Put(Schema("m", AggregationType::kMax));
  plain.Put(Schema("m", AggregationType::kSum));
  EXPECT_EQ(plain.state().FindSchema("m")->agg_type(), AggregationType::kSum);
  plain.Delete("gone");  // Unversioned delete of an unknown code: nothing kept.
  size_t codes = 0;
  plain.state().ForEachRegistryEntry(
      [&](const std::string&, const SchemaRef&, const RegistryVersion&) { ++codes; });
  EXPECT_EQ(codes, 1u);
  // The versions survive a snapshot, so a state installed from one keeps refusing the
  // superseded change.
  absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
      PartitionState::DecodeSnapshot(swapped.options(), swapped.state().EncodeSnapshot());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)->Digest(), swapped.state().Digest());
  ApplyOutput output;
  (*decoded)->Apply((*decoded)->applied_index() + 1, LogEntry::Put(max, v2), &output);
  EXPECT_EQ((*decoded)->FindSchema("m")->agg_type(), AggregationType::kSum);
}

TEST(PartitionStateTest, MetricListIsOrderedByCode) {
  Harness h;
  h.Put(Schema("zeta", AggregationType::kSum));
  h.Put(Schema("alpha", AggregationType::kSum));
  h.Put(Schema("mid", AggregationType::kSum));
  std::vector<std::string> codes;
  for (const SchemaRef& schema : h.state().ListMetrics()) codes.push_back(schema->code());
  EXPECT_EQ(codes, (std::vector<std::string>{"alpha", "mid", "zeta"}));
}

}  // namespace
}  // namespace unimeter::metering
