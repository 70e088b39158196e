#include "sim/history_checker.h"

#include "gtest/gtest.h"

namespace unimeter::sim {
namespace {

TEST(HistoryCheckerTest, TheFirstApplyDefinesTheEntryAndLaterAppliesMustMatch) {
  HistoryChecker checker;
  checker.OnApply(0, 7, 1, 3, 0xAA);
  checker.OnApply(0, 7, 2, 3, 0xBB);
  checker.OnApply(1, 7, 2, 3, 0xBB);  // Another node, out of order with index 1: fine.
  checker.OnApply(1, 7, 1, 3, 0xAA);
  checker.OnApply(2, 8, 1, 4, 0xCC);  // Partitions are independent.
  EXPECT_EQ(checker.failure(), "");
  EXPECT_EQ(checker.applies_checked(), 5u);
}

TEST(HistoryCheckerTest, FlagsADifferentEntryOrEpochAtAnAppliedIndex) {
  HistoryChecker checker;
  checker.OnApply(0, 1, 5, 2, 0x10);
  checker.OnApply(2, 1, 5, 2, 0x11);
  EXPECT_NE(checker.failure().find("S4"), std::string::npos);
  EXPECT_NE(checker.failure().find("first applied on n0"), std::string::npos);

  HistoryChecker epochs;
  epochs.OnApply(0, 1, 5, 2, 0x10);
  epochs.OnApply(1, 1, 5, 3, 0x10);  // Same bytes, other epoch: not the same entry.
  EXPECT_NE(epochs.failure().find("S4"), std::string::npos);
}

TEST(HistoryCheckerTest, FlagsACommittedEntryOfAnEarlierEpochAfterALaterEpochsEntry) {
  HistoryChecker checker;
  checker.OnApply(0, 3, 1, 5, 0x1);
  checker.OnApply(0, 3, 2, 5, 0x2);
  checker.OnApply(1, 3, 3, 9, 0x3);  // A new epoch continues the log: fine.
  EXPECT_EQ(checker.failure(), "");

  // Epoch 5 committed index 3; a later epoch 9 committed index 2 (its log lacked index 3).
  HistoryChecker later_first;
  later_first.OnApply(1, 3, 2, 9, 0x9);
  later_first.OnApply(0, 3, 3, 5, 0x2);
  EXPECT_NE(later_first.failure().find("S7"), std::string::npos);
  EXPECT_NE(later_first.failure().find("index 3 committed in epoch 5"), std::string::npos);
  EXPECT_NE(later_first.failure().find("next to index 2 of epoch 9"), std::string::npos);

  HistoryChecker earlier_first;
  earlier_first.OnApply(0, 3, 3, 5, 0x2);
  earlier_first.OnApply(1, 3, 2, 9, 0x9);
  EXPECT_NE(earlier_first.failure().find("index 2 committed in epoch 9"), std::string::npos);
  EXPECT_NE(earlier_first.failure().find("next to index 3 of epoch 5"), std::string::npos);
}

TEST(HistoryCheckerTest, ChecksumsTheCanonicalEncoding) {
  HistoryChecker checker;
  const metering::LogEntry first = metering::LogEntry::Retention(100);
  const metering::LogEntry second = metering::LogEntry::Retention(200);
  checker.OnApply(0, 0, 1, 1, first);
  checker.OnApply(1, 0, 1, 1, first);
  EXPECT_EQ(checker.failure(), "");
  checker.OnApply(2, 0, 1, 1, second);
  EXPECT_NE(checker.failure(), "");
}

TEST(HistoryCheckerTest, StateDigestsAtAnIndexMustAgreeAcrossNodes) {
  HistoryChecker checker;
  checker.OnApply(0, 4, 8, 2, 0x1);
  checker.OnStateDigest(0, 4, 8, 0xD1);  // Defines the digest after index 8.
  checker.OnApply(1, 4, 8, 2, 0x1);
  checker.OnStateDigest(1, 4, 8, 0xD1);
  EXPECT_EQ(checker.failure(), "");
  EXPECT_EQ(checker.digests_checked(), 2u);
  checker.OnApply(2, 4, 8, 2, 0x1);      // The same entry...
  checker.OnStateDigest(2, 4, 8, 0xD2);  // ...on a state that diverged (say, a bad snapshot).
  EXPECT_NE(checker.failure().find("S9"), std::string::npos);
  EXPECT_NE(checker.failure().find("n0 had"), std::string::npos);
  // Sampling: every 32nd index of small states, sparser for large ones, and always where
  // another node reported a digest.
  EXPECT_TRUE(checker.WantsStateDigest(4, 32, 100));
  EXPECT_FALSE(checker.WantsStateDigest(4, 33, 100));
  EXPECT_FALSE(checker.WantsStateDigest(4, 32, 5'000));  // Stride 32 x 39 = 1,248.
  EXPECT_TRUE(checker.WantsStateDigest(4, 1'248, 5'000));
  EXPECT_TRUE(checker.WantsStateDigest(4, 8, 1'000'000));
}

}  // namespace
}  // namespace unimeter::sim
