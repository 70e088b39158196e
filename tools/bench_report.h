// tools/bench_report.h
//
// What unimeter-bench and pg-bench share, so that their runs are shaped and reported alike
// and compare line by line: the measured window, per-worker results, the worker runner, and
// the two printed forms of a run (a text summary and one JSON object).
//
//   std::vector<WorkerResult> ingest, queries;
//   RunWorkers(window, workers, query_workers, ingest_fn, query_fn, &ingest, &queries);
//   std::cout << ReportJson(shape, MergeAll(ingest), MergeAll(queries)) << "\n";
//
// Workers record only requests that complete inside [measure_begin, measure_end).
#ifndef UNIMETER_TOOLS_BENCH_REPORT_H_
#define UNIMETER_TOOLS_BENCH_REPORT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/histogram.h"

namespace unimeter::tools {

using BenchClock = std::chrono::steady_clock;

// Shared run state: the measured window and the stop flag.
struct Run {
  std::atomic<bool> stop{false};
  BenchClock::time_point measure_begin{};
  BenchClock::time_point measure_end{};
};

struct WorkerResult {
  LatencyHistogram latency_ns;
  uint64_t events_ok = 0;
  uint64_t requests_ok = 0;
  std::map<std::string, uint64_t> errors;  // By status code name.
};

WorkerResult MergeAll(const std::vector<WorkerResult>& results);

// Counts one finished request if it completed (now) inside the measured window: its latency
// and `events` when `status` is OK, its status code otherwise.
void RecordOutcome(const Run& run, BenchClock::time_point sent, const absl::Status& status,
                   uint64_t events, WorkerResult* result);

// Wall-clock nanoseconds since the Unix epoch (client timestamps, calendar-month ranges).
int64_t WallNs();

// The run's parameters as reported.
struct BenchShape {
  std::string system;  // "unimeter" or "postgresql".
  int64_t workers = 0;
  int64_t batch = 0;
  int64_t accounts = 0;
  int64_t metrics = 0;
  bool sync = true;
  int64_t pipeline = 1;
  int64_t duration_s = 0;
  int64_t warmup_s = 0;
  int64_t query_workers = 0;
  bool client_timestamps = true;
};

using WorkerFunction = std::function<void(int worker, const Run& run, WorkerResult* result)>;

// Starts `workers` ingest and `query_workers` query threads, lets them run through warm-up
// and the measured window, stops and joins them. Results are resized to the thread counts.
void RunWorkers(int64_t warmup_s, int64_t duration_s, int64_t workers, int64_t query_workers,
                const WorkerFunction& ingest_worker, const WorkerFunction& query_worker,
                std::vector<WorkerResult>* ingest, std::vector<WorkerResult>* queries);

// One JSON object: {"system", "config", "ingest", "query"} (docs/benchmarks.md).
std::string ReportJson(const BenchShape& shape, const WorkerResult& ingest,
                       const WorkerResult& query);
// The text summary, first line headed by `program`.
std::string ReportText(const std::string& program, const BenchShape& shape,
                       const WorkerResult& ingest, const WorkerResult& query);

}  // namespace unimeter::tools

#endif  // UNIMETER_TOOLS_BENCH_REPORT_H_
