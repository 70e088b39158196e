#include "sim/cluster_workload.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/base/check.h"
#include "node/base/endian.h"
#include "node/base/random.h"
#include "node/replication/messages.h"
#include "node/replication/replicated_engine.h"
#include "node/server/node_server.h"
#include "sim/durability_ledger.h"
#include "sim/history_checker.h"
#include "sim/node_usage.h"
#include "sim/ownership_tracker.h"
#include "sim/read_checker.h"
#include "sim/reference_model.h"
#include "sim/sim_cluster.h"
#include "sim/workload_client.h"
#include "storage/memory_state_store.h"
#include "storage/wal.h"

namespace unimeter::sim {
namespace {

constexpr uint64_t kAccounts = 16;
constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMillisecond;
constexpr uint64_t kTagWorkload = 0x4000;
constexpr uint64_t kTagFaults = 0x4100;
constexpr uint64_t kTagKnobs = 0x4200;
constexpr uint64_t kTagPick = 0x4300;
constexpr uint64_t kTagReads = 0x4400;
constexpr uint64_t kTagMetrics = 0x4500;
// Extra clients of an overload burst (F73); with --clients at most 16, their indexes stay
// below the 39 that WorkloadClient's event numbering allows.
constexpr uint32_t kBurstClients = 8;
constexpr int64_t kNormalSyncMeanNs = DiskOptions{}.sync_latency_mean_ns;
// Free disk left to a node whose disk stays full in the liveness phase: below the
// --min-free-disk-mb of 1 MiB the workload runs nodes with, so it refuses writes.
constexpr uint64_t kLivenessFreeBytes = 512 * 1024;
constexpr int64_t kClockStepTotalMaxNs = 120 * kSecond;
// Liveness bounds (docs/simulation.md, "Modes"). L1: the design's "three election
// timeouts" with ours randomised up to 2 s: the slowest path (an old leader that can send
// but not receive resigns after 1 s, an election takes 1-2 s, a member heard lately gets
// 0.3 s to answer, then epochs start) needs about 4.5 s. L2: 30 s.
constexpr int64_t kCoreOwnsAllBoundNs = 5 * kSecond;
constexpr int64_t kRequestsCompleteBoundNs = 30 * kSecond;
// A graceful shutdown waits for requests in flight (each ends within the request timeout)
// and one checkpoint.
constexpr int64_t kShutdownBoundNs = 15 * kSecond;

// The fault mix of one seed (swarm testing: some seeds switch classes off).
struct Knobs {
  bool crashes = true;
  bool aimed_crashes = true;
  bool wipes = true;
  bool splits = true;
  bool one_way_splits = true;
  uint32_t loss_ppm = 0;
  uint32_t duplicate_ppm = 0;
  bool torn_writes = false;
  RequestShape requests;
  bool pauses = true;
  bool clock_steps = true;
  bool slow_disks = true;
  bool fsync_errors = true;
  bool disk_full = true;
  bool clogs = true;
  bool resets = true;
  bool reads = true;           // Reads checked while faults are injected (sim/read_checker.h).
  bool bridges = true;         // Some splits cut one link only: the others still reach both ends.
  bool corruption = true;      // Bytes at rest flipped on a down node's disk (F13).
  bool read_errors = true;     // A restart's recovery meets a latent sector error (F14).
  bool clock_noise = true;     // Wall-clock readings jitter by up to 1 s per node (F52).
  bool graceful_stops = true;  // Some crashes are SIGTERMs: shutdown, checkpoint, exit.
  // Overload bursts (F73): now and then kBurstClients extra clients flood one node for a
  // while, against an owner bound of `pending_events_max` events awaiting commit.
  bool overload = true;
  size_t pending_events_max = 0;  // 0: the production default.
  bool read_corruption = true;    // A restart's recovery reads a flipped bit (F12).
  bool wrong_disks = true;        // A node restarts on a copy of another node's disk (F21).
  // A node restarts on an old copy of its own whole disk (F21's other half): the copy is
  // taken now and then while it runs.
  bool old_backups = true;
  // A mixed cluster (a rolling upgrade): node `old_minor_slot % nodes` sends messages of
  // protocol minor `old_minor` (6; 0: none). Not 5: a minor-5 member cannot say its disk
  // is low, so it keeps partitions it refuses writes for, which fails L1 by design.
  uint8_t old_minor = 0;
  uint32_t old_minor_slot = 0;
  uint32_t corrupt_ppm = 0;  // Messages corrupted in flight (F34: the checksum drops them).
  // Read lease of every node (ReplicatedEngineOptions::read_lease_ns); -1: the default.
  // Leases longer than an election make promise holds decide who may serve after a split.
  int64_t read_lease_ns = -1;
  // How long owners stage ingest parts before accepting them together
  // (ReplicatedEngineOptions::accept_delay_ns): in the simulator one request arrives per
  // turn, so only a delay makes parts share entries (and staged parts meet ownership and
  // schema changes).
  int64_t accept_delay_ns = 0;

  std::string ToString() const {
    return absl::StrCat(
        "crashes=", crashes, " aimed=", aimed_crashes, " wipes=", wipes, " splits=", splits,
        " one_way=", one_way_splits, " loss_ppm=", loss_ppm, " dup_ppm=", duplicate_ppm,
        " torn=", torn_writes, " events_max=", requests.events_max,
        " one_account=", requests.one_account, " pauses=", pauses, " clock_steps=", clock_steps,
        " slow_disks=", slow_disks, " fsync_errors=", fsync_errors, " disk_full=", disk_full,
        " client_crashes=", requests.crash_one_in != 0, " clogs=", clogs, " resets=", resets,
        " reads=", reads, " bridges=", bridges, " corruption=", corruption,
        " read_errors=", read_errors, " clock_noise=", clock_noise,
        " graceful_stops=", graceful_stops, " overload=", overload,
        overload ? absl::StrCat(" pending_max=", pending_events_max) : "",
        " read_corruption=", read_corruption, " wrong_disks=", wrong_disks,
        " old_backups=", old_backups, " corrupt_ppm=", corrupt_ppm,
        read_lease_ns >= 0 ? absl::StrCat(" lease_ms=", read_lease_ns / kMillisecond) : "",
        " accept_delay_us=", accept_delay_ns / 1000, " old_minor=", old_minor);
  }
};

Knobs DrawKnobs(uint64_t seed) {
  Prng prng(SubSeed(seed, kTagKnobs));
  Knobs knobs;
  knobs.crashes = prng.Chance(5, 6);
  knobs.aimed_crashes = prng.Chance(1, 2);
  knobs.wipes = prng.Chance(1, 2);
  knobs.splits = prng.Chance(2, 3);
  knobs.one_way_splits = prng.Chance(1, 2);
  knobs.loss_ppm = prng.Chance(1, 2) ? static_cast<uint32_t>(prng.UniformRange(0, 20'000)) : 0;
  knobs.duplicate_ppm = prng.Chance(1, 3) ? static_cast<uint32_t>(prng.UniformRange(0, 20'000)) : 0;
  knobs.torn_writes = prng.Chance(1, 2);
  constexpr uint32_t kEventsMax[] = {1, 8, 40, 40};
  knobs.requests.events_max = kEventsMax[prng.UniformBelow(4)];
  knobs.requests.one_account = prng.Chance(1, 2);
  knobs.pauses = prng.Chance(1, 2);
  knobs.clock_steps = prng.Chance(1, 2);
  knobs.slow_disks = prng.Chance(1, 2);
  knobs.fsync_errors = prng.Chance(1, 2);
  knobs.disk_full = prng.Chance(1, 2);
  knobs.requests.crash_one_in = prng.Chance(1, 2) ? 50 : 0;
  knobs.clogs = prng.Chance(1, 2);
  knobs.resets = prng.Chance(1, 2);
  knobs.reads = prng.Chance(3, 4);
  knobs.bridges = prng.Chance(1, 2);
  knobs.corruption = prng.Chance(1, 3);
  knobs.read_errors = prng.Chance(1, 3);
  knobs.clock_noise = prng.Chance(1, 2);
  knobs.graceful_stops = prng.Chance(1, 2);
  knobs.overload = prng.Chance(1, 3);
  if (knobs.overload) knobs.pending_events_max = prng.UniformRange(20, 200);
  knobs.read_corruption = prng.Chance(1, 3);
  knobs.wrong_disks = prng.Chance(1, 4);
  knobs.corrupt_ppm = prng.Chance(1, 3) ? static_cast<uint32_t>(prng.UniformRange(0, 10'000)) : 0;
  switch (prng.UniformBelow(4)) {
    case 0:
      knobs.read_lease_ns = 0;  // Every read waits for a confirm round.
      break;
    case 1:
      knobs.read_lease_ns = static_cast<int64_t>(prng.UniformRange(1 * kSecond, 3 * kSecond));
      break;
    default:
      knobs.read_lease_ns =
          static_cast<int64_t>(prng.UniformRange(50 * kMillisecond, 800 * kMillisecond));
      break;
  }
  // Drawn last: the draws above stay what they were before this knob existed.
  if (prng.Chance(2, 3)) {
    knobs.accept_delay_ns = static_cast<int64_t>(prng.UniformRange(0, 3 * kMillisecond));
  }
  knobs.old_backups = prng.Chance(1, 4);  // Last again, for the same reason.
  if (prng.Chance(1, 6)) {                // And again.
    knobs.old_minor = 6;
    knobs.old_minor_slot = prng.UniformBelow(7);
    // A minor-6 member neither announces its directory nor echoes its peers', and counts
    // as confirming them: old backups are found only in a cluster all of minor 7 (seeds
    // 116100155 and 116100640 ran a restored directory unfound, as designed).
    knobs.old_backups = false;
  }
  return knobs;
}

// Scripted runs and performance mode: nothing injected unless a caller does.
Knobs NoFaults() {
  Knobs knobs;
  knobs.crashes = knobs.aimed_crashes = knobs.wipes = knobs.splits = knobs.one_way_splits = false;
  knobs.pauses = knobs.clock_steps = knobs.slow_disks = false;
  knobs.fsync_errors = knobs.disk_full = knobs.clogs = knobs.resets = knobs.reads = false;
  knobs.bridges = knobs.corruption = knobs.read_errors = knobs.clock_noise = false;
  knobs.graceful_stops = knobs.overload = knobs.read_corruption = knobs.wrong_disks = false;
  knobs.old_backups = false;
  return knobs;
}

// Makes `message`, as encoded by this build (replication/messages.h, minor 7), what a
// member of protocol minor `minor` (5 or 6) sends: the header's minor, and HeartbeatAck
// without the fields added since (7: the meta announcement and echo, 7 x 8 bytes; 6: the
// writes_blocked byte before them). Every other message is unchanged since minor 5.
void DowngradeMessage(std::vector<uint8_t>& message, uint8_t minor) {
  static_assert(replication::kProtocolMinor == 7, "downgrade the fields added since");
  UM_CHECK(minor == 5 || minor == 6);
  UM_CHECK_GE(message.size(), 3u);
  if (message[1] <= minor) return;  // Already downgraded: both its ends rewrite.
  message[1] = minor;
  static const uint8_t kHeartbeatAckType =
      static_cast<uint8_t>(replication::Message(replication::HeartbeatAck{}).index() + 1);
  if (message[2] != kHeartbeatAckType) return;
  const size_t cut = 7 * sizeof(uint64_t) + (minor < 6 ? 1 : 0);
  UM_CHECK_GE(message.size(), cut);
  message.resize(message.size() - cut);
}

NodeServer& Server(SimCluster& cluster, NodeId node) {
  return static_cast<NodeServer&>(cluster.service(node));
}

const replication::ReplicatedEngine& Replicated(SimCluster& cluster, NodeId node) {
  return static_cast<const replication::ReplicatedEngine&>(Server(cluster, node).engine());
}

// An account's committed SUM as `node` holds it (its state, not a reply).
uint64_t SumAt(SimCluster& cluster, NodeId node, uint64_t account) {
  const metering::PartitionState& state =
      Server(cluster, node).engine().store().state(static_cast<uint32_t>(account % 256));
  absl::StatusOr<metering::AggValue> value = state.QueryUsage(account, "m", 0, INT64_MAX, {});
  return value.ok() ? static_cast<uint64_t>(value->sum) : 0;
}

}  // namespace

std::vector<const SimDisk*> Disks(SimCluster& cluster, uint32_t nodes) {
  std::vector<const SimDisk*> disks;
  for (NodeId node = 0; node < nodes; ++node) disks.push_back(&cluster.disk(node));
  return disks;
}

class ClusterRun {
 public:
  // `scripted`: no fault mix is drawn (no loss, duplication or torn writes); the caller
  // injects faults through the public methods.
  ClusterRun(uint64_t seed, const ClusterRunOptions& options, bool scripted = false)
      : seed_(seed),
        options_(options),
        knobs_(scripted || options.mode == RunMode::kPerformance ? NoFaults() : DrawKnobs(seed)),
        cluster_(seed, MakeClusterOptions(), MakeFactory()),
        durability_(Disks(cluster_, options.nodes)),
        ledger_(kAccounts),
        read_checker_(ledger_),
        faults_(SubSeed(seed, kTagFaults)),
        pick_(SubSeed(seed, kTagPick)),
        isolated_(options.nodes, false),
        full_(options.nodes, false),
        clock_step_total_ns_(options.nodes, 0),
        resyncing_(options.nodes, false),
        corrupt_(options.nodes, false),
        alert_damaged_(options.nodes, false),
        alerts_seen_(options.nodes),
        meta_flipped_(options.nodes, false),
        frozen_for_good_(options.nodes, false) {
    for (NodeId node = 0; node < options_.nodes; ++node) all_.push_back(node);
    targets_ = all_;
    Prng metrics(SubSeed(seed, kTagMetrics));
    ledger_.AddAggregationMetrics(metrics);
    model_.WatchAcknowledgements(ledger_);
  }

  void Start() {
    result_.knobs = knobs_.ToString();
    SpeakOldMinor();
    UM_CHECK_OK(cluster_.StartAll());
    for (uint32_t i = 0; i < options_.clients; ++i) {
      clients_.push_back(std::make_unique<WorkloadClient>(
          cluster_.AddClient(), SubSeed(seed_, kTagWorkload + i), i, ledger_,
          [this] { return targets_[pick_.UniformBelow(targets_.size())]; }, knobs_.requests));
      clients_.back()->Start();
    }
    if (knobs_.overload) {
      for (uint32_t i = options_.clients; i < options_.clients + kBurstClients; ++i) {
        RequestShape shape = knobs_.requests;
        shape.events_max = 40;
        clients_.push_back(std::make_unique<WorkloadClient>(
            cluster_.AddClient(), SubSeed(seed_, kTagWorkload + i), i, ledger_,
            [this] {
              return burst_end_ns_ != 0 ? burst_target_
                                        : targets_[pick_.UniformBelow(targets_.size())];
            },
            shape));
        clients_.back()->StopSendingNew();  // Idle until a burst.
        clients_.back()->Start();
        burst_clients_.push_back(clients_.back().get());
      }
    }
    if (knobs_.reads) {
      reader_env_ = &cluster_.AddClient();
      reader_prng_ = Prng(SubSeed(seed_, kTagReads));
      ReadTick();
    }
  }

  ClusterRunResult Run() {
    Start();
    Simulator& simulator = cluster_.simulator();
    while (simulator.now_ns() < options_.duration_ns && result_.ok) {
      simulator.RunUntil(simulator.now_ns() + static_cast<int64_t>(faults_.UniformRange(
                                                  100 * kMillisecond, 1'000 * kMillisecond)));
      if (burst_end_ns_ != 0 && simulator.now_ns() >= burst_end_ns_) EndBurst();
      if (options_.mode != RunMode::kPerformance) {
        NoteResyncs();
        InjectFault();
      }
      CheckNoDoubleCounting("during faults");
    }
    if (options_.mode == RunMode::kLiveness && result_.ok) LivenessPhase();
    return Finish();
  }

  // ---- Scripted faults (ClusterScenario) ----
  void RunFor(int64_t duration_ns) {
    cluster_.simulator().RunUntil(cluster_.simulator().now_ns() + duration_ns);
    CheckNoDoubleCounting("during the scenario");
  }
  void Crash(NodeId node) {
    cluster_.Crash(node);
    Log(absl::StrCat("fault: crash n", node));
  }
  void Restart(NodeId node, bool wipe) {
    if (wipe) {
      WipeDisk(node);
      resyncing_[node] = true;
      ++result_.wipes;
    }
    UM_CHECK_OK(cluster_.Restart(node));
    Log(absl::StrCat("fault: restart n", node, wipe ? " on a wiped disk" : ""));
  }
  absl::Status RestartOnDiskOf(NodeId node, NodeId other) {
    WipeDisk(node);
    cluster_.CopyDisk(node, other);
    const absl::Status started = cluster_.Restart(node);
    Log(absl::StrCat("fault: restart n", node, " on a copy of n", other,
                     "'s disk: ", started.ToString()));
    return started;
  }
  void BackUpDisk(NodeId node) {
    auto backup = std::make_unique<SimDisk>(0, DiskOptions{});
    backup->CopyDurableFrom(cluster_.disk(node));
    backups_[node] = std::move(backup);
  }
  absl::Status RestartWithLogFromBackup(NodeId node) {
    UM_CHECK(!cluster_.is_up(node));
    durability_.OnWipe(node);  // What it held durably was durable when it acknowledged it.
    ownership_.OnRestoredFromBackup(node);  // It may find it went back (new incarnation).
    SimDisk& disk = cluster_.disk(node);
    const SimDisk& backup = *backups_.at(node);
    std::vector<std::string> names;
    for (const auto& [name, bytes] : disk.durable_files()) names.push_back(name);
    for (const std::string& name : names) {
      if (name != replication::kMetaFileName && backup.durable_files().count(name) == 0) {
        disk.RemoveFile(name);
      }
    }
    for (const auto& [name, bytes] : backup.durable_files()) {
      if (name != replication::kMetaFileName) disk.SetFileBytes(name, bytes.ToString());
    }
    const absl::Status started = cluster_.Restart(node);
    Log(absl::StrCat(
        "fault: restart n", node,
        " with its log as backed up earlier and its replica.meta as it is: ", started.ToString()));
    return started;
  }
  absl::Status RestartFromBackup(NodeId node) {
    UM_CHECK(!cluster_.is_up(node));
    RestoreOldBackup(node);
    const absl::Status started = cluster_.Restart(node);
    Log(absl::StrCat("fault: restart n", node, ": ", started.ToString()));
    return started;
  }
  // Over the nodes that are up (a crashed process's counts are lost).
  uint64_t SumOverUpNodes(uint64_t replication::ReplicationStatus::*counter) {
    uint64_t total = 0;
    for (NodeId node : all_) {
      if (cluster_.is_up(node)) total += Replicated(cluster_, node).status().*counter;
    }
    return total;
  }
  void Block(NodeId from, NodeId to, bool blocked) {
    cluster_.network().SetBlocked(from, to, blocked);
    if (blocked) ++result_.splits;
  }
  void SetPaused(NodeId node, bool paused) {
    if (paused) {
      cluster_.Pause(node);
      ++result_.pauses;
    } else {
      cluster_.Resume(node);
    }
  }
  // Leaves `free_bytes` of the node's disk free, or (nullopt) frees the disk again.
  void SetDiskFree(NodeId node, std::optional<uint64_t> free_bytes) {
    SimDisk& disk = cluster_.disk(node);
    full_[node] = free_bytes.has_value();
    if (!full_[node]) {
      disk.options().capacity_bytes = DiskOptions{}.capacity_bytes;
      Log(absl::StrCat("fault: space freed on the disk of n", node));
      return;
    }
    disk.options().capacity_bytes = disk.used_bytes() + *free_bytes;
    Log(absl::StrCat("fault: the disk of n", node, " is full"));
  }
  uint64_t Acknowledged(uint64_t account) const { return ledger_.acked.at(account); }
  // A routed read of the account's SUM through `node`'s engine (as its front door would),
  // answered later on the simulated loop.
  void ReadSum(NodeId node, uint64_t account,
               absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done) {
    Server(cluster_, node)
        .engine()
        .Read(static_cast<uint32_t>(account % 256),
              [account, done = std::move(done)](
                  absl::StatusOr<const metering::PartitionState*> state) mutable {
                if (!state.ok()) {
                  done(state.status());
                  return;
                }
                absl::StatusOr<metering::AggValue> value =
                    (*state)->QueryUsage(account, "m", 0, INT64_MAX, {});
                done(value.ok() ? static_cast<uint64_t>(value->sum) : uint64_t{0});
              });
  }
  // A registry change through `node`'s engine, following a redirect to the registry leader
  // as a client would (once per answer, while the named node is up).
  void PutMetric(NodeId node, metering::MetricSchema schema,
                 absl::AnyInvocable<void(absl::Status)> done) {
    if (!cluster_.is_up(node)) {
      done(absl::UnavailableError(absl::StrCat("n", node, " is down")));
      return;
    }
    Server(cluster_, node)
        .engine()
        .PutMetric(schema, [this, schema, done = std::move(done)](absl::Status status) mutable {
          const std::optional<NodeId> leader = RedirectTarget(status);
          if (!leader.has_value()) {
            done(std::move(status));
            return;
          }
          PutMetric(*leader, std::move(schema), std::move(done));
        });
  }
  bool Serves(NodeId node, uint32_t partition) {
    return cluster_.is_up(node) && Replicated(cluster_, node).serving(partition);
  }
  // Partitions served by some node whose map says it owns them.
  uint32_t ServedPartitions() {
    uint32_t served = 0;
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      for (NodeId node : all_) {
        if (Serves(node, partition)) {
          ++served;
          break;
        }
      }
    }
    return served;
  }
  NodeId OwnerOf(uint32_t partition) {
    for (NodeId node : all_) {
      if (Serves(node, partition)) return node;
    }
    return kNodeIdMax + 1;
  }
  NodeId Leader() {
    NodeId leader = kNodeIdMax + 1;
    uint64_t leader_term = 0;
    for (NodeId node : all_) {
      if (!cluster_.is_up(node)) continue;
      const replication::ReplicationStatus status = Replicated(cluster_, node).status();
      if (status.is_leader && status.term > leader_term) {
        leader = node;
        leader_term = status.term;
      }
    }
    return leader;
  }
  Simulator& simulator() { return cluster_.simulator(); }
  bool RunUntilSyncInFlight(NodeId node, const std::string& name, int64_t limit_ns) {
    Simulator& simulator = cluster_.simulator();
    return simulator.RunUntil([&] { return cluster_.disk(node).syncs_in_flight(name) > 0; },
                              simulator.now_ns() + limit_ns);
  }
  replication::ReplicationStatus Status(NodeId node) {
    UM_CHECK(cluster_.is_up(node));
    return Replicated(cluster_, node).status();
  }
  uint64_t AcknowledgedTotal() const {
    uint64_t total = 0;
    for (uint64_t acked : ledger_.acked) total += acked;
    return total;
  }
  // The node's released alert records from offset `since` on (ALERTS_LIST).
  absl::StatusOr<std::vector<AlertRecord>> Alerts(NodeId node, uint64_t since = 0) {
    return Server(cluster_, node).engine().ListAlerts(/*account_id=*/0, since, SIZE_MAX);
  }

  // Per partition, the largest commit index on an up node other than `node`.
  std::vector<uint64_t> CommitTargets(NodeId node) {
    std::vector<uint64_t> targets(kPartitionCount, 0);
    for (NodeId other : all_) {
      if (other == node || !cluster_.is_up(other)) continue;
      const NodeStore& store = Server(cluster_, other).engine().store();
      for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
        targets[partition] = std::max(targets[partition], store.commit_index(partition));
      }
    }
    return targets;
  }
  // `node` is active and has committed every partition up to `targets`.
  bool CaughtUp(NodeId node, const std::vector<uint64_t>& targets) {
    if (Disturbed(node)) return false;
    const NodeStore& store = Server(cluster_, node).engine().store();
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      if (store.commit_index(partition) < targets[partition]) return false;
    }
    return true;
  }

  ClusterRunResult Finish() {
    if (result_.ok && !liveness_checked_) Quiesce();
    CheckHistory();
    Summarize();
    return result_;
  }

 private:
  ClusterOptions MakeClusterOptions() {
    ClusterOptions cluster_options;
    cluster_options.node_count = options_.nodes;
    cluster_options.network.loss_ppm = knobs_.loss_ppm;
    cluster_options.network.duplicate_ppm = knobs_.duplicate_ppm;
    cluster_options.network.corrupt_ppm = knobs_.corrupt_ppm;
    if (options_.path_capacity_messages != 0) {
      cluster_options.network.path_capacity_messages = options_.path_capacity_messages;
    }
    if (knobs_.clock_noise) cluster_options.wall_noise_ns_max = kSecond;
    if (knobs_.torn_writes) {
      cluster_options.disk.crash_keeps_unsynced_ppm = 700'000;
      cluster_options.disk.crash_torn_ppm = 500'000;
    }
    if (options_.verbose) {
      cluster_options.log_sink = StderrLogSink();
    }
    return cluster_options;
  }

  // A mixed cluster: one node's messages downgraded for the whole run (its restarts too).
  // Those sent to it as well: it then ignores what a minor-6 member cannot read, and this
  // build's code in it takes its peers for minor-6 members, so it confirms its directory
  // from their first answers, as a minor-6 member (which never checks) in effect does.
  void SpeakOldMinor() {
    int32_t node = options_.old_minor_node;
    uint8_t minor = options_.old_minor;
    if (node < 0 && knobs_.old_minor != 0) {
      node = static_cast<int32_t>(knobs_.old_minor_slot % options_.nodes);
      minor = knobs_.old_minor;
    }
    if (node < 0) return;
    cluster_.network().SetRewrite(static_cast<NodeId>(node), [minor](std::vector<uint8_t>& bytes) {
      DowngradeMessage(bytes, minor);
    });
    Log(absl::StrCat("n", node, " speaks protocol minor ", minor, " to its peers"));
  }

  // Every node's read lease: the run's option, else the seed's knob, else the default.
  int64_t ReadLeaseNs() const {
    if (options_.read_lease_ns >= 0) return options_.read_lease_ns;
    if (knobs_.read_lease_ns >= 0) return knobs_.read_lease_ns;
    return replication::ReplicatedEngineOptions{}.read_lease_ns;
  }

  // L1's bound: the design's, plus one read lease (a restarted node tells no promise for a
  // lease after it starts, and a lease granted before the heal holds promises back).
  int64_t CoreOwnsAllBoundNs() const { return kCoreOwnsAllBoundNs + ReadLeaseNs(); }

  NodeServiceFactory MakeFactory() {
    const uint32_t nodes = options_.nodes;
    return [this, nodes](Env& env) {
      NodeServerOptions options;
      options.port = kWorkloadPort;
      options.http_port = 0;
      options.min_free_disk_mb = 1;  // A disk-full episode may leave less: the low-disk path.
      options.engine.checkpoint.interval_ns = 5 * kSecond;  // Exercise checkpoints often.
      options.engine.checkpoint.unsaved_events_max = 300;   // And event flushes between them.
      if (knobs_.pending_events_max != 0) {
        options.engine.pending_events_max = knobs_.pending_events_max;
      }
      options.cluster.read_lease_ns = ReadLeaseNs();
      options.cluster.accept_delay_ns = knobs_.accept_delay_ns;
      if (options_.snapshot_chunk_bytes != 0) {
        options.cluster.snapshot_chunk_bytes = options_.snapshot_chunk_bytes;
      }
      const NodeId node = env.node_id();
      ownership_.OnStart(node);  // Each call builds a new process of the node.
      options.cluster.ownership_observer = [this, node](const replication::OwnershipEvent& event) {
        ownership_.OnEvent(node, event);
      };
      options.engine.store.apply_observer =
          [this, node](uint32_t partition, uint64_t index, uint64_t epoch,
                       const metering::LogEntry& entry, const metering::PartitionState& state) {
            OnApplied(node, partition, index, epoch, entry);
            history_.OnState(node, partition, index, state);
          };
      options.engine.store.append_observer = [this, node](uint32_t partition, uint64_t index,
                                                          uint64_t epoch, uint64_t position) {
        durability_.OnAppend(node, partition, index, epoch, position);
      };
      for (NodeId peer = 0; peer < nodes; ++peer) {
        if (peer != env.node_id()) {
          options.peers.push_back(
              PeerAddress{peer, absl::StrCat("n", peer), uint16_t{kWorkloadPort + 1000}});
        }
      }
      return std::make_unique<NodeServer>(env, options);
    };
  }

  // Every 5-40 ms, a read of a random account's SUM through a random node that is up and
  // not paused (a paused node gets no new requests; one already in flight when it was
  // paused is answered after it resumes: the stale-read case). Checked on completion.
  void ReadTick() {
    reader_env_->StartTimer(
        static_cast<int64_t>(reader_prng_.UniformRange(5 * kMillisecond, 40 * kMillisecond)),
        [this] { ReadTick(); });
    const NodeId node = static_cast<NodeId>(reader_prng_.UniformBelow(options_.nodes));
    const uint64_t account = reader_prng_.UniformBelow(kAccounts);
    if (!cluster_.is_up(node) || cluster_.is_paused(node)) return;
    const ReadInvocation read = read_checker_.Invoke(account);
    ReadSum(node, account, [this, node, read](absl::StatusOr<uint64_t> sum) {
      if (!sum.ok()) return;  // Unavailable, timed out: allowed.
      const std::string violation = read_checker_.Check(read, *sum);
      if (!violation.empty()) Fail(absl::StrCat(violation, " (read through n", node, ")"));
    });
  }

  bool Disturbed(NodeId node) {
    return !cluster_.is_up(node) || isolated_[node] || cluster_.is_paused(node) || full_[node] ||
           Replicated(cluster_, node).status().incarnation != replication::NodeState::kActive;
  }

  // No node but `node` is disturbed.
  bool OthersFine(NodeId node) {
    for (NodeId other : all_) {
      if (other != node && Disturbed(other)) return false;
    }
    return true;
  }

  size_t DisturbedCount() {
    size_t count = 0;
    for (NodeId node : all_) count += Disturbed(node) ? 1 : 0;
    return count;
  }

  // Product-semantics 7.2: offsets are never reused or renumbered, and a replaced disk's
  // alert log is restored with identical offsets. Every node's newly listed records are
  // noted here at each fault step; one listed at an offset seen before with another
  // crossing fails the seed, and CheckAlertOffsets holds the final logs to all of them.
  void ObserveAlertLogs() {
    for (NodeId node : all_) {
      if (!cluster_.is_up(node) || !result_.ok) continue;
      absl::btree_map<uint64_t, metering::AlertCrossing>& seen = alerts_seen_[node];
      const uint64_t since = seen.empty() ? 0 : seen.rbegin()->first + 1;
      absl::StatusOr<std::vector<AlertRecord>> records = Alerts(node, since);
      if (!records.ok()) continue;  // A damaged record: CheckAggregates judges the listing.
      for (AlertRecord& record : *records) {
        seen.emplace(record.offset, std::move(record.crossing));
      }
    }
  }

  // Every record a node listed during the run is in its final log (`records`) at the same
  // offset.
  std::string CheckAlertOffsets(NodeId node, const std::vector<AlertRecord>& records) {
    absl::btree_map<uint64_t, const metering::AlertCrossing*> now;
    for (const AlertRecord& record : records) now.emplace(record.offset, &record.crossing);
    for (const auto& [offset, crossing] : alerts_seen_[node]) {
      const auto found = now.find(offset);
      if (found == now.end() || !(*found->second == crossing)) {
        return absl::StrCat("S1 (alert log kept with its offsets): node ", node,
                            " listed a record at offset ", offset, " (account ",
                            crossing.account_id, " ", crossing.metric_code, " threshold ",
                            crossing.threshold_index, "), and its log now ",
                            found == now.end() ? "lacks it" : "holds another record there",
                            result_.wipes > 0 ? " (disks were replaced)" : "");
      }
    }
    return std::string();
  }

  void InjectFault() {
    ObserveAlertLogs();
    const size_t max_disturbed = options_.mode == RunMode::kUnrestricted
                                     ? options_.nodes
                                     : options_.nodes - (options_.nodes / 2 + 1);
    const NodeId node = static_cast<NodeId>(faults_.UniformBelow(options_.nodes));
    const uint64_t roll = faults_.UniformBelow(100);
    if (knobs_.old_backups && cluster_.is_up(node) && faults_.Chance(1, 8)) {
      BackUpDisk(node);  // Maybe restored at a later restart (RestoreOldBackup).
      Log(absl::StrCat("fault: keep a copy of n", node, "'s disk as it is durably now"));
    }
    if (roll < 12 && knobs_.crashes && cluster_.is_up(node) && !Disturbed(node) &&
        DisturbedCount() < max_disturbed) {
      if (knobs_.graceful_stops && faults_.Chance(1, 3)) {
        GracefulStop(node);
        return;
      }
      if (knobs_.aimed_crashes && faults_.Chance(1, 2)) {
        // Run on until this node has a sync in flight: the crash lands between writes and
        // their fsync.
        Simulator& simulator = cluster_.simulator();
        for (int step = 0; step < 100'000 && cluster_.disk(node).syncs_in_flight() == 0; ++step) {
          if (!simulator.Step()) break;
        }
      }
      cluster_.Crash(node);
      Log(absl::StrCat("fault: crash n", node));
    } else if (roll < 18 && knobs_.splits && cluster_.is_up(node) && !Disturbed(node) &&
               DisturbedCount() < max_disturbed) {
      const bool one_way = knobs_.one_way_splits && faults_.Chance(1, 2);
      // A bridge: only the link to `far` is cut, every other node still reaches both.
      const bool bridge = knobs_.bridges && faults_.Chance(1, 2);
      const NodeId far = static_cast<NodeId>((node + 1 + faults_.UniformBelow(options_.nodes - 1)) %
                                             options_.nodes);
      for (NodeId other : all_) {
        if (other == node || (bridge && other != far)) continue;
        cluster_.network().SetBlocked(node, other, true);
        if (!one_way) cluster_.network().SetBlocked(other, node, true);
      }
      isolated_[node] = true;
      ++result_.splits;
      result_.bridges += bridge ? 1 : 0;
      Log(absl::StrCat("fault: ", one_way ? "one-way " : "",
                       bridge ? absl::StrCat("cut of the link n", node, "-n", far, " (bridged)")
                              : absl::StrCat("split of n", node)));
    } else if (roll < 40 && isolated_[node]) {
      for (NodeId other : all_) {
        cluster_.network().SetBlocked(node, other, false);
        cluster_.network().SetBlocked(other, node, false);
      }
      isolated_[node] = false;
      Log(absl::StrCat("fault: heal n", node));
    } else if (roll < 40 && !cluster_.is_up(node)) {
      bool others_have_data = true;
      for (NodeId other : all_) {
        if (other != node && (resyncing_[other] || corrupt_[other])) others_have_data = false;
      }
      if (knobs_.corruption && others_have_data && !resyncing_[node] && faults_.Chance(1, 4)) {
        CorruptAtRest(node);
      }
      if (knobs_.read_corruption && faults_.Chance(1, 4))
        CorruptNextRead(node, faults_.Chance(1, 2));
      if (knobs_.read_errors && faults_.Chance(1, 4)) {
        cluster_.disk(node).FailNextRead();
        ++result_.read_errors;
        Log(absl::StrCat("fault: the next read of n", node, "'s disk fails (EIO)"));
      }
      if (knobs_.wipes && OthersFine(node) && faults_.Chance(1, 3)) {
        WipeDisk(node);
        resyncing_[node] = true;
        ++result_.wipes;
        Log(absl::StrCat("fault: wipe the disk of n", node));
      } else if (knobs_.wrong_disks && others_have_data && !resyncing_[node] && OthersFine(node) &&
                 faults_.Chance(1, 6)) {
        GiveWrongDisk(node);
      } else if (knobs_.old_backups && backups_.count(node) > 0 && others_have_data &&
                 !resyncing_[node] && OthersFine(node) && faults_.Chance(1, 3)) {
        RestoreOldBackup(node);
      }
      RestartNode(node);
    } else if (roll < 46 && knobs_.pauses && cluster_.is_up(node) && !Disturbed(node) &&
               DisturbedCount() < max_disturbed) {
      Pause(node);
    } else if (roll < 50 && knobs_.clock_steps && cluster_.is_up(node)) {
      // An NTP step: 1-60 s either way, each node's total kept within +-120 s. The dedup
      // window (300 s) is measured on the owner's wall clock, so a step forward by more
      // than the window can let a resend count twice: a documented limit
      // (docs/operations.md, "Clocks"), not exercised here.
      int64_t step_ns = static_cast<int64_t>(faults_.UniformRange(1, 60)) * kSecond *
                        (faults_.Chance(1, 2) ? 1 : -1);
      if (std::abs(clock_step_total_ns_[node] + step_ns) > kClockStepTotalMaxNs) step_ns = -step_ns;
      clock_step_total_ns_[node] += step_ns;
      cluster_.StepWallClock(node, step_ns);
      ++result_.clock_steps;
      Log(absl::StrCat("fault: step the wall clock of n", node, " by ", step_ns / kSecond, " s"));
    } else if (roll < 54 && knobs_.slow_disks) {
      SlowDisk(node);
    } else if (roll < 57 && knobs_.fsync_errors && cluster_.is_up(node) && !Disturbed(node) &&
               DisturbedCount() < max_disturbed) {
      // The node's next fsync fails: it must crash itself (Env::FailStop), never go on.
      cluster_.disk(node).FailNextSync();
      ++result_.fsync_errors;
      Log(absl::StrCat("fault: the next fsync of n", node, " fails (EIO)"));
    } else if (roll < 60 && knobs_.disk_full) {
      ToggleDiskFull(node, max_disturbed);
    } else if (roll < 64 && knobs_.clogs) {
      Clog(node);
    } else if (roll < 67 && knobs_.resets && cluster_.is_up(node)) {
      // Every connection of the node is reset (F39). Its clients' requests in flight get
      // unknown outcomes and are resent on new connections, all at once; replication
      // messages in flight to and from its peers are lost, and each side reconnects after
      // TcpTransport's first backoff and a connect (10-50 ms).
      cluster_.network().ResetStreams(node);
      const int64_t reconnect_ns =
          static_cast<int64_t>(faults_.UniformRange(10 * kMillisecond, 50 * kMillisecond));
      cluster_.network().ResetConnections(node, all_, reconnect_ns);
      ++result_.resets;
      Log(absl::StrCat("fault: reset the connections of n", node, " (peers reconnect in ",
                       reconnect_ns / kMillisecond, " ms)"));
    } else if (roll < 71 && knobs_.overload && burst_end_ns_ == 0) {
      StartBurst(node);
    }
  }

  // An overload burst (F73): the burst clients all connect to `node` and send requests of
  // up to 40 events back to back for 0.2-1.5 s, on top of the steady clients; owners refuse
  // what exceeds their bound of events awaiting commit with BACKPRESSURE (half of those
  // requests are then abandoned and must never be counted, the others resent). The run
  // loop ends the burst; a node that is down just refuses the connections meanwhile.
  void StartBurst(NodeId node) {
    burst_target_ = node;
    burst_end_ns_ = cluster_.simulator().now_ns() + static_cast<int64_t>(faults_.UniformRange(
                                                        200 * kMillisecond, 1'500 * kMillisecond));
    for (WorkloadClient* client : burst_clients_) {
      client->ResumeSending();
      client->Reconnect();
    }
    ++result_.overload_bursts;
    Log(absl::StrCat("fault: overload burst of ", burst_clients_.size(), " clients on n", node,
                     " for ", (burst_end_ns_ - cluster_.simulator().now_ns()) / kMillisecond,
                     " ms"));
  }
  void EndBurst() {
    if (burst_end_ns_ == 0) return;
    burst_end_ns_ = 0;  // Reconnects now pick among the targets again.
    for (WorkloadClient* client : burst_clients_) client->StopSendingNew();
    Log("fault: overload burst ends");
  }

  // SIGTERM, as an operator's restart or a deploy sends it: the node stops taking requests,
  // lets those in flight finish, checkpoints and exits (its writes stay on the disk: a
  // process exit is no crash); its partitions move as after a crash, and a later step
  // restarts it. A shutdown that does not finish within kShutdownBoundNs fails the seed (a
  // supervisor would have to SIGKILL it).
  void GracefulStop(NodeId node) {
    Log(absl::StrCat("fault: graceful stop of n", node, " (SIGTERM)"));
    auto done = std::make_shared<bool>(false);
    Server(cluster_, node).Shutdown([done] { *done = true; });
    Simulator& simulator = cluster_.simulator();
    simulator.RunUntil([&] { return *done || !cluster_.is_up(node); },
                       simulator.now_ns() + kShutdownBoundNs);
    if (!cluster_.is_up(node)) {
      Log(absl::StrCat("n", node, " crashed while shutting down"));
      return;
    }
    if (!*done) {
      Fail(absl::StrCat("L (graceful shutdown): n", node, " still shutting down ",
                        kShutdownBoundNs / kSecond, " s after SIGTERM"));
      return;
    }
    cluster_.Exit(node);
    ++result_.graceful_stops;
  }

  // Fills the node's disk to within 0-2 MiB of its capacity, or frees it again. Below
  // --min-free-disk-mb (1 MiB here) the node refuses writes and replicated entries;
  // above, its log writes fill the rest, fail, and it crashes itself (and may not restart
  // until space is freed).
  void ToggleDiskFull(NodeId node, size_t max_disturbed) {
    if (full_[node]) {
      SetDiskFree(node, std::nullopt);
      return;
    }
    if (Disturbed(node) || DisturbedCount() >= max_disturbed) return;
    SetDiskFree(node, faults_.UniformBelow(2 * 1024 * 1024));
    ++result_.disk_full;
  }

  // Restarts a node that is down; a start that fails (a full disk) leaves it down.
  void RestartNode(NodeId node) {
    const absl::Status started = cluster_.Restart(node);
    // A read error this start did not meet (nothing to read) is disarmed. Disk files are
    // read only when a node opens them (WAL recovery, replica.meta); catch-up is served from
    // memory and checkpoints, so a running node never reads them.
    cluster_.disk(node).TakeReadFailure();
    // A read corruption this start met (F12) is transient: the bytes at rest are intact.
    const bool read_corrupted =
        std::exchange(read_corruption_armed_, false) && !cluster_.disk(node).DisarmReadCorruption();
    result_.read_corruptions += read_corrupted ? 1 : 0;
    Log(absl::StrCat("fault: restart n", node, started.ok() ? "" : ": ",
                     started.ok() ? "" : started.ToString()));
    const bool meta_flipped = meta_flipped_[node];
    meta_flipped_[node] = false;
    if (meta_flipped && absl::IsDataLoss(started) &&
        absl::StrContains(started.message(), replication::kMetaFileName)) {
      Fail(absl::StrCat("F13/F12 (replica.meta): n", node,
                        " refused to start over one damaged slot, which the other copy of its "
                        "newest state covers: ",
                        started.ToString()));
      return;
    }
    if (std::exchange(wrong_disk_, false) && started.ok()) {
      Fail(absl::StrCat("F21 (wrong disk): n", node,
                        " started on a copy of another node's "
                        "data directory instead of refusing it"));
      return;
    }
    if (absl::IsFailedPrecondition(started)) {
      ++result_.refused_starts;  // Not its directory: the operator gives it a new disk.
      if (OthersFine(node)) ReplaceDisk(node);
      return;
    }
    if (started.ok()) {
      corrupt_[node] = false;  // The damage was harmless (padding, an unread value).
    } else if (absl::IsDataLoss(started)) {
      ++result_.refused_starts;
      // Refused for a transient read: the data is fine, a later step restarts it as is.
      if (read_corrupted && !corrupt_[node]) return;
      if (OthersFine(node)) ReplaceDisk(node);  // Else it stays down until a later step.
    }
  }

  // F21's other half: the down node's disk goes back to a copy of itself taken earlier
  // (an operator restoring an old backup). Its replica.meta may hold older votes and
  // promises than it told: the node must find that (its peers heard of newer writes) and
  // resync as a new incarnation, or, if nothing it told is missing, go on as it is.
  void RestoreOldBackup(NodeId node) {
    alert_damaged_[node] = false;
    durability_.OnWipe(node);  // What it held durably was durable when it acknowledged it.
    ownership_.OnRestoredFromBackup(node);
    cluster_.disk(node).CopyDurableFrom(*backups_.at(node));
    backups_.erase(node);
    resyncing_[node] = true;  // Without part of its data: no other data loss meanwhile.
    ++result_.old_backups;
    Log(absl::StrCat("fault: n", node, "'s disk goes back to the copy taken earlier"));
  }

  // F21, a wrong disk: the down node's disk becomes a copy of another node's (an operator
  // mixed up data directories). The node must refuse to start on it, naming whose it is;
  // the operator then gives it a new disk and it resyncs.
  void GiveWrongDisk(NodeId node) {
    const NodeId other =
        static_cast<NodeId>((node + 1 + faults_.UniformBelow(options_.nodes - 1)) % options_.nodes);
    WipeDisk(node);  // Its own data is gone for the checkers too.
    cluster_.CopyDisk(node, other);
    corrupt_[node] = true;  // Without its data until the disk is replaced.
    wrong_disk_ = true;
    ++result_.wrong_disks;
    Log(absl::StrCat("fault: n", node, " gets a copy of n", other, "'s disk"));
  }

  // F12, corruption returned on read, before a restart: the recovery's read of one byte of
  // a WAL group other than a segment's last (never mistakable for a torn tail) returns it
  // with a bit flipped, once; or (F16, `misdirected`) the 4 KiB sector holding that byte
  // reads as another sector of the file. The node must refuse to start, naming the damage,
  // or never read those bytes; its next start reads the intact bytes and must succeed.
  void CorruptNextRead(NodeId node, bool misdirected) {
    SimDisk& disk = cluster_.disk(node);
    if (!misdirected && faults_.Chance(1, 5) && FlipMetaBit(node, /*at_rest=*/false)) return;
    const std::vector<std::pair<std::string, WalGroup>> candidates = DamageableWalGroups(disk);
    if (candidates.empty()) return;
    const auto& [name, group] = candidates[faults_.UniformBelow(candidates.size())];
    const uint64_t offset = group.offset + faults_.UniformBelow(group.size_bytes);
    if (misdirected) {
      const uint64_t source = faults_.UniformBelow(disk.FileBytes(name).size());
      disk.MisdirectNextReadAt(name, offset, source);
      Log(absl::StrCat("fault: the next read of ", name, " at offset ", offset, " on n", node,
                       " returns the sector at ", source));
    } else {
      disk.CorruptNextReadAt(name, offset, static_cast<uint8_t>(1 << faults_.UniformBelow(8)));
      Log(absl::StrCat("fault: the next read of ", name, " at offset ", offset, " on n", node,
                       " returns a flipped bit"));
    }
    read_corruption_armed_ = true;
  }

  // A replaced disk, new and empty (not full); the durability ledger keeps what it held
  // durably (its acknowledgements may still be in flight).
  void WipeDisk(NodeId node) {
    if (full_[node]) SetDiskFree(node, std::nullopt);
    alert_damaged_[node] = false;
    durability_.OnWipe(node);
    ownership_.OnWipe(node);
    cluster_.WipeDisk(node);
  }

  // The operator's answer to a node refusing its data directory: a new, empty disk; the
  // node resyncs from its peers.
  void ReplaceDisk(NodeId node) {
    WipeDisk(node);
    resyncing_[node] = true;
    corrupt_[node] = false;
    ++result_.wipes;
    const absl::Status started = cluster_.Restart(node);
    Log(absl::StrCat("fault: replace the disk of n", node, " and restart", started.ok() ? "" : ": ",
                     started.ok() ? "" : started.ToString()));
  }

  // F13, corruption at rest, on a down node: one bit of its WAL (a byte before the last
  // group of a segment, so that the damage is never mistaken for a torn tail: the node
  // must refuse to start, or the byte was padding) or of a stored value in its state store
  // (checked when read: a checkpoint refuses the start, a stored event fails its read).
  void CorruptAtRest(NodeId node) {
    SimDisk& disk = cluster_.disk(node);
    if (faults_.Chance(1, 5) && FlipMetaBit(node, /*at_rest=*/true)) return;
    const std::vector<std::pair<std::string, WalGroup>> candidates = DamageableWalGroups(disk);
    MemoryStateMedium& medium = disk.state_medium();
    const bool wal = !candidates.empty() && (medium.key_count() == 0 || faults_.Chance(1, 2));
    if (wal) {
      const auto& [name, group] = candidates[faults_.UniformBelow(candidates.size())];
      std::string bytes = disk.FileBytes(name);
      const uint64_t offset = group.offset + faults_.UniformBelow(group.size_bytes);
      bytes[offset] = static_cast<char>(bytes[offset] ^ (1 << faults_.UniformBelow(8)));
      disk.SetFileBytes(name, bytes);
      Log(absl::StrCat("fault: flip a bit of ", name, " at offset ", offset, " on n", node));
    } else if (medium.key_count() > 0) {
      const std::string key = medium.KeyAt(faults_.UniformBelow(medium.key_count()));
      UM_CHECK(medium.CorruptValueAtRest(key));
      if (absl::StartsWith(key, "a")) alert_damaged_[node] = true;  // An alert record.
      Log(absl::StrCat("fault: flip a bit of the stored value of ", absl::CHexEscape(key), " on n",
                       node));
    } else {
      return;
    }
    corrupt_[node] = true;
    ++result_.corruptions;
  }

  // F13 and F12 on replica.meta: one bit of one slot flipped at rest, or returned flipped
  // by the next read of it. Only while every written slot is intact (a torn write or an
  // earlier flip not yet rewritten makes it a second fault on one file, beyond what the
  // format tolerates). The node must start with its newest state (the ownership tracker
  // holds it to every vote and promise it told, S11), never refuse: the other copy of that
  // state is intact. False if nothing was damaged.
  bool FlipMetaBit(NodeId node, bool at_rest) {
    using replication::kMetaSlotBytes;
    SimDisk& disk = cluster_.disk(node);
    if (disk.durable_files().count(replication::kMetaFileName) == 0) return false;
    std::string bytes = disk.FileBytes(replication::kMetaFileName);
    std::vector<size_t> written;
    for (size_t slot = 0; (slot + 1) * kMetaSlotBytes <= bytes.size(); ++slot) {
      const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data()) + slot * kMetaSlotBytes;
      if (std::all_of(begin, begin + kMetaSlotBytes, [](uint8_t byte) { return byte == 0; })) {
        continue;
      }
      uint64_t sequence = 0;
      if (!replication::DecodeMetaSlot(absl::MakeConstSpan(begin, kMetaSlotBytes), &sequence)
               .ok()) {
        return false;
      }
      written.push_back(slot);
    }
    if (written.size() < 2) return false;
    const uint64_t offset = written[faults_.UniformBelow(written.size())] * kMetaSlotBytes +
                            faults_.UniformBelow(replication::kMetaSlotUsedBytes);
    const auto mask = static_cast<uint8_t>(1 << faults_.UniformBelow(8));
    if (at_rest) {
      bytes[offset] = static_cast<char>(bytes[offset] ^ mask);
      disk.SetFileBytes(replication::kMetaFileName, bytes);
      ++result_.corruptions;
    } else {
      disk.CorruptNextReadAt(replication::kMetaFileName, offset, mask);
      read_corruption_armed_ = true;
    }
    meta_flipped_[node] = true;
    Log(absl::StrCat(
        "fault: ", at_rest ? "flip a bit of " : "the next read returns a flipped bit of ",
        replication::kMetaFileName, " at offset ", offset, " on n", node));
    return true;
  }

  // The groups of a WAL segment's bytes, padding excluded (docs/formats/wal.md: a group
  // marker has kind 0 and its group's size in the epoch field; groups start at 4 KiB
  // boundaries).
  struct WalGroup {
    uint64_t offset;
    uint64_t size_bytes;
  };
  static std::vector<WalGroup> WalGroups(const std::string& bytes) {
    constexpr uint64_t kSector = kWalSectorSizeBytes;
    std::vector<WalGroup> groups;
    uint64_t offset = 0;
    while (offset + kWalRecordHeaderSizeBytes <= bytes.size()) {
      const auto* header = reinterpret_cast<const uint8_t*>(bytes.data() + offset);
      if (LoadU32(header + kWalOffsetMagic) != kWalRecordMagic ||
          LoadU16(header + kWalOffsetKind) != 0) {
        break;
      }
      const uint64_t size = LoadU64(header + kWalOffsetEpoch);  // A marker's group size.
      if (size < kWalRecordHeaderSizeBytes || offset + size > bytes.size()) break;
      groups.push_back(WalGroup{offset, size});
      offset = (offset + size + kSector - 1) / kSector * kSector;
    }
    return groups;
  }

  // Every WAL group of the disk but each segment's last, by file name.
  static std::vector<std::pair<std::string, WalGroup>> DamageableWalGroups(SimDisk& disk) {
    std::vector<std::pair<std::string, WalGroup>> candidates;
    for (const auto& [name, bytes] : disk.durable_files()) {
      if (!absl::StartsWith(name, "wal-")) continue;
      std::vector<WalGroup> groups = WalGroups(disk.FileBytes(name));
      if (!groups.empty()) groups.pop_back();
      for (const WalGroup& group : groups) candidates.emplace_back(name, group);
    }
    return candidates;
  }

  // SIGSTOP for 0.1-5 s (longer than an election timeout at times, so its partitions move
  // and it resumes as a stale owner), then SIGCONT.
  void Pause(NodeId node) {
    cluster_.Pause(node);
    ++result_.pauses;
    const int64_t pause_ns = static_cast<int64_t>(faults_.UniformRange(100, 5'000)) * kMillisecond;
    Log(absl::StrCat("fault: pause n", node, " for ", pause_ns / kMillisecond, " ms"));
    cluster_.simulator().Schedule(pause_ns, EventOwner{}, EventKind::kFault, node, [this, node] {
      if (!frozen_for_good_[node]) cluster_.Resume(node);
    });
  }

  // Clogs the link from `node` to another node (half the time both ways) for 0.5-10 s: its
  // messages take an extra 0.1-5 s on average, arrive out of order, and overflow the path
  // once 64 are in flight (F38, F40).
  void Clog(NodeId node) {
    const NodeId other =
        static_cast<NodeId>((node + 1 + faults_.UniformBelow(options_.nodes - 1)) % options_.nodes);
    const bool both_ways = faults_.Chance(1, 2);
    const int64_t mean_ns = static_cast<int64_t>(faults_.UniformRange(100, 5'000)) * kMillisecond;
    const int64_t duration_ns =
        static_cast<int64_t>(faults_.UniformRange(500, 10'000)) * kMillisecond;
    cluster_.network().SetClogged(node, other, mean_ns);
    if (both_ways) cluster_.network().SetClogged(other, node, mean_ns);
    ++result_.clogs;
    Log(absl::StrCat("fault: clog n", node, both_ways ? " <-> n" : " -> n", other, " (+",
                     mean_ns / kMillisecond, " ms mean) for ", duration_ns / kMillisecond, " ms"));
    cluster_.simulator().Schedule(duration_ns, EventOwner{}, EventKind::kFault, node,
                                  [this, node, other] {
                                    cluster_.network().SetClogged(node, other, 0);
                                    cluster_.network().SetClogged(other, node, 0);
                                  });
  }

  // Toggles the node's disk between its normal fsync latency and a slow one (5-50 ms mean,
  // a saturated or failing device).
  void SlowDisk(NodeId node) {
    DiskOptions& disk = cluster_.disk(node).options();
    if (disk.sync_latency_mean_ns != kNormalSyncMeanNs) {
      disk.sync_latency_mean_ns = kNormalSyncMeanNs;
      Log(absl::StrCat("fault: the disk of n", node, " is fast again"));
      return;
    }
    disk.sync_latency_mean_ns = static_cast<int64_t>(faults_.UniformRange(5, 50)) * kMillisecond;
    ++result_.slow_disks;
    Log(absl::StrCat("fault: the disk of n", node, " slows to ",
                     disk.sync_latency_mean_ns / kMillisecond, " ms per fsync"));
  }

  // S4 (sim/history_checker.h): every apply anywhere agrees with the first. S6
  // (sim/durability_ledger.h): the first apply of an entry anywhere is its commit, and by
  // then a majority's disks must hold it durably.
  void OnApplied(NodeId node, uint32_t partition, uint64_t index, uint64_t epoch,
                 const metering::LogEntry& entry) {
    if (!history_.OnApply(node, partition, index, epoch, entry)) return;
    model_.Apply(partition, index, entry);
    const uint32_t copies = durability_.DurableCopies(partition, index, epoch);
    if (copies < options_.nodes / 2 + 1 && durability_failure_.empty()) {
      durability_failure_ = absl::StrCat(
          "S6 (quorum durability at commit): partition ", partition, " index ", index, " epoch ",
          epoch, " applied first on n", node, " at t=", cluster_.simulator().now_ns(),
          " ns while durable on ", copies, " of ", options_.nodes, " disks");
    }
  }

  void CheckHistory() {
    if (!history_.failure().empty()) Fail(history_.failure());
    if (!ownership_.failure().empty()) Fail(ownership_.failure());
    if (!model_.acknowledged_failure().empty()) Fail(model_.acknowledged_failure());
    if (!durability_failure_.empty()) Fail(durability_failure_);
    if (!model_.failure().empty()) Fail(model_.failure());
    if (!ledger_.redirect_failure.empty()) Fail(ledger_.redirect_failure);
  }

  void CheckNoDoubleCounting(const char* when) {
    CheckHistory();
    for (NodeId node : all_) {
      if (!cluster_.is_up(node) || !result_.ok) continue;
      for (uint64_t account = 0; account < kAccounts; ++account) {
        const uint64_t sum = SumAt(cluster_, node, account);
        if (sum > ledger_.sent[account]) {
          Fail(absl::StrCat("S2 (double counting) ", when, ": node ", node, " account ", account,
                            " sum ", sum, " > distinct events sent ", ledger_.sent[account]));
        }
      }
    }
  }

  // Ends every process and disk fault on `nodes`: resumed, healthy disks (an fsync error
  // not yet hit disarmed), restarted if down. False (and the run failed) if one cannot start.
  bool HealNodes(const std::vector<NodeId>& nodes) {
    for (NodeId node : nodes) {
      cluster_.Resume(node);
      SimDisk& disk = cluster_.disk(node);
      disk.options().sync_latency_mean_ns = kNormalSyncMeanNs;
      disk.options().capacity_bytes = DiskOptions{}.capacity_bytes;
      disk.TakeSyncFailure();
      full_[node] = false;
    }
    for (NodeId node : nodes) {
      if (cluster_.is_up(node)) continue;
      absl::Status started = cluster_.Restart(node);
      cluster_.disk(node).TakeReadFailure();
      // Damaged data (DataLoss) or another node's directory (FailedPrecondition): the
      // operator replaces the disk. Anything else was a transient read error: retry.
      const auto refused_disk = [](const absl::Status& status) {
        return absl::IsDataLoss(status) || absl::IsFailedPrecondition(status);
      };
      if (!started.ok() && !refused_disk(started)) {
        started = cluster_.Restart(node);  // The supervisor retries.
      }
      if (refused_disk(started)) {
        ++result_.refused_starts;
        ReplaceDisk(node);
        started = cluster_.is_up(node) ? absl::OkStatus() : absl::InternalError("no start");
      }
      if (!started.ok()) {
        Fail(absl::StrCat("L1 (liveness): node ", node,
                          " cannot restart after healing: ", started.ToString()));
        return false;
      }
    }
    return true;
  }

  void Quiesce() {
    EndBurst();
    cluster_.network().HealAll();
    std::fill(isolated_.begin(), isolated_.end(), false);
    cluster_.network().options().loss_ppm = 0;
    if (!HealNodes(all_)) return;
    for (auto& client : clients_) client->StopSendingNew();
    Simulator& simulator = cluster_.simulator();
    const bool quiet = simulator.RunUntil(
        [&] {
          for (const auto& client : clients_) {
            if (!client->idle()) return false;
          }
          return true;
        },
        simulator.now_ns() + 60 * kSecond);
    if (!quiet) {
      Halt("L1 (liveness): requests still pending 60 s after the faults stopped");
      return;
    }
    CheckConvergedExactlyOnce(all_);
  }

  // A wiped node stays "resyncing" until it is seen up and active again.
  // A node restored from an old backup starts active but holds its data only once its
  // peers confirmed its directory current (or, finding it went back, it resynced).
  void NoteResyncs() {
    for (NodeId node : all_) {
      if (!resyncing_[node] || !cluster_.is_up(node)) continue;
      const replication::ReplicationStatus status = Replicated(cluster_, node).status();
      if (status.incarnation == replication::NodeState::kActive && status.directory_confirmed) {
        resyncing_[node] = false;
      }
    }
  }

  // The liveness phase (RunMode::kLiveness; design "Liveness phase"): a majority core heals
  // for good, the minority's faults become permanent, and the core alone must serve every
  // partition (L1), finish every request (L2) and converge with every acknowledged event
  // counted exactly once (S1, S3, S5).
  void LivenessPhase() {
    liveness_checked_ = true;
    EndBurst();
    NoteResyncs();
    const std::vector<NodeId> outside = PickOutsideCore();
    std::vector<NodeId> core;
    for (NodeId node : all_) {
      if (!absl::c_linear_search(outside, node)) core.push_back(node);
    }
    for (NodeId node : core) {
      if (resyncing_[node]) {
        // More nodes without their data than a minority (cannot happen within the atlas):
        // no core can recover alone, so heal everything instead.
        Log("liveness: no core without a resyncing node; healing everything");
        Quiesce();
        return;
      }
    }
    for (NodeId node : outside) MakeFaultPermanent(node);
    HealCore(core);
    if (!result_.ok) return;
    targets_ = core;  // Clients fail over to the core (an SDK would, after refusals).
    for (auto& client : clients_) client->Reconnect();
    Simulator& simulator = cluster_.simulator();
    const int64_t healed_ns = simulator.now_ns();
    uint32_t unserved = kPartitionCount + 1;
    const bool served = simulator.RunUntil(
        [&] {
          const uint32_t now_unserved = PartitionsNotServedBy(core);
          if (now_unserved != unserved && options_.verbose) {
            Log(absl::StrCat(
                "liveness: ", now_unserved, " partitions not served by the core",
                now_unserved == 0 ? "" : absl::StrCat(", e.g. ", FirstUnserved(core))));
          }
          unserved = now_unserved;
          return unserved == 0;
        },
        healed_ns + CoreOwnsAllBoundNs());
    if (!served) {
      Fail(absl::StrCat("L1 (ownership): ", unserved, " partitions not served by the core ",
                        absl::StrJoin(core, ","), " ", CoreOwnsAllBoundNs() / kMillisecond,
                        " ms after it healed"));
      return;
    }
    result_.core_recovery_ns = simulator.now_ns() - healed_ns;
    Log(absl::StrCat("liveness: the core ", absl::StrJoin(core, ","), " serves every partition ",
                     result_.core_recovery_ns / kMillisecond, " ms after healing"));
    for (auto& client : clients_) client->StopSendingNew();
    const bool quiet = simulator.RunUntil(
        [&] {
          for (const auto& client : clients_) {
            if (!client->idle()) return false;
          }
          return true;
        },
        simulator.now_ns() + kRequestsCompleteBoundNs);
    if (!quiet) {
      Fail(absl::StrCat("L2 (progress): requests still pending ",
                        kRequestsCompleteBoundNs / kSecond,
                        " s after the core served every "
                        "partition"));
      return;
    }
    CheckConvergedExactlyOnce(core);
  }

  // The minority left out of the core: nodes still resyncing first (a core needs its
  // data), then disturbed nodes (their faults become permanent), then the others, each
  // class in a seeded order.
  std::vector<NodeId> PickOutsideCore() {
    std::vector<std::pair<uint64_t, NodeId>> order;
    for (NodeId node : all_) {
      const uint64_t rank = resyncing_[node] || corrupt_[node] ? 0 : Disturbed(node) ? 1 : 2;
      order.emplace_back((rank << 32) | faults_.UniformBelow(1u << 31), node);
    }
    std::sort(order.begin(), order.end());
    std::vector<NodeId> outside;
    const size_t minority = options_.nodes - (options_.nodes / 2 + 1);
    for (size_t i = 0; i < minority; ++i) outside.push_back(order[i].second);
    return outside;
  }

  // A node outside the core keeps being down, frozen, cut off or short of disk; a node that
  // was fine gets one of those, or can send but never receive (L5: it must not unsettle the
  // core). A node short of disk stays reachable and may even lead: it refuses writes and
  // replicated entries (or crashes once its log fills the disk), so the core must own its
  // partitions.
  void MakeFaultPermanent(NodeId node) {
    if (!cluster_.is_up(node)) {
      Log(absl::StrCat("liveness: n", node, " stays down"));
      return;
    }
    if (full_[node]) {
      // A disk-full episode may have left more than the threshold free (the node then
      // writes until its log fills the disk): below it, the node refuses writes for good.
      SimDisk& disk = cluster_.disk(node);
      if (disk.options().capacity_bytes > disk.used_bytes() + kLivenessFreeBytes) {
        SetDiskFree(node, kLivenessFreeBytes);
      }
      Log(absl::StrCat("liveness: the disk of n", node, " stays full"));
      return;
    }
    if (cluster_.is_paused(node)) {
      frozen_for_good_[node] = true;
      Log(absl::StrCat("liveness: n", node, " stays frozen"));
      return;
    }
    if (isolated_[node]) {
      // A bridged node still reaches part of the cluster and may rightly keep a majority
      // with it: silence everything it sends, so that it is cut off as the phase assumes.
      for (NodeId other : all_) {
        if (other != node) cluster_.network().SetBlocked(node, other, true);
      }
      Log(absl::StrCat("liveness: n", node, " stays cut off (nothing it sends arrives)"));
      return;
    }
    switch (faults_.UniformBelow(5)) {
      case 0:
        cluster_.Crash(node);
        Log(absl::StrCat("liveness: crash n", node, " for good"));
        break;
      case 1:
        cluster_.Pause(node);
        frozen_for_good_[node] = true;
        Log(absl::StrCat("liveness: freeze n", node, " for good"));
        break;
      case 2:
        // Below --min-free-disk-mb (1 MiB): the next disk check (within a second) finds it.
        SetDiskFree(node, kLivenessFreeBytes);
        Log(absl::StrCat("liveness: the disk of n", node, " stays full"));
        break;
      default: {
        const bool send_only = faults_.Chance(1, 2);
        for (NodeId other : all_) {
          if (other == node) continue;
          cluster_.network().SetBlocked(other, node, true);
          if (!send_only) cluster_.network().SetBlocked(node, other, true);
        }
        isolated_[node] = true;
        Log(absl::StrCat("liveness: cut n", node, " off for good",
                         send_only ? " (it can send, never receive)" : ""));
        break;
      }
    }
  }

  // Every fault on the core ends: resumed, restarted, disks healthy, links among its nodes
  // healed, no message loss.
  void HealCore(const std::vector<NodeId>& core) {
    for (NodeId node : core) {
      isolated_[node] = false;
      for (NodeId other : core) cluster_.network().SetBlocked(node, other, false);
    }
    // Clogged links heal everywhere (clogging is a transient link fault; the minority's
    // permanent faults are the ones drawn above).
    for (NodeId node : all_) {
      for (NodeId other : all_) {
        if (other != node) cluster_.network().SetClogged(node, other, 0);
      }
    }
    cluster_.network().options().loss_ppm = 0;
    if (!HealNodes(core)) return;
    Log(absl::StrCat("liveness: the core ", absl::StrJoin(core, ","), " is healed"));
  }

  // The first partition no node of `nodes` serves, and who owns it in their maps.
  std::string FirstUnserved(const std::vector<NodeId>& nodes) {
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      std::string owners;
      bool served = false;
      for (NodeId node : nodes) {
        served = served || Serves(node, partition);
        if (cluster_.is_up(node)) {
          absl::StrAppend(&owners, " n", node, " maps n",
                          Replicated(cluster_, node).owner(partition));
        }
      }
      if (!served) return absl::StrCat("partition ", partition, ":", owners);
    }
    return "";
  }

  // Partitions that no node of `nodes` serves.
  uint32_t PartitionsNotServedBy(const std::vector<NodeId>& nodes) {
    uint32_t unserved = 0;
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      bool served = false;
      for (NodeId node : nodes) served = served || Serves(node, partition);
      unserved += served ? 0 : 1;
    }
    return unserved;
  }

  // S5 then S1/S3 on `nodes`: within 30 s they hold equal commit indexes and state digests,
  // and each counts every acknowledged event exactly once.
  void CheckConvergedExactlyOnce(const std::vector<NodeId>& nodes) {
    Simulator& simulator = cluster_.simulator();
    std::string divergence;
    const bool converged = simulator.RunUntil(
        [&] {
          divergence = Divergence(nodes);
          return divergence.empty();
        },
        simulator.now_ns() + 30 * kSecond);
    if (!converged) {
      Halt(absl::StrCat("S9/L1 (replicas converge): not within 30 s: ", divergence));
      return;
    }
    CheckReplicaDigests(nodes);
    for (NodeId node : nodes) {
      for (uint64_t account = 0; account < kAccounts && result_.ok; ++account) {
        const uint64_t sum = SumAt(cluster_, node, account);
        const std::string violated = ledger_.CheckExactlyOnce(account, sum);
        if (!violated.empty()) {
          const bool lost = sum < ledger_.acked[account];
          Fail(absl::StrCat("node ", node, ": ", violated,
                            lost ? absl::StrCat(MissingEvents(node, account), " (node ", nodes[0],
                                                MissingEvents(nodes[0], account), ")")
                                 : std::string()));
        }
      }
    }
    CheckAggregates(nodes);
  }

  // S1, S2, S3 by event key over every metric, then S8 on each of `nodes`: every bucket
  // and filter combination answers what the reference model computed from the canonical log.
  void CheckAggregates(const std::vector<NodeId>& nodes) {
    if (!result_.ok) return;
    std::string failure = model_.CheckEventSets(ledger_);
    for (size_t i = 0; i < nodes.size() && failure.empty(); ++i) {
      failure = model_.CheckNode(NodeUsage(Server(cluster_, nodes[i]).engine().store()));
      if (!failure.empty()) failure = absl::StrCat("node ", nodes[i], ": ", failure);
    }
    if (failure.empty()) {
      std::vector<const Engine*> engines;
      for (NodeId node : nodes) engines.push_back(&Server(cluster_, node).engine());
      if (!RunUntilAlertsDurable(cluster_.simulator(), engines, 10 * kSecond)) {
        failure = "alert records still not durable 10 s after quiescence";
      }
    }
    if (failure.empty()) {
      std::vector<std::vector<RefCrossing>> logs(options_.nodes);
      std::vector<std::optional<std::vector<AlertRecord>>> records(options_.nodes);
      bool damaged = false;
      for (NodeId node : nodes) {
        absl::StatusOr<std::vector<AlertRecord>> log = Alerts(node);
        if (log.ok()) {
          logs[node] = AsCrossings(*log);
          records[node] = *std::move(log);
        } else if (alert_damaged_[node] && absl::IsDataLoss(log.status())) {
          // F13 flipped a bit of a stored record with no copy to answer from (one released
          // uncopied): the listing says so.
          damaged = true;
        } else if (failure.empty()) {
          failure =
              absl::StrCat("node ", node, ": alert log unreadable: ", log.status().ToString());
        }
      }
      // Every crossing recorded, crashes and replaced disks included (a replaced disk's log
      // is restored from its peers' copies); not after a stored record was damaged.
      const bool complete = nodes.size() == options_.nodes && !damaged;
      if (failure.empty()) failure = model_.CheckAlerts(logs, complete);
      for (NodeId node : nodes) {
        // An unreadable log is judged above.
        if (failure.empty() && records[node].has_value()) {
          failure = CheckAlertOffsets(node, *records[node]);
        }
      }
    }
    if (!failure.empty()) Fail(failure);
  }

  // The acknowledged events of `account` that `node` does not list (by client timestamp).
  // A node resynced from a snapshot lists only the events it applied since (a documented
  // limit), so this names candidates for the loss, not proof.
  std::string MissingEvents(NodeId node, uint64_t account) {
    absl::StatusOr<std::vector<StoredEvent>> stored =
        Server(cluster_, node).engine().store().ListEvents(account, INT64_MIN, INT64_MAX, SIZE_MAX);
    if (!stored.ok()) return absl::StrCat("; events unreadable: ", stored.status().ToString());
    absl::btree_set<int64_t> present;
    for (const StoredEvent& event : *stored) present.insert(event.timestamp_ns);
    std::string missing;
    size_t count = 0;
    for (int64_t timestamp : ledger_.acked_timestamps[account]) {
      if (!present.contains(timestamp) && ++count <= 8) {
        const int64_t number = timestamp - 1'767'225'600 * kSecond;
        absl::StrAppend(&missing, " client ", number >> 40, " event ",
                        number & ((int64_t{1} << 40) - 1));
      }
    }
    return absl::StrCat("; ", count, " acknowledged events not in its event list:", missing);
  }

  // Empty when every node of `nodes` is active and they hold the same commit index per
  // partition (cheap: checked after every simulated event while waiting).
  std::string Divergence(const std::vector<NodeId>& nodes) {
    for (NodeId node : nodes) {
      if (Disturbed(node)) return absl::StrCat("node ", node, " not active");
    }
    // Equal commit indexes alone can hide an acknowledged entry: an owner that crashed
    // right after committing it leaves it in a majority's logs with every node's commit
    // index still below it, until a new owner's epoch adopts it. So every partition must
    // be served by one of `nodes` with its whole log committed.
    // (A node outside `nodes`, frozen for good, may still believe it serves.)
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      const auto owner =
          absl::c_find_if(nodes, [&](NodeId node) { return Serves(node, partition); });
      if (owner == nodes.end()) return absl::StrCat("partition ", partition, " not served");
      const NodeStore& store = Server(cluster_, *owner).engine().store();
      if (store.commit_index(partition) != store.last_index(partition)) {
        return absl::StrCat("partition ", partition, " owner n", *owner, " commit index ",
                            store.commit_index(partition), " below its last index ",
                            store.last_index(partition));
      }
    }
    const NodeStore& first = Server(cluster_, nodes[0]).engine().store();
    for (NodeId node : nodes) {
      const NodeStore& store = Server(cluster_, node).engine().store();
      for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
        if (store.commit_index(partition) != first.commit_index(partition)) {
          return absl::StrCat("partition ", partition, " commit index ",
                              store.commit_index(partition), " on node ", node, " vs ",
                              first.commit_index(partition), " on node ", nodes[0]);
        }
      }
    }
    // Registry changes reach partitions that missed them through the registry leader's
    // anti-entropy (once a second), which may still be at work when the logs agree: a
    // partition whose owner refused writes for a while (a full disk) lacks them until then.
    return RegistryDivergence(first, nodes[0]);
  }

  // One registry (product-semantics 9): every partition of a node holds the same schema,
  // at the same version, for every code a registry change named. Codes only events named
  // (interned, never put) are skipped.
  std::string RegistryDivergence(const NodeStore& store, NodeId node) {
    using Registry = absl::btree_map<
        std::string, std::pair<metering::RegistryVersion, std::optional<metering::MetricSchema>>>;
    auto registry_of = [&](uint32_t partition) {
      Registry registry;
      store.state(partition).ForEachRegistryEntry([&](const std::string& code,
                                                      const metering::SchemaRef& schema,
                                                      const metering::RegistryVersion& version) {
        if (schema == nullptr && version.is_zero()) return;
        registry[code] = {version,
                          schema == nullptr ? std::nullopt : std::optional(schema->schema())};
      });
      return registry;
    };
    const Registry first = registry_of(0);
    for (uint32_t partition = 1; partition < kPartitionCount; ++partition) {
      if (registry_of(partition) != first) {
        return absl::StrCat("S9 (one registry): on node ", node, ", partition ", partition,
                            " holds other schemas or versions than partition 0");
      }
    }
    return "";
  }

  // Replicas at the same commit index must hold identical state.
  void CheckReplicaDigests(const std::vector<NodeId>& nodes) {
    // One registry (S9) was a condition of the convergence wait before this runs.
    const NodeStore& first = Server(cluster_, nodes[0]).engine().store();
    for (NodeId node : nodes) {
      if (!result_.ok) return;
      const NodeStore& store = Server(cluster_, node).engine().store();
      for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
        if (store.state(partition).Digest() != first.state(partition).Digest()) {
          Fail(absl::StrCat("S9 (replica convergence): partition ", partition,
                            " state differs between node ", node, " and node ", nodes[0],
                            " at commit index ", store.commit_index(partition)));
          return;
        }
      }
    }
  }

  void Summarize() {
    const NetworkStats& net = cluster_.network().stats();
    Log(absl::StrCat("canonical history: ", history_.applies_checked(), " applies and ",
                     history_.digests_checked(), " state digests checked"));
    Log(absl::StrCat("ownership tracker: ", ownership_.events_checked(), " events checked"));
    Log(absl::StrCat("reference model: ", model_.events_applied(), " events of ",
                     ledger_.schemas.size(), " metrics applied, ", model_.crossings(),
                     " threshold crossings"));
    Log(absl::StrCat("network: sent ", net.messages_sent, " delivered ", net.messages_delivered,
                     " lost ", net.messages_lost, " blocked ", net.messages_blocked, " overflowed ",
                     net.messages_overflowed, " duplicated ", net.messages_duplicated,
                     " corrupted ", net.messages_corrupted, " clogged ", net.messages_clogged,
                     " reset ", net.messages_reset, " (", net.connections_reset, " connections)"));
    for (uint64_t account = 0; account < kAccounts; ++account) {
      result_.events_acknowledged += ledger_.acked[account];
    }
    result_.requests = ledger_.requests;
    result_.client_crashes = ledger_.client_crashes;
    result_.backpressure = ledger_.backpressure_replies;
    result_.redirects = ledger_.redirects;
    result_.reads_checked = read_checker_.reads_checked();
    for (NodeId node : all_) {
      if (cluster_.is_up(node)) {
        result_.reads_leased += Replicated(cluster_, node).status().reads_leased;
        result_.parts_combined += Replicated(cluster_, node).status().ingest_parts_combined;
      }
    }
    result_.messages_sent = net.messages_sent;
    result_.messages_corrupted = net.messages_corrupted;
    result_.message_bytes_sent = net.message_bytes_sent;
    for (NodeId node : all_) result_.fsyncs += cluster_.disk(node).stats().syncs;
    result_.crashes = cluster_.crashes();
    result_.fail_stops = cluster_.fail_stops();
    result_.simulated_ns = cluster_.simulator().now_ns();
    result_.digest = cluster_.simulator().digest();
    clients_.clear();
  }

  // A liveness failure: fatal in recoverable mode, allowed (and reported) in unrestricted.
  void Halt(std::string failure) {
    if (options_.mode == RunMode::kUnrestricted) {
      result_.halted = true;
      Log(absl::StrCat("halted (allowed in unrestricted mode): ", failure));
      return;
    }
    Fail(std::move(failure));
  }

  void Fail(std::string failure) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.failure = std::move(failure);
  }

  void Log(const std::string& line) {
    if (options_.verbose) {
      std::fprintf(stderr, "t=%.6fs %s\n", static_cast<double>(cluster_.simulator().now_ns()) / 1e9,
                   line.c_str());
    }
  }

  const uint64_t seed_;
  const ClusterRunOptions options_;
  const Knobs knobs_;
  HistoryChecker history_;  // Before cluster_: its nodes report every apply to it.
  OwnershipTracker ownership_{options_.nodes};  // Before cluster_, likewise.
  SimCluster cluster_;
  DurabilityLedger durability_;  // Over cluster_'s disks.
  std::string durability_failure_;
  Ledger ledger_;
  ReferenceModel model_;
  ReadChecker read_checker_;
  SimEnv* reader_env_ = nullptr;                // The reading client's, when knobs_.reads.
  std::vector<WorkloadClient*> burst_clients_;  // In clients_, when knobs_.overload.
  NodeId burst_target_ = 0;
  int64_t burst_end_ns_ = 0;            // While a burst lasts (0: none).
  bool read_corruption_armed_ = false;  // For the restart that follows (F12).
  bool wrong_disk_ = false;             // The next restart is on another node's disk (F21).

  Prng reader_prng_{0};
  Prng faults_;
  Prng pick_;
  std::vector<bool> isolated_;
  std::vector<bool> full_;                                     // The node's disk is (nearly) full.
  absl::btree_map<NodeId, std::unique_ptr<SimDisk>> backups_;  // BackUpDisk.
  std::vector<int64_t> clock_step_total_ns_;  // Sum of the wall-clock steps, per node.
  std::vector<bool> resyncing_;               // Wiped, not yet seen active again.
  std::vector<bool> corrupt_;                 // Corrupted at rest, not yet restarted.
  std::vector<bool> alert_damaged_;           // A stored alert record corrupted at rest.
  // Per node, every alert record it listed during the run, by offset (ObserveAlertLogs).
  std::vector<absl::btree_map<uint64_t, metering::AlertCrossing>> alerts_seen_;
  std::vector<bool> meta_flipped_;     // One replica.meta slot damaged before a start.
  std::vector<bool> frozen_for_good_;  // Liveness phase: paused, never resumed.
  bool liveness_checked_ = false;
  std::vector<NodeId> all_;
  std::vector<NodeId> targets_;  // The nodes clients connect to.
  std::vector<std::unique_ptr<WorkloadClient>> clients_;
  ClusterRunResult result_;
};

ClusterRunResult RunClusterSeed(uint64_t seed, const ClusterRunOptions& options) {
  ClusterRun run(seed, options);
  return run.Run();
}

ClusterScenario::ClusterScenario(uint64_t seed, const ClusterRunOptions& options)
    : run_(std::make_unique<ClusterRun>(seed, options, /*scripted=*/true)) {
  run_->Start();
}
ClusterScenario::~ClusterScenario() = default;
void ClusterScenario::RunFor(int64_t duration_ns) { run_->RunFor(duration_ns); }
void ClusterScenario::Crash(NodeId node) { run_->Crash(node); }
void ClusterScenario::Restart(NodeId node) { run_->Restart(node, false); }
void ClusterScenario::RestartWiped(NodeId node) { run_->Restart(node, true); }
absl::Status ClusterScenario::RestartOnDiskOf(NodeId node, NodeId other) {
  return run_->RestartOnDiskOf(node, other);
}
void ClusterScenario::BackUpDisk(NodeId node) { run_->BackUpDisk(node); }
absl::Status ClusterScenario::RestartWithLogFromBackup(NodeId node) {
  return run_->RestartWithLogFromBackup(node);
}
absl::Status ClusterScenario::RestartFromBackup(NodeId node) {
  return run_->RestartFromBackup(node);
}
uint64_t ClusterScenario::DirectoriesWentBack() {
  return run_->SumOverUpNodes(&replication::ReplicationStatus::directories_went_back);
}
uint64_t ClusterScenario::PeersLostAcknowledged() {
  return run_->SumOverUpNodes(&replication::ReplicationStatus::peers_lost_acknowledged);
}
uint64_t ClusterScenario::MessagesDropped() {
  return run_->SumOverUpNodes(&replication::ReplicationStatus::messages_dropped);
}
void ClusterScenario::Block(NodeId from, NodeId to) { run_->Block(from, to, true); }
void ClusterScenario::Unblock(NodeId from, NodeId to) { run_->Block(from, to, false); }
void ClusterScenario::Pause(NodeId node) { run_->SetPaused(node, true); }
void ClusterScenario::Resume(NodeId node) { run_->SetPaused(node, false); }
void ClusterScenario::SetDiskFull(NodeId node, bool full) {
  run_->SetDiskFree(node, full ? std::optional<uint64_t>(768 * 1024) : std::nullopt);
}
uint64_t ClusterScenario::Acknowledged(uint64_t account) { return run_->Acknowledged(account); }
void ClusterScenario::ReadSum(NodeId node, uint64_t account,
                              absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done) {
  run_->ReadSum(node, account, std::move(done));
}
void ClusterScenario::PutMetric(NodeId node, metering::MetricSchema schema,
                                absl::AnyInvocable<void(absl::Status)> done) {
  run_->PutMetric(node, std::move(schema), std::move(done));
}
uint32_t ClusterScenario::ServedPartitions() { return run_->ServedPartitions(); }
NodeId ClusterScenario::OwnerOf(uint32_t partition) { return run_->OwnerOf(partition); }
NodeId ClusterScenario::Leader() { return run_->Leader(); }
int64_t ClusterScenario::now_ns() { return run_->simulator().now_ns(); }
int64_t ClusterScenario::RunUntilAllServed(int64_t limit_ns) {
  const int64_t start_ns = now_ns();
  const bool served = run_->simulator().RunUntil(
      [this] { return run_->ServedPartitions() == kPartitionCount; }, start_ns + limit_ns);
  return served ? now_ns() - start_ns : -1;
}
int64_t ClusterScenario::RunUntilCaughtUp(NodeId node, int64_t limit_ns) {
  const int64_t start_ns = now_ns();
  const std::vector<uint64_t> targets = run_->CommitTargets(node);
  const bool caught_up = run_->simulator().RunUntil([&] { return run_->CaughtUp(node, targets); },
                                                    start_ns + limit_ns);
  return caught_up ? now_ns() - start_ns : -1;
}
uint64_t ClusterScenario::AcknowledgedTotal() { return run_->AcknowledgedTotal(); }
bool ClusterScenario::RunUntilSyncInFlight(NodeId node, const std::string& name, int64_t limit_ns) {
  return run_->RunUntilSyncInFlight(node, name, limit_ns);
}
std::string ClusterScenario::Problem(NodeId node) { return run_->Status(node).problem; }
uint32_t ClusterScenario::ServingPartitions(NodeId node) {
  return run_->Status(node).serving_partitions;
}
absl::StatusOr<std::vector<AlertRecord>> ClusterScenario::Alerts(NodeId node) {
  return run_->Alerts(node);
}
ClusterRunResult ClusterScenario::Finish() { return run_->Finish(); }

}  // namespace unimeter::sim
