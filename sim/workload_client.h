// sim/workload_client.h
//
// The simulated application used by the simulator workloads: one connection at a time to
// a node chosen by the workload, one INGEST_SYNC request in flight, client timestamps on
// every event (so the server deduplicates resends), and the same request resent until its
// outcome is learned, as the SDKs allow. Client 0 first registers the SUM metric "m".
// Every event adds 1 to one of `accounts` accounts; the Ledger records what was sent and
// acknowledged, the ground truth the checkers compare node state against.
#ifndef UNIMETER_SIM_WORKLOAD_CLIENT_H_
#define UNIMETER_SIM_WORKLOAD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "node/base/random.h"
#include "protocol/response_reader.h"
#include "sim/sim_env.h"

namespace unimeter::sim {

inline constexpr uint16_t kWorkloadPort = 7001;

// The log sink of --verbose runs: every node line on stderr with its virtual time.
LogSink StderrLogSink();

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
  bool metric_registered = false;
  uint64_t requests = 0;
  uint64_t client_crashes = 0;

  // S1/S3 at quiescence for one account whose committed SUM is `sum`: empty if it holds,
  // else what is violated.
  std::string CheckExactlyOnce(uint64_t account, uint64_t sum) const;
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
  // Drops the connection (a request in flight gets an unknown outcome and is resent): the
  // next tick connects to a node `pick_node` chooses then.
  void Reconnect() { Disconnect(); }
  bool idle() const { return !in_flight_ && !has_request_; }

 private:
  struct Request {
    std::vector<uint64_t> accounts;   // One per event.
    std::vector<int64_t> timestamps;  // One per event.
    std::string payload_frame;        // Without a valid request id; patched per send.
    bool metric_put = false;
    bool outcome_unknown = false;  // An attempt ended without an answer, or with ERR.
  };

  void Tick();
  void Connect();
  void OnClosed();
  void Disconnect();
  bool NextRequest();
  void Send();
  void OnData(absl::Span<const uint8_t> bytes);
  void OnReply(protocol::Status status);
  // The client process dies with a request in flight; a new one connects afresh.
  void CrashMidRequest();

  SimEnv& env_;
  Prng prng_;
  const uint32_t index_;
  Ledger& ledger_;
  std::function<NodeId()> pick_node_;
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
