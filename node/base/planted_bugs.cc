// Compiled to nothing unless UNIMETER_PLANTED_BUGS is defined (node/base/planted_bugs.h).
#include "node/base/planted_bugs.h"

#ifdef UNIMETER_PLANTED_BUGS
namespace unimeter {
namespace {
PlantedBug g_planted = PlantedBug::kNone;  // Set once, before any simulated node runs.
}  // namespace

const std::vector<PlantedBugInfo>& PlantedBugs() {
  static const std::vector<PlantedBugInfo> bugs = {
      {PlantedBug::kAckBeforeFsync, "ack-before-fsync", 1},
      {PlantedBug::kOwnerCopyIsQuorum, "owner-copy-is-quorum", 3},
      {PlantedBug::kQuorumOfReachable, "quorum-of-reachable", 3},
      {PlantedBug::kAcceptOlderEpoch, "accept-older-epoch", 3},
      {PlantedBug::kSkipLogCollection, "skip-log-collection", 3},
      {PlantedBug::kDedupNotInSnapshot, "dedup-not-in-snapshot", 3},
      {PlantedBug::kSkipPendingDedup, "skip-pending-dedup", 3},
      {PlantedBug::kStepDownSaysRefused, "step-down-says-refused", 3},
      {PlantedBug::kFreshNodeCountsForQuorum, "fresh-node-counts-for-quorum", 3},
      {PlantedBug::kEarlyDuplicateVerdict, "early-duplicate-verdict", 3},
      {PlantedBug::kUnconfirmedOwnerReads, "unconfirmed-owner-reads", 3},
      {PlantedBug::kReplicaReadsOwnState, "replica-reads-own-state", 3},
      {PlantedBug::kLatestTakesOlder, "latest-takes-older", 3},
      {PlantedBug::kApplyStaleMap, "apply-stale-map", 3},
      {PlantedBug::kPromiseBeforeDurable, "promise-before-durable", 3},
      {PlantedBug::kSkipUnconfirmedAlerts, "skip-unconfirmed-alerts", 3},
      {PlantedBug::kRetryFailedSync, "retry-failed-sync", 3},
      {PlantedBug::kForwardHandledTwice, "forward-handled-twice", 3},
      {PlantedBug::kPromiseIgnoresLeases, "promise-ignores-leases", 3},
      {PlantedBug::kMetaSingleCopy, "meta-single-copy", 3},
      {PlantedBug::kAlertLogNotRestored, "alert-log-not-restored", 3},
  };
  return bugs;
}

std::optional<PlantedBug> PlantedBugByName(std::string_view name) {
  for (const PlantedBugInfo& info : PlantedBugs()) {
    if (info.name == name) return info.bug;
  }
  return std::nullopt;
}

void PlantBug(PlantedBug bug) { g_planted = bug; }

bool BugPlanted(PlantedBug bug) { return bug == g_planted; }

}  // namespace unimeter
#endif  // UNIMETER_PLANTED_BUGS
