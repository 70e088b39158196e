#include "node/server/convert.h"

namespace unimeter {

metering::MetricSchema SchemaFromWire(const protocol::MetricSchemaRecord& record) {
  metering::MetricSchema schema;
  schema.code = record.code;
  schema.agg_type = static_cast<metering::AggregationType>(record.agg_type);
  schema.recurring = record.recurring;
  schema.field_name = record.field_name;
  for (const protocol::DimensionSpec& dimension : record.dimensions) {
    schema.dimensions.push_back(metering::Dimension{dimension.key, dimension.values});
  }
  for (const protocol::ThresholdSpec& threshold : record.thresholds) {
    schema.thresholds.push_back(
        metering::Threshold{threshold.code, threshold.value, threshold.recurring});
  }
  schema.period_type = record.period_type;
  schema.billing_cycle_day = record.billing_cycle_day;
  return schema;
}

protocol::MetricSchemaRecord SchemaToWire(const metering::MetricSchema& schema) {
  protocol::MetricSchemaRecord record;
  record.code = schema.code;
  record.agg_type = static_cast<uint8_t>(schema.agg_type);
  record.recurring = schema.recurring;
  record.field_name = schema.field_name;
  for (const metering::Dimension& dimension : schema.dimensions) {
    record.dimensions.push_back(protocol::DimensionSpec{dimension.key, dimension.values});
  }
  for (const metering::Threshold& threshold : schema.thresholds) {
    record.thresholds.push_back(
        protocol::ThresholdSpec{threshold.code, threshold.value, threshold.recurring});
  }
  record.period_type = schema.period_type;
  record.billing_cycle_day = schema.billing_cycle_day;
  return record;
}

protocol::AggValue AggValueToWire(const metering::AggValue& value) {
  protocol::AggValue wire;
  wire.sum = value.sum;
  wire.count = value.count;
  wire.max = value.max;
  wire.last_value = value.last_value;
  wire.last_timestamp_ns = value.last_timestamp_ns;
  wire.alert_flags = value.alert_flags;
  return wire;
}

metering::Event EventFromWire(const protocol::WireEventView& view) {
  metering::Event event;
  event.account_id = view.account_id();
  event.metric_code = std::string(view.metric_code());
  event.value = view.value();
  event.timestamp_ns = view.timestamp_ns();
  event.operation = static_cast<metering::OperationType>(view.operation_type());
  event.properties.reserve(view.props_count());
  for (size_t i = 0; i < view.props_count(); ++i) {
    const protocol::PropPairView pair = view.prop(i);
    event.properties.push_back(
        metering::Property{std::string(pair.key()), std::string(pair.value())});
  }
  return event;
}

}  // namespace unimeter
