// protocol/wire.h
//
// The client wire protocol v1 codec (shared/spec/wire-protocol-v1.md, "WP" below): constants,
// header validation (WP 2.4), zero-copy request views, request and reply encoders. Pure
// functions over byte buffers: no I/O, no clocks, no threads, no hash-map iteration.
//
// Layouts are [compat]: every byte here must match what the existing Go and Python SDKs send
// and expect. All integers are little-endian and are read and written field by field through
// node/base/endian.h; every pad byte is written as zero and ignored on input.
//
//   Decoding a request (server side):
//     RequestHeader header = DecodeRequestHeader(bytes);        // 16 bytes
//     HeaderVerdict verdict = ClassifyHeader(header, extensions);
//     ... drain or dispatch (FrameReader in frame_reader.h does this for a byte stream) ...
//     absl::StatusOr<IngestRequestView> ingest = IngestRequestView::Decode(header.partition,
//                                                                         payload);
//   A decode error is an InvalidArgument naming the violated rule; the server replies ERR.
//
//   Encoding a reply: Append*Reply(request_id, ..., &out) appends one complete frame
//   (12-byte response header + payload) to `out`. Encoders that take strings return an
//   absl::Status: InvalidArgument when a string does not fit its field (or contains a NUL);
//   on error `out` is left exactly as it was.
//
// Views (IngestRequestView, WireEventView, string_view fields of the request structs) point
// into the caller's payload buffer and are valid only as long as that buffer.
#ifndef UNIMETER_PROTOCOL_WIRE_H_
#define UNIMETER_PROTOCOL_WIRE_H_

#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace unimeter::protocol {

// ---------------------------------------------------------------------------------------------
// Framing constants (WP 2).

inline constexpr uint32_t kMagic = 0xC0FFEE01;
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kRequestHeaderSizeBytes = 16;
inline constexpr size_t kResponseHeaderSizeBytes = 12;
inline constexpr uint16_t kPartitionAuto = 0xFFFF;
inline constexpr uint32_t kPushRequestId = 0;

// ---------------------------------------------------------------------------------------------
// Limits (WP 3).

inline constexpr uint32_t kRequestEventsMax = 1024;
inline constexpr uint32_t kRequestPropertiesMax = 1024;
inline constexpr uint32_t kEventPropertiesMax = 255;
inline constexpr size_t kDimensionsPerMetricMax = 4;
inline constexpr size_t kValuesPerDimensionMax = 8;
inline constexpr size_t kThresholdsPerMetricMax = 8;
inline constexpr size_t kQueryFiltersMax = 4;
inline constexpr size_t kGroupByKeysMin = 1;
inline constexpr size_t kGroupByKeysMax = 4;
inline constexpr uint8_t kBillingCycleDayMin = 1;
inline constexpr uint8_t kBillingCycleDayMax = 28;
inline constexpr size_t kAlertRecordsPerReplyMax = 256;
inline constexpr size_t kEventRecordsPerReplyMax = 1024;
inline constexpr size_t kBreakdownEntriesPerReplyMax = 614;
inline constexpr uint32_t kPartitionCount = 256;
inline constexpr uint8_t kNodeIdMax = 254;
inline constexpr uint8_t kNodeIdNone = 0xFF;
inline constexpr uint8_t kAggTypeMax = 4;        // 0 COUNT .. 4 COUNT_UNIQUE.
inline constexpr uint8_t kOperationTypeMax = 2;  // 0 NONE, 1 ADD, 2 REMOVE.
inline constexpr size_t kHttpRequestSizeBytesMax = 16'384;

// Field widths of the char[N] string fields (WP 6.1). A string may fill its whole field.
inline constexpr size_t kMetricCodeFieldBytes = 64;
inline constexpr size_t kFieldNameFieldBytes = 64;
inline constexpr size_t kPropertyKeyFieldBytes = 32;
inline constexpr size_t kPropertyValueFieldBytes = 64;
inline constexpr size_t kDimensionKeyFieldBytes = 32;
inline constexpr size_t kDimensionValueFieldBytes = 32;
inline constexpr size_t kThresholdCodeFieldBytes = 32;
inline constexpr size_t kGroupByKeyFieldBytes = 32;
inline constexpr size_t kAddressFieldBytes = 24;
inline constexpr size_t kAddressBytesMax = 23;  // `host:port`, always NUL-terminated.

// ---------------------------------------------------------------------------------------------
// Record sizes (WP 6.16).

inline constexpr size_t kWireEventSizeBytes = 96;
inline constexpr size_t kPropPairSizeBytes = 96;
inline constexpr size_t kDimensionFilterSizeBytes = 292;
inline constexpr size_t kAlertThresholdSizeBytes = 48;
inline constexpr size_t kAggValueSizeBytes = 56;
inline constexpr size_t kAddressSizeBytes = 24;
inline constexpr size_t kIngestResultSizeBytes = 16;
inline constexpr size_t kMetricSchemaBaseSizeBytes = 132;
inline constexpr size_t kMetricSchemaThresholdHeaderSizeBytes = 8;
inline constexpr size_t kMetricSchemaPeriodSectionSizeBytes = 8;
inline constexpr size_t kMetricSchemaSizeBytesMax = 1700;
inline constexpr size_t kEventRecordSizeBytes = 104;
inline constexpr size_t kAlertRecordSizeBytes = 136;
inline constexpr size_t kAlertPushSizeBytes = 144;
inline constexpr size_t kBreakdownEntrySizeBytes = 320;
inline constexpr size_t kPartitionMapEntrySizeBytes = 96;
inline constexpr size_t kPartitionMapSizeBytes = 24'576;
inline constexpr size_t kClusterStatusHeaderSizeBytes = 40;
inline constexpr size_t kClusterStatusEntrySizeBytes = 8;
inline constexpr size_t kClusterStatusSizeBytes = 2088;
inline constexpr size_t kIngestHeaderSizeBytes = 8;     // event_count u32, props_count u32.
inline constexpr size_t kListCountHeaderSizeBytes = 8;  // count u32, pad u32.
inline constexpr size_t kUsageQueryBaseSizeBytes = 96;
inline constexpr size_t kUsageQueryNoFiltersSizeBytesMin = 88;
inline constexpr size_t kUsageRealtimeRequestSizeBytes = 72;
inline constexpr size_t kEventsListRequestSizeBytes = 24;
inline constexpr size_t kAlertsListRequestSizeBytes = 16;
inline constexpr size_t kMetricDeleteRequestSizeBytes = 64;
inline constexpr size_t kClusterRebalanceRequestSizeBytes = 1;

// Request payloads: at most 1,024 events and 1,024 property pairs. Reply payloads share it.
inline constexpr uint32_t kPayloadSizeBytesMax = 196'616;
inline constexpr uint32_t kReplyPayloadSizeBytesMax = kPayloadSizeBytesMax;
// Above this a server may reply ERR and close instead of draining (WP 2.4 step 2).
inline constexpr uint32_t kDrainSizeBytesMax = 16u * 1024 * 1024;

// The size of a MetricSchema record with every section present (WP 6.9).
constexpr size_t MetricSchemaSizeBytes(size_t dimension_count, size_t threshold_count) {
  return kMetricSchemaBaseSizeBytes + kDimensionFilterSizeBytes * dimension_count +
         kMetricSchemaThresholdHeaderSizeBytes + kAlertThresholdSizeBytes * threshold_count +
         kMetricSchemaPeriodSectionSizeBytes;
}

static_assert(kRequestHeaderSizeBytes == 4 + 1 + 1 + 2 + 4 + 4);
static_assert(kResponseHeaderSizeBytes == 1 + 3 + 4 + 4);
static_assert(kWireEventSizeBytes == kMetricCodeFieldBytes + 8 + 8 + 8 + 1 + 1 + 6);
static_assert(kPropPairSizeBytes == kPropertyKeyFieldBytes + kPropertyValueFieldBytes);
static_assert(kDimensionFilterSizeBytes ==
              kDimensionKeyFieldBytes + 1 + 3 + kValuesPerDimensionMax * kDimensionValueFieldBytes);
static_assert(kAlertThresholdSizeBytes == kThresholdCodeFieldBytes + 8 + 1 + 7);
static_assert(kAggValueSizeBytes == 7 * 8);
static_assert(kAddressSizeBytes == kAddressFieldBytes &&
              kAddressBytesMax + 1 == kAddressFieldBytes);
static_assert(kIngestResultSizeBytes == 4 + 4 + 8);
static_assert(kMetricSchemaBaseSizeBytes ==
              kMetricCodeFieldBytes + 1 + 1 + 1 + 1 + kFieldNameFieldBytes);
static_assert(MetricSchemaSizeBytes(1, 1) == 488);
static_assert(MetricSchemaSizeBytes(kDimensionsPerMetricMax, kThresholdsPerMetricMax) ==
              kMetricSchemaSizeBytesMax);
static_assert(kEventRecordSizeBytes == 8 + 8 + 8 + kMetricCodeFieldBytes + 8 + 1 + 7);
static_assert(kAlertRecordSizeBytes ==
              8 + 8 + kMetricCodeFieldBytes + kThresholdCodeFieldBytes + 8 + 8 + 8);
static_assert(kAlertPushSizeBytes == kAlertRecordSizeBytes + 1 + 7);
static_assert(kBreakdownEntrySizeBytes ==
              8 + 2 * kGroupByKeysMax * kDimensionKeyFieldBytes + kAggValueSizeBytes);
static_assert(kPartitionMapEntrySizeBytes == 3 * kAddressSizeBytes + 24);
static_assert(kPartitionMapSizeBytes == kPartitionCount * kPartitionMapEntrySizeBytes);
static_assert(kClusterStatusSizeBytes ==
              kClusterStatusHeaderSizeBytes + kPartitionCount * kClusterStatusEntrySizeBytes);
static_assert(kClusterStatusEntrySizeBytes == 4 + 2 + 1 + 1);
static_assert(kUsageQueryBaseSizeBytes == 8 + 8 + 8 + kMetricCodeFieldBytes + 1 + 7);
static_assert(kUsageRealtimeRequestSizeBytes == 8 + kMetricCodeFieldBytes);
static_assert(kPayloadSizeBytesMax == kIngestHeaderSizeBytes +
                                          kRequestEventsMax * kWireEventSizeBytes +
                                          kRequestPropertiesMax * kPropPairSizeBytes);
static_assert(kBreakdownEntriesPerReplyMax * kBreakdownEntrySizeBytes <= kReplyPayloadSizeBytesMax);
static_assert((kBreakdownEntriesPerReplyMax + 1) * kBreakdownEntrySizeBytes >
              kReplyPayloadSizeBytesMax);
static_assert(kListCountHeaderSizeBytes + kEventRecordsPerReplyMax * kEventRecordSizeBytes <=
              kReplyPayloadSizeBytesMax);
static_assert(kListCountHeaderSizeBytes + kAlertRecordsPerReplyMax * kAlertRecordSizeBytes <=
              kReplyPayloadSizeBytesMax);
static_assert(kPartitionMapSizeBytes <= kReplyPayloadSizeBytesMax);
static_assert(kPayloadSizeBytesMax < kDrainSizeBytesMax);

// ---------------------------------------------------------------------------------------------
// Status codes (WP 4) and opcodes (WP 5).

enum class Status : uint8_t {
  kOk = 0,
  kDuplicate = 1,
  kErr = 2,
  kUnknownMetric = 3,
  kRedirect = 4,
  kNotLeader = 5,  // Defined for compatibility; never sent by our server.
  kBackpressure = 6,
};
inline constexpr uint8_t kStatusMax = 6;  // 7-255 reserved: never sent on a reply.

enum class Opcode : uint8_t {
  kIngestAsync = 0x00,
  kIngestSync = 0x01,
  kGetPartitionMap = 0x10,
  kPartitionMapUpdate = 0x11,  // Push only (server -> client).
  kMetricPut = 0x20,
  kMetricDelete = 0x21,
  kMetricList = 0x22,
  kUsageQuery = 0x30,
  kUsageRealtime = 0x31,
  kEventsList = 0x32,
  kAlertsList = 0x33,
  kAlertPushEnable = 0x34,
  kAlertPush = 0x35,  // Push only (server -> client).
  kUsageQueryBreakdown = 0x36,
  kClusterStatus = 0x40,
  kClusterRebalance = 0x41,
  kReservedTransfer0 = 0x42,  // Internal transfer in the reference server: always ERR.
  kReservedTransfer1 = 0x43,
  kReservedTransfer2 = 0x44,
};
inline constexpr uint8_t kExtensionOpcodeMin = 0x80;  // 0x80-0xFF: our extensions (WP 7.14).

// Push types: the status byte of a push frame (request_id 0, WP 2.3).
enum class PushType : uint8_t {
  kPartitionMapUpdate = 0x11,
  kAlertPush = 0x35,
};

enum class OperationType : uint8_t {
  kNone = 0,
  kAdd = 1,
  kRemove = 2,
};

// True for the v1 client -> server opcodes this codec decodes (not pushes, not reserved, not
// extensions).
bool IsV1RequestOpcode(uint8_t packet_type);

// A short name for logs ("INGEST_SYNC"); "UNKNOWN" for unassigned codes, "EXTENSION" for
// 0x80-0xFF.
std::string_view OpcodeName(uint8_t packet_type);

// The extension opcodes (0x80-0xFF) that the server implements. Empty by default: every
// extension code is answered with ERR until it is registered here.
class ExtensionOpcodeSet {
 public:
  // REQUIRES: opcode >= kExtensionOpcodeMin.
  void Add(uint8_t opcode);
  bool Contains(uint8_t opcode) const;

 private:
  std::bitset<256 - kExtensionOpcodeMin> implemented_;
};

// ---------------------------------------------------------------------------------------------
// Headers (WP 2.1-2.4).

struct RequestHeader {
  uint32_t magic = kMagic;
  uint8_t version = kVersion;
  uint8_t packet_type = 0;
  uint16_t partition = kPartitionAuto;
  uint32_t payload_len = 0;
  uint32_t request_id = 0;
  bool operator==(const RequestHeader&) const = default;
};

// Reads all five fields whatever their values (with a bad magic, request_id is bytes 12-15).
// REQUIRES: `bytes` points at kRequestHeaderSizeBytes readable bytes.
RequestHeader DecodeRequestHeader(const uint8_t* bytes);
void EncodeRequestHeader(const RequestHeader& header, uint8_t* out);

struct ResponseHeader {
  uint8_t status = 0;  // A Status, or a PushType when request_id == 0.
  uint32_t request_id = 0;
  uint32_t payload_len = 0;
  bool operator==(const ResponseHeader&) const = default;
};

// REQUIRES: `bytes` points at kResponseHeaderSizeBytes bytes.
ResponseHeader DecodeResponseHeader(const uint8_t* bytes);
void EncodeResponseHeader(const ResponseHeader& header, uint8_t* out);

// What the server does with a request header (WP 2.4, steps 1-4, in that order).
enum class HeaderAction : uint8_t {
  kDispatch,         // Read the payload and decode it for the opcode (steps 5-6 follow).
  kDrainThenReject,  // Read and discard payload_len bytes, then reply ERR echoing request_id.
  kRejectThenClose,  // Reply ERR echoing request_id (bytes 12-15), then close the connection.
};

enum class HeaderRejection : uint8_t {
  kNone,
  kBadMagic,         // Step 1.
  kPayloadTooLarge,  // Step 2.
  kBadVersion,       // Step 3.
  kBadOpcode,        // Step 4: unknown, push-only, reserved or unimplemented extension.
};

struct HeaderVerdict {
  HeaderAction action = HeaderAction::kDispatch;
  HeaderRejection rejection = HeaderRejection::kNone;
  // Step 2 with payload_len > kDrainSizeBytesMax: the server may reply ERR and close instead
  // of draining.
  bool may_close_instead = false;
  bool operator==(const HeaderVerdict&) const = default;
};

HeaderVerdict ClassifyHeader(const RequestHeader& header,
                             const ExtensionOpcodeSet& extensions = ExtensionOpcodeSet());

std::string_view HeaderRejectionName(HeaderRejection rejection);

// ---------------------------------------------------------------------------------------------
// Strings (WP 6.1).

// The string of a char[N] field: the bytes up to the first NUL, or all `width` bytes.
// REQUIRES: `field` points at `width` readable bytes.
std::string_view ReadFixedString(const uint8_t* field, size_t width);

// Writes `value` NUL-padded to `width` bytes. A value of exactly `width` bytes fills the
// field without terminator. InvalidArgument (nothing written) if it is longer or contains a
// NUL byte; `what` names the field in the message.
absl::Status WriteFixedString(std::string_view value, size_t width, std::string_view what,
                              uint8_t* out);

// ---------------------------------------------------------------------------------------------
// INGEST_ASYNC / INGEST_SYNC requests (WP 6.2, 6.3, 7.1): zero-copy views.

class PropPairView {
 public:
  explicit PropPairView(const uint8_t* pair) : pair_(pair) {}
  std::string_view key() const { return ReadFixedString(pair_, kPropertyKeyFieldBytes); }
  std::string_view value() const {
    return ReadFixedString(pair_ + kPropertyKeyFieldBytes, kPropertyValueFieldBytes);
  }

 private:
  const uint8_t* pair_;
};

class WireEventView {
 public:
  WireEventView(const uint8_t* event, const uint8_t* props) : event_(event), props_(props) {}

  std::string_view metric_code() const;
  uint64_t account_id() const;
  int64_t timestamp_ns() const;  // 0 = the partition owner assigns it.
  uint64_t value() const;
  OperationType operation_type() const;  // Validated by IngestRequestView::Decode.
  uint8_t props_count() const;
  // REQUIRES: index < props_count().
  PropPairView prop(size_t index) const;

 private:
  const uint8_t* event_;
  const uint8_t* props_;  // This event's first PropPair.
};

class IngestRequestView {
 public:
  // Validates `payload` against WP 7.1 (payload >= 8 + 96E + 96P, E <= 1024, P <= 1024, the
  // per-event props_count sum equals P, operation_type in {0, 1, 2}, header partition 0xFFFF
  // or 0-255). InvalidArgument naming the first violation. Bytes past the layout are ignored.
  // Does not allocate; the view borrows `payload`.
  static absl::StatusOr<IngestRequestView> Decode(uint16_t header_partition,
                                                  std::span<const uint8_t> payload);

  uint32_t event_count() const { return event_count_; }
  uint32_t props_count() const { return props_count_; }
  uint16_t partition() const { return partition_; }
  bool partition_is_auto() const { return partition_ == kPartitionAuto; }
  // REQUIRES: index < event_count().
  WireEventView event(size_t index) const;

 private:
  IngestRequestView() = default;

  const uint8_t* events_ = nullptr;
  const uint8_t* props_ = nullptr;
  uint32_t event_count_ = 0;
  uint32_t props_count_ = 0;
  uint16_t partition_ = kPartitionAuto;
  // Index of the first PropPair of each event (the prefix sums of props_count).
  std::array<uint16_t, kRequestEventsMax> props_begin_{};
};

// Client side (tests, simulator, benchmarks): one event to encode.
struct PropPair {
  std::string_view key{};
  std::string_view value{};
};
struct IngestEvent {
  std::string_view metric_code{};
  uint64_t account_id = 0;
  int64_t timestamp_ns = 0;
  uint64_t value = 0;
  uint8_t operation_type = 0;  // Raw byte, so tests can send invalid values.
  std::span<const PropPair> props{};
};

// Appends a complete ingest request frame. InvalidArgument if a string does not fit, an event
// has more than 255 props, or the counts exceed the limits.
// REQUIRES: opcode is kIngestAsync or kIngestSync.
absl::Status AppendIngestRequest(Opcode opcode, uint16_t partition, uint32_t request_id,
                                 std::span<const IngestEvent> events, std::string* out);

// ---------------------------------------------------------------------------------------------
// Metric schemas (WP 6.4, 6.5, 6.9, 7.3, 7.5).

inline constexpr uint8_t kPeriodTypeFixed = 0;
inline constexpr uint8_t kPeriodTypeCalendar = 1;
inline constexpr uint8_t kPeriodTypeDay = 2;

struct DimensionSpec {
  std::string key{};
  std::vector<std::string> values{};  // Allowed values, declaration order; at most 8.
  bool operator==(const DimensionSpec&) const = default;
};

struct ThresholdSpec {
  std::string code{};
  uint64_t value = 0;
  bool recurring = false;  // Wire: 0 = false, non-zero = true; written as 0 or 1.
  bool operator==(const ThresholdSpec&) const = default;
};

// A MetricSchema record as decoded from METRIC_PUT (after the WP 7.3 normalisations) or as
// written in a METRIC_LIST reply. node/metering has its own MetricSchema; the server converts.
struct MetricSchemaRecord {
  std::string code{};    // 1-64 bytes on decode (64 = the field had no NUL; echoed byte-exact).
  uint8_t agg_type = 0;  // 0 COUNT, 1 SUM, 2 MAX, 3 LATEST, 4 COUNT_UNIQUE.
  bool recurring = false;
  std::string field_name{};
  std::vector<DimensionSpec> dimensions{};
  std::vector<ThresholdSpec> thresholds{};
  uint8_t period_type = kPeriodTypeFixed;  // Raw byte as sent; unknown values behave as FIXED.
  uint8_t billing_cycle_day = 1;           // 1-28 after normalisation.
  bool operator==(const MetricSchemaRecord&) const = default;
};

// 0 -> 1 [compat], above 28 -> 28 [ours].
uint8_t NormalizeBillingCycleDay(uint8_t billing_cycle_day);

// Decodes a METRIC_PUT payload (WP 7.3): optional threshold and period sections, value_count
// above 8 read as 8, billing_cycle_day normalised. InvalidArgument on a short payload,
// filter_count > 4, alert_count > 8, an empty code, agg_type > 4 or duplicate dimension keys.
absl::StatusOr<MetricSchemaRecord> DecodeMetricPut(std::span<const uint8_t> payload);

// The encoded size of `schema` with every section present.
size_t MetricSchemaRecordSizeBytes(const MetricSchemaRecord& schema);

// Appends one MetricSchema record with all sections (no frame header). InvalidArgument if a
// string does not fit its field or a count is over its limit (checked before writing).
absl::Status AppendMetricSchemaRecord(const MetricSchemaRecord& schema, std::string* out);

// Appends a METRIC_PUT request frame carrying `schema` with all sections.
absl::Status AppendMetricPutRequest(uint32_t request_id, const MetricSchemaRecord& schema,
                                    std::string* out);

// Appends an OK METRIC_LIST reply: count header, then the records of `schemas` in the given
// order (the server passes them ascending by code) as long as each fits completely in the
// 196,616-byte reply; `count` is the number written (also returned via `written_count`).
absl::Status AppendMetricListReply(uint32_t request_id, std::span<const MetricSchemaRecord> schemas,
                                   std::string* out, size_t* written_count = nullptr);

// Decodes a METRIC_LIST reply payload (client side): every record must have all sections.
absl::StatusOr<std::vector<MetricSchemaRecord>> DecodeMetricListReply(
    std::span<const uint8_t> payload);

// ---------------------------------------------------------------------------------------------
// Other requests (WP 7.4-7.13). String fields are views into the payload.

struct MetricDeleteRequest {
  std::string_view metric_code{};  // May be empty: deleting a missing metric is OK.
};
absl::StatusOr<MetricDeleteRequest> DecodeMetricDelete(std::span<const uint8_t> payload);

struct UsageFilter {
  std::string_view key{};
  std::string_view value{};  // values[0] of the DimensionFilter.
};

struct UsageQueryRequest {
  uint64_t account_id = 0;
  int64_t period_start_ns = 0;  // Inclusive.
  int64_t period_end_ns = 0;    // Exclusive.
  std::string_view metric_code{};
  uint8_t filters_count = 0;
  std::array<UsageFilter, kQueryFiltersMax> filters{};
};
// 88-95 bytes = no filters; shorter, filters_count > 4, too short for the filters, or two
// filters with the same key => InvalidArgument.
absl::StatusOr<UsageQueryRequest> DecodeUsageQuery(std::span<const uint8_t> payload);

struct UsageRealtimeRequest {
  uint64_t account_id = 0;
  std::string_view metric_code{};
};
absl::StatusOr<UsageRealtimeRequest> DecodeUsageRealtime(std::span<const uint8_t> payload);

struct EventsListRequest {
  uint64_t account_id = 0;
  int64_t since_ns = 0;  // Inclusive.
  int64_t until_ns = 0;  // Inclusive.
};
absl::StatusOr<EventsListRequest> DecodeEventsList(std::span<const uint8_t> payload);

struct AlertsListRequest {
  uint64_t account_id = 0;  // 0 = all accounts.
  uint64_t since_offset = 0;
};
absl::StatusOr<AlertsListRequest> DecodeAlertsList(std::span<const uint8_t> payload);

struct BreakdownRequest {
  uint64_t account_id = 0;
  int64_t period_start_ns = 0;
  int64_t period_end_ns = 0;
  std::string_view metric_code{};
  uint8_t group_by_count = 0;  // 1-4.
  std::array<std::string_view, kGroupByKeysMax> group_by_keys{};
};
// G outside 1-4, a payload shorter than 96 + 32G, or a repeated key => InvalidArgument.
// (Undeclared keys and unregistered metrics need the registry: the server checks them.)
absl::StatusOr<BreakdownRequest> DecodeBreakdown(std::span<const uint8_t> payload);

struct ClusterRebalanceRequest {
  uint8_t new_node_count = 0;
};
absl::StatusOr<ClusterRebalanceRequest> DecodeClusterRebalance(std::span<const uint8_t> payload);

// Client-side request encoders (complete frames, header partition 0xFFFF).
absl::Status AppendMetricDeleteRequest(uint32_t request_id, std::string_view metric_code,
                                       std::string* out);
absl::Status AppendUsageQueryRequest(uint32_t request_id, const UsageQueryRequest& request,
                                     std::string* out);
absl::Status AppendUsageRealtimeRequest(uint32_t request_id, const UsageRealtimeRequest& request,
                                        std::string* out);
void AppendEventsListRequest(uint32_t request_id, const EventsListRequest& request,
                             std::string* out);
void AppendAlertsListRequest(uint32_t request_id, const AlertsListRequest& request,
                             std::string* out);
absl::Status AppendBreakdownRequest(uint32_t request_id, const BreakdownRequest& request,
                                    std::string* out);
void AppendClusterRebalanceRequest(uint32_t request_id, const ClusterRebalanceRequest& request,
                                   std::string* out);
// GET_PARTITION_MAP, METRIC_LIST, ALERT_PUSH_ENABLE, CLUSTER_STATUS (or any opcode, for tests).
void AppendEmptyRequest(uint8_t packet_type, uint32_t request_id, std::string* out);

// ---------------------------------------------------------------------------------------------
// Reply records (WP 6.6-6.15) and reply frames.

struct IngestResult {
  uint32_t n_stored = 0;
  uint32_t n_duplicates = 0;
  uint64_t last_offset = 0;  // 0 if nothing was stored.
  bool operator==(const IngestResult&) const = default;
};

struct AggValue {
  unsigned __int128 sum = 0;  // Written as sum_lo (low 64 bits) then sum_hi.
  uint64_t count = 0;
  uint64_t max = 0;
  uint64_t last_value = 0;
  int64_t last_timestamp_ns = 0;
  uint64_t alert_flags = 0;
  bool operator==(const AggValue&) const = default;
};

struct EventRecord {
  uint64_t offset = 0;
  int64_t timestamp_ns = 0;
  uint64_t account_id = 0;
  std::string_view metric_code{};
  uint64_t value = 0;
  uint8_t operation_type = 0;
};

struct AlertRecord {
  uint64_t offset = 0;
  uint64_t account_id = 0;
  std::string_view metric_code{};
  std::string_view threshold_code{};
  uint64_t value_at_cross = 0;
  int64_t event_timestamp_ns = 0;
};

struct AlertPush {
  AlertRecord record{};
  uint8_t node_id = 0;
};

struct BreakdownEntry {
  uint8_t dims_count = 0;
  std::array<std::string_view, kGroupByKeysMax> dim_keys{};
  std::array<std::string_view, kGroupByKeysMax> dim_values{};
  AggValue value{};
};

struct PartitionMapEntry {
  std::string_view leader{};  // Never empty in what our server sends (WP 6.14).
  std::string_view replica0{};
  std::string_view replica1{};
};
using PartitionMap = std::array<PartitionMapEntry, kPartitionCount>;

struct PartitionStatus {
  uint32_t view_number = 0;
  uint16_t commit_number = 0;
  uint8_t role = 0;  // 0 = owner, 1 = replica.
  uint8_t leader = kNodeIdNone;
  bool operator==(const PartitionStatus&) const = default;
};

struct ClusterStatus {
  uint8_t node_id = 0;
  uint8_t n_nodes = 0;
  uint64_t wal_offset = 0;
  uint64_t segment_count = 0;
  uint64_t memtable_entries = 0;
  int64_t uptime_ns = 0;
  std::array<PartitionStatus, kPartitionCount> partitions{};
  bool operator==(const ClusterStatus&) const = default;
};

// Fixed-size record encoders; each writes exactly its record size, pads zeroed.
void EncodeIngestResult(const IngestResult& result, uint8_t* out);
void EncodeAggValue(const AggValue& value, uint8_t* out);
absl::Status EncodeAddress(std::string_view address, uint8_t* out);  // <= 23 bytes.
absl::Status EncodeEventRecord(const EventRecord& record, uint8_t* out);
absl::Status EncodeAlertRecord(const AlertRecord& record, uint8_t* out);
absl::Status EncodeBreakdownEntry(const BreakdownEntry& entry, uint8_t* out);
void EncodeClusterStatus(const ClusterStatus& status, uint8_t* out);

// Fixed-size record decoders (client side, tests). REQUIRES: `bytes` holds the record size.
// String views point into `bytes`.
IngestResult DecodeIngestResult(const uint8_t* bytes);
AggValue DecodeAggValue(const uint8_t* bytes);
std::string_view DecodeAddress(const uint8_t* bytes);
EventRecord DecodeEventRecord(const uint8_t* bytes);
AlertRecord DecodeAlertRecord(const uint8_t* bytes);
AlertPush DecodeAlertPush(const uint8_t* bytes);
BreakdownEntry DecodeBreakdownEntry(const uint8_t* bytes);
PartitionMap DecodePartitionMap(const uint8_t* bytes);  // kPartitionMapSizeBytes.
ClusterStatus DecodeClusterStatus(const uint8_t* bytes);

// The ingest status precedence of WP 7.1 [compat]: DUPLICATE if nothing was stored and at
// least one duplicate; else UNKNOWN_METRIC if a stored event names an unregistered metric;
// else OK.
Status IngestReplyStatus(const IngestResult& result, bool stored_unknown_metric);

// Reply frames. Each appends a 12-byte header and the payload to `out`.
//
// An empty-payload reply. REQUIRES: status is kOk, kErr or kBackpressure.
void AppendEmptyReply(Status status, uint32_t request_id, std::string* out);
// REQUIRES: status is kOk, kDuplicate or kUnknownMetric.
void AppendIngestReply(Status status, uint32_t request_id, const IngestResult& result,
                       std::string* out);
// USAGE_QUERY / USAGE_REALTIME: OK + 56-byte AggValue.
void AppendAggValueReply(uint32_t request_id, const AggValue& value, std::string* out);
// REDIRECT: status 4 + 24-byte Address. InvalidArgument if `address` is empty or over 23 bytes.
absl::Status AppendRedirectReply(uint32_t request_id, std::string_view address, std::string* out);
// EVENTS_LIST: count header + records; at most the first 1,024 records are written.
absl::Status AppendEventListReply(uint32_t request_id, std::span<const EventRecord> records,
                                  std::string* out);
// ALERTS_LIST: count header + records; at most the first 256 records are written.
absl::Status AppendAlertListReply(uint32_t request_id, std::span<const AlertRecord> records,
                                  std::string* out);
// USAGE_QUERY_BREAKDOWN: no count header; at most the first 614 entries are written.
absl::Status AppendBreakdownReply(uint32_t request_id, std::span<const BreakdownEntry> entries,
                                  std::string* out);
// GET_PARTITION_MAP: OK + 24,576 bytes. InvalidArgument if an address is over 23 bytes or a
// leader is empty (an empty leader crashes the existing clients, WP 9.2).
absl::Status AppendPartitionMapReply(uint32_t request_id, const PartitionMap& map,
                                     std::string* out);
// CLUSTER_STATUS: OK + 2,088 bytes.
void AppendClusterStatusReply(uint32_t request_id, const ClusterStatus& status, std::string* out);

// Push frames (request_id 0, status byte = push type, WP 8).
absl::Status AppendAlertPushFrame(const AlertPush& push, std::string* out);
absl::Status AppendPartitionMapPushFrame(const PartitionMap& map, std::string* out);

}  // namespace unimeter::protocol

#endif  // UNIMETER_PROTOCOL_WIRE_H_
