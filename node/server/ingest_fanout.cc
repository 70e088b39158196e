#include "node/server/ingest_fanout.h"

#include <algorithm>
#include <array>
#include <memory>
#include <utility>

#include "node/base/check.h"

namespace unimeter {
namespace {

struct Fanout {
  size_t parts_left = 0;
  size_t event_count = 0;
  // Per part: its partition and the request positions of its events, in order.
  std::vector<std::pair<uint32_t, std::vector<uint32_t>>> parts;
  std::vector<absl::StatusOr<metering::IngestResult>> results;
  absl::AnyInvocable<void(MergedIngest)> done;
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
    const std::vector<uint32_t>& positions = fanout.parts[p].second;
    UM_CHECK_EQ(result->outcomes.size(), positions.size());
    for (size_t i = 0; i < positions.size(); ++i) {
      merged.outcomes[positions[i]] = result->outcomes[i];
      // The last stored event of the request is the last stored event of its part.
      if (result->outcomes[i] == metering::EventOutcome::kStored &&
          (!any_stored || positions[i] > last_stored_position)) {
        any_stored = true;
        last_stored_position = positions[i];
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

}  // namespace

void IngestFanout(Engine& engine, std::vector<metering::Event> events, IngestMode mode,
                  absl::AnyInvocable<void(MergedIngest merged)> done) {
  if (events.empty()) {
    done(MergedIngest{});
    return;
  }
  auto fanout = std::make_shared<Fanout>();
  fanout->parts.reserve(std::min<size_t>(events.size(), kPartitionCount));
  fanout->event_count = events.size();
  fanout->done = std::move(done);
  // Parts in order of first appearance; a counting pass sizes every part exactly, so the
  // split allocates once per part.
  constexpr uint16_t kNoPart = UINT16_MAX;
  std::array<uint16_t, kPartitionCount> part_of_partition;
  part_of_partition.fill(kNoPart);
  std::vector<uint32_t> part_sizes;
  for (const metering::Event& event : events) {
    const uint32_t partition = static_cast<uint32_t>(event.account_id % kPartitionCount);
    if (part_of_partition[partition] == kNoPart) {
      part_of_partition[partition] = static_cast<uint16_t>(fanout->parts.size());
      fanout->parts.push_back({partition, {}});
      part_sizes.push_back(0);
    }
    ++part_sizes[part_of_partition[partition]];
  }
  std::vector<std::vector<metering::Event>> part_events(fanout->parts.size());
  for (size_t part = 0; part < fanout->parts.size(); ++part) {
    fanout->parts[part].second.reserve(part_sizes[part]);
    part_events[part].reserve(part_sizes[part]);
  }
  for (uint32_t i = 0; i < events.size(); ++i) {
    const uint16_t part = part_of_partition[events[i].account_id % kPartitionCount];
    fanout->parts[part].second.push_back(i);
    part_events[part].push_back(std::move(events[i]));
  }
  fanout->parts_left = fanout->parts.size();
  fanout->results.resize(fanout->parts.size(), absl::UnknownError("pending"));
  for (size_t part = 0; part < fanout->parts.size(); ++part) {
    engine.Ingest(fanout->parts[part].first, std::move(part_events[part]), mode,
                  [fanout, part](absl::StatusOr<metering::IngestResult> result) {
                    fanout->results[part] = std::move(result);
                    UM_CHECK_GT(fanout->parts_left, 0u);
                    if (--fanout->parts_left == 0) {
                      fanout->done(Merge(*fanout));
                    }
                  });
  }
}

}  // namespace unimeter
