#include "node/server/engine_support.h"

#include <algorithm>
#include <memory>

#include "absl/container/btree_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter {
namespace {
constexpr char kRedirectPayloadUrl[] = "type.unimeter.dev/redirect-node";
}  // namespace

absl::Status RedirectStatus(NodeId node, std::string_view what) {
  absl::Status status = absl::FailedPreconditionError(
      absl::StrCat(std::string(what), ": served by node ", node, " (redirect)"));
  status.SetPayload(kRedirectPayloadUrl, absl::Cord(absl::StrCat(node)));
  return status;
}

std::optional<NodeId> RedirectTarget(const absl::Status& status) {
  if (!absl::IsFailedPrecondition(status)) return std::nullopt;
  const auto payload = status.GetPayload(kRedirectPayloadUrl);  // An absl::optional.
  NodeId node = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &node)) {
    return std::nullopt;
  }
  return node;
}

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

void DurableAlerts::NoteRecorded(uint32_t partition, uint64_t index) {
  noted_.push_back(Noted{durable_offset_ + waiting_.size(), partition, index});
}

std::vector<std::pair<uint32_t, uint64_t>> DurableAlerts::TakeConfirmable() {
  absl::btree_map<uint32_t, uint64_t> through;
  while (!noted_.empty() && noted_.front().durable_from_offset <= durable_offset_) {
    uint64_t& index = through[noted_.front().partition];
    index = std::max(index, noted_.front().index);
    noted_.pop_front();
  }
  return {through.begin(), through.end()};
}

std::vector<AlertRecord> RecordUnconfirmedCrossings(NodeStore& store, DurableAlerts& alerts,
                                                    uint32_t partition) {
  std::vector<AlertRecord> recorded = store.RecordUnconfirmed(partition);
  alerts.Add(recorded);
  if (!store.state(partition).unconfirmed_crossings().empty()) {
    alerts.NoteRecorded(partition, store.commit_index(partition));
  }
  return recorded;
}

void AppendAlertConfirmations(
    Env& env, NodeStore& store, DurableAlerts& alerts,
    absl::FunctionRef<std::optional<uint64_t>(uint32_t partition)> serving_epoch,
    absl::FunctionRef<void()> appended) {
  for (const auto& [partition, index] : alerts.TakeConfirmable()) {
    const std::optional<uint64_t> epoch = serving_epoch(partition);
    if (!epoch.has_value()) continue;
    if (store.alerts_unlogged()) {
      alerts.NoteRecorded(partition, index);  // Confirmed after the next checkpoint.
      continue;
    }
    const absl::Status status = store.Append(
        partition, store.last_index(partition) + 1, *epoch,
        std::make_shared<const metering::LogEntry>(metering::LogEntry::RecordedAlerts(index)));
    if (!status.ok()) {
      // The crossings stay unconfirmed: a later confirmation of the partition covers them.
      env.Log(
          absl::StrCat("alerts of partition ", partition, " not confirmed: ", status.ToString()));
      continue;
    }
    appended();
  }
}

CheckpointTimer::CheckpointTimer(Env& env, NodeStore& store, const CheckpointPolicy& policy)
    : env_(env), store_(store), policy_(policy), last_ns_(env.MonotonicNowNs()) {
  UM_CHECK_GT(policy_.interval_ns, 0);
  Schedule();
}

CheckpointTimer::~CheckpointTimer() { env_.CancelTimer(timer_); }

void CheckpointTimer::Schedule() {
  constexpr int64_t kCheckPeriodMaxNs = 1'000'000'000;
  timer_ = env_.StartTimer(std::min(policy_.interval_ns / 6, kCheckPeriodMaxNs), [this] {
    timer_ = kNoTimer;
    if (!store_.checkpoint_running()) Check();
    Schedule();
  });
}

void CheckpointTimer::Check() {
  uint64_t applied = 0;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    applied += store_.commit_index(partition);
  }
  const bool changed = applied != applied_at_last_;
  const bool due = store_.wal_bytes_since_checkpoint() >= policy_.wal_bytes ||
                   env_.MonotonicNowNs() - last_ns_ >= policy_.interval_ns;
  // A failed checkpoint or flush leaves memory ahead of the store: crash and recover.
  auto fail_stop = [&env = env_](absl::Status status) {
    FailStopOnError(env, status, "checkpoint");
  };
  if (changed && due) {
    applied_at_last_ = applied;
    last_ns_ = env_.MonotonicNowNs();
    store_.Checkpoint(fail_stop);
  } else if (store_.unsaved_event_count() >= policy_.unsaved_events_max) {
    store_.FlushEvents(fail_stop);
  }
}

}  // namespace unimeter
