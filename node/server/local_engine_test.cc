// Goal: the single-node pipeline commits with one fsync per group (no added latency when
// idle), acknowledges ASYNC at acceptance and SYNC at commit, makes ingests wait for an
// in-flight schema change, refuses writes when asked (low disk) or beyond its pending bound
// and, on a full disk, rolls back: SYNC requests learn that nothing was accepted and the
// node keeps working.
#include "node/server/local_engine.h"

#include <gtest/gtest.h>

#include "sim/sim_env.h"

namespace unimeter {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kT0 = 1'767'225'600 * kSecond;

class LocalEngineTest : public ::testing::Test {
 protected:
  LocalEngineTest()
      : simulator_(5),
        network_(simulator_, 1, sim::NetworkOptions{}),
        disk_(2, sim::DiskOptions{}) {
    env_ = std::make_unique<sim::SimEnv>(simulator_, network_, 0, 1, &disk_, 9, sim::ClockOptions{},
                                         nullptr);
    Reopen(LocalEngineOptions{});
  }
  // Closes the engine (if open) and opens it again over the same disk with `options`.
  void Reopen(const LocalEngineOptions& options) {
    engine_.reset();
    auto engine = LocalEngine::Open(*env_, options, EngineMetrics{});
    UM_CHECK_OK(engine.status());
    engine_ = std::move(*engine);
    RunFor(kSecond);
  }
  ~LocalEngineTest() override {
    engine_.reset();
    env_.reset();
    simulator_.DropAll();
  }

  void RunFor(int64_t duration_ns) { simulator_.RunUntil(simulator_.now_ns() + duration_ns); }

  void PutSum(const std::string& code) {
    metering::MetricSchema schema;
    schema.code = code;
    schema.agg_type = metering::AggregationType::kSum;
    bool done = false;
    engine_->PutMetric(schema, [&](absl::Status status) {
      EXPECT_TRUE(status.ok()) << status;
      done = true;
    });
    ASSERT_TRUE(simulator_.RunUntil([&] { return done; }, simulator_.now_ns() + kSecond));
  }

  std::vector<metering::Event> Events(uint64_t account, int count, int64_t first_ts) {
    std::vector<metering::Event> events(count);
    for (int i = 0; i < count; ++i) {
      events[i].account_id = account;
      events[i].metric_code = "m";
      events[i].value = 1;
      events[i].timestamp_ns = first_ts + i;
    }
    return events;
  }

  uint64_t Sum(uint64_t account) {
    uint64_t sum = 0;
    engine_->Read(
        static_cast<uint32_t>(account % kPartitionCount),
        [&](absl::StatusOr<const metering::PartitionState*> state) {
          sum = static_cast<uint64_t>((*state)->QueryUsage(account, "m", 0, INT64_MAX, {})->sum);
        });
    return sum;
  }

  sim::Simulator simulator_;
  sim::SimNetwork network_;
  sim::SimDisk disk_;
  std::unique_ptr<sim::SimEnv> env_;
  std::unique_ptr<LocalEngine> engine_;
};

TEST_F(LocalEngineTest, GroupCommitAcknowledgesSyncAtCommitAndAsyncAtAcceptance) {
  PutSum("m");
  const uint64_t syncs_before = disk_.stats().syncs;
  int sync_acks = 0;
  int async_acks = 0;
  for (int request = 0; request < 50; ++request) {
    engine_->Ingest(request % 7, Events(request % 7, 10, kT0 + request * 100), IngestMode::kSync,
                    [&](absl::StatusOr<metering::IngestResult> result) {
                      ASSERT_TRUE(result.ok()) << result.status();
                      EXPECT_EQ(result->n_stored, 10u);
                      ++sync_acks;
                    });
  }
  engine_->Ingest(3, Events(3, 5, kT0 + 99'999), IngestMode::kAsync,
                  [&](absl::StatusOr<metering::IngestResult> result) {
                    ASSERT_TRUE(result.ok());
                    ++async_acks;
                  });
  EXPECT_EQ(async_acks, 0);  // Staged until the end of the loop turn.
  const uint64_t entries_before = engine_->store().stats().entries_appended;
  RunFor(0);                 // The end of the turn: parts accepted, one entry per partition.
  EXPECT_EQ(async_acks, 1);  // At acceptance, before any fsync.
  EXPECT_EQ(sync_acks, 0);   // Only after the commit.
  EXPECT_EQ(engine_->store().stats().entries_appended - entries_before, 7u);
  RunFor(kSecond);
  EXPECT_EQ(sync_acks, 50);
  // The first request started a sync at once; everything that arrived meanwhile shared the
  // next one (a few more for commit marks and alert records at most).
  EXPECT_LE(disk_.stats().syncs - syncs_before, 4u);
  EXPECT_EQ(Sum(3), 70u + 5u);  // Requests 3, 10, 17, ... 45 (7 x 10) plus the ASYNC 5.
}

// The parts a partition gets in one loop turn are decided as if one came after the other
// (an earlier part's events make a later part's duplicates) and appended as one entry.
TEST_F(LocalEngineTest, PartsOfOneTurnShareAnEntryAndDeduplicateEachOther) {
  PutSum("m");
  const uint64_t entries_before = engine_->store().stats().entries_appended;
  std::vector<absl::StatusOr<metering::IngestResult>> results;
  auto record = [&](absl::StatusOr<metering::IngestResult> result) {
    results.push_back(std::move(result));
  };
  engine_->Ingest(5, Events(5, 3, kT0), IngestMode::kSync, record);      // kT0 .. kT0 + 2
  engine_->Ingest(5, Events(5, 3, kT0 + 1), IngestMode::kSync, record);  // Two repeats, one new.
  engine_->Ingest(5, Events(5, 2, kT0), IngestMode::kAsync, record);     // Repeats only.
  engine_->Ingest(6, Events(6, 1, kT0), IngestMode::kSync, record);      // Another partition.
  RunFor(0);
  EXPECT_EQ(engine_->store().stats().entries_appended - entries_before, 2u);
  ASSERT_EQ(results.size(), 1u);  // The ASYNC part, answered at acceptance.
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(results[0]->status, metering::IngestStatus::kDuplicate);
  EXPECT_EQ(results[0]->n_duplicates, 2u);
  RunFor(kSecond);
  ASSERT_EQ(results.size(), 4u);
  ASSERT_TRUE(results[1].ok() && results[2].ok() && results[3].ok());
  EXPECT_EQ(results[1]->n_stored, 3u);
  EXPECT_EQ(results[1]->last_offset, 2u);
  EXPECT_EQ(results[2]->n_stored, 1u);
  EXPECT_EQ(results[2]->n_duplicates, 2u);
  EXPECT_EQ(results[2]->last_offset, 3u);
  EXPECT_EQ(results[3]->n_stored, 1u);
  EXPECT_EQ(Sum(5), 4u);
  EXPECT_EQ(Sum(6), 1u);
}

TEST_F(LocalEngineTest, IngestsWaitForAnInFlightSchemaChange) {
  metering::MetricSchema schema;
  schema.code = "m";
  schema.agg_type = metering::AggregationType::kSum;
  bool put_done = false;
  engine_->PutMetric(schema, [&](absl::Status) { put_done = true; });
  metering::IngestResult result;
  bool ingested = false;
  engine_->Ingest(1, Events(1, 3, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) {
                    result = *r;
                    ingested = true;
                  });
  RunFor(kSecond);
  ASSERT_TRUE(put_done && ingested);
  EXPECT_EQ(result.status, metering::IngestStatus::kOk);  // Not UNKNOWN_METRIC.
  EXPECT_EQ(Sum(1), 3u);
}

TEST_F(LocalEngineTest, BlockedWritesAndFullDiskMeanNothingAccepted) {
  // With zeros written ahead of the log, only one group in many grows the file; this test
  // needs the very next group to meet the full disk.
  LocalEngineOptions options;
  options.store.wal.preallocate_bytes = 0;
  Reopen(options);
  PutSum("m");
  engine_->SetWritesBlocked(true);
  absl::Status blocked;
  engine_->Ingest(1, Events(1, 1, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) { blocked = r.status(); });
  EXPECT_TRUE(absl::IsResourceExhausted(blocked));
  engine_->SetWritesBlocked(false);
  disk_.options().capacity_bytes = disk_.used_bytes();  // The next growth fails.
  absl::Status full;
  engine_->Ingest(2, Events(2, 4, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) { full = r.status(); });
  RunFor(kSecond);
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_EQ(Sum(2), 0u);
  disk_.options().capacity_bytes = uint64_t{1} << 40;
  bool retried = false;
  engine_->Ingest(2, Events(2, 4, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) {
                    ASSERT_TRUE(r.ok()) << r.status();
                    EXPECT_EQ(r->n_stored, 4u);  // Not duplicates of the rolled-back events.
                    retried = true;
                  });
  RunFor(kSecond);
  EXPECT_TRUE(retried);
  EXPECT_EQ(Sum(2), 4u);
}

TEST_F(LocalEngineTest, PendingBoundRefusesOnlyWhileOthersWait) {
  LocalEngineOptions options;
  options.pending_events_max = 10;
  Reopen(options);
  PutSum("m");
  // Larger than the bound, nothing waiting: taken (refusing it would refuse it forever).
  absl::Status big = absl::UnknownError("no answer");
  engine_->Ingest(1, Events(1, 25, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) { big = r.status(); });
  RunFor(0);  // The end of the loop turn: accepted (parts are counted once accepted).
  // While those 25 wait for their commit, one more event exceeds the bound: refused.
  absl::Status extra = absl::UnknownError("no answer");
  engine_->Ingest(2, Events(2, 1, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) { extra = r.status(); });
  EXPECT_TRUE(absl::IsResourceExhausted(extra)) << extra;
  RunFor(kSecond);
  EXPECT_TRUE(big.ok()) << big;
  EXPECT_EQ(Sum(1), 25u);
  EXPECT_EQ(Sum(2), 0u);
  // Committed, nothing waits: the bound admits requests again.
  absl::Status again = absl::UnknownError("no answer");
  engine_->Ingest(2, Events(2, 1, kT0), IngestMode::kSync,
                  [&](absl::StatusOr<metering::IngestResult> r) { again = r.status(); });
  RunFor(kSecond);
  EXPECT_TRUE(again.ok()) << again;
  EXPECT_EQ(Sum(2), 1u);
}

}  // namespace
}  // namespace unimeter
