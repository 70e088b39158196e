#include "node/server/engine_support.h"

#include <vector>

#include "gtest/gtest.h"

namespace unimeter {
namespace {

std::vector<AlertRecord> Records(uint64_t first, uint64_t count) {
  std::vector<AlertRecord> records;
  for (uint64_t offset = first; offset < first + count; ++offset) {
    records.push_back(AlertRecord{offset, metering::AlertCrossing{offset, "m", 0, "t", 1, 2, 3}});
  }
  return records;
}

std::vector<uint64_t> Offsets(const std::vector<AlertRecord>& records) {
  std::vector<uint64_t> offsets;
  for (const AlertRecord& record : records) offsets.push_back(record.offset);
  return offsets;
}

TEST(DurableAlertsTest, WithoutCopiesASyncReleases) {
  DurableAlerts alerts;
  alerts.Reset(5);
  std::vector<uint64_t> pushed;
  Engine::AlertsDurable push = [&](const std::vector<AlertRecord>& records) {
    for (uint64_t offset : Offsets(records)) pushed.push_back(offset);
  };
  alerts.Add(Records(5, 3));
  alerts.NoteRecorded(/*partition=*/7, /*index=*/40);
  EXPECT_EQ(alerts.waiting(), 3u);
  alerts.Synced(2, push);  // A sync that started before the third record.
  EXPECT_EQ(pushed, (std::vector<uint64_t>{5, 6}));
  EXPECT_TRUE(alerts.TakeConfirmable().empty());  // Not all of partition 7's records.
  std::vector<AlertRecord> listed = Records(0, 8);
  alerts.TrimToReleased(&listed);
  EXPECT_EQ(listed.size(), 7u);
  alerts.Synced(1, push);
  EXPECT_EQ(pushed, (std::vector<uint64_t>{5, 6, 7}));
  EXPECT_EQ(alerts.TakeConfirmable(), (std::vector<std::pair<uint32_t, uint64_t>>{{7, 40}}));
  EXPECT_EQ(alerts.unreleased(), 0u);
}

TEST(DurableAlertsTest, WithCopiesOnlyACommittedCopyReleasesInOrder) {
  DurableAlerts alerts;
  alerts.Reset(0);
  alerts.RequireCopies();
  std::vector<uint64_t> pushed;
  Engine::AlertsDurable push = [&](const std::vector<AlertRecord>& records) {
    for (uint64_t offset : Offsets(records)) pushed.push_back(offset);
  };
  EXPECT_TRUE(alerts.StartCopy(10).empty());  // Nothing durable yet.
  EXPECT_FALSE(alerts.copy_in_flight());
  alerts.Add(Records(0, 5));
  alerts.NoteRecorded(3, 9);
  alerts.Synced(5, push);
  EXPECT_TRUE(pushed.empty());
  EXPECT_EQ(alerts.unreleased(), 5u);
  EXPECT_EQ(alerts.waiting(), 0u);
  // One copy at a time, at most `max` records.
  EXPECT_EQ(Offsets(alerts.StartCopy(3)), (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_TRUE(alerts.StartCopy(3).empty());
  // A failed copy releases nothing; the next one starts from the same record.
  alerts.CopyDone(false, 2, push);
  EXPECT_TRUE(pushed.empty());
  EXPECT_EQ(Offsets(alerts.StartCopy(10)), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  std::vector<AlertRecord> listed = Records(0, 5);
  alerts.TrimToReleased(&listed);
  EXPECT_TRUE(listed.empty());
  EXPECT_TRUE(alerts.TakeConfirmable().empty());
  alerts.CopyDone(true, 4, push);
  EXPECT_EQ(pushed, (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(alerts.TakeConfirmable(), (std::vector<std::pair<uint32_t, uint64_t>>{{3, 9}}));
  EXPECT_EQ(alerts.unreleased(), 0u);
  // Peers too old for copies: released uncopied.
  alerts.Add(Records(5, 1));
  alerts.Synced(1, push);
  alerts.ReleaseUncopied(push);
  EXPECT_EQ(pushed.back(), 5u);
}

TEST(DurableAlertsTest, AtStartRecordsWithoutAKnownCopyWaitForOne) {
  DurableAlerts alerts;
  alerts.RequireCopies();
  std::vector<uint64_t> pushed;
  Engine::AlertsDurable push = [&](const std::vector<AlertRecord>& records) {
    for (uint64_t offset : Offsets(records)) pushed.push_back(offset);
  };
  // Copies known up to offset 4; the store holds 4, 6 and 7 (retention deleted 5) and
  // the log continues at 9 (8 deleted too).
  std::vector<AlertRecord> durable = Records(4, 4);
  durable.erase(durable.begin() + 1);
  alerts.ResetWithUncopied(4, durable, 9);
  EXPECT_EQ(alerts.unreleased(), 3u);
  std::vector<AlertRecord> listed = Records(0, 8);
  alerts.TrimToReleased(&listed);
  EXPECT_EQ(Offsets(listed), (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(Offsets(alerts.StartCopy(2)), (std::vector<uint64_t>{4, 6}));
  alerts.CopyDone(true, 6, push);
  EXPECT_EQ(Offsets(alerts.StartCopy(2)), (std::vector<uint64_t>{7}));
  alerts.Add(Records(9, 1));  // The log goes on at 9.
  alerts.NoteRecorded(1, 3);
  alerts.CopyDone(true, 7, push);
  EXPECT_EQ(pushed, (std::vector<uint64_t>{4, 6, 7}));
  listed = Records(0, 10);
  alerts.TrimToReleased(&listed);
  EXPECT_EQ(listed.size(), 9u);  // Up to 8; 9 waits for its sync and copy.
  alerts.Synced(1, push);
  EXPECT_EQ(Offsets(alerts.StartCopy(5)), (std::vector<uint64_t>{9}));
  alerts.CopyDone(true, 9, push);
  EXPECT_EQ(alerts.TakeConfirmable(), (std::vector<std::pair<uint32_t, uint64_t>>{{1, 3}}));
  // Every record already copied: all released at once.
  DurableAlerts settled;
  settled.RequireCopies();
  settled.ResetWithUncopied(4, {}, 9);
  EXPECT_EQ(settled.unreleased(), 0u);
  listed = Records(0, 9);
  settled.TrimToReleased(&listed);
  EXPECT_EQ(listed.size(), 9u);
}

}  // namespace
}  // namespace unimeter
