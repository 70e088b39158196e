// node/base/planted_bugs.h
//
// Deliberate protocol bugs for the simulator's planted-bug lane (docs/simulation.md): each
// one breaks a rule the replication, storage or metering code relies on, so a test can show
// that the simulator's checkers catch it. They exist only in a build compiled with
// UNIMETER_PLANTED_BUGS, which only //sim:unimeter-sim-planted is (a Bazel transition adds
// the define to that binary's whole dependency graph). In every other build BugPlanted() is
// a constant false, so the bug code is compiled out and release binaries never contain it.
//
//   if (BugPlanted(PlantedBug::kOwnerCopyIsQuorum)) { ...the wrong thing... }
//
// At most one bug is planted per process, chosen before the first seed runs (--plant=NAME).
#ifndef UNIMETER_NODE_BASE_PLANTED_BUGS_H_
#define UNIMETER_NODE_BASE_PLANTED_BUGS_H_

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace unimeter {

enum class PlantedBug : uint8_t {
  kNone = 0,
  kAckBeforeFsync,            // Single node: a SYNC write is acknowledged before its fsync.
  kOwnerCopyIsQuorum,         // An owner commits with only its own durable copy.
  kQuorumOfReachable,         // Majorities counted among the members heard from recently.
  kAcceptOlderEpoch,          // A replica stores appends of an epoch older than its promise.
  kSkipLogCollection,         // A new owner keeps its own log instead of the most advanced one.
  kDedupNotInSnapshot,        // Snapshots leave the dedup index out.
  kSkipPendingDedup,          // Resends are not checked against entries awaiting commit.
  kStepDownSaysRefused,       // A deposed owner answers its waiters "nothing stored".
  kFreshNodeCountsForQuorum,  // A wiped, not yet resynced node counts toward quorums.
  kEarlyDuplicateVerdict,     // "Duplicate" answered while the original is uncommitted.
  kUnconfirmedOwnerReads,     // An owner answers reads without a quorum confirming its epoch.
  kReplicaReadsOwnState,      // A replica answers a routed read without the owner's commit index.
  kLatestTakesOlder,          // LATEST takes every reading, older timestamps included.
  kApplyStaleMap,             // A follower acts on a heartbeat's map older than its own.
  kPromiseBeforeDurable,      // A replica tells its promise before replica.meta is synced.
  kSkipUnconfirmedAlerts,     // A new owner leaves its predecessor's unconfirmed crossings.
  kRetryFailedSync,           // A failed WAL fsync is retried, not a crash (fsyncgate).
  kForwardHandledTwice,       // An owner handles every copy of a duplicated forward.
  kPromiseIgnoresLeases,      // A promise is told while a read lease of another epoch lasts.
  kMetaSingleCopy,            // replica.meta writes one copy of each state, not two.
  kAlertLogNotRestored,       // A replaced disk's alert log starts empty, not from the copies.
};

struct PlantedBugInfo {
  PlantedBug bug;
  std::string_view name;  // The --plant= value.
  uint32_t nodes;         // The scenario that exercises it (1: single node, 3: cluster).
};

#ifdef UNIMETER_PLANTED_BUGS
// Every planted bug, in enum order.
const std::vector<PlantedBugInfo>& PlantedBugs();
std::optional<PlantedBug> PlantedBugByName(std::string_view name);
// Chooses the bug this process runs with (kNone: none).
void PlantBug(PlantedBug bug);
bool BugPlanted(PlantedBug bug);
#else
constexpr bool BugPlanted(PlantedBug) { return false; }
#endif

}  // namespace unimeter

#endif  // UNIMETER_NODE_BASE_PLANTED_BUGS_H_
