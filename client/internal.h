// client/internal.h
//
// Pure helpers of the client library, separated from the I/O loop so that they can be tested
// without sockets: request ids, addresses, event validation, ingest batching and the
// incremental reader of reply frames. Not part of the public API.
#ifndef UNIMETER_CLIENT_INTERNAL_H_
#define UNIMETER_CLIENT_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "protocol/response_reader.h"
#include "protocol/wire.h"

namespace unimeter::client::internal {

// The request id after `id`: 1, 2, 3, ... wrapping from 0xFFFFFFFF to 1, never 0 (WP 2.5).
uint32_t NextRequestId(uint32_t id);

struct HostPort {
  std::string host{};
  uint16_t port = 0;
};
// Splits `host:port` at the last colon (WP 6.7). InvalidArgument if there is no colon, the
// host is empty, or the port is not a decimal number in 1..65535.
absl::StatusOr<HostPort> SplitAddress(std::string_view address);

// Checks what the wire encoder cannot express or the server would reject for one event:
// metric code 1..63 bytes, <= 255 properties, key <= 31 and value <= 63 bytes, no NUL,
// operation NONE/ADD/REMOVE. `index` names the event in the message.
absl::Status ValidateEvent(const Event& event, size_t index);

// One wire request of an ingest call: indexes into the caller's events, in input order.
struct IngestBatch {
  std::vector<uint32_t> event_indexes{};
  size_t props_count = 0;
  // account_id % 256 of the first event: the request is routed to this partition's leader.
  uint16_t first_partition = 0;
  // Every event carries a client timestamp: the request may be resent after an unknown outcome.
  bool all_timestamped = true;
};

// Groups `events` by `owner_of(partition)` (events whose owner is "" form one group with each
// other), keeping input order inside each group, then cuts each group into batches of at most
// kRequestEventsMax events and kRequestPropertiesMax property pairs. Groups appear in order of
// their first event. REQUIRES: every event passed ValidateEvent.
std::vector<IngestBatch> PlanIngestBatches(std::span<const Event> events,
                                           const std::function<std::string(uint32_t)>& owner_of);

// Appends the request frame of `batch` (header partition 0xFFFF, the given request id).
absl::Status AppendIngestBatch(protocol::Opcode opcode, uint32_t request_id,
                               std::span<const Event> events, const IngestBatch& batch,
                               std::string* out);

// Rewrites the request id in the 16-byte header at the front of `frame`.
// REQUIRES: frame->size() >= kRequestHeaderSizeBytes.
void SetRequestId(uint32_t request_id, std::string* frame);

// The delay before retry number `attempt` (1-based): initial * 2^(attempt-1) capped at
// `maximum`, then scaled by `jitter` in [0, 1) to [delay / 2, delay).
int64_t BackoffDelayMs(int attempt, int64_t initial_ms, int64_t maximum_ms, double jitter);

// One reply or push frame.
// Reply frames are reassembled by the codec's reader (protocol/response_reader.h).
using ResponseFrame = protocol::ResponseFrame;
using ResponseReader = protocol::ResponseReader;

// Decoders of reply payloads into owning client types. InvalidArgument on a short payload.
absl::StatusOr<protocol::IngestResult> DecodeIngestReply(std::span<const uint8_t> payload);
absl::StatusOr<AggValue> DecodeAggValueReply(std::span<const uint8_t> payload);
absl::StatusOr<std::vector<EventRecord>> DecodeEventListReply(std::span<const uint8_t> payload);
absl::StatusOr<std::vector<AlertRecord>> DecodeAlertListReply(std::span<const uint8_t> payload);
absl::StatusOr<std::vector<BreakdownCell>> DecodeBreakdownReply(std::span<const uint8_t> payload);
absl::StatusOr<PartitionMap> DecodePartitionMapReply(std::span<const uint8_t> payload);
absl::StatusOr<ClusterStatus> DecodeClusterStatusReply(std::span<const uint8_t> payload);
AlertRecord ToAlertRecord(const protocol::AlertRecord& record);

}  // namespace unimeter::client::internal

#endif  // UNIMETER_CLIENT_INTERNAL_H_
