#include "tools/bench_report.h"

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tools/cli_args.h"

namespace unimeter::tools {
namespace {

std::string Micros(uint64_t ns) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f", static_cast<double>(ns) / 1000.0);
  return buffer;
}

std::string LatencyJson(const LatencyHistogram& h) {
  return absl::StrCat(
      "{\"count\":", h.count(), ",\"min_us\":", Micros(h.min()),
      ",\"mean_us\":", Micros(static_cast<uint64_t>(h.mean())),
      ",\"p50_us\":", Micros(h.Percentile(0.50)), ",\"p90_us\":", Micros(h.Percentile(0.90)),
      ",\"p99_us\":", Micros(h.Percentile(0.99)), ",\"p999_us\":", Micros(h.Percentile(0.999)),
      ",\"max_us\":", Micros(h.max()), "}");
}

std::string LatencyText(const LatencyHistogram& h) {
  return absl::StrCat("p50 ", Micros(h.Percentile(0.50)), " us, p90 ", Micros(h.Percentile(0.90)),
                      " us, p99 ", Micros(h.Percentile(0.99)), " us, p99.9 ",
                      Micros(h.Percentile(0.999)), " us, max ", Micros(h.max()), " us (", h.count(),
                      " requests)");
}

std::string ErrorsJson(const WorkerResult& r) {
  std::string out;
  for (const auto& [code, count] : r.errors) {
    absl::StrAppend(&out, out.empty() ? "" : ",", JsonString(code), ":", count);
  }
  return absl::StrCat("{", out, "}");
}

uint64_t PerSecond(uint64_t count, const BenchShape& shape) {
  return static_cast<uint64_t>(static_cast<double>(count) / static_cast<double>(shape.duration_s));
}

}  // namespace

WorkerResult MergeAll(const std::vector<WorkerResult>& results) {
  WorkerResult total;
  for (const WorkerResult& r : results) {
    total.latency_ns.Merge(r.latency_ns);
    total.events_ok += r.events_ok;
    total.requests_ok += r.requests_ok;
    for (const auto& [code, count] : r.errors) total.errors[code] += count;
  }
  return total;
}

void RecordOutcome(const Run& run, BenchClock::time_point sent, const absl::Status& status,
                   uint64_t events, WorkerResult* result) {
  const BenchClock::time_point done = BenchClock::now();
  if (done < run.measure_begin || done > run.measure_end) return;
  if (!status.ok()) {
    ++result->errors[absl::StatusCodeToString(status.code())];
    return;
  }
  result->latency_ns.Record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(done - sent).count()));
  result->events_ok += events;
  ++result->requests_ok;
}

int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RunWorkers(int64_t warmup_s, int64_t duration_s, int64_t workers, int64_t query_workers,
                const WorkerFunction& ingest_worker, const WorkerFunction& query_worker,
                std::vector<WorkerResult>* ingest, std::vector<WorkerResult>* queries) {
  Run run;
  run.measure_begin = BenchClock::now() + std::chrono::seconds(warmup_s);
  run.measure_end = run.measure_begin + std::chrono::seconds(duration_s);
  ingest->resize(static_cast<size_t>(workers));
  queries->resize(static_cast<size_t>(query_workers));
  std::vector<std::thread> threads;
  for (int64_t i = 0; i < workers; ++i) {
    threads.emplace_back(ingest_worker, static_cast<int>(i), std::cref(run),
                         &(*ingest)[static_cast<size_t>(i)]);
  }
  for (int64_t i = 0; i < query_workers; ++i) {
    threads.emplace_back(query_worker, static_cast<int>(i), std::cref(run),
                         &(*queries)[static_cast<size_t>(i)]);
  }
  std::this_thread::sleep_until(run.measure_end);
  run.stop = true;
  for (std::thread& thread : threads) thread.join();
}

std::string ReportJson(const BenchShape& shape, const WorkerResult& ingest,
                       const WorkerResult& query) {
  return absl::StrCat(
      "{\"system\":", JsonString(shape.system), ",\"config\":{\"workers\":", shape.workers,
      ",\"batch\":", shape.batch, ",\"accounts\":", shape.accounts, ",\"metrics\":", shape.metrics,
      ",\"mode\":\"", shape.sync ? "sync" : "async", "\",\"pipeline\":", shape.pipeline,
      ",\"duration_s\":", shape.duration_s, ",\"warmup_s\":", shape.warmup_s,
      ",\"query_workers\":", shape.query_workers, ",\"timestamps\":\"",
      shape.client_timestamps ? "client" : "server", "\"},",
      "\"ingest\":{\"events\":", ingest.events_ok, ",\"requests\":", ingest.requests_ok,
      ",\"events_per_s\":", PerSecond(ingest.events_ok, shape),
      ",\"requests_per_s\":", PerSecond(ingest.requests_ok, shape),
      ",\"latency\":", LatencyJson(ingest.latency_ns), ",\"errors\":", ErrorsJson(ingest), "},",
      "\"query\":{\"requests\":", query.requests_ok,
      ",\"requests_per_s\":", PerSecond(query.requests_ok, shape),
      ",\"latency\":", LatencyJson(query.latency_ns), ",\"errors\":", ErrorsJson(query), "}}");
}

std::string ReportText(const std::string& program, const BenchShape& shape,
                       const WorkerResult& ingest, const WorkerResult& query) {
  std::string text =
      absl::StrCat(program, ": ", shape.workers, " workers x batch ", shape.batch, ", mode ",
                   shape.sync ? "sync" : "async", ", pipeline ", shape.pipeline, ", ",
                   shape.duration_s, " s measured after ", shape.warmup_s, " s warm-up\n",
                   "ingest: ", PerSecond(ingest.events_ok, shape), " events/s, ",
                   PerSecond(ingest.requests_ok, shape), " requests/s\n",
                   "ingest latency: ", LatencyText(ingest.latency_ns), "\n");
  for (const auto& [code, count] : ingest.errors) {
    absl::StrAppend(&text, "ingest errors ", code, ": ", count, "\n");
  }
  if (shape.query_workers > 0) {
    absl::StrAppend(&text, "query latency: ", LatencyText(query.latency_ns), "\n");
    for (const auto& [code, count] : query.errors) {
      absl::StrAppend(&text, "query errors ", code, ": ", count, "\n");
    }
  }
  return text;
}

}  // namespace unimeter::tools
