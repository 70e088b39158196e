#include "node/server/engine_support.h"

#include "node/base/check.h"

namespace unimeter {

void DurableAlerts::Add(const std::vector<AlertRecord>& records) {
  waiting_.insert(waiting_.end(), records.begin(), records.end());
}

void DurableAlerts::Synced(size_t covered, Engine::AlertsDurable& on_durable) {
  if (covered == 0) return;
  UM_CHECK_LE(covered, waiting_.size());
  std::vector<AlertRecord> durable(waiting_.begin(), waiting_.begin() + covered);
  waiting_.erase(waiting_.begin(), waiting_.begin() + covered);
  durable_offset_ = durable.back().offset + 1;
  if (on_durable) on_durable(durable);
}

void DurableAlerts::TrimToDurable(std::vector<AlertRecord>* records) const {
  while (!records->empty() && records->back().offset >= durable_offset_) {
    records->pop_back();
  }
}

CheckpointTimer::CheckpointTimer(Env& env, NodeStore& store, uint64_t wal_bytes,
                                 int64_t interval_ns)
    : env_(env),
      store_(store),
      wal_bytes_(wal_bytes),
      interval_ns_(interval_ns),
      last_ns_(env.MonotonicNowNs()) {
  Schedule();
}

CheckpointTimer::~CheckpointTimer() { env_.CancelTimer(timer_); }

void CheckpointTimer::Schedule() {
  timer_ = env_.StartTimer(interval_ns_ / 6, [this] {
    timer_ = kNoTimer;
    uint64_t applied = 0;
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      applied += store_.commit_index(partition);
    }
    const bool changed = applied != applied_at_last_;
    const bool due = store_.wal_bytes_since_checkpoint() >= wal_bytes_ ||
                     env_.MonotonicNowNs() - last_ns_ >= interval_ns_;
    if (changed && due && !store_.checkpoint_running()) {
      applied_at_last_ = applied;
      last_ns_ = env_.MonotonicNowNs();
      // A failed checkpoint leaves memory ahead of the store: crash and recover.
      store_.Checkpoint(
          [&env = env_](absl::Status status) { FailStopOnError(env, status, "checkpoint"); });
    }
    Schedule();
  });
}

}  // namespace unimeter
