// tools/cli_args.h
//
// Pure helpers of unimeter-cli and unimeter-bench: command-line splitting into positional
// arguments and `--name=value` flags, time parsing (ns or RFC 3339 UTC) and formatting, the
// default query range (the current calendar month), parsing of --dimension / --threshold /
// --prop / --filter values, the JSON-lines event format of `ingest --stdin`, and output
// formatting (aligned tables, JSON strings, 128-bit integers). No I/O, no clocks.
#ifndef UNIMETER_TOOLS_CLI_ARGS_H_
#define UNIMETER_TOOLS_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"

namespace unimeter::tools {

// argv split into positionals and flags. `--name=value` and `--name value`-less booleans
// (`--name` alone stores "true"). A lone `--` ends flag parsing. `-h` is `--help`.
struct ParsedArgs {
  std::vector<std::string> positional{};
  std::multimap<std::string, std::string> flags{};

  bool Has(const std::string& name) const { return flags.count(name) != 0; }
  // The last value of `name`, or nullopt.
  std::optional<std::string> Get(const std::string& name) const;
  std::vector<std::string> GetAll(const std::string& name) const;
  // InvalidArgument naming the first flag not in `allowed`.
  absl::Status CheckAllowed(const std::vector<std::string>& allowed) const;
};
ParsedArgs ParseArgs(const std::vector<std::string>& args);

// Integers with range checks; InvalidArgument naming `what`.
absl::StatusOr<uint64_t> ParseU64(std::string_view text, std::string_view what);
absl::StatusOr<int64_t> ParseI64(std::string_view text, std::string_view what);
// The value of --`name` as an integer in [minimum, maximum]; `fallback` when the flag is
// absent; InvalidArgument naming the flag otherwise.
absl::StatusOr<int64_t> IntFlag(const ParsedArgs& args, const std::string& name, int64_t fallback,
                                int64_t minimum, int64_t maximum);

// A time as integer ns since the epoch, or RFC 3339 UTC: `2026-01-01T00:00:00Z`, optionally
// with a fraction of up to 9 digits (`...00.5Z`) or a `+00:00` offset. Other offsets are
// accepted and converted to UTC.
absl::StatusOr<int64_t> ParseTimeNs(std::string_view text);
// RFC 3339 UTC with nanoseconds only when non-zero: `2026-01-01T00:00:00Z`.
std::string FormatTimeNs(int64_t time_ns);
// ns since the epoch of 00:00:00 UTC on the given civil date (proleptic Gregorian).
int64_t CivilToNs(int64_t year, int64_t month, int64_t day);
// [first day of the month containing now_ns, first day of the next month), UTC.
std::pair<int64_t, int64_t> CalendarMonthRange(int64_t now_ns);

// `key:v1,v2,...` (a metric dimension with its allowed values, at most 8).
absl::StatusOr<protocol::DimensionSpec> ParseDimension(std::string_view text);
// `code:value[:recurring]`.
absl::StatusOr<protocol::ThresholdSpec> ParseThreshold(std::string_view text);
// `key=value` (--prop and --filter).
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(std::string_view text,
                                                                  std::string_view what);
// sum|count|max|latest|count_unique -> agg_type; fixed|calendar|day -> period_type.
absl::StatusOr<uint8_t> ParseAggType(std::string_view text);
absl::StatusOr<uint8_t> ParsePeriodType(std::string_view text);
std::string AggTypeName(uint8_t agg_type);
std::string PeriodTypeName(uint8_t period_type);

// One line of `ingest --stdin`: a JSON object with account_id, metric_code and value
// (required), timestamp (ns integer or RFC 3339 string; default 0), operation ("add",
// "remove" or "none") and properties (an object of string values).
absl::StatusOr<client::Event> ParseEventJson(std::string_view line);

// Output helpers.
std::string U128ToString(unsigned __int128 value);
std::string JsonString(std::string_view text);  // Quoted and escaped.
// Left-aligned columns separated by two spaces, a header row first.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

}  // namespace unimeter::tools

#endif  // UNIMETER_TOOLS_CLI_ARGS_H_
