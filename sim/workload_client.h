// sim/workload_client.h
//
// The simulated application used by the simulator workloads: one connection at a time to
// a node chosen by the workload, one INGEST_SYNC request in flight, client timestamps on
// every event (so the server deduplicates resends), and the same request resent until its
// outcome is learned, as the SDKs allow. Client 0 first registers the Ledger's metrics in
// order: always the SUM metric "m", where every event adds 1 to one of `accounts` accounts
// (the per-account counts that most checkers compare node state against), and after
// Ledger::AddAggregationMetrics one metric of each aggregation type with dimensions, whose
// events carry drawn values, operations, properties and timestamps around bucket
// boundaries (sim/reference_model.h checks them). The Ledger records every event sent and
// its outcome: the ground truth.
#ifndef UNIMETER_SIM_WORKLOAD_CLIENT_H_
#define UNIMETER_SIM_WORKLOAD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/base/random.h"
#include "protocol/response_reader.h"
#include "protocol/wire.h"
#include "sim/sim_env.h"

namespace unimeter::sim {

inline constexpr uint16_t kWorkloadPort = 7001;

// The log sink of --verbose runs: every node line on stderr with its virtual time.
LogSink StderrLogSink();

// What the client learned about an event's request.
enum class Outcome : uint8_t {
  kPending = 0,       // Not answered yet (or resent after an unknown outcome).
  kAcknowledged = 1,  // OK, DUPLICATE or UNKNOWN_METRIC: committed exactly once.
  kRefused = 2,       // BACKPRESSURE on every attempt, then abandoned: never counted.
  kUnknown = 3,       // The client crashed before learning it: counted at most once.
};

// One event as a client sent it (its dedup key is (code, account, timestamp, value)).
struct SentEvent {
  uint64_t account = 0;
  int64_t timestamp_ns = 0;
  uint64_t value = 0;
  uint8_t metric = 0;  // Index into Ledger::schemas.
  Outcome outcome = Outcome::kPending;
};

// Ground truth of what clients sent and what the server acknowledged, per account.
struct Ledger {
  explicit Ledger(uint64_t accounts)
      : sent(accounts, 0), acked(accounts, 0), refused(accounts, 0) {}
  std::vector<uint64_t> sent;  // Distinct events.
  std::vector<uint64_t> acked;
  // Events of requests answered BACKPRESSURE ("nothing was accepted") that the client then
  // abandoned: they must never be counted. At quiescence sum == acked and
  // acked + refused == sent.
  std::vector<uint64_t> refused;
  // Events of requests whose client crashed before learning the outcome: counted at most
  // once (acked <= sum <= acked + unknown).
  std::vector<uint64_t> unknown = std::vector<uint64_t>(sent.size(), 0);
  // Client timestamp of every acknowledged event, per account (to name what was lost).
  std::vector<std::vector<int64_t>> acked_timestamps =
      std::vector<std::vector<int64_t>>(sent.size());
  // The metrics client 0 registers, in order; "m" (SUM, the per-account counts) first.
  std::vector<protocol::MetricSchemaRecord> schemas = {SumMetricM()};
  size_t schemas_registered = 0;
  // Days (relative to 2026-01-01) the events of metrics other than "m" fall on.
  std::vector<int32_t> event_days;
  // Every event sent, in the order clients built them.
  std::vector<SentEvent> events;
  uint64_t requests = 0;
  uint64_t client_crashes = 0;
  uint64_t backpressure_replies = 0;  // BACKPRESSURE answers to ingest requests.
  uint64_t redirects = 0;             // REDIRECT answers followed (registry changes).
  std::string redirect_failure;       // A REDIRECT no request of this workload may get.
  // Called for each event of an ingest request as the client takes its answer (OK,
  // DUPLICATE or UNKNOWN_METRIC) as an acknowledgement: the online S14 check.
  std::function<void(const SentEvent& event, protocol::Status status)> on_acknowledged;

  // S1/S3 at quiescence for one account whose committed SUM is `sum`: empty if it holds,
  // else what is violated.
  std::string CheckExactlyOnce(uint64_t account, uint64_t sum) const;

  bool metrics_registered() const { return schemas_registered == schemas.size(); }
  // Adds COUNT "c" (DAY), SUM "s" (DAY), MAX "x" (CALENDAR), LATEST "l" (FIXED) and
  // COUNT_UNIQUE "u" (CALENDAR), each with dimensions r in {a, b} and z in {p, q}, and
  // draws the CALENDAR billing-cycle days and the event days (days on both sides of those
  // metrics' bucket boundaries) from `prng`.
  void AddAggregationMetrics(Prng& prng);

  static protocol::MetricSchemaRecord SumMetricM();
};

// The shape of a client's requests (a swarm knob of the cluster workload).
struct RequestShape {
  uint32_t events_max = 40;  // Each request carries 1..events_max events.
  // All events of a request go to one account (one partition), as an SDK batching per
  // customer sends them; otherwise each event picks its account.
  bool one_account = false;
  // One request in this many, the client process crashes right after sending it (its
  // outcome is never learned and it is not resent); 0: never.
  uint32_t crash_one_in = 0;
};

class WorkloadClient {
 public:
  // `pick_node` chooses the node to connect to on each (re)connect.
  WorkloadClient(SimEnv& env, uint64_t seed, uint32_t index, Ledger& ledger,
                 std::function<NodeId()> pick_node, RequestShape shape = {});

  void Start() { Tick(); }
  void StopSendingNew() { stop_new_ = true; }
  void ResumeSending() { stop_new_ = false; }
  // Drops the connection (a request in flight gets an unknown outcome and is resent): the
  // next tick connects to a node `pick_node` chooses then.
  void Reconnect() { Disconnect(); }
  bool idle() const { return !in_flight_ && !has_request_; }

 private:
  struct Request {
    std::vector<uint64_t> accounts;   // One per event of "m".
    std::vector<int64_t> timestamps;  // One per event of "m".
    size_t first_event = 0;           // Its events are Ledger::events[first, end).
    size_t end_event = 0;
    std::string payload_frame;  // Without a valid request id; patched per send.
    bool metric_put = false;
    // An ingest naming its partition (all its events are of one account), as the Go SDK
    // may send one: a node that does not own it answers REDIRECT to the owner.
    bool explicit_partition = false;
    bool outcome_unknown = false;  // An attempt ended without an answer, or with ERR.
  };

  void Tick();
  void Connect();
  void OnClosed();
  void Disconnect();
  bool NextRequest();
  // Draws the event of a metric other than "m" numbered `number` (unique per client).
  protocol::IngestEvent AggregationEvent(uint64_t number, uint64_t account,
                                         const protocol::MetricSchemaRecord& schema);
  void SetOutcome(Outcome outcome);
  void Send();
  void OnData(absl::Span<const uint8_t> bytes);
  void OnReply(protocol::Status status);
  // A REDIRECT answer: the request goes again to the node it names.
  void OnRedirect(const std::string& payload);
  // The client process dies with a request in flight; a new one connects afresh.
  void CrashMidRequest();

  SimEnv& env_;
  Prng prng_;
  const uint32_t index_;
  Ledger& ledger_;
  std::function<NodeId()> pick_node_;
  std::optional<NodeId> redirect_node_;  // Where the next connection goes, once.
  const RequestShape shape_;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<Stream> closing_;
  protocol::ResponseReader replies_;
  Request request_;
  bool has_request_ = false;
  bool in_flight_ = false;
  bool connecting_ = false;
  bool stop_new_ = false;
  uint32_t request_id_ = 0;
  uint32_t next_request_id_ = 1;
  uint64_t next_event_ = 0;
  int64_t sent_at_ns_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_WORKLOAD_CLIENT_H_
