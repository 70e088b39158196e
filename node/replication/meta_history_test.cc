#include "node/replication/meta_history.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace unimeter::replication {
namespace {

constexpr uint64_t kIncarnation = 77;

TEST(MetaHistoryTest, NothingRecordedIsNotAConfirmation) {
  PeerMetaRecord record;
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5, 5000), EchoVerdict::kNotYet);
  record.Note(kIncarnation, /*boot_id=*/1, /*start=*/5, /*durable=*/0, 0);  // Nothing durable yet.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5, 5000), EchoVerdict::kNotYet);
}

TEST(MetaHistoryTest, HonestRestartsAreConfirmed) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6, 6000);
  record.Note(kIncarnation, 1, 5, 9, 9000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5, 5000), EchoVerdict::kConfirmed);
  // The next process opens at 9 (the newest durable write) and announces once it wrote.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9, 9000), EchoVerdict::kNotYet);
  record.Note(kIncarnation, 2, 9, 10, 10000);
  EXPECT_EQ(record.Echo(), (MetaEcho{kIncarnation, 9, 9, 9000}));
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9, 9000), EchoVerdict::kConfirmed);
}

TEST(MetaHistoryTest, LateAnnouncementsOfEarlierProcessesCauseNoFinding) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6, 6000);
  record.Note(kIncarnation, 2, 9, 10, 10000);
  record.Note(kIncarnation, 1, 5, 9, 9000);    // Delayed: process 1's last write.
  record.Note(kIncarnation, 2, 9, 14, 14000);  // Process 2 goes on writing.
  record.Note(kIncarnation, 1, 5, 8, 8000);    // Delayed and reordered.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9, 9000), EchoVerdict::kConfirmed);
  record.Note(kIncarnation, 3, 14, 15, 15000);  // Process 3 opened at process 2's last write.
  record.Note(kIncarnation, 2, 9, 12, 12000);   // Delayed.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 14, 14000), EchoVerdict::kConfirmed);
}

TEST(MetaHistoryTest, ADirectoryOlderThanAnEarlierProcessesWritesIsFound) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6, 6000);
  record.Note(kIncarnation, 1, 5, 12, 12000);
  // Restored from a backup taken at sequence 8: the new process opens 8.
  record.Note(kIncarnation, 2, 8, 9, 9000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 8, 8000), EchoVerdict::kWentBack);
  // Its own echo arrives before it announced anything: a newer process was seen.
  PeerMetaRecord unseen;
  unseen.Note(kIncarnation, 1, 5, 12, 12000);
  EXPECT_EQ(JudgeEcho(unseen.Echo(), kIncarnation, 3, 3000), EchoVerdict::kWentBack);
}

TEST(MetaHistoryTest, TwoProcessesThatOpenedOneSequenceAreFound) {
  // Process 2 opened 12 and wrote 13..15; the disk lost all of it, so process 3 opens 12 too.
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 12, 12000);
  record.Note(kIncarnation, 2, 12, 15, 15000);
  record.Note(kIncarnation, 3, 12, 13, 13000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 12, 12000), EchoVerdict::kWentBack);
}

TEST(MetaHistoryTest, ANewIncarnationStartsWithoutHistory) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 40, 40000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 0, 0), EchoVerdict::kNotYet);
  record.Note(kIncarnation + 1, 2, 0, 1, 1000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 0, 0), EchoVerdict::kConfirmed);
}

// The same replica.meta, an older WAL: a backup taken while no vote or promise was
// written, or a disk that lost synced log writes only.
TEST(MetaHistoryTest, AWalOlderThanAnEarlierProcessesSyncsIsFound) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6, 40'000);
  record.Note(kIncarnation, 1, 5, 6, 90'000);  // The WAL syncs on; the meta stays.
  record.Note(kIncarnation, 2, 6, 7, 50'000);  // Opened meta 6 (all of it), WAL 50,000.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 6, 50'000), EchoVerdict::kWentBack);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 6, 90'000), EchoVerdict::kConfirmed);
}

// A copy of a disk from before it was replaced comes back with the old incarnation: found,
// whatever its sequences; a late announcement of the old incarnation's last process is not
// a new process of it.
TEST(MetaHistoryTest, AnIncarnationThatWasReplacedNeverComesBack) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 9, 9000);
  record.Note(kIncarnation + 1, 2, 0, 1, 1000);  // The disk was replaced.
  record.Note(kIncarnation, 1, 5, 9, 9000);      // Late, from the old disk's last process.
  EXPECT_EQ(record.Echo().incarnation, kIncarnation + 1) << "a late announcement took over";
  record.Note(kIncarnation + 1, 2, 0, 2, 2000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 0, 0), EchoVerdict::kConfirmed);
  record.Note(kIncarnation, 3, 9, 10, 9000);  // A new process on a copy of the old disk.
  EXPECT_EQ(record.Echo().start, kSuperseded);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9, 9000), EchoVerdict::kWentBack);
}

// Late announcements of a replaced incarnation (a clogged link delivers them after the new
// incarnation's) change nothing: the new incarnation's next process is confirmed, not
// taken for a copy of the old disk (seed 116101163 found that false finding).
TEST(MetaHistoryTest, LateAnnouncementsOfAReplacedIncarnationChangeNothing) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 3, 4, 4000);
  record.Note(kIncarnation, 2, 5, 9, 9000);
  record.Note(kIncarnation + 1, 3, 0, 1, 1000);  // The disk was replaced.
  record.Note(kIncarnation, 2, 5, 9, 9000);      // Late, from the last process of the old disk.
  record.Note(kIncarnation, 1, 3, 4, 4000);      // Late, from an earlier one.
  record.Note(kIncarnation + 1, 4, 2, 3, 3000);  // The new disk's next process.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 2, 3000), EchoVerdict::kConfirmed);
  // A new process on a copy of the old disk taken while its last process ran is found.
  record.Note(kIncarnation, 5, 6, 7, 8000);
  EXPECT_EQ(record.Echo().start, kSuperseded);
}

// A node keeps its records across its own restarts (with its checkpoints): a record read
// back goes on exactly as the one written, replaced incarnations included.
TEST(MetaHistoryTest, RecordsReadBackGoOnAsTheyWere) {
  PeerMetaRecord first;
  first.Note(kIncarnation, 1, 5, 9, 9000);
  first.Note(kIncarnation + 1, 2, 0, 1, 1000);  // The disk was replaced.
  PeerMetaRecord second;
  second.Note(kIncarnation, 7, 3, 12, 70'000);
  second.Note(kIncarnation, 8, 13, 14, 80'000);
  const std::string bytes = EncodePeerRecords({{1, first}, {4, second}});
  std::vector<std::pair<uint32_t, PeerMetaRecord>> records;
  ASSERT_TRUE(DecodePeerRecords(bytes, &records));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].first, 1u);
  EXPECT_EQ(records[1].first, 4u);
  EXPECT_EQ(EncodePeerRecords(records), bytes);
  EXPECT_EQ(records[1].second.Echo(), second.Echo());
  // The member's process heard before the restart is now an earlier one: a directory
  // older than what it announced is found by the record read back.
  // Its next process opened meta write 13, below the 14 its last one made durable.
  records[1].second.Note(kIncarnation, 9, 13, 13, 75'000);
  EXPECT_EQ(JudgeEcho(records[1].second.Echo(), kIncarnation, 13, 75'000), EchoVerdict::kWentBack);
  // Without the record read back, the same process would have been confirmed.
  PeerMetaRecord forgot;
  forgot.Note(kIncarnation, 9, 13, 13, 75'000);
  EXPECT_EQ(JudgeEcho(forgot.Echo(), kIncarnation, 13, 75'000), EchoVerdict::kConfirmed);
  // And a copy of the replaced disk is still found.
  records[0].second.Note(kIncarnation, 3, 9, 10, 9000);
  EXPECT_EQ(records[0].second.Echo().start, kSuperseded);
}

TEST(MetaHistoryTest, MalformedRecordsAreRefused) {
  std::vector<std::pair<uint32_t, PeerMetaRecord>> records;
  EXPECT_FALSE(DecodePeerRecords("", &records));
  std::string bytes = EncodePeerRecords({{2, PeerMetaRecord{}}});
  ASSERT_TRUE(DecodePeerRecords(bytes, &records));
  EXPECT_FALSE(DecodePeerRecords(bytes.substr(0, bytes.size() - 1), &records));
  std::string version = bytes;
  version[0] = 2;
  EXPECT_FALSE(DecodePeerRecords(version, &records));
  std::string flag = bytes;
  flag[1 + 4 + 8 * 8] = 2;  // The superseded flag.
  EXPECT_FALSE(DecodePeerRecords(flag, &records));
  EXPECT_TRUE(DecodePeerRecords(EncodePeerRecords({}), &records));
  EXPECT_TRUE(records.empty());
}

}  // namespace
}  // namespace unimeter::replication
