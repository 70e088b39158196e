#include "node/replication/meta_history.h"

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
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5, 5000), EchoVerdict::kConfirmed);
  record.Note(kIncarnation + 1, 2, 0, 2, 2000);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 0, 0), EchoVerdict::kConfirmed);
  record.Note(kIncarnation, 3, 9, 10, 9000);  // A new process on a copy of the old disk.
  EXPECT_EQ(record.Echo().start, kSuperseded);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9, 9000), EchoVerdict::kWentBack);
}

}  // namespace
}  // namespace unimeter::replication
