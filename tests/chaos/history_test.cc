// The history checker must catch each kind of anomaly it exists for, and accept the
// histories that are correct (acknowledged counted, unknown either way, reads that follow).
#include "tests/chaos/history.h"

#include <gtest/gtest.h>

namespace unimeter::chaos {
namespace {

// Metric 0, account 7: round 0 acked, round 1 unknown, round 2 failed, round 3 sent only.
class HistoryTest : public ::testing::Test {
 protected:
  HistoryTest() {
    for (int round = 0; round < 4; ++round) history.Sent(0, {7}, round);
    history.Resolved(0, {7}, 0, Outcome::kAcked);
    history.Resolved(0, {7}, 1, Outcome::kMaybe);
    history.Resolved(0, {7}, 2, Outcome::kFailed);
  }
  History history{2, 16};
};

TEST_F(HistoryTest, AcceptsCorrectFinalTotals) {
  history.CheckFinal(0, 7, {1, 1, 1});  // Unknown not counted.
  history.CheckFinal(0, 7, {3, 3, 3});  // Unknown counted once.
  EXPECT_EQ(history.anomaly_count(), 0u) << history.anomalies().front();
  EXPECT_EQ(history.keys_checked(), 2u);
}

TEST_F(HistoryTest, CatchesLostAcknowledgedEvent) {
  history.CheckFinal(0, 7, {2, 2, 2});
  ASSERT_EQ(history.anomaly_count(), 3u);
  EXPECT_NE(history.anomalies()[0].find("lost acknowledged events {0}"), std::string::npos);
}

TEST_F(HistoryTest, CatchesDoubleCountAsMissingOrExtraBits) {
  history.CheckFinal(0, 7, {1 + 1, 1, 1});  // Event 0 counted twice on node 0.
  EXPECT_EQ(history.anomaly_count(), 3u);   // Node 0 lost bit 0; nodes 1 and 2 disagree.
}

TEST_F(HistoryTest, CatchesFailedRequestCounted) {
  history.CheckFinal(0, 7, {1 + 4, 1 + 4, 1 + 4});
  ASSERT_EQ(history.anomaly_count(), 3u);
  EXPECT_NE(history.anomalies()[0].find("failed requests {2}"), std::string::npos);
}

TEST_F(HistoryTest, CatchesNodesThatDisagree) {
  history.CheckFinal(0, 7, {1, 3, 1});
  ASSERT_EQ(history.anomaly_count(), 1u);
  EXPECT_NE(history.anomalies()[0].find("disagrees"), std::string::npos);
}

TEST_F(HistoryTest, CatchesNeverSentEvent) {
  history.CheckFinal(0, 7, {1 + 16});
  ASSERT_EQ(history.anomaly_count(), 1u);
  EXPECT_NE(history.anomalies()[0].find("never sent {4}"), std::string::npos);
}

TEST_F(HistoryTest, ReadsMustIncludeWhatWasAcknowledgedBefore) {
  const uint64_t acked_before = history.Bits(0, 7).acked;
  history.CheckRead(0, 7, acked_before, 1, "ok read");
  history.CheckRead(0, 7, acked_before, 1 + 8, "read of an in-flight event");
  EXPECT_EQ(history.anomaly_count(), 0u);
  history.CheckRead(0, 7, acked_before, 2, "stale read");
  ASSERT_EQ(history.anomaly_count(), 1u);
  EXPECT_NE(history.anomalies()[0].find("went back in time"), std::string::npos);
  history.CheckRead(0, 7, 0, uint64_t{1} << 40, "phantom read");
  EXPECT_EQ(history.anomaly_count(), 2u);
  EXPECT_EQ(history.reads_checked(), 4u);
}

TEST_F(HistoryTest, TracksWrittenKeysAndCounts) {
  EXPECT_EQ(history.WrittenAccounts(0), std::vector<uint64_t>{7});
  EXPECT_TRUE(history.WrittenAccounts(1).empty());
  const std::map<std::string, uint64_t> counts = history.EventCounts();
  EXPECT_EQ(counts.at("acked"), 1u);
  EXPECT_EQ(counts.at("maybe"), 1u);
  EXPECT_EQ(counts.at("failed"), 1u);
}

}  // namespace
}  // namespace unimeter::chaos
