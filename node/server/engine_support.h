// node/server/engine_support.h
//
// Pieces every Engine implementation shares (LocalEngine, replication::ReplicatedEngine):
//
//   DurableAlerts    alert records appended to this node's alert log wait for the WAL sync
//                    that makes them durable (and, replicated, for a committed copy) before
//                    they are pushed or listed (product-semantics 7.2); it also tells when an
//                    owner may confirm a partition's crossings as recorded (LogEntry
//                    AlertsRecorded).
//   RecordUnconfirmedCrossings, AppendAlertConfirmations
//                    the two halves of at-least-once alert records (docs/replication.md,
//                    "Alerts") as both engines run them.
//   RedirectStatus   how an engine says a request belongs on another node.
//   PendingBoundExceeded
//                    the owner's bound of events accepted and not yet committed.
//   EntryPartsEnd    which of the ingest parts an owner staged in a loop turn one log entry
//                    takes (PartitionState::AcceptParts).
//   CheckpointTimer  the checkpoint policy: a checkpoint starts when enough WAL was written
//                    since the last one or its interval passed, and something changed; a
//                    failed checkpoint is fatal (memory would be ahead of the store).
//
// Event-loop only.
#ifndef UNIMETER_NODE_SERVER_ENGINE_SUPPORT_H_
#define UNIMETER_NODE_SERVER_ENGINE_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "node/env/env.h"
#include "node/server/engine.h"
#include "node/store/node_store.h"

namespace unimeter {

// Records go through up to three stages: appended (waiting for the WAL sync), durable on
// this node, and released: listed, pushed, and confirmable. Without copies (one node)
// a record is released at its sync. With copies (replicated), it is released once a
// committed LogEntry AlertCopies holds it, so a replaced disk's alert log can be restored
// with every record a client may have seen (docs/replication.md, "Alerts"). Copies go one
// at a time, in offset order: the records with committed copies are always a prefix.
class DurableAlerts {
 public:
  // Records below `offset` are released (at start: the store's alert count).
  void Reset(uint64_t offset);
  // At start with copies: records below `released_offset` are released; `durable` (the
  // store's records from there on, ascending; retention may have deleted some) wait for a
  // copy, and the log continues at `next_offset`.
  void ResetWithUncopied(uint64_t released_offset, std::vector<AlertRecord> durable,
                         uint64_t next_offset);
  // Released only through committed copies from now on.
  void RequireCopies() { copies_required_ = true; }
  // Records appended to the alert log, durable after the next sync completes.
  void Add(const std::vector<AlertRecord>& records);
  // Records waiting for a sync; a sync starting now covers this many.
  size_t waiting() const { return waiting_.size(); }
  // Records made and not yet released (waiting for a sync or a copy).
  size_t unreleased() const { return waiting_.size() + uncopied_.size(); }
  // A sync that started with `covered` records waiting completed: they are durable, and
  // released (pushed through `on_released`) unless copies are required.
  void Synced(size_t covered, Engine::AlertsDurable& on_released);
  // The durable records a copy carries now, ascending, at most `max`; empty while a copy
  // is in flight or nothing waits. Marks a copy in flight until CopyDone.
  std::vector<AlertRecord> StartCopy(size_t max);
  bool copy_in_flight() const { return copy_in_flight_; }
  // The copy in flight committed (its records are released) or failed (they wait for the
  // next copy).
  void CopyDone(bool committed, uint64_t through_offset, Engine::AlertsDurable& on_released);
  // Releases the durable records without a copy (peers too old to keep copies).
  void ReleaseUncopied(Engine::AlertsDurable& on_released);
  // Drops the records not yet released from the end of a listing.
  void TrimToReleased(std::vector<AlertRecord>* records) const;

  // This node's alert log holds every crossing of `partition`'s entries up to `index` once
  // the records appended so far (Add) are released.
  void NoteRecorded(uint32_t partition, uint64_t index);
  // The partitions whose noted crossings were released since the last call, each with its
  // highest noted index, ascending by partition: the owner may now append
  // LogEntry::RecordedAlerts(index) (if it still owns the partition).
  std::vector<std::pair<uint32_t, uint64_t>> TakeConfirmable();

 private:
  struct Noted {
    uint64_t released_from_offset;  // Confirmable once released_offset_ reaches it.
    uint32_t partition;
    uint64_t index;
  };
  void Release(uint64_t end_offset, Engine::AlertsDurable& on_released);

  bool copies_required_ = false;
  std::vector<AlertRecord> waiting_;
  std::deque<AlertRecord> uncopied_;  // Durable, not released, ascending.
  bool copy_in_flight_ = false;
  uint64_t released_offset_ = 0;
  uint64_t next_offset_ = 0;  // After the last record added.
  std::deque<Noted> noted_;   // Ascending by released_from_offset.
};

// "Not here: send it to `node`" (nothing was applied; REDIRECT, wire-protocol-v1 9.3).
// FailedPrecondition carrying the node id as a payload; `what` says why, for logs.
absl::Status RedirectStatus(NodeId node, std::string_view what);
// The node a RedirectStatus names; nullopt for every other status.
std::optional<NodeId> RedirectTarget(const absl::Status& status);

// True if `count` more events must be refused (BACKPRESSURE) while `pending` events wait
// for commit under a bound of `pending_max`. A request larger than the bound is taken when
// nothing waits, so no request is refused forever.
inline bool PendingBoundExceeded(size_t pending, size_t count, size_t pending_max) {
  return pending > 0 && pending + count > pending_max;
}

// Staged ingest parts [begin, result) go into one entry: consecutive parts while their events
// and properties together stay within the bounds of one entry (kRequestEventsMax,
// kRequestPropertiesMax); a part over the bounds goes alone (its validation refuses it).
// `events_of(i)` is part i's events. REQUIRES: begin < count.
size_t EntryPartsEnd(size_t begin, size_t count,
                     absl::FunctionRef<const std::vector<metering::Event>&(size_t)> events_of);

// Staged parts of one partition decided together (PartitionState::AcceptParts at `now_ns`)
// and their entry appended at the partition's next index under `epoch`.
struct AppendedParts {
  std::vector<absl::StatusOr<metering::IngestResult>> results;  // One per part.
  uint64_t index = 0;  // The entry's index; 0 if nothing was appended.
};
// If the log is full nothing was accepted: the pending batch is dropped and every part that
// was not refused already gets ResourceExhausted (BACKPRESSURE; a part judged a duplicate
// of another part's event would rest on the lost entry), and index is 0.
AppendedParts AcceptAndAppend(NodeStore& store, metering::PendingDedup& pending, uint32_t partition,
                              uint64_t epoch,
                              absl::Span<const absl::Span<const metering::Event>> parts,
                              int64_t now_ns);

// A serving owner's duty: appends to the alert log each unconfirmed crossing of `partition`
// it lacks (NodeStore::RecordUnconfirmed), adds the records to `alerts`, and notes the
// partition's crossings up to its commit index for confirmation. Returns the records.
std::vector<AlertRecord> RecordUnconfirmedCrossings(NodeStore& store, DurableAlerts& alerts,
                                                    uint32_t partition);

// Appends LogEntry::RecordedAlerts for each partition whose recorded crossings are released
// (DurableAlerts::TakeConfirmable) and that `serving_epoch` gives an epoch for (this node
// serves it; else the next owner records them again: a duplicate across nodes, never a
// loss). While a record is held only in memory (NodeStore::alerts_unlogged) confirmations
// wait for the checkpoint. `appended` runs after each entry appended (it needs a sync).
void AppendAlertConfirmations(
    Env& env, NodeStore& store, DurableAlerts& alerts,
    absl::FunctionRef<std::optional<uint64_t>(uint32_t partition)> serving_epoch,
    absl::FunctionRef<void()> appended);

// When a node writes its state to the state store.
struct CheckpointPolicy {
  // A checkpoint starts when this many WAL bytes were appended since the last one, or
  // every interval_ns when anything changed.
  uint64_t wal_bytes = 256ull * 1024 * 1024;
  int64_t interval_ns = 60'000'000'000;
  // Between checkpoints, applied events are written on their own (NodeStore::FlushEvents)
  // once this many wait in memory: at ~150 bytes each, this bounds that memory to tens of
  // megabytes whatever the ingest rate.
  uint64_t unsaved_events_max = 262'144;
};

class CheckpointTimer {
 public:
  // Checks every min(interval / 6, 1 s). REQUIRES: `store` outlives this.
  CheckpointTimer(Env& env, NodeStore& store, const CheckpointPolicy& policy);
  ~CheckpointTimer();
  CheckpointTimer(const CheckpointTimer&) = delete;
  CheckpointTimer& operator=(const CheckpointTimer&) = delete;

 private:
  void Schedule();
  void Check();

  Env& env_;
  NodeStore& store_;
  const CheckpointPolicy policy_;
  TimerId timer_ = kNoTimer;
  uint64_t applied_at_last_ = 0;
  int64_t last_ns_ = 0;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_ENGINE_SUPPORT_H_
