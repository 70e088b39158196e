// tests/chaos/chaos_main.cc
//
// tools/chaos: random fault schedules over a real cluster for as long as asked, then the
// history check; prints the faults, operations and anomalies and exits 1 on any anomaly.
//
//   chaos_main --unimeter=bazel-bin/node/unimeter --minutes=10 [--nodes=3] [--seed=N]
//              [--loopback] [--no-disks] [--work-dir=/tmp/chaos]
//
// Network faults (one namespace per node) and disk images need root; --loopback and
// --no-disks run without them. The seed fixes the schedule (not the timing of real
// processes, so a failure is reproduced by the schedule, not byte for byte).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "node/base/flags.h"
#include "tests/chaos/chaos_run.h"

namespace unimeter::chaos {
namespace {

// SIGINT/SIGTERM end the schedule early; the run still heals, checks and cleans up.
std::atomic<bool> interrupted{false};
void OnSignal(int) { interrupted = true; }

int Main(int argc, char** argv) {
  std::string binary = "bazel-bin/node/unimeter";
  std::string work_dir = absl::StrCat("/tmp/unimeter-chaos-", getpid());
  int64_t minutes = 5;
  int64_t nodes = 3;
  int64_t seed = static_cast<int64_t>(std::random_device{}() & 0x7fffffff);
  bool loopback = false;
  bool no_disks = false;
  FlagParser flags("chaos", "Random fault schedules over a real unimeter cluster.");
  flags.AddString("unimeter", &binary, "path of the unimeter binary");
  flags.AddString("work-dir", &work_dir, "where data directories and logs go");
  flags.AddInt("minutes", &minutes, "how long to inject faults", 1, 10'000);
  flags.AddInt("nodes", &nodes, "cluster size", 3, 7);
  flags.AddInt("seed", &seed, "schedule seed", 0, INT64_MAX);
  flags.AddBool("loopback", &loopback, "no network namespaces (no network faults)");
  flags.AddBool("no-disks", &no_disks, "no disk images (no full disks)");
  if (absl::Status parsed = flags.Parse(argc, argv); !parsed.ok()) {
    std::fprintf(stderr, "chaos: %s\n", std::string(parsed.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  ChaosOptions options;
  options.cluster.nodes = static_cast<int>(nodes);
  options.cluster.binary = binary;
  options.cluster.work_dir = work_dir;
  options.cluster.layout = loopback ? NetworkLayout::kLoopback : NetworkLayout::kNamespaces;
  options.cluster.disk_image_mb = no_disks ? 0 : 1024;
  options.workload.random_seed = static_cast<uint64_t>(seed);
  options.workload.metrics = static_cast<int>(std::min<int64_t>(16 + minutes * 12, 2000));
  std::printf("chaos: seed %lld, %lld minutes, %lld nodes, logs in %s\n",
              static_cast<long long>(seed), static_cast<long long>(minutes),
              static_cast<long long>(nodes), work_dir.c_str());
  ChaosRun run(options);
  if (absl::Status set_up = run.SetUp(); !set_up.ok()) {
    std::fprintf(stderr, "chaos: set-up failed: %s\n", set_up.ToString().c_str());
    return 2;
  }
  std::mt19937_64 random(static_cast<uint64_t>(seed));
  const auto end = std::chrono::steady_clock::now() + std::chrono::minutes(minutes);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  while (std::chrono::steady_clock::now() < end && !interrupted) {
    run.Apply(RandomStep(run.capabilities(), &random));
  }
  const ChaosSummary summary = run.Finish();
  std::printf("%s", summary.ToString().c_str());
  std::printf("chaos: seed %lld: %s\n", static_cast<long long>(seed),
              summary.anomalies.empty() ? "no anomalies" : "ANOMALIES FOUND");
  return summary.anomalies.empty() ? 0 : 1;
}

}  // namespace
}  // namespace unimeter::chaos

int main(int argc, char** argv) { return unimeter::chaos::Main(argc, argv); }
