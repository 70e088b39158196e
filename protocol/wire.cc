// protocol/wire.cc
//
// Field-by-field implementation of the wire protocol v1 codec. Offsets are named after the
// tables of shared/spec/wire-protocol-v1.md; every integer goes through node/base/endian.h.
#include "protocol/wire.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/endian.h"

namespace unimeter::protocol {
namespace {

// WireEvent (WP 6.2).
constexpr size_t kEventAccountOffset = 64;
constexpr size_t kEventTimestampOffset = 72;
constexpr size_t kEventValueOffset = 80;
constexpr size_t kEventOperationOffset = 88;
constexpr size_t kEventPropsCountOffset = 89;

// MetricSchema base (WP 6.9) and DimensionFilter (WP 6.4), AlertThreshold (WP 6.5).
constexpr size_t kSchemaAggTypeOffset = 64;
constexpr size_t kSchemaRecurringOffset = 65;
constexpr size_t kSchemaFilterCountOffset = 66;
constexpr size_t kSchemaFieldNameOffset = 68;
constexpr size_t kFilterValueCountOffset = 32;
constexpr size_t kFilterValuesOffset = 36;
constexpr size_t kThresholdValueOffset = 32;
constexpr size_t kThresholdRecurringOffset = 40;

// USAGE_QUERY base (WP 7.6), shared by USAGE_QUERY_BREAKDOWN (WP 7.11).
constexpr size_t kQueryPeriodStartOffset = 8;
constexpr size_t kQueryPeriodEndOffset = 16;
constexpr size_t kQueryMetricCodeOffset = 24;
constexpr size_t kQueryCountOffset = 88;

// EventRecord (WP 6.10), AlertRecord (WP 6.11), BreakdownEntry (WP 6.13).
constexpr size_t kEventRecordCodeOffset = 24;
constexpr size_t kEventRecordValueOffset = 88;
constexpr size_t kEventRecordOperationOffset = 96;
constexpr size_t kAlertRecordCodeOffset = 16;
constexpr size_t kAlertRecordThresholdOffset = 80;
constexpr size_t kAlertRecordValueOffset = 112;
constexpr size_t kAlertRecordTimestampOffset = 120;
constexpr size_t kBreakdownKeysOffset = 8;
constexpr size_t kBreakdownValuesOffset = 136;
constexpr size_t kBreakdownAggOffset = 264;

static_assert(kEventPropsCountOffset + 1 + 6 == kWireEventSizeBytes);
static_assert(kEventRecordOperationOffset + 1 + 7 == kEventRecordSizeBytes);
static_assert(kAlertRecordTimestampOffset + 8 + 8 == kAlertRecordSizeBytes);
static_assert(kBreakdownAggOffset + kAggValueSizeBytes == kBreakdownEntrySizeBytes);
static_assert(kQueryCountOffset + 1 + 7 == kUsageQueryBaseSizeBytes);

template <typename... Args>
absl::Status Invalid(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}

std::string Str(std::string_view value) { return std::string(value); }

// Extends `out` by `size_bytes` zero bytes and returns a pointer to them.
uint8_t* Grow(std::string* out, size_t size_bytes) {
  const size_t at = out->size();
  out->resize(at + size_bytes);
  return reinterpret_cast<uint8_t*>(out->data() + at);
}

void StoreI64(uint8_t* out, int64_t value) { StoreU64(out, static_cast<uint64_t>(value)); }
int64_t LoadI64(const uint8_t* in) { return static_cast<int64_t>(LoadU64(in)); }

uint8_t* AppendResponseHeader(uint8_t status, uint32_t request_id, size_t payload_size_bytes,
                              std::string* out) {
  UM_CHECK_LE(payload_size_bytes, kReplyPayloadSizeBytesMax);
  uint8_t* header = Grow(out, kResponseHeaderSizeBytes + payload_size_bytes);
  EncodeResponseHeader({.status = status,
                        .request_id = request_id,
                        .payload_len = static_cast<uint32_t>(payload_size_bytes)},
                       header);
  return header + kResponseHeaderSizeBytes;
}

uint8_t* AppendRequestFrame(uint8_t packet_type, uint16_t partition, uint32_t request_id,
                            size_t payload_size_bytes, std::string* out) {
  UM_CHECK_LE(payload_size_bytes, kPayloadSizeBytesMax);
  uint8_t* header = Grow(out, kRequestHeaderSizeBytes + payload_size_bytes);
  EncodeRequestHeader({.magic = kMagic,
                       .version = kVersion,
                       .packet_type = packet_type,
                       .partition = partition,
                       .payload_len = static_cast<uint32_t>(payload_size_bytes),
                       .request_id = request_id},
                      header);
  return header + kRequestHeaderSizeBytes;
}

// Runs `encode` on a frame appended to `out`; on failure truncates `out` back.
template <typename Encode>
absl::Status AppendOrRollBack(std::string* out, Encode encode) {
  const size_t size_before = out->size();
  absl::Status status = encode();
  if (!status.ok()) {
    out->resize(size_before);
  }
  return status;
}

void EncodeAggValueFields(const AggValue& value, uint8_t* out) {
  StoreU64(out + 0, static_cast<uint64_t>(value.sum));
  StoreU64(out + 8, static_cast<uint64_t>(value.sum >> 64));
  StoreU64(out + 16, value.count);
  StoreU64(out + 24, value.max);
  StoreU64(out + 32, value.last_value);
  StoreI64(out + 40, value.last_timestamp_ns);
  StoreU64(out + 48, value.alert_flags);
}

// The USAGE_QUERY base fields shared with USAGE_QUERY_BREAKDOWN.
struct QueryBase {
  uint64_t account_id;
  int64_t period_start_ns;
  int64_t period_end_ns;
  std::string_view metric_code;
};

QueryBase ReadQueryBase(const uint8_t* payload) {
  return {.account_id = LoadU64(payload),
          .period_start_ns = LoadI64(payload + kQueryPeriodStartOffset),
          .period_end_ns = LoadI64(payload + kQueryPeriodEndOffset),
          .metric_code = ReadFixedString(payload + kQueryMetricCodeOffset, kMetricCodeFieldBytes)};
}

absl::Status WriteQueryBase(const QueryBase& base, uint8_t count, uint8_t* out) {
  StoreU64(out, base.account_id);
  StoreI64(out + kQueryPeriodStartOffset, base.period_start_ns);
  StoreI64(out + kQueryPeriodEndOffset, base.period_end_ns);
  absl::Status status = WriteFixedString(base.metric_code, kMetricCodeFieldBytes, "metric_code",
                                         out + kQueryMetricCodeOffset);
  out[kQueryCountOffset] = count;
  std::memset(out + kQueryCountOffset + 1, 0, 7);
  return status;
}

// ---- MetricSchema record parsing (METRIC_PUT and METRIC_LIST) ------------------------------

enum class SectionMode { kOptional, kRequired };

void ParseDimension(const uint8_t* filter, DimensionSpec* dimension) {
  dimension->key = Str(ReadFixedString(filter, kDimensionKeyFieldBytes));
  // A value_count above 8 is read as 8 (WP 7.3 rule 5).
  const size_t value_count =
      std::min<size_t>(filter[kFilterValueCountOffset], kValuesPerDimensionMax);
  dimension->values.clear();
  dimension->values.reserve(value_count);
  for (size_t i = 0; i < value_count; ++i) {
    dimension->values.push_back(Str(ReadFixedString(
        filter + kFilterValuesOffset + i * kDimensionValueFieldBytes, kDimensionValueFieldBytes)));
  }
}

void ParseThreshold(const uint8_t* threshold, ThresholdSpec* spec) {
  spec->code = Str(ReadFixedString(threshold, kThresholdCodeFieldBytes));
  spec->value = LoadU64(threshold + kThresholdValueOffset);
  spec->recurring = threshold[kThresholdRecurringOffset] != 0;
}

// Parses one record from the start of `bytes`; sets *consumed to its length.
absl::Status ParseMetricSchema(std::span<const uint8_t> bytes, SectionMode mode,
                               MetricSchemaRecord* schema, size_t* consumed) {
  const uint8_t* in = bytes.data();
  const size_t size = bytes.size();
  if (size < kMetricSchemaBaseSizeBytes) {
    return Invalid("MetricSchema: ", size, " bytes, shorter than the 132-byte base");
  }
  const size_t filter_count = in[kSchemaFilterCountOffset];
  if (filter_count > kDimensionsPerMetricMax) {
    return Invalid("MetricSchema: filter_count ", filter_count, " exceeds 4");
  }
  size_t position = kMetricSchemaBaseSizeBytes + filter_count * kDimensionFilterSizeBytes;
  if (size < position) {
    return Invalid("MetricSchema: ", size, " bytes, shorter than the ", position,
                   " bytes needed for ", filter_count, " dimensions");
  }
  schema->code = Str(ReadFixedString(in, kMetricCodeFieldBytes));
  schema->agg_type = in[kSchemaAggTypeOffset];
  schema->recurring = in[kSchemaRecurringOffset] != 0;
  schema->field_name = Str(ReadFixedString(in + kSchemaFieldNameOffset, kFieldNameFieldBytes));
  schema->dimensions.resize(filter_count);
  for (size_t i = 0; i < filter_count; ++i) {
    const uint8_t* filter = in + kMetricSchemaBaseSizeBytes + i * kDimensionFilterSizeBytes;
    ParseDimension(filter, &schema->dimensions[i]);
  }
  schema->thresholds.clear();
  schema->period_type = kPeriodTypeFixed;
  schema->billing_cycle_day = 1;
  // The threshold section is present iff at least 8 more bytes follow (WP 7.3 rule 2).
  if (size - position >= kMetricSchemaThresholdHeaderSizeBytes) {
    const size_t alert_count = in[position];
    if (alert_count > kThresholdsPerMetricMax) {
      return Invalid("MetricSchema: alert_count ", alert_count, " exceeds 8");
    }
    position += kMetricSchemaThresholdHeaderSizeBytes;
    if (size - position < alert_count * kAlertThresholdSizeBytes) {
      return Invalid("MetricSchema: ", size, " bytes, shorter than the ",
                     position + alert_count * kAlertThresholdSizeBytes, " bytes needed for ",
                     alert_count, " thresholds");
    }
    schema->thresholds.resize(alert_count);
    for (size_t i = 0; i < alert_count; ++i) {
      ParseThreshold(in + position + i * kAlertThresholdSizeBytes, &schema->thresholds[i]);
    }
    position += alert_count * kAlertThresholdSizeBytes;
    // The period section is present iff 8 more bytes follow; a shorter tail is ignored.
    if (size - position >= kMetricSchemaPeriodSectionSizeBytes) {
      schema->period_type = in[position];
      schema->billing_cycle_day = NormalizeBillingCycleDay(in[position + 1]);
      position += kMetricSchemaPeriodSectionSizeBytes;
    } else if (mode == SectionMode::kRequired) {
      return Invalid("MetricSchema: period section missing at byte ", position);
    }
  } else if (mode == SectionMode::kRequired) {
    return Invalid("MetricSchema: threshold section missing at byte ", position);
  }
  *consumed = position;
  return absl::OkStatus();
}

// WP 7.3 rule 4: what a record must satisfy beyond its structure.
absl::Status ValidateDecodedSchema(const MetricSchemaRecord& schema) {
  if (schema.code.empty()) {
    return Invalid("MetricSchema: empty metric code");
  }
  if (schema.agg_type > kAggTypeMax) {
    return Invalid("MetricSchema: agg_type ", static_cast<int>(schema.agg_type), " is not 0-4");
  }
  for (size_t i = 0; i < schema.dimensions.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (schema.dimensions[i].key == schema.dimensions[j].key) {
        return Invalid("MetricSchema: dimensions ", j, " and ", i, " share the key \"",
                       schema.dimensions[i].key, "\"");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSchemaEncodable(const MetricSchemaRecord& schema) {
  if (schema.dimensions.size() > kDimensionsPerMetricMax) {
    return Invalid("MetricSchema: ", schema.dimensions.size(), " dimensions exceed 4");
  }
  if (schema.thresholds.size() > kThresholdsPerMetricMax) {
    return Invalid("MetricSchema: ", schema.thresholds.size(), " thresholds exceed 8");
  }
  for (const DimensionSpec& dimension : schema.dimensions) {
    if (dimension.values.size() > kValuesPerDimensionMax) {
      return Invalid("MetricSchema: dimension \"", dimension.key, "\" has ",
                     dimension.values.size(), " values, more than 8");
    }
  }
  return absl::OkStatus();
}

absl::Status WriteMetricSchema(const MetricSchemaRecord& schema, uint8_t* out) {
  absl::Status status = WriteFixedString(schema.code, kMetricCodeFieldBytes, "code", out);
  if (!status.ok()) {
    return status;
  }
  out[kSchemaAggTypeOffset] = schema.agg_type;
  out[kSchemaRecurringOffset] = schema.recurring ? 1 : 0;
  out[kSchemaFilterCountOffset] = static_cast<uint8_t>(schema.dimensions.size());
  out[kSchemaFilterCountOffset + 1] = 0;
  status = WriteFixedString(schema.field_name, kFieldNameFieldBytes, "field_name",
                            out + kSchemaFieldNameOffset);
  if (!status.ok()) {
    return status;
  }
  uint8_t* position = out + kMetricSchemaBaseSizeBytes;
  for (const DimensionSpec& dimension : schema.dimensions) {
    std::memset(position, 0, kDimensionFilterSizeBytes);
    status = WriteFixedString(dimension.key, kDimensionKeyFieldBytes, "dimension key", position);
    if (!status.ok()) {
      return status;
    }
    position[kFilterValueCountOffset] = static_cast<uint8_t>(dimension.values.size());
    for (size_t i = 0; i < dimension.values.size(); ++i) {
      status = WriteFixedString(dimension.values[i], kDimensionValueFieldBytes, "dimension value",
                                position + kFilterValuesOffset + i * kDimensionValueFieldBytes);
      if (!status.ok()) {
        return status;
      }
    }
    position += kDimensionFilterSizeBytes;
  }
  std::memset(position, 0, kMetricSchemaThresholdHeaderSizeBytes);
  position[0] = static_cast<uint8_t>(schema.thresholds.size());
  position += kMetricSchemaThresholdHeaderSizeBytes;
  for (const ThresholdSpec& threshold : schema.thresholds) {
    std::memset(position, 0, kAlertThresholdSizeBytes);
    status = WriteFixedString(threshold.code, kThresholdCodeFieldBytes, "threshold code", position);
    if (!status.ok()) {
      return status;
    }
    StoreU64(position + kThresholdValueOffset, threshold.value);
    position[kThresholdRecurringOffset] = threshold.recurring ? 1 : 0;
    position += kAlertThresholdSizeBytes;
  }
  std::memset(position, 0, kMetricSchemaPeriodSectionSizeBytes);
  position[0] = schema.period_type;
  position[1] = schema.billing_cycle_day;
  return absl::OkStatus();
}

absl::Status WritePartitionMap(const PartitionMap& map, uint8_t* out) {
  for (size_t p = 0; p < kPartitionCount; ++p) {
    const PartitionMapEntry& entry = map[p];
    uint8_t* slot = out + p * kPartitionMapEntrySizeBytes;
    if (entry.leader.empty()) {
      return Invalid("partition map: partition ", p, " has an empty leader");
    }
    absl::Status status = EncodeAddress(entry.leader, slot);
    if (status.ok()) {
      status = EncodeAddress(entry.replica0, slot + kAddressSizeBytes);
    }
    if (status.ok()) {
      status = EncodeAddress(entry.replica1, slot + 2 * kAddressSizeBytes);
    }
    if (!status.ok()) {
      return status;
    }
    std::memset(slot + 3 * kAddressSizeBytes, 0,
                kPartitionMapEntrySizeBytes - 3 * kAddressSizeBytes);
  }
  return absl::OkStatus();
}

absl::Status ShortPayload(std::string_view opcode, size_t size, size_t needed) {
  return Invalid(Str(opcode), ": payload is ", size, " bytes, shorter than ", needed);
}

}  // namespace

// ---- Opcodes and headers --------------------------------------------------------------------

bool IsV1RequestOpcode(uint8_t packet_type) {
  switch (static_cast<Opcode>(packet_type)) {
    case Opcode::kIngestAsync:
    case Opcode::kIngestSync:
    case Opcode::kGetPartitionMap:
    case Opcode::kMetricPut:
    case Opcode::kMetricDelete:
    case Opcode::kMetricList:
    case Opcode::kUsageQuery:
    case Opcode::kUsageRealtime:
    case Opcode::kEventsList:
    case Opcode::kAlertsList:
    case Opcode::kAlertPushEnable:
    case Opcode::kUsageQueryBreakdown:
    case Opcode::kClusterStatus:
    case Opcode::kClusterRebalance:
      return true;
    case Opcode::kPartitionMapUpdate:
    case Opcode::kAlertPush:
    case Opcode::kReservedTransfer0:
    case Opcode::kReservedTransfer1:
    case Opcode::kReservedTransfer2:
      return false;
  }
  return false;
}

std::string_view OpcodeName(uint8_t packet_type) {
  if (packet_type >= kExtensionOpcodeMin) {
    return "EXTENSION";
  }
  switch (static_cast<Opcode>(packet_type)) {
    case Opcode::kIngestAsync:
      return "INGEST_ASYNC";
    case Opcode::kIngestSync:
      return "INGEST_SYNC";
    case Opcode::kGetPartitionMap:
      return "GET_PARTITION_MAP";
    case Opcode::kPartitionMapUpdate:
      return "PARTITION_MAP_UPDATE";
    case Opcode::kMetricPut:
      return "METRIC_PUT";
    case Opcode::kMetricDelete:
      return "METRIC_DELETE";
    case Opcode::kMetricList:
      return "METRIC_LIST";
    case Opcode::kUsageQuery:
      return "USAGE_QUERY";
    case Opcode::kUsageRealtime:
      return "USAGE_REALTIME";
    case Opcode::kEventsList:
      return "EVENTS_LIST";
    case Opcode::kAlertsList:
      return "ALERTS_LIST";
    case Opcode::kAlertPushEnable:
      return "ALERT_PUSH_ENABLE";
    case Opcode::kAlertPush:
      return "ALERT_PUSH";
    case Opcode::kUsageQueryBreakdown:
      return "USAGE_QUERY_BREAKDOWN";
    case Opcode::kClusterStatus:
      return "CLUSTER_STATUS";
    case Opcode::kClusterRebalance:
      return "CLUSTER_REBALANCE";
    case Opcode::kReservedTransfer0:
    case Opcode::kReservedTransfer1:
    case Opcode::kReservedTransfer2:
      return "RESERVED";
  }
  return "UNKNOWN";
}

void ExtensionOpcodeSet::Add(uint8_t opcode) {
  UM_CHECK_GE(opcode, kExtensionOpcodeMin);
  implemented_.set(opcode - kExtensionOpcodeMin);
}

bool ExtensionOpcodeSet::Contains(uint8_t opcode) const {
  return opcode >= kExtensionOpcodeMin && implemented_.test(opcode - kExtensionOpcodeMin);
}

RequestHeader DecodeRequestHeader(const uint8_t* bytes) {
  return {.magic = LoadU32(bytes),
          .version = bytes[4],
          .packet_type = bytes[5],
          .partition = LoadU16(bytes + 6),
          .payload_len = LoadU32(bytes + 8),
          .request_id = LoadU32(bytes + 12)};
}

void EncodeRequestHeader(const RequestHeader& header, uint8_t* out) {
  StoreU32(out, header.magic);
  out[4] = header.version;
  out[5] = header.packet_type;
  StoreU16(out + 6, header.partition);
  StoreU32(out + 8, header.payload_len);
  StoreU32(out + 12, header.request_id);
}

ResponseHeader DecodeResponseHeader(const uint8_t* bytes) {
  return {.status = bytes[0], .request_id = LoadU32(bytes + 4), .payload_len = LoadU32(bytes + 8)};
}

void EncodeResponseHeader(const ResponseHeader& header, uint8_t* out) {
  out[0] = header.status;
  out[1] = 0;
  out[2] = 0;
  out[3] = 0;
  StoreU32(out + 4, header.request_id);
  StoreU32(out + 8, header.payload_len);
}

HeaderVerdict ClassifyHeader(const RequestHeader& header, const ExtensionOpcodeSet& extensions) {
  if (header.magic != kMagic) {
    return {.action = HeaderAction::kRejectThenClose, .rejection = HeaderRejection::kBadMagic};
  }
  if (header.payload_len > kPayloadSizeBytesMax) {
    return {.action = HeaderAction::kDrainThenReject,
            .rejection = HeaderRejection::kPayloadTooLarge,
            .may_close_instead = header.payload_len > kDrainSizeBytesMax};
  }
  if (header.version != kVersion) {
    return {.action = HeaderAction::kDrainThenReject, .rejection = HeaderRejection::kBadVersion};
  }
  if (!IsV1RequestOpcode(header.packet_type) && !extensions.Contains(header.packet_type)) {
    return {.action = HeaderAction::kDrainThenReject, .rejection = HeaderRejection::kBadOpcode};
  }
  return {};
}

std::string_view HeaderRejectionName(HeaderRejection rejection) {
  switch (rejection) {
    case HeaderRejection::kNone:
      return "none";
    case HeaderRejection::kBadMagic:
      return "bad magic";
    case HeaderRejection::kPayloadTooLarge:
      return "payload too large";
    case HeaderRejection::kBadVersion:
      return "bad version";
    case HeaderRejection::kBadOpcode:
      return "unknown, push-only, reserved or unimplemented opcode";
  }
  return "?";
}

// ---- Strings ------------------------------------------------------------------------------

std::string_view ReadFixedString(const uint8_t* field, size_t width) {
  const void* nul = std::memchr(field, 0, width);
  const size_t length =
      nul == nullptr ? width : static_cast<size_t>(static_cast<const uint8_t*>(nul) - field);
  return std::string_view(reinterpret_cast<const char*>(field), length);
}

absl::Status WriteFixedString(std::string_view value, size_t width, std::string_view what,
                              uint8_t* out) {
  if (value.size() > width) {
    return Invalid(Str(what), " is ", value.size(), " bytes, longer than its ", width,
                   "-byte field");
  }
  if (value.find('\0') != std::string_view::npos) {
    return Invalid(Str(what), " contains a NUL byte");
  }
  if (!value.empty()) {  // A default string_view has a null data(): memcpy must not see it.
    std::memcpy(out, value.data(), value.size());
  }
  std::memset(out + value.size(), 0, width - value.size());
  return absl::OkStatus();
}

// ---- Ingest -------------------------------------------------------------------------------

std::string_view WireEventView::metric_code() const {
  return ReadFixedString(event_, kMetricCodeFieldBytes);
}
uint64_t WireEventView::account_id() const { return LoadU64(event_ + kEventAccountOffset); }
int64_t WireEventView::timestamp_ns() const { return LoadI64(event_ + kEventTimestampOffset); }
uint64_t WireEventView::value() const { return LoadU64(event_ + kEventValueOffset); }
OperationType WireEventView::operation_type() const {
  return static_cast<OperationType>(event_[kEventOperationOffset]);
}
uint8_t WireEventView::props_count() const { return event_[kEventPropsCountOffset]; }
PropPairView WireEventView::prop(size_t index) const {
  UM_CHECK_LT(index, props_count());
  return PropPairView(props_ + index * kPropPairSizeBytes);
}

absl::StatusOr<IngestRequestView> IngestRequestView::Decode(uint16_t header_partition,
                                                            std::span<const uint8_t> payload) {
  const size_t size = payload.size();
  if (size < kIngestHeaderSizeBytes) {
    return ShortPayload("INGEST", size, kIngestHeaderSizeBytes);
  }
  const uint32_t event_count = LoadU32(payload.data());
  const uint32_t props_count = LoadU32(payload.data() + 4);
  if (event_count > kRequestEventsMax) {
    return Invalid("INGEST: event_count ", event_count, " exceeds 1024");
  }
  if (props_count > kRequestPropertiesMax) {
    return Invalid("INGEST: props_count ", props_count, " exceeds 1024");
  }
  const size_t needed = kIngestHeaderSizeBytes + size_t{event_count} * kWireEventSizeBytes +
                        size_t{props_count} * kPropPairSizeBytes;
  if (size < needed) {
    return Invalid("INGEST: payload is ", size, " bytes, shorter than 8 + 96*", event_count,
                   " + 96*", props_count, " = ", needed);
  }
  if (header_partition != kPartitionAuto && header_partition >= kPartitionCount) {
    return Invalid("INGEST: header partition ", header_partition, " is neither 0xFFFF nor 0-255");
  }
  IngestRequestView view;
  view.events_ = payload.data() + kIngestHeaderSizeBytes;
  view.props_ = view.events_ + size_t{event_count} * kWireEventSizeBytes;
  view.event_count_ = event_count;
  view.props_count_ = props_count;
  view.partition_ = header_partition;
  uint32_t props_sum = 0;
  for (uint32_t i = 0; i < event_count; ++i) {
    const uint8_t* event = view.events_ + size_t{i} * kWireEventSizeBytes;
    const uint8_t operation = event[kEventOperationOffset];
    if (operation > kOperationTypeMax) {
      return Invalid("INGEST: event ", i, " has operation_type ", static_cast<int>(operation),
                     ", not 0, 1 or 2");
    }
    view.props_begin_[i] = static_cast<uint16_t>(props_sum);
    props_sum += event[kEventPropsCountOffset];
    if (props_sum > props_count) {
      return Invalid("INGEST: events 0-", i, " own ", props_sum,
                     " property pairs, more than the request's props_count ", props_count);
    }
  }
  if (props_sum != props_count) {
    return Invalid("INGEST: per-event props_count values sum to ", props_sum,
                   ", not the request's props_count ", props_count);
  }
  return view;
}

WireEventView IngestRequestView::event(size_t index) const {
  UM_CHECK_LT(index, event_count_);
  return WireEventView(events_ + index * kWireEventSizeBytes,
                       props_ + size_t{props_begin_[index]} * kPropPairSizeBytes);
}

absl::Status AppendIngestRequest(Opcode opcode, uint16_t partition, uint32_t request_id,
                                 std::span<const IngestEvent> events, std::string* out) {
  UM_CHECK(opcode == Opcode::kIngestAsync || opcode == Opcode::kIngestSync);
  size_t props_count = 0;
  for (const IngestEvent& event : events) {
    if (event.props.size() > kEventPropertiesMax) {
      return Invalid("INGEST: an event has ", event.props.size(), " props, more than 255");
    }
    props_count += event.props.size();
  }
  if (events.size() > kRequestEventsMax || props_count > kRequestPropertiesMax) {
    return Invalid("INGEST: ", events.size(), " events and ", props_count,
                   " props exceed the 1024 limits");
  }
  const size_t payload_size_bytes = kIngestHeaderSizeBytes + events.size() * kWireEventSizeBytes +
                                    props_count * kPropPairSizeBytes;
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload = AppendRequestFrame(static_cast<uint8_t>(opcode), partition, request_id,
                                          payload_size_bytes, out);
    StoreU32(payload, static_cast<uint32_t>(events.size()));
    StoreU32(payload + 4, static_cast<uint32_t>(props_count));
    uint8_t* event_out = payload + kIngestHeaderSizeBytes;
    uint8_t* prop_out = event_out + events.size() * kWireEventSizeBytes;
    for (const IngestEvent& event : events) {
      absl::Status status =
          WriteFixedString(event.metric_code, kMetricCodeFieldBytes, "metric_code", event_out);
      if (!status.ok()) {
        return status;
      }
      StoreU64(event_out + kEventAccountOffset, event.account_id);
      StoreI64(event_out + kEventTimestampOffset, event.timestamp_ns);
      StoreU64(event_out + kEventValueOffset, event.value);
      event_out[kEventOperationOffset] = event.operation_type;
      event_out[kEventPropsCountOffset] = static_cast<uint8_t>(event.props.size());
      std::memset(event_out + kEventPropsCountOffset + 1, 0, 6);
      event_out += kWireEventSizeBytes;
      for (const PropPair& prop : event.props) {
        status = WriteFixedString(prop.key, kPropertyKeyFieldBytes, "property key", prop_out);
        if (!status.ok()) {
          return status;
        }
        status = WriteFixedString(prop.value, kPropertyValueFieldBytes, "property value",
                                  prop_out + kPropertyKeyFieldBytes);
        if (!status.ok()) {
          return status;
        }
        prop_out += kPropPairSizeBytes;
      }
    }
    return absl::OkStatus();
  });
}

// ---- Metric schemas -------------------------------------------------------------------------

uint8_t NormalizeBillingCycleDay(uint8_t billing_cycle_day) {
  if (billing_cycle_day < kBillingCycleDayMin) {
    return kBillingCycleDayMin;
  }
  if (billing_cycle_day > kBillingCycleDayMax) {
    return kBillingCycleDayMax;
  }
  return billing_cycle_day;
}

absl::StatusOr<MetricSchemaRecord> DecodeMetricPut(std::span<const uint8_t> payload) {
  MetricSchemaRecord schema;
  size_t consumed = 0;
  absl::Status status = ParseMetricSchema(payload, SectionMode::kOptional, &schema, &consumed);
  if (!status.ok()) {
    return status;
  }
  UM_CHECK_LE(consumed, payload.size());
  status = ValidateDecodedSchema(schema);
  if (!status.ok()) {
    return status;
  }
  return schema;
}

size_t MetricSchemaRecordSizeBytes(const MetricSchemaRecord& schema) {
  return MetricSchemaSizeBytes(schema.dimensions.size(), schema.thresholds.size());
}

absl::Status AppendMetricSchemaRecord(const MetricSchemaRecord& schema, std::string* out) {
  absl::Status status = CheckSchemaEncodable(schema);
  if (!status.ok()) {
    return status;
  }
  return AppendOrRollBack(out, [&] {
    return WriteMetricSchema(schema, Grow(out, MetricSchemaRecordSizeBytes(schema)));
  });
}

absl::Status AppendMetricPutRequest(uint32_t request_id, const MetricSchemaRecord& schema,
                                    std::string* out) {
  absl::Status status = CheckSchemaEncodable(schema);
  if (!status.ok()) {
    return status;
  }
  return AppendOrRollBack(out, [&] {
    return WriteMetricSchema(
        schema, AppendRequestFrame(static_cast<uint8_t>(Opcode::kMetricPut), kPartitionAuto,
                                   request_id, MetricSchemaRecordSizeBytes(schema), out));
  });
}

absl::Status AppendMetricListReply(uint32_t request_id, std::span<const MetricSchemaRecord> schemas,
                                   std::string* out, size_t* written_count) {
  size_t count = 0;
  size_t payload_size_bytes = kListCountHeaderSizeBytes;
  for (const MetricSchemaRecord& schema : schemas) {
    absl::Status status = CheckSchemaEncodable(schema);
    if (!status.ok()) {
      return status;
    }
    const size_t record_size_bytes = MetricSchemaRecordSizeBytes(schema);
    if (payload_size_bytes + record_size_bytes > kReplyPayloadSizeBytesMax) {
      break;
    }
    payload_size_bytes += record_size_bytes;
    ++count;
  }
  if (written_count != nullptr) {
    *written_count = count;
  }
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload = AppendResponseHeader(static_cast<uint8_t>(Status::kOk), request_id,
                                            payload_size_bytes, out);
    StoreU32(payload, static_cast<uint32_t>(count));
    StoreU32(payload + 4, 0);
    uint8_t* position = payload + kListCountHeaderSizeBytes;
    for (size_t i = 0; i < count; ++i) {
      absl::Status status = WriteMetricSchema(schemas[i], position);
      if (!status.ok()) {
        return status;
      }
      position += MetricSchemaRecordSizeBytes(schemas[i]);
    }
    UM_CHECK_EQ(static_cast<size_t>(position - payload), payload_size_bytes);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<MetricSchemaRecord>> DecodeMetricListReply(
    std::span<const uint8_t> payload) {
  if (payload.size() < kListCountHeaderSizeBytes) {
    return ShortPayload("METRIC_LIST reply", payload.size(), kListCountHeaderSizeBytes);
  }
  const uint32_t count = LoadU32(payload.data());
  // Every record is at least MetricSchemaSizeBytes(0, 0) long: bound `count` before reserving.
  const size_t records_fit =
      (payload.size() - kListCountHeaderSizeBytes) / MetricSchemaSizeBytes(0, 0);
  if (count > records_fit) {
    return Invalid("METRIC_LIST reply: count ", count, " cannot fit in ", payload.size(), " bytes");
  }
  std::vector<MetricSchemaRecord> schemas(count);
  size_t position = kListCountHeaderSizeBytes;
  for (uint32_t i = 0; i < count; ++i) {
    size_t consumed = 0;
    absl::Status status = ParseMetricSchema(payload.subspan(position), SectionMode::kRequired,
                                            &schemas[i], &consumed);
    if (!status.ok()) {
      return Invalid("METRIC_LIST reply: record ", i, ": ", status.message());
    }
    position += consumed;
  }
  return schemas;
}

// ---- Other requests -------------------------------------------------------------------------

absl::StatusOr<MetricDeleteRequest> DecodeMetricDelete(std::span<const uint8_t> payload) {
  if (payload.size() < kMetricDeleteRequestSizeBytes) {
    return ShortPayload("METRIC_DELETE", payload.size(), kMetricDeleteRequestSizeBytes);
  }
  return MetricDeleteRequest{.metric_code = ReadFixedString(payload.data(), kMetricCodeFieldBytes)};
}

absl::StatusOr<UsageQueryRequest> DecodeUsageQuery(std::span<const uint8_t> payload) {
  const size_t size = payload.size();
  if (size < kUsageQueryNoFiltersSizeBytesMin) {
    return ShortPayload("USAGE_QUERY", size, kUsageQueryNoFiltersSizeBytesMin);
  }
  const QueryBase base = ReadQueryBase(payload.data());
  UsageQueryRequest request{.account_id = base.account_id,
                            .period_start_ns = base.period_start_ns,
                            .period_end_ns = base.period_end_ns,
                            .metric_code = base.metric_code};
  // 88-95 bytes: accepted as "no filters" [compat], whatever byte 88 says.
  if (size < kUsageQueryBaseSizeBytes) {
    return request;
  }
  const size_t filters_count = payload[kQueryCountOffset];
  if (filters_count > kQueryFiltersMax) {
    return Invalid("USAGE_QUERY: filters_count ", filters_count, " exceeds 4");
  }
  const size_t needed = kUsageQueryBaseSizeBytes + filters_count * kDimensionFilterSizeBytes;
  if (size < needed) {
    return Invalid("USAGE_QUERY: payload is ", size, " bytes, shorter than the ", needed,
                   " needed for ", filters_count, " filters");
  }
  request.filters_count = static_cast<uint8_t>(filters_count);
  for (size_t i = 0; i < filters_count; ++i) {
    const uint8_t* filter =
        payload.data() + kUsageQueryBaseSizeBytes + i * kDimensionFilterSizeBytes;
    request.filters[i].key = ReadFixedString(filter, kDimensionKeyFieldBytes);
    request.filters[i].value =
        ReadFixedString(filter + kFilterValuesOffset, kDimensionValueFieldBytes);
    for (size_t j = 0; j < i; ++j) {
      if (request.filters[j].key == request.filters[i].key) {
        return Invalid("USAGE_QUERY: filters ", j, " and ", i, " share the key \"",
                       Str(request.filters[i].key), "\"");
      }
    }
  }
  return request;
}

absl::StatusOr<UsageRealtimeRequest> DecodeUsageRealtime(std::span<const uint8_t> payload) {
  if (payload.size() < kUsageRealtimeRequestSizeBytes) {
    return ShortPayload("USAGE_REALTIME", payload.size(), kUsageRealtimeRequestSizeBytes);
  }
  return UsageRealtimeRequest{
      .account_id = LoadU64(payload.data()),
      .metric_code = ReadFixedString(payload.data() + 8, kMetricCodeFieldBytes)};
}

absl::StatusOr<EventsListRequest> DecodeEventsList(std::span<const uint8_t> payload) {
  if (payload.size() < kEventsListRequestSizeBytes) {
    return ShortPayload("EVENTS_LIST", payload.size(), kEventsListRequestSizeBytes);
  }
  return EventsListRequest{.account_id = LoadU64(payload.data()),
                           .since_ns = LoadI64(payload.data() + 8),
                           .until_ns = LoadI64(payload.data() + 16)};
}

absl::StatusOr<AlertsListRequest> DecodeAlertsList(std::span<const uint8_t> payload) {
  if (payload.size() < kAlertsListRequestSizeBytes) {
    return ShortPayload("ALERTS_LIST", payload.size(), kAlertsListRequestSizeBytes);
  }
  return AlertsListRequest{.account_id = LoadU64(payload.data()),
                           .since_offset = LoadU64(payload.data() + 8)};
}

absl::StatusOr<BreakdownRequest> DecodeBreakdown(std::span<const uint8_t> payload) {
  const size_t size = payload.size();
  if (size < kUsageQueryBaseSizeBytes) {
    return ShortPayload("USAGE_QUERY_BREAKDOWN", size, kUsageQueryBaseSizeBytes);
  }
  const size_t group_by_count = payload[kQueryCountOffset];
  if (group_by_count < kGroupByKeysMin || group_by_count > kGroupByKeysMax) {
    return Invalid("USAGE_QUERY_BREAKDOWN: group_by_count ", group_by_count, " is not 1-4");
  }
  const size_t needed = kUsageQueryBaseSizeBytes + group_by_count * kGroupByKeyFieldBytes;
  if (size < needed) {
    return Invalid("USAGE_QUERY_BREAKDOWN: payload is ", size, " bytes, shorter than the ", needed,
                   " needed for ", group_by_count, " keys");
  }
  const QueryBase base = ReadQueryBase(payload.data());
  BreakdownRequest request{.account_id = base.account_id,
                           .period_start_ns = base.period_start_ns,
                           .period_end_ns = base.period_end_ns,
                           .metric_code = base.metric_code,
                           .group_by_count = static_cast<uint8_t>(group_by_count)};
  for (size_t i = 0; i < group_by_count; ++i) {
    request.group_by_keys[i] =
        ReadFixedString(payload.data() + kUsageQueryBaseSizeBytes + i * kGroupByKeyFieldBytes,
                        kGroupByKeyFieldBytes);
    for (size_t j = 0; j < i; ++j) {
      if (request.group_by_keys[j] == request.group_by_keys[i]) {
        return Invalid("USAGE_QUERY_BREAKDOWN: keys ", j, " and ", i, " are both \"",
                       Str(request.group_by_keys[i]), "\"");
      }
    }
  }
  return request;
}

absl::StatusOr<ClusterRebalanceRequest> DecodeClusterRebalance(std::span<const uint8_t> payload) {
  if (payload.size() < kClusterRebalanceRequestSizeBytes) {
    return ShortPayload("CLUSTER_REBALANCE", payload.size(), kClusterRebalanceRequestSizeBytes);
  }
  return ClusterRebalanceRequest{.new_node_count = payload[0]};
}

absl::Status AppendMetricDeleteRequest(uint32_t request_id, std::string_view metric_code,
                                       std::string* out) {
  return AppendOrRollBack(out, [&] {
    return WriteFixedString(
        metric_code, kMetricCodeFieldBytes, "metric_code",
        AppendRequestFrame(static_cast<uint8_t>(Opcode::kMetricDelete), kPartitionAuto, request_id,
                           kMetricDeleteRequestSizeBytes, out));
  });
}

absl::Status AppendUsageQueryRequest(uint32_t request_id, const UsageQueryRequest& request,
                                     std::string* out) {
  if (request.filters_count > kQueryFiltersMax) {
    return Invalid("USAGE_QUERY: filters_count ", static_cast<int>(request.filters_count),
                   " exceeds 4");
  }
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload = AppendRequestFrame(
        static_cast<uint8_t>(Opcode::kUsageQuery), kPartitionAuto, request_id,
        kUsageQueryBaseSizeBytes + request.filters_count * kDimensionFilterSizeBytes, out);
    absl::Status status = WriteQueryBase(
        {request.account_id, request.period_start_ns, request.period_end_ns, request.metric_code},
        request.filters_count, payload);
    for (size_t i = 0; status.ok() && i < request.filters_count; ++i) {
      uint8_t* filter = payload + kUsageQueryBaseSizeBytes + i * kDimensionFilterSizeBytes;
      std::memset(filter, 0, kDimensionFilterSizeBytes);
      status =
          WriteFixedString(request.filters[i].key, kDimensionKeyFieldBytes, "filter key", filter);
      if (!status.ok()) {
        break;
      }
      filter[kFilterValueCountOffset] = 1;
      status = WriteFixedString(request.filters[i].value, kDimensionValueFieldBytes, "filter value",
                                filter + kFilterValuesOffset);
    }
    return status;
  });
}

absl::Status AppendUsageRealtimeRequest(uint32_t request_id, const UsageRealtimeRequest& request,
                                        std::string* out) {
  return AppendOrRollBack(out, [&] {
    uint8_t* payload =
        AppendRequestFrame(static_cast<uint8_t>(Opcode::kUsageRealtime), kPartitionAuto, request_id,
                           kUsageRealtimeRequestSizeBytes, out);
    StoreU64(payload, request.account_id);
    return WriteFixedString(request.metric_code, kMetricCodeFieldBytes, "metric_code", payload + 8);
  });
}

void AppendEventsListRequest(uint32_t request_id, const EventsListRequest& request,
                             std::string* out) {
  uint8_t* payload = AppendRequestFrame(static_cast<uint8_t>(Opcode::kEventsList), kPartitionAuto,
                                        request_id, kEventsListRequestSizeBytes, out);
  StoreU64(payload, request.account_id);
  StoreI64(payload + 8, request.since_ns);
  StoreI64(payload + 16, request.until_ns);
}

void AppendAlertsListRequest(uint32_t request_id, const AlertsListRequest& request,
                             std::string* out) {
  uint8_t* payload = AppendRequestFrame(static_cast<uint8_t>(Opcode::kAlertsList), kPartitionAuto,
                                        request_id, kAlertsListRequestSizeBytes, out);
  StoreU64(payload, request.account_id);
  StoreU64(payload + 8, request.since_offset);
}

absl::Status AppendBreakdownRequest(uint32_t request_id, const BreakdownRequest& request,
                                    std::string* out) {
  if (request.group_by_count > kGroupByKeysMax) {
    return Invalid("USAGE_QUERY_BREAKDOWN: group_by_count ",
                   static_cast<int>(request.group_by_count), " exceeds 4");
  }
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload = AppendRequestFrame(
        static_cast<uint8_t>(Opcode::kUsageQueryBreakdown), kPartitionAuto, request_id,
        kUsageQueryBaseSizeBytes + request.group_by_count * kGroupByKeyFieldBytes, out);
    absl::Status status = WriteQueryBase(
        {request.account_id, request.period_start_ns, request.period_end_ns, request.metric_code},
        request.group_by_count, payload);
    for (size_t i = 0; status.ok() && i < request.group_by_count; ++i) {
      status = WriteFixedString(request.group_by_keys[i], kGroupByKeyFieldBytes, "group-by key",
                                payload + kUsageQueryBaseSizeBytes + i * kGroupByKeyFieldBytes);
    }
    return status;
  });
}

void AppendClusterRebalanceRequest(uint32_t request_id, const ClusterRebalanceRequest& request,
                                   std::string* out) {
  uint8_t* payload =
      AppendRequestFrame(static_cast<uint8_t>(Opcode::kClusterRebalance), kPartitionAuto,
                         request_id, kClusterRebalanceRequestSizeBytes, out);
  payload[0] = request.new_node_count;
}

void AppendEmptyRequest(uint8_t packet_type, uint32_t request_id, std::string* out) {
  AppendRequestFrame(packet_type, kPartitionAuto, request_id, 0, out);
}

// ---- Reply records --------------------------------------------------------------------------

void EncodeIngestResult(const IngestResult& result, uint8_t* out) {
  StoreU32(out, result.n_stored);
  StoreU32(out + 4, result.n_duplicates);
  StoreU64(out + 8, result.last_offset);
}

void EncodeAggValue(const AggValue& value, uint8_t* out) { EncodeAggValueFields(value, out); }

absl::Status EncodeAddress(std::string_view address, uint8_t* out) {
  if (address.size() > kAddressBytesMax) {
    return Invalid("address \"", Str(address), "\" is ", address.size(), " bytes, longer than 23");
  }
  return WriteFixedString(address, kAddressFieldBytes, "address", out);
}

absl::Status EncodeEventRecord(const EventRecord& record, uint8_t* out) {
  StoreU64(out, record.offset);
  StoreI64(out + 8, record.timestamp_ns);
  StoreU64(out + 16, record.account_id);
  absl::Status status = WriteFixedString(record.metric_code, kMetricCodeFieldBytes, "metric_code",
                                         out + kEventRecordCodeOffset);
  StoreU64(out + kEventRecordValueOffset, record.value);
  out[kEventRecordOperationOffset] = record.operation_type;
  std::memset(out + kEventRecordOperationOffset + 1, 0, 7);
  return status;
}

absl::Status EncodeAlertRecord(const AlertRecord& record, uint8_t* out) {
  StoreU64(out, record.offset);
  StoreU64(out + 8, record.account_id);
  absl::Status status = WriteFixedString(record.metric_code, kMetricCodeFieldBytes, "metric_code",
                                         out + kAlertRecordCodeOffset);
  if (status.ok()) {
    status = WriteFixedString(record.threshold_code, kThresholdCodeFieldBytes, "threshold_code",
                              out + kAlertRecordThresholdOffset);
  }
  StoreU64(out + kAlertRecordValueOffset, record.value_at_cross);
  StoreI64(out + kAlertRecordTimestampOffset, record.event_timestamp_ns);
  std::memset(out + kAlertRecordTimestampOffset + 8, 0, 8);
  return status;
}

absl::Status EncodeBreakdownEntry(const BreakdownEntry& entry, uint8_t* out) {
  if (entry.dims_count > kGroupByKeysMax) {
    return Invalid("BreakdownEntry: dims_count ", static_cast<int>(entry.dims_count), " exceeds 4");
  }
  std::memset(out, 0, kBreakdownAggOffset);
  out[0] = entry.dims_count;
  for (size_t i = 0; i < entry.dims_count; ++i) {
    absl::Status status = WriteFixedString(entry.dim_keys[i], kDimensionKeyFieldBytes,
                                           "dimension key", out + kBreakdownKeysOffset + 32 * i);
    if (status.ok()) {
      status = WriteFixedString(entry.dim_values[i], kDimensionValueFieldBytes, "dimension value",
                                out + kBreakdownValuesOffset + 32 * i);
    }
    if (!status.ok()) {
      return status;
    }
  }
  EncodeAggValueFields(entry.value, out + kBreakdownAggOffset);
  return absl::OkStatus();
}

void EncodeClusterStatus(const ClusterStatus& status, uint8_t* out) {
  out[0] = status.node_id;
  out[1] = status.n_nodes;
  std::memset(out + 2, 0, 6);
  StoreU64(out + 8, status.wal_offset);
  StoreU64(out + 16, status.segment_count);
  StoreU64(out + 24, status.memtable_entries);
  StoreI64(out + 32, status.uptime_ns);
  for (size_t p = 0; p < kPartitionCount; ++p) {
    uint8_t* entry = out + kClusterStatusHeaderSizeBytes + p * kClusterStatusEntrySizeBytes;
    StoreU32(entry, status.partitions[p].view_number);
    StoreU16(entry + 4, status.partitions[p].commit_number);
    entry[6] = status.partitions[p].role;
    entry[7] = status.partitions[p].leader;
  }
}

IngestResult DecodeIngestResult(const uint8_t* bytes) {
  return {.n_stored = LoadU32(bytes),
          .n_duplicates = LoadU32(bytes + 4),
          .last_offset = LoadU64(bytes + 8)};
}

AggValue DecodeAggValue(const uint8_t* bytes) {
  return {.sum = (static_cast<unsigned __int128>(LoadU64(bytes + 8)) << 64) | LoadU64(bytes),
          .count = LoadU64(bytes + 16),
          .max = LoadU64(bytes + 24),
          .last_value = LoadU64(bytes + 32),
          .last_timestamp_ns = LoadI64(bytes + 40),
          .alert_flags = LoadU64(bytes + 48)};
}

std::string_view DecodeAddress(const uint8_t* bytes) {
  return ReadFixedString(bytes, kAddressFieldBytes);
}

EventRecord DecodeEventRecord(const uint8_t* bytes) {
  return {.offset = LoadU64(bytes),
          .timestamp_ns = LoadI64(bytes + 8),
          .account_id = LoadU64(bytes + 16),
          .metric_code = ReadFixedString(bytes + kEventRecordCodeOffset, kMetricCodeFieldBytes),
          .value = LoadU64(bytes + kEventRecordValueOffset),
          .operation_type = bytes[kEventRecordOperationOffset]};
}

AlertRecord DecodeAlertRecord(const uint8_t* bytes) {
  return {.offset = LoadU64(bytes),
          .account_id = LoadU64(bytes + 8),
          .metric_code = ReadFixedString(bytes + kAlertRecordCodeOffset, kMetricCodeFieldBytes),
          .threshold_code =
              ReadFixedString(bytes + kAlertRecordThresholdOffset, kThresholdCodeFieldBytes),
          .value_at_cross = LoadU64(bytes + kAlertRecordValueOffset),
          .event_timestamp_ns = LoadI64(bytes + kAlertRecordTimestampOffset)};
}

AlertPush DecodeAlertPush(const uint8_t* bytes) {
  return {.record = DecodeAlertRecord(bytes), .node_id = bytes[kAlertRecordSizeBytes]};
}

BreakdownEntry DecodeBreakdownEntry(const uint8_t* bytes) {
  BreakdownEntry entry;
  // A dims_count above 4 is read as 4 (the slots only hold 4).
  entry.dims_count = std::min<uint8_t>(bytes[0], kGroupByKeysMax);
  for (size_t i = 0; i < entry.dims_count; ++i) {
    entry.dim_keys[i] = ReadFixedString(bytes + kBreakdownKeysOffset + 32 * i, 32);
    entry.dim_values[i] = ReadFixedString(bytes + kBreakdownValuesOffset + 32 * i, 32);
  }
  entry.value = DecodeAggValue(bytes + kBreakdownAggOffset);
  return entry;
}

PartitionMap DecodePartitionMap(const uint8_t* bytes) {
  PartitionMap map;
  for (size_t p = 0; p < kPartitionCount; ++p) {
    const uint8_t* slot = bytes + p * kPartitionMapEntrySizeBytes;
    map[p] = {.leader = DecodeAddress(slot),
              .replica0 = DecodeAddress(slot + kAddressSizeBytes),
              .replica1 = DecodeAddress(slot + 2 * kAddressSizeBytes)};
  }
  return map;
}

ClusterStatus DecodeClusterStatus(const uint8_t* bytes) {
  ClusterStatus status{.node_id = bytes[0],
                       .n_nodes = bytes[1],
                       .wal_offset = LoadU64(bytes + 8),
                       .segment_count = LoadU64(bytes + 16),
                       .memtable_entries = LoadU64(bytes + 24),
                       .uptime_ns = LoadI64(bytes + 32)};
  for (size_t p = 0; p < kPartitionCount; ++p) {
    const uint8_t* entry = bytes + kClusterStatusHeaderSizeBytes + p * kClusterStatusEntrySizeBytes;
    status.partitions[p] = {.view_number = LoadU32(entry),
                            .commit_number = LoadU16(entry + 4),
                            .role = entry[6],
                            .leader = entry[7]};
  }
  return status;
}

// ---- Reply frames ---------------------------------------------------------------------------

Status IngestReplyStatus(const IngestResult& result, bool stored_unknown_metric) {
  if (result.n_stored == 0 && result.n_duplicates >= 1) {
    return Status::kDuplicate;
  }
  if (stored_unknown_metric && result.n_stored >= 1) {
    return Status::kUnknownMetric;
  }
  return Status::kOk;
}

void AppendEmptyReply(Status status, uint32_t request_id, std::string* out) {
  UM_CHECK(status == Status::kOk || status == Status::kErr || status == Status::kBackpressure);
  AppendResponseHeader(static_cast<uint8_t>(status), request_id, 0, out);
}

void AppendIngestReply(Status status, uint32_t request_id, const IngestResult& result,
                       std::string* out) {
  UM_CHECK(status == Status::kOk || status == Status::kDuplicate ||
           status == Status::kUnknownMetric);
  EncodeIngestResult(result, AppendResponseHeader(static_cast<uint8_t>(status), request_id,
                                                  kIngestResultSizeBytes, out));
}

void AppendAggValueReply(uint32_t request_id, const AggValue& value, std::string* out) {
  EncodeAggValueFields(value, AppendResponseHeader(static_cast<uint8_t>(Status::kOk), request_id,
                                                   kAggValueSizeBytes, out));
}

absl::Status AppendRedirectReply(uint32_t request_id, std::string_view address, std::string* out) {
  if (address.empty()) {
    return Invalid("REDIRECT: empty address");
  }
  return AppendOrRollBack(out, [&] {
    return EncodeAddress(address, AppendResponseHeader(static_cast<uint8_t>(Status::kRedirect),
                                                       request_id, kAddressSizeBytes, out));
  });
}

absl::Status AppendEventListReply(uint32_t request_id, std::span<const EventRecord> records,
                                  std::string* out) {
  const size_t count = std::min(records.size(), kEventRecordsPerReplyMax);
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload =
        AppendResponseHeader(static_cast<uint8_t>(Status::kOk), request_id,
                             kListCountHeaderSizeBytes + count * kEventRecordSizeBytes, out);
    StoreU32(payload, static_cast<uint32_t>(count));
    StoreU32(payload + 4, 0);
    for (size_t i = 0; i < count; ++i) {
      absl::Status status = EncodeEventRecord(
          records[i], payload + kListCountHeaderSizeBytes + i * kEventRecordSizeBytes);
      if (!status.ok()) {
        return status;
      }
    }
    return absl::OkStatus();
  });
}

absl::Status AppendAlertListReply(uint32_t request_id, std::span<const AlertRecord> records,
                                  std::string* out) {
  const size_t count = std::min(records.size(), kAlertRecordsPerReplyMax);
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload =
        AppendResponseHeader(static_cast<uint8_t>(Status::kOk), request_id,
                             kListCountHeaderSizeBytes + count * kAlertRecordSizeBytes, out);
    StoreU32(payload, static_cast<uint32_t>(count));
    StoreU32(payload + 4, 0);
    for (size_t i = 0; i < count; ++i) {
      absl::Status status = EncodeAlertRecord(
          records[i], payload + kListCountHeaderSizeBytes + i * kAlertRecordSizeBytes);
      if (!status.ok()) {
        return status;
      }
    }
    return absl::OkStatus();
  });
}

absl::Status AppendBreakdownReply(uint32_t request_id, std::span<const BreakdownEntry> entries,
                                  std::string* out) {
  const size_t count = std::min(entries.size(), kBreakdownEntriesPerReplyMax);
  return AppendOrRollBack(out, [&]() -> absl::Status {
    uint8_t* payload = AppendResponseHeader(static_cast<uint8_t>(Status::kOk), request_id,
                                            count * kBreakdownEntrySizeBytes, out);
    for (size_t i = 0; i < count; ++i) {
      absl::Status status =
          EncodeBreakdownEntry(entries[i], payload + i * kBreakdownEntrySizeBytes);
      if (!status.ok()) {
        return status;
      }
    }
    return absl::OkStatus();
  });
}

absl::Status AppendPartitionMapReply(uint32_t request_id, const PartitionMap& map,
                                     std::string* out) {
  return AppendOrRollBack(out, [&] {
    return WritePartitionMap(map, AppendResponseHeader(static_cast<uint8_t>(Status::kOk),
                                                       request_id, kPartitionMapSizeBytes, out));
  });
}

void AppendClusterStatusReply(uint32_t request_id, const ClusterStatus& status, std::string* out) {
  EncodeClusterStatus(status, AppendResponseHeader(static_cast<uint8_t>(Status::kOk), request_id,
                                                   kClusterStatusSizeBytes, out));
}

absl::Status AppendAlertPushFrame(const AlertPush& push, std::string* out) {
  return AppendOrRollBack(out, [&] {
    uint8_t* payload = AppendResponseHeader(static_cast<uint8_t>(PushType::kAlertPush),
                                            kPushRequestId, kAlertPushSizeBytes, out);
    absl::Status status = EncodeAlertRecord(push.record, payload);
    payload[kAlertRecordSizeBytes] = push.node_id;
    std::memset(payload + kAlertRecordSizeBytes + 1, 0, 7);
    return status;
  });
}

absl::Status AppendPartitionMapPushFrame(const PartitionMap& map, std::string* out) {
  return AppendOrRollBack(out, [&] {
    return WritePartitionMap(
        map, AppendResponseHeader(static_cast<uint8_t>(PushType::kPartitionMapUpdate),
                                  kPushRequestId, kPartitionMapSizeBytes, out));
  });
}

}  // namespace unimeter::protocol
