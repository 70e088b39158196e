// sim/cluster_workload.h
//
// A seeded cluster run: N real NodeServers (ReplicatedEngine) on the simulated network
// and disks, WorkloadClients sending INGEST_SYNC batches to any node (which forwards to
// owners), and a fault schedule drawn from the seed: crashes aimed between a write and its
// fsync, restarts, disks wiped while down (a replaced disk), isolated nodes, asymmetric
// (one-way) splits, message loss, duplication, clogged links and connection resets. At most a
// minority is disturbed at once, so the run must also make progress.
//
// Checked (docs/simulation.md):
//   S2  no double counting: on every node, at every fault step, each account's committed
//       SUM is at most the number of distinct events sent;
//   S1  no acknowledged event lost, S3 exactly once: after healing, every node's SUM of
//       each account equals the events sent, and every event was acknowledged;
//   S5  replicas converge: after healing, every node holds the same commit index and the
//       same state digest for every partition;
//   S4  log agreement: every apply of a partition's index on any node (WAL replay after a
//       restart included) is the entry, epoch and checksum, that the first node applied
//       there (sim/history_checker.h);
//   S6  quorum durability at commit: when an entry is first applied anywhere (its commit),
//       the durable disk images of a majority hold its WAL record (sim/durability_ledger.h);
//   S8  aggregates are a function of the log: after healing, every node answers every
//       bucket and filter combination of the five aggregation metrics as the reference
//       model computed it from the canonical log, and S1/S2/S3 hold by event key over all
//       metrics (sim/reference_model.h);
//   S1, S3 and linearizability on reads, while faults are injected (in most seeds): a
//       read through any node counts every event acknowledged before it was invoked,
//       nothing never sent, and no less than a read that completed before it
//       (sim/read_checker.h);
//   L1  liveness: every request completes within 60 simulated seconds of the faults
//       stopping, and the replicas converge within 30 more.
// In liveness mode the end differs: a majority core heals for good while the minority's
// faults become permanent, and the core alone must recover within the design's bounds:
//   L1  every partition served by a core node within 5 s (three election timeouts at
//       their randomised maximum, less slack);
//   L2  every pending request completes within 30 s (clients fail over to the core);
//   L5  this holds with a non-core node that can send but not receive;
//   S1, S3, S5 on the core nodes: every acknowledged event counted exactly once, equal
//       commit indexes and state digests.
// A run is a pure function of its seed; the result carries the trace digest.
#ifndef UNIMETER_SIM_CLUSTER_WORKLOAD_H_
#define UNIMETER_SIM_CLUSTER_WORKLOAD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "node/env/env.h"
#include "node/metering/schema.h"
#include "node/store/node_store.h"

namespace unimeter::sim {

// docs/simulation.md, "Modes".
enum class RunMode : uint8_t {
  // Faults within the atlas (at most a minority disturbed, one node without its data at a
  // time), every check, and a liveness phase: everything heals, requests complete and
  // replicas converge within the L1 bounds.
  kRecoverable,
  // Safety only: any number of nodes down, cut off or paused at once (still one node
  // without its data at a time). Never double counting; after healing, if the cluster
  // recovers in time, every acknowledged event counted exactly once. Halting is allowed
  // (reported, not a failure).
  kUnrestricted,
  // Faults as in kRecoverable; then a majority core (never a node still resyncing) is
  // healed and the minority's faults are made permanent (down, frozen, cut off, or able to
  // send but not to receive): the core must serve every partition, finish every request
  // and converge by itself within the liveness bounds (L1, L2, L5).
  kLiveness,
  // No faults: the cost per committed event (messages, bytes, fsyncs) and the speed.
  kPerformance,
};

struct ClusterRunOptions {
  RunMode mode = RunMode::kRecoverable;
  uint32_t nodes = 3;
  int64_t duration_ns = 30'000'000'000;  // Simulated time with faults.
  uint32_t clients = 3;
  // Every node's read lease (ReplicatedEngineOptions::read_lease_ns); -1: drawn from the
  // seed, or the default in scripted scenarios.
  int64_t read_lease_ns = -1;
  // Messages a node-to-node path holds before it drops more (NetworkOptions); 0: default.
  uint32_t path_capacity_messages = 0;
  // Every node's snapshot chunk size (ReplicatedEngineOptions); 0: the default.
  size_t snapshot_chunk_bytes = 0;
  // A rolling upgrade's mixed cluster: node `old_minor_node` sends its node-to-node
  // messages as a member of protocol minor version `old_minor` (5 or 6) would, without the
  // newer fields, and reads those sent to it as such a member would. -1: drawn from the
  // seed (none in scripted scenarios).
  int32_t old_minor_node = -1;
  uint8_t old_minor = 6;
  bool verbose = false;
};

struct ClusterRunResult {
  bool ok = true;
  std::string failure;  // The violated invariant with details, when !ok.
  std::string knobs;    // The fault mix drawn from the seed.
  uint64_t digest = 0;
  uint64_t events_acknowledged = 0;
  uint64_t requests = 0;
  uint64_t crashes = 0;
  uint64_t graceful_stops = 0;  // SIGTERM, shutdown, exit (not counted in crashes).
  uint64_t wipes = 0;
  uint64_t splits = 0;
  uint64_t bridges = 0;           // Splits that cut one link only (the other nodes bridge it).
  uint64_t corruptions = 0;       // Bits flipped at rest on a down node's disk (F13).
  uint64_t refused_starts = 0;    // Starts refused for corrupt data (then the disk is replaced).
  uint64_t read_errors = 0;       // Latent sector errors armed for a restart's recovery (F14).
  uint64_t read_corruptions = 0;  // Flipped bits or misdirected sectors a restart read (F12, F16).
  uint64_t wrong_disks = 0;       // Restarts on a copy of another node's disk (F21).
  uint64_t old_backups = 0;       // Restarts on an old copy of the node's own disk (F21).
  uint64_t pauses = 0;
  uint64_t clock_steps = 0;
  uint64_t slow_disks = 0;  // Episodes of a node's fsync latency raised 25-250x.
  uint64_t fsync_errors = 0;
  uint64_t disk_full = 0;        // Episodes of a node's disk full.
  uint64_t clogs = 0;            // Episodes of a clogged link (one way or both).
  uint64_t resets = 0;           // Times every client connection of a node was reset.
  uint64_t fail_stops = 0;       // Crashes nodes did to themselves (fsync error, disk full).
  uint64_t client_crashes = 0;   // Clients that died with a request in flight.
  uint64_t overload_bursts = 0;  // Episodes of extra clients flooding one node (F73).
  uint64_t backpressure = 0;     // BACKPRESSURE replies clients received.
  uint64_t redirects = 0;        // REDIRECT replies clients followed (registry changes).
  uint64_t reads_checked = 0;    // Reads answered during the run and judged (read_checker.h).
  // Reads owners answered under a read lease, without a confirm round (summed over the
  // processes up at the end: a crashed process's count is lost).
  uint64_t reads_leased = 0;
  uint64_t parts_combined = 0;  // Ingest parts accepted into shared entries (nodes up at the end).
  bool halted = false;          // Unrestricted mode: did not recover in time after healing.
  // Liveness mode: simulated time from healing the core until it served every partition.
  int64_t core_recovery_ns = -1;
  // Totals over the run (performance mode reports them per acknowledged event).
  uint64_t messages_sent = 0;
  uint64_t messages_corrupted = 0;  // Dropped by the (modelled) frame checksum (F34).
  uint64_t message_bytes_sent = 0;
  uint64_t fsyncs = 0;
  int64_t simulated_ns = 0;
};

ClusterRunResult RunClusterSeed(uint64_t seed, const ClusterRunOptions& options);

class ClusterRun;

// A scripted run for scenario tests: the same nodes, clients and checkers as
// RunClusterSeed, with no drawn fault mix; the test injects the faults. Clients start
// ingesting at construction.
class ClusterScenario {
 public:
  ClusterScenario(uint64_t seed, const ClusterRunOptions& options);
  ~ClusterScenario();

  // Advances simulated time, then checks S2 on every node.
  void RunFor(int64_t duration_ns);
  void Crash(NodeId node);
  void Restart(NodeId node);
  void RestartWiped(NodeId node);  // A replaced disk. REQUIRES: the node is down.
  // Starts `node` on a copy of `other`'s disk (F21); what the start returned. The node's
  // own data is lost either way. REQUIRES: `node` is down.
  absl::Status RestartOnDiskOf(NodeId node, NodeId other);
  // Keeps a copy of what `node`'s disk holds durably now.
  void BackUpDisk(NodeId node);
  // Starts `node` with its log files as its last BackUpDisk left them, its state store and
  // replica.meta as they are: a disk that lost synced writes of the log (one that ignores
  // flushes). What the start returned. REQUIRES: `node` is down and was backed up.
  absl::Status RestartWithLogFromBackup(NodeId node);
  // Starts `node` on its whole data directory as its last BackUpDisk left it (an operator
  // restoring an old backup); what the start returned. REQUIRES: as above.
  absl::Status RestartFromBackup(NodeId node);
  // Over the nodes that are up: times a node found its directory went back in time
  // (ReplicationStatus::directories_went_back).
  uint64_t DirectoriesWentBack();
  // Over the nodes that are up: partitions in which a peer came back holding less than it
  // had acknowledged (ReplicationStatus::peers_lost_acknowledged).
  uint64_t PeersLostAcknowledged();
  // Over the nodes that are up: replication messages refused as undecodable or of
  // another major version (ReplicationStatus::messages_dropped).
  uint64_t MessagesDropped();
  void Block(NodeId from, NodeId to);  // One direction; Unblock heals it.
  void Unblock(NodeId from, NodeId to);
  void Pause(NodeId node);  // SIGSTOP until Resume.
  void Resume(NodeId node);
  // Leaves `node` 768 KiB of free disk (below its --min-free-disk-mb of 1 MiB: it refuses
  // writes once its disk check runs), or frees its disk again.
  void SetDiskFull(NodeId node, bool full);
  // Events of `account` acknowledged to clients so far.
  uint64_t Acknowledged(uint64_t account);
  // Reads the account's SUM through `node`'s engine (routed and confirmed as a client's
  // read would be); `done` runs later on the simulated loop.
  void ReadSum(NodeId node, uint64_t account,
               absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> done);
  // A registry change through `node`'s engine; a redirect to the registry leader is
  // followed. `done` runs later on the simulated loop with the outcome.
  void PutMetric(NodeId node, metering::MetricSchema schema,
                 absl::AnyInvocable<void(absl::Status)> done);
  // Partitions whose owner serves them (epoch committed), and the serving owner.
  uint32_t ServedPartitions();
  NodeId OwnerOf(uint32_t partition);  // > kNodeIdMax when none serves it.
  // The up node that leads the highest term it knows of; > kNodeIdMax when none leads.
  NodeId Leader();
  // Runs until all 256 partitions are served; the simulated ns it took, or -1 past limit.
  int64_t RunUntilAllServed(int64_t limit_ns);
  // Runs until `node` is active and has committed, in every partition, at least what the
  // other up nodes had committed when this was called (L3 catch-up, L4 resync); the
  // simulated ns it took, or -1 past the limit.
  int64_t RunUntilCaughtUp(NodeId node, int64_t limit_ns);
  // Runs until `node` has a sync of its file `name` in flight (true), or `limit_ns` passed.
  bool RunUntilSyncInFlight(NodeId node, const std::string& name, int64_t limit_ns);
  // Events acknowledged to clients so far, all accounts.
  uint64_t AcknowledgedTotal();
  // What `node` reports as the reason it cannot serve (/health's problem); empty if none.
  // REQUIRES: the node is up.
  std::string Problem(NodeId node);
  // What its /health reports as partitions_serving.
  uint32_t ServingPartitions(NodeId node);
  // The node's alert log as ALERTS_LIST shows it (released records). REQUIRES: it is up.
  absl::StatusOr<std::vector<AlertRecord>> Alerts(NodeId node);
  int64_t now_ns();
  // Heals everything, restarts down nodes, lets clients finish, checks S1/S3, S9, L1.
  ClusterRunResult Finish();

 private:
  std::unique_ptr<ClusterRun> run_;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_CLUSTER_WORKLOAD_H_
