// tools/bench_main.cc
//
// unimeter-bench: ingest load generator and latency meter for a Unimeter cluster.
//
//   unimeter-bench --seeds=127.0.0.1:7001 --workers=4 --batch=100 --accounts=10000
//                  --metrics=4 --mode=sync --duration=30 --warmup=5 [--query-workers=1]
//                  [--pipeline=1] [--timestamps=client|server] [--keys=random|sequential]
//                  [--events=N] [--json]
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
#include <functional>
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
#include "tools/bench_report.h"
#include "tools/cli_args.h"
#include "tools/histogram.h"

namespace unimeter::tools {
namespace {

using Clock = BenchClock;

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
  --keys=random|sequential   uniform random keys, or every (account, metric) in turn (default
                             random; sequential fills all accounts x metrics aggregates once)
  --events=N                 stop sending after about N events: each worker sends
                             ceil(N / (workers x batch)) requests, so with --keys=sequential
                             and N = accounts x metrics every aggregate is written once
                             (the run still lasts --duration, and throughput is averaged
                             over it; default 0: no limit)
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
  bool sequential_keys = false;  // --keys=sequential: every (account, metric) in turn.
  int64_t timeout_ms = 10'000;
  int64_t events = 0;  // 0: no limit.
  bool json = false;
};

absl::StatusOr<Config> ParseConfig(const ParsedArgs& args) {
  absl::Status allowed = args.CheckAllowed(
      {"seeds", "workers", "batch", "accounts", "metrics", "mode", "pipeline", "duration", "warmup",
       "query-workers", "timestamps", "keys", "timeout-ms", "events", "json", "help"});
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
      {"events", &config.events, 0, INT64_MAX},
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
  const std::string keys = args.Get("keys").value_or("random");
  if (keys != "random" && keys != "sequential") {
    return absl::InvalidArgumentError("--keys must be random or sequential");
  }
  config.sequential_keys = keys == "sequential";
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
  int64_t next_key = 0;

  std::mutex mu;
  std::condition_variable cv;
  int64_t in_flight = 0;
  const client::DeliveryMode mode =
      config.sync ? client::DeliveryMode::kSync : client::DeliveryMode::kAsync;
  const int64_t requests_max =
      config.events == 0
          ? INT64_MAX
          : (config.events + config.workers * config.batch - 1) / (config.workers * config.batch);
  for (int64_t request = 0; request < requests_max && !run.stop.load(std::memory_order_relaxed);
       ++request) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight < config.pipeline; });
      ++in_flight;
    }
    std::vector<client::Event> events(static_cast<size_t>(config.batch));
    for (client::Event& event : events) {
      if (config.sequential_keys) {  // Every (account, metric) in turn, workers interleaved.
        const int64_t key =
            (next_key++ * config.workers + worker_index) % (config.accounts * config.metrics);
        event.account_id = static_cast<uint64_t>(key / config.metrics);
        event.metric_code = codes[static_cast<size_t>(key % config.metrics)];
      } else {
        event.account_id = static_cast<uint64_t>(account(random));
        event.metric_code = codes[static_cast<size_t>(metric(random))];
      }
      event.value = 1;
      event.timestamp_ns = config.client_timestamps
                               ? timestamp_base_ns + sequence++ * config.workers + worker_index
                               : 0;
    }
    const Clock::time_point sent = Clock::now();
    absl::Status submitted = client->SubmitIngest(
        events, mode, [&, sent, count = events.size()](absl::StatusOr<client::IngestResult> r) {
          std::lock_guard<std::mutex> lock(mu);
          --in_flight;
          cv.notify_all();
          RecordOutcome(run, sent, r.status(), count, result);
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
    RecordOutcome(run, sent, value.status(), 0, result);
  }
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
    // METRIC_PUT is idempotent: an unknown outcome (ERR, a busy or changing cluster) is
    // retried for up to 30 s.
    absl::Status put = absl::UnknownError("not sent");
    for (int attempt = 0; attempt < 30 && !put.ok(); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
      put = (*admin)->PutMetric({.code = absl::StrCat("bench_", m), .agg_type = 1});
    }
    if (!put.ok()) {
      std::cerr << "unimeter-bench: registering bench_" << m << ": " << put.ToString() << "\n";
      return 1;
    }
  }

  std::vector<WorkerResult> ingest;
  std::vector<WorkerResult> queries;
  RunWorkers(config.warmup_s, config.duration_s, config.workers, config.query_workers,
             std::bind_front(IngestWorker, std::cref(config)),
             std::bind_front(QueryWorker, std::cref(config)), &ingest, &queries);
  const WorkerResult ingest_total = MergeAll(ingest);
  const WorkerResult query_total = MergeAll(queries);
  const BenchShape shape{"unimeter",           config.workers,          config.batch,
                         config.accounts,      config.metrics,          config.sync,
                         config.pipeline,      config.duration_s,       config.warmup_s,
                         config.query_workers, config.client_timestamps};
  std::cout << (config.json ? ReportJson(shape, ingest_total, query_total) + "\n"
                            : ReportText("unimeter-bench", shape, ingest_total, query_total));
  return ingest_total.errors.empty() && query_total.errors.empty() ? 0 : 1;
}

}  // namespace
}  // namespace unimeter::tools

int main(int argc, char** argv) { return unimeter::tools::Main(argc, argv); }
