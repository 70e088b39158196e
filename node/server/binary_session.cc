#include "node/server/binary_session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/server/convert.h"
#include "node/server/extensions.h"
#include "node/server/ingest_fanout.h"
#include "node/server/node_server.h"

namespace unimeter {
namespace {

using protocol::Opcode;
using protocol::Status;

bool NothingAccepted(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsResourceExhausted(status);
}

}  // namespace

BinarySession::BinarySession(NodeServer& server, std::unique_ptr<Stream> stream)
    : server_(server),
      stream_(std::move(stream)),
      id_(stream_->id()),
      reader_(protocol::FrameReaderOptions{ImplementedExtensions(), true}) {}

BinarySession::~BinarySession() = default;

void BinarySession::Start() {
  std::weak_ptr<BinarySession> weak = weak_from_this();
  stream_->SetHandler(Stream::Handler{[weak](absl::Span<const uint8_t> bytes) {
                                        if (auto self = weak.lock(); self != nullptr) {
                                          self->OnData(bytes);
                                        }
                                      },
                                      [weak, server = &server_, id = id_](absl::Status) {
                                        if (auto self = weak.lock(); self != nullptr) {
                                          self->closed_ = true;
                                        }
                                        server->OnSessionClosed(id);
                                      }});
}

void BinarySession::Close() {
  if (!closed_) {
    closed_ = true;
    stream_->Close();
  }
}

void BinarySession::OnData(absl::Span<const uint8_t> bytes) {
  std::span<const uint8_t> input(bytes.data(), bytes.size());
  while (!input.empty() && !closed_ && reading_) {
    protocol::FrameEvent event;
    input = input.subspan(reader_.Consume(input, &event));
    if (event.kind != protocol::FrameEventKind::kNeedMore) {
      HandleFrame(event);
    }
  }
}

void BinarySession::HandleFrame(const protocol::FrameEvent& event) {
  switch (event.kind) {
    case protocol::FrameEventKind::kFrame:
      if (in_flight_ >= server_.options_.requests_in_flight_max) {
        server_.metrics_.backpressure->Increment();
        std::string frame;
        protocol::AppendEmptyReply(Status::kBackpressure, event.header.request_id, &frame);
        Reply(std::move(frame));
        return;
      }
      Dispatch(event.header, event.payload);
      return;
    case protocol::FrameEventKind::kReject:
      server_.metrics_.requests_rejected->Increment();
      ReplyError(event.header.request_id);
      return;
    case protocol::FrameEventKind::kClose: {
      server_.metrics_.requests_rejected->Increment();
      ReplyError(event.header.request_id);
      server_.env_.Log(absl::StrCat("closing connection ", stream_->peer_address(),
                                    ": bad magic or oversize frame"));
      Close();
      return;
    }
    case protocol::FrameEventKind::kNeedMore:
      return;
  }
}

void BinarySession::Dispatch(const protocol::RequestHeader& header,
                             std::span<const uint8_t> payload) {
  const uint32_t id = header.request_id;
  switch (static_cast<Opcode>(header.packet_type)) {
    case Opcode::kIngestAsync:
    case Opcode::kIngestSync:
      return HandleIngest(header, payload);
    case Opcode::kGetPartitionMap:
      return HandlePartitionMap(id);
    case Opcode::kMetricPut:
      return HandleMetricPut(id, payload);
    case Opcode::kMetricDelete:
      return HandleMetricDelete(id, payload);
    case Opcode::kMetricList:
      return HandleMetricList(id);
    case Opcode::kUsageQuery:
      return HandleUsageQuery(id, payload);
    case Opcode::kUsageRealtime:
      return HandleUsageRealtime(id, payload);
    case Opcode::kEventsList:
      return HandleEventsList(id, payload);
    case Opcode::kAlertsList:
      return HandleAlertsList(id, payload);
    case Opcode::kAlertPushEnable:
      if (!alert_subscriber_) {
        alert_subscriber_ = true;
        server_.metrics_.alert_subscribers->Add(1);
      }
      return ReplyStatus(id, absl::OkStatus());
    case Opcode::kUsageQueryBreakdown:
      return HandleBreakdown(id, payload);
    case Opcode::kClusterStatus:
      return HandleClusterStatus(id);
    case Opcode::kClusterRebalance:
      return HandleRebalance(id, payload);
    default:
      break;
  }
  switch (header.packet_type) {
    case kOpcodeExtIngest:
      return HandleExtIngest(id, payload);
    case kOpcodeExtRangeQuery:
      return HandleExtRangeQuery(id, payload);
    case kOpcodeExtEventsPage:
      return HandleExtEventsPage(id, payload);
    case kOpcodeExtServerInfo:
      return HandleExtServerInfo(id);
    default:
      return ReplyError(id);  // The frame reader rejects everything else first.
  }
}

void BinarySession::Reply(std::string frame) {
  if (closed_) {
    return;
  }
  const absl::Status status = stream_->Write(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()));
  if (!status.ok()) {
    server_.env_.Log(absl::StrCat("closing connection ", stream_->peer_address(),
                                  ": reply not written: ", status.ToString()));
    Close();
  }
}

bool BinarySession::Push(const std::string& frame) {
  if (closed_ || stream_->pending_write_bytes() + frame.size() > 4 * 1024 * 1024) {
    return false;
  }
  return stream_
      ->Write(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()))
      .ok();
}

void BinarySession::ReplyError(uint32_t request_id) {
  std::string frame;
  protocol::AppendEmptyReply(Status::kErr, request_id, &frame);
  Reply(std::move(frame));
}

void BinarySession::ReplyStatus(uint32_t request_id, const absl::Status& status) {
  std::string frame;
  if (status.ok()) {
    protocol::AppendEmptyReply(Status::kOk, request_id, &frame);
  } else if (const std::optional<NodeId> target = RedirectTarget(status); target.has_value()) {
    return ReplyRedirect(request_id, *target);
  } else if (NothingAccepted(status)) {
    server_.metrics_.backpressure->Increment();
    protocol::AppendEmptyReply(Status::kBackpressure, request_id, &frame);
  } else {
    protocol::AppendEmptyReply(Status::kErr, request_id, &frame);
  }
  Reply(std::move(frame));
}

void BinarySession::ReplyRedirect(uint32_t request_id, NodeId node) {
  // Nothing was applied. A node this one cannot name an address for (never one of its
  // peers) gets BACKPRESSURE: the client retries, and its map refresh finds the owner.
  const std::optional<std::string> address = server_.PeerClientAddress(node);
  std::string frame;
  if (!address.has_value() || !protocol::AppendRedirectReply(request_id, *address, &frame).ok()) {
    return ReplyStatus(request_id, absl::UnavailableError("no client address for the node"));
  }
  Reply(std::move(frame));
}

void BinarySession::HandleIngest(const protocol::RequestHeader& header,
                                 std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::IngestRequestView> request =
      protocol::IngestRequestView::Decode(header.partition, payload);
  if (!request.ok()) {
    return ReplyError(header.request_id);
  }
  if (!request->partition_is_auto()) {
    // WP 7.1 step 2: an explicit partition this node does not own is redirected to its
    // owner, nothing stored; an owner not known yet gets BACKPRESSURE. An owned one is
    // handled like 0xFFFF (events of other partitions are forwarded).
    const NodeId owner = server_.engine_->owner(request->partition());
    if (owner != server_.env_.node_id()) {
      if (owner == replication::kNoOwner) {
        return ReplyStatus(header.request_id, absl::UnavailableError("no owner known"));
      }
      return ReplyRedirect(header.request_id, owner);
    }
  }
  // Convert and validate everything first: a malformed event means nothing is accepted.
  std::vector<metering::Event> events;
  events.reserve(request->event_count());
  for (uint32_t i = 0; i < request->event_count(); ++i) {
    events.push_back(EventFromWire(request->event(i)));
    if (!metering::ValidateEvent(events.back()).ok()) {
      return ReplyError(header.request_id);
    }
  }
  const uint32_t request_id = header.request_id;
  const IngestMode mode = static_cast<Opcode>(header.packet_type) == Opcode::kIngestSync
                              ? IngestMode::kSync
                              : IngestMode::kAsync;
  const int64_t started_ns = server_.env_.MonotonicNowNs();
  ++in_flight_;
  std::weak_ptr<BinarySession> weak = weak_from_this();
  IngestFanout(
      *server_.engine_, std::move(events), mode,
      [weak, request_id, mode, started_ns, server = &server_](MergedIngest merged) {
        std::string frame;
        switch (merged.outcome) {
          case MergedIngest::Outcome::kNothingAccepted:
            server->metrics_.backpressure->Increment();
            protocol::AppendEmptyReply(Status::kBackpressure, request_id, &frame);
            break;
          case MergedIngest::Outcome::kUnknown:
            protocol::AppendEmptyReply(Status::kErr, request_id, &frame);
            break;
          case MergedIngest::Outcome::kAcknowledged: {
            // WP 7.1 precedence: DUPLICATE, then UNKNOWN_METRIC, then OK.
            const Status status =
                merged.n_stored == 0 && merged.n_duplicates > 0 ? Status::kDuplicate
                : merged.unknown_metric && merged.n_stored > 0  ? Status::kUnknownMetric
                                                                : Status::kOk;
            protocol::AppendIngestReply(
                status, request_id,
                protocol::IngestResult{merged.n_stored, merged.n_duplicates, merged.last_offset},
                &frame);
            (mode == IngestMode::kSync ? server->metrics_.ingested_sync
                                       : server->metrics_.ingested_async)
                ->Increment(merged.n_stored);
            server->metrics_.duplicates->Increment(merged.n_duplicates);
            break;
          }
        }
        (mode == IngestMode::kSync ? server->metrics_.ingest_sync_duration
                                   : server->metrics_.ingest_async_duration)
            ->ObserveNs(server->env_.MonotonicNowNs() - started_ns);
        if (auto self = weak.lock(); self != nullptr) {
          --self->in_flight_;
          self->Reply(std::move(frame));
        }
      });
}

void BinarySession::HandleMetricPut(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::MetricSchemaRecord> record = protocol::DecodeMetricPut(payload);
  if (!record.ok()) {
    return ReplyError(request_id);
  }
  metering::MetricSchema schema = SchemaFromWire(*record);
  metering::NormalizeMetricSchema(schema);
  if (!metering::ValidateMetricSchema(schema).ok()) {
    return ReplyError(request_id);
  }
  ++in_flight_;
  std::weak_ptr<BinarySession> weak = weak_from_this();
  server_.engine_->PutMetric(std::move(schema), [weak, request_id](absl::Status status) {
    if (auto self = weak.lock(); self != nullptr) {
      --self->in_flight_;
      self->ReplyStatus(request_id, status);
    }
  });
}

void BinarySession::HandleMetricDelete(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::MetricDeleteRequest> request = protocol::DecodeMetricDelete(payload);
  if (!request.ok()) {
    return ReplyError(request_id);
  }
  ++in_flight_;
  std::weak_ptr<BinarySession> weak = weak_from_this();
  server_.engine_->DeleteMetric(std::string(request->metric_code),
                                [weak, request_id](absl::Status status) {
                                  if (auto self = weak.lock(); self != nullptr) {
                                    --self->in_flight_;
                                    self->ReplyStatus(request_id, status);
                                  }
                                });
}

void BinarySession::HandleMetricList(uint32_t request_id) {
  // Read as partition 0's state is read (WP 9.3: the registry leader answers): a list
  // taken after a METRIC_PUT was acknowledged includes it, through whichever node it goes.
  AnswerFromPartition(request_id, 0, false,
                      [request_id](BinarySession& self, const metering::PartitionState& state) {
                        std::vector<protocol::MetricSchemaRecord> records;
                        for (const metering::SchemaRef& schema : state.ListMetrics()) {
                          records.push_back(SchemaToWire(schema->schema()));
                        }
                        std::string frame;
                        if (!protocol::AppendMetricListReply(request_id, records, &frame).ok()) {
                          return self.ReplyError(request_id);
                        }
                        self.Reply(std::move(frame));
                      });
}

void BinarySession::AnswerFromState(uint32_t request_id, uint64_t account_id, bool extension,
                                    StateAnswer answer) {
  AnswerFromPartition(request_id, static_cast<uint32_t>(account_id % kPartitionCount), extension,
                      std::move(answer));
}

void BinarySession::AnswerFromPartition(uint32_t request_id, uint32_t partition, bool extension,
                                        StateAnswer answer) {
  std::weak_ptr<BinarySession> weak = weak_from_this();
  ++in_flight_;
  server_.engine_->Read(partition,
                        [weak, request_id, extension, answer = std::move(answer)](
                            absl::StatusOr<const metering::PartitionState*> state) mutable {
                          auto self = weak.lock();
                          if (self == nullptr) {
                            return;  // The connection is gone.
                          }
                          --self->in_flight_;
                          if (!state.ok()) {
                            return extension ? self->ReplyExtError(request_id, state.status())
                                             : self->ReplyStatus(request_id, state.status());
                          }
                          answer(*self, **state);
                        });
}

void BinarySession::HandleUsageQuery(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::UsageQueryRequest> request = protocol::DecodeUsageQuery(payload);
  if (!request.ok()) {
    return ReplyError(request_id);
  }
  std::vector<metering::Filter> filters;
  for (size_t i = 0; i < request->filters_count; ++i) {
    filters.push_back(metering::Filter{std::string(request->filters[i].key),
                                       std::string(request->filters[i].value)});
  }
  AnswerFromState(
      request_id, request->account_id, false,
      [request_id, account = request->account_id, code = std::string(request->metric_code),
       start = request->period_start_ns, end = request->period_end_ns,
       filters = std::move(filters)](BinarySession& self, const metering::PartitionState& state) {
        absl::StatusOr<metering::AggValue> value =
            state.QueryUsage(account, code, start, end, filters);
        if (!value.ok()) {
          return self.ReplyError(request_id);
        }
        std::string frame;
        protocol::AppendAggValueReply(request_id, AggValueToWire(*value), &frame);
        self.Reply(std::move(frame));
      });
}

void BinarySession::HandleUsageRealtime(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::UsageRealtimeRequest> request = protocol::DecodeUsageRealtime(payload);
  if (!request.ok()) {
    return ReplyError(request_id);
  }
  AnswerFromState(
      request_id, request->account_id, false,
      [request_id, account = request->account_id, code = std::string(request->metric_code)](
          BinarySession& self, const metering::PartitionState& state) {
        const metering::AggValue value =
            state.QueryRealtime(account, code, self.server_.env_.WallNowNs());
        std::string frame;
        protocol::AppendAggValueReply(request_id, AggValueToWire(value), &frame);
        self.Reply(std::move(frame));
      });
}

void BinarySession::HandleBreakdown(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::BreakdownRequest> request = protocol::DecodeBreakdown(payload);
  if (!request.ok()) {
    return ReplyError(request_id);
  }
  std::vector<std::string> keys;
  for (size_t i = 0; i < request->group_by_count; ++i) {
    keys.emplace_back(request->group_by_keys[i]);
  }
  AnswerFromState(
      request_id, request->account_id, false,
      [request_id, account = request->account_id, code = std::string(request->metric_code),
       start = request->period_start_ns, end = request->period_end_ns,
       keys = std::move(keys)](BinarySession& self, const metering::PartitionState& state) {
        absl::StatusOr<std::vector<metering::BreakdownCell>> cells =
            state.QueryBreakdown(account, code, start, end, keys);
        if (!cells.ok()) {
          return self.ReplyError(request_id);
        }
        std::vector<protocol::BreakdownEntry> entries(cells->size());
        for (size_t c = 0; c < cells->size(); ++c) {
          const metering::BreakdownCell& cell = (*cells)[c];
          entries[c].dims_count = static_cast<uint8_t>(cell.pairs.size());
          for (size_t k = 0; k < cell.pairs.size(); ++k) {
            entries[c].dim_keys[k] = cell.pairs[k].key;
            entries[c].dim_values[k] = cell.pairs[k].value;
          }
          entries[c].value = AggValueToWire(cell.value);
        }
        std::string frame;
        if (!protocol::AppendBreakdownReply(request_id, entries, &frame).ok()) {
          return self.ReplyError(request_id);
        }
        self.Reply(std::move(frame));
      });
}

void BinarySession::HandleEventsList(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::EventsListRequest> request = protocol::DecodeEventsList(payload);
  if (!request.ok()) {
    return ReplyError(request_id);
  }
  absl::StatusOr<std::vector<StoredEvent>> events =
      server_.engine_->ListEvents(request->account_id, request->since_ns, request->until_ns,
                                  protocol::kEventRecordsPerReplyMax, 0);
  if (!events.ok()) {
    server_.env_.Log(absl::StrCat("events list failed: ", events.status().ToString()));
    return ReplyError(request_id);
  }
  std::vector<protocol::EventRecord> records(events->size());
  for (size_t i = 0; i < events->size(); ++i) {
    const StoredEvent& event = (*events)[i];
    records[i] = protocol::EventRecord{event.offset,      event.timestamp_ns, event.account_id,
                                       event.metric_code, event.value,        event.operation};
  }
  std::string frame;
  if (!protocol::AppendEventListReply(request_id, records, &frame).ok()) {
    return ReplyError(request_id);
  }
  Reply(std::move(frame));
}

void BinarySession::HandleAlertsList(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::AlertsListRequest> request = protocol::DecodeAlertsList(payload);
  if (!request.ok()) {
    return ReplyError(request_id);
  }
  const absl::StatusOr<std::vector<AlertRecord>> listed = server_.engine_->ListAlerts(
      request->account_id, request->since_offset, protocol::kAlertRecordsPerReplyMax);
  if (!listed.ok()) {
    server_.env_.Log(absl::StrCat("ALERTS_LIST: ", listed.status().ToString()));
    return ReplyError(request_id);
  }
  const std::vector<AlertRecord>& alerts = *listed;
  std::vector<protocol::AlertRecord> records(alerts.size());
  for (size_t i = 0; i < alerts.size(); ++i) {
    const metering::AlertCrossing& crossing = alerts[i].crossing;
    records[i] = protocol::AlertRecord{alerts[i].offset,        crossing.account_id,
                                       crossing.metric_code,    crossing.threshold_code,
                                       crossing.value_at_cross, crossing.event_timestamp_ns};
  }
  std::string frame;
  if (!protocol::AppendAlertListReply(request_id, records, &frame).ok()) {
    return ReplyError(request_id);
  }
  Reply(std::move(frame));
}

void BinarySession::HandlePartitionMap(uint32_t request_id) {
  std::string storage;
  const protocol::PartitionMap map = server_.BuildPartitionMap(stream_->local_address(), &storage);
  std::string frame;
  if (!protocol::AppendPartitionMapReply(request_id, map, &frame).ok()) {
    return ReplyError(request_id);
  }
  Reply(std::move(frame));
}

void BinarySession::PushPartitionMap() {
  std::string storage;
  const protocol::PartitionMap map = server_.BuildPartitionMap(stream_->local_address(), &storage);
  std::string frame;
  if (protocol::AppendPartitionMapPushFrame(map, &frame).ok()) {
    Push(frame);
  }
}

void BinarySession::HandleClusterStatus(uint32_t request_id) {
  std::string frame;
  protocol::AppendClusterStatusReply(request_id, server_.BuildClusterStatus(), &frame);
  Reply(std::move(frame));
}

void BinarySession::HandleRebalance(uint32_t request_id, std::span<const uint8_t> payload) {
  absl::StatusOr<protocol::ClusterRebalanceRequest> request =
      protocol::DecodeClusterRebalance(payload);
  // Membership is fixed by --peers: the count must be the configured cluster size. Ownership
  // is already balanced on a single node, so a valid request is done at once.
  if (!request.ok() || request->new_node_count != server_.engine_->node_count()) {
    return ReplyError(request_id);
  }
  ReplyStatus(request_id, absl::OkStatus());
}

}  // namespace unimeter
