// sim/ownership_tracker.h
//
// OwnershipTracker checks what every simulated node says about elections and ownership as
// it acts (ReplicatedEngineOptions::ownership_observer), online, against all the nodes'
// earlier words, restarts included (docs/simulation.md):
//   S5   one leader per term; one node (and one process of it) establishes each
//        (partition, epoch); a node never acknowledges appends of an epoch lower than one
//        it durably promised for that partition, nor (within a process) lower than appends
//        it acknowledged before;
//   S11  promises survive restarts: a node never votes for two candidates in one term and
//        never promises an epoch lower than one it promised before, whatever crashed in
//        between, and what a restarted node reads back from replica.meta covers every vote
//        and promise it told (per disk: a replaced disk is a new member that promised
//        nothing);
//   S13  one map per (term, map version); a process acts on maps in increasing
//        (term, version) order; each node slot is bound to one disk incarnation at a time:
//        a restart keeps it unless the disk was replaced, a replaced disk brings a new one,
//        and no incarnation ever appears on two slots (a node on another's directory). A
//        disk restored from an old copy of itself (maybe of one of the slot's earlier disks,
//        with that disk's incarnation) must move to a new incarnation (the node finds it
//        went back, meta_history.h) before its process votes or promises anything that
//        contradicts what the slot's current disk told.
// O(log n) per event; deterministic (ordered containers only).
#ifndef UNIMETER_SIM_OWNERSHIP_TRACKER_H_
#define UNIMETER_SIM_OWNERSHIP_TRACKER_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "node/replication/replicated_engine.h"

namespace unimeter::sim {

class OwnershipTracker {
 public:
  explicit OwnershipTracker(uint32_t nodes);

  // A new process of `node` starts (its first event comes after this).
  void OnStart(NodeId node);
  // `node`'s disk was replaced: what it promised on the old one is gone with it.
  void OnWipe(NodeId node);
  // `node`'s disk was restored from an earlier copy of itself: what the next process reads
  // back may be older than what it told (not a violation), but everything it says is still
  // checked against what the disk's processes told, until it reports a new incarnation,
  // which then ends the disk as a replacement would.
  void OnRestoredFromBackup(NodeId node);
  // Checks `event`, reported by `node`, against everything reported before.
  void OnEvent(NodeId node, const replication::OwnershipEvent& event);

  // Empty while S5, S11 and S13 hold; else the first violation.
  const std::string& failure() const { return failure_; }
  uint64_t events_checked() const { return events_checked_; }

 private:
  struct NodeState {
    uint32_t process = 0;  // Incremented by OnStart.
    uint32_t disk = 0;     // Incremented by OnWipe.
    // The highest term this disk's node voted in, and for whom.
    std::pair<uint64_t, NodeId> vote{0, replication::kNoVote};
    // The (term, version) of the last map this process acted on.
    std::pair<uint64_t, uint64_t> last_map{0, 0};
    // Per partition: the highest epoch durably promised on this disk (kPromised).
    std::vector<uint64_t> promised;
    // Per partition: the highest epoch whose appends this process acknowledged. A replica
    // takes appends once its promise is made, before it is durable (its acknowledgement
    // waits for the WAL sync only): a crash may lose the promise but keep the entries.
    std::vector<uint64_t> accepted;
    uint64_t incarnation = 0;  // Of the current disk, once a process reported it (0: not yet).
    bool went_back = false;    // OnRestoredFromBackup, until a new incarnation.
  };
  struct Establisher {
    NodeId node = 0;
    uint32_t process = 0;
  };

  void Fail(std::string failure);
  void OnVoted(NodeId node, const replication::OwnershipEvent& event);
  void OnLeader(NodeId node, const replication::OwnershipEvent& event);
  void OnPromised(NodeId node, const replication::OwnershipEvent& event);
  void OnAccepted(NodeId node, const replication::OwnershipEvent& event);
  void OnOwner(NodeId node, const replication::OwnershipEvent& event);
  void OnMap(NodeId node, const replication::OwnershipEvent& event);
  void OnRestoredVote(NodeId node, const replication::OwnershipEvent& event);
  void OnRestoredPromise(NodeId node, const replication::OwnershipEvent& event);
  void OnIncarnation(NodeId node, const replication::OwnershipEvent& event);

  std::vector<NodeState> nodes_;
  // (node, disk, term) -> the candidate voted for.
  absl::btree_map<std::tuple<NodeId, uint32_t, uint64_t>, NodeId> votes_;
  absl::btree_map<uint64_t, NodeId> leaders_;  // term -> leader.
  // Every incarnation reported -> (node slot, disk number) it was first reported on.
  absl::btree_map<uint64_t, std::pair<NodeId, uint32_t>> incarnations_;
  absl::btree_map<std::pair<uint32_t, uint64_t>, Establisher> owners_;  // (partition, epoch).
  // (term, map version) -> (digest, the node that first acted on it).
  absl::btree_map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, NodeId>> maps_;
  std::string failure_;
  uint64_t events_checked_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_OWNERSHIP_TRACKER_H_
