// sim/node_usage.h
//
// Adapters from a node to the reference model's terms (sim/reference_model.h).
//
// NodeUsage: each usage question becomes a PartitionState::QueryUsage on the account's
// partition of `store` (its state right now, not a routed read). The store must outlive the
// returned function.
//
// NodeAlerts: every released record of the node's alert log, as a crossing (DataLoss if a
// stored record is damaged).
// RunUntilAlertsDurable: lets the simulation run until no engine holds alert records
// not yet released (waiting for the WAL sync, or for their copy to commit: records are
// listed only then).
#ifndef UNIMETER_SIM_NODE_USAGE_H_
#define UNIMETER_SIM_NODE_USAGE_H_

#include <cstdint>
#include <vector>

#include "node/server/engine.h"
#include "node/store/node_store.h"
#include "sim/reference_model.h"
#include "sim/simulator.h"

namespace unimeter::sim {

UsageQuery NodeUsage(const NodeStore& store);

absl::StatusOr<std::vector<RefCrossing>> NodeAlerts(const Engine& engine);
// The crossings of `records`, in their order.
std::vector<RefCrossing> AsCrossings(const std::vector<AlertRecord>& records);

// At most `timeout_ns` of simulated time; false if records still wait then.
bool RunUntilAlertsDurable(Simulator& simulator, const std::vector<const Engine*>& engines,
                           int64_t timeout_ns);

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_NODE_USAGE_H_
