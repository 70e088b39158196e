// tools/pg_bench_main.cc
//
// pg-bench: the unimeter-bench workload run against PostgreSQL, as the baseline a team would
// build without Unimeter (issue #8, "Benchmarks side by side").
//
//   pg-bench --conninfo='host=/tmp/pg port=5432 dbname=postgres' --workers=8 --batch=500
//            --accounts=10000 --metrics=4 --mode=sync --duration=30 --warmup=5
//            [--query-workers=1] [--timeout-ms=10000] [--json]
//
// tools/pg-baseline starts a throwaway PostgreSQL 15 server and runs this for the standard
// shapes. The workload is unimeter-bench's: N ingest workers (one connection and thread each,
// closed loop), each sending batches of B events with value 1 to uniformly random accounts
// 0..A-1 and SUM metrics bench_0..bench_{M-1}, with client timestamps unique per worker
// (base + sequence * N + worker); the same seeds give the same events. Query workers read one
// (account, metric) usage over the current calendar month in a closed loop, measured apart.
//
// Schema (created on start, IF NOT EXISTS):
//   usage_events(account_id, metric_code, value, ts_ns): one row per stored event. Its
//     primary key is Unimeter's content dedup key (metric code, account, timestamp, value),
//     so a resent event is not stored or counted twice.
//   usage_aggregates(account_id, metric_code, period_start_ns, value_sum, event_count): one
//     row per 30-day FIXED bucket aligned to the epoch (the bench metrics' period), primary
//     key (account_id, metric_code, period_start_ns).
// One batch is one statement, so one transaction with one commit: a data-modifying CTE
// inserts the rows (ON CONFLICT DO NOTHING) and upserts the aggregates of the rows it actually
// stored, grouped per key and in key order so concurrent workers lock aggregate rows in the
// same order. Parameters are four arrays, one per column, through a prepared statement.
// --mode=sync commits with synchronous_commit=on (durable: WAL flushed before the reply);
// --mode=async sets synchronous_commit=off (acknowledged before the WAL flush; a crash may
// lose the last few hundred ms, never corrupt). Both are set per session, explicitly.
//
// Output: the same text summary and JSON object as unimeter-bench, plus "system":"postgresql".
// Errors are counted by absl status code name (DEADLINE_EXCEEDED for a statement timeout,
// ABORTED for deadlocks and serialization failures, UNAVAILABLE for a lost connection,
// INTERNAL otherwise); each worker prints its first error's SQLSTATE and message to stderr.
// Pipelining and server timestamps are not offered: --pipeline is reported as 1 and
// --timestamps accepts only "client".
#include <postgresql/libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tools/bench_report.h"
#include "tools/cli_args.h"
#include "tools/histogram.h"

namespace unimeter::tools {
namespace {

using Clock = BenchClock;

const char kHelp[] = R"(Usage: pg-bench [flags]
  --conninfo=STRING          libpq connection string (default "dbname=postgres")
  --workers=N                ingest workers, one connection each (default 4)
  --batch=B                  events per transaction (default 100, 1..1024)
  --accounts=A               distinct account ids 0..A-1 (default 10000)
  --metrics=M                metric codes bench_0..bench_{M-1} (default 4)
  --mode=sync|async          synchronous_commit on or off (default sync)
  --duration=S               measured seconds (default 30)
  --warmup=S                 unmeasured seconds first (default 5)
  --query-workers=Q          point-query workers running concurrently (default 0)
  --timestamps=client        client timestamps, deduplicated (the only choice)
  --timeout-ms=N             statement_timeout per statement (default 10000)
  --json                     print one JSON object instead of the text summary
)";

// The FIXED period of the bench metrics: 30 days, aligned to the Unix epoch.
constexpr int64_t kPeriodNs = 2'592'000LL * 1'000'000'000LL;

const char kSchemaSql[] = R"(
CREATE TABLE IF NOT EXISTS usage_events (
  account_id bigint NOT NULL,
  metric_code text NOT NULL,
  value bigint NOT NULL,
  ts_ns bigint NOT NULL,
  PRIMARY KEY (account_id, metric_code, ts_ns, value)
);
CREATE TABLE IF NOT EXISTS usage_aggregates (
  account_id bigint NOT NULL,
  metric_code text NOT NULL,
  period_start_ns bigint NOT NULL,
  value_sum bigint NOT NULL,
  event_count bigint NOT NULL,
  PRIMARY KEY (account_id, metric_code, period_start_ns)
);
)";

// $1..$4: account_id, metric_code, value and ts_ns arrays of one batch.
const char kIngestSql[] = R"(
WITH batch AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
      AS b(account_id, metric_code, value, ts_ns)
), stored AS (
  INSERT INTO usage_events (account_id, metric_code, value, ts_ns)
  SELECT account_id, metric_code, value, ts_ns FROM batch
  ON CONFLICT DO NOTHING
  RETURNING account_id, metric_code, value, ts_ns
)
INSERT INTO usage_aggregates AS agg
    (account_id, metric_code, period_start_ns, value_sum, event_count)
SELECT account_id, metric_code, ts_ns / 2592000000000000 * 2592000000000000, sum(value), count(*)
FROM stored
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
ON CONFLICT (account_id, metric_code, period_start_ns) DO UPDATE
SET value_sum = agg.value_sum + excluded.value_sum,
    event_count = agg.event_count + excluded.event_count
)";

// $1 account_id, $2 metric_code, [$3, $4) the range in ns: every bucket overlapping it, like
// USAGE_QUERY's whole buckets.
const char kQuerySql[] = R"(
SELECT coalesce(sum(value_sum), 0), coalesce(sum(event_count), 0)
FROM usage_aggregates
WHERE account_id = $1 AND metric_code = $2
  AND period_start_ns < $4::bigint AND period_start_ns > $3::bigint - 2592000000000000
)";

static_assert(kPeriodNs == 2'592'000'000'000'000LL, "the SQL above spells the period out");

struct Config {
  std::string conninfo = "dbname=postgres";
  int64_t workers = 4;
  int64_t batch = 100;
  int64_t accounts = 10'000;
  int64_t metrics = 4;
  bool sync = true;
  int64_t duration_s = 30;
  int64_t warmup_s = 5;
  int64_t query_workers = 0;
  int64_t timeout_ms = 10'000;
  bool json = false;
};

absl::Status ParseIntFlags(const ParsedArgs& args, Config* config) {
  struct IntSpec {
    const char* name;
    int64_t* target;
    int64_t minimum;
    int64_t maximum;
  };
  const IntSpec specs[] = {
      {"workers", &config->workers, 1, 1024},
      {"batch", &config->batch, 1, 1024},
      {"accounts", &config->accounts, 1, INT64_MAX},
      {"metrics", &config->metrics, 1, 10'000},
      {"duration", &config->duration_s, 1, 86'400},
      {"warmup", &config->warmup_s, 0, 86'400},
      {"query-workers", &config->query_workers, 0, 1024},
      {"timeout-ms", &config->timeout_ms, 1, 3'600'000},
  };
  for (const IntSpec& spec : specs) {
    absl::StatusOr<int64_t> value =
        IntFlag(args, spec.name, *spec.target, spec.minimum, spec.maximum);
    if (!value.ok()) {
      return value.status();
    }
    *spec.target = *value;
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> ParseConfig(const ParsedArgs& args) {
  absl::Status allowed =
      args.CheckAllowed({"conninfo", "workers", "batch", "accounts", "metrics", "mode", "duration",
                         "warmup", "query-workers", "timestamps", "timeout-ms", "json", "help"});
  if (!allowed.ok()) {
    return allowed;
  }
  if (!args.positional.empty()) {
    return absl::InvalidArgumentError("unexpected argument " + args.positional[0]);
  }
  Config config;
  config.conninfo = args.Get("conninfo").value_or(config.conninfo);
  absl::Status ints = ParseIntFlags(args, &config);
  if (!ints.ok()) {
    return ints;
  }
  const std::string mode = args.Get("mode").value_or("sync");
  if (mode != "sync" && mode != "async") {
    return absl::InvalidArgumentError("--mode must be sync or async");
  }
  config.sync = mode == "sync";
  if (args.Get("timestamps").value_or("client") != "client") {
    return absl::InvalidArgumentError("--timestamps: pg-bench supports only client");
  }
  config.json = args.Has("json");
  return config;
}

// Maps a failed result to an absl status carrying its SQLSTATE and message.
absl::Status ResultStatus(const PGresult* result, PGconn* connection) {
  const char* sqlstate = result == nullptr ? nullptr : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string message = absl::StrCat(
      "SQLSTATE ", sqlstate == nullptr ? "-" : sqlstate, ": ",
      absl::StripTrailingAsciiWhitespace(result == nullptr ? PQerrorMessage(connection)
                                                           : PQresultErrorMessage(result)));
  if (PQstatus(connection) != CONNECTION_OK || sqlstate == nullptr) {
    return absl::UnavailableError(message);
  }
  const std::string code = sqlstate;
  if (code == "57014") {  // query_canceled: statement_timeout fired.
    return absl::DeadlineExceededError(message);
  }
  if (code == "40001" || code == "40P01") {  // serialization_failure, deadlock_detected.
    return absl::AbortedError(message);
  }
  return absl::InternalError(message);
}

// One libpq connection with the bench's session settings and prepared statements.
// Not thread-safe: one per worker thread.
class PgConnection {
 public:
  // Connects and sets synchronous_commit and statement_timeout explicitly (and hides
  // NOTICEs such as "relation already exists"). UNAVAILABLE (or the failing statement's
  // status) on error.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const Config& config);

  ~PgConnection() { PQfinish(connection_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` (one or more statements, no parameters) and discards any rows.
  absl::Status Execute(const std::string& sql);
  // Runs a prepared statement with text parameters. On success the first row's columns are
  // stored in *row when `row` is given.
  absl::Status ExecutePrepared(const char* name, const std::vector<std::string>& parameters,
                               std::vector<std::string>* row = nullptr);
  // Prepares the "ingest" and "usage" statements. REQUIRES: the schema exists.
  absl::Status PrepareStatements();
  bool broken() const { return PQstatus(connection_) != CONNECTION_OK; }

 private:
  explicit PgConnection(PGconn* connection) : connection_(connection) {}
  absl::Status Prepare(const char* name, const char* sql, int parameter_count);

  PGconn* connection_;
};

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const Config& config) {
  std::unique_ptr<PgConnection> connection(new PgConnection(PQconnectdb(config.conninfo.c_str())));
  if (connection->broken()) {
    return absl::UnavailableError(PQerrorMessage(connection->connection_));
  }
  absl::Status status = connection->Execute(absl::StrCat(
      "SET synchronous_commit = ", config.sync ? "on" : "off",
      "; SET statement_timeout = ", config.timeout_ms, "; SET client_min_messages = warning"));
  if (!status.ok()) {
    return status;
  }
  return connection;
}

absl::Status PgConnection::PrepareStatements() {
  absl::Status status = Prepare("ingest", kIngestSql, 4);
  return status.ok() ? Prepare("usage", kQuerySql, 4) : status;
}

absl::Status PgConnection::Execute(const std::string& sql) {
  PGresult* result = PQexec(connection_, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  absl::Status outcome = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
                             ? absl::OkStatus()
                             : ResultStatus(result, connection_);
  PQclear(result);
  return outcome;
}

absl::Status PgConnection::Prepare(const char* name, const char* sql, int parameter_count) {
  PGresult* result = PQprepare(connection_, name, sql, parameter_count, nullptr);
  absl::Status outcome = PQresultStatus(result) == PGRES_COMMAND_OK
                             ? absl::OkStatus()
                             : ResultStatus(result, connection_);
  PQclear(result);
  return outcome;
}

absl::Status PgConnection::ExecutePrepared(const char* name,
                                           const std::vector<std::string>& parameters,
                                           std::vector<std::string>* row) {
  std::vector<const char*> values;
  for (const std::string& parameter : parameters) {
    values.push_back(parameter.c_str());
  }
  PGresult* result = PQexecPrepared(connection_, name, static_cast<int>(values.size()),
                                    values.data(), nullptr, nullptr, /*resultFormat=*/0);
  const ExecStatusType status = PQresultStatus(result);
  absl::Status outcome = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
                             ? absl::OkStatus()
                             : ResultStatus(result, connection_);
  if (outcome.ok() && row != nullptr && PQntuples(result) > 0) {
    row->clear();
    for (int column = 0; column < PQnfields(result); ++column) {
      row->push_back(PQgetvalue(result, 0, column));
    }
  }
  PQclear(result);
  return outcome;
}

// RecordOutcome (tools/bench_report.h), and the first error of each worker printed to stderr.
void RecordAndReport(const Run& run, Clock::time_point sent, const absl::Status& status,
                     uint64_t events, WorkerResult* result) {
  if (!status.ok() && result->errors.empty()) {
    std::cerr << "pg-bench: " << status.ToString() << "\n";
  }
  RecordOutcome(run, sent, status, events, result);
}

// Connects (again, after a broken connection) and prepares; counts a failure by its code inside the
// measured window and pauses 100 ms so a down server is not hammered.
std::unique_ptr<PgConnection> ConnectOrCount(const Config& config, const Run& run,
                                             WorkerResult* result) {
  absl::StatusOr<std::unique_ptr<PgConnection>> connected = PgConnection::Connect(config);
  absl::Status status = connected.ok() ? (*connected)->PrepareStatements() : connected.status();
  if (status.ok()) {
    return *std::move(connected);
  }
  RecordAndReport(run, Clock::now(), status, 0, result);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return nullptr;
}

struct BenchEvent {
  int64_t account_id = 0;
  int64_t metric_index = 0;
  int64_t ts_ns = 0;
};

// Array literals for the ingest statement's four parameters. Metric codes are bench_<n>, so
// no element needs quoting.
std::vector<std::string> BatchParameters(const std::vector<BenchEvent>& events) {
  std::vector<std::string> arrays(4, "{");
  for (const BenchEvent& event : events) {
    const char* separator = arrays[0].size() > 1 ? "," : "";
    absl::StrAppend(&arrays[0], separator, event.account_id);
    absl::StrAppend(&arrays[1], separator, "bench_", event.metric_index);
    absl::StrAppend(&arrays[2], separator, 1);
    absl::StrAppend(&arrays[3], separator, event.ts_ns);
  }
  for (std::string& array : arrays) {
    array += "}";
  }
  return arrays;
}

// Generates one batch exactly as unimeter-bench does (same draws in the same order), then
// sorts it by key so concurrent workers take index locks in one order.
class BatchGenerator {
 public:
  BatchGenerator(const Config& config, int worker_index)
      : config_(config),
        worker_index_(worker_index),
        random_(static_cast<uint64_t>(worker_index) * 7919 + 17),
        account_(0, config.accounts - 1),
        metric_(0, config.metrics - 1),
        timestamp_base_ns_(WallNs()) {}

  std::vector<BenchEvent> Next() {
    std::vector<BenchEvent> events(static_cast<size_t>(config_.batch));
    for (BenchEvent& event : events) {
      event.account_id = account_(random_);
      event.metric_index = metric_(random_);
      event.ts_ns = timestamp_base_ns_ + sequence_++ * config_.workers + worker_index_;
    }
    std::sort(events.begin(), events.end(), [](const BenchEvent& a, const BenchEvent& b) {
      return std::tie(a.account_id, a.metric_index, a.ts_ns) <
             std::tie(b.account_id, b.metric_index, b.ts_ns);
    });
    return events;
  }

 private:
  const Config& config_;
  const int worker_index_;
  std::mt19937_64 random_;
  std::uniform_int_distribution<int64_t> account_;
  std::uniform_int_distribution<int64_t> metric_;
  const int64_t timestamp_base_ns_;
  int64_t sequence_ = 0;
};

void IngestWorker(const Config& config, int worker_index, const Run& run, WorkerResult* result) {
  BatchGenerator generator(config, worker_index);
  std::unique_ptr<PgConnection> connection;
  while (!run.stop.load(std::memory_order_relaxed)) {
    if (connection == nullptr || connection->broken()) {
      connection = ConnectOrCount(config, run, result);
      continue;
    }
    const std::vector<BenchEvent> events = generator.Next();
    // Like unimeter-bench, whose timed submit includes encoding the request.
    const Clock::time_point sent = Clock::now();
    const std::vector<std::string> parameters = BatchParameters(events);
    const absl::Status status = connection->ExecutePrepared("ingest", parameters);
    RecordAndReport(run, sent, status, static_cast<uint64_t>(config.batch), result);
  }
}

void QueryWorker(const Config& config, int worker_index, const Run& run, WorkerResult* result) {
  std::mt19937_64 random(static_cast<uint64_t>(worker_index) * 104'729 + 3);
  std::uniform_int_distribution<int64_t> account(0, config.accounts - 1);
  std::uniform_int_distribution<int64_t> metric(0, config.metrics - 1);
  const auto [month_start, month_end] = CalendarMonthRange(WallNs());
  std::unique_ptr<PgConnection> connection;
  std::vector<std::string> row;
  while (!run.stop.load(std::memory_order_relaxed)) {
    if (connection == nullptr || connection->broken()) {
      connection = ConnectOrCount(config, run, result);
      continue;
    }
    const std::vector<std::string> parameters = {
        absl::StrCat(account(random)), absl::StrCat("bench_", metric(random)),
        absl::StrCat(month_start), absl::StrCat(month_end)};
    const Clock::time_point sent = Clock::now();
    const absl::Status status = connection->ExecutePrepared("usage", parameters, &row);
    RecordAndReport(run, sent, status, 0, result);
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
    std::cerr << "pg-bench: " << parsed.status().message() << "\n" << kHelp;
    return 2;
  }
  const Config config = *parsed;
  absl::StatusOr<std::unique_ptr<PgConnection>> admin = PgConnection::Connect(config);
  absl::Status schema = admin.ok() ? (*admin)->Execute(kSchemaSql) : admin.status();
  if (!schema.ok()) {
    std::cerr << "pg-bench: setting up the schema: " << schema.ToString() << "\n";
    return 1;
  }
  std::vector<WorkerResult> ingest;
  std::vector<WorkerResult> queries;
  RunWorkers(config.warmup_s, config.duration_s, config.workers, config.query_workers,
             std::bind_front(IngestWorker, std::cref(config)),
             std::bind_front(QueryWorker, std::cref(config)), &ingest, &queries);
  const WorkerResult ingest_total = MergeAll(ingest);
  const WorkerResult query_total = MergeAll(queries);
  // pg-bench has no pipelining (one statement in flight per connection) and client
  // timestamps only.
  const BenchShape shape{"postgresql",
                         config.workers,
                         config.batch,
                         config.accounts,
                         config.metrics,
                         config.sync,
                         1,
                         config.duration_s,
                         config.warmup_s,
                         config.query_workers,
                         true};
  std::cout << (config.json ? ReportJson(shape, ingest_total, query_total) + "\n"
                            : ReportText("pg-bench", shape, ingest_total, query_total));
  return ingest_total.errors.empty() && query_total.errors.empty() ? 0 : 1;
}

}  // namespace
}  // namespace unimeter::tools

int main(int argc, char** argv) { return unimeter::tools::Main(argc, argv); }
