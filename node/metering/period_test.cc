// Goal: every worked example of product-semantics section 3 and the calendar edges (cycle
// days 1/15/28, month ends, December -> January, leap years, negative timestamps, the end
// of the int64 range). Method: compare BucketContaining with dates built by DaysFromCivil,
// and cross-check the civil conversion against a day-by-day walk.
#include "node/metering/period.h"

#include "gtest/gtest.h"
#include "node/metering/types.h"

namespace unimeter::metering {
namespace {

constexpr uint8_t kFixed = 0;
constexpr uint8_t kCalendar = 1;
constexpr uint8_t kDay = 2;

int64_t At(int64_t year, int month, int day, int64_t seconds_of_day = 0) {
  return DaysFromCivil({year, month, day}) * kNanosPerDay + seconds_of_day * kNanosPerSecond;
}

BucketRange Range(CivilDate start, CivilDate end) {
  return {DaysFromCivil(start) * kNanosPerDay, DaysFromCivil(end) * kNanosPerDay};
}

TEST(PeriodTest, CivilConversionMatchesDayWalk) {
  CivilDate date{1900, 1, 1};
  for (int64_t days = DaysFromCivil(date); days < DaysFromCivil({2401, 1, 1}); ++days) {
    ASSERT_EQ(CivilFromDays(days), date) << days;
    ASSERT_EQ(DaysFromCivil(date), days);
    if (++date.day > DaysInMonth(date.year, date.month)) {
      date.day = 1;
      if (++date.month > 12) {
        date.month = 1;
        ++date.year;
      }
    }
  }
  EXPECT_EQ(DaysFromCivil({1970, 1, 1}), 0);
  EXPECT_EQ(DaysFromCivil({1969, 12, 31}), -1);
}

TEST(PeriodTest, LeapYears) {
  EXPECT_TRUE(IsLeapYear(2024));
  EXPECT_TRUE(IsLeapYear(2000));
  EXPECT_FALSE(IsLeapYear(2100));
  EXPECT_FALSE(IsLeapYear(2026));
  EXPECT_EQ(DaysInMonth(2024, 2), 29);
  EXPECT_EQ(DaysInMonth(2100, 2), 28);
  EXPECT_EQ(DaysInMonth(2000, 2), 29);
}

TEST(PeriodTest, FixedWorkedExamples) {
  const int64_t t = 1'767'225'600 * kNanosPerSecond;  // 2026-01-01T00:00:00Z
  EXPECT_EQ(t, At(2026, 1, 1));
  const BucketRange bucket = BucketContaining(kFixed, 1, t);
  EXPECT_EQ(bucket.start_ns, 681 * kFixedPeriodNanos);
  EXPECT_EQ(bucket, Range({2025, 12, 8}, {2026, 1, 7}));
  // A calendar-month query touches buckets 681 and 682 (2025-12-08 .. 2026-02-06).
  EXPECT_EQ(BucketContaining(kFixed, 1, At(2026, 2, 1) - 1), Range({2026, 1, 7}, {2026, 2, 6}));
  EXPECT_EQ(BucketContaining(kFixed, 1, 0), (BucketRange{0, kFixedPeriodNanos}));
  EXPECT_EQ(BucketContaining(kFixed, 1, kFixedPeriodNanos - 1),
            (BucketRange{0, kFixedPeriodNanos}));
  EXPECT_EQ(BucketContaining(kFixed, 1, kFixedPeriodNanos).start_ns, kFixedPeriodNanos);
}

TEST(PeriodTest, UnknownPeriodTypesBehaveAsFixed) {
  const int64_t t = At(2026, 3, 10, 5);
  for (int raw = 3; raw < 256; ++raw) {
    EXPECT_EQ(BucketContaining(static_cast<uint8_t>(raw), 15, t), BucketContaining(kFixed, 15, t));
  }
}

TEST(PeriodTest, CalendarWorkedExamples) {
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2026, 3, 10)), Range({2026, 3, 1}, {2026, 4, 1}));
  EXPECT_EQ(BucketContaining(kCalendar, 15, At(2026, 3, 10)), Range({2026, 2, 15}, {2026, 3, 15}));
  EXPECT_EQ(BucketContaining(kCalendar, 15, At(2026, 1, 5)), Range({2025, 12, 15}, {2026, 1, 15}));
}

TEST(PeriodTest, CalendarEdges) {
  // The cycle day itself starts a bucket; the instant before belongs to the previous one.
  EXPECT_EQ(BucketContaining(kCalendar, 15, At(2026, 3, 15)), Range({2026, 3, 15}, {2026, 4, 15}));
  EXPECT_EQ(BucketContaining(kCalendar, 15, At(2026, 3, 15) - 1),
            Range({2026, 2, 15}, {2026, 3, 15}));
  // Month ends, cycle day 1.
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2026, 1, 31, 86'399)),
            Range({2026, 1, 1}, {2026, 2, 1}));
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2025, 12, 31, 86'399)),
            Range({2025, 12, 1}, {2026, 1, 1}));
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2026, 1, 1)), Range({2026, 1, 1}, {2026, 2, 1}));
  // Cycle day 28 across February of leap and common years.
  EXPECT_EQ(BucketContaining(kCalendar, 28, At(2024, 2, 29)), Range({2024, 2, 28}, {2024, 3, 28}));
  EXPECT_EQ(BucketContaining(kCalendar, 28, At(2024, 2, 27)), Range({2024, 1, 28}, {2024, 2, 28}));
  EXPECT_EQ(BucketContaining(kCalendar, 28, At(2100, 3, 1)), Range({2100, 2, 28}, {2100, 3, 28}));
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2100, 2, 28)), Range({2100, 2, 1}, {2100, 3, 1}));
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2000, 2, 29)), Range({2000, 2, 1}, {2000, 3, 1}));
  EXPECT_EQ(BucketContaining(kCalendar, 1, At(2024, 2, 29, 86'399)),
            Range({2024, 2, 1}, {2024, 3, 1}));
  // December -> January with a late cycle day.
  EXPECT_EQ(BucketContaining(kCalendar, 28, At(2026, 1, 2)), Range({2025, 12, 28}, {2026, 1, 28}));
  EXPECT_EQ(BucketContaining(kCalendar, 28, At(2025, 12, 30)),
            Range({2025, 12, 28}, {2026, 1, 28}));
}

TEST(PeriodTest, DayBuckets) {
  const int64_t t = At(2026, 3, 10) + kNanosPerDay - 1;  // 23:59:59.999999999
  EXPECT_EQ(BucketContaining(kDay, 1, t), Range({2026, 3, 10}, {2026, 3, 11}));
  EXPECT_EQ(BucketContaining(kDay, 1, t + 1), Range({2026, 3, 11}, {2026, 3, 12}));
  EXPECT_EQ(BucketContaining(kDay, 1, At(2024, 2, 29, 3600)), Range({2024, 2, 29}, {2024, 3, 1}));
}

TEST(PeriodTest, NegativeTimestampsUseTheEpoch) {
  EXPECT_EQ(BucketContaining(kFixed, 1, -1), (BucketRange{0, kFixedPeriodNanos}));
  EXPECT_EQ(BucketContaining(kDay, 1, INT64_MIN), (BucketRange{0, kNanosPerDay}));
  EXPECT_EQ(BucketContaining(kCalendar, 1, -kNanosPerDay * 400), Range({1970, 1, 1}, {1970, 2, 1}));
  EXPECT_EQ(BucketContaining(kCalendar, 15, -5), Range({1969, 12, 15}, {1970, 1, 15}));
}

TEST(PeriodTest, EndOfRangeIsClamped) {
  for (uint8_t type : {kFixed, kCalendar, kDay}) {
    const BucketRange bucket = BucketContaining(type, 1, INT64_MAX);
    EXPECT_TRUE(bucket.Contains(INT64_MAX - 1));
    EXPECT_EQ(bucket.end_ns, INT64_MAX);
    EXPECT_LT(bucket.start_ns, bucket.end_ns);
  }
}

}  // namespace
}  // namespace unimeter::metering
