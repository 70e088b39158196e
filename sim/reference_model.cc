#include "sim/reference_model.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace unimeter::sim {
namespace {

constexpr int64_t kDayNs = int64_t{86'400} * 1'000'000'000;
constexpr int64_t kFixedPeriodNs = 30 * kDayNs;
constexpr unsigned __int128 kSumMax = ~static_cast<unsigned __int128>(0);

// Product-semantics 3, computed with Abseil's civil time (production has its own
// arithmetic): [start, end) of the bucket containing `timestamp_ns`.
std::pair<int64_t, int64_t> BucketOf(uint8_t period_type, uint8_t billing_cycle_day,
                                     int64_t timestamp_ns) {
  const int64_t t = std::max<int64_t>(timestamp_ns, 0);
  if (period_type == 2) {
    const int64_t k = t / kDayNs;
    return {k * kDayNs, (k + 1) * kDayNs};
  }
  if (period_type != 1) {
    const int64_t k = t / kFixedPeriodNs;
    return {k * kFixedPeriodNs, (k + 1) * kFixedPeriodNs};
  }
  const int cycle_day = std::clamp<int>(billing_cycle_day, 1, 28);
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilDay day = absl::ToCivilDay(absl::FromUnixNanos(t), utc);
  absl::CivilMonth month(day);
  if (day.day() < cycle_day) month -= 1;
  const absl::CivilMonth next = month + 1;
  const absl::CivilDay start(month.year(), month.month(), cycle_day);
  const absl::CivilDay end(next.year(), next.month(), cycle_day);
  return {absl::ToUnixNanos(absl::FromCivil(start, utc)),
          absl::ToUnixNanos(absl::FromCivil(end, utc))};
}

std::string Decimal(unsigned __int128 value) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(value % 10)));
    value /= 10;
  } while (value != 0);
  return digits;
}

std::string ToString(const RefValue& value) {
  return absl::StrCat("{sum ", Decimal(value.sum), " count ", value.count, " max ", value.max,
                      " last ", value.last_value, "@", value.last_timestamp_ns, " alerts ",
                      value.alert_flags, "}");
}

std::string ToString(const RefCrossing& crossing) {
  return absl::StrCat("account ", crossing.account, " metric ", crossing.code, " threshold ",
                      crossing.threshold_index, " (", crossing.threshold_code, ") value ",
                      crossing.value, " at ", crossing.timestamp_ns);
}

// Every filter combination of the declared dimensions (at most one value per dimension, at
// least one dimension), as filters and as the model's slice name, in declaration order.
void FilterCombinations(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& dimensions, size_t first,
    std::vector<RefFilter>& filters, std::string& slice,
    std::vector<std::pair<std::vector<RefFilter>, std::string>>& out) {
  if (first == dimensions.size()) {
    if (!filters.empty()) out.emplace_back(filters, slice);
    return;
  }
  FilterCombinations(dimensions, first + 1, filters, slice, out);
  for (const std::string& value : dimensions[first].second) {
    const size_t slice_size = slice.size();
    absl::StrAppend(&slice, slice.empty() ? "" : "&", dimensions[first].first, "=", value);
    filters.push_back(RefFilter{dimensions[first].first, value});
    FilterCombinations(dimensions, first + 1, filters, slice, out);
    filters.pop_back();
    slice.resize(slice_size);
  }
}

}  // namespace

void ReferenceModel::Apply(uint32_t partition, uint64_t index, const metering::LogEntry& entry) {
  uint64_t& last = last_index_[partition];
  if (index != last + 1) {
    if (failure_.empty()) {
      failure_ = absl::StrCat("reference model: partition ", partition, " entry ", index,
                              " defined after entry ", last, " (canonical log out of order)");
    }
    return;
  }
  last = index;
  switch (entry.kind()) {
    case metering::LogEntryKind::kEventBatch:
      for (const metering::BatchEvent& event : entry.batch()->events) ApplyEvent(partition, event);
      break;
    case metering::LogEntryKind::kMetricPut: {
      const metering::MetricSchema& put = entry.put().schema->schema();
      if (!NewestRegistryChange(partition, put.code, entry.put().version)) break;
      Schema& schema = schemas_[partition][put.code];
      schema.agg_type = static_cast<uint8_t>(put.agg_type);
      schema.period_type = put.period_type;
      schema.billing_cycle_day = put.billing_cycle_day;
      schema.dimensions.clear();
      for (const metering::Dimension& dimension : put.dimensions) {
        schema.dimensions.emplace_back(dimension.key, dimension.values);
      }
      schema.thresholds = put.thresholds;
      break;
    }
    case metering::LogEntryKind::kMetricDelete:
      if (!NewestRegistryChange(partition, entry.del().code, entry.del().version)) break;
      schemas_[partition].erase(entry.del().code);
      break;
    case metering::LogEntryKind::kRetentionSweep:
      absl::erase_if(aggregates_, [&](const auto& item) {
        return std::get<0>(item.first) % 256 == partition &&
               std::get<3>(item.first) <= entry.retention().cutoff_ns;
      });
      break;
    case metering::LogEntryKind::kEpochStart:
    case metering::LogEntryKind::kAlertsRecorded:
    case metering::LogEntryKind::kAlertCopies:
      break;  // Ownership and alert bookkeeping: no aggregate changes.
  }
}

bool ReferenceModel::NewestRegistryChange(uint32_t partition, const std::string& code,
                                          const metering::RegistryVersion& version) {
  std::pair<uint64_t, uint32_t>& newest = registry_versions_[partition][code];
  const std::pair<uint64_t, uint32_t> given{version.epoch, version.sequence};
  if (given < newest) return false;
  newest = given;
  return true;
}

void ReferenceModel::ApplyEvent(uint32_t partition, const metering::BatchEvent& event) {
  ++logged_[EventKey{event.metric_code, event.account_id, event.timestamp_ns, event.value}];
  ++events_applied_;
  if (!event.registered) return;  // Stored as an unknown-metric event, never aggregated.
  const auto schema = schemas_[partition].find(event.metric_code);
  if (schema == schemas_[partition].end() || event.negative_correction) {
    if (failure_.empty()) {
      failure_ = absl::StrCat("reference model: partition ", partition, " event of ",
                              event.metric_code, " account ", event.account_id,
                              schema == schemas_[partition].end()
                                  ? " marked registered without a schema in the log"
                                  : " is a negative correction (not modelled)");
    }
    return;
  }
  const auto [start_ns, end_ns] =
      BucketOf(schema->second.period_type, schema->second.billing_cycle_day, event.timestamp_ns);
  // Matched pairs: per declared dimension the first property with its key, if its value is
  // declared (product-semantics 5).
  std::vector<std::string> matched;
  for (const auto& [key, values] : schema->second.dimensions) {
    const auto property = std::find_if(event.properties.begin(), event.properties.end(),
                                       [&](const metering::Property& p) { return p.key == key; });
    if (property != event.properties.end() &&
        std::find(values.begin(), values.end(), property->value) != values.end()) {
      matched.push_back(absl::StrCat(key, "=", property->value));
    }
  }
  // The unfiltered total (mask 0) and one slice per non-empty subset of the matched pairs.
  for (uint32_t mask = 0; mask < (1u << matched.size()); ++mask) {
    std::string slice;
    for (size_t i = 0; i < matched.size(); ++i) {
      if (mask & (1u << i)) absl::StrAppend(&slice, slice.empty() ? "" : "&", matched[i]);
    }
    Aggregate& agg =
        aggregates_[AggregateKey{event.account_id, event.metric_code, start_ns, end_ns, slice}];
    Update(schema->second, event, agg);
    if (mask == 0) Evaluate(schema->second, event, agg);
  }
}

void ReferenceModel::Evaluate(const Schema& schema, const metering::BatchEvent& event,
                              Aggregate& total) {
  const RefValue& value = total.value;
  uint64_t current = 0;
  switch (schema.agg_type) {
    case 0:
    case 4:
      current = value.count;
      break;
    case 1:
      current = value.sum > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(value.sum);
      break;
    case 2:
      current = value.max;
      break;
    case 3:
      current = value.last_value;
      break;
    default:
      break;
  }
  for (uint32_t i = 0; i < schema.thresholds.size() && i < 8; ++i) {
    const metering::Threshold& threshold = schema.thresholds[i];
    const auto bit = static_cast<uint8_t>(1u << i);
    if (current < threshold.value) {
      total.value.alert_flags &= static_cast<uint8_t>(~bit);
    } else if ((total.value.alert_flags & bit) == 0 || threshold.recurring) {
      total.value.alert_flags |= bit;
      ++crossings_[RefCrossing{event.account_id, event.metric_code, i, threshold.code, current,
                               event.timestamp_ns}];
      ++crossings_count_;
    }
  }
}

void ReferenceModel::Update(const Schema& schema, const metering::BatchEvent& event,
                            Aggregate& agg) {
  RefValue& value = agg.value;
  switch (schema.agg_type) {
    case 0:  // COUNT
      ++value.count;
      break;
    case 1:  // SUM, saturating at 2^128 - 1.
      value.sum = kSumMax - value.sum < event.value ? kSumMax : value.sum + event.value;
      break;
    case 2:  // MAX
      value.max = std::max(value.max, event.value);
      break;
    case 3:  // LATEST: only a strictly newer reading replaces.
      if (!agg.has_reading || event.timestamp_ns > value.last_timestamp_ns) {
        agg.has_reading = true;
        value.last_value = event.value;
        value.last_timestamp_ns = event.timestamp_ns;
      }
      break;
    case 4:  // COUNT_UNIQUE: NONE and ADD insert, REMOVE deletes.
      if (event.operation == metering::OperationType::kRemove) {
        agg.members.erase(event.value);
      } else {
        agg.members.insert(event.value);
      }
      value.count = agg.members.size();
      break;
    default:
      break;
  }
}

std::string ReferenceModel::CheckNode(const UsageQuery& query) const {
  const auto compare = [&](uint64_t account, const std::string& code, int64_t start_ns,
                           int64_t end_ns, const std::vector<RefFilter>& filters,
                           const std::string& slice, const RefValue& expected) -> std::string {
    absl::StatusOr<RefValue> answer = query(account, code, start_ns, end_ns, filters);
    if (answer.ok() && *answer == expected) return std::string();
    return absl::StrCat("S8 (aggregates are a function of the log): account ", account, " metric ",
                        code, " over [", start_ns, ", ", end_ns, ")",
                        slice.empty() ? "" : " filters ", slice, ": node ",
                        answer.ok() ? ToString(*answer) : answer.status().ToString(), ", model ",
                        ToString(expected));
  };
  for (auto it = aggregates_.begin(); it != aggregates_.end();) {
    const uint64_t account = std::get<0>(it->first);
    const std::string& code = std::get<1>(it->first);
    const auto partition_schemas = schemas_.find(static_cast<uint32_t>(account % 256));
    const Schema* schema = nullptr;
    if (partition_schemas != schemas_.end()) {
      const auto found = partition_schemas->second.find(code);
      if (found != partition_schemas->second.end()) schema = &found->second;
    }
    std::vector<std::pair<std::vector<RefFilter>, std::string>> combinations;
    if (schema != nullptr) {
      std::vector<RefFilter> filters;
      std::string slice;
      FilterCombinations(schema->dimensions, 0, filters, slice, combinations);
    }
    // The group of (account, code): every bucket, unfiltered and per filter combination.
    RefValue total;
    bool total_has_reading = false;
    for (; it != aggregates_.end() && std::get<0>(it->first) == account &&
           std::get<1>(it->first) == code;
         ++it) {
      const auto& [key, agg] = *it;
      if (!std::get<4>(key).empty()) continue;  // Slices are reached through their bucket.
      const int64_t start_ns = std::get<2>(key);
      const int64_t end_ns = std::get<3>(key);
      if (schema == nullptr) continue;  // Queries of an unregistered code read zeros.
      std::string failure = compare(account, code, start_ns, start_ns + 1, {}, "", agg.value);
      for (const auto& [filters, slice] : combinations) {
        if (!failure.empty()) break;
        const auto found = aggregates_.find(AggregateKey{account, code, start_ns, end_ns, slice});
        failure = compare(account, code, start_ns, start_ns + 1, filters, slice,
                          found == aggregates_.end() ? RefValue{} : found->second.value);
      }
      if (!failure.empty()) return failure;
      // Merge (product-semantics 4.3).
      total.sum = kSumMax - total.sum < agg.value.sum ? kSumMax : total.sum + agg.value.sum;
      total.count += agg.value.count;
      total.max = std::max(total.max, agg.value.max);
      total.alert_flags |= agg.value.alert_flags;
      if (agg.has_reading &&
          (!total_has_reading || agg.value.last_timestamp_ns > total.last_timestamp_ns)) {
        total_has_reading = true;
        total.last_value = agg.value.last_value;
        total.last_timestamp_ns = agg.value.last_timestamp_ns;
      }
    }
    std::string failure = compare(account, code, 0, std::numeric_limits<int64_t>::max(), {}, "",
                                  schema == nullptr ? RefValue{} : total);
    if (!failure.empty()) return failure;
  }
  return std::string();
}

std::string ReferenceModel::CheckEventSets(const Ledger& ledger) const {
  absl::btree_map<EventKey, const SentEvent*> sent;
  for (const SentEvent& event : ledger.events) {
    const EventKey key{ledger.schemas[event.metric].code, event.account, event.timestamp_ns,
                       event.value};
    if (!sent.emplace(key, &event).second) {
      return absl::StrCat("workload: two events sent with the key of ", std::get<0>(key),
                          " account ", event.account, " at ", event.timestamp_ns);
    }
  }
  const auto name = [](const EventKey& key) {
    return absl::StrCat(std::get<0>(key), " account ", std::get<1>(key), " timestamp ",
                        std::get<2>(key), " value ", std::get<3>(key));
  };
  for (const auto& [key, times] : logged_) {
    const auto found = sent.find(key);
    if (found == sent.end()) {
      return absl::StrCat("S3 (no invention): the log holds an event no client sent: ", name(key));
    }
    if (times > 1) {
      return absl::StrCat("S2 (no double counting): ", name(key), " is in the log ", times,
                          " times");
    }
    if (found->second->outcome == Outcome::kRefused) {
      return absl::StrCat("S3 (BACKPRESSURE accepts nothing): ", name(key),
                          " was refused on every attempt, yet is in the log");
    }
  }
  for (const auto& [key, event] : sent) {
    if (event->outcome == Outcome::kAcknowledged && !logged_.contains(key)) {
      return absl::StrCat("S1 (no acknowledged event lost): ", name(key),
                          " was acknowledged and is not in the log");
    }
  }
  return std::string();
}

std::string ReferenceModel::CheckAcknowledged(const Ledger& ledger, const SentEvent& event,
                                              protocol::Status status) const {
  const std::string& code = ledger.schemas[event.metric].code;
  if (logged_.contains(EventKey{code, event.account, event.timestamp_ns, event.value})) {
    return std::string();
  }
  return absl::StrCat("S14 (client contract): ",
                      status == protocol::Status::kDuplicate ? "DUPLICATE" : "an acknowledgement",
                      " (status ", static_cast<int>(status), ") for ", code, " account ",
                      event.account, " timestamp ", event.timestamp_ns, " value ", event.value,
                      " while the event is not in the committed log");
}

void ReferenceModel::WatchAcknowledgements(Ledger& ledger) {
  ledger.on_acknowledged = [this, &ledger](const SentEvent& event, protocol::Status status) {
    if (acknowledged_failure_.empty()) {
      acknowledged_failure_ = CheckAcknowledged(ledger, event, status);
    }
  };
}

std::string ReferenceModel::CheckAlerts(const std::vector<std::vector<RefCrossing>>& logs,
                                        bool complete) const {
  absl::btree_map<RefCrossing, uint32_t> recorded;  // Over all nodes.
  for (size_t node = 0; node < logs.size(); ++node) {
    absl::btree_map<RefCrossing, uint32_t> here;
    for (const RefCrossing& record : logs[node]) ++here[record];
    for (const auto& [crossing, times] : here) {
      const auto made = crossings_.find(crossing);
      if (made == crossings_.end()) {
        return absl::StrCat("S3 (no invented alert): node ", node,
                            " recorded a crossing the model never made: ", ToString(crossing));
      }
      if (times > made->second) {
        return absl::StrCat("S2 (one record per crossing): node ", node, " recorded ",
                            ToString(crossing), " ", times, " times; the model made it ",
                            made->second, " times");
      }
      recorded[crossing] += times;
    }
  }
  if (!complete) return std::string();
  for (const auto& [crossing, times] : crossings_) {
    const auto found = recorded.find(crossing);
    const uint32_t seen = found == recorded.end() ? 0 : found->second;
    if (seen < times) {
      return absl::StrCat("S1 (every committed crossing recorded): ", ToString(crossing), " made ",
                          times, " times, recorded ", seen, " times over all nodes");
    }
  }
  return std::string();
}

}  // namespace unimeter::sim
