// Goal: the WAL never loses a record whose Sync completed OK, replays records in order
// exactly once with their positions and hash chains, pays exactly one disk sync per
// group, recovers from a torn tail silently (logged), refuses corruption followed by valid
// data with DataLoss naming file and offset, rolls back and keeps working on a full disk,
// and rolls and recycles segments.
// Method: the simulated Env (SimDisk's durable bytes are what survives a crash, and the
// tests edit them to tear, flip and misdirect writes), a randomized crash loop over many
// seeds, and one round trip through the real PosixEnv in a temporary directory.
#include "storage/wal.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/base/checksum.h"
#include "node/base/endian.h"
#include "node/base/random.h"
#include "node/env/posix/posix_env.h"
#include "node/env/posix/test_util.h"
#include "sim/sim_env.h"

namespace unimeter {
namespace {

constexpr int64_t kSecondNs = 1'000'000'000;

struct Record {
  uint16_t kind = 1;
  uint32_t partition = 0;
  uint64_t index = 0;
  uint64_t epoch = 0;
  std::string body;
  uint64_t position = 0;
  uint64_t previous_hash = 0;
  uint64_t record_hash = 0;

  bool operator==(const Record& other) const {
    return kind == other.kind && partition == other.partition && index == other.index &&
           epoch == other.epoch && body == other.body && position == other.position;
  }
};

absl::Span<const uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

Record FromView(const WalRecordView& view) {
  Record record;
  record.kind = view.kind;
  record.partition = view.partition;
  record.index = view.index;
  record.epoch = view.epoch;
  record.body.assign(view.body.begin(), view.body.end());
  record.position = view.position;
  record.previous_hash = view.previous_hash;
  record.record_hash = view.record_hash;
  return record;
}

// One simulated node with a disk that survives its incarnations.
class SimHarness {
 public:
  explicit SimHarness(uint64_t seed, sim::DiskOptions disk_options = {})
      : simulator_(seed),
        network_(simulator_, SubSeed(seed, 1), sim::NetworkOptions{}),
        disk_(SubSeed(seed, 2), disk_options) {
    sink_ = [this](int64_t, NodeId, uint64_t, std::string_view line) {
      logs_.push_back(std::string(line));
    };
  }
  ~SimHarness() {
    wal_.reset();
    env_.reset();
    simulator_.DropAll();
  }

  // Starts a new incarnation and opens the WAL; the replay lands in replayed().
  absl::Status Open(const WalOptions& options = {}) {
    wal_.reset();
    env_.reset();
    ++incarnation_;
    env_ = std::make_unique<sim::SimEnv>(simulator_, network_, 0, incarnation_, &disk_,
                                         SubSeed(simulator_.seed(), 100 + incarnation_),
                                         sim::ClockOptions{}, &sink_);
    replayed_.clear();
    absl::StatusOr<std::unique_ptr<Wal>> wal = Wal::Open(
        *env_, options, [&](const WalRecordView& view) { replayed_.push_back(FromView(view)); });
    if (!wal.ok()) {
      return wal.status();
    }
    wal_ = std::move(*wal);
    return absl::OkStatus();
  }

  // Destroys the incarnation: every sync not completed is lost.
  void Crash() {
    wal_.reset();
    env_.reset();
  }

  Record Append(uint32_t partition, uint64_t index, std::string body, uint16_t kind = 1) {
    Record record;
    record.kind = kind;
    record.partition = partition;
    record.index = index;
    record.epoch = 7;
    record.body = std::move(body);
    absl::StatusOr<uint64_t> position =
        wal_->Append(kind, partition, index, record.epoch, Bytes(record.body));
    UM_CHECK_OK(position.status());
    record.position = *position;
    return record;
  }

  absl::Status SyncAndRun() {
    bool done = false;
    absl::Status result;
    wal_->Sync([&](absl::Status status) {
      result = status;
      done = true;
    });
    UM_CHECK(simulator_.RunUntil([&] { return done; }, simulator_.now_ns() + 10 * kSecondNs));
    return result;
  }

  std::string SegmentBytes(uint64_t base) { return disk_.FileBytes(WalSegmentFileName(base)); }
  // Replaces a segment's durable bytes (damage done while the node is down).
  void SetSegmentBytes(uint64_t base, const std::string& bytes) {
    disk_.SetFileBytes(WalSegmentFileName(base), bytes);
  }

  sim::Simulator& simulator() { return simulator_; }
  sim::SimDisk& disk() { return disk_; }
  Wal& wal() { return *wal_; }
  const std::vector<Record>& replayed() const { return replayed_; }
  const std::vector<std::string>& logs() const { return logs_; }

 private:
  sim::Simulator simulator_;
  sim::SimNetwork network_;
  sim::SimDisk disk_;
  sim::LogSink sink_;
  std::vector<std::string> logs_;
  uint64_t incarnation_ = 0;
  std::unique_ptr<sim::SimEnv> env_;
  std::unique_ptr<Wal> wal_;
  std::vector<Record> replayed_;
};

// Checks every partition's chain in a replay that starts at the beginning of the log.
void ExpectChains(const std::vector<Record>& records) {
  std::map<uint32_t, uint64_t> heads;
  for (const Record& record : records) {
    EXPECT_EQ(record.previous_hash, heads[record.partition]) << record.position;
    heads[record.partition] = record.record_hash;
  }
}

bool Contains(const std::vector<std::string>& lines, const std::string& a, const std::string& b) {
  for (const std::string& line : lines) {
    if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) {
      return true;
    }
  }
  return false;
}

// The tests of exact file sizes, torn tails and disk-full rollbacks write no zeros ahead
// (a full disk would then be noticed on the preallocating write instead).
WalOptions Unpreallocated() {
  WalOptions options;
  options.preallocate_bytes = 0;
  return options;
}

TEST(WalFormat, SizesAndGoldenBytes) {
  static_assert(kWalRecordHeaderSizeBytes == 48);
  static_assert(kWalSectorSizeBytes == 4096);
  static_assert(kWalBodySizeBytesMax == 4 * 1024 * 1024);
  static_assert(kWalManifestSlotSizeBytes == 64 * 1024);
  static_assert(kWalSegmentCountMax == 4094);
  EXPECT_EQ(WalSegmentFileName(0x1234000), "wal-0000000001234000.log");
  SimHarness harness(1);
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  const Record record = harness.Append(3, 9, "hi", 0x0102);
  EXPECT_EQ(record.position, 48u);  // After the group marker.
  ASSERT_TRUE(harness.SyncAndRun().ok());
  const std::string file = harness.SegmentBytes(0);
  ASSERT_EQ(file.size(), 4096u);
  const std::string encoded = file.substr(48, 50);
  std::string hex;
  for (unsigned char c : encoded) {
    absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  }
  // magic "UMWL", version 1, kind 0x0102, body_size 2, partition 3, index 9, epoch 7,
  // previous_hash 0, record_hash, body "hi" (docs/formats/wal.md).
  EXPECT_EQ(hex,
            "554d574c"          // magic
            "0100"              // format_version
            "0201"              // kind
            "02000000"          // body_size
            "03000000"          // partition
            "0900000000000000"  // index
            "0700000000000000"  // epoch
            "0000000000000000"  // previous_hash
            "aef04c298ae8248b"  // record_hash = 0x8B24E88A294CF0AE
            "6869");            // body
  // The hash is Hash64 over the header with the hash zeroed, then the body.
  std::string zeroed = encoded;
  for (int i = 40; i < 48; ++i) {
    zeroed[i] = 0;
  }
  EXPECT_EQ(LoadU64(reinterpret_cast<const uint8_t*>(encoded.data()) + 40),
            Hash64(zeroed.data(), zeroed.size()));
  // The group marker: kind 0, partition 0xFFFFFFFF, index = its position, epoch = group
  // size without padding (48 + 50), previous_hash 0 for the first group.
  const uint8_t* marker = reinterpret_cast<const uint8_t*>(file.data());
  EXPECT_EQ(LoadU16(marker + 6), 0u);
  EXPECT_EQ(LoadU32(marker + 12), kWalNodePartition);
  EXPECT_EQ(LoadU64(marker + 16), 0u);
  EXPECT_EQ(LoadU64(marker + 24), 98u);
  EXPECT_EQ(file.substr(98), std::string(4096 - 98, '\0'));
}

TEST(Wal, AppendSyncReopenReplaysEverythingInOrder) {
  SimHarness harness(2);
  ASSERT_TRUE(harness.Open().ok());
  std::vector<Record> appended;
  uint64_t index = 0;
  for (int group = 0; group < 5; ++group) {
    for (int i = 0; i < 300; ++i) {
      const uint32_t partition = i % 7 == 0 ? kWalNodePartition : (i * 37 + group) % 256;
      appended.push_back(harness.Append(partition, ++index, std::string(i % 50, 'a' + group)));
    }
    ASSERT_TRUE(harness.SyncAndRun().ok());
    EXPECT_EQ(harness.wal().durable_position() % kWalSectorSizeBytes, 0u);
  }
  const uint64_t head_17 = harness.wal().chain_head(17);
  const uint64_t durable = harness.wal().durable_position();
  harness.Crash();
  ASSERT_TRUE(harness.Open().ok());
  EXPECT_EQ(harness.replayed(), appended);
  ExpectChains(harness.replayed());
  EXPECT_EQ(harness.wal().chain_head(17), head_17);
  EXPECT_EQ(harness.wal().durable_position(), durable);
  EXPECT_EQ(harness.wal().stats().records_replayed, appended.size());
  // The chains continue across the reopen.
  appended.push_back(harness.Append(17, ++index, "after"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  ASSERT_TRUE(harness.Open().ok());
  EXPECT_EQ(harness.replayed(), appended);
  ExpectChains(harness.replayed());
  EXPECT_EQ(harness.replayed().back().previous_hash, head_17);
}

TEST(Wal, GroupCommitUsesOneDiskSyncForAllWaiters) {
  SimHarness harness(3);
  ASSERT_TRUE(harness.Open().ok());
  harness.Append(1, 1, "warm");
  ASSERT_TRUE(harness.SyncAndRun().ok());  // Creates the segment (manifest + group).
  const uint64_t syncs_before = harness.disk().stats().syncs;
  harness.Append(1, 2, "first");
  int completed = 0;
  harness.wal().Sync([&](absl::Status status) {
    EXPECT_TRUE(status.ok());
    ++completed;
  });
  constexpr int kWaiters = 20;
  for (int i = 0; i < kWaiters; ++i) {
    harness.Append(static_cast<uint32_t>(i), 3 + i, "more");
    harness.wal().Sync([&](absl::Status status) {
      EXPECT_TRUE(status.ok());
      ++completed;
    });
  }
  EXPECT_EQ(completed, 0);  // Never inside the call.
  ASSERT_TRUE(harness.simulator().RunUntil([&] { return completed == kWaiters + 1; },
                                           harness.simulator().now_ns() + 10 * kSecondNs));
  EXPECT_EQ(harness.disk().stats().syncs - syncs_before, 2u);
  EXPECT_EQ(harness.wal().stats().groups, 3u);
  // A Sync with nothing new completes without touching the disk.
  ASSERT_TRUE(harness.SyncAndRun().ok());
  EXPECT_EQ(harness.disk().stats().syncs - syncs_before, 2u);
}

TEST(Wal, CrashLosesExactlyTheUnsyncedGroup) {
  SimHarness harness(4);
  ASSERT_TRUE(harness.Open().ok());
  std::vector<Record> durable;
  for (int i = 0; i < 10; ++i) {
    durable.push_back(harness.Append(i, i, "durable"));
  }
  ASSERT_TRUE(harness.SyncAndRun().ok());
  for (int i = 0; i < 10; ++i) {
    harness.Append(i, 100 + i, "lost");
  }
  bool called = false;
  harness.wal().Sync([&](absl::Status) { called = true; });
  harness.Crash();  // Before the sync completes.
  harness.simulator().RunUntil(harness.simulator().now_ns() + kSecondNs);
  EXPECT_FALSE(called);
  ASSERT_TRUE(harness.Open().ok());
  EXPECT_EQ(harness.replayed(), durable);
  durable.push_back(harness.Append(3, 11, "next"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  ASSERT_TRUE(harness.Open().ok());
  EXPECT_EQ(harness.replayed(), durable);
  ExpectChains(harness.replayed());
}

TEST(Wal, TornTailIsTruncatedAndLogged) {
  SimHarness harness(5);
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  std::vector<Record> first;
  for (int i = 0; i < 4; ++i) {
    first.push_back(harness.Append(i, i, std::string(100, 'x')));
  }
  ASSERT_TRUE(harness.SyncAndRun().ok());
  const Record torn = harness.Append(1, 9, std::string(100, 'y'));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  // Cut the last group in the middle of its record (as if its write tore).
  std::string file = harness.SegmentBytes(0);
  ASSERT_EQ(file.size(), 8192u);
  file.resize(torn.position + 60);
  harness.SetSegmentBytes(0, file);
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  EXPECT_EQ(harness.replayed(), first);
  EXPECT_TRUE(Contains(harness.logs(), "torn tail in wal-0000000000000000.log", "offset 4096"));
  EXPECT_EQ(harness.wal().durable_position(), 4096u);
  // Appending continues where the torn group was; the truncation becomes durable with it.
  first.push_back(harness.Append(1, 10, "fresh"));
  EXPECT_EQ(first.back().position, 4096u + 48);
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  // Garbage after the end (a torn write of a group that never synced) is dropped too.
  harness.SetSegmentBytes(0, harness.SegmentBytes(0) + std::string(5000, '\x5a'));
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  EXPECT_EQ(harness.replayed(), first);
  ExpectChains(harness.replayed());
  EXPECT_TRUE(Contains(harness.logs(), "torn tail", "offset 8192"));
}

TEST(Wal, FlippedByteInAMiddleRecordIsDataLoss) {
  SimHarness harness(6);
  ASSERT_TRUE(harness.Open().ok());
  harness.Append(1, 1, "one");
  const Record middle = harness.Append(2, 2, "two");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Append(3, 3, "three");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  std::string file = harness.SegmentBytes(0);
  file[middle.position + 50] ^= 0x01;  // In the body of "two".
  harness.SetSegmentBytes(0, file);
  const absl::Status status = harness.Open();
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("wal-0000000000000000.log"), std::string::npos) << status;
  EXPECT_NE(status.message().find(absl::StrCat("offset ", middle.position)), std::string::npos)
      << status;
}

TEST(Wal, MisdirectedWriteIsDetected) {
  SimHarness harness(7);
  ASSERT_TRUE(harness.Open().ok());
  harness.Append(1, 1, "aaaa");
  const Record target = harness.Append(2, 1, "bbbb");
  harness.Append(2, 2, "cccc");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  const Record source = harness.Append(1, 2, "dddd");  // Same size, another position.
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  std::string file = harness.SegmentBytes(0);
  const std::string copy = file.substr(source.position, 52);
  file.replace(target.position, 52, copy);
  harness.SetSegmentBytes(0, file);
  const absl::Status status = harness.Open();
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("hash chain"), std::string::npos) << status;
  // A whole group written at the wrong offset names the wrong position in its marker.
  SimHarness moved(8);
  ASSERT_TRUE(moved.Open().ok());
  moved.Append(1, 1, "x");
  ASSERT_TRUE(moved.SyncAndRun().ok());
  moved.Append(1, 2, "y");
  ASSERT_TRUE(moved.SyncAndRun().ok());
  moved.Append(1, 3, "z");
  ASSERT_TRUE(moved.SyncAndRun().ok());
  moved.Crash();
  std::string bytes = moved.SegmentBytes(0);
  bytes.replace(4096, 4096, bytes.substr(0, 4096));
  moved.SetSegmentBytes(0, bytes);
  const absl::Status moved_status = moved.Open();
  EXPECT_TRUE(absl::IsDataLoss(moved_status)) << moved_status;
  EXPECT_NE(moved_status.message().find("offset 4096"), std::string::npos) << moved_status;
}

TEST(Wal, FullDiskRollsBackAndRecovers) {
  SimHarness harness(9);
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  std::vector<Record> durable;
  durable.push_back(harness.Append(1, 1, "before"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  const uint64_t position = harness.wal().durable_position();
  const uint64_t head = harness.wal().chain_head(1);
  harness.disk().options().capacity_bytes = harness.disk().used_bytes() + 100;
  harness.Append(1, 2, std::string(5000, 'f'));
  const absl::Status full = harness.SyncAndRun();
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_EQ(harness.wal().durable_position(), position);
  EXPECT_EQ(harness.wal().appended_position(), position);
  EXPECT_EQ(harness.wal().chain_head(1), head);
  EXPECT_EQ(harness.wal().stats().rollbacks, 1u);
  // Still full: the WAL answers backpressure again, and stays usable.
  harness.Append(1, 2, std::string(5000, 'g'));
  EXPECT_TRUE(absl::IsResourceExhausted(harness.SyncAndRun()));
  harness.disk().options().capacity_bytes = uint64_t{1} << 30;  // Space returns.
  durable.push_back(harness.Append(1, 2, "after"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  EXPECT_EQ(harness.replayed(), durable);
  ExpectChains(harness.replayed());
}

TEST(Wal, RecordsAppendedBeforeARollbackFailTheirLaterSync) {
  SimHarness harness(10);
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  harness.Append(1, 1, "ok");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.disk().options().capacity_bytes = harness.disk().used_bytes();
  harness.Append(1, 2, "in flight");
  bool failed = false;
  harness.wal().Sync([&](absl::Status status) { failed = absl::IsResourceExhausted(status); });
  harness.Append(1, 3, "appended while in flight, no sync yet");
  ASSERT_TRUE(harness.simulator().RunUntil([&] { return failed; },
                                           harness.simulator().now_ns() + 10 * kSecondNs));
  harness.disk().options().capacity_bytes = uint64_t{1} << 30;
  EXPECT_TRUE(absl::IsResourceExhausted(harness.SyncAndRun()));  // Covers the lost record.
  harness.Append(1, 4, "fresh");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  ASSERT_TRUE(harness.Open(Unpreallocated()).ok());
  ASSERT_EQ(harness.replayed().size(), 2u);
  EXPECT_EQ(harness.replayed()[1].index, 4u);
  ExpectChains(harness.replayed());
}

TEST(Wal, SegmentsRollAndAreRemoved) {
  SimHarness harness(11);
  WalOptions options;
  options.segment_size_bytes = 3 * 4096;
  ASSERT_TRUE(harness.Open(options).ok());
  std::vector<Record> appended;
  for (int group = 0; group < 20; ++group) {
    for (int i = 0; i < 10; ++i) {
      appended.push_back(harness.Append(i, group * 10 + i, std::string(300, 'a' + i)));
    }
    ASSERT_TRUE(harness.SyncAndRun().ok());
  }
  const std::vector<uint64_t> bases = harness.wal().segment_bases();
  ASSERT_GE(bases.size(), 5u);
  EXPECT_EQ(harness.wal().stats().segments_created, bases.size());
  for (uint64_t base : bases) {
    EXPECT_TRUE(harness.disk().durable_files().contains(WalSegmentFileName(base)));
  }
  harness.Crash();
  ASSERT_TRUE(harness.Open(options).ok());
  EXPECT_EQ(harness.replayed(), appended);
  ExpectChains(harness.replayed());
  // Checkpoint at a record in the fourth segment: the first three go.
  const Record& checkpoint = *std::find_if(appended.begin(), appended.end(),
                                           [&](const Record& r) { return r.position > bases[3]; });
  bool removed = false;
  harness.wal().RemoveSegmentsBefore(checkpoint.position, [&](absl::Status status) {
    EXPECT_TRUE(status.ok()) << status;
    removed = true;
  });
  ASSERT_TRUE(harness.simulator().RunUntil([&] { return removed; },
                                           harness.simulator().now_ns() + 10 * kSecondNs));
  EXPECT_EQ(harness.wal().segment_bases().front(), bases[3]);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(harness.disk().durable_files().contains(WalSegmentFileName(bases[i])));
  }
  std::vector<Record> kept;
  for (const Record& record : appended) {
    if (record.position > bases[3]) {
      kept.push_back(record);
    }
  }
  kept.push_back(harness.Append(5, 1000, "after removal"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Crash();
  ASSERT_TRUE(harness.Open(options).ok());
  EXPECT_EQ(harness.replayed(), kept);
  EXPECT_EQ(harness.wal().segment_bases().front(), bases[3]);
}

TEST(Wal, ZerosWrittenAheadAreTheEndOfTheLogAndEndWithTheSegment) {
  SimHarness harness(14);
  WalOptions options;
  options.segment_size_bytes = 64 * 1024;
  options.preallocate_bytes = 16 * 1024;
  ASSERT_TRUE(harness.Open(options).ok());
  std::vector<Record> appended;
  appended.push_back(harness.Append(1, 1, "first"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  // The group's sector, then 16 KiB of zeros written with it.
  EXPECT_EQ(harness.SegmentBytes(0).size(), 4096u + 16 * 1024);
  EXPECT_EQ(harness.wal().stats().preallocated_bytes, 16u * 1024);
  appended.push_back(harness.Append(1, 2, "second"));
  ASSERT_TRUE(harness.SyncAndRun().ok());
  // More than half is left: the second group overwrote zeros and wrote none.
  EXPECT_EQ(harness.wal().stats().preallocated_bytes, 16u * 1024);
  EXPECT_EQ(harness.SegmentBytes(0).size(), 4096u + 16 * 1024);
  harness.Crash();
  ASSERT_TRUE(harness.Open(options).ok());
  EXPECT_EQ(harness.replayed(), appended);
  EXPECT_EQ(harness.wal().stats().torn_tail_bytes, 0u);
  EXPECT_FALSE(Contains(harness.logs(), "torn tail", ""));
  EXPECT_EQ(harness.wal().durable_position(), 2u * 4096);
  // Fill several segments: each one ends at its last group, zeros trimmed.
  for (uint64_t i = 3; i < 200; ++i) {
    appended.push_back(harness.Append(static_cast<uint32_t>(i % 7), i, std::string(900, 'z')));
    if (i % 3 == 0) {
      ASSERT_TRUE(harness.SyncAndRun().ok());
    }
  }
  ASSERT_TRUE(harness.SyncAndRun().ok());
  const std::vector<uint64_t> bases = harness.wal().segment_bases();
  ASSERT_GE(bases.size(), 3u);
  for (size_t i = 0; i + 1 < bases.size(); ++i) {
    EXPECT_EQ(harness.SegmentBytes(bases[i]).size(), bases[i + 1] - bases[i]) << i;
  }
  EXPECT_GT(harness.SegmentBytes(bases.back()).size(),
            harness.wal().durable_position() - bases.back());
  harness.Crash();
  ASSERT_TRUE(harness.Open(options).ok());
  EXPECT_EQ(harness.replayed(), appended);
  ExpectChains(harness.replayed());
  EXPECT_EQ(harness.wal().stats().torn_tail_bytes, 0u);
}

TEST(Wal, CorruptionInAnEarlierSegmentIsDataLoss) {
  SimHarness harness(12);
  WalOptions options;
  options.segment_size_bytes = 4096;
  ASSERT_TRUE(harness.Open(options).ok());
  const Record first = harness.Append(1, 1, "first");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  harness.Append(1, 2, "second");
  ASSERT_TRUE(harness.SyncAndRun().ok());
  ASSERT_EQ(harness.wal().segment_bases().size(), 2u);
  harness.Crash();
  std::string file = harness.SegmentBytes(0);
  file[first.position + 50] ^= 0x40;
  harness.SetSegmentBytes(0, file);
  const absl::Status status = harness.Open(options);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("wal-0000000000000000.log at offset 48"), std::string::npos)
      << status;
}

TEST(Wal, TornManifestWriteKeepsThePreviousGeneration) {
  SimHarness harness(13);
  WalOptions options;
  options.segment_size_bytes = 4096;
  ASSERT_TRUE(harness.Open(options).ok());
  std::vector<Record> appended;
  for (int i = 0; i < 3; ++i) {
    appended.push_back(harness.Append(1, i, "r"));
    ASSERT_TRUE(harness.SyncAndRun().ok());
  }
  harness.Crash();
  // Damage one copy of the newest generation: the other copy still names every segment.
  std::string manifest = harness.disk().FileBytes(kWalManifestFileName);
  const uint64_t generation = 3;
  manifest[(generation % 2) * 2 * kWalManifestSlotSizeBytes + 10] ^= 1;
  harness.disk().SetFileBytes(kWalManifestFileName, manifest);
  ASSERT_TRUE(harness.Open(options).ok());
  EXPECT_EQ(harness.replayed(), appended);
}

// Random appends, syncs, full disks and crashes; after every reopen every record whose
// Sync completed OK is present, in order, exactly once.
TEST(Wal, RandomizedCrashesNeverLoseAcknowledgedRecords) {
  uint64_t reopens = 0;
  uint64_t rollbacks = 0;
  uint64_t acknowledged = 0;
  uint64_t segments = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(seed);
    sim::DiskOptions disk_options;
    disk_options.sync_latency_mean_ns = 100'000;
    SimHarness harness(seed * 7919, disk_options);
    Prng prng(seed);
    WalOptions options;
    options.segment_size_bytes = 4096 * prng.UniformRange(1, 8);
    options.tail_bytes_initial = 4096;
    ASSERT_TRUE(harness.Open(options).ok());
    uint64_t next_id = 1;
    std::vector<uint64_t> must_have;  // Ids acknowledged (or replayed), in order.
    std::vector<uint64_t> appended;   // Ids appended in this incarnation.
    // Records covered by a failed Sync may be gone; a later OK covers only those after.
    size_t failed_covered = 0;
    for (int step = 0; step < 300; ++step) {
      const uint64_t action = prng.UniformBelow(100);
      if (action < 60) {
        const uint64_t id = next_id++;
        const std::string body(prng.UniformBelow(400), static_cast<char>('a' + id % 26));
        const uint32_t partition = static_cast<uint32_t>(prng.UniformBelow(8));
        ASSERT_TRUE(harness.wal().Append(1, partition, id, seed, Bytes(body)).ok());
        appended.push_back(id);
      } else if (action < 85) {
        const size_t covered = appended.size();
        harness.wal().Sync([&must_have, &appended, &failed_covered, covered](absl::Status status) {
          if (!status.ok()) {
            EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
            failed_covered = std::max(failed_covered, covered);
          } else {
            for (size_t i = failed_covered; i < covered; ++i) {
              if (must_have.empty() || appended[i] > must_have.back()) {
                must_have.push_back(appended[i]);
              }
            }
          }
        });
      } else if (action < 93) {
        harness.simulator().RunUntil(harness.simulator().now_ns() +
                                     static_cast<int64_t>(prng.UniformBelow(400'000)));
      } else if (action < 96) {
        const bool full = prng.Chance(1, 2);
        harness.disk().options().capacity_bytes =
            full ? harness.disk().used_bytes() + prng.UniformBelow(8192) : uint64_t{1} << 40;
      } else {
        rollbacks += harness.wal().stats().rollbacks;
        segments += harness.wal().stats().segments_created;
        acknowledged += must_have.size();
        ++reopens;
        harness.Crash();
        harness.disk().options().capacity_bytes = uint64_t{1} << 40;
        ASSERT_TRUE(harness.Open(options).ok());
        std::vector<uint64_t> ids;
        for (const Record& record : harness.replayed()) {
          ids.push_back(record.index);
        }
        for (size_t i = 1; i < ids.size(); ++i) {
          ASSERT_LT(ids[i - 1], ids[i]);  // In order, exactly once.
        }
        size_t j = 0;
        for (uint64_t id : must_have) {
          while (j < ids.size() && ids[j] != id) {
            ++j;
          }
          ASSERT_LT(j, ids.size()) << "acknowledged record " << id << " lost";
        }
        must_have = ids;  // Replayed records are durable from now on.
        appended.clear();
        failed_covered = 0;
      }
    }
  }
  // The run must have exercised what it claims to.
  EXPECT_GT(reopens, 100u);
  EXPECT_GT(rollbacks, 10u);
  EXPECT_GT(acknowledged, 1000u);
  EXPECT_GT(segments, 100u);
  std::printf("randomized: %lu reopens, %lu rollbacks, %lu acknowledged-at-crash, %lu segments\n",
              static_cast<unsigned long>(reopens), static_cast<unsigned long>(rollbacks),
              static_cast<unsigned long>(acknowledged), static_cast<unsigned long>(segments));
}

TEST(WalPosix, AppendSyncReopenOnARealDisk) {
  posix_test::TempDir dir;
  std::vector<Record> appended;
  {
    PosixEnvOptions env_options;
    env_options.data_dir = dir.path();
    auto env = PosixEnv::Create(env_options);
    ASSERT_TRUE(env.ok()) << env.status();
    auto wal = Wal::Open(**env, WalOptions{}, [](const WalRecordView&) {});
    ASSERT_TRUE(wal.ok()) << wal.status();
    for (int group = 0; group < 3; ++group) {
      for (int i = 0; i < 50; ++i) {
        Record record;
        record.partition = i;
        record.index = group * 50 + i;
        record.epoch = 3;
        record.body = std::string(i * 3, 'p');
        record.position = *(*wal)->Append(1, record.partition, record.index, 3, Bytes(record.body));
        appended.push_back(record);
      }
      bool done = false;
      (*wal)->Sync([&](absl::Status status) {
        EXPECT_TRUE(status.ok()) << status;
        done = true;
      });
      ASSERT_TRUE((*env)->loop().RunUntil([&] { return done; }, posix_test::kPatienceNs));
    }
  }
  PosixEnvOptions env_options;
  env_options.data_dir = dir.path();
  auto env = PosixEnv::Create(env_options);
  ASSERT_TRUE(env.ok()) << env.status();
  std::vector<Record> replayed;
  auto wal = Wal::Open(**env, WalOptions{},
                       [&](const WalRecordView& view) { replayed.push_back(FromView(view)); });
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(replayed, appended);
  ExpectChains(replayed);
}

}  // namespace
}  // namespace unimeter
