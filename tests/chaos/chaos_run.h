// tests/chaos/chaos_run.h
//
// ChaosRun: one fault test over real processes. It starts a RealCluster, runs a Workload
// against it, applies a schedule of faults (the nemesis), then heals everything and checks
// the History: every acknowledged synchronous event counted exactly once on every node,
// asynchronous and unknown ones at most once, failed ones never, no read older than an
// acknowledged write it follows, no acknowledgement from a node cut off from the majority,
// totals identical on every node. Liveness is checked too: the cluster must be healthy and
// make progress again within a bound after each recovery.
//
//   ChaosRun run(options);
//   absl::Status status = run.SetUp();
//   for (const FaultStep& step : FixedSchedule(run.capabilities())) run.Apply(step);
//   ChaosSummary summary = run.Finish();   // summary.anomalies empty = passed
//
// Every action is printed with its time since SetUp. Not thread-safe (one caller).
#ifndef UNIMETER_TESTS_CHAOS_CHAOS_RUN_H_
#define UNIMETER_TESTS_CHAOS_CHAOS_RUN_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/chaos/real_cluster.h"
#include "tests/chaos/workload.h"

namespace unimeter::chaos {

enum class FaultKind {
  kKill,             // SIGKILL one node, hold, restart.
  kPause,            // SIGSTOP one node, hold, SIGCONT.
  kWipe,             // SIGKILL, delete the data directory, restart (a replaced disk).
  kGracefulRestart,  // SIGTERM (must exit 0), restart.
  kIsolate,          // Cut one node from every other (it stays reachable by clients).
  kBridge,           // Cut node a from node b; both still reach the rest.
  kOneWay,           // Drop traffic from node a to node b only.
  kHalves,           // Equal halves (even cluster sizes only): nothing may commit.
  kFillDisk,         // Fill one node's disk image below its free-space threshold, then free it.
  kKillMajority,     // SIGKILL a majority at once, hold, restart them.
};
std::string FaultName(FaultKind kind);

struct FaultStep {
  FaultKind kind = FaultKind::kKill;
  int node = -1;   // -1: the owner of partition 0 at the time of the step.
  int other = -1;  // Second node for kBridge/kOneWay (-1: the next node).
  int64_t hold_ms = 5'000;
  int64_t settle_ms = 5'000;  // After recovery, before the next step.
};

struct Capabilities {
  int nodes = 3;
  bool network_faults = false;
  bool disk_images = false;
};

// The fixed CI schedule: every fault kind the capabilities allow, once, about 2-3 minutes.
std::vector<FaultStep> FixedSchedule(const Capabilities& capabilities);
// One random step (tools/chaos).
FaultStep RandomStep(const Capabilities& capabilities, std::mt19937_64* random);

struct ChaosOptions {
  RealClusterOptions cluster{};
  WorkloadOptions workload{};  // seeds are filled in by SetUp.
};

struct ChaosSummary {
  std::map<std::string, uint64_t> faults{};
  std::map<std::string, uint64_t> operations{};
  std::map<std::string, uint64_t> events{};
  uint64_t reads_checked = 0;
  uint64_t keys_checked = 0;
  std::vector<std::string> anomalies{};
  std::string ToString() const;
};

class ChaosRun {
 public:
  explicit ChaosRun(ChaosOptions options);
  ~ChaosRun();

  // Creates the cluster, starts every node, waits until healthy, registers the metrics and
  // starts the workload; fails if any of that fails.
  absl::Status SetUp();
  Capabilities capabilities() const;
  // The cluster under test (valid after SetUp, until destruction): logs, HTTP, addresses.
  const RealCluster& cluster() const { return *cluster_; }
  // Injects the fault, holds it, recovers, and checks that the cluster is healthy and making
  // progress again within the settle time (liveness anomalies otherwise). A node whose disk
  // is filled must also hand all its partitions over while it is held (for at least 5 s).
  void Apply(const FaultStep& step);
  // Stops the workload, heals everything, restarts stopped nodes, waits for convergence and
  // runs the final check.
  ChaosSummary Finish();
  // Lets the workload run for `ms` with no fault.
  void Run(int64_t ms);
  // Rolling restart: each node in turn is stopped with SIGTERM (it must exit 0), started
  // again, and waited for until it serves its share of partitions again (caught up and
  // rebalanced back), within timeout_ms per node (a liveness anomaly otherwise).
  void RollingRestart(int64_t timeout_ms);

 private:
  double ElapsedS() const;
  void Log(const std::string& line) const;
  int ResolveNode(int node);
  void Inject(const FaultStep& step, int node, int other);
  void Recover(const FaultStep& step, int node, int other);
  void CheckProgress(const std::string& when, int64_t within_ms);
  void ReapCrashes();
  bool ServesItsShare(int node) const;
  // Waits up to `within_ms` until `node`'s /health says it owns no partition; how long
  // that took, or -1.
  int64_t WaitOwnsNothing(int node, int64_t within_ms) const;
  void FinalCheck();

  ChaosOptions options_;
  std::unique_ptr<RealCluster> cluster_;
  std::unique_ptr<Workload> workload_;
  const std::chrono::steady_clock::time_point started_;
  std::map<std::string, uint64_t> faults_;
};

}  // namespace unimeter::chaos

#endif  // UNIMETER_TESTS_CHAOS_CHAOS_RUN_H_
