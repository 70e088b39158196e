// node/server/convert.h
//
// Conversions between the wire codec's records (protocol/wire.h) and the metering engine's
// types (node/metering/types.h). The codec and the engine know nothing of each other; only
// the server joins them.
#ifndef UNIMETER_NODE_SERVER_CONVERT_H_
#define UNIMETER_NODE_SERVER_CONVERT_H_

#include "node/metering/partition_state.h"
#include "node/metering/schema.h"
#include "node/metering/types.h"
#include "node/store/node_store.h"
#include "protocol/wire.h"

namespace unimeter {

metering::MetricSchema SchemaFromWire(const protocol::MetricSchemaRecord& record);
protocol::MetricSchemaRecord SchemaToWire(const metering::MetricSchema& schema);
protocol::AggValue AggValueToWire(const metering::AggValue& value);
metering::Event EventFromWire(const protocol::WireEventView& event);

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_CONVERT_H_
