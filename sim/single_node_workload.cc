#include "sim/single_node_workload.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/base/endian.h"
#include "node/base/random.h"
#include "node/server/node_server.h"
#include "protocol/response_reader.h"
#include "protocol/wire.h"
#include "sim/sim_cluster.h"

namespace unimeter::sim {
namespace {

constexpr uint16_t kPort = 7001;
constexpr uint64_t kAccounts = 16;
constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMillisecond;
constexpr int64_t kT0 = 1'767'225'600 * kSecond;  // Client timestamps: kT0 + event number.
constexpr int64_t kRequestTimeoutNs = 5 * kSecond;
constexpr uint64_t kTagWorkload = 0x3000;
constexpr uint64_t kTagFaults = 0x3100;
constexpr uint64_t kTagKnobs = 0x3200;

// Ground truth of what clients sent and what the server acknowledged, per account.
struct Ledger {
  std::vector<uint64_t> sent = std::vector<uint64_t>(kAccounts, 0);  // Distinct events.
  std::vector<uint64_t> acked = std::vector<uint64_t>(kAccounts, 0);
  bool metric_registered = false;
  uint64_t requests = 0;
};

// One simulated application: one connection, one request in flight, resends the same
// request (same client timestamps) until it learns the outcome.
class WorkloadClient {
 public:
  WorkloadClient(SimCluster& cluster, SimEnv& env, uint64_t seed, uint32_t index, Ledger& ledger)
      : cluster_(cluster), env_(env), prng_(seed), index_(index), ledger_(ledger) {}

  void Start() { Tick(); }
  void StopSendingNew() { stop_new_ = true; }
  bool idle() const { return !in_flight_ && !has_request_; }

 private:
  struct Request {
    std::vector<uint64_t> accounts;  // One per event.
    std::string payload_frame;       // Without a valid request id; patched per send.
    bool metric_put = false;
  };

  void Tick() {
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

  void Connect() {
    connecting_ = true;
    env_.Connect(SimAddress(0, kPort), [this](absl::StatusOr<std::unique_ptr<Stream>> stream) {
      connecting_ = false;
      if (!stream.ok()) {
        return;  // The node is down; the next tick retries.
      }
      stream_ = std::move(*stream);
      stream_->SetHandler({[this](absl::Span<const uint8_t> bytes) { OnData(bytes); },
                           [this](absl::Status) { OnClosed(); }});
    });
  }

  void OnClosed() {
    in_flight_ = false;  // The request stays in has_request_: it is resent.
    replies_ = protocol::ResponseReader();
    closing_ = std::move(stream_);
    env_.StartTimer(0, [this] { closing_.reset(); });
  }

  void Disconnect() {
    if (stream_ != nullptr) {
      stream_->Close();
    }
  }

  bool NextRequest() {
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
    const size_t count = prng_.UniformRange(1, 40);
    std::vector<protocol::IngestEvent> events(count);
    request_ = Request{};
    for (size_t i = 0; i < count; ++i) {
      const uint64_t number = (uint64_t{index_} << 40) | next_event_++;
      const uint64_t account = prng_.UniformBelow(kAccounts);
      events[i] = protocol::IngestEvent{"m", account, kT0 + static_cast<int64_t>(number), 1, 0, {}};
      request_.accounts.push_back(account);
      ++ledger_.sent[account];
    }
    UM_CHECK_OK(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync,
                                              protocol::kPartitionAuto, 1, events,
                                              &request_.payload_frame));
    has_request_ = true;
    return true;
  }

  void Send() {
    request_id_ = next_request_id_++;
    std::string frame = request_.payload_frame;
    StoreU32(reinterpret_cast<uint8_t*>(frame.data()) + 12, request_id_);
    if (stream_
            ->Write(
                absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()))
            .ok()) {
      in_flight_ = true;
      sent_at_ns_ = env_.MonotonicNowNs();
      ++ledger_.requests;
    }
  }

  void OnData(absl::Span<const uint8_t> bytes) {
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

  void OnReply(protocol::Status status) {
    in_flight_ = false;
    const bool acknowledged = status == protocol::Status::kOk ||
                              status == protocol::Status::kDuplicate ||
                              status == protocol::Status::kUnknownMetric;
    if (!acknowledged) {
      return;  // BACKPRESSURE or ERR: resend the same request (safe: client timestamps).
    }
    if (request_.metric_put) {
      ledger_.metric_registered = true;
    }
    for (uint64_t account : request_.accounts) {
      ++ledger_.acked[account];
    }
    has_request_ = false;
  }

  SimCluster& cluster_;
  SimEnv& env_;
  Prng prng_;
  const uint32_t index_;
  Ledger& ledger_;
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

// Each account's SUM as the node holds it (ground truth from its state, not a reply).
std::vector<uint64_t> Sums(SimCluster& cluster) {
  std::vector<uint64_t> sums(kAccounts, 0);
  Engine& engine = static_cast<NodeServer&>(cluster.service(0)).engine();
  for (uint64_t account = 0; account < kAccounts; ++account) {
    engine.Read(static_cast<uint32_t>(account),
                [&](absl::StatusOr<const metering::PartitionState*> state) {
                  UM_CHECK_OK(state.status());
                  absl::StatusOr<metering::AggValue> value =
                      (*state)->QueryUsage(account, "m", 0, INT64_MAX, {});
                  UM_CHECK_OK(value.status());
                  sums[account] = static_cast<uint64_t>(value->sum);
                });
  }
  return sums;
}

// S1 and S2 against the ledger; an empty string when both hold.
std::string CheckBounds(SimCluster& cluster, const Ledger& ledger, const char* when) {
  const std::vector<uint64_t> sums = Sums(cluster);
  for (uint64_t account = 0; account < kAccounts; ++account) {
    if (sums[account] < ledger.acked[account]) {
      return absl::StrCat("S1 (acknowledged event lost) ", when, ": account ", account, " sum ",
                          sums[account], " < acknowledged ", ledger.acked[account]);
    }
    if (sums[account] > ledger.sent[account]) {
      return absl::StrCat("S2 (double counting) ", when, ": account ", account, " sum ",
                          sums[account], " > distinct events sent ", ledger.sent[account]);
    }
  }
  return "";
}

}  // namespace

SingleNodeRunResult RunSingleNodeSeed(uint64_t seed, const SingleNodeRunOptions& options) {
  ClusterOptions cluster_options;
  cluster_options.node_count = 1;
  // Swarm: half of the seeds let crashes keep a prefix of the unsynced writes, the last one
  // possibly torn (F10/F11), which exercises the WAL's torn-tail recovery.
  Prng knobs(SubSeed(seed, kTagKnobs));
  if (knobs.Chance(1, 2)) {
    cluster_options.disk.crash_keeps_unsynced_ppm = 700'000;
    cluster_options.disk.crash_torn_ppm = 500'000;
  }
  if (options.verbose) {
    cluster_options.log_sink = [](int64_t time_ns, NodeId node, uint64_t incarnation,
                                  std::string_view line) {
      std::fprintf(stderr, "t=%.6fs n%u.%llu %.*s\n", static_cast<double>(time_ns) / 1e9, node,
                   static_cast<unsigned long long>(incarnation), static_cast<int>(line.size()),
                   line.data());
    };
  }
  SimCluster cluster(seed, cluster_options, [](Env& env) {
    NodeServerOptions options;
    options.port = kPort;
    options.http_port = 0;
    options.min_free_disk_mb = 0;
    options.engine.checkpoint_interval_ns = 5 * kSecond;  // Exercise checkpoints often.
    return std::make_unique<NodeServer>(env, options);
  });
  SingleNodeRunResult result;
  UM_CHECK_OK(cluster.StartAll());
  Ledger ledger;
  std::vector<std::unique_ptr<WorkloadClient>> clients;
  for (uint32_t i = 0; i < options.clients; ++i) {
    clients.push_back(std::make_unique<WorkloadClient>(cluster, cluster.AddClient(),
                                                       SubSeed(seed, kTagWorkload + i), i, ledger));
    clients.back()->Start();
  }
  Prng faults(SubSeed(seed, kTagFaults));
  Simulator& simulator = cluster.simulator();
  while (simulator.now_ns() < options.duration_ns && result.ok) {
    // Nanosecond-granular fault times: crashes must land inside short windows too (between
    // an append and its fsync), not only on tick boundaries.
    simulator.RunUntil(simulator.now_ns() + static_cast<int64_t>(faults.UniformRange(
                                                100 * kMillisecond, 1'000 * kMillisecond)));
    if (cluster.is_up(0) && faults.Chance(1, 6)) {
      // Half the crashes are aimed: run on, event by event, until a sync is in flight, so
      // the crash lands between writes and their fsync (F10/F11).
      if (faults.Chance(1, 2)) {
        for (int step = 0; step < 100'000 && cluster.disk(0).syncs_in_flight() == 0; ++step) {
          if (!simulator.Step()) {
            break;
          }
        }
      }
      cluster.Crash(0);
    } else if (!cluster.is_up(0)) {
      UM_CHECK_OK(cluster.Restart(0));
      result.failure = CheckBounds(cluster, ledger, "after a restart");
      result.ok = result.failure.empty();
    }
  }
  if (!cluster.is_up(0)) {
    UM_CHECK_OK(cluster.Restart(0));
  }
  for (auto& client : clients) {
    client->StopSendingNew();
  }
  const bool quiet = simulator.RunUntil(
      [&] {
        for (const auto& client : clients) {
          if (!client->idle()) {
            return false;
          }
        }
        return true;
      },
      simulator.now_ns() + 60 * kSecond);
  if (result.ok && !quiet) {
    result.ok = false;
    result.failure = "liveness: requests still pending 60 s after the faults stopped";
  }
  if (result.ok) {
    const std::vector<uint64_t> sums = Sums(cluster);
    for (uint64_t account = 0; account < kAccounts && result.ok; ++account) {
      if (sums[account] != ledger.sent[account] || ledger.acked[account] != ledger.sent[account]) {
        result.ok = false;
        result.failure = absl::StrCat("S3 (exactly once at quiescence): account ", account, " sum ",
                                      sums[account], ", sent ", ledger.sent[account],
                                      ", acknowledged ", ledger.acked[account]);
      }
    }
  }
  for (uint64_t account = 0; account < kAccounts; ++account) {
    result.events_acknowledged += ledger.acked[account];
  }
  result.crashes = cluster.crashes();
  result.torn_writes = cluster.disk(0).torn_writes();
  result.requests = ledger.requests;
  result.simulated_ns = simulator.now_ns();
  result.digest = simulator.digest();
  clients.clear();
  return result;
}

}  // namespace unimeter::sim
