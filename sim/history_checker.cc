#include "sim/history_checker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"

namespace unimeter::sim {

HistoryChecker::HistoryChecker() : partitions_(metering::kPartitionCount) {}

bool HistoryChecker::OnApply(uint32_t node, uint32_t partition, uint64_t index, uint64_t epoch,
                             const metering::LogEntry& entry) {
  const std::vector<uint8_t> bytes = metering::EncodeLogEntry(entry);
  return OnApply(node, partition, index, epoch, Hash64(bytes.data(), bytes.size()));
}

bool HistoryChecker::OnApply(uint32_t node, uint32_t partition, uint64_t index, uint64_t epoch,
                             uint64_t checksum) {
  UM_CHECK_LT(partition, partitions_.size());
  UM_CHECK_GE(index, 1u);
  ++applies_checked_;
  std::vector<Canonical>& log = partitions_[partition];
  if (index > log.size()) log.resize(index);  // Indexes not applied anywhere yet: unknown.
  Canonical& canonical = log[index - 1];
  if (!canonical.known) {
    canonical = Canonical{true, epoch, checksum, node};
    CheckEpochOrder(partition, index);
    return true;
  }
  if (canonical.epoch == epoch && canonical.checksum == checksum) return false;
  if (!failure_.empty()) return false;
  failure_ = absl::StrCat("S4 (log agreement): partition ", partition, " index ", index,
                          " applied on n", node, " as epoch ", epoch, " checksum ", checksum,
                          ", first applied on n", canonical.first_node, " as epoch ",
                          canonical.epoch, " checksum ", canonical.checksum);
  return false;
}

bool HistoryChecker::WantsStateDigest(uint32_t partition, uint64_t index,
                                      uint64_t state_keys) const {
  UM_CHECK_LT(partition, partitions_.size());
  const std::vector<Canonical>& log = partitions_[partition];
  if (index >= 1 && index <= log.size() && log[index - 1].digest_known) return true;
  const uint64_t stride = 32 * std::max<uint64_t>(1, state_keys / 128);
  return index % stride == 0;
}

void HistoryChecker::OnState(uint32_t node, uint32_t partition, uint64_t index,
                             const metering::PartitionState& state) {
  // What a digest costs grows with the state: aggregates, dedup keys and alert copies.
  const uint64_t keys = state.aggregate_key_count() + state.content_dedup_key_count() +
                        state.idempotency_key_count() + state.alert_copies().size();
  if (WantsStateDigest(partition, index, keys)) {
    OnStateDigest(node, partition, index, state.Digest());
  }
}

void HistoryChecker::OnStateDigest(uint32_t node, uint32_t partition, uint64_t index,
                                   uint64_t digest) {
  UM_CHECK_LT(partition, partitions_.size());
  UM_CHECK_GE(index, 1u);
  UM_CHECK_LE(index, partitions_[partition].size());
  Canonical& canonical = partitions_[partition][index - 1];
  UM_CHECK(canonical.known);
  ++digests_checked_;
  if (!canonical.digest_known) {
    canonical.digest_known = true;
    canonical.digest_node = node;
    canonical.state_digest = digest;
    return;
  }
  if (canonical.state_digest == digest || !failure_.empty()) return;
  failure_ = absl::StrCat("S9 (replicas agree): partition ", partition, " after index ", index,
                          " n", node, " has state digest ", digest, ", n", canonical.digest_node,
                          " had ", canonical.state_digest);
}

void HistoryChecker::CheckEpochOrder(uint32_t partition, uint64_t index) {
  const std::vector<Canonical>& log = partitions_[partition];
  const Canonical& entry = log[index - 1];
  const Canonical* before = index >= 2 && log[index - 2].known ? &log[index - 2] : nullptr;
  const Canonical* after = index < log.size() && log[index].known ? &log[index] : nullptr;
  const bool before_later = before != nullptr && before->epoch > entry.epoch;
  const bool after_earlier = after != nullptr && entry.epoch > after->epoch;
  if ((!before_later && !after_earlier) || !failure_.empty()) return;
  failure_ = absl::StrCat("S7 (the committed prefix survives epoch changes): partition ", partition,
                          " index ", index, " committed in epoch ", entry.epoch, " on n",
                          entry.first_node, " next to index ", before_later ? index - 1 : index + 1,
                          " of epoch ", before_later ? before->epoch : after->epoch,
                          ": a later epoch's log lost an entry committed before it");
}

}  // namespace unimeter::sim
