// sim/single_node_workload.h
//
// A seeded workload and checker that drive the real NodeServer (node/server) as a single
// node inside the simulator: simulated clients send INGEST_SYNC batches of events with
// client timestamps over the binary protocol, while a fault schedule crashes and restarts
// the node. Clients resend every request whose outcome they did not learn (the server
// deduplicates client-timestamped events), as the SDKs allow.
//
// Checked (simulation.md section 6, for one node):
//   S1  no acknowledged event lost: after every restart and at the end, each account's SUM
//       is at least the number of its acknowledged events;
//   S2  no double counting: it never exceeds the number of distinct events sent;
//   S3  no invention: at quiescence, once every event was acknowledged, each SUM equals the
//       number of distinct events of the account exactly.
// A run is a pure function of its seed; RunSingleNodeSeed returns the trace digest.
#ifndef UNIMETER_SIM_SINGLE_NODE_WORKLOAD_H_
#define UNIMETER_SIM_SINGLE_NODE_WORKLOAD_H_

#include <cstdint>
#include <string>

namespace unimeter::sim {

struct SingleNodeRunOptions {
  int64_t duration_ns = 30'000'000'000;  // Simulated time with faults.
  uint32_t clients = 3;
  bool verbose = false;
};

struct SingleNodeRunResult {
  bool ok = true;
  std::string failure;  // The violated invariant with details, when !ok.
  uint64_t digest = 0;
  uint64_t events_acknowledged = 0;
  uint64_t crashes = 0;
  uint64_t torn_writes = 0;  // Crashes that left a torn write behind (F11).
  uint64_t requests = 0;
  uint64_t overload_bursts = 0;  // Episodes of extra clients flooding the node (F73).
  uint64_t backpressure = 0;     // BACKPRESSURE replies clients received.
  int64_t simulated_ns = 0;
};

SingleNodeRunResult RunSingleNodeSeed(uint64_t seed, const SingleNodeRunOptions& options);

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SINGLE_NODE_WORKLOAD_H_
