// node/server/range_query.h
//
// The exact-range usage query of extension opcode 0x81 (docs/protocol.md): the aggregate of
// one account's stored events of one metric with start <= timestamp < end, under the
// metric's current schema, at event granularity instead of whole buckets. Only events
// accepted while the metric was registered count (as in the aggregates). Filters are an
// AND of declared (key, value) pairs matched as product-semantics §5 matches dimensions;
// an undeclared key or value gives zeros. COUNT_UNIQUE is the size of the member set built
// by the range's ADD/REMOVE events in offset order (one set over the whole range).
#ifndef UNIMETER_NODE_SERVER_RANGE_QUERY_H_
#define UNIMETER_NODE_SERVER_RANGE_QUERY_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/metering/partition_state.h"
#include "node/metering/schema.h"
#include "node/store/node_store.h"

namespace unimeter {

// REQUIRES: `events` ascending by offset. InvalidArgument for more than 4 filters or a
// repeated filter key.
absl::StatusOr<metering::AggValue> ComputeRangeAggregate(
    const metering::CompiledSchema& schema, absl::Span<const StoredEvent> events, int64_t start_ns,
    int64_t end_ns, absl::Span<const metering::Filter> filters);

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_RANGE_QUERY_H_
