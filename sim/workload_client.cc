#include "sim/workload_client.h"

#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
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
constexpr int64_t kDay = 86'400 * kSecond;
constexpr int64_t kRequestTimeoutNs = 5 * kSecond;

// Properties of the events of metrics other than "m" (declared: r in {a, b}, z in {p, q}):
// none, matches, undeclared values and keys, and repeated keys (only the first counts).
constexpr protocol::PropPair kPropsRa[] = {{"r", "a"}};
constexpr protocol::PropPair kPropsRb[] = {{"r", "b"}};
constexpr protocol::PropPair kPropsRx[] = {{"r", "x"}};
constexpr protocol::PropPair kPropsZp[] = {{"z", "p"}};
constexpr protocol::PropPair kPropsRaZq[] = {{"r", "a"}, {"z", "q"}};
constexpr protocol::PropPair kPropsZqRbRa[] = {{"z", "q"}, {"r", "b"}, {"r", "a"}};
constexpr protocol::PropPair kPropsYaZp[] = {{"y", "a"}, {"z", "p"}};
constexpr protocol::PropPair kPropsRxRa[] = {{"r", "x"}, {"r", "a"}};
constexpr std::span<const protocol::PropPair> kPropertySets[] = {
    {}, kPropsRa, kPropsRb, kPropsRx, kPropsZp, kPropsRaZq, kPropsZqRbRa, kPropsYaZp, kPropsRxRa};

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
  const NodeId node = redirect_node_.has_value() ? *redirect_node_ : pick_node_();
  redirect_node_.reset();
  env_.Connect(SimAddress(node, kWorkloadPort),
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
  if (index_ == 0 && !ledger_.metrics_registered()) {
    request_ = Request{};
    request_.metric_put = true;
    UM_CHECK_OK(protocol::AppendMetricPutRequest(1, ledger_.schemas[ledger_.schemas_registered],
                                                 &request_.payload_frame));
    has_request_ = true;
    return true;
  }
  if (!ledger_.metrics_registered() || stop_new_) {
    return false;
  }
  const size_t count = prng_.UniformRange(1, shape_.events_max);
  const uint64_t accounts = ledger_.sent.size();
  std::vector<protocol::IngestEvent> events(count);
  request_ = Request{};
  request_.first_event = ledger_.events.size();
  const uint64_t request_account = shape_.one_account ? prng_.UniformBelow(accounts) : 0;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t number = (uint64_t{index_} << 40) | next_event_++;
    const uint64_t account = shape_.one_account ? request_account : prng_.UniformBelow(accounts);
    uint8_t metric = 0;
    if (ledger_.schemas.size() > 1 && prng_.UniformBelow(5) >= 3) {
      metric = static_cast<uint8_t>(prng_.UniformRange(1, ledger_.schemas.size() - 1));
      events[i] = AggregationEvent(number, account, ledger_.schemas[metric]);
    } else {
      events[i] = protocol::IngestEvent{"m", account, kT0 + static_cast<int64_t>(number), 1, 0, {}};
      request_.accounts.push_back(account);
      request_.timestamps.push_back(events[i].timestamp_ns);
      ++ledger_.sent[account];
    }
    ledger_.events.push_back(
        SentEvent{account, events[i].timestamp_ns, events[i].value, metric, Outcome::kPending});
  }
  request_.end_event = ledger_.events.size();
  request_.explicit_partition = shape_.one_account && prng_.Chance(1, 4);
  const uint16_t partition =
      request_.explicit_partition
          ? static_cast<uint16_t>(request_account % protocol::kPartitionCount)
          : protocol::kPartitionAuto;
  UM_CHECK_OK(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync, partition, 1, events,
                                            &request_.payload_frame));
  has_request_ = true;
  return true;
}

protocol::IngestEvent WorkloadClient::AggregationEvent(uint64_t number, uint64_t account,
                                                       const protocol::MetricSchemaRecord& schema) {
  UM_CHECK(number < static_cast<uint64_t>(kDay / 2));
  const int64_t day = ledger_.event_days[prng_.UniformBelow(ledger_.event_days.size())];
  // Early on the day or late on it (number ns after its start or before its end): events
  // land on both sides of every bucket boundary among the drawn days, with unique keys.
  const int64_t timestamp_ns = prng_.Chance(1, 2)
                                   ? kT0 + day * kDay + static_cast<int64_t>(number)
                                   : kT0 + (day + 1) * kDay - 1 - static_cast<int64_t>(number);
  uint64_t value = 0;
  if (schema.agg_type == 4) {  // COUNT_UNIQUE: few members, so ADDs repeat and REMOVEs hit.
    value = prng_.UniformBelow(12);
  } else if (schema.agg_type == 1) {  // SUM: now and then a huge value (128-bit sums).
    value = prng_.Chance(1, 8) ? prng_.NextU64() : prng_.UniformBelow(1'000);
  } else {
    value = prng_.UniformBelow(1'000'000);
  }
  const auto operation = static_cast<uint8_t>(prng_.UniformBelow(3));  // NONE, ADD, REMOVE.
  const std::span<const protocol::PropPair> props =
      kPropertySets[prng_.UniformBelow(std::size(kPropertySets))];
  return protocol::IngestEvent{schema.code, account, timestamp_ns, value, operation, props};
}

void WorkloadClient::SetOutcome(Outcome outcome) {
  for (size_t i = request_.first_event; i < request_.end_event; ++i) {
    ledger_.events[i].outcome = outcome;
  }
}

protocol::MetricSchemaRecord Ledger::SumMetricM() {
  protocol::MetricSchemaRecord schema;
  schema.code = "m";
  schema.agg_type = 1;  // SUM
  return schema;
}

void Ledger::AddAggregationMetrics(Prng& prng) {
  const auto cycle_x = static_cast<uint8_t>(prng.UniformRange(1, 28));
  const auto cycle_u = static_cast<uint8_t>(prng.UniformRange(1, 28));
  const auto metric = [](const char* code, uint8_t agg_type, uint8_t period_type,
                         uint8_t billing_cycle_day) {
    protocol::MetricSchemaRecord schema;
    schema.code = code;
    schema.agg_type = agg_type;
    schema.period_type = period_type;
    schema.billing_cycle_day = billing_cycle_day;
    schema.dimensions = {{"r", {"a", "b"}}, {"z", {"p", "q"}}};
    return schema;
  };
  schemas.push_back(metric("c", 0, protocol::kPeriodTypeDay, 1));
  schemas.push_back(metric("s", 1, protocol::kPeriodTypeDay, 1));
  schemas.push_back(metric("x", 2, protocol::kPeriodTypeCalendar, cycle_x));
  schemas.push_back(metric("l", 3, protocol::kPeriodTypeFixed, 1));
  schemas.push_back(metric("u", 4, protocol::kPeriodTypeCalendar, cycle_u));
  // Thresholds (product-semantics 7), drawn within each type's value range: COUNT and SUM
  // cross once per bucket, SUM's second one only through huge values (its current value is
  // clamped to 2^64 - 1); LATEST and COUNT_UNIQUE go down and up again, so they cross
  // again; recurring ones fire on every event at or above them; 0 fires on the first.
  const auto threshold = [&prng](const char* code, uint64_t value) {
    return protocol::ThresholdSpec{code, value, prng.Chance(1, 3)};
  };
  const size_t first = schemas.size() - 5;
  schemas[first].thresholds = {threshold("c-low", prng.UniformRange(1, 3)),
                               threshold("c-high", prng.UniformRange(3, 12))};
  schemas[first + 1].thresholds = {threshold("s-mid", prng.UniformRange(100, 5'000)),
                                   threshold("s-huge", UINT64_MAX - prng.UniformBelow(1'000))};
  schemas[first + 2].thresholds = {threshold("x", prng.UniformBelow(1'000'000))};
  schemas[first + 3].thresholds = {threshold("l-low", prng.UniformBelow(500'000)),
                                   threshold("l-high", prng.UniformRange(500'000, 999'999))};
  schemas[first + 4].thresholds = {threshold("u-any", 0),
                                   threshold("u-many", prng.UniformRange(2, 8))};
  // Day d of November 2025, December 2025 and January 2026 is base + d days from kT0.
  constexpr int32_t kMonthBase[] = {-62, -32, -1};
  for (uint8_t cycle : {cycle_x, cycle_u}) {
    const int32_t base = kMonthBase[prng.UniformBelow(std::size(kMonthBase))];
    event_days.push_back(base + cycle - 1);  // The last day of a CALENDAR bucket ...
    event_days.push_back(base + cycle);      // ... and the first of the next.
  }
  event_days.push_back(-25);  // 2025-12-07, the last day of FIXED bucket 680,
  event_days.push_back(-24);  // and 2025-12-08, the first of bucket 681.
  for (int i = 0; i < 2; ++i)
    event_days.push_back(static_cast<int32_t>(prng.UniformBelow(56)) - 45);
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
  SetOutcome(Outcome::kUnknown);
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
      if (static_cast<protocol::Status>(frame.header.status) == protocol::Status::kRedirect) {
        OnRedirect(frame.payload);
        continue;
      }
      OnReply(static_cast<protocol::Status>(frame.header.status));
    }
  }
  if (result == protocol::ResponseReader::Result::kCorrupt) {
    Disconnect();  // The server broke framing: a checker-visible failure to resend from.
  }
}

void WorkloadClient::OnRedirect(const std::string& payload) {
  // A registry change (to the registry leader) or an ingest naming its partition (to its
  // owner) may be redirected, never an ingest of partition 0xFFFF: to a simulated node's
  // address "n<id>:port". Nothing was applied: the same request goes there, as the SDKs
  // follow one REDIRECT.
  in_flight_ = false;
  ++ledger_.redirects;
  const std::string address =
      payload.size() == 24
          ? std::string(protocol::DecodeAddress(reinterpret_cast<const uint8_t*>(payload.data())))
          : std::string();
  NodeId node = 0;
  const size_t colon = address.find(':');
  if (!(request_.metric_put || request_.explicit_partition) || address.size() < 2 ||
      address[0] != 'n' || colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(1, colon - 1), &node)) {
    ledger_.redirect_failure = absl::StrCat("S14 (client contract): a REDIRECT to '", address,
                                            "' for a request that is never redirected or to no "
                                            "node");
  } else {
    redirect_node_ = node;
  }
  Disconnect();
}

void WorkloadClient::OnReply(protocol::Status status) {
  in_flight_ = false;
  if (status == protocol::Status::kBackpressure) ++ledger_.backpressure_replies;
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
    SetOutcome(Outcome::kRefused);
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
    ++ledger_.schemas_registered;
  }
  SetOutcome(Outcome::kAcknowledged);
  if (ledger_.on_acknowledged && !request_.metric_put) {
    for (size_t i = request_.first_event; i < request_.end_event; ++i) {
      ledger_.on_acknowledged(ledger_.events[i], status);
    }
  }
  for (size_t i = 0; i < request_.accounts.size(); ++i) {
    ++ledger_.acked[request_.accounts[i]];
    ledger_.acked_timestamps[request_.accounts[i]].push_back(request_.timestamps[i]);
  }
  has_request_ = false;
}

}  // namespace unimeter::sim
