#include "node/replication/meta_history.h"

#include "gtest/gtest.h"

namespace unimeter::replication {
namespace {

constexpr uint64_t kIncarnation = 77;

TEST(MetaHistoryTest, NothingRecordedIsNotAConfirmation) {
  PeerMetaRecord record;
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5), EchoVerdict::kNotYet);
  record.Note(kIncarnation, /*boot_id=*/1, /*start=*/5, /*durable=*/0);  // Nothing durable yet.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5), EchoVerdict::kNotYet);
}

TEST(MetaHistoryTest, HonestRestartsAreConfirmed) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6);
  record.Note(kIncarnation, 1, 5, 9);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 5), EchoVerdict::kConfirmed);
  // The next process opens at 9 (the newest durable write) and announces once it wrote.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9), EchoVerdict::kNotYet);
  record.Note(kIncarnation, 2, 9, 10);
  EXPECT_EQ(record.Echo(), (MetaEcho{kIncarnation, 9, 9}));
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9), EchoVerdict::kConfirmed);
}

TEST(MetaHistoryTest, LateAnnouncementsOfEarlierProcessesCauseNoFinding) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6);
  record.Note(kIncarnation, 2, 9, 10);
  record.Note(kIncarnation, 1, 5, 9);   // Delayed: process 1's last write.
  record.Note(kIncarnation, 2, 9, 14);  // Process 2 goes on writing.
  record.Note(kIncarnation, 1, 5, 8);   // Delayed and reordered.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 9), EchoVerdict::kConfirmed);
  record.Note(kIncarnation, 3, 14, 15);  // Process 3 opened at process 2's last write.
  record.Note(kIncarnation, 2, 9, 12);   // Delayed.
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 14), EchoVerdict::kConfirmed);
}

TEST(MetaHistoryTest, ADirectoryOlderThanAnEarlierProcessesWritesIsFound) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 6);
  record.Note(kIncarnation, 1, 5, 12);
  // Restored from a backup taken at sequence 8: the new process opens 8.
  record.Note(kIncarnation, 2, 8, 9);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 8), EchoVerdict::kWentBack);
  // Its own echo arrives before it announced anything: a newer process was seen.
  PeerMetaRecord unseen;
  unseen.Note(kIncarnation, 1, 5, 12);
  EXPECT_EQ(JudgeEcho(unseen.Echo(), kIncarnation, 3), EchoVerdict::kWentBack);
}

TEST(MetaHistoryTest, TwoProcessesThatOpenedOneSequenceAreFound) {
  // Process 2 opened 12 and wrote 13..15; the disk lost all of it, so process 3 opens 12 too.
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 12);
  record.Note(kIncarnation, 2, 12, 15);
  record.Note(kIncarnation, 3, 12, 13);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation, 12), EchoVerdict::kWentBack);
}

TEST(MetaHistoryTest, ANewIncarnationStartsWithoutHistory) {
  PeerMetaRecord record;
  record.Note(kIncarnation, 1, 5, 40);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 0), EchoVerdict::kNotYet);
  record.Note(kIncarnation + 1, 2, 0, 1);
  EXPECT_EQ(JudgeEcho(record.Echo(), kIncarnation + 1, 0), EchoVerdict::kConfirmed);
}

}  // namespace
}  // namespace unimeter::replication
