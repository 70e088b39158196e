// Owner-side acceptance and Apply() of node/metering/partition_state.h.
#include "node/metering/partition_state.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/planted_bugs.h"

namespace unimeter::metering {
namespace {

uint64_t SaturatingIncrement(uint64_t value) { return value == UINT64_MAX ? value : value + 1; }

int64_t StampedTimestamp(int64_t now_ns, size_t position) {
  const __int128 stamped = static_cast<__int128>(now_ns) + static_cast<__int128>(position);
  return stamped > INT64_MAX ? INT64_MAX : static_cast<int64_t>(stamped);
}

// The value compared with thresholds (product-semantics 4.2, "Current value").
uint64_t CurrentValue(AggregationType type, const AggValue& value) {
  switch (type) {
    case AggregationType::kCount:
    case AggregationType::kCountUnique:
      return value.count;
    case AggregationType::kSum:
      return value.SumClamped();
    case AggregationType::kMax:
      return value.max;
    case AggregationType::kLatest:
      return value.last_value;
  }
  return 0;
}

// Keys of the events accepted so far into one batch (duplicates within the batch).
struct PartKeys {
  LookupMap<ContentKey, bool> content;              // metric_id: the pending batches' CodeId.
  LookupMap<IdempotencyKey, uint64_t> idempotency;  // -> fingerprint
};

}  // namespace

PartitionState::PartitionState(const PartitionOptions& options) : options_(options) {
  UM_CHECK_LT(options.partition_id, kPartitionCount);
  UM_CHECK_GT(options.dedup_window_ns, 0);
  UM_CHECK_GT(options.idempotency_window_ns, 0);
}

// ---------------------------------------------------------------------------------------
// Owner side.

std::optional<uint32_t> PartitionState::FindMetricId(absl::string_view code) const {
  const uint32_t* id = metric_ids_.Find(code);
  if (id == nullptr) return std::nullopt;
  return *id;
}

SchemaRef PartitionState::FindSchema(absl::string_view metric_code) const {
  const std::optional<uint32_t> id = FindMetricId(metric_code);
  return id.has_value() ? metrics_[*id].schema : nullptr;
}

absl::Status PartitionState::ValidatePart(absl::Span<const Event> events) const {
  if (events.size() > kRequestEventsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(events.size(), " events in one request; at most 1024"));
  }
  size_t properties_total = 0;
  for (const Event& event : events) {
    absl::Status status = ValidateEvent(event);
    if (!status.ok()) return status;
    properties_total += event.properties.size();
    if (event.account_id % kPartitionCount != options_.partition_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "account ", event.account_id, " is not in partition ", options_.partition_id));
    }
    if (event.negative_correction) {
      const SchemaRef schema = FindSchema(event.metric_code);
      if (schema == nullptr || schema->agg_type() != AggregationType::kSum) {
        return absl::InvalidArgumentError(absl::StrCat(
            "negative correction for '", event.metric_code, "', which is not a registered SUM"));
      }
    }
  }
  if (properties_total > kRequestPropertiesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(properties_total, " properties in one request; at most 1024"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Acceptance> PartitionState::AcceptEvents(absl::Span<const Event> events,
                                                        int64_t now_ns,
                                                        PendingDedup& pending) const {
  const absl::Span<const Event> parts[] = {events};
  PartsAcceptance decided = AcceptParts(parts, now_ns, pending);
  if (!decided.results[0].ok()) return decided.results[0].status();
  return Acceptance{std::move(decided.entry), *std::move(decided.results[0])};
}

void PartitionState::PrefetchDedupLookups(absl::Span<const absl::Span<const Event>> parts,
                                          absl::Span<const absl::Status> validity) const {
  const std::string* previous_code = nullptr;
  std::optional<uint32_t> metric_id;
  for (size_t part = 0; part < parts.size(); ++part) {
    if (!validity[part].ok()) continue;
    for (const Event& event : parts[part]) {
      if (event.idempotency_key.has_value()) {
        dedup_.idempotency().Prefetch(*event.idempotency_key);
        continue;
      }
      if (event.timestamp_ns == 0) continue;
      if (previous_code == nullptr || event.metric_code != *previous_code) {
        metric_id = FindMetricId(event.metric_code);
        previous_code = &event.metric_code;
      }
      if (!metric_id.has_value()) continue;
      dedup_.content().Prefetch(ContentKey{event.account_id, event.timestamp_ns, event.value,
                                           *metric_id, event.negative_correction ? 1u : 0u});
    }
  }
}

PartsAcceptance PartitionState::AcceptParts(absl::Span<const absl::Span<const Event>> parts,
                                            int64_t now_ns, PendingDedup& pending) const {
  size_t events_total = 0;
  for (const absl::Span<const Event> events : parts) events_total += events.size();
  PartsAcceptance acceptance;
  acceptance.results.reserve(parts.size());
  if (parts.size() > 1) {  // One part is bounded by its own validation.
    size_t properties_total = 0;
    for (const absl::Span<const Event> events : parts) {
      for (const Event& event : events) properties_total += event.properties.size();
    }
    UM_CHECK_LE(events_total, kRequestEventsMax);
    UM_CHECK_LE(properties_total, kRequestPropertiesMax);
  }
  pending.RetireApplied(next_offset_);
  absl::InlinedVector<absl::Status, 16> validity;
  for (const absl::Span<const Event> events : parts) validity.push_back(ValidatePart(events));
  PrefetchDedupLookups(parts, validity);
  // The log time this batch will have once applied: every pending batch applies first.
  const int64_t log_time_ns = std::max({log_time_ns_, pending.log_time_ns(), now_ns});
  const uint64_t first_offset = std::max(next_offset_, pending.next_offset());

  auto batch = std::make_shared<EventBatch>();
  batch->accept_time_ns = now_ns;
  batch->first_offset = first_offset;
  PartKeys seen;  // Keys of the events accepted so far, in any part.
  std::vector<ContentKey> content_keys;
  // The previous event's code and its ids (parts often repeat one code).
  const std::string* previous_code = nullptr;
  std::optional<uint32_t> metric_id;
  uint32_t pending_code_id = 0;
  std::vector<std::pair<IdempotencyKey, uint64_t>> idempotency_keys;
  // Sized once: most parts hold a few events, where growth steps would be most of the
  // allocations.
  batch->events.reserve(events_total);
  if (events_total > 1) seen.content.Reserve(events_total);
  size_t events_left = events_total;  // Not yet decided, in this part and the later ones.
  size_t stamp_base = 0;              // Events in the parts before this one.

  for (size_t part = 0; part < parts.size(); ++part) {
    const absl::Span<const Event> events = parts[part];
    if (!validity[part].ok()) {
      acceptance.results.push_back(std::move(validity[part]));
      events_left -= events.size();
      stamp_base += events.size();
      continue;
    }
    IngestResult result;
    result.outcomes.reserve(events.size());
    bool stored_unknown = false;
    for (size_t i = 0; i < events.size(); ++i) {
      const Event& event = events[i];
      --events_left;  // Only later events can repeat a key: the last needs no entry.
      if (previous_code == nullptr || event.metric_code != *previous_code) {
        metric_id = FindMetricId(event.metric_code);
        pending_code_id = pending.CodeId(event.metric_code);
        previous_code = &event.metric_code;
      }
      EventOutcome outcome = EventOutcome::kStored;
      if (event.idempotency_key.has_value()) {
        const IdempotencyKey& key = *event.idempotency_key;
        const uint64_t fingerprint =
            PayloadFingerprint(event.metric_code, event.account_id, event.timestamp_ns, event.value,
                               event.operation, event.negative_correction, event.properties);
        std::optional<uint64_t> seen_fingerprint;
        if (const uint64_t* local = seen.idempotency.Find(key)) {
          seen_fingerprint = *local;
        } else if (const auto* in_flight = pending.FindIdempotency(key);
                   in_flight != nullptr && !BugPlanted(PlantedBug::kSkipPendingDedup) &&
                   WithinWindow(in_flight->record.log_time_ns, log_time_ns,
                                options_.idempotency_window_ns)) {
          seen_fingerprint = in_flight->record.fingerprint;
        } else if (const IdempotencyRecord* applied = dedup_.idempotency().Find(key);
                   applied != nullptr && WithinWindow(applied->log_time_ns, log_time_ns,
                                                      options_.idempotency_window_ns)) {
          seen_fingerprint = applied->fingerprint;
        }
        if (seen_fingerprint.has_value()) {
          outcome =
              *seen_fingerprint == fingerprint ? EventOutcome::kDuplicate : EventOutcome::kConflict;
        } else {
          if (events_left > 0) seen.idempotency.Insert(key, fingerprint);
          idempotency_keys.emplace_back(key, fingerprint);
        }
      } else if (event.timestamp_ns != 0) {
        const ContentKey key{event.account_id, event.timestamp_ns, event.value, pending_code_id,
                             event.negative_correction ? 1u : 0u};
        bool duplicate = seen.content.Find(key) != nullptr;
        if (!duplicate && !BugPlanted(PlantedBug::kSkipPendingDedup)) {
          const auto* in_flight = pending.FindContent(key);
          duplicate = in_flight != nullptr &&
                      WithinWindow(in_flight->log_time_ns, log_time_ns, options_.dedup_window_ns);
        }
        if (!duplicate && metric_id.has_value()) {
          const ContentKey applied_key{event.account_id, event.timestamp_ns, event.value,
                                       *metric_id, event.negative_correction ? 1u : 0u};
          const int64_t* recorded = dedup_.content().Find(applied_key);
          duplicate =
              recorded != nullptr && WithinWindow(*recorded, log_time_ns, options_.dedup_window_ns);
        }
        if (duplicate) {
          outcome = EventOutcome::kDuplicate;
        } else {
          if (events_left > 0) seen.content.Insert(key, true);
          if (content_keys.empty()) content_keys.reserve(events_left + 1);
          content_keys.push_back(key);
        }
      }
      result.outcomes.push_back(outcome);
      if (outcome == EventOutcome::kDuplicate) {
        ++result.n_duplicates;
        continue;
      }
      if (outcome == EventOutcome::kConflict) {
        ++result.n_conflicts;
        continue;
      }
      BatchEvent accepted;
      accepted.account_id = event.account_id;
      accepted.metric_code = event.metric_code;
      accepted.value = event.value;
      accepted.server_stamped = event.timestamp_ns == 0;
      accepted.timestamp_ns =
          accepted.server_stamped ? StampedTimestamp(now_ns, stamp_base + i) : event.timestamp_ns;
      accepted.operation = event.operation;
      accepted.registered = metric_id.has_value() && metrics_[*metric_id].schema != nullptr;
      accepted.negative_correction = event.negative_correction;
      accepted.idempotency_key = event.idempotency_key;
      accepted.dedup_class = event.idempotency_key.has_value() ? DedupClass::kIdempotency
                             : accepted.server_stamped         ? DedupClass::kNone
                                                               : DedupClass::kContent;
      accepted.properties = event.properties;
      stored_unknown = stored_unknown || !accepted.registered;
      batch->events.push_back(std::move(accepted));
      ++result.n_stored;
      result.last_offset = first_offset + batch->events.size() - 1;
    }
    if (result.n_stored == 0 && result.n_duplicates > 0) {
      result.status = IngestStatus::kDuplicate;
    } else if (stored_unknown) {
      result.status = IngestStatus::kUnknownMetric;
    }
    stamp_base += events.size();
    acceptance.results.push_back(std::move(result));
  }

  if (!batch->events.empty()) {
    pending.AddBatch(first_offset, first_offset + batch->events.size(), log_time_ns,
                     std::move(content_keys), std::move(idempotency_keys));
    acceptance.entry = LogEntry::Events(std::move(batch));
  }
  return acceptance;
}

// ---------------------------------------------------------------------------------------
// Apply.

void PartitionState::Apply(uint64_t index, const LogEntry& entry, ApplyOutput* output) {
  UM_CHECK_EQ(index, applied_index_ + 1);
  UM_CHECK(output != nullptr);
  switch (entry.kind()) {
    case LogEntryKind::kEventBatch: {
      const size_t crossings_before = output->crossings.size();
      ApplyBatch(entry.batch(), output);
      for (size_t i = crossings_before; i < output->crossings.size(); ++i) {
        unconfirmed_crossings_.push_back(UnconfirmedCrossing{index, output->crossings[i]});
      }
      break;
    }
    case LogEntryKind::kMetricPut: {
      const SchemaRef& schema = entry.put().schema;
      UM_CHECK(schema != nullptr);
      Metric& metric = metrics_[InternCode(schema->code())];
      // A change ordered before the one applied last (it reached this partition late) is
      // superseded: every partition keeps the newest change, whatever the arrival order.
      if (entry.put().version < metric.version) break;
      metric.schema = schema;
      metric.version = entry.put().version;
      break;
    }
    case LogEntryKind::kMetricDelete: {
      const MetricDelete& del = entry.del();
      std::optional<uint32_t> id = FindMetricId(del.code);
      // A versioned delete of a code never put here is kept as a tombstone, so that an
      // older put arriving after it cannot bring the schema back.
      if (!id.has_value() && !del.version.is_zero()) id = InternCode(del.code);
      if (!id.has_value() || del.version < metrics_[*id].version) break;
      metrics_[*id].schema = nullptr;
      metrics_[*id].version = del.version;
      break;
    }
    case LogEntryKind::kRetentionSweep:
      ApplyRetention(entry.retention().cutoff_ns, output);
      break;
    case LogEntryKind::kEpochStart:
      break;  // Marks an ownership change; no state.
    case LogEntryKind::kAlertsRecorded:
      ConfirmCrossings(entry.alerts_recorded().through_index);
      break;
    case LogEntryKind::kAlertCopies:
      KeepAlertCopies(entry.alert_copies());
      break;
  }
  applied_index_ = index;
}

uint32_t PartitionState::InternCode(const std::string& code) {
  if (const uint32_t* id = metric_ids_.Find(code)) return *id;
  const uint32_t id = static_cast<uint32_t>(metrics_.size());
  UM_CHECK_LT(metrics_.size(), size_t{UINT32_MAX});
  metrics_.push_back(Metric{code, nullptr, RegistryVersion{}});
  metric_ids_.Insert(code, id);
  return id;
}

void PartitionState::ApplyBatch(const std::shared_ptr<const EventBatch>& batch,
                                ApplyOutput* output) {
  UM_CHECK_GE(batch->first_offset, next_offset_);
  UM_CHECK_LE(batch->events.size(), kRequestEventsMax);
  log_time_ns_ = std::max(log_time_ns_, batch->accept_time_ns);
  // Expire before recording: a key accepted again after its window replaces nothing live.
  dedup_.Expire(log_time_ns_, options_.dedup_window_ns, options_.idempotency_window_ns);
  const size_t count = batch->events.size();
  std::array<uint32_t, kRequestEventsMax> metric_ids;
  uint32_t metric_id = 0;
  const std::string* previous_code = nullptr;
  for (size_t i = 0; i < count; ++i) {
    const std::string& code = batch->events[i].metric_code;
    if (previous_code == nullptr || code != *previous_code) {
      metric_id = InternCode(code);
      previous_code = &code;
    }
    metric_ids[i] = metric_id;
  }
  std::array<uint32_t, kRequestEventsMax> slots;
  LookUpSeriesAhead(batch->events, absl::MakeConstSpan(metric_ids.data(), count),
                    absl::MakeSpan(slots.data(), count));
  for (size_t i = 0; i < count; ++i) {
    const BatchEvent& event = batch->events[i];
    RecordDedupKey(event, metric_ids[i]);
    // Aggregate only what the owner accepted as registered, under the schema the log says
    // is in force now (the owner never accepts events while a schema change is in flight).
    const SchemaRef& schema = metrics_[metric_ids[i]].schema;
    if (event.registered && schema != nullptr) {
      Aggregate(event, metric_ids[i], slots[i], *schema, batch->first_offset + i, output);
    }
  }
  next_offset_ = batch->first_offset + batch->events.size();
  output->stored_batches.push_back(batch);
}

void PartitionState::RecordDedupKey(const BatchEvent& event, uint32_t metric_id) {
  switch (event.dedup_class) {
    case DedupClass::kNone:
      return;
    case DedupClass::kContent:
      dedup_.content().Insert(ContentKey{event.account_id, event.timestamp_ns, event.value,
                                         metric_id, event.negative_correction ? 1u : 0u},
                              log_time_ns_, log_time_ns_);
      return;
    case DedupClass::kIdempotency:
      UM_CHECK(event.idempotency_key.has_value());
      dedup_.idempotency().Insert(*event.idempotency_key,
                                  IdempotencyRecord{log_time_ns_, PayloadFingerprint(event)},
                                  log_time_ns_);
      return;
  }
}

PartitionState::Series& PartitionState::FindOrCreateSeries(uint64_t account_id,
                                                           uint32_t metric_id) {
  const SeriesKey key{account_id, metric_id};
  if (const uint32_t* slot = series_index_.Find(key)) return series_[*slot];
  uint32_t slot = 0;
  if (!free_series_.empty()) {
    slot = free_series_.back();
    free_series_.pop_back();
  } else {
    slot = static_cast<uint32_t>(series_.size());
    series_.emplace_back();
  }
  Series& series = series_[slot];
  UM_CHECK(!series.live);
  UM_CHECK(series.buckets.empty());
  series.account_id = account_id;
  series.metric_id = metric_id;
  series.live = true;
  series.bucket_length_max_ns = 0;
  series_index_.Insert(key, slot);
  return series;
}

void PartitionState::LookUpSeriesAhead(const std::vector<BatchEvent>& events,
                                       absl::Span<const uint32_t> metric_ids,
                                       absl::Span<uint32_t> slots) const {
  auto aggregated = [&](size_t i) {
    return events[i].registered && metrics_[metric_ids[i]].schema != nullptr;
  };
  for (size_t i = 0; i < events.size(); ++i) {
    if (aggregated(i)) series_index_.Prefetch(SeriesKey{events[i].account_id, metric_ids[i]});
  }
  for (size_t i = 0; i < events.size(); ++i) {
    slots[i] = kNoSlot;
    if (!aggregated(i)) continue;
    const uint32_t* slot = series_index_.Find(SeriesKey{events[i].account_id, metric_ids[i]});
    if (slot == nullptr) continue;
    slots[i] = *slot;
    const char* bytes = reinterpret_cast<const char*>(&series_[*slot]);
    for (size_t line = 0; line < sizeof(Series); line += 64) __builtin_prefetch(bytes + line);
  }
}

PartitionState::Bucket& PartitionState::FindOrCreateBucket(Series& series,
                                                           const BucketRange& range) {
  auto& buckets = series.buckets;
  if (!buckets.empty() && buckets.back().range == range) return buckets.back();
  auto it = std::lower_bound(buckets.begin(), buckets.end(), range,
                             [](const Bucket& b, const BucketRange& r) { return b.range < r; });
  if (it != buckets.end() && it->range == range) return *it;
  UM_CHECK_LT(range.start_ns, range.end_ns);
  it = buckets.insert(it, Bucket{});
  it->range = range;
  const __int128 length = static_cast<__int128>(range.end_ns) - range.start_ns;
  series.bucket_length_max_ns = static_cast<int64_t>(
      std::min<__int128>(INT64_MAX, std::max<__int128>(series.bucket_length_max_ns, length)));
  ++aggregate_key_count_;
  return *it;
}

AggValue& PartitionState::FindOrCreateSlice(Bucket& bucket, uint64_t slice_id) {
  auto& slices = bucket.slices.mutable_view();
  auto it = std::lower_bound(slices.begin(), slices.end(), slice_id,
                             [](const SliceAgg& s, uint64_t id) { return s.slice_id < id; });
  if (it != slices.end() && it->slice_id == slice_id) return it->value;
  it = slices.insert(it, SliceAgg{slice_id, AggValue{}});
  ++aggregate_key_count_;
  return it->value;
}

void PartitionState::Aggregate(const BatchEvent& event, uint32_t metric_id, uint32_t series_slot,
                               const CompiledSchema& schema, uint64_t offset, ApplyOutput* output) {
  // A slot looked up ahead stays valid: applying a batch only adds series.
  Series& series = series_slot == kNoSlot ? FindOrCreateSeries(event.account_id, metric_id)
                                          : series_[series_slot];
  UM_CHECK(series.live && series.account_id == event.account_id && series.metric_id == metric_id);
  Bucket& bucket = FindOrCreateBucket(series, schema.BucketFor(event.timestamp_ns));
  const AggregationType type = schema.agg_type();
  UpdateValue(type, event, bucket, /*is_total=*/true, 0, bucket.total);
  uint64_t pairs[kDimensionsPerMetricMax];
  const size_t matched = schema.MatchPairs(event.properties, pairs);
  for (uint32_t subset = 1; subset < (1u << matched); ++subset) {
    uint64_t slice_id = 0;
    for (size_t p = 0; p < matched; ++p) {
      if ((subset >> p) & 1) slice_id ^= pairs[p];
    }
    AggValue& slice = FindOrCreateSlice(bucket, slice_id);
    UpdateValue(type, event, bucket, /*is_total=*/false, slice_id, slice);
  }
  EvaluateThresholds(schema, event, offset, bucket.total, output);
}

void PartitionState::UpdateValue(AggregationType type, const BatchEvent& event, Bucket& bucket,
                                 bool is_total, uint64_t slice_id, AggValue& value) {
  switch (type) {
    case AggregationType::kCount:
      // A negative correction is only meaningful for SUM; elsewhere it changes no field.
      if (!event.negative_correction) value.count = SaturatingIncrement(value.count);
      return;
    case AggregationType::kSum:
      if (!event.negative_correction) {
        value.sum = SaturatingAdd(value.sum, event.value);
      } else {
        value.sum = value.sum > event.value ? value.sum - event.value : 0;
      }
      return;
    case AggregationType::kMax:
      if (!event.negative_correction) value.max = std::max(value.max, event.value);
      return;
    case AggregationType::kLatest:
      if (event.negative_correction) return;
      if (!value.has_last || event.timestamp_ns > value.last_timestamp_ns ||
          BugPlanted(PlantedBug::kLatestTakesOlder)) {
        value.last_value = event.value;
        value.last_timestamp_ns = event.timestamp_ns;
        value.has_last = true;
      }
      return;
    case AggregationType::kCountUnique: {
      if (event.negative_correction) return;
      if (bucket.unique == nullptr) bucket.unique = std::make_unique<UniqueSets>();
      absl::btree_set<uint64_t>& members =
          is_total ? bucket.unique->total : bucket.unique->slices[slice_id];
      if (event.operation == OperationType::kRemove) {
        members.erase(event.value);
      } else {
        members.insert(event.value);
      }
      value.count = members.size();
      return;
    }
  }
  UM_CHECK(false);
}

void PartitionState::EvaluateThresholds(const CompiledSchema& schema, const BatchEvent& event,
                                        uint64_t offset, AggValue& total,
                                        ApplyOutput* output) const {
  const std::vector<Threshold>& thresholds = schema.thresholds();
  UM_CHECK_LE(thresholds.size(), kThresholdsPerMetricMax);
  const uint64_t current = CurrentValue(schema.agg_type(), total);
  // Bits of thresholds that no longer exist are cleared: bit i <=> threshold i is crossed.
  uint64_t flags = total.alert_flags & ((uint64_t{1} << thresholds.size()) - 1);
  for (size_t i = 0; i < thresholds.size(); ++i) {
    const uint64_t bit = uint64_t{1} << i;
    if (current < thresholds[i].value) {
      flags &= ~bit;
      continue;
    }
    if ((flags & bit) != 0 && !thresholds[i].recurring) continue;
    flags |= bit;
    output->crossings.push_back(AlertCrossing{event.account_id, schema.code(),
                                              static_cast<uint32_t>(i), thresholds[i].code, current,
                                              event.timestamp_ns, offset});
  }
  total.alert_flags = flags;
}

void PartitionState::ApplyRetention(int64_t cutoff_ns, ApplyOutput* output) {
  retention_cutoff_ns_ = std::max(retention_cutoff_ns_, cutoff_ns);
  // Slot order is a function of the log, and eviction is per bucket, so the visiting order
  // does not matter for the result.
  for (uint32_t slot = 0; slot < series_.size(); ++slot) {
    Series& series = series_[slot];
    if (!series.live) continue;
    auto& buckets = series.buckets;
    const size_t before = buckets.size();
    for (size_t i = buckets.size(); i-- > 0;) {
      if (buckets[i].range.end_ns > cutoff_ns) continue;
      aggregate_key_count_ -= 1 + buckets[i].slices.size();
      buckets.erase(buckets.begin() + i);
    }
    output->buckets_evicted += before - buckets.size();
    if (!buckets.empty()) continue;
    series_index_.Erase(SeriesKey{series.account_id, series.metric_id});
    series.live = false;
    series.buckets.clear();
    free_series_.push_back(slot);
  }
  // Records of these crossings may be deleted by the same sweep: none is recorded again.
  std::erase_if(unconfirmed_crossings_, [cutoff_ns](const UnconfirmedCrossing& unconfirmed) {
    return unconfirmed.crossing.event_timestamp_ns < cutoff_ns;
  });
  absl::erase_if(alert_copies_, [cutoff_ns](const auto& copy) {
    return copy.second.event_timestamp_ns < cutoff_ns;
  });
  output->retention_cutoffs_ns.push_back(cutoff_ns);
}

void PartitionState::KeepAlertCopies(const AlertCopies& copies) {
  // A copy sent twice (its first append's outcome was unknown) is the same record: the
  // first one is kept. Records older than the retention cutoff are not kept at all.
  uint64_t& end = alert_copy_ends_[copies.recorder];
  end = std::max(end, copies.records.back().offset + 1);
  for (const AlertCopy& record : copies.records) {
    if (record.crossing.event_timestamp_ns < retention_cutoff_ns_) continue;
    alert_copies_.try_emplace(AlertCopyKey{copies.recorder, record.offset}, record.crossing);
  }
}

void PartitionState::ConfirmCrossings(uint64_t through_index) {
  while (!unconfirmed_crossings_.empty() && unconfirmed_crossings_.front().index <= through_index) {
    unconfirmed_crossings_.pop_front();
  }
}

}  // namespace unimeter::metering
