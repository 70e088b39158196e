#include "node/metering/period.h"

#include <cstdint>

#include "node/base/check.h"
#include "node/metering/types.h"

namespace unimeter::metering {
namespace {

// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
constexpr int64_t kDaysFromYear0March1ToEpoch = 719'468;
constexpr int64_t kDaysPer400Years = 146'097;

// Floor division for a positive divisor.
int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

int64_t ClampToInt64(__int128 value) {
  if (value > INT64_MAX) return INT64_MAX;
  if (value < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(value);
}

BucketRange FixedLength(int64_t timestamp_ns, int64_t length_ns) {
  const int64_t t = timestamp_ns < 0 ? 0 : timestamp_ns;
  const int64_t k = t / length_ns;
  const __int128 start = static_cast<__int128>(k) * length_ns;
  return {ClampToInt64(start), ClampToInt64(start + length_ns)};
}

int64_t MidnightNs(const CivilDate& date) {
  return ClampToInt64(static_cast<__int128>(DaysFromCivil(date)) * kNanosPerDay);
}

CivilDate PreviousMonth(CivilDate date) {
  if (date.month == 1) return {date.year - 1, 12, date.day};
  return {date.year, date.month - 1, date.day};
}

CivilDate NextMonth(CivilDate date) {
  if (date.month == 12) return {date.year + 1, 1, date.day};
  return {date.year, date.month + 1, date.day};
}

BucketRange Calendar(int64_t timestamp_ns, uint8_t billing_cycle_day) {
  const int64_t t = timestamp_ns < 0 ? 0 : timestamp_ns;
  const CivilDate today = CivilFromDays(t / kNanosPerDay);
  CivilDate start{today.year, today.month, billing_cycle_day};
  if (today.day < billing_cycle_day) start = PreviousMonth(start);
  return {MidnightNs(start), MidnightNs(NextMonth(start))};
}

}  // namespace

bool IsLeapYear(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  UM_CHECK_GE(month, 1);
  UM_CHECK_LE(month, 12);
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Counts days in a calendar whose year starts on March 1, so the leap day is the last day
// of the year: then a year has 365 days plus one every 4 years, minus one every 100, plus
// one every 400, and months March..February have lengths following (153 * m + 2) / 5.
int64_t DaysFromCivil(const CivilDate& date) {
  UM_CHECK_GE(date.month, 1);
  UM_CHECK_LE(date.month, 12);
  const int64_t march_year = date.month <= 2 ? date.year - 1 : date.year;
  const int64_t march_month = date.month <= 2 ? date.month + 9 : date.month - 3;  // 0 = March
  const int64_t era = FloorDiv(march_year, 400);
  const int64_t year_of_era = march_year - era * 400;  // 0..399
  const int64_t day_of_year = (153 * march_month + 2) / 5 + date.day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * kDaysPer400Years + day_of_era - kDaysFromYear0March1ToEpoch;
}

CivilDate CivilFromDays(int64_t days) {
  const int64_t shifted = days + kDaysFromYear0March1ToEpoch;
  const int64_t era = FloorDiv(shifted, kDaysPer400Years);
  const int64_t day_of_era = shifted - era * kDaysPer400Years;  // 0..146096
  // Remove the leap days accumulated before this day to find the year of the era.
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t march_month = (5 * day_of_year + 2) / 153;  // 0 = March
  const int day = static_cast<int>(day_of_year - (153 * march_month + 2) / 5 + 1);
  const int month = static_cast<int>(march_month < 10 ? march_month + 3 : march_month - 9);
  const int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

BucketRange BucketContaining(uint8_t period_type_raw, uint8_t billing_cycle_day,
                             int64_t timestamp_ns) {
  switch (EffectivePeriodType(period_type_raw)) {
    case PeriodType::kCalendar:
      UM_CHECK_GE(billing_cycle_day, kBillingCycleDayMin);
      UM_CHECK_LE(billing_cycle_day, kBillingCycleDayMax);
      return Calendar(timestamp_ns, billing_cycle_day);
    case PeriodType::kDay:
      return FixedLength(timestamp_ns, kNanosPerDay);
    case PeriodType::kFixed:
      break;
  }
  return FixedLength(timestamp_ns, kFixedPeriodNanos);
}

}  // namespace unimeter::metering
