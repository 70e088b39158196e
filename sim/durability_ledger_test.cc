#include "sim/durability_ledger.h"

#include <string>

#include "gtest/gtest.h"
#include "node/base/endian.h"
#include "storage/wal.h"

namespace unimeter::sim {
namespace {

// A durable segment image with one entry record header at `offset` (docs/formats/wal.md).
std::string SegmentWithRecord(uint64_t offset, uint32_t partition, uint64_t index, uint64_t epoch) {
  std::string bytes(offset + kWalRecordHeaderSizeBytes, '\0');
  auto* header = reinterpret_cast<uint8_t*>(bytes.data() + offset);
  StoreU32(header + kWalOffsetMagic, kWalRecordMagic);
  StoreU16(header + kWalOffsetKind, 1);  // An entry.
  StoreU32(header + kWalOffsetPartition, partition);
  StoreU64(header + kWalOffsetIndex, index);
  StoreU64(header + kWalOffsetEpoch, epoch);
  return bytes;
}

TEST(DurabilityLedgerTest, CountsOnlyDisksWhoseDurableImageHoldsTheRecord) {
  SimDisk first(1, DiskOptions{});
  SimDisk second(2, DiskOptions{});
  SimDisk third(3, DiskOptions{});
  DurabilityLedger ledger({&first, &second, &third});
  // Segment based at global position 8192: the record at 8192 + 48.
  first.SetFileBytes(WalSegmentFileName(8192), SegmentWithRecord(48, 7, 3, 2));
  second.SetFileBytes(WalSegmentFileName(0), std::string(4096, '\0'));
  second.SetFileBytes(WalSegmentFileName(8192), SegmentWithRecord(48, 7, 3, 2));
  ledger.OnAppend(0, 7, 3, 2, 8192 + 48);
  ledger.OnAppend(1, 7, 3, 2, 8192 + 48);
  ledger.OnAppend(2, 7, 3, 2, 8192 + 48);  // Appended, never made durable.
  EXPECT_EQ(ledger.DurableCopies(7, 3, 2), 2u);
  EXPECT_EQ(ledger.DurableCopies(7, 3, 1), 0u);  // Another epoch at that index.
  EXPECT_EQ(ledger.DurableCopies(7, 4, 2), 0u);  // Never appended.
  // A later append of the same index elsewhere (after a truncation) replaces the position.
  ledger.OnAppend(0, 7, 3, 2, 8192 + 4096);
  EXPECT_EQ(ledger.DurableCopies(7, 3, 2), 1u);
  // A wiped disk holds nothing.
  second.WipeAll();
  EXPECT_EQ(ledger.DurableCopies(7, 3, 2), 0u);
}

TEST(DurabilityLedgerTest, ACopyDurableWhenItsDiskWasReplacedStillCounts) {
  SimDisk first(1, DiskOptions{});
  SimDisk second(2, DiskOptions{});
  DurabilityLedger ledger({&first, &second});
  first.SetFileBytes(WalSegmentFileName(0), SegmentWithRecord(48, 7, 3, 2));
  ledger.OnAppend(0, 7, 3, 2, 48);
  ledger.OnAppend(0, 7, 4, 2, 4096);  // Appended, never durable.
  ledger.OnWipe(0);
  first.WipeAll();
  // Its acknowledgement may complete a commit after the wipe: the copy existed.
  EXPECT_EQ(ledger.DurableCopies(7, 3, 2), 1u);
  EXPECT_EQ(ledger.DurableCopies(7, 4, 2), 0u);
  EXPECT_EQ(ledger.DurableCopies(7, 3, 1), 0u);
  // The new incarnation's appends start afresh and count only once durable.
  ledger.OnAppend(0, 7, 4, 2, 48);
  EXPECT_EQ(ledger.DurableCopies(7, 4, 2), 0u);
  first.SetFileBytes(WalSegmentFileName(0), SegmentWithRecord(48, 7, 4, 2));
  EXPECT_EQ(ledger.DurableCopies(7, 4, 2), 1u);
}

}  // namespace
}  // namespace unimeter::sim
