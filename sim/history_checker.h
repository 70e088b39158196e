// sim/history_checker.h
//
// HistoryChecker is the canonical per-partition history (simulation.md invariant S4, log
// agreement): the first node to apply index i of a partition defines the entry at i (its
// epoch and the checksum of its canonical encoding); every later apply of that index on any
// node, after a restart's WAL replay included, must match it exactly. O(1) per apply.
//
// It also checks S7 (the committed prefix survives epoch changes): the canonical log's epochs
// never decrease with the index. A log's epochs never decrease, so a committed entry of
// epoch e at index j and a later epoch's entry at some i < j mean that the later epoch's
// owner built on a log without the committed entry at j.
//
// And S9 online (replicas agree): the state after applying index i has one digest on
// every node, after a snapshot install or a restart's replay included. The first node to
// report a digest at (partition, i) defines it. Digests cost O(state), so callers report
// them at sampled indexes only (WantsStateDigest).
//
// Fed by NodeStoreOptions::apply_observer on every simulated node. Deterministic.
#ifndef UNIMETER_SIM_HISTORY_CHECKER_H_
#define UNIMETER_SIM_HISTORY_CHECKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "node/metering/log_entry.h"
#include "node/metering/partition_state.h"

namespace unimeter::sim {

class HistoryChecker {
 public:
  HistoryChecker();

  // Records or checks that `node` applied `entry` at `index` of `partition` in `epoch`.
  // True if this was the first apply of that index anywhere (it defined the entry).
  bool OnApply(uint32_t node, uint32_t partition, uint64_t index, uint64_t epoch,
               const metering::LogEntry& entry);
  // The same, for an entry known by its checksum.
  bool OnApply(uint32_t node, uint32_t partition, uint64_t index, uint64_t epoch,
               uint64_t checksum);

  // Whether the caller should report the state digest after applying `index`: always where
  // another node reported one, else every 32nd index, the stride growing with the state's
  // size (`state_keys`, a function of the log like the digest), so digests cost about as
  // much as encoding 4 keys per apply (about 6 % of a seed's time).
  bool WantsStateDigest(uint32_t partition, uint64_t index, uint64_t state_keys) const;
  // Records or checks that `node`'s state of `partition` after applying `index` has
  // `digest`. REQUIRES: OnApply for that apply was called first.
  void OnStateDigest(uint32_t node, uint32_t partition, uint64_t index, uint64_t digest);
  // The same for `state` itself, at the indexes WantsStateDigest picks for its size (aggregate
  // and dedup keys: what its digest costs).
  void OnState(uint32_t node, uint32_t partition, uint64_t index,
               const metering::PartitionState& state);

  // Empty while S4, S7 and S9 hold; else the first violation.
  const std::string& failure() const { return failure_; }
  uint64_t applies_checked() const { return applies_checked_; }
  uint64_t digests_checked() const { return digests_checked_; }

 private:
  // Checks S7 around the entry just defined at `index`.
  void CheckEpochOrder(uint32_t partition, uint64_t index);

  struct Canonical {
    bool known = false;
    uint64_t epoch = 0;
    uint64_t checksum = 0;
    uint32_t first_node = 0;
    bool digest_known = false;
    uint32_t digest_node = 0;
    uint64_t state_digest = 0;
  };
  std::vector<std::vector<Canonical>> partitions_;  // [partition][index - 1]
  std::string failure_;
  uint64_t applies_checked_ = 0;
  uint64_t digests_checked_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_HISTORY_CHECKER_H_
