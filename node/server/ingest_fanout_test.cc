// Tests for IngestFanout: the split into per-partition parts, the merge in request order,
// and the fan-out's lifetime when parts complete inside Ingest, later, or never.
#include "node/server/ingest_fanout.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

namespace unimeter {
namespace {

// An engine that records each part and completes it at once (as an ASYNC acceptance
// does), or when the test says, with a failure status for chosen partitions.
class PartEngine final : public Engine {
 public:
  struct Part {
    uint32_t partition;
    std::vector<metering::Event> events;
    IngestDone done;
  };

  bool complete_at_once = false;
  std::optional<uint32_t> failing_partition;

  void Ingest(uint32_t partition, std::vector<metering::Event> events, IngestMode,
              IngestDone done) override {
    parts.push_back(Part{partition, std::move(events), std::move(done)});
    if (complete_at_once) {
      Complete(parts.size() - 1);
      parts.back().done = nullptr;  // Dropped right after it ran, as engines do.
    }
  }

  // Stored outcomes; the part's last offset is 1000 * partition + its size.
  void Complete(size_t index) {
    Part& part = parts[index];
    if (failing_partition == part.partition) {
      part.done(absl::UnavailableError("no owner"));
      return;
    }
    metering::IngestResult result;
    result.n_stored = static_cast<uint32_t>(part.events.size());
    result.last_offset = 1000 * part.partition + part.events.size();
    result.outcomes.assign(part.events.size(), metering::EventOutcome::kStored);
    part.done(std::move(result));
  }

  std::vector<Part> parts;

  void Read(uint32_t, ReadFunction) override { std::abort(); }
  void PutMetric(metering::MetricSchema, StatusDone) override { std::abort(); }
  void DeleteMetric(std::string, StatusDone) override { std::abort(); }
  absl::StatusOr<std::vector<StoredEvent>> ListEvents(uint64_t, int64_t, int64_t, size_t,
                                                      uint64_t) const override {
    std::abort();
  }
  absl::StatusOr<std::vector<AlertRecord>> ListAlerts(uint64_t, uint64_t, size_t) const override {
    std::abort();
  }
  void SetAlertsDurable(AlertsDurable) override { std::abort(); }
  size_t alerts_unreleased() const override { std::abort(); }
  void SweepRetention(int64_t, StatusDone) override { std::abort(); }
  void Checkpoint(StatusDone) override { std::abort(); }
  void SetWritesBlocked(bool) override { std::abort(); }
  uint32_t node_count() const override { return 1; }
  NodeId owner(uint32_t) const override { return 0; }
  bool ready() const override { return true; }
  const NodeStore& store() const override { std::abort(); }
};

// Events for accounts 5, 261 (= 5 + 256), 7, 5: partitions 5, 5, 7, 5.
std::vector<metering::Event> MixedRequest() {
  std::vector<metering::Event> events;
  for (const uint64_t account : {5, 261, 7, 5}) {
    metering::Event event;
    event.account_id = account;
    event.metric_code = "calls";
    event.value = account;
    events.push_back(event);
  }
  return events;
}

TEST(IngestFanout, PartsCompletingInsideIngestMergeOnceInRequestOrder) {
  PartEngine engine;
  engine.complete_at_once = true;
  std::vector<MergedIngest> merged;
  IngestFanout(engine, MixedRequest(), IngestMode::kAsync,
               [&](MergedIngest result) { merged.push_back(std::move(result)); });
  ASSERT_EQ(engine.parts.size(), 2u);
  EXPECT_EQ(engine.parts[0].partition, 5u);
  EXPECT_EQ(engine.parts[1].partition, 7u);
  ASSERT_EQ(engine.parts[0].events.size(), 3u);  // Request order inside the part.
  EXPECT_EQ(engine.parts[0].events[0].value, 5u);
  EXPECT_EQ(engine.parts[0].events[1].value, 261u);
  EXPECT_EQ(engine.parts[0].events[2].value, 5u);
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_EQ(merged[0].outcome, MergedIngest::Outcome::kAcknowledged);
  EXPECT_EQ(merged[0].n_stored, 4u);
  EXPECT_EQ(merged[0].outcomes.size(), 4u);
  // The request's last event is in partition 5's part: its last offset.
  EXPECT_EQ(merged[0].last_offset, 5003u);
}

TEST(IngestFanout, LaterCompletionsInAnyOrderMergeAfterTheLast) {
  for (const bool reverse : {false, true}) {
    PartEngine engine;
    int merges = 0;
    MergedIngest merged;
    IngestFanout(engine, MixedRequest(), IngestMode::kSync, [&](MergedIngest result) {
      ++merges;
      merged = std::move(result);
    });
    ASSERT_EQ(engine.parts.size(), 2u);
    engine.Complete(reverse ? 1 : 0);
    EXPECT_EQ(merges, 0);
    engine.Complete(reverse ? 0 : 1);
    EXPECT_EQ(merges, 1);
    EXPECT_EQ(merged.outcome, MergedIngest::Outcome::kAcknowledged);
    EXPECT_EQ(merged.last_offset, 5003u);
    engine.parts.clear();  // Frees the callbacks and with them the fan-out.
  }
}

TEST(IngestFanout, FailedPartsMakeTheOutcomeUnknownOrNothingAccepted) {
  {
    PartEngine engine;
    engine.complete_at_once = true;
    engine.failing_partition = 7;
    std::optional<MergedIngest> merged;
    IngestFanout(engine, MixedRequest(), IngestMode::kSync,
                 [&](MergedIngest result) { merged = std::move(result); });
    ASSERT_TRUE(merged.has_value());
    EXPECT_EQ(merged->outcome, MergedIngest::Outcome::kUnknown);  // Partition 5 stored.
  }
  {
    PartEngine engine;
    engine.complete_at_once = true;
    engine.failing_partition = 5;
    std::vector<metering::Event> events = MixedRequest();
    events.erase(events.begin() + 2);  // Partition 5 only.
    std::optional<MergedIngest> merged;
    IngestFanout(engine, std::move(events), IngestMode::kSync,
                 [&](MergedIngest result) { merged = std::move(result); });
    ASSERT_TRUE(merged.has_value());
    EXPECT_EQ(merged->outcome, MergedIngest::Outcome::kNothingAccepted);
  }
}

TEST(IngestFanout, CallbacksDroppedUnrunNeverAnswer) {
  PartEngine engine;
  bool answered = false;
  IngestFanout(engine, MixedRequest(), IngestMode::kSync, [&](MergedIngest) { answered = true; });
  engine.Complete(0);
  engine.parts.clear();  // A stopping engine drops the other part's callback.
  EXPECT_FALSE(answered);
}

}  // namespace
}  // namespace unimeter
