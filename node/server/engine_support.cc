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

size_t EntryPartsEnd(size_t begin, size_t count,
                     absl::FunctionRef<const std::vector<metering::Event>&(size_t)> events_of) {
  UM_CHECK_LT(begin, count);
  size_t end = begin;
  size_t events = 0;
  size_t properties = 0;
  for (; end < count; ++end) {
    const std::vector<metering::Event>& part = events_of(end);
    size_t part_properties = 0;
    for (const metering::Event& event : part) part_properties += event.properties.size();
    if (end > begin && (events + part.size() > metering::kRequestEventsMax ||
                        properties + part_properties > metering::kRequestPropertiesMax)) {
      break;
    }
    events += part.size();
    properties += part_properties;
  }
  return end;
}

AppendedParts AcceptAndAppend(NodeStore& store, metering::PendingDedup& pending, uint32_t partition,
                              uint64_t epoch,
                              absl::Span<const absl::Span<const metering::Event>> parts,
                              int64_t now_ns) {
  metering::PartsAcceptance decided = store.state(partition).AcceptParts(parts, now_ns, pending);
  AppendedParts appended{std::move(decided.results), 0};
  if (!decided.entry.has_value()) return appended;
  const uint64_t index = store.last_index(partition) + 1;
  const absl::Status status =
      store.Append(partition, index, epoch,
                   std::make_shared<const metering::LogEntry>(*std::move(decided.entry)));
  if (status.ok()) {
    appended.index = index;
    return appended;
  }
  pending.DropNewestBatch();
  const absl::Status full =
      absl::ResourceExhaustedError(absl::StrCat("log full: ", status.message()));
  for (absl::StatusOr<metering::IngestResult>& result : appended.results) {
    if (result.ok()) result = full;
  }
  return appended;
}

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

void DurableAlerts::Reset(uint64_t offset) {
  UM_CHECK(waiting_.empty() && uncopied_.empty() && !copy_in_flight_);
  released_offset_ = offset;
  next_offset_ = offset;
}

void DurableAlerts::ResetWithUncopied(uint64_t released_offset, std::vector<AlertRecord> durable,
                                      uint64_t next_offset) {
  Reset(released_offset);
  UM_CHECK_LE(released_offset, next_offset);
  next_offset_ = next_offset;
  uncopied_.assign(durable.begin(), durable.end());
  for (size_t i = 0; i < uncopied_.size(); ++i) {
    UM_CHECK_GE(uncopied_[i].offset, i == 0 ? released_offset : uncopied_[i - 1].offset + 1);
    UM_CHECK_LT(uncopied_[i].offset, next_offset);
  }
  if (uncopied_.empty()) released_offset_ = next_offset;
}

void DurableAlerts::Add(const std::vector<AlertRecord>& records) {
  for (const AlertRecord& record : records) {
    UM_CHECK_EQ(record.offset, next_offset_);
    ++next_offset_;
    waiting_.push_back(record);
  }
}

void DurableAlerts::Synced(size_t covered, Engine::AlertsDurable& on_released) {
  if (covered == 0) return;
  UM_CHECK_LE(covered, waiting_.size());
  uncopied_.insert(uncopied_.end(), waiting_.begin(), waiting_.begin() + covered);
  waiting_.erase(waiting_.begin(), waiting_.begin() + covered);
  if (!copies_required_) ReleaseUncopied(on_released);
}

std::vector<AlertRecord> DurableAlerts::StartCopy(size_t max) {
  if (copy_in_flight_ || uncopied_.empty()) return {};
  copy_in_flight_ = true;
  const size_t count = std::min(max, uncopied_.size());
  return std::vector<AlertRecord>(uncopied_.begin(), uncopied_.begin() + count);
}

void DurableAlerts::CopyDone(bool committed, uint64_t through_offset,
                             Engine::AlertsDurable& on_released) {
  UM_CHECK(copy_in_flight_);
  copy_in_flight_ = false;
  if (committed) Release(through_offset + 1, on_released);
}

void DurableAlerts::ReleaseUncopied(Engine::AlertsDurable& on_released) {
  if (!uncopied_.empty()) Release(uncopied_.back().offset + 1, on_released);
}

void DurableAlerts::Release(uint64_t end_offset, Engine::AlertsDurable& on_released) {
  std::vector<AlertRecord> released;
  while (!uncopied_.empty() && uncopied_.front().offset < end_offset) {
    released.push_back(std::move(uncopied_.front()));
    uncopied_.pop_front();
  }
  if (released.empty()) return;  // A copy sent again after its records were released.
  UM_CHECK_GE(released.front().offset, released_offset_);
  // Up to the next record still held back (offsets retention deleted hold nothing).
  released_offset_ = !uncopied_.empty()  ? uncopied_.front().offset
                     : !waiting_.empty() ? waiting_.front().offset
                                         : next_offset_;
  if (on_released) on_released(released);
}

void DurableAlerts::TrimToReleased(std::vector<AlertRecord>* records) const {
  while (!records->empty() && records->back().offset >= released_offset_) {
    records->pop_back();
  }
}

void DurableAlerts::NoteRecorded(uint32_t partition, uint64_t index) {
  noted_.push_back(Noted{next_offset_, partition, index});
}

std::vector<std::pair<uint32_t, uint64_t>> DurableAlerts::TakeConfirmable() {
  absl::btree_map<uint32_t, uint64_t> through;
  while (!noted_.empty() && noted_.front().released_from_offset <= released_offset_) {
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
