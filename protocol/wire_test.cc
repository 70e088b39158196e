// protocol/wire_test.cc
//
// Goal: every [compat] byte of wire-protocol-v1.md that the codec produces or consumes is pinned
// here: the worked example of section 13 byte for byte, every record size, every validation
// rule of section 7 (each failure on its own), and encode/decode round trips. Method: build
// payloads field by field with node/base/endian.h (independently of the encoders where it
// matters), then compare bytes or decoded fields.
#include "protocol/wire.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/base/endian.h"

namespace unimeter::protocol {
namespace {

// "01 EE FF C0" -> the bytes.
std::string Hex(std::string_view text) {
  std::string bytes;
  int high = -1;
  for (char c : text) {
    int digit = -1;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    }
    if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    }
    if (digit < 0) {
      continue;
    }
    if (high < 0) {
      high = digit;
    } else {
      bytes.push_back(static_cast<char>(high * 16 + digit));
      high = -1;
    }
  }
  return bytes;
}

std::span<const uint8_t> Span(const std::string& bytes) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

uint8_t* Mutable(std::string& bytes, size_t offset = 0) {
  return reinterpret_cast<uint8_t*>(bytes.data() + offset);
}

// The payload of a request frame built by an Append*Request function.
std::string PayloadOf(const std::string& frame) { return frame.substr(kRequestHeaderSizeBytes); }
std::string ReplyPayloadOf(const std::string& frame) {
  return frame.substr(kResponseHeaderSizeBytes);
}

ResponseHeader ReplyHeaderOf(const std::string& frame) {
  EXPECT_GE(frame.size(), kResponseHeaderSizeBytes);
  return DecodeResponseHeader(reinterpret_cast<const uint8_t*>(frame.data()));
}

bool HasMessage(const absl::Status& status, std::string_view part) {
  return std::string(status.message()).find(std::string(part)) != std::string::npos;
}

// ---- Section 13: the worked example -----------------------------------------------------------

std::string WorkedExampleRequest() {
  const IngestEvent events[2] = {
      {.metric_code = "api_calls", .account_id = 42, .timestamp_ns = 0, .value = 1},
      {.metric_code = "api_calls", .account_id = 42, .timestamp_ns = 0, .value = 1},
  };
  std::string frame;
  EXPECT_TRUE(AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 7, events, &frame).ok());
  return frame;
}

TEST(WorkedExample, RequestHeaderAndFirstEvent) {
  const std::string frame = WorkedExampleRequest();
  ASSERT_EQ(frame.size(), 16u + 200u);
  EXPECT_EQ(frame.substr(0, 16), Hex("01 EE FF C0 01 01 FF FF C8 00 00 00 07 00 00 00"));
  EXPECT_EQ(frame.substr(16, 8), Hex("02 00 00 00 00 00 00 00"));
  const std::string first_event =
      "api_calls" + std::string(55, '\0') + Hex("2A 00 00 00 00 00 00 00") + std::string(8, '\0') +
      Hex("01 00 00 00 00 00 00 00") + Hex("00 00") + std::string(6, '\0');
  ASSERT_EQ(first_event.size(), kWireEventSizeBytes);
  EXPECT_EQ(frame.substr(24, 96), first_event);

  const RequestHeader header = DecodeRequestHeader(reinterpret_cast<const uint8_t*>(frame.data()));
  EXPECT_EQ(header, (RequestHeader{.magic = kMagic,
                                   .version = 1,
                                   .packet_type = 0x01,
                                   .partition = 0xFFFF,
                                   .payload_len = 200,
                                   .request_id = 7}));
  EXPECT_EQ(ClassifyHeader(header), HeaderVerdict());
  const std::string payload = PayloadOf(frame);
  absl::StatusOr<IngestRequestView> view =
      IngestRequestView::Decode(header.partition, Span(payload));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->event_count(), 2u);
  EXPECT_EQ(view->props_count(), 0u);
  EXPECT_TRUE(view->partition_is_auto());
  for (size_t i = 0; i < 2; ++i) {
    const WireEventView event = view->event(i);
    EXPECT_EQ(event.metric_code(), "api_calls");
    EXPECT_EQ(event.account_id(), 42u);
    EXPECT_EQ(event.timestamp_ns(), 0);
    EXPECT_EQ(event.value(), 1u);
    EXPECT_EQ(event.operation_type(), OperationType::kNone);
    EXPECT_EQ(event.props_count(), 0);
  }
}

TEST(WorkedExample, OkReplyWithIngestResult) {
  std::string reply;
  AppendIngestReply(Status::kOk, 7, {.n_stored = 2, .n_duplicates = 0, .last_offset = 1}, &reply);
  EXPECT_EQ(reply, Hex("00 00 00 00 07 00 00 00 10 00 00 00") +
                       Hex("02 00 00 00  00 00 00 00  01 00 00 00 00 00 00 00"));
  EXPECT_EQ(DecodeIngestResult(Mutable(reply, 12)),
            (IngestResult{.n_stored = 2, .n_duplicates = 0, .last_offset = 1}));
}

TEST(WorkedExample, Redirect) {
  std::string reply;
  ASSERT_TRUE(AppendRedirectReply(7, "10.0.0.2:7001", &reply).ok());
  EXPECT_EQ(reply, Hex("04 00 00 00 07 00 00 00 18 00 00 00") +
                       Hex("31 30 2E 30 2E 30 2E 32 3A 37 30 30 31") + std::string(11, '\0'));
  EXPECT_EQ(DecodeAddress(Mutable(reply, 12)), "10.0.0.2:7001");
}

// ---- Sizes ------------------------------------------------------------------------------------

TEST(Sizes, MatchSection6_16) {
  EXPECT_EQ(kRequestHeaderSizeBytes, 16u);
  EXPECT_EQ(kResponseHeaderSizeBytes, 12u);
  EXPECT_EQ(kWireEventSizeBytes, 96u);
  EXPECT_EQ(kPropPairSizeBytes, 96u);
  EXPECT_EQ(kDimensionFilterSizeBytes, 292u);
  EXPECT_EQ(kAlertThresholdSizeBytes, 48u);
  EXPECT_EQ(kBreakdownEntrySizeBytes, 320u);
  EXPECT_EQ(kUsageQueryBaseSizeBytes, 96u);
  EXPECT_EQ(kUsageRealtimeRequestSizeBytes, 72u);
  EXPECT_EQ(kAggValueSizeBytes, 56u);
  EXPECT_EQ(kAddressSizeBytes, 24u);
  EXPECT_EQ(kIngestResultSizeBytes, 16u);
  EXPECT_EQ(kMetricSchemaBaseSizeBytes, 132u);
  EXPECT_EQ(kMetricSchemaSizeBytesMax, 1700u);
  EXPECT_EQ(kEventRecordSizeBytes, 104u);
  EXPECT_EQ(kAlertRecordSizeBytes, 136u);
  EXPECT_EQ(kAlertPushSizeBytes, 144u);
  EXPECT_EQ(kPartitionMapEntrySizeBytes, 96u);
  EXPECT_EQ(kPartitionMapSizeBytes, 24'576u);
  EXPECT_EQ(kClusterStatusSizeBytes, 2'088u);
  EXPECT_EQ(kEventsListRequestSizeBytes, 24u);
  EXPECT_EQ(kAlertsListRequestSizeBytes, 16u);
  EXPECT_EQ(kPayloadSizeBytesMax, 196'616u);
  EXPECT_EQ(MetricSchemaSizeBytes(1, 1), 488u);
  EXPECT_EQ(MetricSchemaSizeBytes(0, 0), 148u);
}

// ---- Headers (section 2) ----------------------------------------------------------------------

RequestHeader ValidHeader(uint8_t packet_type) {
  return {.packet_type = packet_type, .payload_len = 0, .request_id = 99};
}

TEST(Headers, RequestHeaderRoundTrip) {
  const RequestHeader header{.magic = 0x01020304,
                             .version = 9,
                             .packet_type = 0xAB,
                             .partition = 0x1234,
                             .payload_len = 0xDEADBEEF,
                             .request_id = 0xFFFFFFFF};
  uint8_t bytes[16];
  EncodeRequestHeader(header, bytes);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(bytes), 16),
            Hex("04 03 02 01 09 AB 34 12 EF BE AD DE FF FF FF FF"));
  EXPECT_EQ(DecodeRequestHeader(bytes), header);
}

TEST(Headers, ResponseHeaderPadIsZero) {
  uint8_t bytes[12];
  std::memset(bytes, 0xAA, sizeof(bytes));
  EncodeResponseHeader({.status = 6, .request_id = 0x01020304, .payload_len = 5}, bytes);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(bytes), 12),
            Hex("06 00 00 00 04 03 02 01 05 00 00 00"));
}

TEST(Headers, ValidationOrder) {
  // Step 1 wins over everything: bad magic with an oversize, bad-version, unknown opcode.
  RequestHeader header{.magic = 0xC0FFEE02,
                       .version = 2,
                       .packet_type = 0x99,
                       .payload_len = 1'000'000,
                       .request_id = 5};
  EXPECT_EQ(ClassifyHeader(header), (HeaderVerdict{.action = HeaderAction::kRejectThenClose,
                                                   .rejection = HeaderRejection::kBadMagic}));
  // Step 2 before 3 and 4.
  header.magic = kMagic;
  EXPECT_EQ(ClassifyHeader(header), (HeaderVerdict{.action = HeaderAction::kDrainThenReject,
                                                   .rejection = HeaderRejection::kPayloadTooLarge,
                                                   .may_close_instead = false}));
  header.payload_len = kDrainSizeBytesMax;
  EXPECT_FALSE(ClassifyHeader(header).may_close_instead);
  header.payload_len = kDrainSizeBytesMax + 1;
  EXPECT_TRUE(ClassifyHeader(header).may_close_instead);
  header.payload_len = kPayloadSizeBytesMax + 1;
  EXPECT_EQ(ClassifyHeader(header).rejection, HeaderRejection::kPayloadTooLarge);
  // Step 3 before 4.
  header.payload_len = kPayloadSizeBytesMax;
  EXPECT_EQ(ClassifyHeader(header), (HeaderVerdict{.action = HeaderAction::kDrainThenReject,
                                                   .rejection = HeaderRejection::kBadVersion}));
  header.version = 0;
  EXPECT_EQ(ClassifyHeader(header).rejection, HeaderRejection::kBadVersion);
  header.version = 1;
  EXPECT_EQ(ClassifyHeader(header), (HeaderVerdict{.action = HeaderAction::kDrainThenReject,
                                                   .rejection = HeaderRejection::kBadOpcode}));
  header.packet_type = 0x30;
  EXPECT_EQ(ClassifyHeader(header), HeaderVerdict());
}

TEST(Headers, EveryOpcodeClassified) {
  const std::vector<uint8_t> requests = {0x00, 0x01, 0x10, 0x20, 0x21, 0x22, 0x30,
                                         0x31, 0x32, 0x33, 0x34, 0x36, 0x40, 0x41};
  ExtensionOpcodeSet extensions;
  extensions.Add(0x80);
  extensions.Add(0xFF);
  for (int code = 0; code < 256; ++code) {
    const uint8_t opcode = static_cast<uint8_t>(code);
    const bool is_request = std::find(requests.begin(), requests.end(), opcode) != requests.end();
    EXPECT_EQ(IsV1RequestOpcode(opcode), is_request) << code;
    const HeaderVerdict plain = ClassifyHeader(ValidHeader(opcode));
    EXPECT_EQ(plain.action == HeaderAction::kDispatch, is_request) << code;
    if (!is_request) {
      EXPECT_EQ(plain.rejection, HeaderRejection::kBadOpcode) << code;
    }
    const HeaderVerdict extended = ClassifyHeader(ValidHeader(opcode), extensions);
    EXPECT_EQ(extended.action == HeaderAction::kDispatch,
              is_request || opcode == 0x80 || opcode == 0xFF)
        << code;
  }
  // Pushes and the reserved transfer codes are never requests.
  for (uint8_t opcode : {0x11, 0x35, 0x42, 0x43, 0x44}) {
    EXPECT_FALSE(IsV1RequestOpcode(opcode));
  }
  EXPECT_EQ(OpcodeName(0x36), "USAGE_QUERY_BREAKDOWN");
  EXPECT_EQ(OpcodeName(0x43), "RESERVED");
  EXPECT_EQ(OpcodeName(0x02), "UNKNOWN");
  EXPECT_EQ(OpcodeName(0x90), "EXTENSION");
  EXPECT_FALSE(extensions.Contains(0x7F));
  EXPECT_FALSE(extensions.Contains(0x81));
}

// ---- Strings (section 6.1) --------------------------------------------------------------------

TEST(Strings, ReadUpToFirstNulOrWholeField) {
  const uint8_t field[8] = {'a', 'b', 0, 'c', 0, 0, 0, 0};
  EXPECT_EQ(ReadFixedString(field, 8), "ab");
  const uint8_t full[4] = {'w', 'x', 'y', 'z'};
  EXPECT_EQ(ReadFixedString(full, 4), "wxyz");
  const uint8_t empty[4] = {0, 'x', 'y', 'z'};
  EXPECT_EQ(ReadFixedString(empty, 4), "");
}

TEST(Strings, WriteNulPadsAndRejectsLongOrNul) {
  uint8_t field[6];
  std::memset(field, 0xAA, sizeof(field));
  ASSERT_TRUE(WriteFixedString("abc", 6, "x", field).ok());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(field), 6), std::string("abc\0\0\0", 6));
  ASSERT_TRUE(WriteFixedString("abcdef", 6, "x", field).ok());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(field), 6), "abcdef");
  EXPECT_FALSE(WriteFixedString("abcdefg", 6, "x", field).ok());
  EXPECT_FALSE(WriteFixedString(std::string_view("a\0b", 3), 6, "x", field).ok());
}

// ---- Ingest (section 7.1) ---------------------------------------------------------------------

// A raw ingest payload built field by field (not with AppendIngestRequest).
struct RawIngest {
  std::string bytes;
  explicit RawIngest(uint32_t event_count, uint32_t props_count, size_t extra_bytes = 0)
      : bytes(8 + 96 * size_t{event_count} + 96 * size_t{props_count} + extra_bytes, '\0') {
    StoreU32(Mutable(bytes), event_count);
    StoreU32(Mutable(bytes, 4), props_count);
  }
  uint8_t* event(size_t i) { return Mutable(bytes, 8 + 96 * i); }
};

absl::Status DecodeIngest(const std::string& payload, uint16_t partition = kPartitionAuto) {
  return IngestRequestView::Decode(partition, Span(payload)).status();
}

TEST(Ingest, EmptyBatchIsValid) {
  RawIngest raw(0, 0);
  absl::StatusOr<IngestRequestView> view =
      IngestRequestView::Decode(kPartitionAuto, Span(raw.bytes));
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->event_count(), 0u);
}

TEST(Ingest, ShortHeader) {
  EXPECT_FALSE(DecodeIngest(std::string(7, '\0')).ok());
  EXPECT_FALSE(DecodeIngest(std::string()).ok());
}

TEST(Ingest, CountsOverLimits) {
  RawIngest too_many_events(1025, 0);
  EXPECT_TRUE(HasMessage(DecodeIngest(too_many_events.bytes), "event_count 1025"));
  RawIngest too_many_props(0, 1025);
  EXPECT_TRUE(HasMessage(DecodeIngest(too_many_props.bytes), "props_count 1025"));
  // The limits themselves are fine (props spread 255 + 255 + 255 + 255 + 4 over five events).
  RawIngest at_limit(1024, 1024);
  const uint8_t props[5] = {255, 255, 255, 255, 4};
  for (size_t i = 0; i < 5; ++i) {
    at_limit.event(i)[89] = props[i];
  }
  EXPECT_EQ(at_limit.bytes.size(), kPayloadSizeBytesMax);
  EXPECT_TRUE(DecodeIngest(at_limit.bytes).ok()) << DecodeIngest(at_limit.bytes);
}

TEST(Ingest, PayloadShorterThanCounts) {
  RawIngest raw(2, 1);
  raw.event(1)[89] = 1;
  ASSERT_TRUE(DecodeIngest(raw.bytes).ok());
  raw.bytes.pop_back();
  EXPECT_TRUE(HasMessage(DecodeIngest(raw.bytes), "shorter than"));
  // Counts that would overflow 32-bit arithmetic are still caught by the limits.
  RawIngest huge(0, 0);
  StoreU32(Mutable(huge.bytes), 0xFFFFFFFF);
  EXPECT_FALSE(DecodeIngest(huge.bytes).ok());
}

TEST(Ingest, TrailingBytesIgnored) {
  RawIngest raw(1, 0, 13);
  EXPECT_TRUE(DecodeIngest(raw.bytes).ok());
}

TEST(Ingest, OperationType) {
  for (uint8_t operation : {0, 1, 2}) {
    RawIngest raw(2, 0);
    raw.event(1)[88] = operation;
    absl::StatusOr<IngestRequestView> view =
        IngestRequestView::Decode(kPartitionAuto, Span(raw.bytes));
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(static_cast<uint8_t>(view->event(1).operation_type()), operation);
  }
  for (uint8_t operation : {3, 0x80, 0xFF}) {
    RawIngest raw(2, 0);
    raw.event(1)[88] = operation;
    EXPECT_TRUE(HasMessage(DecodeIngest(raw.bytes), "event 1 has operation_type")) << operation;
  }
}

TEST(Ingest, PropsCountSumMustEqualRequestCount) {
  RawIngest fewer(2, 3);
  fewer.event(0)[89] = 1;
  fewer.event(1)[89] = 1;
  EXPECT_TRUE(HasMessage(DecodeIngest(fewer.bytes), "sum to 2"));
  RawIngest more(2, 3);
  more.event(0)[89] = 2;
  more.event(1)[89] = 2;
  EXPECT_TRUE(HasMessage(DecodeIngest(more.bytes), "more than the request's props_count 3"));
  RawIngest exact(2, 3);
  exact.event(0)[89] = 2;
  exact.event(1)[89] = 1;
  EXPECT_TRUE(DecodeIngest(exact.bytes).ok());
}

TEST(Ingest, HeaderPartition) {
  RawIngest raw(1, 0);
  EXPECT_TRUE(DecodeIngest(raw.bytes, 0xFFFF).ok());
  EXPECT_TRUE(DecodeIngest(raw.bytes, 0).ok());
  EXPECT_TRUE(DecodeIngest(raw.bytes, 255).ok());
  EXPECT_TRUE(HasMessage(DecodeIngest(raw.bytes, 256), "partition 256"));
  EXPECT_FALSE(DecodeIngest(raw.bytes, 0xFFFE).ok());
  absl::StatusOr<IngestRequestView> view = IngestRequestView::Decode(17, Span(raw.bytes));
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->partition(), 17);
  EXPECT_FALSE(view->partition_is_auto());
}

TEST(Ingest, PropsSlicedByPerEventCount) {
  const PropPair first[2] = {{"region", "us-east"}, {"provider", "aws"}};
  const PropPair third[1] = {{"tier", "gold"}};
  const std::string long_code(64, 'c');  // Fills the whole field: no NUL.
  const std::string long_key(32, 'k');
  const std::string long_value(64, 'v');
  const PropPair fourth[1] = {{long_key, long_value}};
  const IngestEvent events[4] = {
      {.metric_code = "a", .account_id = 1, .timestamp_ns = -5, .value = 10, .props = first},
      {.metric_code = "b", .account_id = 2, .value = 20, .operation_type = 1},
      {.metric_code = "c", .account_id = 3, .value = 30, .operation_type = 2, .props = third},
      {.metric_code = long_code, .account_id = ~uint64_t{0}, .value = 40, .props = fourth},
  };
  std::string frame;
  ASSERT_TRUE(AppendIngestRequest(Opcode::kIngestAsync, 3, 11, events, &frame).ok());
  const RequestHeader header = DecodeRequestHeader(Mutable(frame));
  EXPECT_EQ(header.packet_type, 0x00);
  EXPECT_EQ(header.partition, 3);
  EXPECT_EQ(header.payload_len, 8u + 4 * 96 + 4 * 96);
  const std::string payload = PayloadOf(frame);
  absl::StatusOr<IngestRequestView> view =
      IngestRequestView::Decode(header.partition, Span(payload));
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_EQ(view->event_count(), 4u);
  ASSERT_EQ(view->props_count(), 4u);
  const WireEventView e0 = view->event(0);
  EXPECT_EQ(e0.timestamp_ns(), -5);
  ASSERT_EQ(e0.props_count(), 2);
  EXPECT_EQ(e0.prop(0).key(), "region");
  EXPECT_EQ(e0.prop(0).value(), "us-east");
  EXPECT_EQ(e0.prop(1).key(), "provider");
  EXPECT_EQ(e0.prop(1).value(), "aws");
  EXPECT_EQ(view->event(1).props_count(), 0);
  EXPECT_EQ(view->event(1).operation_type(), OperationType::kAdd);
  const WireEventView e2 = view->event(2);
  EXPECT_EQ(e2.operation_type(), OperationType::kRemove);
  ASSERT_EQ(e2.props_count(), 1);
  EXPECT_EQ(e2.prop(0).key(), "tier");
  EXPECT_EQ(e2.prop(0).value(), "gold");
  const WireEventView e3 = view->event(3);
  EXPECT_EQ(e3.metric_code(), long_code);
  EXPECT_EQ(e3.account_id(), ~uint64_t{0});
  EXPECT_EQ(e3.prop(0).key(), long_key);
  EXPECT_EQ(e3.prop(0).value(), long_value);
  // Views point into the payload: no copies.
  EXPECT_EQ(e3.metric_code().data(), payload.data() + 8 + 3 * 96);
}

TEST(Ingest, EncoderRejectsWhatDoesNotFit) {
  std::string frame = "keep";
  const std::string too_long(65, 'x');
  const IngestEvent bad_code[1] = {{.metric_code = too_long}};
  EXPECT_FALSE(AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 1, bad_code, &frame).ok());
  EXPECT_EQ(frame, "keep");
  const std::string long_key(33, 'k');
  const PropPair bad_prop[1] = {{long_key, "v"}};
  const IngestEvent bad_key[1] = {{.metric_code = "m", .props = bad_prop}};
  EXPECT_FALSE(AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 1, bad_key, &frame).ok());
  EXPECT_EQ(frame, "keep");
  const std::vector<IngestEvent> too_many(1025, IngestEvent{.metric_code = "m"});
  EXPECT_FALSE(AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 1, too_many, &frame).ok());
  EXPECT_EQ(frame, "keep");
}

// ---- METRIC_PUT / MetricSchema (sections 6.9, 7.3, 7.5) ---------------------------------------

MetricSchemaRecord OneDimensionOneThreshold() {
  return {.code = "api_calls",
          .agg_type = 1,
          .recurring = true,
          .field_name = "bytes",
          .dimensions = {{.key = "region", .values = {"us-east", "eu-west"}}},
          .thresholds = {{.code = "quota", .value = 1000, .recurring = false}},
          .period_type = kPeriodTypeCalendar,
          .billing_cycle_day = 15};
}

std::string SchemaBytes(const MetricSchemaRecord& schema) {
  std::string bytes;
  EXPECT_TRUE(AppendMetricSchemaRecord(schema, &bytes).ok());
  return bytes;
}

absl::StatusOr<MetricSchemaRecord> DecodePut(const std::string& payload) {
  return DecodeMetricPut(Span(payload));
}

TEST(MetricSchema, OneDimensionOneThresholdIs488BytesFieldByField) {
  const std::string bytes = SchemaBytes(OneDimensionOneThreshold());
  ASSERT_EQ(bytes.size(), 488u);
  EXPECT_EQ(bytes.substr(0, 64), "api_calls" + std::string(55, '\0'));
  EXPECT_EQ(bytes.substr(64, 4), Hex("01 01 01 00"));  // agg SUM, recurring, 1 filter, pad.
  EXPECT_EQ(bytes.substr(68, 64), "bytes" + std::string(59, '\0'));
  EXPECT_EQ(bytes.substr(132, 32), "region" + std::string(26, '\0'));
  EXPECT_EQ(bytes.substr(164, 4), Hex("02 00 00 00"));
  EXPECT_EQ(bytes.substr(168, 32), "us-east" + std::string(25, '\0'));
  EXPECT_EQ(bytes.substr(200, 32), "eu-west" + std::string(25, '\0'));
  EXPECT_EQ(bytes.substr(232, 6 * 32), std::string(6 * 32, '\0'));
  EXPECT_EQ(bytes.substr(424, 8), Hex("01 00 00 00 00 00 00 00"));  // alert_count 1.
  EXPECT_EQ(bytes.substr(432, 32), "quota" + std::string(27, '\0'));
  EXPECT_EQ(bytes.substr(464, 8), Hex("E8 03 00 00 00 00 00 00"));
  EXPECT_EQ(bytes.substr(472, 8), std::string(8, '\0'));
  EXPECT_EQ(bytes.substr(480, 8), Hex("01 0F 00 00 00 00 00 00"));  // CALENDAR, day 15.
}

TEST(MetricSchema, PutRoundTrip) {
  const MetricSchemaRecord schema = OneDimensionOneThreshold();
  std::string frame;
  ASSERT_TRUE(AppendMetricPutRequest(5, schema, &frame).ok());
  const RequestHeader header = DecodeRequestHeader(Mutable(frame));
  EXPECT_EQ(header.packet_type, 0x20);
  EXPECT_EQ(header.payload_len, 488u);
  absl::StatusOr<MetricSchemaRecord> decoded = DecodePut(PayloadOf(frame));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, schema);
}

TEST(MetricSchema, MaximalRoundTrip) {
  MetricSchemaRecord schema{
      .code = std::string(64, 'M'), .agg_type = 4, .field_name = std::string(64, 'F')};
  for (int d = 0; d < 4; ++d) {
    DimensionSpec dimension{.key = std::string(32, static_cast<char>('a' + d))};
    for (int v = 0; v < 8; ++v) {
      dimension.values.push_back(std::string(32, static_cast<char>('0' + v)));
    }
    schema.dimensions.push_back(dimension);
  }
  for (int t = 0; t < 8; ++t) {
    schema.thresholds.push_back({.code = std::string(32, static_cast<char>('A' + t)),
                                 .value = ~uint64_t{0} - t,
                                 .recurring = t % 2 == 1});
  }
  schema.period_type = 2;
  schema.billing_cycle_day = 28;
  const std::string bytes = SchemaBytes(schema);
  ASSERT_EQ(bytes.size(), kMetricSchemaSizeBytesMax);
  absl::StatusOr<MetricSchemaRecord> decoded = DecodePut(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, schema);
  // Whole-width strings are echoed byte-exact, without terminator.
  EXPECT_EQ(SchemaBytes(*decoded), bytes);
  EXPECT_EQ(bytes.substr(0, 64), std::string(64, 'M'));
}

TEST(MetricSchema, OptionalSections) {
  const std::string full = SchemaBytes(OneDimensionOneThreshold());
  // Ends after the dimensions: no thresholds, FIXED, day 1.
  absl::StatusOr<MetricSchemaRecord> no_thresholds = DecodePut(full.substr(0, 424));
  ASSERT_TRUE(no_thresholds.ok());
  EXPECT_TRUE(no_thresholds->thresholds.empty());
  EXPECT_EQ(no_thresholds->period_type, kPeriodTypeFixed);
  EXPECT_EQ(no_thresholds->billing_cycle_day, 1);
  EXPECT_EQ(no_thresholds->dimensions, OneDimensionOneThreshold().dimensions);
  // A fragment of fewer than 8 bytes after the dimensions is not a threshold header.
  absl::StatusOr<MetricSchemaRecord> fragment = DecodePut(full.substr(0, 424 + 7));
  ASSERT_TRUE(fragment.ok());
  EXPECT_TRUE(fragment->thresholds.empty());
  // Ends after the thresholds: FIXED.
  absl::StatusOr<MetricSchemaRecord> no_period = DecodePut(full.substr(0, 480));
  ASSERT_TRUE(no_period.ok());
  ASSERT_EQ(no_period->thresholds.size(), 1u);
  EXPECT_EQ(no_period->thresholds[0].value, 1000u);
  EXPECT_EQ(no_period->period_type, kPeriodTypeFixed);
  EXPECT_EQ(no_period->billing_cycle_day, 1);
  // A trailing fragment shorter than the period section is ignored.
  absl::StatusOr<MetricSchemaRecord> short_period = DecodePut(full.substr(0, 487));
  ASSERT_TRUE(short_period.ok());
  EXPECT_EQ(short_period->period_type, kPeriodTypeFixed);
  // Bytes after the period section are ignored.
  absl::StatusOr<MetricSchemaRecord> longer = DecodePut(full + "trailing");
  ASSERT_TRUE(longer.ok());
  EXPECT_EQ(*longer, OneDimensionOneThreshold());
  // The 132-byte base alone (0 dimensions) is a complete request.
  MetricSchemaRecord base_only{.code = "m"};
  absl::StatusOr<MetricSchemaRecord> base = DecodePut(SchemaBytes(base_only).substr(0, 132));
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(*base, base_only);
}

TEST(MetricSchema, Normalisations) {
  std::string bytes = SchemaBytes(OneDimensionOneThreshold());
  // value_count above 8 is read as 8 (the unused values are zero, so they read as "").
  for (uint8_t value_count : {9, 200, 255}) {
    bytes[164] = static_cast<char>(value_count);
    absl::StatusOr<MetricSchemaRecord> decoded = DecodePut(bytes);
    ASSERT_TRUE(decoded.ok());
    ASSERT_EQ(decoded->dimensions[0].values.size(), 8u);
    EXPECT_EQ(decoded->dimensions[0].values[1], "eu-west");
    EXPECT_EQ(decoded->dimensions[0].values[7], "");
  }
  bytes[164] = 2;
  const std::pair<uint8_t, uint8_t> days[] = {{0, 1}, {1, 1}, {28, 28}, {29, 28}, {255, 28}};
  for (const auto& [sent, stored] : days) {
    bytes[481] = static_cast<char>(sent);
    absl::StatusOr<MetricSchemaRecord> decoded = DecodePut(bytes);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->billing_cycle_day, stored) << static_cast<int>(sent);
  }
  // Unknown period types are kept as sent (they behave as FIXED downstream).
  bytes[480] = 3;
  EXPECT_EQ(DecodePut(bytes)->period_type, 3);
  // Non-zero recurring bytes are true.
  bytes[65] = 7;
  bytes[472] = 9;
  EXPECT_TRUE(DecodePut(bytes)->recurring);
  EXPECT_TRUE(DecodePut(bytes)->thresholds[0].recurring);
}

TEST(MetricSchema, ValidationFailures) {
  const std::string good = SchemaBytes(OneDimensionOneThreshold());
  EXPECT_TRUE(HasMessage(DecodePut(good.substr(0, 131)).status(), "132-byte base"));
  std::string bytes = good;
  bytes[66] = 5;
  EXPECT_TRUE(HasMessage(DecodePut(bytes).status(), "filter_count 5"));
  bytes[66] = 2;  // Needs 132 + 584 bytes: the 488-byte record is too short.
  EXPECT_TRUE(HasMessage(DecodePut(bytes).status(), "2 dimensions"));
  EXPECT_TRUE(HasMessage(DecodePut(good.substr(0, 423)).status(), "1 dimensions"));
  bytes = good;
  bytes[424] = 9;
  EXPECT_TRUE(HasMessage(DecodePut(bytes).status(), "alert_count 9"));
  bytes[424] = 2;  // Two thresholds need 528 bytes.
  EXPECT_TRUE(HasMessage(DecodePut(bytes).status(), "2 thresholds"));
  EXPECT_TRUE(HasMessage(DecodePut(good.substr(0, 479)).status(), "1 thresholds"));
  bytes = good;
  bytes[0] = 0;
  EXPECT_TRUE(HasMessage(DecodePut(bytes).status(), "empty metric code"));
  bytes = good;
  bytes[64] = 5;
  EXPECT_TRUE(HasMessage(DecodePut(bytes).status(), "agg_type 5"));
  bytes[64] = 4;
  EXPECT_TRUE(DecodePut(bytes).ok());
  MetricSchemaRecord duplicate = OneDimensionOneThreshold();
  duplicate.dimensions.push_back({.key = "region", .values = {"x"}});
  EXPECT_TRUE(HasMessage(DecodePut(SchemaBytes(duplicate)).status(), "share the key \"region\""));
}

TEST(MetricSchema, EncoderRejectsWhatDoesNotFit) {
  std::string out = "keep";
  MetricSchemaRecord schema = OneDimensionOneThreshold();
  schema.code = std::string(65, 'x');
  EXPECT_FALSE(AppendMetricSchemaRecord(schema, &out).ok());
  schema = OneDimensionOneThreshold();
  schema.dimensions[0].values.resize(9, "v");
  EXPECT_FALSE(AppendMetricSchemaRecord(schema, &out).ok());
  schema = OneDimensionOneThreshold();
  schema.thresholds.resize(9);
  EXPECT_FALSE(AppendMetricSchemaRecord(schema, &out).ok());
  schema = OneDimensionOneThreshold();
  schema.dimensions.resize(5);
  EXPECT_FALSE(AppendMetricSchemaRecord(schema, &out).ok());
  schema = OneDimensionOneThreshold();
  schema.thresholds[0].code = std::string(33, 't');
  EXPECT_FALSE(AppendMetricSchemaRecord(schema, &out).ok());
  EXPECT_FALSE(AppendMetricPutRequest(1, schema, &out).ok());
  EXPECT_EQ(out, "keep");
}

TEST(MetricList, CountHeaderRecordsAndRoundTrip) {
  std::vector<MetricSchemaRecord> schemas = {
      {.code = "a"}, OneDimensionOneThreshold(), {.code = std::string(64, 'z'), .agg_type = 3}};
  std::string reply;
  size_t written = 0;
  ASSERT_TRUE(AppendMetricListReply(9, schemas, &reply, &written).ok());
  EXPECT_EQ(written, 3u);
  const ResponseHeader header = ReplyHeaderOf(reply);
  EXPECT_EQ(header, (ResponseHeader{.status = 0,
                                    .request_id = 9,
                                    .payload_len = static_cast<uint32_t>(8 + 148 + 488 + 148)}));
  const std::string payload = ReplyPayloadOf(reply);
  EXPECT_EQ(payload.substr(0, 8), Hex("03 00 00 00 00 00 00 00"));
  absl::StatusOr<std::vector<MetricSchemaRecord>> decoded = DecodeMetricListReply(Span(payload));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, schemas);
  // The list reader needs every section.
  EXPECT_FALSE(DecodeMetricListReply(Span(payload.substr(0, payload.size() - 1))).ok());
  std::string lying = payload;
  lying[0] = 4;
  EXPECT_FALSE(DecodeMetricListReply(Span(lying)).ok());
}

TEST(MetricList, OnlyRecordsThatFitCompletely) {
  MetricSchemaRecord maximal{.code = "m"};
  maximal.dimensions.resize(4);
  for (size_t d = 0; d < 4; ++d) {
    maximal.dimensions[d].key = std::string(1, static_cast<char>('a' + d));
  }
  maximal.thresholds.resize(8);
  ASSERT_EQ(MetricSchemaRecordSizeBytes(maximal), 1700u);
  const std::vector<MetricSchemaRecord> schemas(200, maximal);
  std::string reply;
  size_t written = 0;
  ASSERT_TRUE(AppendMetricListReply(1, schemas, &reply, &written).ok());
  EXPECT_EQ(written, (kPayloadSizeBytesMax - 8) / 1700);  // 115.
  EXPECT_EQ(ReplyHeaderOf(reply).payload_len, 8 + written * 1700);
  EXPECT_LE(ReplyHeaderOf(reply).payload_len, kReplyPayloadSizeBytesMax);
  absl::StatusOr<std::vector<MetricSchemaRecord>> decoded =
      DecodeMetricListReply(Span(ReplyPayloadOf(reply)));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->size(), written);
  // An empty registry.
  reply.clear();
  ASSERT_TRUE(AppendMetricListReply(2, {}, &reply).ok());
  EXPECT_EQ(reply, Hex("00 00 00 00 02 00 00 00 08 00 00 00  00 00 00 00 00 00 00 00"));
}

// ---- Other requests ---------------------------------------------------------------------------

TEST(MetricDelete, Decode) {
  std::string frame;
  ASSERT_TRUE(AppendMetricDeleteRequest(3, "api_calls", &frame).ok());
  EXPECT_EQ(DecodeRequestHeader(Mutable(frame)).payload_len, 64u);
  std::string payload = PayloadOf(frame);
  EXPECT_EQ(DecodeMetricDelete(Span(payload))->metric_code, "api_calls");
  EXPECT_TRUE(HasMessage(DecodeMetricDelete(Span(payload.substr(0, 63))).status(), "63 bytes"));
  EXPECT_EQ(DecodeMetricDelete(Span(std::string(64, '\0')))->metric_code, "");
  EXPECT_EQ(DecodeMetricDelete(Span(std::string(70, 'q')))->metric_code, std::string(64, 'q'));
}

UsageQueryRequest FourFilterQuery() {
  UsageQueryRequest request{.account_id = 42,
                            .period_start_ns = -1,
                            .period_end_ns = 1'767'225'600'000'000'000,
                            .metric_code = "api_calls",
                            .filters_count = 4};
  request.filters = {{{"provider", "aws"},
                      {"region", "us-east"},
                      {"k3", "v3"},
                      {std::string_view("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"), "v4"}}};
  return request;
}

TEST(UsageQuery, RoundTrip) {
  std::string frame;
  ASSERT_TRUE(AppendUsageQueryRequest(8, FourFilterQuery(), &frame).ok());
  const std::string payload = PayloadOf(frame);
  ASSERT_EQ(payload.size(), 96u + 4 * 292);
  absl::StatusOr<UsageQueryRequest> decoded = DecodeUsageQuery(Span(payload));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->account_id, 42u);
  EXPECT_EQ(decoded->period_start_ns, -1);
  EXPECT_EQ(decoded->period_end_ns, 1'767'225'600'000'000'000);
  EXPECT_EQ(decoded->metric_code, "api_calls");
  ASSERT_EQ(decoded->filters_count, 4);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(decoded->filters[i].key, FourFilterQuery().filters[i].key);
    EXPECT_EQ(decoded->filters[i].value, FourFilterQuery().filters[i].value);
  }
}

TEST(UsageQuery, ShortPayloadsAndNoFilters) {
  std::string frame;
  ASSERT_TRUE(AppendUsageQueryRequest(8, FourFilterQuery(), &frame).ok());
  const std::string payload = PayloadOf(frame);
  EXPECT_TRUE(HasMessage(DecodeUsageQuery(Span(payload.substr(0, 87))).status(), "87 bytes"));
  for (size_t size = 88; size <= 95; ++size) {
    const std::string prefix = payload.substr(0, size);  // The views point into it.
    absl::StatusOr<UsageQueryRequest> decoded = DecodeUsageQuery(Span(prefix));
    ASSERT_TRUE(decoded.ok()) << size;
    EXPECT_EQ(decoded->filters_count, 0) << size;  // Byte 88 says 4 but is ignored.
    EXPECT_EQ(decoded->metric_code, "api_calls");
  }
  // 96 bytes claiming 4 filters is too short; each filter needs its whole 292 bytes.
  EXPECT_TRUE(HasMessage(DecodeUsageQuery(Span(payload.substr(0, 96))).status(), "4 filters"));
  EXPECT_FALSE(DecodeUsageQuery(Span(payload.substr(0, payload.size() - 1))).ok());
  std::string no_filters = payload.substr(0, 96);
  no_filters[88] = 0;
  EXPECT_EQ(DecodeUsageQuery(Span(no_filters))->filters_count, 0);
}

TEST(UsageQuery, TooManyFiltersAndDuplicateKeys) {
  std::string frame;
  ASSERT_TRUE(AppendUsageQueryRequest(8, FourFilterQuery(), &frame).ok());
  std::string payload = PayloadOf(frame) + std::string(292, '\0');
  payload[88] = 5;
  EXPECT_TRUE(HasMessage(DecodeUsageQuery(Span(payload)).status(), "filters_count 5"));
  UsageQueryRequest duplicate = FourFilterQuery();
  duplicate.filters[3].key = "provider";
  frame.clear();
  ASSERT_TRUE(AppendUsageQueryRequest(8, duplicate, &frame).ok());
  EXPECT_TRUE(HasMessage(DecodeUsageQuery(Span(PayloadOf(frame))).status(),
                         "filters 0 and 3 share the key"));
}

TEST(UsageQuery, OnlyValuesZeroIsUsed) {
  std::string payload(96 + 292, '\0');
  payload[88] = 1;
  std::memcpy(payload.data() + 96, "region", 6);
  payload[96 + 32] = 3;  // value_count 3: values[1] and [2] are ignored.
  std::memcpy(payload.data() + 96 + 36, "us-east", 7);
  std::memcpy(payload.data() + 96 + 68, "eu-west", 7);
  absl::StatusOr<UsageQueryRequest> decoded = DecodeUsageQuery(Span(payload));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->filters[0].key, "region");
  EXPECT_EQ(decoded->filters[0].value, "us-east");
}

TEST(UsageRealtime, Decode) {
  std::string frame;
  ASSERT_TRUE(AppendUsageRealtimeRequest(1, {.account_id = 7, .metric_code = "m"}, &frame).ok());
  const std::string payload = PayloadOf(frame);
  ASSERT_EQ(payload.size(), 72u);
  EXPECT_EQ(payload.substr(0, 9), Hex("07 00 00 00 00 00 00 00 6D"));
  absl::StatusOr<UsageRealtimeRequest> decoded = DecodeUsageRealtime(Span(payload));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->account_id, 7u);
  EXPECT_EQ(decoded->metric_code, "m");
  EXPECT_FALSE(DecodeUsageRealtime(Span(payload.substr(0, 71))).ok());
}

TEST(EventsList, Decode) {
  std::string frame;
  AppendEventsListRequest(1, {.account_id = 0, .since_ns = -10, .until_ns = 20}, &frame);
  const std::string payload = PayloadOf(frame);
  ASSERT_EQ(payload.size(), 24u);
  absl::StatusOr<EventsListRequest> decoded = DecodeEventsList(Span(payload));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->account_id, 0u);
  EXPECT_EQ(decoded->since_ns, -10);
  EXPECT_EQ(decoded->until_ns, 20);
  EXPECT_FALSE(DecodeEventsList(Span(payload.substr(0, 23))).ok());
}

TEST(AlertsList, Decode) {
  std::string frame;
  AppendAlertsListRequest(1, {.account_id = 5, .since_offset = 77}, &frame);
  const std::string payload = PayloadOf(frame);
  ASSERT_EQ(payload.size(), 16u);
  absl::StatusOr<AlertsListRequest> decoded = DecodeAlertsList(Span(payload));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->account_id, 5u);
  EXPECT_EQ(decoded->since_offset, 77u);
  EXPECT_FALSE(DecodeAlertsList(Span(payload.substr(0, 15))).ok());
}

TEST(Breakdown, RoundTripAndValidation) {
  BreakdownRequest request{
      .account_id = 9,
      .period_start_ns = 1,
      .period_end_ns = 2,
      .metric_code = "api_calls",
      .group_by_count = 4,
      .group_by_keys = {"a", "b", "c", std::string_view("dddddddddddddddddddddddddddddddd")}};
  std::string frame;
  ASSERT_TRUE(AppendBreakdownRequest(1, request, &frame).ok());
  const std::string payload = PayloadOf(frame);
  ASSERT_EQ(payload.size(), 96u + 4 * 32);
  absl::StatusOr<BreakdownRequest> decoded = DecodeBreakdown(Span(payload));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->group_by_count, 4);
  EXPECT_EQ(decoded->metric_code, "api_calls");
  EXPECT_EQ(decoded->group_by_keys, request.group_by_keys);
  EXPECT_TRUE(HasMessage(DecodeBreakdown(Span(payload.substr(0, 223))).status(), "4 keys"));
  EXPECT_TRUE(HasMessage(DecodeBreakdown(Span(payload.substr(0, 95))).status(), "95 bytes"));
  for (uint8_t g : {0, 5, 255}) {
    std::string bad = payload;
    bad[88] = static_cast<char>(g);
    EXPECT_TRUE(HasMessage(DecodeBreakdown(Span(bad)).status(), "is not 1-4")) << g;
  }
  std::string one = payload.substr(0, 128);
  one[88] = 1;
  ASSERT_TRUE(DecodeBreakdown(Span(one)).ok());
  EXPECT_EQ(DecodeBreakdown(Span(one))->group_by_keys[0], "a");
  request.group_by_keys[2] = "a";
  frame.clear();
  ASSERT_TRUE(AppendBreakdownRequest(1, request, &frame).ok());
  EXPECT_TRUE(HasMessage(DecodeBreakdown(Span(PayloadOf(frame))).status(), "keys 0 and 2"));
}

TEST(ClusterRebalance, Decode) {
  std::string frame;
  AppendClusterRebalanceRequest(1, {.new_node_count = 3}, &frame);
  EXPECT_EQ(DecodeClusterRebalance(Span(PayloadOf(frame)))->new_node_count, 3);
  EXPECT_FALSE(DecodeClusterRebalance(Span(std::string())).ok());
}

TEST(EmptyRequests, Frames) {
  std::string frame;
  AppendEmptyRequest(0x40, 12, &frame);
  EXPECT_EQ(frame, Hex("01 EE FF C0 01 40 FF FF 00 00 00 00 0C 00 00 00"));
}

// ---- Replies (sections 4, 6, 7, 8) ------------------------------------------------------------

TEST(Replies, EmptyRepliesAndIngestStatus) {
  std::string reply;
  AppendEmptyReply(Status::kErr, 0x11223344, &reply);
  AppendEmptyReply(Status::kBackpressure, 2, &reply);
  AppendEmptyReply(Status::kOk, 3, &reply);
  EXPECT_EQ(reply, Hex("02 00 00 00 44 33 22 11 00 00 00 00"
                       "06 00 00 00 02 00 00 00 00 00 00 00"
                       "00 00 00 00 03 00 00 00 00 00 00 00"));
  EXPECT_EQ(IngestReplyStatus({.n_stored = 0, .n_duplicates = 2}, false), Status::kDuplicate);
  EXPECT_EQ(IngestReplyStatus({.n_stored = 1, .n_duplicates = 2}, false), Status::kOk);
  EXPECT_EQ(IngestReplyStatus({.n_stored = 1, .n_duplicates = 2}, true), Status::kUnknownMetric);
  EXPECT_EQ(IngestReplyStatus({.n_stored = 0, .n_duplicates = 0}, false), Status::kOk);
  reply.clear();
  AppendIngestReply(Status::kDuplicate, 4, {.n_stored = 0, .n_duplicates = 3}, &reply);
  EXPECT_EQ(reply, Hex("01 00 00 00 04 00 00 00 10 00 00 00"
                       "00 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00"));
}

TEST(Replies, AggValueSplitsThe128BitSum) {
  const AggValue value{.sum = (static_cast<unsigned __int128>(3) << 64) | 5,
                       .count = 6,
                       .max = 7,
                       .last_value = 8,
                       .last_timestamp_ns = -9,
                       .alert_flags = 0x81};
  std::string reply;
  AppendAggValueReply(21, value, &reply);
  ASSERT_EQ(reply.size(), 12u + 56);
  EXPECT_EQ(reply.substr(0, 12), Hex("00 00 00 00 15 00 00 00 38 00 00 00"));
  EXPECT_EQ(reply.substr(12, 16), Hex("05 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00"));
  EXPECT_EQ(reply.substr(12 + 40, 8), Hex("F7 FF FF FF FF FF FF FF"));
  EXPECT_EQ(DecodeAggValue(Mutable(reply, 12)), value);
}

TEST(Replies, RedirectAddressLimits) {
  std::string reply = "keep";
  EXPECT_FALSE(AppendRedirectReply(1, "", &reply).ok());
  EXPECT_FALSE(AppendRedirectReply(1, "aaaaaaaaaaaaaaaaaaa:7001", &reply).ok());  // 24 bytes.
  EXPECT_EQ(reply, "keep");
  reply.clear();
  ASSERT_TRUE(AppendRedirectReply(1, "aaaaaaaaaaaaaaaaaa:7001", &reply).ok());  // 23 bytes.
  EXPECT_EQ(reply.size(), 12u + 24);
  EXPECT_EQ(reply.back(), '\0');  // Always NUL-terminated.
  EXPECT_EQ(DecodeAddress(Mutable(reply, 12)), "aaaaaaaaaaaaaaaaaa:7001");
}

TEST(Replies, EventListWithCountHeaderAndLimit) {
  const std::string long_code(64, 'e');
  std::vector<EventRecord> records(1030);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i] = {.offset = i,
                  .timestamp_ns = -static_cast<int64_t>(i),
                  .account_id = 42,
                  .metric_code = i % 2 == 0 ? std::string_view("api_calls") : long_code,
                  .value = i * 10,
                  .operation_type = 2};
  }
  std::string reply;
  ASSERT_TRUE(AppendEventListReply(3, records, &reply).ok());
  EXPECT_EQ(ReplyHeaderOf(reply).payload_len, 8u + 1024 * 104);
  const std::string payload = ReplyPayloadOf(reply);
  EXPECT_EQ(payload.substr(0, 8), Hex("00 04 00 00 00 00 00 00"));
  for (size_t i : {size_t{0}, size_t{1}, size_t{1023}}) {
    const std::string record = payload.substr(8 + i * 104, 104);
    const EventRecord decoded = DecodeEventRecord(reinterpret_cast<const uint8_t*>(record.data()));
    EXPECT_EQ(decoded.offset, i);
    EXPECT_EQ(decoded.timestamp_ns, -static_cast<int64_t>(i));
    EXPECT_EQ(decoded.metric_code, records[i].metric_code);
    EXPECT_EQ(decoded.value, i * 10);
    EXPECT_EQ(decoded.operation_type, 2);
    EXPECT_EQ(record.substr(97), std::string(7, '\0'));
  }
  reply.clear();
  ASSERT_TRUE(AppendEventListReply(3, {}, &reply).ok());
  EXPECT_EQ(ReplyPayloadOf(reply), std::string(8, '\0'));
}

TEST(Replies, AlertListAndPush) {
  const std::string threshold(32, 't');
  std::vector<AlertRecord> records(300, AlertRecord{.offset = 1,
                                                    .account_id = 2,
                                                    .metric_code = "m",
                                                    .threshold_code = threshold,
                                                    .value_at_cross = 3,
                                                    .event_timestamp_ns = 4});
  std::string reply;
  ASSERT_TRUE(AppendAlertListReply(3, records, &reply).ok());
  EXPECT_EQ(ReplyHeaderOf(reply).payload_len, 8u + 256 * 136);
  EXPECT_EQ(ReplyPayloadOf(reply).substr(0, 4), Hex("00 01 00 00"));
  const AlertRecord decoded = DecodeAlertRecord(Mutable(reply, 12 + 8));
  EXPECT_EQ(decoded.threshold_code, threshold);
  EXPECT_EQ(decoded.metric_code, "m");
  EXPECT_EQ(decoded.value_at_cross, 3u);
  EXPECT_EQ(decoded.event_timestamp_ns, 4);
  EXPECT_EQ(reply.substr(12 + 8 + 128, 8), std::string(8, '\0'));

  std::string push;
  ASSERT_TRUE(AppendAlertPushFrame({.record = records[0], .node_id = 2}, &push).ok());
  ASSERT_EQ(push.size(), 12u + 144);
  EXPECT_EQ(push.substr(0, 12), Hex("35 00 00 00 00 00 00 00 90 00 00 00"));
  EXPECT_EQ(push.substr(12, 136), reply.substr(20, 136));
  EXPECT_EQ(push.substr(12 + 136), Hex("02 00 00 00 00 00 00 00"));
  const AlertPush decoded_push = DecodeAlertPush(Mutable(push, 12));
  EXPECT_EQ(decoded_push.node_id, 2);
  EXPECT_EQ(decoded_push.record.offset, 1u);

  std::string bad = "keep";
  const std::string long_threshold(33, 't');
  records[0].threshold_code = long_threshold;
  EXPECT_FALSE(AppendAlertPushFrame({.record = records[0]}, &bad).ok());
  EXPECT_FALSE(AppendAlertListReply(1, records, &bad).ok());
  EXPECT_EQ(bad, "keep");
}

TEST(Replies, BreakdownNoCountHeaderAndLimit) {
  BreakdownEntry entry{.dims_count = 2,
                       .dim_keys = {"provider", "region"},
                       .dim_values = {"aws", "us-east"},
                       .value = {.sum = 12, .count = 3}};
  std::vector<BreakdownEntry> entries(700, entry);
  std::string reply;
  ASSERT_TRUE(AppendBreakdownReply(4, entries, &reply).ok());
  EXPECT_EQ(ReplyHeaderOf(reply).payload_len, 614u * 320);
  const std::string payload = ReplyPayloadOf(reply);
  EXPECT_EQ(payload.substr(0, 8), Hex("02 00 00 00 00 00 00 00"));
  EXPECT_EQ(payload.substr(8, 8), "provider");
  EXPECT_EQ(payload.substr(40, 6), "region");
  EXPECT_EQ(payload.substr(72, 64), std::string(64, '\0'));  // Unused key slots.
  EXPECT_EQ(payload.substr(136, 3), "aws");
  EXPECT_EQ(payload.substr(264, 8), Hex("0C 00 00 00 00 00 00 00"));
  const BreakdownEntry decoded = DecodeBreakdownEntry(Mutable(reply, 12 + 320));
  EXPECT_EQ(decoded.dims_count, 2);
  EXPECT_EQ(decoded.dim_keys[1], "region");
  EXPECT_EQ(decoded.dim_values[1], "us-east");
  EXPECT_EQ(decoded.value, entry.value);
  reply.clear();
  ASSERT_TRUE(AppendBreakdownReply(4, {}, &reply).ok());
  EXPECT_EQ(reply, Hex("00 00 00 00 04 00 00 00 00 00 00 00"));
  entry.dims_count = 5;
  EXPECT_FALSE(AppendBreakdownReply(4, std::vector<BreakdownEntry>{entry}, &reply).ok());
}

TEST(Replies, PartitionMapReplyAndPush) {
  PartitionMap map;
  for (size_t p = 0; p < kPartitionCount; ++p) {
    map[p] = {.leader = p % 2 == 0 ? "10.0.0.1:7001" : "10.0.0.2:7001",
              .replica0 = p % 2 == 0 ? "10.0.0.2:7001" : "",
              .replica1 = ""};
  }
  std::string reply;
  ASSERT_TRUE(AppendPartitionMapReply(6, map, &reply).ok());
  ASSERT_EQ(reply.size(), 12u + 24'576);
  EXPECT_EQ(reply.substr(0, 12), Hex("00 00 00 00 06 00 00 00 00 60 00 00"));
  EXPECT_EQ(reply.substr(12 + 96, 13), "10.0.0.2:7001");
  EXPECT_EQ(reply.substr(12 + 96 + 24, 72), std::string(72, '\0'));
  const PartitionMap decoded = DecodePartitionMap(Mutable(reply, 12));
  for (size_t p = 0; p < kPartitionCount; ++p) {
    EXPECT_EQ(decoded[p].leader, map[p].leader);
    EXPECT_EQ(decoded[p].replica0, map[p].replica0);
    EXPECT_EQ(decoded[p].replica1, map[p].replica1);
  }
  std::string push;
  ASSERT_TRUE(AppendPartitionMapPushFrame(map, &push).ok());
  EXPECT_EQ(push.substr(0, 12), Hex("11 00 00 00 00 00 00 00 00 60 00 00"));
  EXPECT_EQ(push.substr(12), reply.substr(12));

  std::string bad = "keep";
  map[200].leader = "";
  EXPECT_TRUE(HasMessage(AppendPartitionMapReply(6, map, &bad), "partition 200"));
  map[200].leader = "a-very-long-host-name:7001";
  EXPECT_FALSE(AppendPartitionMapPushFrame(map, &bad).ok());
  EXPECT_EQ(bad, "keep");
}

TEST(Replies, ClusterStatus) {
  ClusterStatus status{.node_id = 1,
                       .n_nodes = 3,
                       .wal_offset = 100,
                       .segment_count = 2,
                       .memtable_entries = 50,
                       .uptime_ns = 123456789};
  for (size_t p = 0; p < kPartitionCount; ++p) {
    status.partitions[p] = {.view_number = static_cast<uint32_t>(p * 1000),
                            .commit_number = 7,
                            .role = static_cast<uint8_t>(p % 2),
                            .leader = p == 9 ? kNodeIdNone : uint8_t{1}};
  }
  std::string reply;
  AppendClusterStatusReply(8, status, &reply);
  ASSERT_EQ(reply.size(), 12u + 2'088);
  EXPECT_EQ(reply.substr(0, 12), Hex("00 00 00 00 08 00 00 00 28 08 00 00"));
  EXPECT_EQ(reply.substr(12, 8), Hex("01 03 00 00 00 00 00 00"));
  EXPECT_EQ(reply.substr(12 + 40 + 8, 8), Hex("E8 03 00 00 07 00 01 01"));
  EXPECT_EQ(DecodeClusterStatus(Mutable(reply, 12)), status);
}

TEST(Replies, FixedEncodersZeroEveryPadByte) {
  std::vector<uint8_t> buffer(400, 0xAA);
  ASSERT_TRUE(EncodeEventRecord({.metric_code = "x"}, buffer.data()).ok());
  EXPECT_EQ(std::vector<uint8_t>(buffer.begin(), buffer.begin() + 104), [] {
    std::vector<uint8_t> expected(104, 0);
    expected[24] = 'x';
    return expected;
  }());
  std::fill(buffer.begin(), buffer.end(), 0xAA);
  ASSERT_TRUE(EncodeAlertRecord({}, buffer.data()).ok());
  EXPECT_TRUE(std::all_of(buffer.begin(), buffer.begin() + 136, [](uint8_t b) { return b == 0; }));
  std::fill(buffer.begin(), buffer.end(), 0xAA);
  ASSERT_TRUE(EncodeBreakdownEntry({}, buffer.data()).ok());
  EXPECT_TRUE(std::all_of(buffer.begin(), buffer.begin() + 320, [](uint8_t b) { return b == 0; }));
  std::fill(buffer.begin(), buffer.end(), 0xAA);
  ASSERT_TRUE(EncodeAddress("", buffer.data()).ok());
  EXPECT_TRUE(std::all_of(buffer.begin(), buffer.begin() + 24, [](uint8_t b) { return b == 0; }));
  std::fill(buffer.begin(), buffer.end(), 0xAA);
  EncodeIngestResult({}, buffer.data());
  EncodeAggValue({}, buffer.data() + 16);
  EXPECT_TRUE(std::all_of(buffer.begin(), buffer.begin() + 72, [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(buffer[72], 0xAA);  // Nothing written past the record.
  std::vector<uint8_t> status_bytes(kClusterStatusSizeBytes + 1, 0xAA);
  EncodeClusterStatus(ClusterStatus{.partitions = {}}, status_bytes.data());
  EXPECT_TRUE(std::all_of(status_bytes.begin(), status_bytes.begin() + 40,
                          [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(status_bytes.back(), 0xAA);
}

}  // namespace
}  // namespace unimeter::protocol
