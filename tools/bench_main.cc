// tools/bench_main.cc
//
// unimeter-bench: ingest load generator and latency meter for a Unimeter cluster.
//
//   unimeter-bench --seeds=127.0.0.1:7001 --workers=4 --batch=100 --accounts=10000
//                  --metrics=4 --mode=sync --duration=30 --warmup=5 [--query-workers=1]
//                  [--pipeline=1] [--timestamps=client|server] [--json]
//
// Registers M SUM metrics bench_0..bench_{M-1}, then runs N ingest workers, each with its own
// Client (own connections and I/O thread). --mode picks INGEST_SYNC (durable on a majority)
// or INGEST_ASYNC (accepted by the owner). Each worker keeps --pipeline requests in flight
// (1 = closed loop). Latency is measured per request (submit to reply) into a log-linear
// histogram (tools/histogram.h); only requests completing after the warm-up count. Query
// workers run USAGE_QUERY in a closed loop at the same time and are measured separately.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "tools/cli_args.h"
#include "tools/histogram.h"

namespace unimeter::tools {
namespace {

using Clock = std::chrono::steady_clock;

const char kHelp[] = R"(Usage: unimeter-bench [flags]
  --seeds=host:port,...      nodes (default 127.0.0.1:7001)
  --workers=N                ingest workers, one Client each (default 4)
  --batch=B                  events per request (default 100, 1..1024)
  --accounts=A               distinct account ids 0..A-1 (default 10000)
  --metrics=M                SUM metrics bench_0..bench_{M-1} (default 4)
  --mode=sync|async          INGEST_SYNC or INGEST_ASYNC (default sync)
  --pipeline=W               requests in flight per worker (default 1)
  --duration=S               measured seconds (default 30)
  --warmup=S                 unmeasured seconds first (default 5)
  --query-workers=Q          USAGE_QUERY workers running concurrently (default 0)
  --timestamps=client|server client timestamps (deduplicated, resendable) or 0 (default client)
  --timeout-ms=N             per-request deadline (default 10000)
  --json                     print one JSON object instead of the text summary
)";

struct Config {
  std::vector<std::string> seeds;
  int64_t workers = 4;
  int64_t batch = 100;
  int64_t accounts = 10'000;
  int64_t metrics = 4;
  bool sync = true;
  int64_t pipeline = 1;
  int64_t duration_s = 30;
  int64_t warmup_s = 5;
  int64_t query_workers = 0;
  bool client_timestamps = true;
  int64_t timeout_ms = 10'000;
  bool json = false;
};

absl::StatusOr<int64_t> IntFlag(const ParsedArgs& args, const std::string& name, int64_t fallback,
                                int64_t minimum, int64_t maximum) {
  std::optional<std::string> text = args.Get(name);
  if (!text.has_value()) {
    return fallback;
  }
  absl::StatusOr<int64_t> value = ParseI64(*text, "--" + name);
  if (!value.ok()) {
    return value.status();
  }
  if (*value < minimum || *value > maximum) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be in ", minimum, "..", maximum));
  }
  return *value;
}

absl::StatusOr<Config> ParseConfig(const ParsedArgs& args) {
  absl::Status allowed = args.CheckAllowed(
      {"seeds", "workers", "batch", "accounts", "metrics", "mode", "pipeline", "duration", "warmup",
       "query-workers", "timestamps", "timeout-ms", "json", "help"});
  if (!allowed.ok()) {
    return allowed;
  }
  if (!args.positional.empty()) {
    return absl::InvalidArgumentError("unexpected argument " + args.positional[0]);
  }
  Config config;
  const std::string seeds = args.Get("seeds").value_or("127.0.0.1:7001");
  for (size_t start = 0; start <= seeds.size();) {
    const size_t comma = seeds.find(',', start);
    const std::string seed =
        seeds.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!seed.empty()) {
      config.seeds.push_back(seed);
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  struct IntSpec {
    const char* name;
    int64_t* target;
    int64_t minimum;
    int64_t maximum;
  };
  const IntSpec specs[] = {
      {"workers", &config.workers, 1, 1024},
      {"batch", &config.batch, 1, 1024},
      {"accounts", &config.accounts, 1, INT64_MAX},
      {"metrics", &config.metrics, 1, 10'000},
      {"pipeline", &config.pipeline, 1, 4096},
      {"duration", &config.duration_s, 1, 86'400},
      {"warmup", &config.warmup_s, 0, 86'400},
      {"query-workers", &config.query_workers, 0, 1024},
      {"timeout-ms", &config.timeout_ms, 1, 3'600'000},
  };
  for (const IntSpec& spec : specs) {
    absl::StatusOr<int64_t> value =
        IntFlag(args, spec.name, *spec.target, spec.minimum, spec.maximum);
    if (!value.ok()) {
      return value.status();
    }
    *spec.target = *value;
  }
  const std::string mode = args.Get("mode").value_or("sync");
  if (mode != "sync" && mode != "async") {
    return absl::InvalidArgumentError("--mode must be sync or async");
  }
  config.sync = mode == "sync";
  const std::string timestamps = args.Get("timestamps").value_or("client");
  if (timestamps != "client" && timestamps != "server") {
    return absl::InvalidArgumentError("--timestamps must be client or server");
  }
  config.client_timestamps = timestamps == "client";
  config.json = args.Has("json");
  if (config.seeds.empty()) {
    return absl::InvalidArgumentError("--seeds is empty");
  }
  return config;
}

client::ClientOptions MakeOptions(const Config& config) {
  client::ClientOptions options;
  options.seeds = config.seeds;
  options.request_timeout_ms = config.timeout_ms;
  options.initial_map_timeout_ms = config.timeout_ms;
  return options;
}

// Shared run state: the measured window and the stop flag.
struct Run {
  std::atomic<bool> stop{false};
  Clock::time_point measure_begin{};
  Clock::time_point measure_end{};
};

struct WorkerResult {
  LatencyHistogram latency_ns;
  uint64_t events_ok = 0;
  uint64_t requests_ok = 0;
  std::map<std::string, uint64_t> errors;  // By status code name.
};

int64_t WallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void IngestWorker(const Config& config, int worker_index, const Run& run, WorkerResult* result) {
  absl::StatusOr<std::unique_ptr<client::Client>> connected =
      client::Client::Connect(MakeOptions(config));
  if (!connected.ok()) {
    ++result->errors[absl::StatusCodeToString(connected.status().code())];
    return;
  }
  std::unique_ptr<client::Client> client = *std::move(connected);
  std::mt19937_64 random(static_cast<uint64_t>(worker_index) * 7919 + 17);
  std::uniform_int_distribution<int64_t> account(0, config.accounts - 1);
  std::uniform_int_distribution<int64_t> metric(0, config.metrics - 1);
  std::vector<std::string> codes;
  for (int64_t m = 0; m < config.metrics; ++m) {
    codes.push_back(absl::StrCat("bench_", m));
  }
  // Unique client timestamps across workers: base + sequence * workers + worker.
  const int64_t timestamp_base_ns = WallNs();
  int64_t sequence = 0;

  std::mutex mu;
  std::condition_variable cv;
  int64_t in_flight = 0;
  const client::DeliveryMode mode =
      config.sync ? client::DeliveryMode::kSync : client::DeliveryMode::kAsync;
  while (!run.stop.load(std::memory_order_relaxed)) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < config.pipeline; });
      ++in_flight;
    }
    std::vector<client::Event> events(static_cast<size_t>(config.batch));
    for (client::Event& event : events) {
      event.account_id = static_cast<uint64_t>(account(random));
      event.metric_code = codes[static_cast<size_t>(metric(random))];
      event.value = 1;
      event.timestamp_ns = config.client_timestamps
                               ? timestamp_base_ns + sequence++ * config.workers + worker_index
                               : 0;
    }
    const Clock::time_point sent = Clock::now();
    absl::Status submitted = client->SubmitIngest(
        events, mode, [&, sent, count = events.size()](absl::StatusOr<client::IngestResult> r) {
          const Clock::time_point done = Clock::now();
          std::lock_guard<std::mutex> lock(mu);
          --in_flight;
          cv.notify_all();
          if (done < run.measure_begin || done > run.measure_end) {
            return;
          }
          if (r.ok()) {
            result->latency_ns.Record(static_cast<uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(done - sent).count()));
            result->events_ok += count;
            ++result->requests_ok;
          } else {
            ++result->errors[absl::StatusCodeToString(r.status().code())];
          }
        });
    if (!submitted.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      ++result->errors[absl::StatusCodeToString(submitted.code())];
    }
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
}

void QueryWorker(const Config& config, int worker_index, const Run& run, WorkerResult* result) {
  absl::StatusOr<std::unique_ptr<client::Client>> connected =
      client::Client::Connect(MakeOptions(config));
  if (!connected.ok()) {
    ++result->errors[absl::StatusCodeToString(connected.status().code())];
    return;
  }
  std::unique_ptr<client::Client> client = *std::move(connected);
  std::mt19937_64 random(static_cast<uint64_t>(worker_index) * 104'729 + 3);
  std::uniform_int_distribution<int64_t> account(0, config.accounts - 1);
  std::uniform_int_distribution<int64_t> metric(0, config.metrics - 1);
  const auto [month_start, month_end] = CalendarMonthRange(WallNs());
  while (!run.stop.load(std::memory_order_relaxed)) {
    const Clock::time_point sent = Clock::now();
    absl::StatusOr<client::AggValue> value =
        client->Usage(static_cast<uint64_t>(account(random)),
                      absl::StrCat("bench_", metric(random)), month_start, month_end);
    const Clock::time_point done = Clock::now();
    if (done < run.measure_begin || done > run.measure_end) {
      continue;
    }
    if (value.ok()) {
      result->latency_ns.Record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(done - sent).count()));
      ++result->requests_ok;
    } else {
      ++result->errors[absl::StatusCodeToString(value.status().code())];
    }
  }
}

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

WorkerResult MergeAll(const std::vector<WorkerResult>& results) {
  WorkerResult total;
  for (const WorkerResult& r : results) {
    total.latency_ns.Merge(r.latency_ns);
    total.events_ok += r.events_ok;
    total.requests_ok += r.requests_ok;
    for (const auto& [code, count] : r.errors) {
      total.errors[code] += count;
    }
  }
  return total;
}

std::string ErrorsJson(const WorkerResult& r) {
  std::string out;
  for (const auto& [code, count] : r.errors) {
    out += absl::StrCat(out.empty() ? "" : ",", JsonString(code), ":", count);
  }
  return "{" + out + "}";
}

int Main(int argc, char** argv) {
  const ParsedArgs args = ParseArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (args.Has("help")) {
    std::cout << kHelp;
    return 0;
  }
  absl::StatusOr<Config> parsed = ParseConfig(args);
  if (!parsed.ok()) {
    std::cerr << "unimeter-bench: " << parsed.status().message() << "\n" << kHelp;
    return 2;
  }
  const Config config = *parsed;

  absl::StatusOr<std::unique_ptr<client::Client>> admin =
      client::Client::Connect(MakeOptions(config));
  if (!admin.ok()) {
    std::cerr << "unimeter-bench: cannot connect: " << admin.status().ToString() << "\n";
    return 1;
  }
  for (int64_t m = 0; m < config.metrics; ++m) {
    absl::Status put = (*admin)->PutMetric({.code = absl::StrCat("bench_", m), .agg_type = 1});
    if (!put.ok()) {
      std::cerr << "unimeter-bench: registering bench_" << m << ": " << put.ToString() << "\n";
      return 1;
    }
  }

  Run run;
  run.measure_begin = Clock::now() + std::chrono::seconds(config.warmup_s);
  run.measure_end = run.measure_begin + std::chrono::seconds(config.duration_s);
  std::vector<WorkerResult> ingest(static_cast<size_t>(config.workers));
  std::vector<WorkerResult> queries(static_cast<size_t>(config.query_workers));
  std::vector<std::thread> threads;
  for (int64_t i = 0; i < config.workers; ++i) {
    threads.emplace_back(IngestWorker, std::cref(config), static_cast<int>(i), std::cref(run),
                         &ingest[static_cast<size_t>(i)]);
  }
  for (int64_t i = 0; i < config.query_workers; ++i) {
    threads.emplace_back(QueryWorker, std::cref(config), static_cast<int>(i), std::cref(run),
                         &queries[static_cast<size_t>(i)]);
  }
  std::this_thread::sleep_until(run.measure_end);
  run.stop = true;
  for (std::thread& thread : threads) {
    thread.join();
  }

  const WorkerResult ingest_total = MergeAll(ingest);
  const WorkerResult query_total = MergeAll(queries);
  const double seconds = static_cast<double>(config.duration_s);
  const double events_per_s = static_cast<double>(ingest_total.events_ok) / seconds;
  const double requests_per_s = static_cast<double>(ingest_total.requests_ok) / seconds;
  if (config.json) {
    std::cout << absl::StrCat(
                     "{\"config\":{\"workers\":", config.workers, ",\"batch\":", config.batch,
                     ",\"accounts\":", config.accounts, ",\"metrics\":", config.metrics,
                     ",\"mode\":\"", config.sync ? "sync" : "async",
                     "\",\"pipeline\":", config.pipeline, ",\"duration_s\":", config.duration_s,
                     ",\"warmup_s\":", config.warmup_s, ",\"query_workers\":", config.query_workers,
                     ",\"timestamps\":\"", config.client_timestamps ? "client" : "server", "\"},",
                     "\"ingest\":{\"events\":", ingest_total.events_ok,
                     ",\"requests\":", ingest_total.requests_ok,
                     ",\"events_per_s\":", static_cast<uint64_t>(events_per_s),
                     ",\"requests_per_s\":", static_cast<uint64_t>(requests_per_s),
                     ",\"latency\":", LatencyJson(ingest_total.latency_ns),
                     ",\"errors\":", ErrorsJson(ingest_total), "},",
                     "\"query\":{\"requests\":", query_total.requests_ok, ",\"requests_per_s\":",
                     static_cast<uint64_t>(static_cast<double>(query_total.requests_ok) / seconds),
                     ",\"latency\":", LatencyJson(query_total.latency_ns),
                     ",\"errors\":", ErrorsJson(query_total), "}}")
              << "\n";
  } else {
    std::cout << "unimeter-bench: " << config.workers << " workers x batch " << config.batch
              << ", mode " << (config.sync ? "sync" : "async") << ", pipeline " << config.pipeline
              << ", " << config.duration_s << " s measured after " << config.warmup_s
              << " s warm-up\n";
    std::cout << "ingest: " << static_cast<uint64_t>(events_per_s) << " events/s, "
              << static_cast<uint64_t>(requests_per_s) << " requests/s\n";
    std::cout << "ingest latency: " << LatencyText(ingest_total.latency_ns) << "\n";
    for (const auto& [code, count] : ingest_total.errors) {
      std::cout << "ingest errors " << code << ": " << count << "\n";
    }
    if (config.query_workers > 0) {
      std::cout << "query latency: " << LatencyText(query_total.latency_ns) << "\n";
      for (const auto& [code, count] : query_total.errors) {
        std::cout << "query errors " << code << ": " << count << "\n";
      }
    }
  }
  return ingest_total.errors.empty() && query_total.errors.empty() ? 0 : 1;
}

}  // namespace
}  // namespace unimeter::tools

int main(int argc, char** argv) { return unimeter::tools::Main(argc, argv); }
