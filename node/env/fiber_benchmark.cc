// Cost of one fiber switch pair (suspend + resume) and of spawning a short fiber.
#include <benchmark/benchmark.h>

#include "node/env/fiber.h"

namespace unimeter {
namespace {

// Baseline: what the callback style costs instead of a fiber switch pair: storing a
// continuation in an AnyInvocable and calling it.
void BM_CallbackDispatchBaseline(benchmark::State& state) {
  uint64_t calls = 0;
  absl::AnyInvocable<void()> continuation;
  for (auto _ : state) {
    continuation = [&calls] { ++calls; };
    benchmark::DoNotOptimize(continuation);
    continuation();
  }
  benchmark::DoNotOptimize(calls);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CallbackDispatchBaseline);

void BM_FiberSuspendResume(benchmark::State& state) {
  FiberScheduler scheduler;
  bool stop = false;
  const FiberId id = scheduler.Spawn("ping", [&] {
    while (!stop) {
      scheduler.Suspend();
    }
  });
  scheduler.RunReady();
  for (auto _ : state) {
    scheduler.Wake(id);
    scheduler.RunReady();
  }
  stop = true;
  scheduler.Wake(id);
  scheduler.RunReady();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FiberSuspendResume);

void BM_FiberSpawnAndFinish(benchmark::State& state) {
  FiberScheduler scheduler;
  uint64_t runs = 0;
  for (auto _ : state) {
    scheduler.Spawn("short", [&] { ++runs; });
    scheduler.RunReady();
  }
  benchmark::DoNotOptimize(runs);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FiberSpawnAndFinish);

}  // namespace
}  // namespace unimeter
