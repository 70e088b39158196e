// Simulator speed: raw heap events per second, and a 5-node Pinger cluster under message
// loss (events per second and simulated seconds per wall second, the time compression).
#include <benchmark/benchmark.h>

#include "node/demo/pinger.h"
#include "sim/sim_cluster.h"

namespace unimeter::sim {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

void BM_SimulatorEmptyEvents(benchmark::State& state) {
  Simulator simulator(1);
  uint64_t counter = 0;
  for (auto _ : state) {
    for (int i = 0; i < 1000; ++i) {
      simulator.Schedule(i % 17, EventOwner{}, EventKind::kTimer, 0, [&counter] { ++counter; });
    }
    while (simulator.Step()) {
    }
  }
  benchmark::DoNotOptimize(counter);
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_SimulatorEmptyEvents);

void BM_PingerClusterSimulatedSecond(benchmark::State& state) {
  const uint32_t node_count = static_cast<uint32_t>(state.range(0));
  ClusterOptions options;
  options.node_count = node_count;
  options.network.loss_ppm = 10'000;
  SimCluster cluster(7, options, [node_count](Env& env) {
    demo::PingerOptions pinger;
    for (NodeId peer = 0; peer < node_count; ++peer) {
      if (peer != env.node_id()) {
        pinger.peers.push_back(peer);
      }
    }
    pinger.commit_interval_ns = 1'000'000;  // Busy: 1,000 commits/s/node.
    return std::make_unique<demo::Pinger>(env, pinger);
  });
  if (!cluster.StartAll().ok()) {
    state.SkipWithError("start failed");
    return;
  }
  const uint64_t events_before = cluster.simulator().events_executed();
  int64_t simulated_ns = 0;
  for (auto _ : state) {
    cluster.simulator().RunUntil(cluster.simulator().now_ns() + kSecond);
    simulated_ns += kSecond;
  }
  const uint64_t events = cluster.simulator().events_executed() - events_before;
  state.SetItemsProcessed(static_cast<int64_t>(events));
  state.counters["simulated_s"] =
      benchmark::Counter(static_cast<double>(simulated_ns) / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PingerClusterSimulatedSecond)->Arg(3)->Arg(5)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace unimeter::sim
