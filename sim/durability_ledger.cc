#include "sim/durability_ledger.h"

#include <array>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "node/base/check.h"
#include "node/base/endian.h"
#include "node/metering/types.h"
#include "storage/wal.h"

namespace unimeter::sim {

DurabilityLedger::DurabilityLedger(std::vector<const SimDisk*> disks)
    : disks_(std::move(disks)),
      appended_(disks_.size(), std::vector<std::vector<Appended>>(metering::kPartitionCount)),
      wiped_copies_(disks_.size()) {}

void DurabilityLedger::OnWipe(uint32_t node) {
  UM_CHECK_LT(node, appended_.size());
  for (uint32_t partition = 0; partition < metering::kPartitionCount; ++partition) {
    std::vector<Appended>& log = appended_[node][partition];
    for (uint64_t index = 1; index <= log.size(); ++index) {
      const Appended& appended = log[index - 1];
      if (appended.known && DurableAt(node, partition, index, appended.epoch, appended.position)) {
        wiped_copies_[node].emplace(partition, index, appended.epoch);
      }
    }
    log.clear();  // The new incarnation's log starts afresh.
  }
}

void DurabilityLedger::OnAppend(uint32_t node, uint32_t partition, uint64_t index, uint64_t epoch,
                                uint64_t position) {
  UM_CHECK_LT(node, appended_.size());
  UM_CHECK_LT(partition, metering::kPartitionCount);
  UM_CHECK_GE(index, 1u);
  std::vector<Appended>& log = appended_[node][partition];
  if (index > log.size()) log.resize(index);
  log[index - 1] = Appended{epoch, position, true};
}

uint32_t DurabilityLedger::DurableCopies(uint32_t partition, uint64_t index, uint64_t epoch) const {
  uint32_t copies = 0;
  for (uint32_t node = 0; node < appended_.size(); ++node) {
    if (wiped_copies_[node].contains(std::make_tuple(partition, index, epoch))) {
      ++copies;
      continue;
    }
    const std::vector<Appended>& log = appended_[node][partition];
    if (index > log.size() || !log[index - 1].known) continue;
    const Appended& appended = log[index - 1];
    if (appended.epoch == epoch && DurableAt(node, partition, index, epoch, appended.position)) {
      ++copies;
    }
  }
  return copies;
}

bool DurabilityLedger::DurableAt(uint32_t node, uint32_t partition, uint64_t index, uint64_t epoch,
                                 uint64_t position) const {
  // The segment holding `position`: the one with the largest base at or below it. Segment
  // names have fixed-width hex bases, so name order is base order.
  const auto& files = disks_[node]->durable_files();
  auto it = files.upper_bound(WalSegmentFileName(position));
  if (it == files.begin()) return false;
  --it;
  const std::string& name = it->first;
  if (!absl::StartsWith(name, "wal-") || !absl::EndsWith(name, ".log")) return false;
  const SimFileBytes* segment = &it->second;
  const uint64_t offset = position - std::strtoull(name.c_str() + 4, nullptr, 16);
  if (offset + kWalRecordHeaderSizeBytes > segment->size()) return false;
  std::array<uint8_t, kWalRecordHeaderSizeBytes> header;
  segment->Read(offset, absl::MakeSpan(reinterpret_cast<char*>(header.data()), header.size()));
  return LoadU32(header.data() + kWalOffsetMagic) == kWalRecordMagic &&
         LoadU16(header.data() + kWalOffsetKind) != 0 &&
         LoadU32(header.data() + kWalOffsetPartition) == partition &&
         LoadU64(header.data() + kWalOffsetIndex) == index &&
         LoadU64(header.data() + kWalOffsetEpoch) == epoch;
}

}  // namespace unimeter::sim
