// sim/node_usage.h
//
// NodeUsage adapts a node's committed state to the reference model's UsageQuery: each
// question becomes a PartitionState::QueryUsage on the account's partition of `store`
// (its state right now, not a routed read). The store must outlive the returned function.
#ifndef UNIMETER_SIM_NODE_USAGE_H_
#define UNIMETER_SIM_NODE_USAGE_H_

#include "node/store/node_store.h"
#include "sim/reference_model.h"

namespace unimeter::sim {

UsageQuery NodeUsage(const NodeStore& store);

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_NODE_USAGE_H_
