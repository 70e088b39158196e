// The known hard cases of replication, each scripted on a simulated cluster (3 nodes, or 5)
// running the real NodeServer and ReplicatedEngine while three clients ingest synchronously.
// Every scenario ends with the full check (sim/cluster_workload.h): every acknowledged event
// counted exactly once on every node, replicas identical, every request completed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>

#include "node/replication/replica_meta.h"
#include "sim/cluster_workload.h"

namespace unimeter::sim {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMs;

ClusterRunOptions Options() {
  ClusterRunOptions options;
  options.nodes = 3;
  options.clients = 3;
  const char* verbose = std::getenv("UM_VERBOSE");  // determinism-ok: prints the log only
  options.verbose = verbose != nullptr;             // The run is the same, with its log on stderr.
  return options;
}

void ExpectExactlyOnce(const ClusterRunResult& result) {
  EXPECT_TRUE(result.ok) << result.failure;
  EXPECT_GT(result.events_acknowledged, 1000u);
}

TEST(ReplicationScenariosTest, FailoverOfAllOfOneNodesPartitionsUnderLoad) {
  ClusterScenario scenario(101, Options());
  scenario.RunFor(5 * kSecond);
  ASSERT_EQ(scenario.ServedPartitions(), 256u);
  const NodeId victim = scenario.OwnerOf(0);
  scenario.Crash(victim);
  const int64_t took_ns = scenario.RunUntilAllServed(10 * kSecond);
  EXPECT_GE(took_ns, 0) << "partitions of the dead node not served within 10 s";
  EXPECT_LE(took_ns, 4 * kSecond);
  scenario.RunFor(2 * kSecond);
  scenario.Restart(victim);
  scenario.RunFor(10 * kSecond);
  EXPECT_EQ(scenario.OwnerOf(0), victim) << "partitions not rebalanced back after catch-up";
  ExpectExactlyOnce(scenario.Finish());
}

// An owner whose free disk drops below --min-free-disk-mb refuses writes and replicated
// entries. Its partitions move to the members that take writes (before, it kept them and
// they took no writes until space was freed: seed 114401565 acknowledged nothing of its
// account for 14 s), requests reaching it for other partitions are forwarded, and its own
// partitions return once space is freed and it has caught up.
TEST(ReplicationScenariosTest, AnOwnerWhoseDiskFillsHandsItsPartitionsOver) {
  ClusterScenario scenario(113, Options());
  // The nodes check their free disk every second from their start, so the check at 5 s
  // finds the disk full before the load fills the rest (a node whose WAL write fails on a full
  // disk crashes on purpose: another path, exercised by the seeds).
  scenario.RunFor(5 * kSecond - 10 * kMs);

  ASSERT_EQ(scenario.ServedPartitions(), 256u);
  const NodeId victim = scenario.OwnerOf(0);
  scenario.SetDiskFull(victim, true);
  auto victim_owns_none = [&] {
    for (uint32_t partition = 0; partition < 256; ++partition) {
      if (scenario.OwnerOf(partition) == victim) return false;
    }
    return scenario.ServedPartitions() == 256u;
  };
  // Found at the check, then a heartbeat and the new owners' epoch starts.
  int64_t waited_ns = 0;
  while (!victim_owns_none() && waited_ns < 10 * kSecond) {
    scenario.RunFor(100 * kMs);
    waited_ns += 100 * kMs;
  }
  ASSERT_TRUE(victim_owns_none()) << "n" << victim << " kept partitions with its disk full";
  std::printf("handover: all partitions served by others %lld ms after the disk filled\n",
              static_cast<long long>(waited_ns / kMs));
  EXPECT_NE(scenario.Problem(victim).find("free disk below the threshold"), std::string::npos)
      << scenario.Problem(victim);
  const uint64_t acknowledged = scenario.Acknowledged(0);
  scenario.RunFor(3 * kSecond);
  EXPECT_GT(scenario.Acknowledged(0), acknowledged) << "account 0 took no writes";
  scenario.SetDiskFull(victim, false);
  scenario.RunFor(10 * kSecond);
  EXPECT_EQ(scenario.OwnerOf(0), victim) << "partitions not handed back after space was freed";
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, NewOwnerIsTheReplicaThatLacksCommittedEntries) {
  ClusterScenario scenario(102, Options());
  scenario.RunFor(3 * kSecond);
  // Node 2 stops hearing node 0: node 0's partitions commit with node 1 alone, node 2
  // lacks those committed entries. Then node 0 dies and half of its partitions go to node 2,
  // which must adopt node 1's log before serving.
  scenario.Block(0, 2);
  scenario.RunFor(3 * kSecond);
  scenario.Crash(0);
  EXPECT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.Unblock(0, 2);
  scenario.RunFor(2 * kSecond);
  scenario.Restart(0);
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, CatchUpSourceCrashesMidTransfer) {
  ClusterScenario scenario(103, Options());
  scenario.RunFor(4 * kSecond);
  scenario.Crash(2);
  scenario.RunFor(kSecond);
  scenario.RestartWiped(2);  // Resync starts: snapshots from every owner.
  scenario.RunFor(250 * kMs);
  scenario.Crash(0);             // One of the sources dies mid-transfer.
  scenario.RunFor(2 * kSecond);  // No quorum of active nodes meanwhile: a stall, not a loss.
  scenario.Restart(0);
  EXPECT_GE(scenario.RunUntilAllServed(20 * kSecond), 0);
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, DiskReplacedRightAfterAcknowledging) {
  ClusterScenario scenario(104, Options());
  scenario.RunFor(4 * kSecond);
  scenario.Crash(1);  // Mid-stream: it acknowledged entries a moment ago.
  scenario.RestartWiped(1);
  scenario.RunFor(10 * kSecond);  // Resynced and active again.
  // The replaced disk must now be a full replica: lose another node and keep serving.
  scenario.Crash(2);
  EXPECT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.RunFor(2 * kSecond);
  scenario.Restart(2);
  ExpectExactlyOnce(scenario.Finish());
}

// F21: an operator starts a node on a copy of another node's data directory. It must
// refuse, naming whose directory it is (before reading or replaying anything), and once
// given an empty one it resyncs and the cluster loses nothing.
TEST(ReplicationScenariosTest, ANodeRefusesAnotherNodesDataDirectory) {
  ClusterScenario scenario(105, Options());
  scenario.RunFor(3 * kSecond);
  scenario.Crash(1);
  const absl::Status started = scenario.RestartOnDiskOf(1, 2);
  EXPECT_TRUE(absl::IsFailedPrecondition(started)) << started;
  EXPECT_NE(started.message().find("belongs to node 2"), absl::string_view::npos) << started;
  scenario.RunFor(2 * kSecond);  // Two nodes carry on meanwhile.
  scenario.RestartWiped(1);
  EXPECT_GE(scenario.RunUntilCaughtUp(1, 20 * kSecond), 0);
  ExpectExactlyOnce(scenario.Finish());
}

// Product-semantics 7.2: the alert log survives the loss of its node's disk. Every replica
// keeps copies of every node's records; a replaced disk restores its log from them during
// resync, with the same offsets, and goes on after the highest.
TEST(ReplicationScenariosTest, AReplacedDiskGetsItsAlertLogBackWithItsOffsets) {
  ClusterScenario scenario(118, Options());
  scenario.RunFor(6 * kSecond);
  const absl::StatusOr<std::vector<AlertRecord>> before = scenario.Alerts(1);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_GE(before->size(), 10u) << "too few crossings recorded to show anything";
  scenario.Crash(1);
  scenario.RestartWiped(1);
  ASSERT_GE(scenario.RunUntilCaughtUp(1, 30 * kSecond), 0);
  absl::StatusOr<std::vector<AlertRecord>> after = scenario.Alerts(1);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_GE(after->size(), before->size());
  for (size_t i = 0; i < before->size(); ++i) {
    EXPECT_EQ((*after)[i], (*before)[i]) << "record " << i;
  }
  scenario.RunFor(6 * kSecond);  // Its partitions come back: it records again.
  after = scenario.Alerts(1);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_GT(after->size(), before->size());
  for (size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].offset, i) << "offsets are dense and none is given twice";
  }
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, VotesAndPromisesLostInACrashBeforeTheyWereDurable) {
  // A vote or an epoch promise not persisted before a crash: a node dies while its
  // replica.meta write is in flight (the crash may lose it), then comes back. Nobody may
  // have heard of what it lost (votes and promises are told only once durable); the
  // ownership tracker holds every node to its durable votes and promises across restarts
  // (S11, S5) during the run, and Finish checks the rest.
  ClusterScenario scenario(117, Options());
  scenario.RunFor(3 * kSecond);
  for (NodeId round = 0; round < 6; ++round) {
    const NodeId victim = round % 3;        // Its partitions move: new epochs, promises.
    const NodeId writer = (round + 1) % 3;  // Crashed mid-write of its promise or vote.
    scenario.Crash(victim);
    ASSERT_TRUE(scenario.RunUntilSyncInFlight(writer, replication::kMetaFileName, 5 * kSecond))
        << "round " << round << ": no replica.meta write on n" << writer;
    scenario.Crash(writer);
    scenario.Restart(victim);
    scenario.Restart(writer);
    EXPECT_GE(scenario.RunUntilAllServed(20 * kSecond), 0) << "round " << round;
    scenario.RunFor(kSecond);
  }
  ExpectExactlyOnce(scenario.Finish());
}

// One registry (product-semantics 9): registry changes sent at the same instant through
// different nodes, and one cut short by the crash of the registry leader, leave every
// partition of every node with the same schema of the code. Finish checks it (S9, one
// registry). Before registry changes were ordered by partition 0's owner and versioned,
// each node proposed its change to every partition itself, and partitions whose owner got
// the two forwards in the other order kept the other schema.
TEST(ReplicationScenariosTest, ConcurrentRegistryChangesLeaveOneRegistry) {
  ClusterScenario scenario(118, Options());
  scenario.RunFor(3 * kSecond);
  metering::MetricSchema sum;
  sum.code = "registry-test";  // No event names it.
  sum.agg_type = metering::AggregationType::kSum;
  metering::MetricSchema max = sum;
  max.agg_type = metering::AggregationType::kMax;
  int answered = 0;
  int acknowledged = 0;
  auto count = [&](absl::Status status) {
    ++answered;
    acknowledged += status.ok() ? 1 : 0;
  };
  // A change the registry leader proposed to some partitions only: it crashes at once.
  const NodeId leader = scenario.OwnerOf(0);
  ASSERT_LE(leader, 2u);
  scenario.PutMetric(leader, sum, [](absl::Status) {});  // Never answered: it crashes.
  scenario.RunFor(kMs);
  scenario.Crash(leader);
  scenario.RunFor(5 * kSecond);
  scenario.Restart(leader);
  scenario.RunFor(3 * kSecond);
  for (int round = 0; round < 4; ++round) {
    scenario.PutMetric(round % 3, round % 2 == 0 ? sum : max, count);
    scenario.PutMetric((round + 1) % 3, round % 2 == 0 ? max : sum, count);
    scenario.RunFor(2 * kSecond);
  }
  EXPECT_EQ(answered, 8);
  EXPECT_EQ(acknowledged, 8);
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, BridgeAndAsymmetricPartitions) {
  ClusterScenario scenario(105, Options());
  scenario.RunFor(3 * kSecond);
  // Bridge: nodes 0 and 2 cannot talk, node 1 reaches both. A quorum exists everywhere.
  scenario.Block(0, 2);
  scenario.Block(2, 0);
  scenario.RunFor(6 * kSecond);
  EXPECT_EQ(scenario.ServedPartitions(), 256u);
  scenario.Unblock(0, 2);
  scenario.Unblock(2, 0);
  // Asymmetric: node 1 can hear everybody, nobody hears node 1.
  scenario.Block(1, 0);
  scenario.Block(1, 2);
  EXPECT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.RunFor(4 * kSecond);
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, IsolatedOldOwnerKeepsTakingRequestsButNeverCommits) {
  ClusterScenario scenario(106, Options());
  scenario.RunFor(3 * kSecond);
  // Node 0 is cut off from its peers (its clients still reach it) far past every timeout:
  // it still believes it owns its partitions, but nothing it accepts can commit.
  for (NodeId other : {1u, 2u}) {
    scenario.Block(0, other);
    scenario.Block(other, 0);
  }
  scenario.RunFor(12 * kSecond);
  for (NodeId other : {1u, 2u}) {
    scenario.Unblock(0, other);
    scenario.Unblock(other, 0);
  }
  scenario.RunFor(5 * kSecond);
  ExpectExactlyOnce(scenario.Finish());
}

// Freezes the owner of `account` past every timeout (its partitions move and the clients
// keep writing to the new owners; it still believes it owns them when it wakes), wakes it
// and reads through it before it has processed anything: the answer must include every
// write acknowledged before the read began, or be an error. With `lose_news`, everything
// sent to it while frozen is lost, so it wakes with no news of the new owners and only its
// read confirmation (a round of "do you still hold my epoch?" that the others, which
// promised a newer epoch, must answer "no") stands between it and a stale answer.
void ExpectNoStaleReadFromWokenOwner(ClusterScenario& scenario, uint64_t account, bool lose_news,
                                     NodeId* old_owner) {
  ASSERT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.RunFor(1 * kSecond);
  *old_owner = scenario.OwnerOf(account);
  ASSERT_LE(*old_owner, 2u);
  scenario.Pause(*old_owner);
  for (NodeId node = 0; node < 3 && lose_news; ++node) {
    if (node != *old_owner) scenario.Block(node, *old_owner);
  }
  scenario.RunFor(6 * kSecond);
  const NodeId new_owner = scenario.OwnerOf(account);
  ASSERT_LE(new_owner, 2u);
  EXPECT_NE(new_owner, *old_owner);
  const uint64_t acknowledged = scenario.Acknowledged(account);
  ASSERT_GT(acknowledged, 0u);
  for (NodeId node = 0; node < 3 && lose_news; ++node) {
    if (node != *old_owner) scenario.Unblock(node, *old_owner);
  }
  scenario.Resume(*old_owner);
  bool answered = false;
  absl::StatusOr<uint64_t> sum = absl::UnknownError("not answered");
  scenario.ReadSum(*old_owner, account, [&](absl::StatusOr<uint64_t> result) {
    answered = true;
    sum = std::move(result);
  });
  scenario.RunFor(6 * kSecond);
  ASSERT_TRUE(answered);
  if (sum.ok()) {
    EXPECT_GE(*sum, acknowledged) << "stale read from the woken old owner";
  }
}

TEST(ReplicationScenariosTest, FrozenOldOwnerNeverServesAStaleRead) {
  ClusterScenario scenario(107, Options());
  constexpr uint64_t kAccount = 5;  // Partition 5.
  NodeId old_owner = 0;
  ExpectNoStaleReadFromWokenOwner(scenario, kAccount, /*lose_news=*/false, &old_owner);
  if (HasFatalFailure()) return;
  // And once it has caught up, a read through it answers (and is current).
  bool answered_again = false;
  const uint64_t acknowledged_again = scenario.Acknowledged(kAccount);
  scenario.ReadSum(old_owner, kAccount, [&](absl::StatusOr<uint64_t> result) {
    answered_again = true;
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_GE(*result, acknowledged_again);
  });
  scenario.RunFor(2 * kSecond);
  EXPECT_TRUE(answered_again);
  ExpectExactlyOnce(scenario.Finish());
}

// The same, with everything sent to the frozen owner lost.
TEST(ReplicationScenariosTest, FrozenOldOwnerWithoutNewsNeverServesAStaleRead) {
  ClusterScenario scenario(108, Options());
  NodeId old_owner = 0;
  ExpectNoStaleReadFromWokenOwner(scenario, /*account=*/7, /*lose_news=*/true, &old_owner);
  if (HasFatalFailure()) return;
  ExpectExactlyOnce(scenario.Finish());
}

// Read leases longer than an election: the owner of account 9's partition, cut off from
// its peers (its own clients still reach it) just after reads renewed its lease, keeps
// answering reads under the lease while the others elect a new owner. No peer may tell the
// new epoch its promise until the lease it granted has ended, so the new owner acknowledges
// nothing of the partition meanwhile, and no read through the cut-off owner is stale.
// Fails (stale reads) when promises are told at once.
TEST(ReplicationScenariosTest, CutOffOwnerUnderALongReadLeaseNeverServesAStaleRead) {
  int answered = 0;
  int stale = 0;
  ClusterRunOptions options = Options();
  options.read_lease_ns = 4 * kSecond;
  ClusterScenario scenario(109, options);
  constexpr uint64_t kAccount = 9;  // Partition 9.
  ASSERT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.RunFor(1 * kSecond);
  const NodeId old_owner = scenario.OwnerOf(kAccount);
  ASSERT_LE(old_owner, 2u);
  auto read = [&] {
    const uint64_t acknowledged = scenario.Acknowledged(kAccount);
    scenario.ReadSum(old_owner, kAccount, [&, acknowledged](absl::StatusOr<uint64_t> sum) {
      if (!sum.ok()) return;
      ++answered;
      if (*sum < acknowledged) ++stale;
    });
  };
  for (int i = 0; i < 3; ++i) {  // The first read's round starts the lease.
    read();
    scenario.RunFor(100 * kMs);
  }
  for (NodeId other = 0; other < 3; ++other) {
    if (other == old_owner) continue;
    scenario.Block(old_owner, other);
    scenario.Block(other, old_owner);
  }
  const int answered_before = answered;
  const uint64_t acknowledged_at_split = scenario.Acknowledged(kAccount);
  for (int i = 0; i < 60; ++i) {
    read();
    scenario.RunFor(100 * kMs);
  }
  EXPECT_GT(answered, answered_before) << "no read was answered under the lease";
  EXPECT_GT(scenario.Acknowledged(kAccount), acknowledged_at_split)
      << "the new owner never took writes of the partition";
  for (NodeId other = 0; other < 3; ++other) {
    if (other == old_owner) continue;
    scenario.Unblock(old_owner, other);
    scenario.Unblock(other, old_owner);
  }
  scenario.RunFor(6 * kSecond);
  EXPECT_EQ(stale, 0) << "reads through the cut-off owner missed acknowledged writes";
  ExpectExactlyOnce(scenario.Finish());
}

// L6: when one of five nodes dies under load, all of its partitions (about 51) get new
// owners within the L1 bound (5 s, docs/simulation.md "Modes").
TEST(ReplicationScenariosTest, FailoverOfOneOfFiveNodesUnderLoadWithinTheLivenessBound) {
  ClusterRunOptions options = Options();
  options.nodes = 5;
  ClusterScenario scenario(111, options);
  scenario.RunFor(5 * kSecond);
  ASSERT_EQ(scenario.ServedPartitions(), 256u);
  const NodeId victim = scenario.OwnerOf(7);
  uint32_t owned = 0;
  for (uint32_t partition = 0; partition < 256; ++partition) {
    owned += scenario.OwnerOf(partition) == victim ? 1 : 0;
  }
  EXPECT_GE(owned, 40u);  // An even spread: about 256 / 5.
  const uint64_t acknowledged = scenario.AcknowledgedTotal();
  scenario.Crash(victim);
  const int64_t took_ns = scenario.RunUntilAllServed(10 * kSecond);
  EXPECT_GE(took_ns, 0) << "partitions of the dead node not served within 10 s";
  EXPECT_LE(took_ns, 5 * kSecond);
  std::printf("failover: %u partitions of the dead node served again in %lld ms\n", owned,
              static_cast<long long>(took_ns / kMs));
  scenario.RunFor(3 * kSecond);
  EXPECT_GT(scenario.AcknowledgedTotal(), acknowledged + 1000) << "no progress after failover";
  scenario.Restart(victim);
  ExpectExactlyOnce(scenario.Finish());
}

// Design scenario 5: the leader that issues partition maps is cut off, then a data owner
// dies. Cut off both ways, or (`send_only`) still heard by the others but hearing nothing
// (so they see a live leader, and it sees nobody). It may still believe it leads; maps it
// issues alone must not take effect: the ownership tracker fails the run on an owner
// change no newer map names or a map version acted on after a newer one, and the old
// leader may serve nothing. The others elect a new leader and serve every partition (the
// dead owner's and the old leader's) within the L1 bound; the old leader rejoins under
// the newer map without taking over. Without CheckQuorum (a leader that reaches no quorum
// resigns) the send-only cut leaves every partition unserved.
void CutOffTheLeaderAndKillAnOwner(uint64_t seed, bool send_only) {
  ClusterRunOptions options = Options();
  options.nodes = 5;
  ClusterScenario scenario(seed, options);
  ASSERT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.RunFor(2 * kSecond);
  const NodeId old_leader = scenario.Leader();
  ASSERT_LT(old_leader, 5u);
  NodeId victim = old_leader;
  for (uint32_t partition = 0; partition < 256 && victim == old_leader; ++partition) {
    victim = scenario.OwnerOf(partition);
  }
  ASSERT_NE(victim, old_leader);
  const auto cut = [&](bool blocked) {
    for (NodeId other = 0; other < 5; ++other) {
      if (other == old_leader) continue;
      blocked ? scenario.Block(other, old_leader) : scenario.Unblock(other, old_leader);
      if (!send_only)
        blocked ? scenario.Block(old_leader, other) : scenario.Unblock(old_leader, other);
    }
  };
  cut(true);
  scenario.RunFor(200 * kMs);
  scenario.Crash(victim);
  const uint64_t acknowledged = scenario.AcknowledgedTotal();
  // Counted from the others' own reports, which need a reachable quorum.
  const auto served_by_majority = [&] {
    uint32_t served = 0;
    for (NodeId node = 0; node < 5; ++node) {
      if (node != old_leader && node != victim) served += scenario.ServingPartitions(node);
    }
    return served;
  };
  int64_t took_ns = 0;
  while (served_by_majority() < 256 && took_ns < 10 * kSecond) {
    scenario.RunFor(50 * kMs);
    took_ns += 50 * kMs;
  }
  EXPECT_EQ(served_by_majority(), 256u) << "not served within 10 s";
  EXPECT_LE(took_ns, 5 * kSecond);
  std::printf("leader n%u cut off%s, owner n%u dead: every partition served again in %lld ms\n",
              old_leader, send_only ? " (it can send)" : "", victim,
              static_cast<long long>(took_ns / kMs));
  const NodeId new_leader = scenario.Leader();
  EXPECT_NE(new_leader, old_leader);
  EXPECT_NE(new_leader, victim);
  scenario.RunFor(3 * kSecond);
  EXPECT_EQ(scenario.ServingPartitions(old_leader), 0u) << "the cut-off leader serves";
  EXPECT_GT(scenario.AcknowledgedTotal(), acknowledged + 1000) << "no progress";
  cut(false);
  scenario.Restart(victim);
  scenario.RunFor(3 * kSecond);
  EXPECT_EQ(scenario.Leader(), new_leader) << "the old leader took over again";
  ExpectExactlyOnce(scenario.Finish());
}

TEST(ReplicationScenariosTest, ACutOffLeaderAndADeadOwnerLeaveOneMap) {
  CutOffTheLeaderAndKillAnOwner(117, /*send_only=*/false);
}

TEST(ReplicationScenariosTest, ALeaderThatHearsNobodyAndADeadOwnerLeaveOneMap) {
  CutOffTheLeaderAndKillAnOwner(118, /*send_only=*/true);
}

// L3 and L4: a node that was down under load catches up, and one with a replaced disk
// resyncs, within a bound proportional to what it lacks, at no less than 10 MB/s of
// simulated transfer plus 2 s (detection, elections, snapshot pacing). What it lacks is
// bounded from above by 200 bytes per acknowledged event (an encoded event of this
// workload is under 100 bytes).
int64_t TransferBoundNs(uint64_t events) {
  const int64_t bytes = static_cast<int64_t>(events) * 200;
  return 2 * kSecond + bytes * kSecond / 10'000'000;
}

// Replaces `node`'s disk (a crash, then a start on an empty one) and runs until it has
// resynced (L4): within `bound_ns` of the events the cluster held when it started.
void ReplaceDiskAndExpectResyncWithin(ClusterScenario& scenario, NodeId node,
                                      const std::function<int64_t(uint64_t)>& bound_ns) {
  scenario.Crash(node);
  scenario.RestartWiped(node);
  const uint64_t held = scenario.AcknowledgedTotal();
  const int64_t resync_ns = scenario.RunUntilCaughtUp(node, 60 * kSecond);
  EXPECT_GE(resync_ns, 0) << "never resynced";
  EXPECT_LE(resync_ns, bound_ns(held)) << held << " events held";
  std::printf("resync: %llu events held, resynced in %lld ms\n",
              static_cast<unsigned long long>(held), static_cast<long long>(resync_ns / kMs));
}

TEST(ReplicationScenariosTest, CatchUpAndResyncWithinBoundsProportionalToTheLag) {
  ClusterScenario scenario(112, Options());
  scenario.RunFor(3 * kSecond);
  scenario.Crash(2);
  const uint64_t before = scenario.AcknowledgedTotal();
  scenario.RunFor(10 * kSecond);
  const uint64_t missed = scenario.AcknowledgedTotal() - before;
  ASSERT_GT(missed, 5000u);
  scenario.Restart(2);
  const int64_t catch_up_ns = scenario.RunUntilCaughtUp(2, 60 * kSecond);
  EXPECT_GE(catch_up_ns, 0) << "never caught up";
  EXPECT_LE(catch_up_ns, TransferBoundNs(missed)) << missed << " events missed";
  std::printf("catch-up: %llu events missed, caught up in %lld ms\n",
              static_cast<unsigned long long>(missed), static_cast<long long>(catch_up_ns / kMs));

  scenario.RunFor(5 * kSecond);
  ReplaceDiskAndExpectResyncWithin(scenario, 1, TransferBoundNs);
  ExpectExactlyOnce(scenario.Finish());
}

// A replica restarts with a log that lost its last synced writes (its log files as they
// were 30 ms earlier, its state store and replica.meta as they are: a disk that ignores
// flushes), too recent for any announcement of its WAL to have reached its peers, so it
// does not find that itself. The owners whose epoch it acknowledged entries in see it hold
// less than it acknowledged as durable: they count it, say so, and send the entries again
// from where it holds them, so it catches up within L3's bound for what it lost. Before,
// resends started above its log's end and were refused; with a 4 s loss it caught up only
// after 2.5 s, beyond that bound, by a path not traced.
TEST(ReplicationScenariosTest, AReplicaThatLostAcknowledgedEntriesGetsThemAgain) {
  ClusterScenario scenario(114, Options());
  scenario.RunFor(3 * kSecond);
  const NodeId victim = 2;
  scenario.BackUpDisk(victim);
  const uint64_t backed_up = scenario.AcknowledgedTotal();
  scenario.RunFor(30 * kMs);
  scenario.Crash(victim);
  const uint64_t lost_at_most = scenario.AcknowledgedTotal() - backed_up;
  ASSERT_TRUE(scenario.RestartWithLogFromBackup(victim).ok());
  const int64_t caught_up_ns = scenario.RunUntilCaughtUp(victim, 30 * kSecond);
  EXPECT_GE(caught_up_ns, 0) << "n" << victim << " never caught up";
  EXPECT_LE(caught_up_ns, TransferBoundNs(lost_at_most)) << lost_at_most << " events at most";
  EXPECT_GT(scenario.PeersLostAcknowledged(), 0u);
  EXPECT_EQ(scenario.DirectoriesWentBack(), 0u);
  std::printf("lost acknowledged entries: noticed in %llu partitions, caught up in %lld ms\n",
              static_cast<unsigned long long>(scenario.PeersLostAcknowledged()),
              static_cast<long long>(caught_up_ns / kMs));
  // Its alert log lost the records of the lost log tail too, which only a new incarnation
  // gets back from the peers' copies: the operator replaces the disk, as the owners' log
  // line asks.
  scenario.Crash(victim);
  scenario.RestartWiped(victim);
  EXPECT_GE(scenario.RunUntilCaughtUp(victim, 60 * kSecond), 0) << "never resynced";
  ExpectExactlyOnce(scenario.Finish());
}

// The same with 4 s of synced log writes lost: its peers heard its WAL announced as durable
// beyond what it holds, so the node finds it itself (its replica.meta is intact), resyncs
// as a new incarnation and gets its alert log back from the copies, with no disk
// replacement (the run's checks include S1 over every crossing).
TEST(ReplicationScenariosTest, ANodeFindsItsLogWentBackAndResyncs) {
  ClusterScenario scenario(114, Options());
  scenario.RunFor(3 * kSecond);
  const NodeId victim = 2;
  scenario.BackUpDisk(victim);
  scenario.RunFor(4 * kSecond);
  scenario.Crash(victim);
  ASSERT_TRUE(scenario.RestartWithLogFromBackup(victim).ok());
  scenario.RunFor(kSecond);
  EXPECT_EQ(scenario.DirectoriesWentBack(), 1u) << "n" << victim << " ran on its old log";
  EXPECT_GE(scenario.RunUntilCaughtUp(victim, 60 * kSecond), 0) << "never resynced";
  ExpectExactlyOnce(scenario.Finish());
}

// A node started on an old backup of its whole data directory (replica.meta included):
// since the backup its previous process promised epochs and began others as partitions
// changed owners, so its votes and promises went back in time, which owners cannot see in
// its log alone. Its peers heard those replica.meta writes announced: at its first
// HeartbeatAcks they echo them, the node finds its directory older, votes and promises
// nothing meanwhile, and resyncs as a new incarnation. With the finding switched off it
// stays active on the old directory and nothing reports it.
TEST(ReplicationScenariosTest, ANodeStartedOnAnOldBackupOfItsDirectoryResyncs) {
  ClusterScenario scenario(115, Options());
  scenario.RunFor(3 * kSecond);
  const NodeId victim = 2;
  scenario.BackUpDisk(victim);
  scenario.RunFor(kSecond);
  scenario.Crash(0);  // Its partitions move: the victim promises and begins new epochs.
  scenario.RunFor(4 * kSecond);
  scenario.Restart(0);  // And move back once it caught up.
  scenario.RunFor(6 * kSecond);
  scenario.Crash(victim);
  ASSERT_TRUE(scenario.RestartFromBackup(victim).ok());
  scenario.RunFor(kSecond);
  EXPECT_EQ(scenario.DirectoriesWentBack(), 1u) << "n" << victim << " ran on its old directory";
  EXPECT_NE(scenario.Problem(victim).find("went back in time"), std::string::npos)
      << scenario.Problem(victim);
  const int64_t resynced_ns = scenario.RunUntilCaughtUp(victim, 60 * kSecond);
  EXPECT_GE(resynced_ns, 0) << "n" << victim << " never resynced";
  std::printf("old backup: found within 1 s, resynced %lld ms later\n",
              static_cast<long long>(resynced_ns / kMs));
  ExpectExactlyOnce(scenario.Finish());
}

// The whole cluster loses power while n0 is down, then n0 is started on an old backup of
// its directory. Its peers heard its earlier processes announce newer writes, but they
// restarted too: only the records they kept with their checkpoints (meta_history.h) can
// find it. Without them (records in memory only, as before) n0 is confirmed at once and
// runs on its old directory, and the finding never comes.
TEST(ReplicationScenariosTest, AnOldBackupIsFoundAfterTheWholeClusterRestarted) {
  ClusterScenario scenario(120, Options());
  scenario.RunFor(3 * kSecond);
  scenario.BackUpDisk(0);
  scenario.RunFor(8 * kSecond);  // Checkpoints every 5 s keep what the peers heard.
  scenario.Crash(0);
  scenario.RunFor(1 * kSecond);
  scenario.Crash(1);
  scenario.Crash(2);
  scenario.Restart(1);
  scenario.Restart(2);
  ASSERT_TRUE(scenario.RestartFromBackup(0).ok());
  scenario.RunFor(2 * kSecond);
  EXPECT_EQ(scenario.DirectoriesWentBack(), 1u) << "the old backup was not found";
  EXPECT_GE(scenario.RunUntilCaughtUp(0, 30 * kSecond), 0) << "never resynced";
  ExpectExactlyOnce(scenario.Finish());
}

// A copy of a node's disk from before that disk was replaced: it comes back with the
// incarnation the replacement superseded. Its peers remember replaced incarnations, so it
// is found (whatever its sequences say) and resyncs as a new incarnation. Before, peers
// took it for a new incarnation with no history, and it served on the old directory (the
// drawn fault's seed 115701265 failed S13 that way).
TEST(ReplicationScenariosTest, ACopyFromBeforeADiskReplacementIsFound) {
  ClusterScenario scenario(116, Options());
  scenario.RunFor(3 * kSecond);
  const NodeId victim = 1;
  scenario.BackUpDisk(victim);
  scenario.RunFor(kSecond);
  scenario.Crash(victim);
  scenario.RestartWiped(victim);
  EXPECT_GE(scenario.RunUntilCaughtUp(victim, 60 * kSecond), 0) << "never resynced";
  scenario.RunFor(2 * kSecond);
  scenario.Crash(victim);
  ASSERT_TRUE(scenario.RestartFromBackup(victim).ok());
  scenario.RunFor(kSecond);
  EXPECT_EQ(scenario.DirectoriesWentBack(), 1u) << "n" << victim << " ran on the old disk";
  EXPECT_GE(scenario.RunUntilCaughtUp(victim, 60 * kSecond), 0) << "never resynced again";
  ExpectExactlyOnce(scenario.Finish());
}

// A rolling upgrade half done: n2 still speaks protocol minor 6 (its HeartbeatAcks carry
// no announcement of its directory and no echo of its peers'). Members restarted on this
// build must still be confirmed: with n0 down, the restarted n1 has only n2 to hear from,
// and a minor-6 member's ack counts as a confirmation (else {n1, n2} would serve nothing).
// A node restarted on an old backup is still found, by its one minor-7 peer's echo, though
// the minor-6 peer may confirm it first (the late finding: it gives up whatever it began).
TEST(ReplicationScenariosTest, AMixedClusterWithAMinor6Member) {
  ClusterRunOptions options = Options();
  options.old_minor_node = 2;
  options.old_minor = 6;
  ClusterScenario scenario(119, options);
  ASSERT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.RunFor(2 * kSecond);
  scenario.BackUpDisk(0);
  scenario.Crash(0);
  ASSERT_GE(scenario.RunUntilAllServed(10 * kSecond), 0);
  scenario.Crash(1);
  scenario.Restart(1);
  const int64_t served_ns = scenario.RunUntilAllServed(10 * kSecond);
  EXPECT_GE(served_ns, 0) << "n1, confirmed only by a minor-6 peer, never served";
  EXPECT_LE(served_ns, 5 * kSecond);
  scenario.Restart(0);
  ASSERT_GE(scenario.RunUntilCaughtUp(0, 30 * kSecond), 0);
  scenario.RunFor(2 * kSecond);
  scenario.Crash(0);
  ASSERT_TRUE(scenario.RestartFromBackup(0).ok());
  scenario.RunFor(2 * kSecond);
  EXPECT_EQ(scenario.DirectoriesWentBack(), 1u) << "the old backup was not found";
  EXPECT_GE(scenario.RunUntilCaughtUp(0, 30 * kSecond), 0) << "never resynced";
  EXPECT_EQ(scenario.MessagesDropped(), 0u);
  ExpectExactlyOnce(scenario.Finish());
}

// A resync while node-to-node paths hold few messages, as under an overload burst (the
// five-minute seed 324: owners sent all of a snapshot's chunks at once, a full path dropped
// some, and every later attempt was of a newer state, so large partitions never arrived).
// With chunks of 1 KiB every snapshot here takes several, more than a path holds: a
// transfer paced by the receiver's acknowledgements still completes, and in bounded time.
TEST(ReplicationScenariosTest, ResyncThroughPathsThatHoldFewMessages) {
  ClusterRunOptions options = Options();
  options.path_capacity_messages = 8;
  options.snapshot_chunk_bytes = 1024;
  ClusterScenario scenario(114, options);
  scenario.RunFor(6 * kSecond);
  ReplaceDiskAndExpectResyncWithin(scenario, 2, [](uint64_t) { return 20 * kSecond; });
  ExpectExactlyOnce(scenario.Finish());
}

// Design scenario 10: the disks of two of three nodes lost at once. The survivor may lack
// entries the lost disks committed, so nothing may be served or committed: every node says
// why, reads through any node fail rather than answer, and no request is acknowledged.
TEST(ReplicationScenariosTest, DisksOfAMajorityLostAtOnceHaltWithAClearProblem) {
  ClusterScenario scenario(113, Options());
  scenario.RunFor(4 * kSecond);
  scenario.Crash(1);
  scenario.Crash(2);
  scenario.RestartWiped(1);
  scenario.RestartWiped(2);
  scenario.RunFor(kSecond);  // Answers already in flight arrive.
  const uint64_t acknowledged = scenario.AcknowledgedTotal();
  scenario.RunFor(15 * kSecond);
  EXPECT_EQ(scenario.AcknowledgedTotal(), acknowledged) << "committed without a quorum";
  for (NodeId node = 0; node < 3; ++node) {
    EXPECT_NE(scenario.Problem(node).find("data loss"), std::string::npos)
        << "node " << node << ": " << scenario.Problem(node);
    // The survivor still owns its partitions but commits nothing: it serves none.
    EXPECT_EQ(scenario.ServingPartitions(node), 0u) << "node " << node;
  }
  int answered = 0;
  int failed = 0;
  for (uint64_t account = 0; account < 16; ++account) {
    scenario.ReadSum(0, account,
                     [&](absl::StatusOr<uint64_t> sum) { (sum.ok() ? answered : failed) += 1; });
  }
  scenario.RunFor(10 * kSecond);
  EXPECT_EQ(answered, 0);
  EXPECT_EQ(failed, 16);
}

}  // namespace
}  // namespace unimeter::sim
