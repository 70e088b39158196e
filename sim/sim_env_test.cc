// Goal: the simulated Env keeps its promises: timers fire in virtual-time order and can be
// cancelled; a crash drops every unsynced write and every pending event of the dead
// incarnation; a full disk fails a sync without making anything durable; messages are
// delayed, lost, duplicated and blocked as configured, and lost when their connection is
// reset; streams deliver bytes in order and
// close when a peer dies; a noisy wall clock jitters within its amplitude, replayably;
// the same seed replays to the same digest.
#include "sim/sim_env.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "node/replication/replica_meta.h"
#include "sim/sim_cluster.h"

namespace unimeter::sim {
namespace {

constexpr int64_t kMillisecond = 1'000'000;
constexpr int64_t kSecond = 1'000 * kMillisecond;

struct World {
  explicit World(uint64_t seed, NetworkOptions network_options = {})
      : simulator(seed), network(simulator, SubSeed(seed, 1), network_options) {}
  Simulator simulator;
  SimNetwork network;
  ~World() { simulator.DropAll(); }
};

std::unique_ptr<SimEnv> MakeEnv(World& world, NodeId node, uint64_t incarnation, SimDisk* disk) {
  return std::make_unique<SimEnv>(world.simulator, world.network, node, incarnation, disk,
                                  SubSeed(world.simulator.seed(), 100 + node), ClockOptions{},
                                  nullptr);
}

absl::Span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

TEST(SimEnv, TimersFireInOrderAndCancel) {
  World world(1);
  auto env = MakeEnv(world, 0, 1, nullptr);
  std::vector<int> fired;
  env->StartTimer(30 * kMillisecond, [&] { fired.push_back(3); });
  env->StartTimer(10 * kMillisecond, [&] { fired.push_back(1); });
  const TimerId cancelled = env->StartTimer(20 * kMillisecond, [&] { fired.push_back(2); });
  env->CancelTimer(cancelled);
  world.simulator.RunUntil(100 * kMillisecond);
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
  EXPECT_EQ(env->MonotonicNowNs(), 100 * kMillisecond);
}

TEST(SimEnv, ADriftingNodeMeasuresTimeAndFiresTimersOnItsOwnClock) {
  World world(3);
  ClockOptions fast;
  fast.drift_ppm = 100;
  ClockOptions slow;
  slow.drift_ppm = -100;
  SimEnv fast_env(world.simulator, world.network, 0, 1, nullptr, 11, fast, nullptr);
  SimEnv slow_env(world.simulator, world.network, 1, 1, nullptr, 12, slow, nullptr);
  int64_t fast_fired_ns = -1;
  int64_t slow_fired_ns = -1;
  int64_t fast_local_ns = -1;
  int64_t slow_local_ns = -1;
  fast_env.StartTimer(kSecond, [&] {
    fast_fired_ns = world.simulator.now_ns();
    fast_local_ns = fast_env.MonotonicNowNs();
  });
  slow_env.StartTimer(kSecond, [&] {
    slow_fired_ns = world.simulator.now_ns();
    slow_local_ns = slow_env.MonotonicNowNs();
  });
  world.simulator.RunUntil(2 * kSecond);
  // A fast clock's second passes 100 us early in true time; a slow one's 100 us late.
  EXPECT_NEAR(static_cast<double>(fast_fired_ns), 1e9 / (1 + 1e-4), 5);
  EXPECT_NEAR(static_cast<double>(slow_fired_ns), 1e9 / (1 - 1e-4), 5);
  // Never early on the node's own clock.
  EXPECT_GE(fast_local_ns, kSecond);
  EXPECT_GE(slow_local_ns, kSecond);
  EXPECT_LE(fast_local_ns, kSecond + 10);
  EXPECT_LE(slow_local_ns, kSecond + 10);
  EXPECT_EQ(fast_env.MonotonicNowNs(), 2 * kSecond + 200'000);
  EXPECT_EQ(slow_env.MonotonicNowNs(), 2 * kSecond - 200'000);
}

TEST(SimEnv, NoisyWallClockJittersWithinItsAmplitudeAndMonotonicStaysExact) {
  World world(4);
  ClockOptions noisy;
  noisy.wall_noise_ns = 5 * kMillisecond;
  SimEnv env(world.simulator, world.network, 0, 1, nullptr, 13, noisy, nullptr);
  SimEnv again(world.simulator, world.network, 1, 1, nullptr, 13, noisy, nullptr);
  int backwards = 0;
  int64_t previous_ns = env.WallNowNs();
  EXPECT_EQ(previous_ns, again.WallNowNs());  // Same seed, same readings.
  for (int i = 0; i < 1000; ++i) {
    const int64_t reading_ns = env.WallNowNs();
    EXPECT_EQ(reading_ns, again.WallNowNs());
    EXPECT_LE(std::abs(reading_ns - noisy.wall_base_ns), noisy.wall_noise_ns);
    backwards += reading_ns < previous_ns ? 1 : 0;
    previous_ns = reading_ns;
  }
  EXPECT_GT(backwards, 100);  // About half the readings go back.
  EXPECT_EQ(env.MonotonicNowNs(), env.MonotonicNowNs());
}

TEST(SimEnv, CrashLosesUnsyncedWritesAndPendingEvents) {
  World world(2);
  SimDisk disk(7, DiskOptions{});
  auto env = MakeEnv(world, 0, 1, &disk);
  auto file = *env->OpenDiskFile("wal");
  const std::string durable = "durable";
  file->Write(0, Bytes(durable));
  bool synced = false;
  file->Sync([&](absl::Status status) {
    EXPECT_TRUE(status.ok());
    synced = true;
  });
  world.simulator.RunUntil([&] { return synced; }, 1'000 * kMillisecond);
  ASSERT_TRUE(synced);
  const std::string lost = "-lost";
  file->Write(durable.size(), Bytes(lost));
  bool second_sync_ran = false;
  file->Sync([&](absl::Status) { second_sync_ran = true; });
  bool timer_ran = false;
  env->StartTimer(0, [&] { timer_ran = true; });
  EXPECT_EQ(file->size_bytes(), durable.size() + lost.size());  // Visible before the crash.
  file.reset();
  env.reset();  // Crash.
  world.simulator.RunUntil(world.simulator.now_ns() + 1'000 * kMillisecond);
  EXPECT_FALSE(second_sync_ran);
  EXPECT_FALSE(timer_ran);
  EXPECT_EQ(disk.FileBytes("wal"), durable);
  auto restarted = MakeEnv(world, 0, 2, &disk);
  auto reopened = *restarted->OpenDiskFile("wal");
  EXPECT_EQ(reopened->size_bytes(), durable.size());
}

TEST(SimEnv, AFailStoppedProcessWritesNothingMore) {
  World world(3);
  SimDisk disk(7, DiskOptions{});
  auto env = MakeEnv(world, 0, 1, &disk);
  auto file = *env->OpenDiskFile("wal");
  file->Write(0, Bytes("kept"));
  bool synced = false;
  file->Sync([&](absl::Status) { synced = true; });
  world.simulator.RunUntil([&] { return synced; }, 1'000 * kMillisecond);
  env->FailStop(absl::DataLossError("test"));  // The real Env aborts here.
  const uint64_t writes = disk.stats().writes;
  file->Write(0, Bytes("gone"));
  file->Truncate(2);
  bool second_sync_ran = false;
  file->Sync([&](absl::Status) { second_sync_ran = true; });
  // Not even in the page cache: a crash that keeps unsynced writes must not find them.
  EXPECT_EQ(disk.stats().writes, writes);
  EXPECT_EQ(file->size_bytes(), 4u);
  world.simulator.RunUntil(world.simulator.now_ns() + 1'000 * kMillisecond);
  EXPECT_FALSE(second_sync_ran);
  EXPECT_EQ(disk.FileBytes("wal"), "kept");
}

// replica.meta (node/replication/replica_meta.h) on the simulated disk: after a failed sync
// it writes nothing more, so the slot with the newest durable state is never touched.
TEST(SimEnv, ReplicaMetaStopsWritingAfterAFailedSync) {
  World world(4);
  SimDisk disk(7, DiskOptions{});
  auto env = MakeEnv(world, 0, 1, &disk);
  bool fresh = false;
  auto meta = *replication::MetaFile::Open(*env, &fresh);
  std::vector<absl::Status> results;
  auto save = [&](uint64_t term) {
    meta->mutable_meta().term = term;
    meta->Save([&](absl::Status status) { results.push_back(status); });
    world.simulator.RunUntil(world.simulator.now_ns() + 100 * kMillisecond);
  };
  EXPECT_EQ(meta->opened_sequence(), 0u);
  save(1);
  save(2);
  EXPECT_EQ(meta->durable_sequence(), 2u);
  disk.FailNextSync();
  save(3);
  EXPECT_EQ(meta->durable_sequence(), 2u);  // The failed write's is not durable.
  const uint64_t writes = disk.stats().writes;
  save(4);  // The node would have fail-stopped; the file must not be written again.
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok() && results[1].ok());
  EXPECT_FALSE(results[2].ok());
  EXPECT_FALSE(results[3].ok());
  EXPECT_EQ(disk.stats().writes, writes);
  meta.reset();
  env.reset();  // The crash that follows a fail-stop.
  auto restarted = MakeEnv(world, 0, 2, &disk);
  auto reopened = *replication::MetaFile::Open(*restarted, &fresh);
  EXPECT_EQ(reopened->meta().term, 2u);
  // A later process opens at the newest durable write (meta_history.h relies on it).
  EXPECT_EQ(reopened->opened_sequence(), 2u);
  EXPECT_EQ(reopened->durable_sequence(), 2u);
}

// replica.meta keeps two copies of each state, in alternate pairs of slots: one slot
// damaged at rest (or read back damaged) must never take the node back to an older state.
// With one slot per state (the format before version 4's layout), a flipped bit in the
// newest slot made Open return the state before it: promises and votes already told lost.
TEST(SimEnv, ReplicaMetaSurvivesAnyOneDamagedSlot) {
  World world(5);
  SimDisk disk(9, DiskOptions{});
  int generation = 1;
  auto open = [&](bool* fresh) {
    auto env = MakeEnv(world, 0, generation++, &disk);
    auto meta = replication::MetaFile::Open(*env, fresh);
    return std::make_pair(std::move(env), std::move(meta));
  };
  {
    bool fresh = false;
    auto [env, meta] = open(&fresh);
    ASSERT_TRUE(meta.ok() && fresh);
    for (uint64_t term = 1; term <= 3; ++term) {
      (*meta)->mutable_meta().term = term;
      bool done = false;
      (*meta)->Save([&](absl::Status status) { done = status.ok(); });
      world.simulator.RunUntil(world.simulator.now_ns() + 100 * kMillisecond);
      ASSERT_TRUE(done);
    }
  }
  const std::string intact = disk.FileBytes(replication::kMetaFileName);
  EXPECT_EQ(intact.size(), replication::kMetaSlotCount * replication::kMetaSlotBytes);
  for (size_t slot = 0; slot < intact.size() / replication::kMetaSlotBytes; ++slot) {
    std::string bytes = intact;
    bytes[slot * replication::kMetaSlotBytes + 40] ^= 0x10;  // Inside a promised epoch.
    disk.SetFileBytes(replication::kMetaFileName, bytes);
    bool fresh = true;
    auto [env, meta] = open(&fresh);
    ASSERT_TRUE(meta.ok()) << meta.status();
    EXPECT_FALSE(fresh);
    EXPECT_EQ((*meta)->meta().term, 3u) << "slot " << slot << " damaged";
  }
  // A read that returns a flipped bit (the bytes at rest intact) is the same case.
  disk.SetFileBytes(replication::kMetaFileName, intact);
  disk.CorruptNextReadAt(replication::kMetaFileName, 40, 0x10);
  {
    bool fresh = true;
    auto [env, meta] = open(&fresh);
    ASSERT_TRUE(meta.ok()) << meta.status();
    EXPECT_EQ((*meta)->meta().term, 3u);
  }
  // Both copies of the newest state damaged: the older pair is all that is left. Both
  // pairs damaged: refused, never taken for a new directory.
  std::string bytes = intact;
  for (size_t slot = 0; slot < intact.size() / replication::kMetaSlotBytes; ++slot) {
    bytes[slot * replication::kMetaSlotBytes + 40] ^= 0x10;
  }
  disk.SetFileBytes(replication::kMetaFileName, bytes);
  bool fresh = false;
  auto [env, meta] = open(&fresh);
  EXPECT_TRUE(absl::IsDataLoss(meta.status())) << meta.status();
}

// A file of the two-slot layout (format versions 2 and 3) is read as it is, and the first
// write after it fills the pair that does not hold its newest slot.
TEST(SimEnv, ReplicaMetaReadsTheTwoSlotLayoutAndWritesAroundIt) {
  World world(6);
  SimDisk disk(10, DiskOptions{});
  replication::ReplicaMeta old_state;
  old_state.incarnation = 77;
  old_state.term = 5;
  std::string bytes(2 * replication::kMetaSlotBytes, '\0');
  const std::vector<uint8_t> older = replication::EncodeMetaSlot(old_state, 8);
  old_state.term = 6;
  const std::vector<uint8_t> newer = replication::EncodeMetaSlot(old_state, 9);
  std::copy(older.begin(), older.end(), bytes.begin());
  std::copy(newer.begin(), newer.end(), bytes.begin() + replication::kMetaSlotBytes);
  disk.SetFileBytes(replication::kMetaFileName, bytes);
  auto env = MakeEnv(world, 0, 1, &disk);
  bool fresh = true;
  auto meta = *replication::MetaFile::Open(*env, &fresh);
  EXPECT_FALSE(fresh);
  EXPECT_EQ(meta->meta().term, 6u);
  meta->mutable_meta().term = 7;
  bool done = false;
  meta->Save([&](absl::Status status) { done = status.ok(); });
  world.simulator.RunUntil(world.simulator.now_ns() + 100 * kMillisecond);
  ASSERT_TRUE(done);
  const std::string after = disk.FileBytes(replication::kMetaFileName);
  ASSERT_EQ(after.size(), 4 * replication::kMetaSlotBytes);
  EXPECT_EQ(after.substr(0, bytes.size()), bytes);  // The old slots untouched.
  uint64_t sequence = 0;
  for (size_t slot : {2, 3}) {
    auto copy = replication::DecodeMetaSlot(
        absl::MakeConstSpan(
            reinterpret_cast<const uint8_t*>(after.data()) + slot * replication::kMetaSlotBytes,
            replication::kMetaSlotBytes),
        &sequence);
    ASSERT_TRUE(copy.ok()) << copy.status();
    EXPECT_EQ(copy->term, 7u);
    EXPECT_EQ(sequence, 10u);
  }
}

TEST(SimEnv, FullDiskFailsSyncAndKeepsNothing) {
  World world(3);
  DiskOptions options;
  options.capacity_bytes = 10;
  SimDisk disk(8, options);
  auto env = MakeEnv(world, 0, 1, &disk);
  auto file = *env->OpenDiskFile("wal");
  file->Write(0, Bytes(std::string(11, 'x')));
  absl::Status result = absl::OkStatus();
  bool done = false;
  file->Sync([&](absl::Status status) {
    result = status;
    done = true;
  });
  world.simulator.RunUntil([&] { return done; }, 1'000 * kMillisecond);
  EXPECT_TRUE(absl::IsResourceExhausted(result)) << result;
  EXPECT_EQ(disk.durable_files()["wal"].size(), 0u);
  EXPECT_EQ(*env->FreeDiskBytes(), 10u);
}

TEST(SimEnv, MessagesAreDelayedBlockedAndDuplicated) {
  NetworkOptions options;
  options.duplicate_ppm = 1'000'000;  // Every message twice.
  World world(4, options);
  auto a = MakeEnv(world, 0, 1, nullptr);
  auto b = MakeEnv(world, 1, 1, nullptr);
  int received = 0;
  b->transport().SetReceiver([&](NodeId source, absl::Span<const uint8_t> message) {
    EXPECT_EQ(source, 0u);
    EXPECT_EQ(message.size(), 3u);
    ++received;
  });
  const std::string payload = "abc";
  a->transport().Send(1, Bytes(payload));
  EXPECT_EQ(received, 0);  // Never delivered inline.
  world.simulator.RunUntil(1'000 * kMillisecond);
  EXPECT_EQ(received, 2);
  world.network.SetBlocked(0, 1, true);
  a->transport().Send(1, Bytes(payload));
  b->transport().Send(0, Bytes(payload));  // The other direction is open (asymmetric).
  world.simulator.RunUntil(2'000 * kMillisecond);
  EXPECT_EQ(received, 2);
  EXPECT_EQ(world.network.stats().messages_blocked, 1u);
  EXPECT_EQ(world.network.stats().messages_delivered, 4u);
}

TEST(SimEnv, AResetConnectionLosesWhatIsInFlightAndHoldsNewMessagesUntilReconnected) {
  World world(5);
  auto a = MakeEnv(world, 0, 1, nullptr);
  auto b = MakeEnv(world, 1, 1, nullptr);
  std::vector<int64_t> received_ns;
  b->transport().SetReceiver(
      [&](NodeId, absl::Span<const uint8_t>) { received_ns.push_back(world.simulator.now_ns()); });
  a->transport().SetReceiver(
      [&](NodeId, absl::Span<const uint8_t>) { received_ns.push_back(world.simulator.now_ns()); });
  const std::string payload = "abc";
  a->transport().Send(1, Bytes(payload));
  b->transport().Send(0, Bytes(payload));
  world.network.ResetConnections(0, {0, 1}, 30 * kMillisecond);  // Both directions.
  EXPECT_EQ(world.network.stats().connections_reset, 2u);
  const int64_t reset_ns = world.simulator.now_ns();
  a->transport().Send(1, Bytes(payload));  // Sent while reconnecting: leaves after.
  world.simulator.RunUntil(reset_ns + 1'000 * kMillisecond);
  EXPECT_EQ(world.network.stats().messages_reset, 2u);
  ASSERT_EQ(received_ns.size(), 1u);
  EXPECT_GE(received_ns[0], reset_ns + 30 * kMillisecond);
  b->transport().Send(0, Bytes(payload));  // Reconnected long ago: no wait.
  const int64_t later_ns = world.simulator.now_ns();
  world.simulator.RunUntil(later_ns + 1'000 * kMillisecond);
  ASSERT_EQ(received_ns.size(), 2u);
  EXPECT_LT(received_ns[1], later_ns + 30 * kMillisecond);
}

TEST(SimEnv, StreamsDeliverInOrderAndResetOnPeerDeath) {
  World world(5);
  auto server = MakeEnv(world, 0, 1, nullptr);
  auto client = MakeEnv(world, 1000, 1, nullptr);
  std::unique_ptr<Stream> accepted;
  std::string server_received;
  auto listener = *server->Listen(7001, [&](std::unique_ptr<Stream> stream) {
    accepted = std::move(stream);
    accepted->SetHandler({[&](absl::Span<const uint8_t> bytes) {
                            server_received.append(bytes.begin(), bytes.end());
                          },
                          [](absl::Status) {}});
  });
  std::unique_ptr<Stream> connected;
  absl::Status close_reason = absl::OkStatus();
  int closes = 0;
  client->Connect("n0:7001", [&](absl::StatusOr<std::unique_ptr<Stream>> stream) {
    ASSERT_TRUE(stream.ok()) << stream.status();
    connected = std::move(*stream);
    connected->SetHandler({[](absl::Span<const uint8_t>) {},
                           [&](absl::Status reason) {
                             close_reason = reason;
                             ++closes;
                           }});
    for (int i = 0; i < 100; ++i) {
      EXPECT_TRUE(connected->Write(Bytes(std::to_string(i) + ",")).ok());
    }
  });
  world.simulator.RunUntil(1'000 * kMillisecond);
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    expected += std::to_string(i) + ",";
  }
  EXPECT_EQ(server_received, expected);
  accepted.reset();
  listener.reset();
  server.reset();  // The server dies: the client's stream closes exactly once.
  world.simulator.RunUntil(2'000 * kMillisecond);
  EXPECT_EQ(closes, 1);
  EXPECT_TRUE(absl::IsUnavailable(close_reason)) << close_reason;
  EXPECT_FALSE(connected->Write(Bytes("late")).ok());
  bool refused = false;
  client->Connect("n0:7001", [&](absl::StatusOr<std::unique_ptr<Stream>> stream) {
    refused = absl::IsUnavailable(stream.status());
  });
  world.simulator.RunUntil(3'000 * kMillisecond);
  EXPECT_TRUE(refused);
  connected.reset();
}

TEST(SimEnv, StateStoreCommitsBecomeDurableOnlyWhenComplete) {
  World world(6);
  SimDisk disk(9, DiskOptions{});
  auto env = MakeEnv(world, 0, 1, &disk);
  StateStore* store = *env->OpenStateStore();
  WriteBatch first;
  first.Put("a", "1");
  bool first_done = false;
  store->Commit(std::move(first), [&](absl::Status status) {
    EXPECT_TRUE(status.ok());
    first_done = true;
  });
  world.simulator.RunUntil([&] { return first_done; }, 1'000 * kMillisecond);
  WriteBatch second;
  second.Put("b", "2");
  store->Commit(std::move(second), [](absl::Status) {});
  EXPECT_TRUE(store->Get("b")->has_value());  // Visible at once.
  env.reset();                                // Crash before the second commit completed.
  auto restarted = MakeEnv(world, 0, 2, &disk);
  StateStore* reopened = *restarted->OpenStateStore();
  EXPECT_EQ(reopened->Get("a")->value_or(""), "1");
  EXPECT_FALSE(reopened->Get("b")->has_value());
}

TEST(Simulator, SameSeedSameDigest) {
  auto run = [](uint64_t seed) {
    World world(seed, NetworkOptions{.loss_ppm = 100'000});
    auto a = MakeEnv(world, 0, 1, nullptr);
    auto b = MakeEnv(world, 1, 1, nullptr);
    int ping_pongs = 0;
    a->transport().SetReceiver([&](NodeId, absl::Span<const uint8_t>) { ++ping_pongs; });
    b->transport().SetReceiver([&](NodeId source, absl::Span<const uint8_t> message) {
      b->transport().Send(source, message);
    });
    for (int i = 0; i < 200; ++i) {
      a->StartTimer(i * kMillisecond, [&, i] { a->transport().Send(1, Bytes(std::to_string(i))); });
    }
    world.simulator.RunUntil(1'000 * kMillisecond);
    EXPECT_GT(ping_pongs, 100);
    return world.simulator.digest();
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

}  // namespace
}  // namespace unimeter::sim
