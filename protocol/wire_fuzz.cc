// protocol/wire_fuzz.cc
//
// Fuzz target for the wire codec. The input is read two ways:
//
//   1. As a client byte stream. It is fed to a FrameReader whole, in chunks whose sizes come
//      from a Prng seeded by the input's hash, and (for short inputs) byte by byte. The three
//      event sequences must be identical; every yielded frame must agree with ClassifyHeader
//      and is decoded with its opcode's decoder.
//   2. As one payload: byte 0 selects an opcode, the rest is handed to that opcode's decoder
//      directly (reaches the decoders without a valid header).
//
// Whatever decodes is re-encoded with the matching encoder and decoded again; the result must
// equal the first decode (encoders canonicalise: pads and bytes after a NUL become zero), and
// reply encoders are exercised with the decoded strings. Any inconsistency aborts (UM_CHECK).
//
// Built two ways: linked with libFuzzer by tools/fuzz-protocol (clang -fsanitize=fuzzer,address),
// and as //protocol:wire_fuzz_replay, which replays the checked-in corpus and seeded mutations.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "node/base/check.h"
#include "node/base/random.h"
#include "protocol/frame_reader.h"
#include "protocol/wire.h"

namespace unimeter::protocol {
namespace {

using Bytes = std::span<const uint8_t>;

Bytes Span(const std::string& bytes) {
  return Bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// The payload of a request frame built by an Append*Request function.
Bytes RequestPayload(const std::string& frame) {
  UM_CHECK_GE(frame.size(), kRequestHeaderSizeBytes);
  const RequestHeader header = DecodeRequestHeader(Span(frame).data());
  UM_CHECK_EQ(header.payload_len, frame.size() - kRequestHeaderSizeBytes);
  UM_CHECK(ClassifyHeader(header).action == HeaderAction::kDispatch);
  return Span(frame).subspan(kRequestHeaderSizeBytes);
}

Bytes ReplyPayload(const std::string& frame, uint8_t status) {
  UM_CHECK_GE(frame.size(), kResponseHeaderSizeBytes);
  const ResponseHeader header = DecodeResponseHeader(Span(frame).data());
  UM_CHECK_EQ(header.status, status);
  UM_CHECK_EQ(header.payload_len, frame.size() - kResponseHeaderSizeBytes);
  UM_CHECK_LE(header.payload_len, kReplyPayloadSizeBytesMax);
  return Span(frame).subspan(kResponseHeaderSizeBytes);
}

void CheckStringFits(std::string_view value, size_t width) {
  UM_CHECK_LE(value.size(), width);
  UM_CHECK(value.find('\0') == std::string_view::npos);
}

void CheckIngest(uint16_t partition, Bytes payload) {
  absl::StatusOr<IngestRequestView> view = IngestRequestView::Decode(partition, payload);
  if (!view.ok()) {
    return;
  }
  UM_CHECK_LE(view->event_count(), kRequestEventsMax);
  UM_CHECK_LE(view->props_count(), kRequestPropertiesMax);
  std::vector<std::vector<PropPair>> props(view->event_count());
  std::vector<IngestEvent> events(view->event_count());
  std::vector<EventRecord> records(view->event_count());
  size_t props_total = 0;
  for (size_t i = 0; i < view->event_count(); ++i) {
    const WireEventView event = view->event(i);
    CheckStringFits(event.metric_code(), kMetricCodeFieldBytes);
    UM_CHECK_LE(static_cast<uint8_t>(event.operation_type()), kOperationTypeMax);
    for (size_t j = 0; j < event.props_count(); ++j) {
      const PropPairView prop = event.prop(j);
      CheckStringFits(prop.key(), kPropertyKeyFieldBytes);
      CheckStringFits(prop.value(), kPropertyValueFieldBytes);
      // Props lie inside the payload.
      UM_CHECK(reinterpret_cast<const uint8_t*>(prop.value().data()) >= payload.data());
      UM_CHECK(reinterpret_cast<const uint8_t*>(prop.value().data()) + prop.value().size() <=
               payload.data() + payload.size());
      props[i].push_back({prop.key(), prop.value()});
    }
    props_total += event.props_count();
    events[i] = {.metric_code = event.metric_code(),
                 .account_id = event.account_id(),
                 .timestamp_ns = event.timestamp_ns(),
                 .value = event.value(),
                 .operation_type = static_cast<uint8_t>(event.operation_type()),
                 .props = props[i]};
    records[i] = {.offset = i,
                  .timestamp_ns = event.timestamp_ns(),
                  .account_id = event.account_id(),
                  .metric_code = event.metric_code(),
                  .value = event.value(),
                  .operation_type = static_cast<uint8_t>(event.operation_type())};
  }
  UM_CHECK_EQ(props_total, view->props_count());
  // Re-encode, decode again: the same events.
  std::string frame;
  UM_CHECK_OK(AppendIngestRequest(Opcode::kIngestSync, partition, 1, events, &frame));
  absl::StatusOr<IngestRequestView> again =
      IngestRequestView::Decode(partition, RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK_EQ(again->event_count(), view->event_count());
  for (size_t i = 0; i < view->event_count(); ++i) {
    const WireEventView a = view->event(i);
    const WireEventView b = again->event(i);
    UM_CHECK(a.metric_code() == b.metric_code());
    UM_CHECK_EQ(a.account_id(), b.account_id());
    UM_CHECK_EQ(a.timestamp_ns(), b.timestamp_ns());
    UM_CHECK_EQ(a.value(), b.value());
    UM_CHECK(a.operation_type() == b.operation_type());
    UM_CHECK_EQ(a.props_count(), b.props_count());
    for (size_t j = 0; j < a.props_count(); ++j) {
      UM_CHECK(a.prop(j).key() == b.prop(j).key());
      UM_CHECK(a.prop(j).value() == b.prop(j).value());
    }
  }
  // The events as an EVENTS_LIST reply.
  std::string reply;
  UM_CHECK_OK(AppendEventListReply(2, records, &reply));
  const Bytes list = ReplyPayload(reply, 0);
  UM_CHECK_EQ(list.size(), kListCountHeaderSizeBytes + records.size() * kEventRecordSizeBytes);
  for (size_t i = 0; i < records.size(); ++i) {
    const EventRecord decoded =
        DecodeEventRecord(list.data() + kListCountHeaderSizeBytes + i * kEventRecordSizeBytes);
    UM_CHECK(decoded.metric_code == records[i].metric_code);
    UM_CHECK_EQ(decoded.value, records[i].value);
  }
}

void CheckMetricPut(Bytes payload) {
  absl::StatusOr<MetricSchemaRecord> schema = DecodeMetricPut(payload);
  if (!schema.ok()) {
    return;
  }
  UM_CHECK(!schema->code.empty());
  UM_CHECK_LE(schema->agg_type, kAggTypeMax);
  UM_CHECK_GE(schema->billing_cycle_day, kBillingCycleDayMin);
  UM_CHECK_LE(schema->billing_cycle_day, kBillingCycleDayMax);
  std::string frame;
  UM_CHECK_OK(AppendMetricPutRequest(3, *schema, &frame));
  UM_CHECK_EQ(frame.size() - kRequestHeaderSizeBytes, MetricSchemaRecordSizeBytes(*schema));
  absl::StatusOr<MetricSchemaRecord> again = DecodeMetricPut(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK(*again == *schema);
  // The same record in a METRIC_LIST reply, twice.
  const std::vector<MetricSchemaRecord> schemas = {*schema, *schema};
  std::string reply;
  size_t written = 0;
  UM_CHECK_OK(AppendMetricListReply(4, schemas, &reply, &written));
  UM_CHECK_EQ(written, 2u);
  absl::StatusOr<std::vector<MetricSchemaRecord>> listed =
      DecodeMetricListReply(ReplyPayload(reply, 0));
  UM_CHECK_OK(listed.status());
  UM_CHECK(*listed == schemas);
}

void CheckMetricDelete(Bytes payload) {
  absl::StatusOr<MetricDeleteRequest> request = DecodeMetricDelete(payload);
  if (!request.ok()) {
    return;
  }
  CheckStringFits(request->metric_code, kMetricCodeFieldBytes);
  std::string frame;
  UM_CHECK_OK(AppendMetricDeleteRequest(5, request->metric_code, &frame));
  UM_CHECK(DecodeMetricDelete(RequestPayload(frame))->metric_code == request->metric_code);
  // A REDIRECT to an address made of the code's first bytes.
  const std::string_view address = request->metric_code.substr(0, kAddressBytesMax);
  std::string reply;
  const absl::Status status = AppendRedirectReply(6, address, &reply);
  UM_CHECK_EQ(status.ok(), !address.empty());
  if (status.ok()) {
    UM_CHECK(DecodeAddress(ReplyPayload(reply, 4).data()) == address);
  }
}

void CheckUsageQuery(Bytes payload) {
  absl::StatusOr<UsageQueryRequest> request = DecodeUsageQuery(payload);
  if (!request.ok()) {
    return;
  }
  UM_CHECK_LE(request->filters_count, kQueryFiltersMax);
  std::string frame;
  UM_CHECK_OK(AppendUsageQueryRequest(7, *request, &frame));
  absl::StatusOr<UsageQueryRequest> again = DecodeUsageQuery(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK_EQ(again->account_id, request->account_id);
  UM_CHECK_EQ(again->period_start_ns, request->period_start_ns);
  UM_CHECK_EQ(again->period_end_ns, request->period_end_ns);
  UM_CHECK(again->metric_code == request->metric_code);
  UM_CHECK_EQ(again->filters_count, request->filters_count);
  for (size_t i = 0; i < request->filters_count; ++i) {
    UM_CHECK(again->filters[i].key == request->filters[i].key);
    UM_CHECK(again->filters[i].value == request->filters[i].value);
  }
}

void CheckUsageRealtime(Bytes payload) {
  absl::StatusOr<UsageRealtimeRequest> request = DecodeUsageRealtime(payload);
  if (!request.ok()) {
    return;
  }
  std::string frame;
  UM_CHECK_OK(AppendUsageRealtimeRequest(8, *request, &frame));
  absl::StatusOr<UsageRealtimeRequest> again = DecodeUsageRealtime(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK_EQ(again->account_id, request->account_id);
  UM_CHECK(again->metric_code == request->metric_code);
  // An AggValue reply built from the request's numbers.
  const AggValue value{.sum = (static_cast<unsigned __int128>(request->account_id) << 64) | 7,
                       .count = request->account_id};
  std::string reply;
  AppendAggValueReply(9, value, &reply);
  UM_CHECK(DecodeAggValue(ReplyPayload(reply, 0).data()) == value);
}

void CheckEventsList(Bytes payload) {
  absl::StatusOr<EventsListRequest> request = DecodeEventsList(payload);
  if (!request.ok()) {
    return;
  }
  std::string frame;
  AppendEventsListRequest(10, *request, &frame);
  absl::StatusOr<EventsListRequest> again = DecodeEventsList(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK_EQ(again->account_id, request->account_id);
  UM_CHECK_EQ(again->since_ns, request->since_ns);
  UM_CHECK_EQ(again->until_ns, request->until_ns);
}

void CheckAlertsList(Bytes payload) {
  absl::StatusOr<AlertsListRequest> request = DecodeAlertsList(payload);
  if (!request.ok()) {
    return;
  }
  std::string frame;
  AppendAlertsListRequest(11, *request, &frame);
  absl::StatusOr<AlertsListRequest> again = DecodeAlertsList(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK_EQ(again->account_id, request->account_id);
  UM_CHECK_EQ(again->since_offset, request->since_offset);
}

void CheckBreakdown(Bytes payload) {
  absl::StatusOr<BreakdownRequest> request = DecodeBreakdown(payload);
  if (!request.ok()) {
    return;
  }
  UM_CHECK_GE(request->group_by_count, kGroupByKeysMin);
  UM_CHECK_LE(request->group_by_count, kGroupByKeysMax);
  std::string frame;
  UM_CHECK_OK(AppendBreakdownRequest(12, *request, &frame));
  absl::StatusOr<BreakdownRequest> again = DecodeBreakdown(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK(again->metric_code == request->metric_code);
  UM_CHECK_EQ(again->group_by_count, request->group_by_count);
  UM_CHECK(again->group_by_keys == request->group_by_keys);
  // One breakdown cell keyed by the requested keys, valued by the keys themselves.
  const BreakdownEntry entry{.dims_count = request->group_by_count,
                             .dim_keys = request->group_by_keys,
                             .dim_values = request->group_by_keys,
                             .value = {.sum = request->account_id}};
  std::string reply;
  UM_CHECK_OK(AppendBreakdownReply(13, std::span<const BreakdownEntry>(&entry, 1), &reply));
  const BreakdownEntry decoded = DecodeBreakdownEntry(ReplyPayload(reply, 0).data());
  UM_CHECK(decoded.dim_keys == entry.dim_keys);
  UM_CHECK(decoded.value == entry.value);
}

void CheckClusterRebalance(Bytes payload) {
  absl::StatusOr<ClusterRebalanceRequest> request = DecodeClusterRebalance(payload);
  if (!request.ok()) {
    return;
  }
  std::string frame;
  AppendClusterRebalanceRequest(14, *request, &frame);
  absl::StatusOr<ClusterRebalanceRequest> again = DecodeClusterRebalance(RequestPayload(frame));
  UM_CHECK_OK(again.status());
  UM_CHECK_EQ(again->new_node_count, request->new_node_count);
}

void DecodeForOpcode(uint8_t packet_type, uint16_t partition, Bytes payload) {
  switch (static_cast<Opcode>(packet_type)) {
    case Opcode::kIngestAsync:
    case Opcode::kIngestSync:
      CheckIngest(partition, payload);
      return;
    case Opcode::kMetricPut:
      CheckMetricPut(payload);
      return;
    case Opcode::kMetricDelete:
      CheckMetricDelete(payload);
      return;
    case Opcode::kUsageQuery:
      CheckUsageQuery(payload);
      return;
    case Opcode::kUsageRealtime:
      CheckUsageRealtime(payload);
      return;
    case Opcode::kEventsList:
      CheckEventsList(payload);
      return;
    case Opcode::kAlertsList:
      CheckAlertsList(payload);
      return;
    case Opcode::kUsageQueryBreakdown:
      CheckBreakdown(payload);
      return;
    case Opcode::kClusterRebalance:
      CheckClusterRebalance(payload);
      return;
    default:
      // Empty-payload requests (nothing to decode), pushes, reserved and unknown codes.
      return;
  }
}

struct Seen {
  FrameEventKind kind;
  RequestHeader header;
  HeaderRejection rejection;
  std::string payload;
  bool operator==(const Seen&) const = default;
};

// Feeds `input` in chunks of next_chunk() bytes; checks the reader's own invariants.
template <typename NextChunk>
std::vector<Seen> RunReader(Bytes input, NextChunk next_chunk) {
  FrameReader reader;
  std::vector<Seen> seen;
  size_t position = 0;
  while (position < input.size()) {
    const size_t chunk_size = std::min(next_chunk(), input.size() - position);
    Bytes chunk = input.subspan(position, chunk_size);
    position += chunk_size;
    while (!chunk.empty()) {
      FrameEvent event;
      const size_t used = reader.Consume(chunk, &event);
      UM_CHECK_LE(used, chunk.size());
      chunk = chunk.subspan(used);
      UM_CHECK_LE(reader.buffer_capacity_bytes(), kPayloadSizeBytesMax);
      if (event.kind == FrameEventKind::kNeedMore) {
        UM_CHECK(chunk.empty());
        continue;
      }
      UM_CHECK(seen.empty() || seen.back().kind != FrameEventKind::kClose);
      const HeaderVerdict verdict = ClassifyHeader(event.header);
      UM_CHECK(verdict.rejection == event.rejection);
      if (event.kind == FrameEventKind::kFrame) {
        UM_CHECK(verdict.action == HeaderAction::kDispatch);
        UM_CHECK_EQ(event.payload.size(), event.header.payload_len);
      } else {
        UM_CHECK(verdict.action != HeaderAction::kDispatch);
        UM_CHECK(event.payload.empty());
        UM_CHECK_EQ(event.kind == FrameEventKind::kClose,
                    verdict.action == HeaderAction::kRejectThenClose || verdict.may_close_instead);
      }
      seen.push_back(
          {event.kind, event.header, event.rejection,
           std::string(reinterpret_cast<const char*>(event.payload.data()), event.payload.size())});
    }
  }
  UM_CHECK_EQ(position, input.size());
  return seen;
}

uint64_t Fnv1a64(Bytes input) {
  uint64_t hash = 0xcbf29ce484222325;
  for (uint8_t byte : input) {
    hash = (hash ^ byte) * 0x100000001b3;
  }
  return hash;
}

}  // namespace
}  // namespace unimeter::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unimeter::protocol;  // NOLINT(build/namespaces): a C entry point.
  const Bytes input(data, size);

  // 1. The input as a byte stream.
  const std::vector<Seen> whole = RunReader(input, [&] { return input.size(); });
  unimeter::Prng prng(Fnv1a64(input));
  const std::vector<Seen> chunked = RunReader(input, [&] {
    return static_cast<size_t>(prng.Chance(1, 8) ? prng.UniformRange(1, 4096)
                                                 : prng.UniformRange(1, 24));
  });
  UM_CHECK(chunked == whole);
  if (size <= 4096) {
    UM_CHECK(RunReader(input, [] { return size_t{1}; }) == whole);
  }
  for (const Seen& seen : whole) {
    if (seen.kind == FrameEventKind::kFrame) {
      DecodeForOpcode(
          seen.header.packet_type, seen.header.partition,
          Bytes(reinterpret_cast<const uint8_t*>(seen.payload.data()), seen.payload.size()));
    }
  }

  // 2. The input as one payload for the opcode named by its first byte.
  if (size >= 1) {
    const uint16_t partition = size >= 3 ? static_cast<uint16_t>(data[1] | (data[2] << 8)) : 0xFFFF;
    DecodeForOpcode(data[0], partition, input.subspan(1));
  }
  return 0;
}
