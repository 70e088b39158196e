// storage/pending_overlay.cc
#include "storage/pending_overlay.h"

#include <utility>

#include "node/base/check.h"

namespace unimeter {
namespace {

bool BeforeEnd(std::string_view key, std::string_view end) { return end.empty() || key < end; }

}  // namespace

void PendingOverlay::Apply(const WriteBatch& batch, uint64_t sequence) {
  UM_CHECK_GT(sequence, sequence_applied_last_);
  sequence_applied_last_ = sequence;
  for (const WriteBatch::Operation& operation : batch.operations()) {
    Entry& entry = entries_[std::string(operation.key)];
    entry.sequence = sequence;
    if (operation.is_delete) {
      entry.value.reset();
    } else {
      entry.value = std::string(operation.value);
    }
  }
}

void PendingOverlay::Retire(const WriteBatch& batch, uint64_t sequence) {
  UM_CHECK_GT(sequence, sequence_retired_last_);
  UM_CHECK_LE(sequence, sequence_applied_last_);
  sequence_retired_last_ = sequence;
  for (const WriteBatch::Operation& operation : batch.operations()) {
    const auto it = entries_.find(operation.key);
    if (it == entries_.end()) {
      continue;  // An earlier operation of this batch on the same key retired it.
    }
    // Entries of older batches were retired before, so nothing older can remain.
    UM_CHECK_GE(it->second.sequence, sequence);
    if (it->second.sequence == sequence) {
      entries_.erase(it);
    }
  }
}

const PendingOverlay::Entry* PendingOverlay::Find(std::string_view key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

absl::Status MergeScan(const PendingOverlay& overlay, std::string_view begin, std::string_view end,
                       DurableCursor& durable, StateStore::ScanVisitor visitor,
                       const StateStore::DamageVisitor* on_damaged) {
  auto pending = overlay.LowerBound(begin);
  absl::Status status = durable.Seek(begin);
  while (status.ok()) {
    const bool durable_in_range = durable.Valid() && BeforeEnd(durable.key(), end);
    const bool pending_in_range = pending != overlay.end() && BeforeEnd(pending->first, end);
    if (!durable_in_range && !pending_in_range) {
      break;
    }
    if (pending_in_range && (!durable_in_range || pending->first <= durable.key())) {
      // The overlay is newer: it shadows a durable value under the same key.
      if (durable_in_range && pending->first == durable.key()) {
        status = durable.Next();
        if (!status.ok()) {
          break;
        }
      }
      const auto& [key, entry] = *pending++;
      if (entry.value.has_value() && !visitor(key, *entry.value)) {
        break;
      }
      continue;
    }
    UM_CHECK(durable_in_range);
    const absl::StatusOr<std::string_view> value = durable.value();
    if (!value.ok()) {
      if (on_damaged == nullptr || !absl::IsDataLoss(value.status()) ||
          !(*on_damaged)(durable.key(), value.status())) {
        return value.status();
      }
      status = durable.Next();
      continue;
    }
    if (!visitor(durable.key(), *value)) {
      break;
    }
    status = durable.Next();
  }
  return status;
}

void CheckKeySizes(const WriteBatch& batch) {
  for (const WriteBatch::Operation& operation : batch.operations()) {
    UM_CHECK_GE(operation.key.size(), size_t{1});
    UM_CHECK_LE(operation.key.size(), StateStore::kKeySizeBytesMax);
  }
}

}  // namespace unimeter
