// tools/cli_main.cc
//
// unimeter-cli: a command-line client for a Unimeter cluster (binary protocol v1, through
// client/client.h). Exit codes: 0 success, 1 server or connection error, 2 usage error
// (including invalid input). Human-readable aligned tables by default, --json for scripts.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "tools/cli_args.h"

namespace unimeter::tools {
namespace {

using client::Client;

constexpr int kExitOk = 0;
constexpr int kExitServerError = 1;
constexpr int kExitUsage = 2;

const char kMainHelp[] =
    R"(Usage: unimeter-cli [--seeds=host:port,...] [--json] [--timeout-ms=N] COMMAND ...

Commands:
  metrics create CODE --agg=sum|count|max|latest|count_unique [--period=fixed|calendar|day]
                 [--cycle-day=N] [--dimension=key:v1,v2]... [--threshold=code:value[:recurring]]...
  metrics list
  metrics delete CODE
  ingest ACCOUNT METRIC VALUE [--timestamp=NS|RFC3339] [--op=add|remove] [--prop=k=v]... [--sync]
  ingest --stdin [--sync]       JSON lines: {"account_id":..,"metric_code":..,"value":..,...}
  query ACCOUNT METRIC [--from=T] [--to=T] [--filter=k=v]...
  breakdown ACCOUNT METRIC --by=key[,key] [--from=T] [--to=T]
  realtime ACCOUNT METRIC
  events ACCOUNT [--since=T] [--until=T]
  alerts list [--account=N] [--since-offset=N]
  alerts watch [--account=N]
  cluster status

Times (T) are ns since the epoch or RFC 3339 UTC (2026-01-01T00:00:00Z).
Global flags:
  --seeds=host:port,...   nodes to contact (default $UNIMETER_SEEDS or 127.0.0.1:7001)
  --json                  machine-readable output
  --timeout-ms=N          deadline of each request (default 10000)
Run 'unimeter-cli COMMAND --help' for the help of one command.
Exit codes: 0 ok, 1 server or connection error, 2 usage error.
)";

const std::map<std::string, std::string>& CommandHelp() {
  static const auto* help = new std::map<std::string, std::string>{
      {"metrics create",
       "Usage: unimeter-cli metrics create CODE --agg=sum|count|max|latest|count_unique\n"
       "         [--period=fixed|calendar|day] [--cycle-day=1..28] [--field-name=NAME]\n"
       "         [--dimension=key:v1,v2,...]... (<= 4, <= 8 values each)\n"
       "         [--threshold=code:value[:recurring]]... (<= 8)\n"
       "Creates or replaces (upsert) the metric's schema on the registry leader.\n"},
      {"metrics list", "Usage: unimeter-cli metrics list\nLists every registered metric.\n"},
      {"metrics delete",
       "Usage: unimeter-cli metrics delete CODE\nDeletes the schema (stored events are kept).\n"},
      {"ingest",
       "Usage: unimeter-cli ingest ACCOUNT METRIC VALUE [--timestamp=T] [--op=add|remove]\n"
       "                           [--prop=key=value]... [--sync]\n"
       "       unimeter-cli ingest --stdin [--sync]\n"
       "Sends events (ASYNC unless --sync). With --stdin, one JSON object per line:\n"
       "  {\"account_id\":42,\"metric_code\":\"api_calls\",\"value\":1,\"timestamp\":0,\n"
       "   \"operation\":\"add\",\"properties\":{\"region\":\"eu\"}}\n"
       "Events with a client timestamp are deduplicated and resent automatically after an\n"
       "unknown outcome; events without one are never resent (exit 1, 'outcome unknown').\n"},
      {"query",
       "Usage: unimeter-cli query ACCOUNT METRIC [--from=T] [--to=T] [--filter=key=value]...\n"
       "Usage over [from, to) (whole buckets); default: the current calendar month (UTC).\n"},
      {"breakdown",
       "Usage: unimeter-cli breakdown ACCOUNT METRIC --by=key[,key...] [--from=T] [--to=T]\n"
       "Usage per combination of dimension values (non-empty cells only).\n"},
      {"realtime",
       "Usage: unimeter-cli realtime ACCOUNT METRIC\nUsage in the bucket containing now.\n"},
      {"events",
       "Usage: unimeter-cli events ACCOUNT [--since=T] [--until=T]\n"
       "Stored events with since <= timestamp <= until (inclusive), at most 1,024.\n"},
      {"alerts list",
       "Usage: unimeter-cli alerts list [--account=N] [--since-offset=N]\n"
       "Threshold crossings from the alert log of every node (offsets are per node).\n"},
      {"alerts watch",
       "Usage: unimeter-cli alerts watch [--account=N]\n"
       "Subscribes to alert pushes on every node and prints them until Ctrl-C.\n"},
      {"cluster status",
       "Usage: unimeter-cli cluster status\nCLUSTER_STATUS of every node and partition owners.\n"},
  };
  return *help;
}

const std::vector<std::string> kGlobalFlags = {"seeds", "json", "timeout-ms", "help"};

struct Context {
  ParsedArgs args;
  std::string command;  // "metrics create", "ingest", ...
  std::vector<std::string> operands;
  bool json = false;
  int64_t timeout_ms = 10'000;
  std::vector<std::string> seeds;
  std::unique_ptr<Client> client;
};

int UsageError(const Context& context, const std::string& message) {
  std::cerr << "unimeter-cli: " << message << "\n";
  auto help = CommandHelp().find(context.command);
  std::cerr << (help != CommandHelp().end() ? help->second : "Run 'unimeter-cli --help'.\n");
  return kExitUsage;
}

int ServerError(const absl::Status& status) {
  std::cerr << "unimeter-cli: error: " << status.ToString() << "\n";
  if (status.code() == absl::StatusCode::kUnknown) {
    std::cerr << "unimeter-cli: the outcome is unknown: the events may or may not be stored.\n";
  }
  return kExitServerError;
}

absl::Status CheckFlags(const Context& context, std::vector<std::string> allowed) {
  allowed.insert(allowed.end(), kGlobalFlags.begin(), kGlobalFlags.end());
  return context.args.CheckAllowed(allowed);
}

absl::Status Connect(Context& context) {
  client::ClientOptions options;
  options.seeds = context.seeds;
  options.request_timeout_ms = context.timeout_ms;
  options.initial_map_timeout_ms = context.timeout_ms;
  options.connect_timeout_ms = std::min<int64_t>(context.timeout_ms, 3'000);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  if (!client.ok()) {
    return client.status();
  }
  context.client = *std::move(client);
  return absl::OkStatus();
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string AggJson(const client::AggValue& value) {
  return absl::StrCat("{\"sum\":", U128ToString(value.sum), ",\"count\":", value.count,
                      ",\"max\":", value.max, ",\"last_value\":", value.last_value,
                      ",\"last_timestamp\":", value.last_timestamp_ns,
                      ",\"alert_flags\":", value.alert_flags, "}");
}

void PrintAgg(const Context& context, const client::AggValue& value, const std::string& extra) {
  if (context.json) {
    std::cout << AggJson(value) << "\n";
    return;
  }
  std::cout << extra
            << FormatTable(
                   {"SUM", "COUNT", "MAX", "LAST_VALUE", "LAST_TIMESTAMP", "ALERT_FLAGS"},
                   {{U128ToString(value.sum), std::to_string(value.count),
                     std::to_string(value.max), std::to_string(value.last_value),
                     value.last_timestamp_ns == 0 ? "-" : FormatTimeNs(value.last_timestamp_ns),
                     absl::StrCat("0x", absl::Hex(value.alert_flags))}});
}

// ---- metrics ----------------------------------------------------------------------------------

int MetricsCreate(Context& context) {
  if (absl::Status flags = CheckFlags(
          context, {"agg", "period", "cycle-day", "dimension", "threshold", "field-name"});
      !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  if (context.operands.size() != 1) {
    return UsageError(context, "expected exactly one metric CODE");
  }
  client::MetricSchema schema{.code = context.operands[0]};
  std::optional<std::string> agg = context.args.Get("agg");
  if (!agg.has_value()) {
    return UsageError(context, "--agg is required");
  }
  absl::StatusOr<uint8_t> agg_type = ParseAggType(*agg);
  absl::StatusOr<uint8_t> period = ParsePeriodType(context.args.Get("period").value_or("fixed"));
  absl::StatusOr<uint64_t> cycle_day =
      ParseU64(context.args.Get("cycle-day").value_or("1"), "--cycle-day");
  for (const absl::Status& status : {agg_type.status(), period.status(), cycle_day.status()}) {
    if (!status.ok()) {
      return UsageError(context, std::string(status.message()));
    }
  }
  if (*cycle_day < 1 || *cycle_day > 28) {
    return UsageError(context, "--cycle-day must be 1..28");
  }
  schema.agg_type = *agg_type;
  schema.period_type = *period;
  schema.billing_cycle_day = static_cast<uint8_t>(*cycle_day);
  schema.field_name = context.args.Get("field-name").value_or("");
  for (const std::string& text : context.args.GetAll("dimension")) {
    absl::StatusOr<protocol::DimensionSpec> dimension = ParseDimension(text);
    if (!dimension.ok()) {
      return UsageError(context, std::string(dimension.status().message()));
    }
    schema.dimensions.push_back(*std::move(dimension));
  }
  for (const std::string& text : context.args.GetAll("threshold")) {
    absl::StatusOr<protocol::ThresholdSpec> threshold = ParseThreshold(text);
    if (!threshold.ok()) {
      return UsageError(context, std::string(threshold.status().message()));
    }
    schema.thresholds.push_back(*std::move(threshold));
  }
  if (schema.dimensions.size() > protocol::kDimensionsPerMetricMax ||
      schema.thresholds.size() > protocol::kThresholdsPerMetricMax) {
    return UsageError(context, "at most 4 dimensions and 8 thresholds");
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::Status status = context.client->PutMetric(schema);
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    return UsageError(context, std::string(status.message()));
  }
  if (!status.ok()) {
    return ServerError(status);
  }
  std::cout << (context.json ? absl::StrCat("{\"ok\":true,\"code\":", JsonString(schema.code), "}")
                             : absl::StrCat("metric ", schema.code, " saved"))
            << "\n";
  return kExitOk;
}

std::string DimensionsText(const client::MetricSchema& schema, bool json) {
  std::string out;
  for (const protocol::DimensionSpec& dimension : schema.dimensions) {
    if (json) {
      out += absl::StrCat(out.empty() ? "" : ",", "{\"key\":", JsonString(dimension.key),
                          ",\"values\":[");
      for (size_t i = 0; i < dimension.values.size(); ++i) {
        out += absl::StrCat(i == 0 ? "" : ",", JsonString(dimension.values[i]));
      }
      out += "]}";
    } else {
      out += absl::StrCat(out.empty() ? "" : " ", dimension.key, ":");
      for (size_t i = 0; i < dimension.values.size(); ++i) {
        out += absl::StrCat(i == 0 ? "" : ",", dimension.values[i]);
      }
    }
  }
  return json ? "[" + out + "]" : (out.empty() ? "-" : out);
}

std::string ThresholdsText(const client::MetricSchema& schema, bool json) {
  std::string out;
  for (const protocol::ThresholdSpec& threshold : schema.thresholds) {
    if (json) {
      out += absl::StrCat(out.empty() ? "" : ",", "{\"code\":", JsonString(threshold.code),
                          ",\"value\":", threshold.value,
                          ",\"recurring\":", threshold.recurring ? "true" : "false", "}");
    } else {
      out += absl::StrCat(out.empty() ? "" : " ", threshold.code, ":", threshold.value,
                          threshold.recurring ? ":recurring" : "");
    }
  }
  return json ? "[" + out + "]" : (out.empty() ? "-" : out);
}

int MetricsList(Context& context) {
  if (absl::Status flags = CheckFlags(context, {}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  if (!context.operands.empty()) {
    return UsageError(context, "unexpected arguments");
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::StatusOr<std::vector<client::MetricSchema>> metrics = context.client->ListMetrics();
  if (!metrics.ok()) {
    return ServerError(metrics.status());
  }
  if (context.json) {
    std::string out = "[";
    for (size_t i = 0; i < metrics->size(); ++i) {
      const client::MetricSchema& m = (*metrics)[i];
      out += absl::StrCat(i == 0 ? "" : ",", "{\"code\":", JsonString(m.code), ",\"agg\":\"",
                          AggTypeName(m.agg_type), "\",\"period\":\"",
                          PeriodTypeName(m.period_type), "\",\"cycle_day\":", m.billing_cycle_day,
                          ",\"field_name\":", JsonString(m.field_name),
                          ",\"dimensions\":", DimensionsText(m, true),
                          ",\"thresholds\":", ThresholdsText(m, true), "}");
    }
    std::cout << out << "]\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const client::MetricSchema& m : *metrics) {
    rows.push_back({m.code, AggTypeName(m.agg_type), PeriodTypeName(m.period_type),
                    std::to_string(m.billing_cycle_day), DimensionsText(m, false),
                    ThresholdsText(m, false)});
  }
  std::cout << FormatTable({"CODE", "AGG", "PERIOD", "CYCLE_DAY", "DIMENSIONS", "THRESHOLDS"},
                           rows);
  return kExitOk;
}

int MetricsDelete(Context& context) {
  if (absl::Status flags = CheckFlags(context, {}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  if (context.operands.size() != 1) {
    return UsageError(context, "expected exactly one metric CODE");
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::Status status = context.client->DeleteMetric(context.operands[0]);
  if (!status.ok()) {
    return status.code() == absl::StatusCode::kInvalidArgument
               ? UsageError(context, std::string(status.message()))
               : ServerError(status);
  }
  std::cout << (context.json ? std::string("{\"ok\":true}")
                             : absl::StrCat("metric ", context.operands[0], " deleted"))
            << "\n";
  return kExitOk;
}

// ---- ingest -----------------------------------------------------------------------------------

absl::StatusOr<std::vector<client::Event>> ReadStdinEvents() {
  std::vector<client::Event> events;
  std::string line;
  size_t line_number = 0;
  while (std::getline(std::cin, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      continue;
    }
    absl::StatusOr<client::Event> event = ParseEventJson(line);
    if (!event.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stdin line ", line_number, ": ", std::string(event.status().message())));
    }
    events.push_back(*std::move(event));
  }
  return events;
}

absl::StatusOr<client::Event> EventFromOperands(const Context& context) {
  absl::StatusOr<uint64_t> account = ParseU64(context.operands[0], "ACCOUNT");
  absl::StatusOr<uint64_t> value = ParseU64(context.operands[2], "VALUE");
  if (!account.ok() || !value.ok()) {
    return account.ok() ? value.status() : account.status();
  }
  client::Event event{.account_id = *account, .metric_code = context.operands[1], .value = *value};
  if (std::optional<std::string> timestamp = context.args.Get("timestamp")) {
    absl::StatusOr<int64_t> time = ParseTimeNs(*timestamp);
    if (!time.ok()) {
      return time.status();
    }
    event.timestamp_ns = *time;
  }
  const std::string op = context.args.Get("op").value_or("none");
  if (op == "add") {
    event.operation = client::OperationType::kAdd;
  } else if (op == "remove") {
    event.operation = client::OperationType::kRemove;
  } else if (op != "none") {
    return absl::InvalidArgumentError("--op must be add or remove");
  }
  for (const std::string& text : context.args.GetAll("prop")) {
    absl::StatusOr<std::pair<std::string, std::string>> pair = ParseKeyValue(text, "--prop");
    if (!pair.ok()) {
      return pair.status();
    }
    event.properties.push_back({.key = pair->first, .value = pair->second});
  }
  return event;
}

int Ingest(Context& context) {
  if (absl::Status flags = CheckFlags(context, {"timestamp", "op", "prop", "sync", "stdin"});
      !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  std::vector<client::Event> events;
  if (context.args.Has("stdin")) {
    if (!context.operands.empty() || context.args.Has("timestamp") || context.args.Has("prop") ||
        context.args.Has("op")) {
      return UsageError(context, "--stdin takes no other arguments than --sync");
    }
    absl::StatusOr<std::vector<client::Event>> read = ReadStdinEvents();
    if (!read.ok()) {
      return UsageError(context, std::string(read.status().message()));
    }
    events = *std::move(read);
  } else {
    if (context.operands.size() != 3) {
      return UsageError(context, "expected ACCOUNT METRIC VALUE");
    }
    absl::StatusOr<client::Event> event = EventFromOperands(context);
    if (!event.ok()) {
      return UsageError(context, std::string(event.status().message()));
    }
    events.push_back(*std::move(event));
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  const client::DeliveryMode mode =
      context.args.Has("sync") ? client::DeliveryMode::kSync : client::DeliveryMode::kAsync;
  absl::StatusOr<client::IngestResult> result = context.client->Ingest(events, mode);
  if (!result.ok()) {
    return result.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError(context, std::string(result.status().message()))
               : ServerError(result.status());
  }
  if (context.json) {
    std::cout << absl::StrCat("{\"events\":", events.size(), ",\"stored\":", result->n_stored,
                              ",\"duplicates\":", result->n_duplicates,
                              ",\"last_offset\":", result->last_offset,
                              ",\"requests\":", result->requests, ",\"unknown_metric\":",
                              result->unknown_metric_replies > 0 ? "true" : "false", "}")
              << "\n";
  } else {
    std::cout << absl::StrCat(events.size(), " events sent (",
                              mode == client::DeliveryMode::kSync ? "sync" : "async", "): stored ",
                              result->n_stored, ", duplicates ", result->n_duplicates,
                              ", last offset ", result->last_offset)
              << "\n";
    if (result->unknown_metric_replies > 0) {
      std::cout << "warning: some events name a metric with no registered schema (stored, not "
                   "aggregated)\n";
    }
  }
  return kExitOk;
}

// ---- queries ----------------------------------------------------------------------------------

// Parses --name as a time, or returns `fallback`.
absl::StatusOr<int64_t> TimeFlag(const Context& context, const std::string& name,
                                 int64_t fallback) {
  std::optional<std::string> text = context.args.Get(name);
  if (!text.has_value()) {
    return fallback;
  }
  return ParseTimeNs(*text);
}

struct AccountMetric {
  uint64_t account = 0;
  std::string metric;
  int64_t from_ns = 0;
  int64_t to_ns = 0;
};

absl::StatusOr<AccountMetric> ParseAccountMetricRange(const Context& context) {
  if (context.operands.size() != 2) {
    return absl::InvalidArgumentError("expected ACCOUNT METRIC");
  }
  absl::StatusOr<uint64_t> account = ParseU64(context.operands[0], "ACCOUNT");
  if (!account.ok()) {
    return account.status();
  }
  const auto [month_start, month_end] = CalendarMonthRange(NowNs());
  absl::StatusOr<int64_t> from = TimeFlag(context, "from", month_start);
  absl::StatusOr<int64_t> to = TimeFlag(context, "to", month_end);
  if (!from.ok() || !to.ok()) {
    return from.ok() ? to.status() : from.status();
  }
  return AccountMetric{
      .account = *account, .metric = context.operands[1], .from_ns = *from, .to_ns = *to};
}

int Query(Context& context) {
  if (absl::Status flags = CheckFlags(context, {"from", "to", "filter"}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  absl::StatusOr<AccountMetric> target = ParseAccountMetricRange(context);
  if (!target.ok()) {
    return UsageError(context, std::string(target.status().message()));
  }
  std::vector<client::Filter> filters;
  for (const std::string& text : context.args.GetAll("filter")) {
    absl::StatusOr<std::pair<std::string, std::string>> pair = ParseKeyValue(text, "--filter");
    if (!pair.ok()) {
      return UsageError(context, std::string(pair.status().message()));
    }
    filters.push_back({.key = pair->first, .value = pair->second});
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::StatusOr<client::AggValue> value = context.client->Usage(
      target->account, target->metric, target->from_ns, target->to_ns, filters);
  if (!value.ok()) {
    return value.status().code() == absl::StatusCode::kInvalidArgument
               ? UsageError(context, std::string(value.status().message()))
               : ServerError(value.status());
  }
  PrintAgg(context, *value,
           absl::StrCat("account ", target->account, " metric ", target->metric, " from ",
                        FormatTimeNs(target->from_ns), " to ", FormatTimeNs(target->to_ns),
                        " (whole buckets)\n"));
  return kExitOk;
}

int Breakdown(Context& context) {
  if (absl::Status flags = CheckFlags(context, {"from", "to", "by"}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  absl::StatusOr<AccountMetric> target = ParseAccountMetricRange(context);
  if (!target.ok()) {
    return UsageError(context, std::string(target.status().message()));
  }
  std::vector<std::string> keys;
  std::string by = context.args.Get("by").value_or("");
  for (size_t start = 0; start <= by.size() && !by.empty();) {
    const size_t comma = by.find(',', start);
    keys.push_back(
        by.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  if (keys.empty() || keys.size() > 4) {
    return UsageError(context, "--by needs 1 to 4 comma-separated keys");
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::StatusOr<std::vector<client::BreakdownCell>> cells = context.client->Breakdown(
      target->account, target->metric, target->from_ns, target->to_ns, keys);
  if (!cells.ok()) {
    return ServerError(cells.status());
  }
  if (context.json) {
    std::string out = "[";
    for (size_t i = 0; i < cells->size(); ++i) {
      std::string dims;
      for (const client::Filter& d : (*cells)[i].dimensions) {
        dims += absl::StrCat(dims.empty() ? "" : ",", JsonString(d.key), ":", JsonString(d.value));
      }
      out += absl::StrCat(i == 0 ? "" : ",", "{\"dimensions\":{", dims,
                          "},\"value\":", AggJson((*cells)[i].value), "}");
    }
    std::cout << out << "]\n";
    return kExitOk;
  }
  std::vector<std::string> header = keys;
  for (const char* column : {"SUM", "COUNT", "MAX", "LAST_VALUE"}) {
    header.push_back(column);
  }
  std::vector<std::vector<std::string>> rows;
  for (const client::BreakdownCell& cell : *cells) {
    std::vector<std::string> row;
    for (const client::Filter& d : cell.dimensions) {
      row.push_back(d.value);
    }
    row.resize(keys.size());
    row.push_back(U128ToString(cell.value.sum));
    row.push_back(std::to_string(cell.value.count));
    row.push_back(std::to_string(cell.value.max));
    row.push_back(std::to_string(cell.value.last_value));
    rows.push_back(std::move(row));
  }
  std::cout << FormatTable(header, rows);
  return kExitOk;
}

int Realtime(Context& context) {
  if (absl::Status flags = CheckFlags(context, {}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  absl::StatusOr<AccountMetric> target = ParseAccountMetricRange(context);
  if (!target.ok()) {
    return UsageError(context, std::string(target.status().message()));
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::StatusOr<client::AggValue> value =
      context.client->Realtime(target->account, target->metric);
  if (!value.ok()) {
    return ServerError(value.status());
  }
  PrintAgg(context, *value, "");
  return kExitOk;
}

int Events(Context& context) {
  if (absl::Status flags = CheckFlags(context, {"since", "until"}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  if (context.operands.size() != 1) {
    return UsageError(context, "expected ACCOUNT");
  }
  absl::StatusOr<uint64_t> account = ParseU64(context.operands[0], "ACCOUNT");
  absl::StatusOr<int64_t> since = TimeFlag(context, "since", 0);
  absl::StatusOr<int64_t> until = TimeFlag(context, "until", INT64_MAX);
  for (const absl::Status& status : {account.status(), since.status(), until.status()}) {
    if (!status.ok()) {
      return UsageError(context, std::string(status.message()));
    }
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  absl::StatusOr<std::vector<client::EventRecord>> events =
      context.client->EventsList(*account, *since, *until);
  if (!events.ok()) {
    return ServerError(events.status());
  }
  static constexpr const char* kOps[] = {"none", "add", "remove"};
  if (context.json) {
    std::string out = "[";
    for (size_t i = 0; i < events->size(); ++i) {
      const client::EventRecord& e = (*events)[i];
      out += absl::StrCat(i == 0 ? "" : ",", "{\"offset\":", e.offset,
                          ",\"timestamp\":", e.timestamp_ns, ",\"account_id\":", e.account_id,
                          ",\"metric_code\":", JsonString(e.metric_code), ",\"value\":", e.value,
                          ",\"operation\":", static_cast<int>(e.operation_type), "}");
    }
    std::cout << out << "]\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const client::EventRecord& e : *events) {
    rows.push_back(
        {std::to_string(e.offset), FormatTimeNs(e.timestamp_ns), e.metric_code,
         std::to_string(e.value),
         e.operation_type < 3 ? kOps[e.operation_type] : std::to_string(e.operation_type)});
  }
  std::cout << FormatTable({"OFFSET", "TIMESTAMP", "METRIC", "VALUE", "OP"}, rows);
  return kExitOk;
}

// ---- alerts -----------------------------------------------------------------------------------

std::string AlertJson(const std::string& node, const client::AlertRecord& a) {
  return absl::StrCat(
      "{\"node\":", JsonString(node), ",\"offset\":", a.offset, ",\"account_id\":", a.account_id,
      ",\"metric_code\":", JsonString(a.metric_code),
      ",\"threshold_code\":", JsonString(a.threshold_code),
      ",\"value_at_cross\":", a.value_at_cross, ",\"event_timestamp\":", a.event_timestamp_ns, "}");
}

int AlertsList(Context& context) {
  if (absl::Status flags = CheckFlags(context, {"account", "since-offset"}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  absl::StatusOr<uint64_t> account =
      ParseU64(context.args.Get("account").value_or("0"), "--account");
  absl::StatusOr<uint64_t> since =
      ParseU64(context.args.Get("since-offset").value_or("0"), "--since-offset");
  if (!account.ok() || !since.ok() || !context.operands.empty()) {
    return UsageError(context, !account.ok() ? std::string(account.status().message())
                               : !since.ok() ? std::string(since.status().message())
                                             : "unexpected arguments");
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  std::vector<std::vector<std::string>> rows;
  std::string json;
  int exit_code = kExitOk;
  for (const std::string& node : context.client->Nodes()) {
    absl::StatusOr<std::vector<client::AlertRecord>> alerts =
        context.client->AlertsList(node, *account, *since);
    if (!alerts.ok()) {
      std::cerr << "unimeter-cli: " << node << ": " << alerts.status().ToString() << "\n";
      exit_code = kExitServerError;
      continue;
    }
    for (const client::AlertRecord& a : *alerts) {
      json += absl::StrCat(json.empty() ? "" : ",", AlertJson(node, a));
      rows.push_back({node, std::to_string(a.offset), std::to_string(a.account_id), a.metric_code,
                      a.threshold_code, std::to_string(a.value_at_cross),
                      FormatTimeNs(a.event_timestamp_ns)});
    }
  }
  if (context.json) {
    std::cout << "[" << json << "]\n";
  } else {
    std::cout << FormatTable(
        {"NODE", "OFFSET", "ACCOUNT", "METRIC", "THRESHOLD", "VALUE", "EVENT_TIME"}, rows);
  }
  return exit_code;
}

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted = true; }

int AlertsWatch(Context& context) {
  if (absl::Status flags = CheckFlags(context, {"account"}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  absl::StatusOr<uint64_t> account =
      ParseU64(context.args.Get("account").value_or("0"), "--account");
  if (!account.ok() || !context.operands.empty()) {
    return UsageError(
        context, account.ok() ? "unexpected arguments" : std::string(account.status().message()));
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  std::mutex print_mu;
  const bool json = context.json;
  context.client->SetAlertCallback(
      [&print_mu, json, filter = *account](const client::AlertPush& p) {
        if (filter != 0 && p.record.account_id != filter) {
          return;
        }
        std::lock_guard<std::mutex> lock(print_mu);
        if (json) {
          std::cout << AlertJson(p.node_address, p.record) << std::endl;
        } else {
          std::cout << FormatTimeNs(p.record.event_timestamp_ns) << "  node " << p.node_address
                    << " offset " << p.record.offset << "  account " << p.record.account_id << "  "
                    << p.record.metric_code << " crossed " << p.record.threshold_code << " at "
                    << p.record.value_at_cross << std::endl;
        }
      });
  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
  if (absl::Status enabled = context.client->EnableAlertPush(); !enabled.ok()) {
    return ServerError(enabled);
  }
  if (!json) {
    std::cerr << "watching alerts on " << context.client->Nodes().size()
              << " node(s); Ctrl-C to stop\n";
  }
  while (!g_interrupted) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return kExitOk;
}

// ---- cluster ----------------------------------------------------------------------------------

int ClusterStatusCommand(Context& context) {
  if (absl::Status flags = CheckFlags(context, {}); !flags.ok()) {
    return UsageError(context, std::string(flags.message()));
  }
  if (absl::Status connected = Connect(context); !connected.ok()) {
    return ServerError(connected);
  }
  const client::PartitionMap map = context.client->GetPartitionMap();
  std::map<std::string, int> leader_partitions;
  for (const client::PartitionMapEntry& entry : map) {
    ++leader_partitions[entry.leader];
  }
  std::vector<std::vector<std::string>> rows;
  std::string json;
  int exit_code = kExitOk;
  for (const std::string& node : context.client->Nodes()) {
    absl::StatusOr<client::ClusterStatus> status = context.client->GetClusterStatus(node);
    if (!status.ok()) {
      rows.push_back({node, "-", "-", "-", "-", "-", "-", std::to_string(leader_partitions[node]),
                      std::string(status.status().message())});
      json += absl::StrCat(json.empty() ? "" : ",", "{\"node\":", JsonString(node),
                           ",\"error\":", JsonString(std::string(status.status().message())), "}");
      exit_code = kExitServerError;
      continue;
    }
    int owned = 0;
    for (const protocol::PartitionStatus& p : status->partitions) {
      owned += p.role == 0 ? 1 : 0;
    }
    rows.push_back({node, std::to_string(status->node_id), std::to_string(status->n_nodes),
                    std::to_string(status->wal_offset), std::to_string(status->segment_count),
                    std::to_string(status->memtable_entries),
                    absl::StrCat(status->uptime_ns / 1'000'000'000, "s"),
                    std::to_string(leader_partitions[node]), std::to_string(owned)});
    json += absl::StrCat(
        json.empty() ? "" : ",", "{\"node\":", JsonString(node), ",\"node_id\":", status->node_id,
        ",\"n_nodes\":", status->n_nodes, ",\"wal_offset\":", status->wal_offset,
        ",\"segment_count\":", status->segment_count, ",\"agg_keys\":", status->memtable_entries,
        ",\"uptime_ns\":", status->uptime_ns,
        ",\"map_leader_partitions\":", leader_partitions[node], ",\"owned_partitions\":", owned,
        "}");
  }
  if (context.json) {
    std::cout << "[" << json << "]\n";
  } else {
    std::cout << FormatTable({"NODE", "ID", "N_NODES", "WAL_OFFSET", "SEGMENTS", "AGG_KEYS",
                              "UPTIME", "MAP_LEADS", "OWNS"},
                             rows);
  }
  return exit_code;
}

// ---- main -------------------------------------------------------------------------------------

int Run(int argc, char** argv) {
  Context context;
  context.args = ParseArgs(std::vector<std::string>(argv + 1, argv + argc));
  std::vector<std::string>& positional = context.args.positional;
  if (positional.empty()) {
    std::cout << kMainHelp;
    return context.args.Has("help") ? kExitOk : kExitUsage;
  }
  const std::string& first = positional[0];
  const bool two_words = first == "metrics" || first == "alerts" || first == "cluster";
  if (two_words) {
    if (positional.size() < 2) {
      std::cerr << "unimeter-cli: '" << first << "' needs a subcommand\n" << kMainHelp;
      return kExitUsage;
    }
    context.command = first + " " + positional[1];
  } else {
    context.command = first;
  }
  if (CommandHelp().count(context.command) == 0) {
    std::cerr << "unimeter-cli: unknown command '" << context.command << "'\n" << kMainHelp;
    return kExitUsage;
  }
  if (context.args.Has("help")) {
    std::cout << CommandHelp().at(context.command);
    return kExitOk;
  }
  context.operands.assign(positional.begin() + (two_words ? 2 : 1), positional.end());
  context.json = context.args.Has("json");
  const char* env_seeds = std::getenv("UNIMETER_SEEDS");
  std::string seeds =
      context.args.Get("seeds").value_or(env_seeds != nullptr ? env_seeds : "127.0.0.1:7001");
  for (size_t start = 0; start <= seeds.size();) {
    const size_t comma = seeds.find(',', start);
    std::string seed =
        seeds.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!seed.empty()) {
      context.seeds.push_back(seed);
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  if (context.seeds.empty()) {
    return UsageError(context, "--seeds is empty");
  }
  absl::StatusOr<uint64_t> timeout =
      ParseU64(context.args.Get("timeout-ms").value_or("10000"), "--timeout-ms");
  if (!timeout.ok() || *timeout == 0 || *timeout > 3'600'000) {
    return UsageError(context, "--timeout-ms must be 1..3600000");
  }
  context.timeout_ms = static_cast<int64_t>(*timeout);

  static const std::map<std::string, int (*)(Context&)> kCommands = {
      {"metrics create", MetricsCreate},
      {"metrics list", MetricsList},
      {"metrics delete", MetricsDelete},
      {"ingest", Ingest},
      {"query", Query},
      {"breakdown", Breakdown},
      {"realtime", Realtime},
      {"events", Events},
      {"alerts list", AlertsList},
      {"alerts watch", AlertsWatch},
      {"cluster status", ClusterStatusCommand},
  };
  return kCommands.at(context.command)(context);
}

}  // namespace
}  // namespace unimeter::tools

int main(int argc, char** argv) { return unimeter::tools::Run(argc, argv); }
