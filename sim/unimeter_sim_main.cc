// unimeter-sim: runs simulator seeds against the real server code.
//
//   unimeter-sim --seed=N [--duration-s=30] [--verbose]
//   unimeter-sim --seeds=A..B [--check-determinism]
//
// Today's scenario (sim/single_node_workload.h): one node under seeded crashes and restarts,
// clients ingesting synchronously and resending unknown outcomes; invariants S1-S3. Prints
// one line per seed; on a failure, the violated invariant and the command that replays it.
// Exit status 1 if any seed failed.
#include <chrono>
#include <cstdio>
#include <string>

#include "node/base/flags.h"
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

}  // namespace

int main(int argc, char** argv) {
  int64_t seed = -1;
  std::string seeds;
  int64_t duration_s = 30;
  bool verbose = false;
  bool check_determinism = false;
  unimeter::FlagParser flags("unimeter-sim", "unimeter-sim --seed=N | --seeds=A..B [flags]");
  flags.AddInt("seed", &seed, "run one seed", 0, INT64_MAX);
  flags.AddString("seeds", &seeds, "run seeds A..B (inclusive)");
  flags.AddInt("duration-s", &duration_s, "simulated seconds of faults per seed", 1, 86400);
  flags.AddBool("verbose", &verbose, "print every node log line (replay)");
  flags.AddBool("check-determinism", &check_determinism, "run each seed twice, compare digests");
  if (!flags.Parse(argc, argv).ok() || flags.help_requested() || (seed < 0 && seeds.empty())) {
    std::fprintf(stderr, "%s", flags.Help().c_str());
    return 2;
  }
  uint64_t first = static_cast<uint64_t>(seed);
  uint64_t last = first;
  if (!seeds.empty() && !ParseRange(seeds, &first, &last)) {
    std::fprintf(stderr, "unimeter-sim: --seeds must look like 1..100\n");
    return 2;
  }
  unimeter::sim::SingleNodeRunOptions options;
  options.duration_ns = duration_s * 1'000'000'000;
  options.verbose = verbose;
  int failures = 0;
  int64_t simulated_ns = 0;
  const auto started = std::chrono::steady_clock::now();  // determinism-ok: speed report only
  for (uint64_t s = first; s <= last; ++s) {
    const unimeter::sim::SingleNodeRunResult result = unimeter::sim::RunSingleNodeSeed(s, options);
    simulated_ns += result.simulated_ns;
    bool ok = result.ok;
    std::string failure = result.failure;
    if (ok && check_determinism) {
      const unimeter::sim::SingleNodeRunResult again = unimeter::sim::RunSingleNodeSeed(s, options);
      if (again.digest != result.digest) {
        ok = false;
        failure = "determinism: the same seed gave two different trace digests";
      }
    }
    std::printf(
        "seed=%llu digest=%016llx crashes=%llu torn=%llu requests=%llu acked_events=%llu %s\n",
        static_cast<unsigned long long>(s), static_cast<unsigned long long>(result.digest),
        static_cast<unsigned long long>(result.crashes),
        static_cast<unsigned long long>(result.torn_writes),
        static_cast<unsigned long long>(result.requests),
        static_cast<unsigned long long>(result.events_acknowledged), ok ? "ok" : "FAILED");
    if (!ok) {
      ++failures;
      std::printf(
          "  violated: %s\n  replay: bazel run //sim:unimeter-sim -- --seed=%llu "
          "--duration-s=%lld --verbose\n",
          failure.c_str(), static_cast<unsigned long long>(s), static_cast<long long>(duration_s));
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
