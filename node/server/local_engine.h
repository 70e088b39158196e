// node/server/local_engine.h
//
// LocalEngine runs every partition on this node alone: the dev-mode cluster of one, where
// a quorum is one node, so an entry is committed once it is durable here.
//
// Pipeline (group commit, no added latency when idle): Ingest stages a part; at the end of
// the loop turn (a zero-delay timer) the parts each partition got are accepted together
// (dedup, timestamps, offsets decided by the partition state, PartitionState::AcceptParts)
// as one entry appended to the WAL, ASYNC parts are acknowledged, and a sync is asked for. If no
// sync is in flight one starts now; otherwise one more starts as soon as the current one completes,
// covering everything appended meanwhile (one fdatasync for many requests). When a sync completes,
// the covered entries are committed and applied and the SYNC requests they carry are
// acknowledged. Alert records made by those commits are pushed after the sync that makes
// them durable.
//
// Schema changes are appended to all 256 partition logs; ingests that arrive while one is
// in flight wait for it (an owner accepts events only under applied schemas).
//
// Bounds: at most options.pending_events_max events accepted and not yet committed (or one
// request of any size when none are), checked as a part arrives (the parts staged in one
// loop turn may pass it together); more get ResourceExhausted (BACKPRESSURE). A full disk rolls
// the WAL back: the affected entries are truncated, SYNC requests get ResourceExhausted (nothing
// accepted) and ASYNC ones were accepted and are lost (the documented ASYNC window). Any other sync
// error crashes the node.
#ifndef UNIMETER_NODE_SERVER_LOCAL_ENGINE_H_
#define UNIMETER_NODE_SERVER_LOCAL_ENGINE_H_

#include <array>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "node/env/env.h"
#include "node/observability/metrics.h"
#include "node/server/engine.h"
#include "node/server/engine_support.h"
#include "node/store/node_store.h"

namespace unimeter {

struct LocalEngineOptions {
  NodeStoreOptions store;
  size_t pending_events_max = 1'000'000;
  CheckpointPolicy checkpoint;
  // Applying what one WAL sync made durable runs in slices of about this many events, one
  // slice per event-loop turn, so requests (queries above all) are served in between
  // instead of waiting for a whole sync's worth of batches.
  uint64_t commit_events_per_slice = 100;
};

// Counters and histograms the engine maintains (registered by the server).
struct EngineMetrics {
  Counter* wal_syncs = nullptr;
  Counter* wal_writes = nullptr;
  Histogram* wal_sync_duration = nullptr;
  Counter* alerts_recorded = nullptr;
};

class LocalEngine final : public Engine {
 public:
  // Opens the NodeStore (recovery) and commits the recovered uncommitted suffix.
  static absl::StatusOr<std::unique_ptr<LocalEngine>> Open(Env& env, LocalEngineOptions options,
                                                           EngineMetrics metrics);
  ~LocalEngine() override;

  void Ingest(uint32_t partition, std::vector<metering::Event> events, IngestMode mode,
              IngestDone done) override;
  void Read(uint32_t partition, ReadFunction read) override;
  void PutMetric(metering::MetricSchema schema, StatusDone done) override;
  void DeleteMetric(std::string code, StatusDone done) override;
  absl::StatusOr<std::vector<StoredEvent>> ListEvents(uint64_t account_id, int64_t since_ns,
                                                      int64_t until_ns, size_t limit,
                                                      uint64_t first_offset) const override;
  absl::StatusOr<std::vector<AlertRecord>> ListAlerts(uint64_t account_id, uint64_t since_offset,
                                                      size_t limit) const override;
  size_t alerts_unreleased() const override { return alerts_.unreleased(); }
  void SetAlertsDurable(AlertsDurable on_durable) override {
    on_alerts_durable_ = std::move(on_durable);
  }
  void SweepRetention(int64_t cutoff_ns, StatusDone done) override;
  void SetWritesBlocked(bool blocked) override { writes_blocked_ = blocked; }
  uint32_t node_count() const override { return 1; }
  NodeId owner(uint32_t) const override { return env_.node_id(); }
  bool ready() const override { return true; }
  const NodeStore& store() const override { return *store_; }

  // Runs a checkpoint now (tests, graceful shutdown); `done` gets its outcome.
  void Checkpoint(StatusDone done) override;
  size_t pending_events() const { return pending_events_; }

 private:
  // A request (or schema / retention change) waiting for its entries to commit.
  struct Waiter {
    // (partition, index) it needs: one for an ingest part, so stored inline.
    absl::InlinedVector<std::pair<uint32_t, uint64_t>, 1> entries;
    IngestMode mode = IngestMode::kSync;
    metering::IngestResult result;
    IngestDone ingest_done;  // Set for ingests.
    StatusDone status_done;  // Set for schema and retention changes.
    size_t events = 0;
    bool schema_change = false;
  };
  struct DeferredIngest {
    uint32_t partition;
    std::vector<metering::Event> events;
    IngestMode mode;
    IngestDone done;
  };

  LocalEngine(Env& env, LocalEngineOptions options, EngineMetrics metrics,
              std::unique_ptr<NodeStore> store);
  // Stages a part for AcceptStaged (the checks of Ingest passed).
  void Stage(DeferredIngest ingest);
  // Accepts every staged part, one entry per partition (up to an entry's bounds).
  void AcceptStaged();
  // Accepts parts [begin, end) of `parts`, all of one partition, as one entry.
  void AcceptTogether(std::vector<DeferredIngest>& parts, size_t begin, size_t end);
  // Appends `entry` to every partition log and waits for all of them to commit.
  void AppendEverywhere(std::shared_ptr<const metering::LogEntry> entry, bool schema_change,
                        StatusDone done);
  void RequestSync();
  void StartSync();
  // Starts a sync if none runs and writes or alert records wait for one.
  void StartSyncIfWanted();
  void OnSynced(absl::Status status, std::array<uint64_t, kPartitionCount> covered,
                size_t alerts_covered, int64_t started_ns);
  // Appends an AlertsRecorded entry for each partition whose recorded crossings are durable.
  void ConfirmRecordedAlerts();
  // Runs one slice of the commit job and schedules the next (a zero-delay timer, so the
  // loop serves requests in between), or finishes the job.
  void RunCommitJob();
  // Commits the job's next partitions until about `budget` events and entries were applied;
  // true once every partition reached its target.
  bool CommitSlice(uint64_t budget);
  // The job is done: answers waiters and runs ingests deferred behind schema changes.
  void FinishCommitJob();
  std::array<uint64_t, kPartitionCount> CommitIndexes() const;
  void RollBack(const std::array<uint64_t, kPartitionCount>& covered);
  void CompleteWaiters(const std::array<uint64_t, kPartitionCount>& committed);
  void RunDeferredIngests();

  Env& env_;
  const LocalEngineOptions options_;
  EngineMetrics metrics_;
  std::unique_ptr<NodeStore> store_;
  std::array<metering::PendingDedup, kPartitionCount> pending_dedup_;
  std::deque<Waiter> waiters_;
  std::deque<DeferredIngest> deferred_;
  std::array<std::vector<DeferredIngest>, kPartitionCount> staged_;  // Parts by partition.
  std::vector<uint32_t> staged_partitions_;  // With staged parts, first staged first.
  TimerId accept_timer_ = kNoTimer;
  DurableAlerts alerts_;
  AlertsDurable on_alerts_durable_;
  size_t pending_events_ = 0;
  int schema_changes_in_flight_ = 0;
  bool writes_blocked_ = false;
  bool sync_in_flight_ = false;
  bool sync_requested_ = false;
  std::array<uint64_t, kPartitionCount> sync_covered_{};  // Last indexes the running sync covers.
  // The commit of what completed syncs covered, applied slice by slice while the next sync
  // runs. A later sync's completion raises the targets and rescans from partition 0.
  struct CommitJob {
    std::array<uint64_t, kPartitionCount> covered{};
    uint32_t next_partition = 0;
    bool running = false;
  };
  CommitJob commit_job_;
  TimerId commit_timer_ = kNoTimer;
  std::unique_ptr<CheckpointTimer> checkpoint_timer_;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_LOCAL_ENGINE_H_
