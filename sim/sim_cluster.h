// sim/sim_cluster.h
//
// SimCluster hosts N simulated nodes, each running a NodeService built by a factory over
// its own SimEnv, plus simulated clients, on one Simulator and one SimNetwork. It owns
// every node's SimDisk (which survives crashes) and models the lifecycle:
//
//   Crash(n)    destroys the incarnation at once: fibers unwound, service destroyed, every
//               pending event of the incarnation dropped, unsynced writes lost.
//   Restart(n)  builds a fresh incarnation from the node's disk only and calls Start().
//   WipeDisk(n) loses the node's disk (a replaced disk). REQUIRES: the node is down.
//   Pause(n)    stops the process (SIGSTOP) until Resume(n): its timers, disk completions
//               and messages wait and then run late, all at once.
//
// Seeds: every subsystem draws from SubSeed(run seed, tag), so a new draw in one does
// not reshuffle the others (tags in sim_cluster.cc).
#ifndef UNIMETER_SIM_SIM_CLUSTER_H_
#define UNIMETER_SIM_SIM_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "node/env/node_service.h"
#include "sim/sim_disk.h"
#include "sim/sim_env.h"
#include "sim/sim_network.h"
#include "sim/simulator.h"

namespace unimeter::sim {

struct ClusterOptions {
  uint32_t node_count = 3;
  NetworkOptions network;
  DiskOptions disk;
  int64_t clock_offset_ns_max = 10'000'000;  // Each node's wall clock error, drawn per node.
  int64_t drift_ppm_max = 100;
  // When > 0, each node's wall-clock readings get noise of up to a per-node amount drawn
  // in [0, wall_noise_ns_max] (ClockOptions::wall_noise_ns).
  int64_t wall_noise_ns_max = 0;
  LogSink log_sink;  // Optional; receives every log line.
};

class SimCluster {
 public:
  static constexpr NodeId kClientIdBase = 1000;

  SimCluster(uint64_t seed, ClusterOptions options, NodeServiceFactory factory);
  ~SimCluster();

  Simulator& simulator() { return simulator_; }
  SimNetwork& network() { return network_; }
  uint32_t node_count() const { return static_cast<uint32_t>(nodes_.size()); }

  // Starts every node that is down; returns the first start error (that node stays down).
  absl::Status StartAll();
  void Crash(NodeId node);
  // The node's process exits on its own (after a graceful shutdown): like Crash, but every
  // write it made reaches the disk (the page cache outlives the process). Not a crash.
  void Exit(NodeId node);
  // Returns Start()'s status; on error the node stays down.
  absl::Status Restart(NodeId node);
  void WipeDisk(NodeId node);
  // The node's disk becomes a copy of `other`'s durable image (F21: an operator mixed up
  // data directories). REQUIRES: the node is down.
  void CopyDisk(NodeId node, NodeId other);
  // Stops the node's process (SIGSTOP) until Resume (SIGCONT); see Simulator::Pause.
  // REQUIRES: is_up(node) for Pause. A crash resumes (and loses) what was held.
  void Pause(NodeId node);
  void Resume(NodeId node);
  bool is_paused(NodeId node) const { return simulator_.IsPaused(node); }
  // Steps the node's wall clock (an NTP step or an operator's `date`): the monotonic clock
  // is unaffected. Kept across restarts.
  void StepWallClock(NodeId node, int64_t delta_ns);

  bool is_up(NodeId node) const { return nodes_.at(node).service != nullptr; }
  uint64_t incarnation(NodeId node) const { return nodes_.at(node).incarnation; }
  // REQUIRES: is_up(node).
  NodeService& service(NodeId node) { return *nodes_.at(node).service; }
  SimEnv& env(NodeId node) { return *nodes_.at(node).env; }
  SimDisk& disk(NodeId node) { return *nodes_.at(node).disk; }

  // A simulated client process (no disk), addressed as node kClientIdBase + index.
  SimEnv& AddClient();

  uint64_t crashes() const { return crashes_; }
  uint64_t restarts() const { return restarts_; }
  uint64_t exits() const { return exits_; }
  // Crashes a node did to itself (Env::FailStop: an fsync error, a failed log write).
  uint64_t fail_stops() const { return fail_stops_; }

 private:
  // Ends the node's incarnation (the host destroys the service without warning).
  void TearDown(NodeId node);

  struct NodeSlot {
    std::unique_ptr<SimDisk> disk;
    std::unique_ptr<SimEnv> env;
    std::unique_ptr<NodeService> service;
    uint64_t incarnation = 0;
    ClockOptions clock;
  };

  const uint64_t seed_;
  ClusterOptions options_;
  NodeServiceFactory factory_;
  Simulator simulator_;
  SimNetwork network_;
  std::vector<NodeSlot> nodes_;
  std::vector<std::unique_ptr<SimEnv>> clients_;
  uint64_t crashes_ = 0;
  uint64_t restarts_ = 0;
  uint64_t exits_ = 0;
  uint64_t fail_stops_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SIM_CLUSTER_H_
