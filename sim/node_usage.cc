#include "sim/node_usage.h"

#include <cstddef>
#include <vector>

namespace unimeter::sim {

UsageQuery NodeUsage(const NodeStore& store) {
  return [&store](uint64_t account, const std::string& code, int64_t start_ns, int64_t end_ns,
                  const std::vector<RefFilter>& filters) -> absl::StatusOr<RefValue> {
    std::vector<metering::Filter> node_filters;
    for (const RefFilter& filter : filters) {
      node_filters.push_back(metering::Filter{filter.key, filter.value});
    }
    absl::StatusOr<metering::AggValue> value =
        store.state(static_cast<uint32_t>(account % 256))
            .QueryUsage(account, code, start_ns, end_ns, node_filters);
    if (!value.ok()) return value.status();
    return RefValue{value->sum,
                    value->count,
                    value->max,
                    value->last_value,
                    value->last_timestamp_ns,
                    static_cast<uint8_t>(value->alert_flags)};
  };
}

absl::StatusOr<std::vector<RefCrossing>> NodeAlerts(const Engine& engine) {
  absl::StatusOr<std::vector<AlertRecord>> records =
      engine.ListAlerts(/*account_id=*/0, 0, SIZE_MAX);  // All.
  if (!records.ok()) return records.status();
  return AsCrossings(*records);
}

std::vector<RefCrossing> AsCrossings(const std::vector<AlertRecord>& records) {
  std::vector<RefCrossing> crossings;
  for (const AlertRecord& record : records) {
    const metering::AlertCrossing& crossing = record.crossing;
    crossings.push_back(RefCrossing{crossing.account_id, crossing.metric_code,
                                    crossing.threshold_index, crossing.threshold_code,
                                    crossing.value_at_cross, crossing.event_timestamp_ns});
  }
  return crossings;
}

bool RunUntilAlertsDurable(Simulator& simulator, const std::vector<const Engine*>& engines,
                           int64_t timeout_ns) {
  return simulator.RunUntil(
      [&engines] {
        for (const Engine* engine : engines) {
          if (engine->alerts_unreleased() > 0) return false;
        }
        return true;
      },
      simulator.now_ns() + timeout_ns);
}

}  // namespace unimeter::sim
