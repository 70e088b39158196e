// node/store/node_store.h
//
// NodeStore is one node's durable state for all 256 partitions:
//   - each partition's log: entries (index, epoch, metering LogEntry) in the node's WAL;
//   - each partition's materialised PartitionState, applied up to its commit index;
//   - the stored events of every applied batch (for EVENTS_LIST) and this node's alert
//     log (crossings it recorded while owning a partition);
//   - checkpoints of all of the above in the StateStore, after which WAL segments that
//     hold nothing uncheckpointed are recycled.
//
// NodeStore does not decide what is committed. The replication layer (or, in single-node
// mode, the local group commit: a quorum of one) appends entries, makes them durable with
// Sync(), and calls Commit() when they are committed; Commit applies them in index order.
// Commit marks are logged, so a restart re-applies exactly what was known committed; the
// uncommitted suffix is recovered too and left for the replication layer to settle
// (commit or truncate).
//
// WAL record kinds (docs/formats/node_store.md): 1 entry, 2 commit mark, 3 truncate,
// 4 alert record. StateStore keys: "p<pp>m" meta and "p<pp>s" snapshot per partition,
// "e<pp><account be64><offset be64>" stored events, "a<offset be64>" alert records,
// "n" node meta.
//
// Event-loop only. Every Env failure that leaves memory ahead of disk (a failed commit
// of the state store, a fatal WAL sync error) is fatal: callers crash the node.
#ifndef UNIMETER_NODE_STORE_NODE_STORE_H_
#define UNIMETER_NODE_STORE_NODE_STORE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/env/env.h"
#include "node/metering/log_entry.h"
#include "node/metering/partition_state.h"
#include "storage/state_store.h"
#include "storage/wal.h"

namespace unimeter {

inline constexpr uint32_t kPartitionCount = 256;

// WAL record kinds owned by NodeStore (1..99; the replication layer uses 100 and up).
inline constexpr uint16_t kWalKindEntry = 1;
inline constexpr uint16_t kWalKindCommitMark = 2;
inline constexpr uint16_t kWalKindTruncate = 3;
inline constexpr uint16_t kWalKindAlert = 4;

struct NodeStoreOptions {
  int64_t dedup_window_ns = metering::kDedupWindowNanosDefault;
  int64_t idempotency_window_ns = metering::kIdempotencyWindowNanosDefault;
  WalOptions wal;
  // Applied entries kept in memory per partition for replicas to catch up from (older ones
  // are sent as a snapshot of the partition state): at most this many entries, and beyond
  // the newest entry at most retained_events_max events (an entry holds up to 1,024: the
  // parts an owner accepted together in one loop turn), which bounds the memory they hold.
  size_t retained_entries_max = 512;
  size_t retained_events_max = 2048;
  // Called for every entry as it is applied to a partition state, at commit and in WAL
  // replay, in index order per partition, with the state after the apply. It must not call
  // back into the store. For checkers only (the simulator's canonical history and replica
  // digests, simulation.md S4 and S9); empty otherwise.
  std::function<void(uint32_t partition, uint64_t index, uint64_t epoch,
                     const metering::LogEntry& entry, const metering::PartitionState& state)>
      apply_observer;
  // Called for every entry appended to the WAL with the global WAL position of its record
  // (storage/wal.h). For checkers only (the simulator's durability ledger, S6).
  std::function<void(uint32_t partition, uint64_t index, uint64_t epoch, uint64_t position)>
      append_observer;
};

// A cheap estimate of an entry's encoded size (batching bounds, not exact).
size_t EstimatedEntryBytes(const metering::LogEntry& entry);

// One log entry with its position in the partition log.
struct LogRecord {
  uint64_t index = 0;
  uint64_t epoch = 0;
  std::shared_ptr<const metering::LogEntry> entry;
};

// One event as stored for EVENTS_LIST.
struct StoredEvent {
  uint64_t offset = 0;
  int64_t timestamp_ns = 0;
  uint64_t account_id = 0;
  std::string metric_code;
  uint64_t value = 0;
  uint8_t operation = 0;
  bool registered = false;           // The metric had a schema at acceptance (else UNKNOWN_METRIC).
  bool negative_correction = false;  // Extension ingest: `value` was subtracted (SUM).
  std::vector<metering::Property> properties;  // Persisted with the event.
  bool operator==(const StoredEvent&) const = default;
};

// One record of this node's alert log (product-semantics 7.2).
struct AlertRecord {
  uint64_t offset = 0;  // Dense, 0-based, never reused.
  metering::AlertCrossing crossing;
  bool operator==(const AlertRecord&) const = default;
};

struct NodeStoreStats {
  uint64_t entries_appended = 0;
  uint64_t entries_applied = 0;
  uint64_t entries_replayed = 0;
  uint64_t checkpoints = 0;
  uint64_t checkpoint_bytes = 0;  // Size of the last checkpoint's state-store batch.
  uint64_t wal_syncs = 0;
  uint64_t events_expired = 0;        // Stored events deleted by retention.
  uint64_t event_flushes = 0;         // Completed FlushEvents jobs.
  uint64_t events_written = 0;        // Events put into the state store by flushes/checkpoints.
  uint64_t event_groups_written = 0;  // Stored-event keys (groups) those puts made.
};

class NodeStore {
 public:
  // Opens the state store and the WAL through `env`, loads the last checkpoint and replays
  // the WAL after it. DataLoss (naming what is damaged) for a corrupt checkpoint or WAL;
  // the node must not serve then.
  static absl::StatusOr<std::unique_ptr<NodeStore>> Open(Env& env, const NodeStoreOptions& options);
  ~NodeStore();

  NodeStore(const NodeStore&) = delete;
  NodeStore& operator=(const NodeStore&) = delete;

  // ---- The log ----
  uint64_t last_index(uint32_t partition) const { return partitions_[partition].last_index; }
  uint64_t last_epoch(uint32_t partition) const { return partitions_[partition].last_epoch; }
  uint64_t commit_index(uint32_t partition) const {
    return partitions_[partition].state->applied_index();
  }
  // Entries after the commit index, in order (recovered or appended, not yet committed).
  size_t uncommitted_count(uint32_t partition) const {
    return partitions_[partition].uncommitted.size();
  }
  // Epoch of the entry at the commit index (0 for an empty log).
  uint64_t commit_epoch(uint32_t partition) const { return partitions_[partition].commit_epoch; }
  // Epoch of the entry at `index` if this node still knows it: the commit index, an
  // uncommitted entry or a retained applied entry. nullopt otherwise.
  std::optional<uint64_t> EpochAt(uint32_t partition, uint64_t index) const;
  // Appends to `out` the entries from index `from` on (at most `max_entries`, fewer when
  // their encoded size passes `max_bytes`). False if `from` is no longer retained (the
  // caller sends a snapshot instead). REQUIRES: from >= 1.
  bool EntriesFrom(uint32_t partition, uint64_t from, size_t max_entries, size_t max_bytes,
                   std::vector<LogRecord>* out) const;

  // Appends an entry to the partition log (durable after the next Sync).
  // ResourceExhausted if the WAL tail is full (backpressure).
  // REQUIRES: index == last_index(partition) + 1, epoch >= last_epoch(partition).
  absl::Status Append(uint32_t partition, uint64_t index, uint64_t epoch,
                      std::shared_ptr<const metering::LogEntry> entry);

  // Group commit of everything appended so far (WAL semantics, storage/wal.h).
  void Sync(Wal::SyncDone done);

  // Applies the uncommitted entries up to `index` in order and logs a commit mark. Crossings
  // are recorded in this node's alert log iff `record_alerts` (this node owns the partition).
  // Returns the alert records it appended (durable after the next Sync).
  // REQUIRES: commit_index(partition) <= index <= last_index(partition).
  std::vector<AlertRecord> Commit(uint32_t partition, uint64_t index, bool record_alerts);

  // How far a commit of about `budget` work goes: the highest index in
  // (commit_index, target] whose entries cost at most `budget` to apply (one per entry plus
  // one per event), and never less than commit_index + 1.
  // REQUIRES: commit_index(partition) < target <= last_index(partition).
  uint64_t CommitIndexWithin(uint32_t partition, uint64_t target, uint64_t budget) const;

  // Appends to this node's alert log each unconfirmed crossing of `partition`
  // (PartitionState::unconfirmed_crossings) that the log does not hold yet: an owner's duty
  // when it starts serving, so a crossing whose recording owner crashed before syncing it
  // is recorded again (product-semantics 7.2, at-least-once). Never records one crossing
  // twice on this node. Returns the records appended (durable after the next Sync).
  std::vector<AlertRecord> RecordUnconfirmed(uint32_t partition);

  // Drops uncommitted entries after `index` (an epoch change rewrote the suffix).
  // REQUIRES: commit_index(partition) <= index <= last_index(partition).
  void TruncateAfter(uint32_t partition, uint64_t index);

  // Replaces the partition's state with `state` (a snapshot of a committed prefix ending at
  // state->applied_index() with entry epoch `epoch`), durably: `done` runs once the
  // snapshot is in the state store (an error is fatal). Uncommitted entries after the
  // snapshot are kept if the log holds the snapshot's last entry (same epoch), else dropped.
  // `encoded` is the snapshot `state` was decoded from: stored as it is, so the event loop
  // does not encode a large state again.
  // REQUIRES: state->applied_index() > commit_index(partition); no other install running.
  void InstallSnapshot(uint32_t partition, std::unique_ptr<metering::PartitionState> state,
                       absl::Span<const uint8_t> encoded, uint64_t epoch,
                       absl::AnyInvocable<void(absl::Status)> done);
  // Options for a partition state of this store (decoding snapshots from peers).
  metering::PartitionOptions partition_options(uint32_t partition) const;

  // ---- Reads ----
  const metering::PartitionState& state(uint32_t partition) const {
    return *partitions_[partition].state;
  }
  // The account's stored events with since <= timestamp <= until and offset >=
  // first_offset, ascending by offset, at most `limit` (wire-protocol-v1 7.8).
  absl::StatusOr<std::vector<StoredEvent>> ListEvents(uint64_t account_id, int64_t since_ns,
                                                      int64_t until_ns, size_t limit,
                                                      uint64_t first_offset = 0) const;
  // Alert records with offset >= since_offset for `account_id` (0 = all), at most `limit`.
  // A stored record on the way that is damaged is taken from `repair` (its offset -> an
  // intact copy, or nullopt); DataLoss (naming the record) if that has none.
  using AlertRepair = absl::FunctionRef<std::optional<metering::AlertCrossing>(uint64_t offset)>;
  absl::StatusOr<std::vector<AlertRecord>> ListAlerts(uint64_t account_id, uint64_t since_offset,
                                                      size_t limit) const;
  absl::StatusOr<std::vector<AlertRecord>> ListAlerts(uint64_t account_id, uint64_t since_offset,
                                                      size_t limit, AlertRepair repair) const;
  uint64_t alert_count() const { return alert_next_offset_; }
  // A replaced disk's alert log, restored from the copies its peers keep (docs/replication.md,
  // "Alerts"): writes `records` (ascending by offset; offsets retention deleted are absent)
  // to the state store, and the log continues at `next_offset`. `done` runs once they are
  // durable (an error is fatal); ListAlerts shows them from then on. Restoring the same
  // records again (a crash before the node became active) rewrites the same keys.
  // REQUIRES: this node recorded nothing since it opened (no record outside the state
  // store), next_offset > the last record's offset, no checkpoint running.
  void RestoreAlerts(std::vector<AlertRecord> records, uint64_t next_offset,
                     absl::AnyInvocable<void(absl::Status)> done);
  // True while some alert record is held only in memory (its WAL append failed, or a
  // full disk rolled it back) until a checkpoint writes it: an owner must not confirm
  // crossings as recorded meanwhile (a crash would lose the record for good).
  bool alerts_unlogged() const { return unlogged_alerts_below_ > alert_checkpointed_offset_; }
  // True while some alert record is not in the state store yet (a checkpoint writes it).
  bool alerts_in_memory() const { return !alerts_.empty(); }

  // ---- The replication layer's records of its peers ----
  // An opaque value the replication layer keeps across restarts (what peers announced,
  // replication/meta_history.h): `source` is asked for it at every checkpoint, which
  // writes it with its node-level batch; read back at open. Advisory: a damaged value is
  // dropped at open (logged), never a reason to refuse the directory.
  void set_peer_records_source(std::function<std::string()> source) {
    peer_records_source_ = std::move(source);
  }
  // As the last checkpoint before this open wrote it; empty if none or damaged.
  const std::string& loaded_peer_records() const { return loaded_peer_records_; }

  // ---- Checkpoints ----
  // Writes every partition whose applied index moved, the stored events and alert records
  // not yet checkpointed; when durable, recycles WAL segments holding nothing needed.
  // Works one partition per loop turn (each partition's batch is atomic on its own), so a
  // large checkpoint never stalls the loop.
  // `done` gets the outcome (an error is fatal). At most one checkpoint at a time:
  // FailedPrecondition through `done` if one is running.
  void Checkpoint(absl::AnyInvocable<void(absl::Status)> done);
  // Writes the stored events and retention deletions not yet in the state store, without
  // snapshots or WAL recycling: bounds the memory that holds applied events between
  // checkpoints. A restart before the next checkpoint replays their entries and writes
  // the same keys and values again. Shares Checkpoint's one-at-a-time rule and its
  // `done` contract (an error is fatal).
  void FlushEvents(absl::AnyInvocable<void(absl::Status)> done);
  bool checkpoint_running() const { return checkpoint_running_; }
  // Applied events held in memory until a checkpoint or FlushEvents writes them.
  uint64_t unsaved_event_count() const { return unsaved_event_count_; }
  // WAL bytes appended since the last checkpoint started (to decide when to checkpoint).
  uint64_t wal_bytes_since_checkpoint() const;
  // The WAL's global position up to which everything is durable: never lower in a later
  // process than in an earlier one on a disk that keeps synced writes (meta_history.h).
  uint64_t wal_durable_position() const;

  Wal& wal() { return *wal_; }
  const NodeStoreStats& stats() const { return stats_; }
  // Digest of every partition's state (replica comparison).
  uint64_t Digest() const;

 private:
  struct Pending {
    uint64_t index;
    uint64_t epoch;
    uint64_t position;  // WAL position of the entry record.
    std::shared_ptr<const metering::LogEntry> entry;
  };
  // A crossing's identity: one per threshold per event.
  struct CrossingKey {
    uint64_t account_id = 0;
    uint64_t event_offset = 0;
    uint32_t threshold_index = 0;
    static CrossingKey Of(const metering::AlertCrossing& crossing) {
      return CrossingKey{crossing.account_id, crossing.event_offset, crossing.threshold_index};
    }
    bool operator==(const CrossingKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H state, const CrossingKey& key) {
      return H::combine(std::move(state), key.account_id, key.event_offset, key.threshold_index);
    }
  };
  struct PartitionLog {
    std::unique_ptr<metering::PartitionState> state;
    // The state's unconfirmed crossings that this node's alert log holds.
    absl::flat_hash_set<CrossingKey> recorded_unconfirmed;  // determinism-ok: lookup only
    uint64_t last_index = 0;
    uint64_t last_epoch = 0;
    uint64_t checkpoint_index = 0;  // Applied index in the last durable checkpoint.
    uint64_t commit_epoch = 0;      // Epoch of the entry at the applied index.
    std::deque<Pending> uncommitted;
    std::deque<LogRecord> applied_tail;  // The newest applied entries (catch-up source).
    size_t applied_tail_events = 0;      // Their events (TailWeight).
    // Applied batches whose events are not yet in a checkpoint (shared with the log
    // entries: no per-event copy on the apply path).
    std::vector<std::shared_ptr<const metering::EventBatch>> unsaved_batches;
    uint64_t unsaved_events = 0;  // Events in unsaved_batches.
    // Batches written by the running checkpoint (write-behind: not readable from the store
    // until durable), kept readable here until their commit completes.
    std::vector<std::shared_ptr<const metering::EventBatch>> checkpointing_batches;
    // Every event with a lower offset was written by a flush (or left out as expired): a
    // restart replays such events from the WAL but does not store them again.
    uint64_t events_stored_end = 0;
    std::vector<int64_t> retention_cutoffs_ns;  // Applied, not yet swept from the store.
  };

  NodeStore(Env& env, const NodeStoreOptions& options, StateStore& store);
  absl::Status LoadCheckpoint();
  absl::Status LoadEventsMeta();
  absl::Status Replay(const WalRecordView& record);
  std::vector<AlertRecord> ApplyUpTo(uint32_t partition, uint64_t index, bool record_alerts);
  void AppendAlert(const metering::AlertCrossing& crossing);
  // Drops from recorded_unconfirmed the crossings the partition no longer holds unconfirmed.
  void ForgetConfirmed(uint32_t partition);
  // At open: notes which unconfirmed crossings the alert log already holds.
  void FindRecordedUnconfirmed();
  // A checkpoint (or, without snapshots, an events flush) in progress: one partition per
  // loop turn, then the node-level batch (checkpoints) or the last completion (flushes).
  struct CheckpointJob {
    bool snapshots = true;  // False for FlushEvents.
    uint32_t next_partition = 0;
    uint64_t keep_from_position = 0;
    uint32_t commits_running = 0;
    absl::Status status;  // The first failed partition commit, if any.
    absl::AnyInvocable<void(absl::Status)> done;
  };
  // Starts a checkpoint (snapshots) or an events flush; FailedPrecondition through `done`
  // if either is running.
  void StartJob(bool snapshots, absl::AnyInvocable<void(absl::Status)> done);
  void CheckpointStep(std::shared_ptr<CheckpointJob> job);
  // A flush job's partitions are all stepped and committed: report.
  void FinishFlushIfDone(CheckpointJob& job);
  // Adds partition's stored events, retention deletions and, if `snapshot` and it moved,
  // its snapshot.
  void FillPartitionBatch(uint32_t partition, bool snapshot, WriteBatch& batch);
  // Deletes stored events of `partition` with timestamp < cutoff_ns (retention).
  void DeleteExpiredEvents(uint32_t partition, int64_t cutoff_ns, WriteBatch& batch);
  void FinishCheckpoint(uint64_t keep_from_position, absl::AnyInvocable<void(absl::Status)> done);

  Env& env_;
  const NodeStoreOptions options_;
  StateStore& store_;
  std::unique_ptr<Wal> wal_;
  std::array<PartitionLog, kPartitionCount> partitions_;
  std::deque<AlertRecord> alerts_;  // Records not yet checkpointed, ascending.
  uint64_t alert_next_offset_ = 0;
  std::function<std::string()> peer_records_source_;  // Asked at each checkpoint.
  std::string loaded_peer_records_;                   // Read at open.
  uint64_t alert_checkpointed_offset_ = 0;            // Records below are in the state store.
  uint64_t unlogged_alerts_below_ = 0;                // Records below may be missing from the WAL.
  bool checkpoint_running_ = false;
  uint64_t unsaved_event_count_ = 0;  // Sum of the partitions' unsaved_events.
  TimerId checkpoint_timer_ = kNoTimer;
  uint64_t checkpoint_start_position_ = 0;
  // Reused encoding buffers (no allocation per event once grown): log entry bodies in
  // Append, stored-event keys and values in checkpoints and flushes.
  struct EventToStore {
    uint64_t account_id;
    uint64_t offset;
    const metering::BatchEvent* event;
  };
  struct EncodeScratch {
    std::vector<uint8_t> entry;
    std::string key;
    std::vector<uint8_t> value;
    std::vector<EventToStore> events;
  };
  EncodeScratch encode_scratch_;
  NodeStoreStats stats_;
};

// Event `i` of an applied batch as stored.
StoredEvent ToStoredEvent(const metering::EventBatch& batch, size_t i);

// Key and value encodings (exposed for tests and docs/formats/node_store.md).
std::string StoredEventKey(uint32_t partition, uint64_t account_id, uint64_t offset);
void AppendStoredEventKey(uint32_t partition, uint64_t account_id, uint64_t offset,
                          std::string* out);
// Stored events: each key holds a group of one account's events, ascending by offset,
// keyed by the last one's offset (version 2); version 1 values (one event) are still read.
inline constexpr size_t kStoredGroupEventsMax = 256;
std::string EncodeStoredEvents(absl::Span<const StoredEvent> events);
std::string EncodeStoredEventVersion1(const StoredEvent& event);
// Replaces `*events` with the value's events; DataLoss if malformed.
absl::Status DecodeStoredEvents(absl::string_view bytes, std::vector<StoredEvent>* events);
std::string EncodeAlertRecord(const AlertRecord& record);
absl::StatusOr<AlertRecord> DecodeAlertRecord(absl::string_view bytes);

}  // namespace unimeter

#endif  // UNIMETER_NODE_STORE_NODE_STORE_H_
