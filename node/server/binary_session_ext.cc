// The extension opcodes of BinarySession (node/server/extensions.h).
#include "absl/strings/str_cat.h"
#include "node/base/endian.h"
#include "node/server/binary_session.h"
#include "node/server/convert.h"
#include "node/server/extensions.h"
#include "node/server/ingest_fanout.h"
#include "node/server/node_server.h"
#include "node/server/range_query.h"
#include "protocol/extensions.pb.h"

namespace unimeter {
namespace {

template <typename Message>
bool ParseMessage(std::span<const uint8_t> payload, Message* message) {
  return message->ParseFromArray(payload.data(), static_cast<int>(payload.size()));
}

absl::StatusOr<metering::Event> EventFromExt(const ext::Event& ext_event) {
  metering::Event event;
  event.account_id = ext_event.account_id();
  event.metric_code = ext_event.metric_code();
  event.value = ext_event.value();
  event.timestamp_ns = ext_event.timestamp_ns();
  if (ext_event.operation() > metering::kOperationTypeMax) {
    return absl::InvalidArgumentError("operation must be 0, 1 or 2");
  }
  event.operation = static_cast<metering::OperationType>(ext_event.operation());
  for (const ext::Property& property : ext_event.properties()) {
    event.properties.push_back(metering::Property{property.key(), property.value()});
  }
  if (!ext_event.idempotency_key().empty()) {
    if (ext_event.idempotency_key().size() != 16) {
      return absl::InvalidArgumentError("idempotency_key must be empty or 16 bytes");
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(ext_event.idempotency_key().data());
    event.idempotency_key = metering::IdempotencyKey{LoadU64(bytes), LoadU64(bytes + 8)};
  }
  event.negative_correction = ext_event.negative_correction();
  if (absl::Status status = metering::ValidateEvent(event); !status.ok()) {
    return status;
  }
  return event;
}

}  // namespace

void BinarySession::ReplyMessage(uint32_t request_id, const std::string& serialized) {
  std::string frame;
  frame.resize(protocol::kResponseHeaderSizeBytes);
  protocol::EncodeResponseHeader(
      protocol::ResponseHeader{static_cast<uint8_t>(protocol::Status::kOk), request_id,
                               static_cast<uint32_t>(serialized.size())},
      reinterpret_cast<uint8_t*>(frame.data()));
  frame += serialized;
  Reply(std::move(frame));
}

void BinarySession::ReplyExtError(uint32_t request_id, const absl::Status& status) {
  if (absl::IsUnavailable(status) || absl::IsResourceExhausted(status)) {
    return ReplyStatus(request_id, status);  // BACKPRESSURE, empty.
  }
  ext::ErrorReply error;
  error.set_message(std::string(status.message()));
  const std::string serialized = error.SerializeAsString();
  std::string frame;
  frame.resize(protocol::kResponseHeaderSizeBytes);
  protocol::EncodeResponseHeader(
      protocol::ResponseHeader{static_cast<uint8_t>(protocol::Status::kErr), request_id,
                               static_cast<uint32_t>(serialized.size())},
      reinterpret_cast<uint8_t*>(frame.data()));
  frame += serialized;
  Reply(std::move(frame));
}

void BinarySession::HandleExtIngest(uint32_t request_id, std::span<const uint8_t> payload) {
  ext::IngestRequest request;
  if (!ParseMessage(payload, &request)) {
    return ReplyExtError(request_id, absl::InvalidArgumentError("bad IngestRequest"));
  }
  if (request.events_size() > static_cast<int>(protocol::kRequestEventsMax)) {
    return ReplyExtError(request_id, absl::InvalidArgumentError("more than 1024 events"));
  }
  std::vector<metering::Event> events;
  for (const ext::Event& ext_event : request.events()) {
    absl::StatusOr<metering::Event> event = EventFromExt(ext_event);
    if (!event.ok()) {
      return ReplyExtError(request_id, event.status());
    }
    events.push_back(*std::move(event));
  }
  const IngestMode mode = request.sync() ? IngestMode::kSync : IngestMode::kAsync;
  std::weak_ptr<BinarySession> weak = weak_from_this();
  ++in_flight_;
  IngestFanout(*server_.engine_, std::move(events), mode, [weak, request_id](MergedIngest merged) {
    auto self = weak.lock();
    if (self == nullptr) {
      return;
    }
    --self->in_flight_;
    if (merged.outcome == MergedIngest::Outcome::kNothingAccepted) {
      return self->ReplyStatus(request_id, absl::UnavailableError("backpressure"));
    }
    if (merged.outcome == MergedIngest::Outcome::kUnknown) {
      return self->ReplyExtError(request_id, absl::UnknownError("outcome unknown for some events"));
    }
    ext::IngestReply reply;
    reply.set_n_stored(merged.n_stored);
    reply.set_n_duplicates(merged.n_duplicates);
    reply.set_n_conflicts(merged.n_conflicts);
    reply.set_last_offset(merged.last_offset);
    reply.set_unknown_metric(merged.unknown_metric);
    for (const metering::EventOutcome outcome : merged.outcomes) {
      reply.add_outcomes(outcome == metering::EventOutcome::kStored      ? ext::STORED
                         : outcome == metering::EventOutcome::kDuplicate ? ext::DUPLICATE
                                                                         : ext::CONFLICT);
    }
    self->ReplyMessage(request_id, reply.SerializeAsString());
  });
}

void BinarySession::HandleExtRangeQuery(uint32_t request_id, std::span<const uint8_t> payload) {
  ext::RangeQueryRequest request;
  if (!ParseMessage(payload, &request)) {
    return ReplyExtError(request_id, absl::InvalidArgumentError("bad RangeQueryRequest"));
  }
  std::vector<metering::Filter> filters;
  for (const ext::Filter& filter : request.filters()) {
    filters.push_back(metering::Filter{filter.key(), filter.value()});
  }
  const uint64_t account_id = request.account_id();
  AnswerFromState(request_id, account_id, true,
                  [request_id, request = std::move(request), filters = std::move(filters)](
                      BinarySession& self, const metering::PartitionState& state) {
                    self.AnswerRangeQuery(request_id, request, filters, state);
                  });
}

void BinarySession::AnswerRangeQuery(uint32_t request_id, const ext::RangeQueryRequest& request,
                                     const std::vector<metering::Filter>& filters,
                                     const metering::PartitionState& state) {
  ext::RangeQueryReply reply;
  const metering::SchemaRef schema = state.FindSchema(request.metric_code());
  if (schema == nullptr || request.end_ns() <= request.start_ns()) {
    return ReplyMessage(request_id, reply.SerializeAsString());  // Zeros.
  }
  absl::StatusOr<std::vector<StoredEvent>> events = server_.engine_->ListEvents(
      request.account_id(), request.start_ns(), request.end_ns() - 1, kRangeQueryEventsMax + 1, 0);
  if (!events.ok()) {
    return ReplyExtError(request_id, absl::InternalError(events.status().message()));
  }
  if (events->size() > kRangeQueryEventsMax) {
    return ReplyExtError(request_id,
                         absl::InvalidArgumentError("range holds more than 1,000,000 events; "
                                                    "narrow it or use USAGE_QUERY"));
  }
  absl::StatusOr<metering::AggValue> value =
      ComputeRangeAggregate(*schema, *events, request.start_ns(), request.end_ns(), filters);
  if (!value.ok()) {
    return ReplyExtError(request_id, value.status());
  }
  reply.set_sum_lo(static_cast<uint64_t>(value->sum));
  reply.set_sum_hi(static_cast<uint64_t>(value->sum >> 64));
  reply.set_count(value->count);
  reply.set_max(value->max);
  reply.set_last_value(value->last_value);
  reply.set_last_timestamp_ns(value->last_timestamp_ns);
  reply.set_events_scanned(events->size());
  ReplyMessage(request_id, reply.SerializeAsString());
}

void BinarySession::HandleExtEventsPage(uint32_t request_id, std::span<const uint8_t> payload) {
  ext::EventsPageRequest request;
  if (!ParseMessage(payload, &request)) {
    return ReplyExtError(request_id, absl::InvalidArgumentError("bad EventsPageRequest"));
  }
  const size_t limit = request.limit() == 0 || request.limit() > protocol::kEventRecordsPerReplyMax
                           ? protocol::kEventRecordsPerReplyMax
                           : request.limit();
  const uint64_t first_offset = request.has_after_offset() ? request.after_offset() + 1 : 0;
  // One more than the page, to know whether another page follows.
  absl::StatusOr<std::vector<StoredEvent>> events = server_.engine_->ListEvents(
      request.account_id(), request.since_ns(), request.until_ns(), limit + 1, first_offset);
  if (!events.ok()) {
    return ReplyExtError(request_id, absl::InternalError(events.status().message()));
  }
  ext::EventsPageReply reply;
  reply.set_more(events->size() > limit);
  for (size_t i = 0; i < events->size() && i < limit; ++i) {
    const StoredEvent& event = (*events)[i];
    ext::StoredEvent* out = reply.add_events();
    out->set_offset(event.offset);
    out->set_timestamp_ns(event.timestamp_ns);
    out->set_metric_code(event.metric_code);
    out->set_value(event.value);
    out->set_operation(event.operation);
    out->set_registered(event.registered);
    for (const metering::Property& property : event.properties) {
      ext::Property* out_property = out->add_properties();
      out_property->set_key(property.key);
      out_property->set_value(property.value);
    }
    reply.set_next_after_offset(event.offset);
  }
  ReplyMessage(request_id, reply.SerializeAsString());
}

void BinarySession::HandleExtServerInfo(uint32_t request_id) {
  ext::ServerInfoReply reply;
  reply.set_version(kServerVersion);
  reply.set_node_id(server_.env_.node_id());
  reply.set_nodes(server_.engine_->node_count());
  for (const char* capability : {"ext_ingest.idempotency_keys", "ext_ingest.signed_corrections",
                                 "ext_range_query", "ext_events_page", "v1"}) {
    reply.add_capabilities(capability);
  }
  ReplyMessage(request_id, reply.SerializeAsString());
}

}  // namespace unimeter
