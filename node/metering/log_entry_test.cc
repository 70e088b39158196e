// Goal: pin the documented entry encoding (docs/formats/metering_entries.md) with golden
// bytes, round-trip every kind, and reject malformed bytes with DataLoss.
#include "node/metering/log_entry.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace unimeter::metering {
namespace {

std::string Hex(const std::vector<uint8_t>& bytes) {
  std::string out;
  char buffer[4];
  for (uint8_t byte : bytes) {
    std::snprintf(buffer, sizeof(buffer), "%02x", byte);
    out += buffer;
  }
  return out;
}

LogEntry GoldenBatch() {
  auto batch = std::make_shared<EventBatch>();
  batch->accept_time_ns = 0x0102030405060708;
  batch->first_offset = 7;
  BatchEvent event;
  event.account_id = 0x101;
  event.metric_code = "api";
  event.value = 5;
  event.timestamp_ns = 0x10;
  event.operation = OperationType::kAdd;
  event.registered = true;
  event.dedup_class = DedupClass::kContent;
  event.properties = {{"k", "v"}};
  batch->events.push_back(event);
  BatchEvent keyed;
  keyed.account_id = 1;
  keyed.metric_code = "x";
  keyed.timestamp_ns = 0x0102030405060709;
  keyed.server_stamped = true;
  keyed.negative_correction = true;
  keyed.dedup_class = DedupClass::kIdempotency;
  keyed.idempotency_key = IdempotencyKey{0xAA, 0xBB};
  batch->events.push_back(keyed);
  return LogEntry::Events(std::move(batch));
}

LogEntry GoldenPut() {
  MetricSchema schema;
  schema.code = "api";
  schema.agg_type = AggregationType::kSum;
  schema.period_type = 1;
  schema.billing_cycle_day = 15;
  schema.dimensions = {{"p", {"a", "b"}}};
  schema.thresholds = {{"t", 100, true}};
  return LogEntry::Put(*CompiledSchema::Create(schema));
}

TEST(LogEntryTest, GoldenBytes) {
  EXPECT_EQ(Hex(EncodeLogEntry(GoldenBatch())),
            "01010000"  // version 1, kind 1 (EventBatch), reserved
            "0807060504030201"
            "0700000000000000"
            "02000000"  // accept time, first offset, count
            "0101000000000000"
            "1000000000000000"
            "0500000000000000"  // account, ts, value
            "01"
            "01"
            "01"
            "01"  // op ADD, flags registered, class content, 1 prop
            "03617069"
            "016b"
            "0176"  // "api", k=v
            "0100000000000000"
            "0907060504030201"
            "0000000000000000"
            "00"
            "0e"
            "02"
            "00"  // op NONE, flags stamped|negative|key, class idem
            "aa00000000000000"
            "bb00000000000000"  // idempotency key high, low
            "0178");            // "x"
  EXPECT_EQ(Hex(EncodeLogEntry(GoldenPut())),
            "01020000"
            "03617069"
            "01"
            "00"
            "01"
            "0f"
            "00"  // code, SUM, not recurring, CALENDAR, day 15, ""
            "01"
            "0170"
            "02"
            "0161"
            "0162"  // 1 dimension p {a, b}
            "01"
            "0174"
            "6400000000000000"
            "01");  // 1 threshold t=100 recurring
  EXPECT_EQ(Hex(EncodeLogEntry(LogEntry::Delete("api"))), "0103000003617069");
  EXPECT_EQ(Hex(EncodeLogEntry(LogEntry::Retention(-2))), "01040000feffffffffffffff");
  EXPECT_EQ(Hex(EncodeLogEntry(LogEntry::StartOfEpoch(7))), "010500000700000000000000");
  EXPECT_EQ(Hex(EncodeLogEntry(LogEntry::RecordedAlerts(258))), "010600000201000000000000");
  // A registry version: flag 1 in the header, then u64 epoch, u32 sequence, then the body.
  EXPECT_EQ(Hex(EncodeLogEntry(LogEntry::Delete("api", RegistryVersion{0x100000002, 3}))),
            "01030100"
            "0200000001000000"
            "03000000"
            "03617069");
}

TEST(LogEntryTest, RegistryVersionsRoundTripAndAreChecked) {
  for (const LogEntry& entry :
       {LogEntry::Delete("m", RegistryVersion{5, 0}), LogEntry::Delete("m", RegistryVersion{0, 1}),
        LogEntry::Put(GoldenPut().put().schema, RegistryVersion{7, 9})}) {
    const std::vector<uint8_t> bytes = EncodeLogEntry(entry);
    absl::StatusOr<LogEntry> decoded = DecodeLogEntry(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(*decoded == entry);
    EXPECT_EQ(EncodeLogEntry(*decoded), bytes);
  }
  EXPECT_FALSE(LogEntry::Delete("m", RegistryVersion{5, 0}) == LogEntry::Delete("m"));
  // A flagged zero version, a flag on another kind, an unknown flag: refused.
  std::vector<uint8_t> bad = EncodeLogEntry(LogEntry::Delete("m", RegistryVersion{5, 0}));
  bad[4] = 0;
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = EncodeLogEntry(LogEntry::StartOfEpoch(7));
  bad[2] = 1;
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = EncodeLogEntry(LogEntry::Delete("m"));
  bad[2] = 2;
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = EncodeLogEntry(LogEntry::Delete("m", RegistryVersion{5, 1}));
  bad.resize(10);  // Truncated inside the version.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
}

LogEntry GoldenCopies() {
  auto copies = std::make_shared<AlertCopies>();
  copies->recorder = 2;
  copies->records.push_back(AlertCopy{5, AlertCrossing{258, "m", 1, "t", 100, -1, 7}});
  copies->records.push_back(AlertCopy{9, AlertCrossing{3, "api", 0, "", 0, 4, 0}});
  return LogEntry::CopiesOfAlerts(std::move(copies));
}

TEST(LogEntryTest, AlertCopiesEncodeAsDocumented) {
  EXPECT_EQ(Hex(EncodeLogEntry(GoldenCopies())),
            "01070000"
            "02000000"          // recorder
            "02000000"          // 2 records
            "0500000000000000"  // offset 5
            "0201000000000000"  // account 258
            "016d"              // metric "m"
            "01000000"          // threshold index 1
            "0174"              // threshold code "t"
            "6400000000000000"  // value 100
            "ffffffffffffffff"  // event timestamp -1
            "0700000000000000"  // event offset 7
            "0900000000000000"  // offset 9
            "0300000000000000"
            "03617069"
            "00000000"
            "00"
            "0000000000000000"
            "0400000000000000"
            "0000000000000000");
}

TEST(LogEntryTest, AlertCopiesAreChecked) {
  const std::vector<uint8_t> good = EncodeLogEntry(GoldenCopies());
  for (size_t size = 4; size < good.size(); ++size) {
    EXPECT_EQ(DecodeLogEntry(absl::MakeConstSpan(good.data(), size)).status().code(),
              absl::StatusCode::kDataLoss)
        << size;
  }
  std::vector<uint8_t> bad = good;
  bad[8] = 0;  // No records.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[8] = 0x01;  // More than the limit.
  bad[9] = 0x04;
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  const size_t second_offset = 12 + 8 + 40;  // Header, recorder, count; one record.
  ASSERT_EQ(good[second_offset], 9);
  bad = good;
  bad[second_offset] = 5;  // The same offset twice.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[4 + 8 + 8 + 8 + 2] = 8;  // Threshold index out of range.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
}

TEST(LogEntryTest, RoundTripsEveryKind) {
  for (const LogEntry& entry :
       {GoldenBatch(), GoldenPut(), LogEntry::Delete("m"), LogEntry::Retention(123),
        LogEntry::StartOfEpoch(9), LogEntry::RecordedAlerts(41), GoldenCopies()}) {
    const std::vector<uint8_t> bytes = EncodeLogEntry(entry);
    absl::StatusOr<LogEntry> decoded = DecodeLogEntry(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(*decoded == entry);
    EXPECT_EQ(EncodeLogEntry(*decoded), bytes);
  }
}

TEST(LogEntryTest, RejectsMalformedBytes) {
  const std::vector<uint8_t> good = EncodeLogEntry(GoldenBatch());
  for (size_t size = 0; size < good.size(); ++size) {
    absl::StatusOr<LogEntry> decoded = DecodeLogEntry(absl::MakeConstSpan(good.data(), size));
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << size;
  }
  std::vector<uint8_t> bad = good;
  bad.push_back(0);
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[0] = 2;  // Unknown version.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[1] = 9;  // Unknown kind.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad[1] = 8;  // The first kind after the last known one.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = EncodeLogEntry(LogEntry::RecordedAlerts(3));
  bad.pop_back();
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[4 + 20 + 24 + 2] = 2;  // First event: class idempotency without a key.
  EXPECT_EQ(DecodeLogEntry(bad).status().code(), absl::StatusCode::kDataLoss);
  // A schema that decodes but breaks a rule: the dimension key "p" repeated.
  std::vector<uint8_t> put = EncodeLogEntry(GoldenPut());
  const std::vector<uint8_t> second_dimension = {0x01, 0x70, 0x00};
  put[4 + 9] = 2;  // dimension count
  put.insert(put.begin() + 4 + 10 + 7, second_dimension.begin(), second_dimension.end());
  EXPECT_EQ(DecodeLogEntry(put).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LogEntryTest, FingerprintDependsOnPayload) {
  const LogEntry entry = GoldenBatch();
  BatchEvent event = entry.batch()->events[1];
  const uint64_t base = PayloadFingerprint(event);
  event.timestamp_ns = 999;  // Server-stamped: the stamp is not part of the payload.
  EXPECT_EQ(PayloadFingerprint(event), base);
  event.value = 1;
  EXPECT_NE(PayloadFingerprint(event), base);
}

}  // namespace
}  // namespace unimeter::metering
