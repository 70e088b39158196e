// storage/memory_state_store.h
//
// The simulator's StateStore: an ordered in-memory map with LMDB's crash semantics.
//
// Two objects model a node's state store, split along the line a crash draws:
//
//   MemoryStateMedium  the "disk". Holds the durable contents (key -> checked value,
//                      storage/checked_value.h). The simulator keeps it across node
//                      restarts, can wipe it, flip a stored byte (CorruptValueAtRest) or
//                      make the next commits fail as if the disk were full.
//   MemoryStateStore   one node incarnation's open store over a medium. Commit makes a
//                      batch visible at once (an overlay of pending batches) and queues
//                      it; the batch reaches the medium only when the simulator runs the
//                      completion it was handed through `schedule_completion`.
//
// Durability is driven from outside: each Commit calls schedule_completion(fn) exactly
// once. Whenever the simulator later calls any such fn, the OLDEST pending batch is
// written to the medium atomically and its `done` runs, so completions come in commit
// order however the simulator orders the fns. Destroying the store with batches pending
// is a crash: they are lost, their `done` never runs, and fns still held by the
// simulator become no-ops. A new store over the same medium sees exactly the durable
// contents, as LMDB does after a crash (one fully synced write transaction per batch, or
// per group of batches, applied all or nothing).
//
// After a failed completion (injected with set_fail_next_commits) the store is failed:
// that batch and every later one complete with the same error without being written,
// and the visible state stays ahead of the durable state until the node crashes and
// reopens the store, as the StateStore contract requires.
//
// Deterministic: no clocks, randomness, threads or hash-map iteration. Event-loop only.
#ifndef UNIMETER_STORAGE_MEMORY_STATE_STORE_H_
#define UNIMETER_STORAGE_MEMORY_STATE_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/pending_overlay.h"
#include "storage/state_store.h"

namespace unimeter {

class MemoryStateMedium {
 public:
  MemoryStateMedium() = default;
  MemoryStateMedium(const MemoryStateMedium&) = delete;
  MemoryStateMedium& operator=(const MemoryStateMedium&) = delete;
  // REQUIRES: no MemoryStateStore is open over this medium.
  ~MemoryStateMedium();

  // Erases every durable value (a replaced disk: the node's next incarnation).
  // REQUIRES: no MemoryStateStore is open over this medium.
  void Wipe();
  // Replaces every durable value with `other`'s (another disk's image).
  // REQUIRES: no MemoryStateStore is open over this medium.
  void CopyFrom(const MemoryStateMedium& other);

  // Fault injection: flips the lowest bit of the last stored byte of `key` (a value
  // byte, or the checksum if the value is empty), so the next read of the durable value
  // returns DataLoss. Returns false if `key` has no durable value.
  bool CorruptValueAtRest(std::string_view key);
  // The durable key of rank `rank` in key order (to pick one to corrupt).
  // REQUIRES: rank < key_count().
  const std::string& KeyAt(size_t rank) const;

  // Fault injection: the next `count` completions fail with
  // ResourceExhausted("disk full") and write nothing.
  void set_fail_next_commits(uint64_t count) { fail_next_commits_ = count; }
  uint64_t fail_next_commits() const { return fail_next_commits_; }

  // Bytes of durable keys plus stored (checked) values.
  uint64_t size_bytes() const { return size_bytes_; }
  size_t key_count() const { return stored_.size(); }
  bool store_open() const { return store_open_; }

 private:
  friend class MemoryStateStore;
  // key -> checked value; std::less<> allows lookups by std::string_view.
  using StoredMap = absl::btree_map<std::string, std::string, std::less<>>;

  // Writes `batch` atomically, or fails (injected) without writing anything.
  absl::Status WriteDurably(const WriteBatch& batch);
  void PutStored(const std::string& key, std::string stored);
  void EraseStored(const std::string& key);

  StoredMap stored_;
  uint64_t size_bytes_ = 0;
  uint64_t fail_next_commits_ = 0;
  bool store_open_ = false;
};

class MemoryStateStore final : public StateStore {
 public:
  // Called once per Commit with the function that completes the oldest pending batch.
  // It must not call that function inline; the simulator runs it later, on this node's
  // loop, at a time of its choosing (or never, if the node crashes first).
  using ScheduleCompletion = absl::AnyInvocable<void(absl::AnyInvocable<void()> complete)>;

  // Opens the store over `medium`, which must outlive it.
  // REQUIRES: no other MemoryStateStore is open over `medium`.
  MemoryStateStore(MemoryStateMedium& medium, ScheduleCompletion schedule_completion);
  MemoryStateStore(const MemoryStateStore&) = delete;
  MemoryStateStore& operator=(const MemoryStateStore&) = delete;
  // A crash: pending batches are lost and their `done` callbacks are dropped uncalled.
  ~MemoryStateStore() override;

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  void Commit(WriteBatch batch, CommitDone done) override;
  // The medium's durable size (pending batches are not counted).
  uint64_t size_bytes() const override { return medium_.size_bytes(); }

  // Batches committed whose completion has not run yet.
  size_t pending_commit_count() const { return pending_.size(); }

 private:
  struct PendingCommit {
    uint64_t sequence;
    WriteBatch batch;
    CommitDone done;
  };

  // REQUIRES: `visitor` does not call Commit on this store.
  absl::Status ScanMerged(std::string_view begin, std::string_view end, ScanVisitor visitor,
                          const DamageVisitor* on_damaged) override;
  void CompleteOldest();

  MemoryStateMedium& medium_;
  ScheduleCompletion schedule_completion_;
  PendingOverlay overlay_;
  std::deque<PendingCommit> pending_;
  uint64_t sequence_last_ = 0;
  absl::Status failure_;  // Sticky: the first failed completion's error.
  bool in_commit_ = false;
  bool scanning_ = false;
  // Completions hold a weak reference, so those run after a crash do nothing.
  std::shared_ptr<MemoryStateStore*> self_;
};

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_MEMORY_STATE_STORE_H_
