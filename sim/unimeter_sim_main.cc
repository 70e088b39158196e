// unimeter-sim: runs simulator seeds against the real server code.
//
//   unimeter-sim --seed=N [--nodes=3] [--duration-s=30] [--mode=recoverable] [--replay]
//   unimeter-sim --seeds=A..B [--nodes=3] [--check-determinism]
//
// Modes (clusters): recoverable (faults within the atlas, every check, then everything heals
// and must recover), liveness (the same faults, then a majority core heals while the
// minority's faults become permanent; the core alone must recover within the L bounds),
// unrestricted (any number of nodes disturbed; safety only, halting reported), performance
// (no faults; cost per acknowledged event).
//
// Scenarios: --nodes=1 runs sim/single_node_workload.h (one node under crashes and
// restarts; S1-S3); --nodes=3..7 runs sim/cluster_workload.h (a replicated cluster under
// crashes, wiped disks, splits, loss and duplication; S1-S3, S5, L1). Clients ingest
// synchronously and resend unknown outcomes. Prints the fault mix and one line per seed; on
// a failure, the violated invariant and the command that replays it. Exit status 1 if any
// seed failed.
//
// The planted-bug build (//sim:unimeter-sim-planted, node/base/planted_bugs.h) also takes
// --plant=NAME, one deliberate bug to run with, and --plant=list; other builds refuse it.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "node/base/flags.h"
#include "node/base/planted_bugs.h"
#include "sim/cluster_workload.h"
#include "sim/single_node_workload.h"

namespace {

bool ParseRange(const std::string& text, uint64_t* first, uint64_t* last) {
  const size_t dots = text.find("..");
  if (dots == std::string::npos) {
    return false;
  }
  try {
    *first = std::stoull(text.substr(0, dots));
    *last = std::stoull(text.substr(dots + 2));
  } catch (...) {  // determinism-ok: command-line parsing, rethrow not needed
    return false;
  }
  return *first <= *last;
}

// One seed's outcome, whichever scenario ran it.
struct SeedResult {
  bool ok = true;
  std::string failure;
  std::string summary;  // Counters worth printing.
  uint64_t digest = 0;
  int64_t simulated_ns = 0;
};

struct RunFlags {
  int64_t nodes = 3;
  int64_t duration_s = 30;
  bool verbose = false;
  unimeter::sim::RunMode mode = unimeter::sim::RunMode::kRecoverable;
  int64_t clients = 3;  // Clusters: 0 measures an idle cluster.
};

std::optional<unimeter::sim::RunMode> ParseMode(const std::string& text) {
  if (text == "recoverable") return unimeter::sim::RunMode::kRecoverable;
  if (text == "unrestricted") return unimeter::sim::RunMode::kUnrestricted;
  if (text == "liveness") return unimeter::sim::RunMode::kLiveness;
  if (text == "performance") return unimeter::sim::RunMode::kPerformance;
  return std::nullopt;
}

// Performance mode's report: what one acknowledged event cost.
std::string PerEventCosts(const unimeter::sim::ClusterRunResult& result) {
  if (result.events_acknowledged == 0) return " (no events acknowledged)";
  const double events = static_cast<double>(result.events_acknowledged);
  char text[160];
  std::snprintf(text, sizeof(text),
                " per acked event: %.3f messages, %.1f message bytes, %.4f fsyncs",
                static_cast<double>(result.messages_sent) / events,
                static_cast<double>(result.message_bytes_sent) / events,
                static_cast<double>(result.fsyncs) / events);
  return text;
}

SeedResult RunSeed(uint64_t seed, const RunFlags& flags) {
  SeedResult out;
  if (flags.nodes == 1) {
    unimeter::sim::SingleNodeRunOptions options;
    options.duration_ns = flags.duration_s * 1'000'000'000;
    options.verbose = flags.verbose;
    const unimeter::sim::SingleNodeRunResult result =
        unimeter::sim::RunSingleNodeSeed(seed, options);
    out = {result.ok, result.failure,
           "crashes=" + std::to_string(result.crashes) +
               " torn=" + std::to_string(result.torn_writes) +
               " overload_bursts=" + std::to_string(result.overload_bursts) +
               " backpressure=" + std::to_string(result.backpressure) +
               " requests=" + std::to_string(result.requests) +
               " acked_events=" + std::to_string(result.events_acknowledged),
           result.digest, result.simulated_ns};
    return out;
  }
  unimeter::sim::ClusterRunOptions options;
  options.mode = flags.mode;
  options.nodes = static_cast<uint32_t>(flags.nodes);
  options.duration_ns = flags.duration_s * 1'000'000'000;
  options.verbose = flags.verbose;
  options.clients = static_cast<uint32_t>(flags.clients);
  const unimeter::sim::ClusterRunResult result = unimeter::sim::RunClusterSeed(seed, options);
  out = {result.ok, result.failure,
         "crashes=" + std::to_string(result.crashes) + " wipes=" + std::to_string(result.wipes) +
             " graceful_stops=" + std::to_string(result.graceful_stops) + " splits=" +
             std::to_string(result.splits) + " bridges=" + std::to_string(result.bridges) +
             " corruptions=" + std::to_string(result.corruptions) +
             " refused_starts=" + std::to_string(result.refused_starts) +
             " read_errors=" + std::to_string(result.read_errors) +
             " read_corruptions=" + std::to_string(result.read_corruptions) +
             " wrong_disks=" + std::to_string(result.wrong_disks) +
             " old_backups=" + std::to_string(result.old_backups) +
             " corrupted_messages=" + std::to_string(result.messages_corrupted) + " pauses=" +
             std::to_string(result.pauses) + " clock_steps=" + std::to_string(result.clock_steps) +
             " slow_disks=" + std::to_string(result.slow_disks) +
             " fsync_errors=" + std::to_string(result.fsync_errors) +
             " disk_full=" + std::to_string(result.disk_full) +
             " clogs=" + std::to_string(result.clogs) + " resets=" + std::to_string(result.resets) +
             " fail_stops=" + std::to_string(result.fail_stops) +
             " client_crashes=" + std::to_string(result.client_crashes) +
             " overload_bursts=" + std::to_string(result.overload_bursts) +
             " backpressure=" + std::to_string(result.backpressure) +
             " redirects=" + std::to_string(result.redirects) +
             " reads_checked=" + std::to_string(result.reads_checked) +
             " reads_leased=" + std::to_string(result.reads_leased) +
             " parts_combined=" + std::to_string(result.parts_combined) +
             " requests=" + std::to_string(result.requests) + " acked_events=" +
             std::to_string(result.events_acknowledged) + (result.halted ? " HALTED" : "") +
             (result.core_recovery_ns >= 0
                  ? " core_recovery_ms=" + std::to_string(result.core_recovery_ns / 1'000'000)
                  : "") +
             (flags.mode == unimeter::sim::RunMode::kPerformance ? PerEventCosts(result)
                                                                 : " [" + result.knobs + "]"),
         result.digest, result.simulated_ns};
  return out;
}

// Applies --plant. Returns the exit status if the program should stop here (the list was
// printed, or the flag is wrong), nothing to go on and run seeds.
std::optional<int> PlantFromFlag(const std::string& plant) {
  if (plant.empty()) return std::nullopt;
#ifdef UNIMETER_PLANTED_BUGS
  if (plant == "list") {
    for (const unimeter::PlantedBugInfo& info : unimeter::PlantedBugs()) {
      std::printf("%.*s %u\n", static_cast<int>(info.name.size()), info.name.data(), info.nodes);
    }
    return 0;
  }
  const std::optional<unimeter::PlantedBug> bug = unimeter::PlantedBugByName(plant);
  if (!bug.has_value()) {
    std::fprintf(stderr, "unimeter-sim: no planted bug named '%s' (see --plant=list)\n",
                 plant.c_str());
    return 2;
  }
  unimeter::PlantBug(*bug);
  return std::nullopt;
#else
  std::fprintf(stderr,
               "unimeter-sim: --plant needs the planted-bug build: bazel run "
               "//sim:unimeter-sim-planted -- --plant=%s ...\n",
               plant.c_str());
  return 2;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  int64_t seed = -1;
  std::string seeds;
  RunFlags run;
  bool replay = false;
  std::string mode = "recoverable";
  bool check_determinism = false;
  std::string plant;
  unimeter::FlagParser flags("unimeter-sim", "unimeter-sim --seed=N | --seeds=A..B [flags]");
  flags.AddInt("seed", &seed, "run one seed", 0, INT64_MAX);
  flags.AddString("seeds", &seeds, "run seeds A..B (inclusive)");
  flags.AddInt("duration-s", &run.duration_s, "simulated seconds of faults per seed", 1, 86400);
  flags.AddInt("nodes", &run.nodes, "1 (single node) or 3..7 (a cluster)", 1, 7);
  flags.AddInt("clients", &run.clients, "simulated clients of a cluster (0: idle)", 0, 16);
  flags.AddString("mode", &mode,
                  "recoverable (default), liveness, unrestricted or performance (clusters)");
  flags.AddBool("verbose", &run.verbose, "print every node log line");
  flags.AddBool("replay", &replay, "the same as --verbose: replay a seed with full logs");
  flags.AddBool("check-determinism", &check_determinism, "run each seed twice, compare digests");
  flags.AddString("plant", &plant, "planted-bug build only: the deliberate bug to run with");
  if (!flags.Parse(argc, argv).ok() || flags.help_requested() ||
      (seed < 0 && seeds.empty() && plant != "list") || run.nodes == 2) {
    std::fprintf(stderr, "%s", flags.Help().c_str());
    return 2;
  }
  run.verbose = run.verbose || replay;
  if (const std::optional<unimeter::sim::RunMode> parsed = ParseMode(mode); !parsed.has_value()) {
    std::fprintf(
        stderr,
        "unimeter-sim: --mode must be recoverable, liveness, unrestricted or performance\n");
    return 2;
  } else if (*parsed != unimeter::sim::RunMode::kRecoverable && run.nodes == 1) {
    std::fprintf(stderr, "unimeter-sim: --mode=%s needs a cluster (--nodes=3..7)\n", mode.c_str());
    return 2;
  } else {
    run.mode = *parsed;
  }
  if (const std::optional<int> exit_status = PlantFromFlag(plant); exit_status.has_value()) {
    return *exit_status;
  }
  uint64_t first = static_cast<uint64_t>(seed);
  uint64_t last = first;
  if (!seeds.empty() && !ParseRange(seeds, &first, &last)) {
    std::fprintf(stderr, "unimeter-sim: --seeds must look like 1..100\n");
    return 2;
  }
  int failures = 0;
  int64_t simulated_ns = 0;
  const auto started = std::chrono::steady_clock::now();  // determinism-ok: speed report only
  for (uint64_t s = first; s <= last; ++s) {
    const SeedResult result = RunSeed(s, run);
    simulated_ns += result.simulated_ns;
    bool ok = result.ok;
    std::string failure = result.failure;
    if (ok && check_determinism) {
      const SeedResult again =
          RunSeed(s, RunFlags{run.nodes, run.duration_s, false, run.mode, run.clients});
      if (again.digest != result.digest) {
        ok = false;
        failure = "determinism: the same seed gave two different trace digests";
      }
    }
    std::printf("seed=%llu nodes=%lld digest=%016llx %s %s\n", static_cast<unsigned long long>(s),
                static_cast<long long>(run.nodes), static_cast<unsigned long long>(result.digest),
                result.summary.c_str(), ok ? "ok" : "FAILED");
    std::fflush(stdout);
    if (!ok) {
      ++failures;
      const std::string extra =
          (plant.empty() ? std::string() : " --plant=" + plant) +
          (run.mode == unimeter::sim::RunMode::kRecoverable ? std::string() : " --mode=" + mode);
      std::printf(
          "  violated: %s\n  replay: bazel run //sim:unimeter-sim%s -- --seed=%llu --nodes=%lld "
          "--duration-s=%lld%s --replay\n",
          failure.c_str(), plant.empty() ? "" : "-planted", static_cast<unsigned long long>(s),
          static_cast<long long>(run.nodes), static_cast<long long>(run.duration_s), extra.c_str());
    }
  }
  const auto finished = std::chrono::steady_clock::now();  // determinism-ok: speed report only
  const double wall_s = std::chrono::duration<double>(finished - started).count();
  std::printf("%llu seeds, %d failed; %.0f simulated s in %.1f wall s (%.0fx)\n",
              static_cast<unsigned long long>(last - first + 1), failures,
              static_cast<double>(simulated_ns) / 1e9, wall_s,
              static_cast<double>(simulated_ns) / 1e9 / wall_s);
  return failures == 0 ? 0 : 1;
}
