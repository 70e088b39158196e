#include "node/server/ingest_fanout.h"

#include <algorithm>
#include <array>
#include <memory>
#include <utility>

#include "node/base/check.h"

namespace unimeter {
namespace {

struct Part {
  uint32_t partition = 0;
  uint32_t positions_begin = 0;  // This part's request positions: positions[begin, end).
  uint32_t positions_end = 0;
};

struct Fanout {
  size_t parts_left = 0;
  size_t event_count = 0;
  size_t references = 0;  // Live PartDone callbacks.
  std::vector<Part> parts;
  std::vector<uint32_t> positions;  // Request positions grouped by part, in order.
  std::vector<absl::StatusOr<metering::IngestResult>> results;
  absl::AnyInvocable<void(MergedIngest)> done;
};

// One part's completion callback. Two words, so the engine's AnyInvocable holds it
// without a heap block (a shared_ptr capture plus the part index would not fit); the
// fanout is freed when the last callback is, whether it ran or was dropped.
class PartDone {
 public:
  PartDone(Fanout* fanout, uint32_t part) : fanout_(fanout), part_(part) { ++fanout->references; }
  PartDone(PartDone&& other) noexcept : fanout_(other.fanout_), part_(other.part_) {
    other.fanout_ = nullptr;
  }
  PartDone(const PartDone&) = delete;
  PartDone& operator=(const PartDone&) = delete;
  PartDone& operator=(PartDone&&) = delete;
  ~PartDone() {
    if (fanout_ != nullptr && --fanout_->references == 0) delete fanout_;
  }

  void operator()(absl::StatusOr<metering::IngestResult> result);

 private:
  Fanout* fanout_;
  uint32_t part_;
};

bool NothingAccepted(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsResourceExhausted(status);
}

MergedIngest Merge(const Fanout& fanout) {
  MergedIngest merged;
  merged.outcomes.assign(fanout.event_count, metering::EventOutcome::kStored);
  size_t failed = 0;
  bool all_failures_clean = true;
  bool any_stored = false;
  uint32_t last_stored_position = 0;
  for (size_t p = 0; p < fanout.results.size(); ++p) {
    const absl::StatusOr<metering::IngestResult>& result = fanout.results[p];
    if (!result.ok()) {
      ++failed;
      all_failures_clean = all_failures_clean && NothingAccepted(result.status());
      continue;
    }
    merged.n_stored += result->n_stored;
    merged.n_duplicates += result->n_duplicates;
    merged.n_conflicts += result->n_conflicts;
    merged.unknown_metric =
        merged.unknown_metric || result->status == metering::IngestStatus::kUnknownMetric;
    const Part& part = fanout.parts[p];
    UM_CHECK_EQ(result->outcomes.size(), part.positions_end - part.positions_begin);
    for (size_t i = 0; i < result->outcomes.size(); ++i) {
      const uint32_t position = fanout.positions[part.positions_begin + i];
      merged.outcomes[position] = result->outcomes[i];
      // The last stored event of the request is the last stored event of its part.
      if (result->outcomes[i] == metering::EventOutcome::kStored &&
          (!any_stored || position > last_stored_position)) {
        any_stored = true;
        last_stored_position = position;
        merged.last_offset = result->last_offset;
      }
    }
  }
  if (failed == fanout.results.size() && all_failures_clean) {
    merged.outcome = MergedIngest::Outcome::kNothingAccepted;
  } else if (failed > 0) {
    merged.outcome = MergedIngest::Outcome::kUnknown;
  }
  return merged;
}

static_assert(sizeof(PartDone) <= 2 * sizeof(void*),
              "PartDone must fit AnyInvocable's local storage");

void PartDone::operator()(absl::StatusOr<metering::IngestResult> result) {
  UM_CHECK(fanout_ != nullptr);
  fanout_->results[part_] = std::move(result);
  UM_CHECK_GT(fanout_->parts_left, 0u);
  if (--fanout_->parts_left == 0) {
    fanout_->done(Merge(*fanout_));
  }
}

}  // namespace

void IngestFanout(Engine& engine, std::vector<metering::Event> events, IngestMode mode,
                  absl::AnyInvocable<void(MergedIngest merged)> done) {
  if (events.empty()) {
    done(MergedIngest{});
    return;
  }
  auto* fanout = new Fanout;  // Owned by the PartDone callbacks made below.
  fanout->parts.reserve(std::min<size_t>(events.size(), kPartitionCount));
  fanout->event_count = events.size();
  fanout->done = std::move(done);
  // Parts in order of first appearance; a counting pass sizes every part exactly, so the
  // split allocates once per part.
  constexpr uint16_t kNoPart = UINT16_MAX;
  std::array<uint16_t, kPartitionCount> part_of_partition;
  part_of_partition.fill(kNoPart);
  for (const metering::Event& event : events) {
    const uint32_t partition = static_cast<uint32_t>(event.account_id % kPartitionCount);
    if (part_of_partition[partition] == kNoPart) {
      part_of_partition[partition] = static_cast<uint16_t>(fanout->parts.size());
      fanout->parts.push_back(Part{partition, 0, 0});
    }
    ++fanout->parts[part_of_partition[partition]].positions_end;  // Counts for now.
  }
  std::vector<std::vector<metering::Event>> part_events(fanout->parts.size());
  uint32_t begin = 0;
  for (size_t p = 0; p < fanout->parts.size(); ++p) {
    Part& part = fanout->parts[p];
    part_events[p].reserve(part.positions_end);
    part.positions_begin = begin;
    begin += part.positions_end;
    part.positions_end = part.positions_begin;  // Advanced as positions are placed.
  }
  fanout->positions.resize(events.size());
  for (uint32_t i = 0; i < events.size(); ++i) {
    const uint16_t p = part_of_partition[events[i].account_id % kPartitionCount];
    fanout->positions[fanout->parts[p].positions_end++] = i;
    part_events[p].push_back(std::move(events[i]));
  }
  fanout->parts_left = fanout->parts.size();
  fanout->results.resize(fanout->parts.size(), absl::UnknownError("pending"));
  // Every callback exists before the first can run, so none frees the fanout early.
  std::vector<PartDone> callbacks;
  callbacks.reserve(fanout->parts.size());
  for (uint32_t p = 0; p < fanout->parts.size(); ++p) callbacks.emplace_back(fanout, p);
  // The fanout is not touched once the last callback is handed over: if every part
  // completes inside Ingest, it is freed there.
  const size_t part_count = fanout->parts.size();
  for (size_t p = 0; p < part_count; ++p) {
    const uint32_t partition = fanout->parts[p].partition;  // callbacks[p] still holds it.
    engine.Ingest(partition, std::move(part_events[p]), mode, std::move(callbacks[p]));
  }
}

}  // namespace unimeter
