#include "sim/single_node_workload.h"

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/base/random.h"
#include "node/server/node_server.h"
#include "sim/history_checker.h"
#include "sim/node_usage.h"
#include "sim/reference_model.h"
#include "sim/sim_cluster.h"
#include "sim/workload_client.h"

namespace unimeter::sim {
namespace {

constexpr uint16_t kPort = kWorkloadPort;
constexpr uint64_t kAccounts = 16;
constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMillisecond;
constexpr uint64_t kTagWorkload = 0x3000;
constexpr uint64_t kTagFaults = 0x3100;
constexpr uint64_t kTagKnobs = 0x3200;
constexpr uint64_t kTagMetrics = 0x3300;
constexpr uint32_t kBurstClients = 8;  // Extra clients of an overload burst (F73).

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
  // A third of the seeds have overload bursts (F73): a small bound of events awaiting
  // commit, and now and then kBurstClients more clients for 0.2-1.5 s; what exceeds the
  // bound is refused with BACKPRESSURE (and half of it abandoned: never to be counted).
  const bool overload = knobs.Chance(1, 3);
  const size_t pending_events_max = overload ? knobs.UniformRange(20, 200) : 0;
  if (options.verbose) {
    cluster_options.log_sink = StderrLogSink();
  }
  // Every apply, WAL replays after restarts included, is checked against the first (S4);
  // first applies feed the reference model (S8).
  HistoryChecker history;
  ReferenceModel model;
  SimCluster cluster(seed, cluster_options, [&history, &model, pending_events_max](Env& env) {
    NodeServerOptions options;
    options.engine.store.apply_observer =
        [&history, &model](uint32_t partition, uint64_t index, uint64_t epoch,
                           const metering::LogEntry& entry, const metering::PartitionState& state) {
          if (history.OnApply(0, partition, index, epoch, entry)) {
            model.Apply(partition, index, entry);
          }
          history.OnState(0, partition, index, state);
        };
    options.port = kPort;
    options.http_port = 0;
    options.min_free_disk_mb = 0;
    options.engine.checkpoint.interval_ns = 5 * kSecond;  // Exercise checkpoints often.
    options.engine.checkpoint.unsaved_events_max = 300;   // And event flushes between them.
    options.engine.commit_events_per_slice = 8;  // Commits in many slices, requests between.
    if (pending_events_max != 0) options.engine.pending_events_max = pending_events_max;
    return std::make_unique<NodeServer>(env, options);
  });
  SingleNodeRunResult result;
  UM_CHECK_OK(cluster.StartAll());
  Ledger ledger(kAccounts);
  Prng metrics(SubSeed(seed, kTagMetrics));
  ledger.AddAggregationMetrics(metrics);
  model.WatchAcknowledgements(ledger);
  std::vector<std::unique_ptr<WorkloadClient>> clients;
  for (uint32_t i = 0; i < options.clients; ++i) {
    clients.push_back(std::make_unique<WorkloadClient>(
        cluster.AddClient(), SubSeed(seed, kTagWorkload + i), i, ledger, [] { return 0u; }));
    clients.back()->Start();
  }
  std::vector<WorkloadClient*> burst_clients;
  if (overload) {
    for (uint32_t i = options.clients; i < options.clients + kBurstClients; ++i) {
      clients.push_back(std::make_unique<WorkloadClient>(
          cluster.AddClient(), SubSeed(seed, kTagWorkload + i), i, ledger, [] { return 0u; },
          RequestShape{.events_max = 40}));
      clients.back()->StopSendingNew();  // Idle until a burst.
      clients.back()->Start();
      burst_clients.push_back(clients.back().get());
    }
  }
  int64_t burst_end_ns = 0;  // While a burst lasts (0: none).
  Prng faults(SubSeed(seed, kTagFaults));
  Simulator& simulator = cluster.simulator();
  while (simulator.now_ns() < options.duration_ns && result.ok) {
    // Nanosecond-granular fault times: crashes must land inside short windows too (between
    // an append and its fsync), not only on tick boundaries.
    simulator.RunUntil(simulator.now_ns() + static_cast<int64_t>(faults.UniformRange(
                                                100 * kMillisecond, 1'000 * kMillisecond)));
    if (burst_end_ns != 0 && simulator.now_ns() >= burst_end_ns) {
      burst_end_ns = 0;
      for (WorkloadClient* client : burst_clients) client->StopSendingNew();
    }
    if (overload && burst_end_ns == 0 && faults.Chance(1, 8)) {
      burst_end_ns = simulator.now_ns() + static_cast<int64_t>(faults.UniformRange(
                                              200 * kMillisecond, 1'500 * kMillisecond));
      for (WorkloadClient* client : burst_clients) client->ResumeSending();
      ++result.overload_bursts;
    }
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
      const std::string violated = ledger.CheckExactlyOnce(account, sums[account]);
      if (!violated.empty()) {
        result.ok = false;
        result.failure = violated;
      }
    }
  }
  const std::string* const failures[] = {&history.failure(), &model.failure(),
                                         &model.acknowledged_failure()};
  for (const std::string* failure : failures) {
    if (result.ok && !failure->empty()) {
      result.ok = false;
      result.failure = *failure;
    }
  }
  if (result.ok) {
    result.failure = model.CheckEventSets(ledger);
    if (result.failure.empty()) {
      const Engine& engine = static_cast<NodeServer&>(cluster.service(0)).engine();
      result.failure = model.CheckNode(NodeUsage(engine.store()));
      if (result.failure.empty() && !RunUntilAlertsDurable(simulator, {&engine}, 10 * kSecond)) {
        result.failure = "alert records still not durable 10 s after the run";
      }
      if (result.failure.empty()) {
        absl::StatusOr<std::vector<RefCrossing>> log = NodeAlerts(engine);
        result.failure = log.ok() ? model.CheckAlerts({*log}, /*complete=*/true)
                                  : absl::StrCat("alert log unreadable: ", log.status().ToString());
      }
    }
    result.ok = result.failure.empty();
  }
  for (uint64_t account = 0; account < kAccounts; ++account) {
    result.events_acknowledged += ledger.acked[account];
  }
  result.crashes = cluster.crashes();
  result.torn_writes = cluster.disk(0).torn_writes();
  result.requests = ledger.requests;
  result.backpressure = ledger.backpressure_replies;
  result.simulated_ns = simulator.now_ns();
  result.digest = simulator.digest();
  clients.clear();
  return result;
}

}  // namespace unimeter::sim
