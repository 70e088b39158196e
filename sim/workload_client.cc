#include "sim/workload_client.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/endian.h"
#include "protocol/wire.h"
#include "sim/sim_network.h"

namespace unimeter::sim {
namespace {

constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMillisecond;
constexpr int64_t kT0 = 1'767'225'600 * kSecond;  // Client timestamps: kT0 + event number.
constexpr int64_t kRequestTimeoutNs = 5 * kSecond;

}  // namespace

LogSink StderrLogSink() {
  return [](int64_t time_ns, NodeId node, uint64_t incarnation, std::string_view line) {
    std::fprintf(stderr, "t=%.6fs n%u.%llu %.*s\n", static_cast<double>(time_ns) / 1e9, node,
                 static_cast<unsigned long long>(incarnation), static_cast<int>(line.size()),
                 line.data());
  };
}

WorkloadClient::WorkloadClient(SimEnv& env, uint64_t seed, uint32_t index, Ledger& ledger,
                               std::function<NodeId()> pick_node, RequestShape shape)
    : env_(env),
      prng_(seed),
      index_(index),
      ledger_(ledger),
      pick_node_(std::move(pick_node)),
      shape_(shape) {}

void WorkloadClient::Tick() {
  env_.StartTimer(10 * kMillisecond, [this] { Tick(); });
  if (stream_ == nullptr) {
    if (!connecting_) {
      Connect();
    }
    return;
  }
  if (in_flight_) {
    if (env_.MonotonicNowNs() - sent_at_ns_ > kRequestTimeoutNs) {
      Disconnect();  // Outcome unknown: resend on a new connection.
    }
    return;
  }
  if (!has_request_ && !NextRequest()) {
    return;
  }
  Send();
}

void WorkloadClient::Connect() {
  connecting_ = true;
  env_.Connect(SimAddress(pick_node_(), kWorkloadPort),
               [this](absl::StatusOr<std::unique_ptr<Stream>> stream) {
                 connecting_ = false;
                 if (!stream.ok()) {
                   return;  // The node is down; the next tick retries.
                 }
                 stream_ = std::move(*stream);
                 stream_->SetHandler({[this](absl::Span<const uint8_t> bytes) { OnData(bytes); },
                                      [this](absl::Status) { OnClosed(); }});
               });
}

void WorkloadClient::OnClosed() {
  if (in_flight_) request_.outcome_unknown = true;
  in_flight_ = false;  // The request stays in has_request_: it is resent.
  replies_ = protocol::ResponseReader();
  closing_ = std::move(stream_);
  env_.StartTimer(0, [this] { closing_.reset(); });
}

void WorkloadClient::Disconnect() {
  if (stream_ != nullptr) {
    stream_->Close();
  }
}

bool WorkloadClient::NextRequest() {
  if (index_ == 0 && !ledger_.metric_registered) {
    protocol::MetricSchemaRecord schema;
    schema.code = "m";
    schema.agg_type = 1;  // SUM
    request_ = Request{};
    request_.metric_put = true;
    UM_CHECK_OK(protocol::AppendMetricPutRequest(1, schema, &request_.payload_frame));
    has_request_ = true;
    return true;
  }
  if (!ledger_.metric_registered || stop_new_) {
    return false;
  }
  const size_t count = prng_.UniformRange(1, shape_.events_max);
  const uint64_t accounts = ledger_.sent.size();
  std::vector<protocol::IngestEvent> events(count);
  request_ = Request{};
  const uint64_t request_account = shape_.one_account ? prng_.UniformBelow(accounts) : 0;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t number = (uint64_t{index_} << 40) | next_event_++;
    const uint64_t account = shape_.one_account ? request_account : prng_.UniformBelow(accounts);
    events[i] = protocol::IngestEvent{"m", account, kT0 + static_cast<int64_t>(number), 1, 0, {}};
    request_.accounts.push_back(account);
    request_.timestamps.push_back(events[i].timestamp_ns);
    ++ledger_.sent[account];
  }
  UM_CHECK_OK(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync, protocol::kPartitionAuto,
                                            1, events, &request_.payload_frame));
  has_request_ = true;
  return true;
}

std::string Ledger::CheckExactlyOnce(uint64_t account, uint64_t sum) const {
  const uint64_t low = acked[account];
  const uint64_t high = acked[account] + unknown[account];
  const bool accounted = acked[account] + refused[account] + unknown[account] == sent[account];
  if (sum >= low && sum <= high && accounted) return std::string();
  return absl::StrCat(
      sum < low ? "S1 (acknowledged event lost)" : "S3 (exactly once at quiescence)", ": account ",
      account, " sum ", sum, ", sent ", sent[account], ", acknowledged ", acked[account],
      ", refused and abandoned ", refused[account], ", outcome unknown (client crashed) ",
      unknown[account]);
}

void WorkloadClient::CrashMidRequest() {
  if (!in_flight_) return;  // The answer came first.
  for (uint64_t account : request_.accounts) ++ledger_.unknown[account];
  ++ledger_.client_crashes;
  in_flight_ = false;
  has_request_ = false;
  Disconnect();
}

void WorkloadClient::Send() {
  request_id_ = next_request_id_++;
  std::string frame = request_.payload_frame;
  StoreU32(reinterpret_cast<uint8_t*>(frame.data()) + 12, request_id_);
  if (stream_
          ->Write(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()))
          .ok()) {
    in_flight_ = true;
    sent_at_ns_ = env_.MonotonicNowNs();
    ++ledger_.requests;
    if (shape_.crash_one_in != 0 && !request_.metric_put &&
        prng_.UniformBelow(shape_.crash_one_in) == 0) {
      env_.StartTimer(static_cast<int64_t>(prng_.UniformBelow(2'000'000)),
                      [this] { CrashMidRequest(); });
    }
  }
}

void WorkloadClient::OnData(absl::Span<const uint8_t> bytes) {
  replies_.Append(std::span<const uint8_t>(bytes.data(), bytes.size()));
  protocol::ResponseFrame frame;
  protocol::ResponseReader::Result result;
  while ((result = replies_.Next(&frame)) == protocol::ResponseReader::Result::kFrame) {
    if (frame.header.request_id == request_id_ && in_flight_) {
      OnReply(static_cast<protocol::Status>(frame.header.status));
    }
  }
  if (result == protocol::ResponseReader::Result::kCorrupt) {
    Disconnect();  // The server broke framing: a checker-visible failure to resend from.
  }
}

void WorkloadClient::OnReply(protocol::Status status) {
  in_flight_ = false;
  const bool acknowledged = status == protocol::Status::kOk ||
                            status == protocol::Status::kDuplicate ||
                            status == protocol::Status::kUnknownMetric;
  if (status == protocol::Status::kBackpressure && !request_.metric_put &&
      !request_.outcome_unknown && prng_.UniformBelow(2) == 0) {
    // Half of the refused requests are abandoned, so that a refusal of events that were
    // in fact stored shows at quiescence (a resend would be deduplicated and hide it).
    // Only requests refused on every attempt: BACKPRESSURE says this attempt stored
    // nothing, not that an earlier attempt with an unknown outcome did not.
    for (uint64_t account : request_.accounts) ++ledger_.refused[account];
    has_request_ = false;
    return;
  }
  if (!acknowledged) {
    if (status != protocol::Status::kBackpressure) {
      // ERR: this node could not get an answer (cut off, no quorum, the owner moved). Resend
      // through another node, as the SDKs fail over; the outcome is unknown until then.
      request_.outcome_unknown = true;
      Disconnect();
    }
    return;  // Resend the same request (safe: client timestamps).
  }
  if (request_.metric_put) {
    ledger_.metric_registered = true;
  }
  for (size_t i = 0; i < request_.accounts.size(); ++i) {
    ++ledger_.acked[request_.accounts[i]];
    ledger_.acked_timestamps[request_.accounts[i]].push_back(request_.timestamps[i]);
  }
  has_request_ = false;
}

}  // namespace unimeter::sim
