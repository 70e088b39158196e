#include "sim/ownership_tracker.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace unimeter::sim {
namespace {

using replication::OwnershipEvent;
using Kind = OwnershipEvent::Kind;

OwnershipEvent Vote(uint64_t term, NodeId candidate) {
  return OwnershipEvent{.kind = Kind::kVoted, .term = term, .candidate = candidate};
}
OwnershipEvent Leader(uint64_t term) { return OwnershipEvent{.kind = Kind::kLeader, .term = term}; }
OwnershipEvent Epoch(Kind kind, uint32_t partition, uint64_t epoch) {
  return OwnershipEvent{.kind = kind, .partition = partition, .epoch = epoch};
}
OwnershipEvent Map(uint64_t term, uint64_t version, uint64_t digest) {
  return OwnershipEvent{
      .kind = Kind::kMap, .term = term, .map_version = version, .map_digest = digest};
}

OwnershipTracker Started(uint32_t nodes) {
  OwnershipTracker tracker(nodes);
  for (NodeId node = 0; node < nodes; ++node) tracker.OnStart(node);
  return tracker;
}

// One step of a history: an event reported by `node`, or its restart, or its disk's
// replacement.
struct Step {
  enum class What { kEvent, kRestart, kWipe, kRestore };
  NodeId node = 0;
  OwnershipEvent event;
  What what = What::kEvent;
};
Step Restart(NodeId node) { return Step{node, {}, Step::What::kRestart}; }
Step Wipe(NodeId node) { return Step{node, {}, Step::What::kWipe}; }
// The disk restored from an old copy of itself, then a restart.
Step Restore(NodeId node) { return Step{node, {}, Step::What::kRestore}; }

// The tracker's verdict on `steps`, run on three started nodes.
std::string FailureAfter(const std::vector<Step>& steps) {
  OwnershipTracker tracker = Started(3);
  for (const Step& step : steps) {
    switch (step.what) {
      case Step::What::kEvent:
        tracker.OnEvent(step.node, step.event);
        break;
      case Step::What::kRestart:
        tracker.OnStart(step.node);
        break;
      case Step::What::kWipe:
        tracker.OnWipe(step.node);
        tracker.OnStart(step.node);
        break;
      case Step::What::kRestore:
        tracker.OnRestoredFromBackup(step.node);
        tracker.OnStart(step.node);
        break;
    }
  }
  return tracker.failure();
}

bool Has(const std::string& failure, const std::string& part) {
  return failure.find(part) != std::string::npos;
}

TEST(OwnershipTrackerTest, AnOrdinaryHistoryPasses) {
  OwnershipTracker tracker = Started(3);
  tracker.OnEvent(0, Vote(1, 0));
  tracker.OnEvent(1, Vote(1, 0));
  tracker.OnEvent(1, Vote(1, 0));  // The same vote told again.
  tracker.OnEvent(0, Leader(1));
  tracker.OnEvent(0, Map(1, 1, 0xAB));
  tracker.OnEvent(1, Map(1, 1, 0xAB));
  tracker.OnEvent(1, Epoch(Kind::kPromised, 5, 10));
  tracker.OnEvent(0, Epoch(Kind::kPromised, 5, 10));
  tracker.OnEvent(0, Epoch(Kind::kOwner, 5, 10));
  tracker.OnEvent(0, Epoch(Kind::kOwner, 5, 10));  // The same process again: allowed.
  tracker.OnEvent(1, Epoch(Kind::kAccepted, 5, 10));
  tracker.OnEvent(1, Epoch(Kind::kPromised, 5, 12));
  tracker.OnEvent(2, Vote(2, 2));  // A new term: any vote.
  tracker.OnEvent(2, Leader(2));
  tracker.OnEvent(2, Map(2, 1, 0xCD));  // A lower version of a newer term.
  tracker.OnEvent(1, Map(2, 1, 0xCD));
  EXPECT_EQ(tracker.failure(), "");
  EXPECT_EQ(tracker.events_checked(), 16u);
}

TEST(OwnershipTrackerTest, FlagsTwoVotesInOneTermEvenAcrossARestart) {
  EXPECT_TRUE(Has(FailureAfter({{1, Vote(4, 0)}, Restart(1), {1, Vote(4, 2)}}), "S11"));
  // A replaced disk is a new member that promised nothing.
  EXPECT_EQ(
      FailureAfter({{1, Vote(4, 0)}, Wipe(1), {1, Vote(4, 2)}, {1, Epoch(Kind::kPromised, 3, 1)}}),
      "");
}

TEST(OwnershipTrackerTest, FlagsARestartThatReadsBackLessThanItTold) {
  const OwnershipEvent promised_30 = Epoch(Kind::kPromised, 1, 30);
  EXPECT_EQ(FailureAfter({{2, Vote(5, 0)},
                          {2, promised_30},
                          Restart(2),
                          {2, OwnershipEvent{.kind = Kind::kRestoredVote, .term = 6}},
                          {2, Epoch(Kind::kRestoredPromise, 1, 30)}}),
            "");
  EXPECT_TRUE(
      Has(FailureAfter({{2, promised_30}, Restart(2), {2, Epoch(Kind::kRestoredPromise, 1, 29)}}),
          "restarted with epoch 29 promised for partition 1, below epoch 30"));
  EXPECT_TRUE(Has(FailureAfter({{2, Vote(5, 0)},
                                Restart(2),
                                {2, OwnershipEvent{.kind = Kind::kRestoredVote, .term = 4}}}),
                  "restarted in term 4"));
  EXPECT_TRUE(Has(FailureAfter({{2, Vote(5, 0)},
                                Restart(2),
                                {2, OwnershipEvent{.kind = Kind::kRestoredVote,
                                                   .term = 5,
                                                   .candidate = replication::kNoVote}}}),
                  "told n0 of its vote in term 5"));
  // A replaced disk restores nothing and owes nothing.
  EXPECT_EQ(FailureAfter({{2, Vote(5, 0)},
                          {2, promised_30},
                          Wipe(2),
                          {2, OwnershipEvent{.kind = Kind::kRestoredVote}},
                          {2, Epoch(Kind::kRestoredPromise, 1, 0)}}),
            "");
}

TEST(OwnershipTrackerTest, FlagsTwoLeadersInOneTerm) {
  EXPECT_TRUE(Has(FailureAfter({{0, Leader(7)}, {2, Leader(7)}}), "two leaders in term 7"));
}

TEST(OwnershipTrackerTest, FlagsAnEpochEstablishedTwice) {
  const OwnershipEvent owner = Epoch(Kind::kOwner, 9, 20);
  EXPECT_TRUE(Has(FailureAfter({{0, owner}, {1, owner}}), "S5"));
  EXPECT_TRUE(Has(FailureAfter({{0, owner}, Restart(0), {0, owner}}), "process"));
}

TEST(OwnershipTrackerTest, FlagsAPromiseOrAcceptanceBelowAnEarlierOne) {
  const OwnershipEvent promised_30 = Epoch(Kind::kPromised, 1, 30);
  // The promise is on disk: a restart keeps it.
  EXPECT_TRUE(
      Has(FailureAfter({{2, promised_30}, Restart(2), {2, Epoch(Kind::kPromised, 1, 25)}}), "S11"));
  EXPECT_TRUE(Has(FailureAfter({{2, promised_30}, {2, Epoch(Kind::kAccepted, 1, 25)}}),
                  "accepted appends of epoch 25"));
  EXPECT_TRUE(
      Has(FailureAfter({{2, Epoch(Kind::kAccepted, 1, 30)}, {2, Epoch(Kind::kAccepted, 1, 25)}}),
          "after accepting epoch 30"));
  // An acknowledged append does not make the promise behind it durable: after a restart
  // the node may promise, and then accept, an epoch between its durable promise and it.
  EXPECT_EQ(FailureAfter({{2, Epoch(Kind::kPromised, 1, 20)},
                          {2, Epoch(Kind::kAccepted, 1, 30)},
                          Restart(2),
                          {2, Epoch(Kind::kPromised, 1, 25)},
                          {2, Epoch(Kind::kAccepted, 1, 25)}}),
            "");
  EXPECT_EQ(FailureAfter({{2, promised_30}, {2, Epoch(Kind::kAccepted, 2, 25)}}), "");
}

TEST(OwnershipTrackerTest, FlagsTwoMapsUnderOneVersionAndAMapGoingBack) {
  EXPECT_TRUE(Has(FailureAfter({{0, Map(3, 8, 0x1)}, {1, Map(3, 8, 0x2)}}), "S13"));
  EXPECT_TRUE(Has(FailureAfter({{1, Map(3, 8, 0x1)}, {1, Map(3, 7, 0x3)}}), "after version 8"));
  // A new process starts from no map.
  EXPECT_EQ(FailureAfter({{1, Map(3, 8, 0x1)}, Restart(1), {1, Map(3, 7, 0x3)}}), "");
}

OwnershipEvent Incarnation(uint64_t incarnation) {
  return OwnershipEvent{.kind = Kind::kIncarnation, .incarnation = incarnation};
}

TEST(OwnershipTrackerTest, FlagsAnIncarnationOnTwoSlotsOrChangedWithoutANewDisk) {
  // Restarts keep it; a replaced disk brings a new one.
  EXPECT_EQ(FailureAfter({{0, Incarnation(11)},
                          {1, Incarnation(21)},
                          Restart(0),
                          {0, Incarnation(11)},
                          Wipe(1),
                          Restart(1),
                          {1, Incarnation(22)}}),
            "");
  // n1 started on a copy of n0's directory.
  EXPECT_TRUE(Has(FailureAfter({{0, Incarnation(11)}, Wipe(1), Restart(1), {1, Incarnation(11)}}),
                  "of n0's disk"));
  // A replaced disk that came back with the old incarnation.
  EXPECT_TRUE(Has(FailureAfter({{1, Incarnation(21)}, Wipe(1), Restart(1), {1, Incarnation(21)}}),
                  "of its own replaced disk"));
  // A new incarnation on a disk never replaced.
  EXPECT_TRUE(Has(FailureAfter({{1, Incarnation(21)}, Restart(1), {1, Incarnation(23)}}),
                  "never replaced"));
}

// A disk restored from an old copy of itself reads back less than it told (expected), must
// not contradict what it told while on it, and may start over as a new incarnation.
TEST(OwnershipTrackerTest, ARestoredDiskIsHeldToWhatItToldUntilItsNewIncarnation) {
  const std::vector<Step> told = {{2, Incarnation(31)},
                                  {2, Vote(5, 0)},
                                  {2, Epoch(Kind::kPromised, 1, 30)},
                                  Restore(2),
                                  {2, OwnershipEvent{.kind = Kind::kRestoredVote, .term = 3}},
                                  {2, Epoch(Kind::kRestoredPromise, 1, 20)},
                                  {2, Incarnation(31)}};
  EXPECT_EQ(FailureAfter(told), "");
  std::vector<Step> revoted = told;
  revoted.push_back({2, Vote(5, 1)});
  EXPECT_TRUE(Has(FailureAfter(revoted), "voted for n0 and then for n1 in term 5"));
  std::vector<Step> repromised = told;
  repromised.push_back({2, Epoch(Kind::kPromised, 1, 25)});
  EXPECT_TRUE(Has(FailureAfter(repromised), "after promising epoch 30"));
  // Found: a new incarnation on the same disk promised nothing yet.
  std::vector<Step> started_over = told;
  started_over.push_back({2, Incarnation(32)});
  started_over.push_back({2, Vote(5, 1)});
  started_over.push_back({2, Epoch(Kind::kPromised, 1, 25)});
  EXPECT_EQ(FailureAfter(started_over), "");
  // A copy from before the disk was replaced brings its old incarnation back: allowed on a
  // restored disk, and held to what the replacement told.
  std::vector<Step> resurrected = {{2, Incarnation(31)}, Wipe(2),    {2, Incarnation(33)},
                                   {2, Vote(6, 0)},      Restore(2), {2, Incarnation(31)}};
  EXPECT_EQ(FailureAfter(resurrected), "");
  resurrected.push_back({2, Vote(6, 1)});
  EXPECT_TRUE(Has(FailureAfter(resurrected), "voted for n0 and then for n1 in term 6"));
  EXPECT_TRUE(Has(
      FailureAfter(
          {{2, Incarnation(31)}, Wipe(2), {2, Incarnation(33)}, Restart(2), {2, Incarnation(31)}}),
      "of its own replaced disk"));
  // Without a restore, a new incarnation on the same disk is a violation, as before.
  EXPECT_TRUE(Has(FailureAfter({{2, Incarnation(31)}, Restart(2), {2, Incarnation(32)}}), "S13"));
}

}  // namespace
}  // namespace unimeter::sim
