#include "sim/read_checker.h"

#include "gtest/gtest.h"

namespace unimeter::sim {
namespace {

TEST(ReadCheckerTest, AcceptsAnswersBetweenAcknowledgedAndSent) {
  Ledger ledger(2);
  ReadChecker checker(ledger);
  ledger.sent[1] = 5;
  ledger.acked[1] = 3;
  const ReadInvocation read = checker.Invoke(1);
  ledger.acked[1] = 5;  // Acknowledged while the read was in flight: either answer is fine.
  EXPECT_EQ(checker.Check(read, 3), "");
  EXPECT_EQ(checker.Check(read, 4), "");
  EXPECT_EQ(checker.Check(read, 5), "");
  EXPECT_EQ(checker.reads_checked(), 3u);
}

TEST(ReadCheckerTest, FlagsAReadMissingAnAcknowledgedEvent) {
  Ledger ledger(1);
  ReadChecker checker(ledger);
  ledger.sent[0] = 4;
  ledger.acked[0] = 4;
  EXPECT_NE(checker.Check(checker.Invoke(0), 3).find("S1"), std::string::npos);
}

TEST(ReadCheckerTest, FlagsCountingMoreThanWasSentOrAbandonedEvents) {
  Ledger ledger(1);
  ReadChecker checker(ledger);
  ledger.sent[0] = 4;
  EXPECT_NE(checker.Check(checker.Invoke(0), 5).find("S3"), std::string::npos);
  ledger.refused[0] = 2;  // Answered BACKPRESSURE and abandoned: never counted.
  EXPECT_NE(checker.Check(checker.Invoke(0), 3).find("S3"), std::string::npos);
  EXPECT_EQ(checker.Check(checker.Invoke(0), 2), "");
}

TEST(ReadCheckerTest, FlagsAReadOlderThanOneCompletedBeforeIt) {
  Ledger ledger(1);
  ReadChecker checker(ledger);
  ledger.sent[0] = 10;
  ledger.unknown[0] = 10;  // Outcomes unknown: any answer up to 10 could be right.
  const ReadInvocation concurrent = checker.Invoke(0);
  EXPECT_EQ(checker.Check(checker.Invoke(0), 7), "");
  // Invoked before the read of 7 completed: it may linearize before it.
  EXPECT_EQ(checker.Check(concurrent, 6), "");
  // Invoked after it: it must see at least 7.
  EXPECT_NE(checker.Check(checker.Invoke(0), 6).find("linearizable"), std::string::npos);
  EXPECT_EQ(checker.Check(checker.Invoke(0), 7), "");
}

}  // namespace
}  // namespace unimeter::sim
