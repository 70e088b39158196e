// Tests of the CLI helpers: argument splitting, time parsing and formatting (RFC 3339 UTC and
// ns), the default calendar-month range, metric flag values and the JSON-lines event format.
#include "tools/cli_args.h"

#include "gtest/gtest.h"

namespace unimeter::tools {
namespace {

constexpr int64_t kNs = 1'000'000'000;

TEST(ParseArgsTest, SplitsFlagsAndPositionals) {
  ParsedArgs args = ParseArgs({"--seeds=a:1,b:2", "metrics", "create", "api", "--agg=sum",
                               "--dimension=region:eu,us", "--dimension=tier:free", "--json", "-h",
                               "--", "--not-a-flag"});
  EXPECT_EQ(args.positional,
            (std::vector<std::string>{"metrics", "create", "api", "--not-a-flag"}));
  EXPECT_EQ(args.Get("seeds"), "a:1,b:2");
  EXPECT_EQ(args.Get("json"), "true");
  EXPECT_TRUE(args.Has("help"));
  EXPECT_EQ(args.GetAll("dimension"), (std::vector<std::string>{"region:eu,us", "tier:free"}));
  EXPECT_FALSE(args.Get("missing").has_value());
  EXPECT_TRUE(args.CheckAllowed({"seeds", "agg", "dimension", "json", "help"}).ok());
  EXPECT_FALSE(args.CheckAllowed({"seeds"}).ok());
}

TEST(ParseArgsTest, NegativeNumbersStayPositional) {
  ParsedArgs args = ParseArgs({"events", "-5"});
  EXPECT_EQ(args.positional, (std::vector<std::string>{"events", "-5"}));
}

TEST(ParseIntegersTest, RangesAreChecked) {
  EXPECT_EQ(*ParseU64("18446744073709551615", "x"), UINT64_MAX);
  EXPECT_FALSE(ParseU64("18446744073709551616", "x").ok());
  EXPECT_FALSE(ParseU64("-1", "x").ok());
  EXPECT_FALSE(ParseU64("", "x").ok());
  EXPECT_FALSE(ParseU64("12a", "x").ok());
  EXPECT_EQ(*ParseI64("-9223372036854775808", "x"), INT64_MIN);
  EXPECT_FALSE(ParseI64("9223372036854775808", "x").ok());
}

TEST(ParseTimeTest, AcceptsNanosecondsAndRfc3339Utc) {
  EXPECT_EQ(*ParseTimeNs("0"), 0);
  EXPECT_EQ(*ParseTimeNs("1767225600000000000"), 1'767'225'600 * kNs);
  EXPECT_EQ(*ParseTimeNs("1970-01-01T00:00:00Z"), 0);
  // product-semantics 3: 2026-01-01T00:00:00Z = 1,767,225,600 s.
  EXPECT_EQ(*ParseTimeNs("2026-01-01T00:00:00Z"), 1'767'225'600 * kNs);
  EXPECT_EQ(*ParseTimeNs("2026-01-01"), 1'767'225'600 * kNs);
  EXPECT_EQ(*ParseTimeNs("2026-03-10T23:59:59.999999999Z"),
            *ParseTimeNs("2026-03-11T00:00:00Z") - 1);
  EXPECT_EQ(*ParseTimeNs("2026-01-01T01:00:00+01:00"), 1'767'225'600 * kNs);
  EXPECT_EQ(*ParseTimeNs("2024-02-29T12:00:00.5Z") % kNs, kNs / 2);
  EXPECT_EQ(*ParseTimeNs("1969-12-31T23:59:59Z"), -kNs);
}

TEST(ParseTimeTest, RejectsMalformedTimes) {
  for (const char* bad : {"2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-01-01T00:00:00",
                          "2026-01-01T24:00:00Z", "2026-1-01", "yesterday", "2026-01-01T00:00Z",
                          "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00Zjunk", ""}) {
    EXPECT_FALSE(ParseTimeNs(bad).ok()) << bad;
  }
}

TEST(FormatTimeTest, RoundTripsThroughParse) {
  EXPECT_EQ(FormatTimeNs(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimeNs(1'767'225'600 * kNs), "2026-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimeNs(-1), "1969-12-31T23:59:59.999999999Z");
  for (int64_t t : {int64_t{0}, int64_t{1}, 951'782'400 * kNs + 123, 4'102'444'800 * kNs - 1,
                    -86'400 * kNs * 365}) {
    EXPECT_EQ(*ParseTimeNs(FormatTimeNs(t)), t) << FormatTimeNs(t);
  }
}

TEST(CalendarMonthRangeTest, CoversTheMonthOfNow) {
  auto [start, end] = CalendarMonthRange(*ParseTimeNs("2026-03-10T12:00:00Z"));
  EXPECT_EQ(start, *ParseTimeNs("2026-03-01T00:00:00Z"));
  EXPECT_EQ(end, *ParseTimeNs("2026-04-01T00:00:00Z"));
  std::tie(start, end) = CalendarMonthRange(*ParseTimeNs("2025-12-31T23:59:59Z"));
  EXPECT_EQ(start, *ParseTimeNs("2025-12-01T00:00:00Z"));
  EXPECT_EQ(end, *ParseTimeNs("2026-01-01T00:00:00Z"));
}

TEST(MetricFlagsTest, DimensionsThresholdsAndNames) {
  absl::StatusOr<protocol::DimensionSpec> dimension = ParseDimension("region:eu,us,ap");
  ASSERT_TRUE(dimension.ok());
  EXPECT_EQ(dimension->key, "region");
  EXPECT_EQ(dimension->values, (std::vector<std::string>{"eu", "us", "ap"}));
  EXPECT_FALSE(ParseDimension("region").ok());
  EXPECT_FALSE(ParseDimension("region:eu,,us").ok());
  EXPECT_FALSE(ParseDimension("k:1,2,3,4,5,6,7,8,9").ok());

  absl::StatusOr<protocol::ThresholdSpec> threshold = ParseThreshold("quota:1000:recurring");
  ASSERT_TRUE(threshold.ok());
  EXPECT_EQ(threshold->code, "quota");
  EXPECT_EQ(threshold->value, 1000u);
  EXPECT_TRUE(threshold->recurring);
  EXPECT_FALSE(ParseThreshold("quota:1000")->recurring);
  EXPECT_FALSE(ParseThreshold("quota:x").ok());
  EXPECT_FALSE(ParseThreshold("quota:1:sometimes").ok());

  EXPECT_EQ(*ParseAggType("count_unique"), 4);
  EXPECT_EQ(*ParseAggType("sum"), 1);
  EXPECT_FALSE(ParseAggType("avg").ok());
  EXPECT_EQ(*ParsePeriodType("calendar"), protocol::kPeriodTypeCalendar);
  EXPECT_FALSE(ParsePeriodType("week").ok());
  EXPECT_EQ(AggTypeName(3), "latest");
  EXPECT_EQ(*ParseKeyValue("region=eu=west", "--prop"),
            std::make_pair(std::string("region"), std::string("eu=west")));
  EXPECT_FALSE(ParseKeyValue("=x", "--prop").ok());
}

TEST(ParseEventJsonTest, ReadsOneEventPerLine) {
  absl::StatusOr<client::Event> event = ParseEventJson(
      R"({"account_id": 42, "metric_code": "api_calls", "value": 18446744073709551615,)"
      R"( "timestamp": "2026-01-01T00:00:00Z", "operation": "remove",)"
      R"( "properties": {"region": "eu\"w", "n": 5}})");
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(event->account_id, 42u);
  EXPECT_EQ(event->metric_code, "api_calls");
  EXPECT_EQ(event->value, UINT64_MAX);
  EXPECT_EQ(event->timestamp_ns, 1'767'225'600 * kNs);
  EXPECT_EQ(event->operation, client::OperationType::kRemove);
  ASSERT_EQ(event->properties.size(), 2u);
  EXPECT_EQ(event->properties[0].value, "eu\"w");
  EXPECT_EQ(event->properties[1].value, "5");

  EXPECT_TRUE(ParseEventJson(R"({"account_id":1,"metric_code":"m","value":2,"timestamp":7})").ok());
  EXPECT_FALSE(ParseEventJson(R"({"account_id":1,"metric_code":"m"})").ok());
  EXPECT_FALSE(ParseEventJson(R"({"account_id":-1,"metric_code":"m","value":1})").ok());
  EXPECT_FALSE(ParseEventJson(R"({"account_id":1.5,"metric_code":"m","value":1})").ok());
  EXPECT_FALSE(ParseEventJson(R"({"account_id":1,"metric_code":"m","value":1} x)").ok());
  EXPECT_FALSE(ParseEventJson(R"({"account_id":1,"metric_code":"m","value":1,"x":1})").ok());
  EXPECT_FALSE(ParseEventJson("not json").ok());
}

TEST(OutputTest, FormatsNumbersStringsAndTables) {
  EXPECT_EQ(U128ToString(0), "0");
  EXPECT_EQ(U128ToString(static_cast<unsigned __int128>(1) << 64), "18446744073709551616");
  EXPECT_EQ(JsonString("a\"b\\c\n\x01"), R"("a\"b\\c\n\u0001")");
  EXPECT_EQ(FormatTable({"A", "LONGER"}, {{"xyz", "1"}, {"", "22"}}),
            "A    LONGER\nxyz  1\n     22\n");
}

}  // namespace
}  // namespace unimeter::tools
