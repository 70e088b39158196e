// Goal: the demonstration service (node/demo/pinger.h), built only on Env, runs unchanged
// inside the simulator with several nodes, through crashes, restarts, message loss and
// network splits, and every run is a pure function of its seed.
//
// Method: a seeded fault schedule crashes and restarts nodes and splits and heals the
// network while the pingers commit. Ground truth comes from the simulated disks, never
// from the nodes' own claims: every COMMITTED(seq) durable on a node must be matched by
// durable SEEN records on a majority minus one of its peers, and a node's committed
// number never goes backwards across a crash. Each scenario runs twice per seed and the
// trace digests must be equal; different seeds must give different digests.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "node/base/random.h"
#include "node/demo/pinger.h"
#include "sim/sim_cluster.h"

namespace unimeter::sim {
namespace {

using demo::Pinger;
using demo::PingerOptions;
using demo::PingerRecord;
using demo::PingerRecordKind;

constexpr uint16_t kClientPort = 7001;
constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMillisecond;

NodeServiceFactory PingerFactory(uint32_t node_count) {
  return [node_count](Env& env) {
    PingerOptions options;
    for (NodeId peer = 0; peer < node_count; ++peer) {
      if (peer != env.node_id()) {
        options.peers.push_back(peer);
      }
    }
    options.client_port = kClientPort;
    return std::make_unique<Pinger>(env, options);
  };
}

// Durable records of `node`, read from its simulated disk (ground truth).
std::vector<PingerRecord> DurableRecords(SimCluster& cluster, NodeId node) {
  const std::string bytes = cluster.disk(node).FileBytes(Pinger::kLogFileName);
  std::vector<PingerRecord> records;
  for (size_t offset = 0; offset + demo::kPingerRecordSizeBytes <= bytes.size();
       offset += demo::kPingerRecordSizeBytes) {
    PingerRecord record;
    if (!demo::DecodePingerRecord(reinterpret_cast<const uint8_t*>(bytes.data()) + offset,
                                  &record)) {
      break;
    }
    records.push_back(record);
  }
  return records;
}

// Checks the quorum guarantee from durable state; returns the durable committed numbers.
std::vector<uint64_t> CheckQuorumDurability(SimCluster& cluster) {
  const uint32_t n = cluster.node_count();
  std::vector<uint64_t> committed(n, 0);
  std::vector<std::vector<uint64_t>> seen(n, std::vector<uint64_t>(n, 0));  // [holder][source]
  for (NodeId node = 0; node < n; ++node) {
    for (const PingerRecord& record : DurableRecords(cluster, node)) {
      if (record.kind == PingerRecordKind::kCommitted) {
        EXPECT_EQ(record.node, node);
        committed[node] = std::max(committed[node], record.sequence);
      } else {
        EXPECT_LT(record.node, n);
        seen[node][record.node] = std::max(seen[node][record.node], record.sequence);
      }
    }
  }
  const uint32_t quorum = n / 2 + 1;
  for (NodeId source = 0; source < n; ++source) {
    uint32_t holders = 1;  // The source itself.
    for (NodeId holder = 0; holder < n; ++holder) {
      if (holder != source && seen[holder][source] >= committed[source]) {
        ++holders;
      }
    }
    EXPECT_GE(holders, quorum) << "node " << source << " committed " << committed[source]
                               << " without a durable quorum";
  }
  return committed;
}

struct ScenarioResult {
  uint64_t digest = 0;
  uint64_t crashes = 0;
  uint64_t splits = 0;
  uint64_t min_committed = 0;
  std::string client_reply;
};

// Runs `duration_ns` of seeded faults, then heals, restarts everyone and lets the cluster
// make progress; checks the invariants along the way.
ScenarioResult RunScenario(uint64_t seed, uint32_t node_count, int64_t duration_ns) {
  ClusterOptions options;
  options.node_count = node_count;
  options.network.loss_ppm = 20'000;
  options.network.duplicate_ppm = 20'000;
  SimCluster cluster(seed, options, PingerFactory(node_count));
  EXPECT_TRUE(cluster.StartAll().ok());
  Prng faults(SubSeed(seed, 0xFA));
  ScenarioResult result;
  std::vector<uint64_t> committed_before_crash(node_count, 0);
  std::vector<NodeId> all;
  for (NodeId node = 0; node < node_count; ++node) {
    all.push_back(node);
  }
  Simulator& simulator = cluster.simulator();
  while (simulator.now_ns() < duration_ns) {
    simulator.RunUntil(simulator.now_ns() + 100 * kMillisecond);
    const NodeId target = static_cast<NodeId>(faults.UniformBelow(node_count));
    if (cluster.is_up(target) && faults.Chance(1, 8)) {
      committed_before_crash[target] = static_cast<Pinger&>(cluster.service(target)).committed();
      cluster.Crash(target);
      ++result.crashes;
    } else if (!cluster.is_up(target) && faults.Chance(1, 3)) {
      EXPECT_TRUE(cluster.Restart(target).ok());
      // Promises survive restarts: committed never goes backwards.
      EXPECT_GE(static_cast<Pinger&>(cluster.service(target)).committed(),
                committed_before_crash[target]);
    }
    if (faults.Chance(1, 10)) {
      cluster.network().HealAll();
      cluster.network().Isolate({static_cast<NodeId>(faults.UniformBelow(node_count))}, all);
      ++result.splits;
    } else if (faults.Chance(1, 5)) {
      cluster.network().HealAll();
    }
    CheckQuorumDurability(cluster);
  }
  // Liveness: heal, restart everyone and require progress everywhere.
  cluster.network().HealAll();
  EXPECT_TRUE(cluster.StartAll().ok());
  std::vector<uint64_t> floor = CheckQuorumDurability(cluster);
  const bool progressed = simulator.RunUntil(
      [&] {
        for (NodeId node = 0; node < node_count; ++node) {
          if (static_cast<Pinger&>(cluster.service(node)).committed() < floor[node] + 20) {
            return false;
          }
        }
        return true;
      },
      simulator.now_ns() + 30 * kSecond);
  EXPECT_TRUE(progressed) << "seed " << seed << ": no progress after healing";
  std::vector<uint64_t> final_committed = CheckQuorumDurability(cluster);
  result.min_committed = *std::min_element(final_committed.begin(), final_committed.end());

  // A simulated client asks node 0 for its status over a client stream.
  SimEnv& client = cluster.AddClient();
  std::unique_ptr<Stream> stream;
  client.Connect(SimAddress(0, kClientPort), [&](absl::StatusOr<std::unique_ptr<Stream>> s) {
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) {
      return;
    }
    stream = std::move(*s);
    stream->SetHandler({[&](absl::Span<const uint8_t> bytes) {
                          result.client_reply.append(bytes.begin(), bytes.end());
                        },
                        [](absl::Status) {}});
    const std::string request = "STATUS\n";
    EXPECT_TRUE(stream
                    ->Write(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(request.data()),
                                                request.size()))
                    .ok());
  });
  simulator.RunUntil([&] { return result.client_reply.find('\n') != std::string::npos; },
                     simulator.now_ns() + 5 * kSecond);
  stream.reset();
  result.digest = simulator.digest();
  result.crashes = cluster.crashes();
  return result;
}

TEST(PingerSim, SameSeedSameDigestThroughCrashesAndSplits) {
  for (uint64_t seed : {1ULL, 2ULL, 3ULL}) {
    const ScenarioResult first = RunScenario(seed, 3, 20 * kSecond);
    const ScenarioResult second = RunScenario(seed, 3, 20 * kSecond);
    EXPECT_EQ(first.digest, second.digest) << "seed " << seed << " did not replay";
    EXPECT_GT(first.crashes, 0u) << "seed " << seed << " exercised no crash";
    EXPECT_GT(first.splits, 0u) << "seed " << seed << " exercised no split";
    EXPECT_GT(first.min_committed, 20u);
    EXPECT_EQ(first.client_reply.rfind("node=0 committed=", 0), 0u) << first.client_reply;
  }
}

TEST(PingerSim, DifferentSeedsDifferentDigests) {
  const uint64_t a = RunScenario(10, 5, 5 * kSecond).digest;
  const uint64_t b = RunScenario(11, 5, 5 * kSecond).digest;
  EXPECT_NE(a, b);
}

TEST(PingerSim, MinorityCannotCommitMajorityCan) {
  ClusterOptions options;
  options.node_count = 5;
  SimCluster cluster(77, options, PingerFactory(5));
  ASSERT_TRUE(cluster.StartAll().ok());
  Simulator& simulator = cluster.simulator();
  simulator.RunUntil(simulator.now_ns() + 1 * kSecond);
  cluster.network().Isolate({0, 1}, {0, 1, 2, 3, 4});
  // Let in-flight acknowledgements land, then measure.
  simulator.RunUntil(simulator.now_ns() + 1 * kSecond);
  std::vector<uint64_t> before(5);
  for (NodeId node = 0; node < 5; ++node) {
    before[node] = static_cast<Pinger&>(cluster.service(node)).committed();
  }
  simulator.RunUntil(simulator.now_ns() + 5 * kSecond);
  for (NodeId node = 0; node < 2; ++node) {
    EXPECT_EQ(static_cast<Pinger&>(cluster.service(node)).committed(), before[node])
        << "minority node " << node << " committed";
  }
  for (NodeId node = 2; node < 5; ++node) {
    EXPECT_GT(static_cast<Pinger&>(cluster.service(node)).committed(), before[node] + 50)
        << "majority node " << node << " stalled";
  }
  cluster.network().HealAll();
  simulator.RunUntil(simulator.now_ns() + 2 * kSecond);
  EXPECT_GT(static_cast<Pinger&>(cluster.service(0)).committed(), before[0]);
  CheckQuorumDurability(cluster);
}

TEST(PingerSim, WipedDiskStartsFromNothing) {
  ClusterOptions options;
  options.node_count = 3;
  SimCluster cluster(5, options, PingerFactory(3));
  ASSERT_TRUE(cluster.StartAll().ok());
  cluster.simulator().RunUntil(2 * kSecond);
  EXPECT_GT(static_cast<Pinger&>(cluster.service(2)).committed(), 10u);
  cluster.Crash(2);
  cluster.WipeDisk(2);
  ASSERT_TRUE(cluster.Restart(2).ok());
  EXPECT_EQ(static_cast<Pinger&>(cluster.service(2)).committed(), 0u);
  EXPECT_EQ(cluster.incarnation(2), 2u);
  cluster.simulator().RunUntil(cluster.simulator().now_ns() + 1 * kSecond);
  EXPECT_GT(static_cast<Pinger&>(cluster.service(2)).committed(), 10u);
}

}  // namespace
}  // namespace unimeter::sim
