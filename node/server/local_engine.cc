#include "node/server/local_engine.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/planted_bugs.h"

namespace unimeter {
namespace {

constexpr uint64_t kLocalEpoch = 1;  // A single node never changes owner.

}  // namespace

absl::StatusOr<std::unique_ptr<LocalEngine>> LocalEngine::Open(Env& env, LocalEngineOptions options,
                                                               EngineMetrics metrics) {
  absl::StatusOr<std::unique_ptr<NodeStore>> store = NodeStore::Open(env, options.store);
  if (!store.ok()) {
    return store.status();
  }
  std::unique_ptr<LocalEngine> engine(
      new LocalEngine(env, std::move(options), metrics, std::move(*store)));
  NodeStore& node_store = *engine->store_;
  engine->alerts_.Reset(node_store.alert_count());
  // A quorum of one: whatever is durable here is committed. Recovered uncommitted entries
  // were durable, and possibly acknowledged, so they commit now. Crossings not confirmed
  // before the restart are recorded unless the alert log kept them.
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    if (node_store.last_index(partition) > node_store.commit_index(partition)) {
      engine->alerts_.Add(node_store.Commit(partition, node_store.last_index(partition), true));
    }
    RecordUnconfirmedCrossings(node_store, engine->alerts_, partition);
  }
  engine->checkpoint_timer_ =
      std::make_unique<CheckpointTimer>(env, *engine->store_, engine->options_.checkpoint);
  engine->RequestSync();  // Makes the recovery's commit marks durable.
  return engine;
}

LocalEngine::LocalEngine(Env& env, LocalEngineOptions options, EngineMetrics metrics,
                         std::unique_ptr<NodeStore> store)
    : env_(env), options_(std::move(options)), metrics_(metrics), store_(std::move(store)) {}

LocalEngine::~LocalEngine() {
  env_.CancelTimer(commit_timer_);
  env_.CancelTimer(accept_timer_);
}

void LocalEngine::Ingest(uint32_t partition, std::vector<metering::Event> events, IngestMode mode,
                         IngestDone done) {
  UM_CHECK_LT(partition, kPartitionCount);
  if (writes_blocked_) {
    done(absl::ResourceExhaustedError("free disk space below the threshold"));
    return;
  }
  // Staged parts do not count: they are not accepted yet, and counting them would refuse a
  // part larger than the bound forever while smaller ones arrive every turn.
  if (PendingBoundExceeded(pending_events_, events.size(), options_.pending_events_max)) {
    done(absl::ResourceExhaustedError("too many events waiting for commit"));
    return;
  }
  if (schema_changes_in_flight_ > 0) {
    deferred_.push_back(DeferredIngest{partition, std::move(events), mode, std::move(done)});
    return;
  }
  Stage(DeferredIngest{partition, std::move(events), mode, std::move(done)});
}

void LocalEngine::Stage(DeferredIngest ingest) {
  std::vector<DeferredIngest>& staged = staged_[ingest.partition];
  if (staged.empty()) staged_partitions_.push_back(ingest.partition);
  staged.push_back(std::move(ingest));
  if (accept_timer_ != kNoTimer) return;
  accept_timer_ = env_.StartTimer(0, [this] {
    accept_timer_ = kNoTimer;
    AcceptStaged();
  });
}

void LocalEngine::AcceptStaged() {
  // Parts answered below may stage new ones: those wait for the next timer.
  std::vector<uint32_t> partitions = std::exchange(staged_partitions_, {});
  for (const uint32_t partition : partitions) {
    std::vector<DeferredIngest> parts = std::exchange(staged_[partition], {});
    if (writes_blocked_) {
      for (DeferredIngest& part : parts) {
        part.done(absl::ResourceExhaustedError("free disk space below the threshold"));
      }
      continue;
    }
    if (schema_changes_in_flight_ > 0) {  // Began since staging: accepted once applied.
      for (DeferredIngest& part : parts) deferred_.push_back(std::move(part));
      continue;
    }
    for (size_t begin = 0; begin < parts.size();) {
      const size_t end = EntryPartsEnd(
          begin, parts.size(), [&parts](size_t i) -> const auto& { return parts[i].events; });
      AcceptTogether(parts, begin, end);
      begin = end;
    }
  }
}

void LocalEngine::AcceptTogether(std::vector<DeferredIngest>& parts, size_t begin, size_t end) {
  const uint32_t partition = parts[begin].partition;
  std::vector<absl::Span<const metering::Event>> spans;
  spans.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) spans.emplace_back(parts[i].events);
  AppendedParts appended = AcceptAndAppend(*store_, pending_dedup_[partition], partition,
                                           kLocalEpoch, spans, env_.WallNowNs());
  const uint64_t index = appended.index;
  if (index != 0 && metrics_.wal_writes != nullptr) metrics_.wal_writes->Increment();
  const uint64_t last = store_->last_index(partition);
  for (size_t i = begin; i < end; ++i) {
    DeferredIngest& part = parts[i];
    absl::StatusOr<metering::IngestResult>& result = appended.results[i - begin];
    if (!result.ok()) {
      part.done(result.status());
      continue;
    }
    Waiter waiter;
    if (result->n_stored == 0) {
      // Nothing stored (all duplicates). The verdict may rest on entries not yet durable
      // (this turn's entry among them): answer once they are (if a full disk drops them,
      // this request fails with them).
      if (last == store_->commit_index(partition) || part.mode == IngestMode::kAsync) {
        part.done(*std::move(result));
        continue;
      }
      waiter.entries.push_back({partition, last});
      waiter.mode = IngestMode::kSync;
      waiter.result = *std::move(result);
      waiter.ingest_done = std::move(part.done);
      waiters_.push_back(std::move(waiter));
      continue;
    }
    waiter.entries.push_back({partition, index});
    waiter.mode = part.mode;
    waiter.events = part.events.size();
    pending_events_ += waiter.events;
    if (part.mode == IngestMode::kAsync || BugPlanted(PlantedBug::kAckBeforeFsync)) {
      part.done(*result);  // Accepted into the pipeline: the ASYNC acknowledgement point.
    } else {
      waiter.result = *std::move(result);
      waiter.ingest_done = std::move(part.done);
    }
    waiters_.push_back(std::move(waiter));
  }
  if (index != 0) RequestSync();
}

void LocalEngine::Read(uint32_t partition, ReadFunction read) {
  UM_CHECK_LT(partition, kPartitionCount);
  // The only owner is this node and every acknowledged SYNC write is applied before its
  // acknowledgement, so the current state is a valid answer.
  read(&store_->state(partition));
}

void LocalEngine::PutMetric(metering::MetricSchema schema, StatusDone done) {
  absl::StatusOr<metering::SchemaRef> compiled =
      metering::CompiledSchema::Create(std::move(schema));
  if (!compiled.ok()) {
    done(compiled.status());
    return;
  }
  AppendEverywhere(std::make_shared<metering::LogEntry>(metering::LogEntry::Put(*compiled)), true,
                   std::move(done));
}

void LocalEngine::DeleteMetric(std::string code, StatusDone done) {
  AppendEverywhere(
      std::make_shared<metering::LogEntry>(metering::LogEntry::Delete(std::move(code))), true,
      std::move(done));
}

void LocalEngine::SweepRetention(int64_t cutoff_ns, StatusDone done) {
  AppendEverywhere(std::make_shared<metering::LogEntry>(metering::LogEntry::Retention(cutoff_ns)),
                   false, std::move(done));
}

void LocalEngine::AppendEverywhere(std::shared_ptr<const metering::LogEntry> entry,
                                   bool schema_change, StatusDone done) {
  if (writes_blocked_) {
    done(absl::ResourceExhaustedError("free disk space below the threshold"));
    return;
  }
  Waiter waiter;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    const uint64_t index = store_->last_index(partition) + 1;
    const absl::Status appended = store_->Append(partition, index, kLocalEpoch, entry);
    if (!appended.ok()) {
      // Partly appended: the change is in an unknown state until the WAL recovers; the
      // entries already appended commit with the next sync.
      done(absl::UnknownError(absl::StrCat("log full: ", appended.message())));
      waiter.schema_change = false;
      waiters_.push_back(std::move(waiter));
      RequestSync();
      return;
    }
    waiter.entries.push_back({partition, index});
  }
  waiter.status_done = std::move(done);
  waiter.schema_change = schema_change;
  if (schema_change) {
    ++schema_changes_in_flight_;
  }
  waiters_.push_back(std::move(waiter));
  RequestSync();
}

absl::StatusOr<std::vector<StoredEvent>> LocalEngine::ListEvents(uint64_t account_id,
                                                                 int64_t since_ns, int64_t until_ns,
                                                                 size_t limit,
                                                                 uint64_t first_offset) const {
  return store_->ListEvents(account_id, since_ns, until_ns, limit, first_offset);
}

absl::StatusOr<std::vector<AlertRecord>> LocalEngine::ListAlerts(uint64_t account_id,
                                                                 uint64_t since_offset,
                                                                 size_t limit) const {
  absl::StatusOr<std::vector<AlertRecord>> records =
      store_->ListAlerts(account_id, since_offset, limit);
  if (records.ok()) alerts_.TrimToReleased(&*records);  // Listed once durable (7.2).
  return records;
}

void LocalEngine::RequestSync() {
  if (sync_in_flight_) {
    sync_requested_ = true;
    return;
  }
  StartSync();
}

void LocalEngine::StartSync() {
  UM_CHECK(!sync_in_flight_);
  sync_in_flight_ = true;
  sync_requested_ = false;
  // A member, not a capture: a 2 KiB closure would be a large heap block per sync.
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    sync_covered_[partition] = store_->last_index(partition);
  }
  const size_t alerts_covered = alerts_.waiting();
  const int64_t started_ns = env_.MonotonicNowNs();
  store_->Sync([this, alerts_covered, started_ns](absl::Status status) {
    OnSynced(std::move(status), sync_covered_, alerts_covered, started_ns);
  });
}

void LocalEngine::OnSynced(absl::Status status, std::array<uint64_t, kPartitionCount> covered,
                           size_t alerts_covered, int64_t started_ns) {
  UM_CHECK(sync_in_flight_);
  sync_in_flight_ = false;
  if (metrics_.wal_syncs != nullptr) {
    metrics_.wal_syncs->Increment();
    metrics_.wal_sync_duration->ObserveNs(env_.MonotonicNowNs() - started_ns);
  }
  if (absl::IsResourceExhausted(status)) {
    env_.Log(absl::StrCat("wal sync failed, disk full: ", status.ToString()));
    // Entries covered by earlier syncs are durable: commit them before the roll-back drops
    // every uncommitted entry.
    if (commit_job_.running) {
      env_.CancelTimer(commit_timer_);
      commit_timer_ = kNoTimer;
      UM_CHECK(CommitSlice(UINT64_MAX));
      FinishCommitJob();
    }
    RollBack(covered);
  } else {
    // An fsync error: the page cache cannot be trusted. Crash and recover from disk.
    if (FailStopOnError(env_, status, "WAL sync")) return;
    // Records appended before this sync started are durable now: push them, and confirm
    // the crossings they record.
    alerts_.Synced(alerts_covered, on_alerts_durable_);
    ConfirmRecordedAlerts();
    // Apply what the sync covered, slice by slice; a job still running takes the new
    // targets (each sync covers at least what the one before it did).
    commit_job_.covered = covered;
    commit_job_.next_partition = 0;
    if (!commit_job_.running) {
      commit_job_.running = true;
      RunCommitJob();
    }
  }
  // The next sync may run while the job applies: it covers only entries appended since.
  StartSyncIfWanted();
}

void LocalEngine::StartSyncIfWanted() {
  if (!sync_in_flight_ && (sync_requested_ || alerts_.waiting() > 0)) {
    StartSync();
  }
}

void LocalEngine::RunCommitJob() {
  if (!CommitSlice(options_.commit_events_per_slice)) {
    commit_timer_ = env_.StartTimer(0, [this] {
      commit_timer_ = kNoTimer;
      RunCommitJob();
    });
    return;
  }
  FinishCommitJob();
  StartSyncIfWanted();
}

bool LocalEngine::CommitSlice(uint64_t budget) {
  uint64_t applied = 0;  // Events plus entries, so entries without events count too.
  while (commit_job_.next_partition < kPartitionCount) {
    if (applied >= budget) return false;
    const uint32_t partition = commit_job_.next_partition++;
    const uint64_t target = commit_job_.covered[partition];
    const uint64_t commit_before = store_->commit_index(partition);
    if (target <= commit_before) continue;
    const uint64_t offset_before = store_->state(partition).next_offset();
    std::vector<AlertRecord> alerts = store_->Commit(partition, target, true);
    pending_dedup_[partition].RetireApplied(store_->state(partition).next_offset());
    applied += store_->state(partition).next_offset() - offset_before + (target - commit_before);
    if (!alerts.empty()) {
      if (metrics_.alerts_recorded != nullptr) metrics_.alerts_recorded->Increment(alerts.size());
      alerts_.Add(alerts);
      alerts_.NoteRecorded(partition, store_->commit_index(partition));
    }
  }
  return true;
}

void LocalEngine::FinishCommitJob() {
  commit_job_.running = false;
  CompleteWaiters(CommitIndexes());
  if (schema_changes_in_flight_ == 0) {
    RunDeferredIngests();
  }
}

std::array<uint64_t, kPartitionCount> LocalEngine::CommitIndexes() const {
  std::array<uint64_t, kPartitionCount> committed;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    committed[partition] = store_->commit_index(partition);
  }
  return committed;
}

void LocalEngine::ConfirmRecordedAlerts() {
  AppendAlertConfirmations(
      env_, *store_, alerts_, [](uint32_t) { return std::optional<uint64_t>(kLocalEpoch); },
      [this] { sync_requested_ = true; });  // Committed by a later sync.
}

void LocalEngine::CompleteWaiters(const std::array<uint64_t, kPartitionCount>& committed) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    bool done = true;
    for (const auto& [partition, index] : it->entries) {
      done = done && committed[partition] >= index;
    }
    if (!done) {
      ++it;
      continue;
    }
    Waiter waiter = std::move(*it);
    it = waiters_.erase(it);
    pending_events_ -= waiter.events;
    if (waiter.schema_change) {
      UM_CHECK_GT(schema_changes_in_flight_, 0);
      --schema_changes_in_flight_;
    }
    if (waiter.ingest_done) {
      waiter.ingest_done(std::move(waiter.result));
    } else if (waiter.status_done) {
      waiter.status_done(absl::OkStatus());
    }
  }
}

void LocalEngine::RollBack(const std::array<uint64_t, kPartitionCount>& covered) {
  // The WAL discarded every record that was not durable: the uncommitted suffix of every
  // partition is gone. Drop it from memory and log the truncation.
  (void)covered;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    if (store_->last_index(partition) > store_->commit_index(partition)) {
      store_->TruncateAfter(partition, store_->commit_index(partition));
    }
    pending_dedup_[partition].Clear();
  }
  while (!waiters_.empty()) {
    Waiter waiter = std::move(waiters_.front());
    waiters_.pop_front();
    pending_events_ -= waiter.events;
    if (waiter.schema_change) {
      --schema_changes_in_flight_;
    }
    const absl::Status full = absl::ResourceExhaustedError("disk full: nothing was accepted");
    if (waiter.ingest_done) {
      waiter.ingest_done(full);
    } else if (waiter.status_done) {
      waiter.status_done(full);
    }
  }
  UM_CHECK_EQ(pending_events_, 0u);
  sync_requested_ = true;  // Make the truncation records durable.
}

void LocalEngine::RunDeferredIngests() {
  while (!deferred_.empty() && schema_changes_in_flight_ == 0) {
    DeferredIngest ingest = std::move(deferred_.front());
    deferred_.pop_front();
    Stage(std::move(ingest));
  }
}

void LocalEngine::Checkpoint(StatusDone done) { store_->Checkpoint(std::move(done)); }

}  // namespace unimeter
