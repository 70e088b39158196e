// Goal: NodeStore keeps a partition's log, state, stored events and alert log across
// crashes exactly: committed entries re-apply from commit marks, the uncommitted suffix is
// recovered for the replication layer, truncations stick, checkpoints let the WAL be
// recycled without changing the state (digests equal), and a crash at any point loses
// only what was never synced. Runs on the simulated Env (deterministic).
#include "node/store/node_store.h"

#include <gtest/gtest.h>

#include "sim/sim_env.h"

namespace unimeter {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kNow = 1'767'225'600 * kSecond;  // 2026-01-01.
constexpr uint32_t kPartition = 5;

std::shared_ptr<const metering::LogEntry> PutEntry(const std::string& code, uint64_t threshold) {
  metering::MetricSchema schema;
  schema.code = code;
  schema.agg_type = metering::AggregationType::kSum;
  schema.thresholds.push_back(metering::Threshold{"t", threshold, false});
  auto compiled = metering::CompiledSchema::Create(schema);
  UM_CHECK_OK(compiled.status());
  return std::make_shared<metering::LogEntry>(metering::LogEntry::Put(*compiled));
}

class NodeStoreTest : public ::testing::Test {
 protected:
  NodeStoreTest()
      : simulator_(7), network_(simulator_, 1, sim::NetworkOptions{}), disk_(3, [] {
          sim::DiskOptions options;
          return options;
        }()) {
    Restart();
  }
  ~NodeStoreTest() override {
    store_.reset();
    env_.reset();
    simulator_.DropAll();
  }

  // Crash (if running) and reopen from the disk only.
  void Restart() {
    pending_.Clear();  // The owner's pipeline is memory: a crash forgets it.
    store_.reset();
    env_.reset();
    ++incarnation_;
    env_ = std::make_unique<sim::SimEnv>(simulator_, network_, 0, incarnation_, &disk_,
                                         SubSeed(7, incarnation_), sim::ClockOptions{}, nullptr);
    NodeStoreOptions options;
    options.wal.segment_size_bytes = 64 * 1024;  // Small, so checkpoints recycle segments.
    if (!preallocate_) options.wal.preallocate_bytes = 0;  // Every append grows the file.
    auto store = NodeStore::Open(*env_, options);
    UM_CHECK_OK(store.status());
    store_ = std::move(*store);
  }

  void SyncAndRun() {
    bool done = false;
    store_->Sync([&](absl::Status status) {
      EXPECT_TRUE(status.ok()) << status;
      done = true;
    });
    ASSERT_TRUE(simulator_.RunUntil([&] { return done; }, simulator_.now_ns() + kSecond));
  }

  void CheckpointAndRun() { RunJob(&NodeStore::Checkpoint); }
  void FlushEventsAndRun() { RunJob(&NodeStore::FlushEvents); }
  // Starts a checkpoint or events flush and runs the simulation until it completed.
  void RunJob(void (NodeStore::*start)(absl::AnyInvocable<void(absl::Status)>)) {
    bool done = false;
    (store_.get()->*start)([&](absl::Status status) {
      EXPECT_TRUE(status.ok()) << status;
      done = true;
    });
    ASSERT_TRUE(simulator_.RunUntil([&] { return done; }, simulator_.now_ns() + 10 * kSecond));
  }

  // Appends `batches` batches of 10 events for account 5, makes them durable, commits them.
  void AppendCommittedBatches(int batches) {
    for (int batch = 0; batch < batches; ++batch) {
      AppendEvents(5, 10, kNow + batch * 100);
    }
    SyncAndRun();
    CommitAll(false);
  }

  // Accepts `count` SUM events of value 1 for `account` at the owner and appends them.
  void AppendEvents(uint64_t account, int count, int64_t first_timestamp_ns) {
    std::vector<metering::Event> events(count);
    for (int i = 0; i < count; ++i) {
      events[i].account_id = account;
      events[i].metric_code = "api_calls";
      events[i].value = 1;
      events[i].timestamp_ns = first_timestamp_ns + i;
    }
    auto acceptance = store_->state(kPartition).AcceptEvents(events, kNow, pending_);
    ASSERT_TRUE(acceptance.ok()) << acceptance.status();
    ASSERT_TRUE(acceptance->entry.has_value());
    ASSERT_TRUE(store_
                    ->Append(kPartition, store_->last_index(kPartition) + 1, 1,
                             std::make_shared<metering::LogEntry>(*acceptance->entry))
                    .ok());
  }

  // Appends the metric, makes it durable and commits it (an owner accepts events only
  // under applied schemas).
  void RegisterMetric(uint64_t threshold) {
    ASSERT_TRUE(store_->Append(kPartition, 1, 1, PutEntry("api_calls", threshold)).ok());
    SyncAndRun();
    store_->Commit(kPartition, 1, true);
  }

  void CommitAll(bool record_alerts) {
    store_->Commit(kPartition, store_->last_index(kPartition), record_alerts);
    pending_.RetireApplied(store_->state(kPartition).next_offset());
  }

  uint64_t Sum(uint64_t account) {
    auto value = store_->state(kPartition).QueryUsage(account, "api_calls", 0, INT64_MAX, {});
    UM_CHECK_OK(value.status());
    return static_cast<uint64_t>(value->sum);
  }

  sim::Simulator simulator_;
  sim::SimNetwork network_;
  sim::SimDisk disk_;
  uint64_t incarnation_ = 0;
  std::unique_ptr<sim::SimEnv> env_;
  std::unique_ptr<NodeStore> store_;
  metering::PendingDedup pending_;
  bool preallocate_ = true;
};

TEST_F(NodeStoreTest, CommitMarksDecideWhatReplaysAsCommitted) {
  RegisterMetric(1000);
  AppendEvents(261, 10, kNow);  // Account 261 lives in partition 5.
  SyncAndRun();                 // Also makes the metric's commit mark durable.
  store_->Commit(kPartition, 2, true);
  EXPECT_EQ(Sum(261), 10u);
  const uint64_t digest = store_->Digest();
  // The batch's commit mark was not synced: the batch comes back uncommitted.
  Restart();
  EXPECT_EQ(store_->commit_index(kPartition), 1u);
  EXPECT_EQ(store_->last_index(kPartition), 2u);
  EXPECT_EQ(store_->uncommitted_count(kPartition), 1u);
  store_->Commit(kPartition, 2, true);
  EXPECT_EQ(store_->Digest(), digest);
  SyncAndRun();
  Restart();
  EXPECT_EQ(store_->commit_index(kPartition), 2u);
  EXPECT_EQ(store_->Digest(), digest);
  EXPECT_EQ(Sum(261), 10u);
}

TEST_F(NodeStoreTest, UnsyncedEntriesAreLostAndTruncationsStick) {
  RegisterMetric(1000);
  SyncAndRun();
  AppendEvents(5, 3, kNow);  // Never synced.
  Restart();
  EXPECT_EQ(store_->last_index(kPartition), 1u);
  AppendEvents(5, 3, kNow);
  AppendEvents(5, 4, kNow + 100);
  SyncAndRun();
  store_->TruncateAfter(kPartition, 2);
  SyncAndRun();
  Restart();
  EXPECT_EQ(store_->last_index(kPartition), 2u);
  CommitAll(false);
  EXPECT_EQ(Sum(5), 3u);
}

TEST_F(NodeStoreTest, CheckpointRecyclesTheWalAndKeepsEverything) {
  RegisterMetric(5);
  for (int batch = 0; batch < 200; ++batch) {
    AppendEvents(5 + 256 * (batch % 3), 50, kNow + batch * 1000);
    SyncAndRun();  // One group each, so the WAL spans several segments.
  }
  CommitAll(true);
  SyncAndRun();
  const uint64_t digest = store_->Digest();
  const size_t alerts = store_->alert_count();
  EXPECT_EQ(alerts, 3u);  // One crossing of threshold 5 per account.
  const size_t segments_before = store_->wal().segment_bases().size();
  EXPECT_GT(segments_before, 2u);
  CheckpointAndRun();
  EXPECT_LT(store_->wal().segment_bases().size(), segments_before);
  // One more uncommitted entry after the checkpoint must survive recycling.
  AppendEvents(5, 1, kNow + 999'999);
  SyncAndRun();
  Restart();
  EXPECT_EQ(store_->Digest(), digest);
  EXPECT_EQ(store_->uncommitted_count(kPartition), 1u);
  EXPECT_EQ(store_->alert_count(), alerts);
  auto events = store_->ListEvents(5, kNow, kNow + 3'049, 1024);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 100u);  // Batches 0 and 3 (account 5), 50 each.
  EXPECT_LT((*events)[0].offset, (*events)[99].offset);
  EXPECT_EQ(store_->ListEvents(5, 0, INT64_MAX, 7)->size(), 7u);
  const auto page = store_->ListEvents(5, 0, INT64_MAX, 1024, (*events)[49].offset + 1);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->front().offset, (*events)[50].offset);  // Paging by offset.
  const auto records = *store_->ListAlerts(0, 0, 256);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].offset, 0u);
  EXPECT_EQ(records[2].offset, 2u);
  EXPECT_EQ(store_->ListAlerts(5, 0, 256)->size(), 1u);
  EXPECT_EQ(store_->ListAlerts(0, 2, 256)->size(), 1u);
}

// The applied entries kept for catch-up hold at most retained_events_max (2048) events
// beyond the newest: entries that carry many requests' parts do not make the tail grow with
// them. Older indexes are answered "not here" (the peer gets a snapshot).
TEST_F(NodeStoreTest, TheCatchUpTailIsBoundedByEventsAsWellAsEntries) {
  RegisterMetric(0);
  AppendCommittedBatches(300);  // Indexes 2..301, 10 events each.
  const uint64_t last = store_->last_index(kPartition);
  ASSERT_EQ(last, 301u);
  std::vector<LogRecord> records;
  EXPECT_TRUE(store_->EntriesFrom(kPartition, last - 203, 1000, SIZE_MAX, &records));
  EXPECT_EQ(records.size(), 204u);  // 2,040 events.
  EXPECT_TRUE(store_->EpochAt(kPartition, last - 203).has_value());
  records.clear();
  EXPECT_FALSE(store_->EntriesFrom(kPartition, last - 204, 1000, SIZE_MAX, &records));
  EXPECT_FALSE(store_->EpochAt(kPartition, last - 204).has_value());
}

TEST_F(NodeStoreTest, EventsStayListedExactlyOnceWhileACheckpointRuns) {
  RegisterMetric(1000);
  AppendCommittedBatches(20);
  ASSERT_EQ(store_->ListEvents(5, 0, INT64_MAX, 1024)->size(), 200u);
  bool done = false;
  store_->Checkpoint([&](absl::Status status) {
    EXPECT_TRUE(status.ok()) << status;
    done = true;
  });
  // Step through the checkpoint (one partition per loop turn, write-behind commits) and
  // list the events at every step: never missing, never twice.
  int checks = 0;
  while (!done && simulator_.Step()) {
    auto events = store_->ListEvents(5, 0, INT64_MAX, 1024);
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 200u);
    for (size_t i = 1; i < events->size(); ++i) {
      ASSERT_LT((*events)[i - 1].offset, (*events)[i].offset);
    }
    ++checks;
  }
  EXPECT_TRUE(done);
  EXPECT_GT(checks, 256);
  EXPECT_EQ(store_->ListEvents(5, 0, INT64_MAX, 1024)->size(), 200u);
}

TEST_F(NodeStoreTest, FlushedEventsLeaveMemoryAndSurviveReplayExactlyOnce) {
  RegisterMetric(1000);
  AppendCommittedBatches(20);
  EXPECT_EQ(store_->unsaved_event_count(), 200u);
  const size_t segments_before = store_->wal().segment_bases().size();
  bool done = false;
  store_->FlushEvents([&](absl::Status status) {
    EXPECT_TRUE(status.ok()) << status;
    done = true;
  });
  // One job at a time, whichever kind.
  bool refused = false;
  store_->Checkpoint([&](absl::Status status) {
    EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
    refused = true;
  });
  EXPECT_TRUE(refused);
  int checks = 0;
  while (!done && simulator_.Step()) {
    ASSERT_EQ(store_->ListEvents(5, 0, INT64_MAX, 1024)->size(), 200u);
    ++checks;
  }
  ASSERT_TRUE(done);
  EXPECT_GT(checks, 256);
  EXPECT_FALSE(store_->checkpoint_running());
  EXPECT_EQ(store_->unsaved_event_count(), 0u);
  EXPECT_EQ(store_->stats().event_flushes, 1u);
  EXPECT_EQ(store_->stats().checkpoints, 0u);
  EXPECT_EQ(store_->stats().events_written, 200u);
  EXPECT_EQ(store_->stats().event_groups_written, 1u);               // One account: one group.
  EXPECT_EQ(store_->wal().segment_bases().size(), segments_before);  // No recycling.
  // Read from the state store alone now.
  ASSERT_EQ(store_->ListEvents(5, 0, INT64_MAX, 1024)->size(), 200u);

  // A restart before any checkpoint replays the entries: the same events are pending again
  // and listed once (same keys), and a checkpoint writes them over themselves.
  AppendEvents(5, 10, kNow + 5'000);
  SyncAndRun();
  CommitAll(false);
  SyncAndRun();
  const uint64_t digest = store_->Digest();
  Restart();
  EXPECT_EQ(store_->Digest(), digest);
  EXPECT_EQ(store_->unsaved_event_count(), 210u);
  auto events = store_->ListEvents(5, 0, INT64_MAX, 1024);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 210u);
  for (size_t i = 1; i < events->size(); ++i) {
    ASSERT_LT((*events)[i - 1].offset, (*events)[i].offset);
  }
  CheckpointAndRun();
  EXPECT_EQ(store_->unsaved_event_count(), 0u);
  // Only the 10 events the flush had not written: the replayed 200 are not stored twice.
  EXPECT_EQ(store_->stats().events_written, 10u);
  EXPECT_EQ(store_->ListEvents(5, 0, INT64_MAX, 1024)->size(), 210u);
  Restart();
  EXPECT_EQ(store_->unsaved_event_count(), 0u);
  EXPECT_EQ(store_->ListEvents(5, 0, INT64_MAX, 1024)->size(), 210u);
  EXPECT_EQ(store_->Digest(), digest);
}

TEST_F(NodeStoreTest, AnAccountsEventsAreStoredInGroupsAndPagedAcrossThem) {
  RegisterMetric(1000);
  AppendCommittedBatches(60);  // 600 events of account 5: groups of 256, 256 and 88.
  AppendEvents(5 + kPartitionCount, 3, kNow);  // Another account of the partition.
  SyncAndRun();
  CommitAll(false);
  FlushEventsAndRun();
  EXPECT_EQ(store_->stats().events_written, 603u);
  EXPECT_EQ(store_->stats().event_groups_written, 4u);
  CheckpointAndRun();
  EXPECT_EQ(store_->stats().events_written, 603u);  // Nothing twice.
  Restart();  // Nothing replayed: listed from the state store alone.
  EXPECT_EQ(store_->unsaved_event_count(), 0u);
  auto all = store_->ListEvents(5, 0, INT64_MAX, 1024);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 600u);
  // Pages of 100 from any offset: each starts where the last ended, inside or across groups.
  std::vector<StoredEvent> paged;
  uint64_t next = 0;
  while (true) {
    auto page = store_->ListEvents(5, 0, INT64_MAX, 100, next);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    paged.insert(paged.end(), page->begin(), page->end());
    next = page->back().offset + 1;
  }
  EXPECT_EQ(paged, *all);
  const auto from_middle = store_->ListEvents(5, 0, INT64_MAX, 5, (*all)[300].offset);
  ASSERT_TRUE(from_middle.ok());
  ASSERT_EQ(from_middle->size(), 5u);
  EXPECT_EQ(from_middle->front(), (*all)[300]);
  EXPECT_EQ(store_->ListEvents(5 + kPartitionCount, 0, INT64_MAX, 1024)->size(), 3u);
  // A time range inside one group.
  EXPECT_EQ(store_->ListEvents(5, kNow + 100, kNow + 109, 1024)->size(), 10u);
}

TEST_F(NodeStoreTest, AlertsRecordedOnlyByTheOwnerAndSurviveCrashes) {
  RegisterMetric(1);  // Every account's first event crosses it.
  AppendEvents(5, 1, kNow);
  SyncAndRun();
  // Applied as a backup: the crossing happens (alert_flags) but is not recorded here.
  EXPECT_TRUE(store_->Commit(kPartition, 2, false).empty());
  pending_.RetireApplied(store_->state(kPartition).next_offset());
  EXPECT_EQ(store_->alert_count(), 0u);
  EXPECT_EQ(store_->state(kPartition).QueryUsage(5, "api_calls", 0, INT64_MAX, {})->alert_flags,
            1u);
  AppendEvents(261, 1, kNow + 1);
  SyncAndRun();
  const std::vector<AlertRecord> recorded = store_->Commit(kPartition, 3, true);
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].crossing.account_id, 261u);
  SyncAndRun();
  Restart();
  EXPECT_EQ(store_->alert_count(), 1u);
  EXPECT_EQ(store_->ListAlerts(261, 0, 10)->at(0).crossing.metric_code, "api_calls");
  EXPECT_TRUE(store_->ListAlerts(5, 0, 10)->empty());
}

TEST_F(NodeStoreTest, UnconfirmedCrossingsAreRecordedOnceByTheNextOwner) {
  RegisterMetric(1);
  AppendEvents(261, 1, kNow);
  SyncAndRun();
  ASSERT_EQ(store_->Commit(kPartition, 2, true).size(), 1u);
  Restart();  // Neither the record nor the commit mark was synced.
  EXPECT_EQ(store_->alert_count(), 0u);
  CommitAll(false);  // Committed again; here as a replica of the next owner.
  ASSERT_EQ(store_->state(kPartition).unconfirmed_crossings().size(), 1u);
  // This node becomes the owner: the crossing is recorded, and only once.
  const std::vector<AlertRecord> recorded = store_->RecordUnconfirmed(kPartition);
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].crossing.account_id, 261u);
  EXPECT_TRUE(store_->RecordUnconfirmed(kPartition).empty());
  SyncAndRun();
  Restart();  // The alert log holds it (replayed from the WAL).
  EXPECT_TRUE(store_->RecordUnconfirmed(kPartition).empty());
  CheckpointAndRun();
  Restart();  // The alert log holds it (read from the state store).
  ASSERT_EQ(store_->state(kPartition).unconfirmed_crossings().size(), 1u);
  EXPECT_TRUE(store_->RecordUnconfirmed(kPartition).empty());
  EXPECT_EQ(store_->alert_count(), 1u);
  // Confirmed through the log: no replica keeps it any more.
  ASSERT_TRUE(
      store_
          ->Append(kPartition, store_->last_index(kPartition) + 1, 1,
                   std::make_shared<metering::LogEntry>(metering::LogEntry::RecordedAlerts(2)))
          .ok());
  SyncAndRun();
  CommitAll(false);
  EXPECT_TRUE(store_->state(kPartition).unconfirmed_crossings().empty());
  EXPECT_TRUE(store_->RecordUnconfirmed(kPartition).empty());
}

TEST_F(NodeStoreTest, ADamagedAlertRecordFailsTheListingInsteadOfVanishing) {
  RegisterMetric(1);
  AppendEvents(261, 1, kNow);
  SyncAndRun();
  ASSERT_EQ(store_->Commit(kPartition, 2, true).size(), 1u);
  SyncAndRun();
  CheckpointAndRun();  // The record moves to the state store.
  store_.reset();
  env_.reset();
  ASSERT_TRUE(disk_.state_medium().CorruptValueAtRest(std::string("a") + std::string(8, '\0')));
  Restart();
  const absl::StatusOr<std::vector<AlertRecord>> listed = store_->ListAlerts(0, 0, 10);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kDataLoss) << listed.status();
  EXPECT_TRUE(store_->ListAlerts(0, 1, 10).ok());  // Past the damage.
  // With an intact copy (a cluster keeps one of every record), the copy answers.
  const metering::AlertCrossing copy{261, "api_calls", 0, "t", 1, kNow, 0};
  std::vector<uint64_t> asked;
  const absl::StatusOr<std::vector<AlertRecord>> repaired =
      store_->ListAlerts(0, 0, 10, [&](uint64_t offset) -> std::optional<metering::AlertCrossing> {
        asked.push_back(offset);
        return copy;
      });
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  ASSERT_EQ(repaired->size(), 1u);
  EXPECT_EQ((*repaired)[0], (AlertRecord{0, copy}));
  EXPECT_EQ(asked, std::vector<uint64_t>{0});
  // No copy: DataLoss as before.
  EXPECT_EQ(
      store_
          ->ListAlerts(0, 0, 10, [](uint64_t) { return std::optional<metering::AlertCrossing>(); })
          .status()
          .code(),
      absl::StatusCode::kDataLoss);
}

TEST_F(NodeStoreTest, ARestoredAlertLogKeepsItsOffsetsAndContinuesAfterThem) {
  const metering::AlertCrossing a{5, "m", 0, "t", 1, kNow, 3};
  const metering::AlertCrossing b{6, "m", 1, "u", 2, kNow, 4};
  bool done = false;
  // Offset 1 was deleted by retention; the highest copy end was 7.
  store_->RestoreAlerts({AlertRecord{0, a}, AlertRecord{2, b}}, 7, [&](absl::Status status) {
    EXPECT_TRUE(status.ok()) << status;
    done = true;
  });
  ASSERT_TRUE(simulator_.RunUntil([&] { return done; }, simulator_.now_ns() + kSecond));
  EXPECT_EQ(store_->alert_count(), 7u);
  absl::StatusOr<std::vector<AlertRecord>> listed = store_->ListAlerts(0, 0, 10);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, (std::vector<AlertRecord>{{0, a}, {2, b}}));
  // New records continue at 7, and all of it survives a restart (WAL and state store).
  RegisterMetric(1);
  AppendEvents(261, 1, kNow);
  SyncAndRun();
  const std::vector<AlertRecord> recorded = store_->Commit(kPartition, 2, true);
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].offset, 7u);
  SyncAndRun();
  Restart();
  EXPECT_EQ(store_->alert_count(), 8u);
  listed = store_->ListAlerts(0, 0, 10);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[1], (AlertRecord{2, b}));
  EXPECT_EQ((*listed)[2].offset, 7u);
}

TEST_F(NodeStoreTest, AlertRecordsRolledBackByAFullDiskWaitForACheckpoint) {
  preallocate_ = false;
  Restart();
  RegisterMetric(1);
  AppendEvents(261, 1, kNow);
  SyncAndRun();
  ASSERT_EQ(store_->Commit(kPartition, 2, true).size(), 1u);
  EXPECT_FALSE(store_->alerts_unlogged());
  disk_.options().capacity_bytes = disk_.used_bytes();  // The next sync finds no space.
  bool done = false;
  absl::Status result;
  store_->Sync([&](absl::Status status) {
    result = status;
    done = true;
  });
  ASSERT_TRUE(simulator_.RunUntil([&] { return done; }, simulator_.now_ns() + kSecond));
  EXPECT_TRUE(absl::IsResourceExhausted(result)) << result;
  // The record was rolled back with the WAL's tail: only memory holds it now.
  EXPECT_TRUE(store_->alerts_unlogged());
  disk_.options().capacity_bytes = sim::DiskOptions{}.capacity_bytes;
  CheckpointAndRun();
  EXPECT_FALSE(store_->alerts_unlogged());
  Restart();
  EXPECT_EQ(store_->ListAlerts(261, 0, 10)->size(), 1u);
}

TEST_F(NodeStoreTest, RetentionDeletesExpiredStoredEvents) {
  RegisterMetric(1000);
  AppendEvents(5, 10, kNow);                  // Old.
  AppendEvents(5, 10, kNow + 100 * kSecond);  // New.
  SyncAndRun();
  CommitAll(false);
  CheckpointAndRun();             // Both batches are in the state store now.
  AppendEvents(5, 10, kNow + 1);  // Old and not yet stored when the sweep runs: never written.
  SyncAndRun();
  CommitAll(false);
  ASSERT_TRUE(store_
                  ->Append(kPartition, store_->last_index(kPartition) + 1, 1,
                           std::make_shared<metering::LogEntry>(
                               metering::LogEntry::Retention(kNow + 50 * kSecond)))
                  .ok());
  SyncAndRun();
  CommitAll(false);
  FlushEventsAndRun();
  EXPECT_EQ(store_->stats().events_expired, 10u);  // A flush sweeps too.
  CheckpointAndRun();
  EXPECT_EQ(store_->stats().events_expired, 10u);
  auto events = store_->ListEvents(5, 0, INT64_MAX, 1024);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 10u);
  EXPECT_GE((*events)[0].timestamp_ns, kNow + 100 * kSecond);
}

TEST(NodeStoreEncoding, RecordsRoundTrip) {
  StoredEvent event{7, -3, 42, "api_calls", 9, 2, true, true, {{"provider", "aws"}, {"k", ""}}};
  StoredEvent later{9, 5, 42, "m", 1, 0, false, false, {}};
  std::vector<StoredEvent> decoded;
  ASSERT_TRUE(DecodeStoredEvents(EncodeStoredEvents({event, later}), &decoded).ok());
  EXPECT_EQ(decoded, (std::vector<StoredEvent>{event, later}));
  // Version 1 (one event per key, written before groups) is still read.
  ASSERT_TRUE(DecodeStoredEvents(EncodeStoredEventVersion1(event), &decoded).ok());
  EXPECT_EQ(decoded, std::vector<StoredEvent>{event});
  AlertRecord record{3, {42, "m", 1, "t", 100, 5, 77}};
  EXPECT_EQ(*DecodeAlertRecord(EncodeAlertRecord(record)), record);
  EXPECT_FALSE(DecodeStoredEvents("x", &decoded).ok());
  // A group must hold one account's events in ascending offsets, with its count exact.
  EXPECT_TRUE(absl::IsDataLoss(DecodeStoredEvents(EncodeStoredEvents({later, event}), &decoded)));
  StoredEvent other_account = later;
  other_account.account_id = 43;
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeStoredEvents(EncodeStoredEvents({event, other_account}), &decoded)));
  std::string short_group = EncodeStoredEvents({event, later});
  short_group[1] = 3;  // Count (u16 little-endian) says 3: the bytes run out.
  EXPECT_TRUE(absl::IsDataLoss(DecodeStoredEvents(short_group, &decoded)));
  short_group[1] = 0;  // No events.
  EXPECT_TRUE(absl::IsDataLoss(DecodeStoredEvents(short_group, &decoded)));
  std::string truncated = EncodeAlertRecord(record);
  truncated.pop_back();
  EXPECT_FALSE(DecodeAlertRecord(truncated).ok());
  // Keys order by account, then offset.
  EXPECT_LT(StoredEventKey(1, 2, 300), StoredEventKey(1, 3, 1));
  EXPECT_LT(StoredEventKey(1, 2, 255), StoredEventKey(1, 2, 256));
}

}  // namespace
}  // namespace unimeter
