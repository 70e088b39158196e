// node/metering/period.h
//
// Period buckets (product-semantics.md section 3) [compat]: the half-open range
// [start_ns, end_ns) of the bucket containing a timestamp, for FIXED (30 days, aligned to
// the Unix epoch), CALENDAR (billing cycle day, UTC, proleptic Gregorian) and DAY. Any
// other period type behaves as FIXED. A negative timestamp is bucketed as the epoch.
// Buckets whose end would exceed the int64 range end at INT64_MAX.
//
// Pure integer arithmetic; the civil-date conversion is our own.
#ifndef UNIMETER_NODE_METERING_PERIOD_H_
#define UNIMETER_NODE_METERING_PERIOD_H_

#include <compare>
#include <cstdint>

namespace unimeter::metering {

struct BucketRange {
  int64_t start_ns = 0;
  int64_t end_ns = 0;  // Exclusive.
  bool operator==(const BucketRange&) const = default;
  auto operator<=>(const BucketRange&) const = default;
  bool Contains(int64_t timestamp_ns) const {
    return timestamp_ns >= start_ns && timestamp_ns < end_ns;
  }
};

struct CivilDate {
  int64_t year = 1970;
  int month = 1;  // 1-12
  int day = 1;    // 1-31
  bool operator==(const CivilDate&) const = default;
};

// Days since 1970-01-01 of a proleptic Gregorian date. REQUIRES: a valid date.
int64_t DaysFromCivil(const CivilDate& date);
// The date `days` days after 1970-01-01 (negative = before).
CivilDate CivilFromDays(int64_t days);
bool IsLeapYear(int64_t year);
int DaysInMonth(int64_t year, int month);

// The bucket containing `timestamp_ns` for a raw period type and a normalised billing cycle
// day. REQUIRES: 1 <= billing_cycle_day <= 28.
BucketRange BucketContaining(uint8_t period_type_raw, uint8_t billing_cycle_day,
                             int64_t timestamp_ns);

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_PERIOD_H_
