// sim/node_usage.h
//
// Adapters from a node to the reference model's terms (sim/reference_model.h).
//
// NodeUsage: each usage question becomes a PartitionState::QueryUsage on the account's
// partition of `store` (its state right now, not a routed read). The store must outlive the
// returned function.
//
// NodeAlerts: every durable record of the node's alert log, as a crossing.
#ifndef UNIMETER_SIM_NODE_USAGE_H_
#define UNIMETER_SIM_NODE_USAGE_H_

#include <cstdint>
#include <vector>

#include "node/server/engine.h"
#include "node/store/node_store.h"
#include "sim/reference_model.h"

namespace unimeter::sim {

UsageQuery NodeUsage(const NodeStore& store);

std::vector<RefCrossing> NodeAlerts(const Engine& engine);

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_NODE_USAGE_H_
