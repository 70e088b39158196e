#include "client/internal.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/endian.h"

namespace unimeter::client::internal {

namespace {

namespace wire = ::unimeter::protocol;

// Debian's Abseil has its own string_view: bridge explicitly.
std::string Str(std::string_view view) { return std::string(view); }

absl::Status CheckString(std::string_view value, size_t bytes_max, size_t index,
                         std::string_view what) {
  if (value.size() > bytes_max) {
    return absl::InvalidArgumentError(absl::StrCat("event ", index, ": ", Str(what), " is ",
                                                   value.size(), " bytes, more than ", bytes_max));
  }
  if (value.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", index, ": ", Str(what), " contains a NUL byte"));
  }
  return absl::OkStatus();
}

absl::Status ShortReply(std::string_view what, size_t size_bytes, size_t needed_bytes) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", Str(what), " reply: ", size_bytes,
                                                 " bytes, expected ", needed_bytes));
}

// The count header of EVENTS_LIST / ALERTS_LIST replies, checked against the payload.
absl::StatusOr<uint32_t> ListCount(std::span<const uint8_t> payload, size_t record_size_bytes,
                                   std::string_view what) {
  if (payload.size() < wire::kListCountHeaderSizeBytes) {
    return ShortReply(what, payload.size(), wire::kListCountHeaderSizeBytes);
  }
  const uint32_t count = LoadU32(payload.data());
  const size_t needed = wire::kListCountHeaderSizeBytes + size_t{count} * record_size_bytes;
  if (payload.size() < needed) {
    return ShortReply(what, payload.size(), needed);
  }
  return count;
}

}  // namespace

uint32_t NextRequestId(uint32_t id) {
  const uint32_t next = id + 1;  // Wraps from 0xFFFFFFFF to 0.
  return next == wire::kPushRequestId ? 1 : next;
}

absl::StatusOr<HostPort> SplitAddress(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", Str(address), "' is not host:port"));
  }
  uint32_t port = 0;
  for (char c : address.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("address '", Str(address), "' has an invalid port"));
    }
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", Str(address), "' has an invalid port"));
  }
  return HostPort{.host = Str(address.substr(0, colon)), .port = static_cast<uint16_t>(port)};
}

absl::Status ValidateEvent(const Event& event, size_t index) {
  if (event.metric_code.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("event ", index, ": empty metric code"));
  }
  absl::Status status =
      CheckString(event.metric_code, wire::kMetricCodeFieldBytes - 1, index, "metric code");
  if (!status.ok()) {
    return status;
  }
  if (static_cast<uint8_t>(event.operation) > wire::kOperationTypeMax) {
    return absl::InvalidArgumentError(absl::StrCat("event ", index, ": invalid operation"));
  }
  if (event.properties.size() > wire::kEventPropertiesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", index, ": ", event.properties.size(), " properties, more than 255"));
  }
  for (const Property& property : event.properties) {
    status = CheckString(property.key, wire::kPropertyKeyFieldBytes - 1, index, "property key");
    if (status.ok()) {
      status =
          CheckString(property.value, wire::kPropertyValueFieldBytes - 1, index, "property value");
    }
    if (!status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

std::vector<IngestBatch> PlanIngestBatches(std::span<const Event> events,
                                           const std::function<std::string(uint32_t)>& owner_of) {
  UM_CHECK_LE(events.size(), size_t{UINT32_MAX});
  // Group by owner, in order of first appearance. The group index per owner is looked up in a
  // small ordered map (a handful of nodes).
  std::map<std::string, size_t> group_of_owner;
  std::vector<std::vector<uint32_t>> groups;
  for (size_t i = 0; i < events.size(); ++i) {
    const uint32_t partition = static_cast<uint32_t>(events[i].account_id % wire::kPartitionCount);
    auto [it, inserted] = group_of_owner.emplace(owner_of(partition), groups.size());
    if (inserted) {
      groups.emplace_back();
    }
    groups[it->second].push_back(static_cast<uint32_t>(i));
  }
  std::vector<IngestBatch> batches;
  for (const std::vector<uint32_t>& group : groups) {
    IngestBatch* batch = nullptr;
    for (uint32_t index : group) {
      const Event& event = events[index];
      UM_CHECK_LE(event.properties.size(), size_t{wire::kEventPropertiesMax});
      if (batch == nullptr || batch->event_indexes.size() == wire::kRequestEventsMax ||
          batch->props_count + event.properties.size() > wire::kRequestPropertiesMax) {
        batch = &batches.emplace_back();
        batch->first_partition = static_cast<uint16_t>(event.account_id % wire::kPartitionCount);
      }
      batch->event_indexes.push_back(index);
      batch->props_count += event.properties.size();
      batch->all_timestamped = batch->all_timestamped && event.timestamp_ns != 0;
    }
  }
  return batches;
}

absl::Status AppendIngestBatch(wire::Opcode opcode, uint32_t request_id,
                               std::span<const Event> events, const IngestBatch& batch,
                               std::string* out) {
  UM_CHECK_LE(batch.event_indexes.size(), size_t{wire::kRequestEventsMax});
  UM_CHECK_LE(batch.props_count, size_t{wire::kRequestPropertiesMax});
  // The codec takes views: build them over the caller's strings.
  std::vector<wire::PropPair> props;
  props.reserve(batch.props_count);
  std::vector<wire::IngestEvent> wire_events;
  wire_events.reserve(batch.event_indexes.size());
  for (uint32_t index : batch.event_indexes) {
    const Event& event = events[index];
    const size_t first_prop = props.size();
    for (const Property& property : event.properties) {
      props.push_back({.key = property.key, .value = property.value});
    }
    wire_events.push_back({.metric_code = event.metric_code,
                           .account_id = event.account_id,
                           .timestamp_ns = event.timestamp_ns,
                           .value = event.value,
                           .operation_type = static_cast<uint8_t>(event.operation),
                           .props = std::span<const wire::PropPair>(props.data() + first_prop,
                                                                    event.properties.size())});
  }
  UM_CHECK_EQ(props.size(), batch.props_count);  // No reallocation happened above.
  return wire::AppendIngestRequest(opcode, wire::kPartitionAuto, request_id, wire_events, out);
}

void SetRequestId(uint32_t request_id, std::string* frame) {
  UM_CHECK_GE(frame->size(), wire::kRequestHeaderSizeBytes);
  UM_CHECK_NE(request_id, wire::kPushRequestId);
  uint8_t* bytes = reinterpret_cast<uint8_t*>(frame->data());
  wire::RequestHeader header = wire::DecodeRequestHeader(bytes);
  header.request_id = request_id;
  wire::EncodeRequestHeader(header, bytes);
}

int64_t BackoffDelayMs(int attempt, int64_t initial_ms, int64_t maximum_ms, double jitter) {
  UM_CHECK_GE(attempt, 1);
  UM_CHECK(jitter >= 0.0 && jitter < 1.0);
  int64_t delay_ms = std::max<int64_t>(initial_ms, 1);
  for (int i = 1; i < attempt && delay_ms < maximum_ms; ++i) {
    delay_ms *= 2;
  }
  delay_ms = std::min(delay_ms, std::max<int64_t>(maximum_ms, 1));
  return delay_ms / 2 + static_cast<int64_t>(static_cast<double>(delay_ms - delay_ms / 2) * jitter);
}

// ---- Reply decoders ---------------------------------------------------------------------------

absl::StatusOr<wire::IngestResult> DecodeIngestReply(std::span<const uint8_t> payload) {
  if (payload.size() < wire::kIngestResultSizeBytes) {
    return ShortReply("ingest", payload.size(), wire::kIngestResultSizeBytes);
  }
  return wire::DecodeIngestResult(payload.data());
}

absl::StatusOr<AggValue> DecodeAggValueReply(std::span<const uint8_t> payload) {
  if (payload.size() < wire::kAggValueSizeBytes) {
    return ShortReply("usage", payload.size(), wire::kAggValueSizeBytes);
  }
  return wire::DecodeAggValue(payload.data());
}

absl::StatusOr<std::vector<EventRecord>> DecodeEventListReply(std::span<const uint8_t> payload) {
  absl::StatusOr<uint32_t> count = ListCount(payload, wire::kEventRecordSizeBytes, "EVENTS_LIST");
  if (!count.ok()) {
    return count.status();
  }
  std::vector<EventRecord> records;
  records.reserve(*count);
  for (uint32_t i = 0; i < *count; ++i) {
    const wire::EventRecord record = wire::DecodeEventRecord(
        payload.data() + wire::kListCountHeaderSizeBytes + i * wire::kEventRecordSizeBytes);
    records.push_back({.offset = record.offset,
                       .timestamp_ns = record.timestamp_ns,
                       .account_id = record.account_id,
                       .metric_code = Str(record.metric_code),
                       .value = record.value,
                       .operation_type = record.operation_type});
  }
  return records;
}

AlertRecord ToAlertRecord(const wire::AlertRecord& record) {
  return {.offset = record.offset,
          .account_id = record.account_id,
          .metric_code = Str(record.metric_code),
          .threshold_code = Str(record.threshold_code),
          .value_at_cross = record.value_at_cross,
          .event_timestamp_ns = record.event_timestamp_ns};
}

absl::StatusOr<std::vector<AlertRecord>> DecodeAlertListReply(std::span<const uint8_t> payload) {
  absl::StatusOr<uint32_t> count = ListCount(payload, wire::kAlertRecordSizeBytes, "ALERTS_LIST");
  if (!count.ok()) {
    return count.status();
  }
  std::vector<AlertRecord> records;
  records.reserve(*count);
  for (uint32_t i = 0; i < *count; ++i) {
    records.push_back(ToAlertRecord(wire::DecodeAlertRecord(
        payload.data() + wire::kListCountHeaderSizeBytes + i * wire::kAlertRecordSizeBytes)));
  }
  return records;
}

absl::StatusOr<std::vector<BreakdownCell>> DecodeBreakdownReply(std::span<const uint8_t> payload) {
  if (payload.size() % wire::kBreakdownEntrySizeBytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("malformed BREAKDOWN reply: ", payload.size(),
                                                   " bytes is not a multiple of 320"));
  }
  std::vector<BreakdownCell> cells;
  for (size_t at = 0; at < payload.size(); at += wire::kBreakdownEntrySizeBytes) {
    const wire::BreakdownEntry entry = wire::DecodeBreakdownEntry(payload.data() + at);
    BreakdownCell& cell = cells.emplace_back();
    const size_t dims = std::min<size_t>(entry.dims_count, wire::kGroupByKeysMax);
    for (size_t i = 0; i < dims; ++i) {
      cell.dimensions.push_back({.key = Str(entry.dim_keys[i]), .value = Str(entry.dim_values[i])});
    }
    cell.value = entry.value;
  }
  return cells;
}

absl::StatusOr<PartitionMap> DecodePartitionMapReply(std::span<const uint8_t> payload) {
  // The existing clients accept only exactly this length (WP 7.2); so do we.
  if (payload.size() != wire::kPartitionMapSizeBytes) {
    return ShortReply("GET_PARTITION_MAP", payload.size(), wire::kPartitionMapSizeBytes);
  }
  const wire::PartitionMap decoded = wire::DecodePartitionMap(payload.data());
  PartitionMap map;
  for (size_t p = 0; p < wire::kPartitionCount; ++p) {
    if (decoded[p].leader.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed partition map: partition ", p, " has no leader"));
    }
    map[p] = {.leader = Str(decoded[p].leader),
              .replica0 = Str(decoded[p].replica0),
              .replica1 = Str(decoded[p].replica1)};
  }
  return map;
}

absl::StatusOr<ClusterStatus> DecodeClusterStatusReply(std::span<const uint8_t> payload) {
  if (payload.size() < wire::kClusterStatusSizeBytes) {
    return ShortReply("CLUSTER_STATUS", payload.size(), wire::kClusterStatusSizeBytes);
  }
  return wire::DecodeClusterStatus(payload.data());
}

}  // namespace unimeter::client::internal
