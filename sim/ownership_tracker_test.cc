#include "sim/ownership_tracker.h"

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
  OwnershipTracker tracker = Started(3);
  tracker.OnEvent(1, Vote(4, 0));
  tracker.OnStart(1);
  tracker.OnEvent(1, Vote(4, 2));
  EXPECT_NE(tracker.failure().find("S11"), std::string::npos);
}

TEST(OwnershipTrackerTest, AReplacedDiskVotesAfresh) {
  OwnershipTracker tracker = Started(3);
  tracker.OnEvent(1, Vote(4, 0));
  tracker.OnWipe(1);
  tracker.OnStart(1);
  tracker.OnEvent(1, Vote(4, 2));
  tracker.OnEvent(1, Epoch(Kind::kPromised, 3, 1));
  EXPECT_EQ(tracker.failure(), "");
}

TEST(OwnershipTrackerTest, FlagsTwoLeadersInOneTerm) {
  OwnershipTracker tracker = Started(3);
  tracker.OnEvent(0, Leader(7));
  tracker.OnEvent(2, Leader(7));
  EXPECT_NE(tracker.failure().find("two leaders in term 7"), std::string::npos);
}

TEST(OwnershipTrackerTest, FlagsAnEpochEstablishedTwice) {
  OwnershipTracker other_node = Started(3);
  other_node.OnEvent(0, Epoch(Kind::kOwner, 9, 20));
  other_node.OnEvent(1, Epoch(Kind::kOwner, 9, 20));
  EXPECT_NE(other_node.failure().find("S5"), std::string::npos);

  OwnershipTracker restarted = Started(3);
  restarted.OnEvent(0, Epoch(Kind::kOwner, 9, 20));
  restarted.OnStart(0);
  restarted.OnEvent(0, Epoch(Kind::kOwner, 9, 20));
  EXPECT_NE(restarted.failure().find("process"), std::string::npos);
}

TEST(OwnershipTrackerTest, FlagsAPromiseOrAcceptanceBelowAnEarlierPromise) {
  OwnershipTracker promise = Started(3);
  promise.OnEvent(2, Epoch(Kind::kPromised, 1, 30));
  promise.OnStart(2);  // The promise is on disk: a restart keeps it.
  promise.OnEvent(2, Epoch(Kind::kPromised, 1, 25));
  EXPECT_NE(promise.failure().find("S11"), std::string::npos);

  OwnershipTracker accepted = Started(3);
  accepted.OnEvent(2, Epoch(Kind::kPromised, 1, 30));
  accepted.OnEvent(2, Epoch(Kind::kAccepted, 1, 25));
  EXPECT_NE(accepted.failure().find("accepted appends of epoch 25"), std::string::npos);

  OwnershipTracker accepted_before = Started(3);
  accepted_before.OnEvent(2, Epoch(Kind::kAccepted, 1, 30));
  accepted_before.OnEvent(2, Epoch(Kind::kAccepted, 1, 25));
  EXPECT_NE(accepted_before.failure().find("after accepting epoch 30"), std::string::npos);

  // An acknowledged append does not make the promise behind it durable: after a restart
  // the node may promise, and then accept, an epoch between its durable promise and it.
  OwnershipTracker restarted = Started(3);
  restarted.OnEvent(2, Epoch(Kind::kPromised, 1, 20));
  restarted.OnEvent(2, Epoch(Kind::kAccepted, 1, 30));
  restarted.OnStart(2);
  restarted.OnEvent(2, Epoch(Kind::kPromised, 1, 25));
  restarted.OnEvent(2, Epoch(Kind::kAccepted, 1, 25));
  EXPECT_EQ(restarted.failure(), "");

  OwnershipTracker other_partition = Started(3);
  other_partition.OnEvent(2, Epoch(Kind::kPromised, 1, 30));
  other_partition.OnEvent(2, Epoch(Kind::kAccepted, 2, 25));
  EXPECT_EQ(other_partition.failure(), "");
}

TEST(OwnershipTrackerTest, FlagsTwoMapsUnderOneVersionAndAMapGoingBack) {
  OwnershipTracker differ = Started(3);
  differ.OnEvent(0, Map(3, 8, 0x1));
  differ.OnEvent(1, Map(3, 8, 0x2));
  EXPECT_NE(differ.failure().find("S13"), std::string::npos);

  OwnershipTracker back = Started(3);
  back.OnEvent(1, Map(3, 8, 0x1));
  back.OnEvent(1, Map(3, 7, 0x3));
  EXPECT_NE(back.failure().find("after version 8"), std::string::npos);

  OwnershipTracker restarted = Started(3);
  restarted.OnEvent(1, Map(3, 8, 0x1));
  restarted.OnStart(1);  // A new process starts from no map.
  restarted.OnEvent(1, Map(3, 7, 0x3));
  EXPECT_EQ(restarted.failure(), "");
}

}  // namespace
}  // namespace unimeter::sim
