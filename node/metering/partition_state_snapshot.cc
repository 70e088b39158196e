// Digest() and the snapshot encoding of node/metering/partition_state.h
// (docs/formats/metering_entries.md, "Snapshot").
#include <algorithm>
#include <iterator>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/base/planted_bugs.h"
#include "node/metering/byte_io.h"
#include "node/metering/partition_state.h"

namespace unimeter::metering {
namespace {

constexpr uint32_t kSnapshotMagic = 0x53504D55;  // "UMPS" little-endian.
// Version 2 appends the unconfirmed crossings, version 3 the registry versions, version 4
// the alert copies; versions 1 to 3 are still read.
constexpr uint32_t kSnapshotVersion = 4;
constexpr uint32_t kSnapshotVersionWithoutCrossings = 1;
constexpr uint32_t kSnapshotVersionWithoutRegistryVersions = 2;
constexpr uint32_t kSnapshotVersionWithoutAlertCopies = 3;

template <typename Writer>
void EncodeAgg(const AggValue& value, Writer& writer) {
  writer.U128(value.sum);
  writer.U64(value.count);
  writer.U64(value.max);
  writer.U64(value.last_value);
  writer.I64(value.last_timestamp_ns);
  writer.U64(value.alert_flags);
  writer.U8(value.has_last ? 1 : 0);
}

bool DecodeAgg(ByteReader& reader, AggValue* value) {
  return reader.U128(&value->sum) && reader.U64(&value->count) && reader.U64(&value->max) &&
         reader.U64(&value->last_value) && reader.I64(&value->last_timestamp_ns) &&
         reader.U64(&value->alert_flags) && reader.Bool(&value->has_last);
}

template <typename Writer>
void EncodeSet(const absl::btree_set<uint64_t>& members, Writer& writer) {
  writer.U64(members.size());
  for (const uint64_t member : members) writer.U64(member);
}

bool DecodeSet(ByteReader& reader, absl::btree_set<uint64_t>* members) {
  uint64_t size = 0;
  if (!reader.U64(&size) || size > reader.left() / 8) return reader.Fail();
  uint64_t previous = 0;
  for (uint64_t i = 0; i < size; ++i) {
    uint64_t member = 0;
    if (!reader.U64(&member) || (i > 0 && member <= previous)) return reader.Fail();
    members->insert(members->end(), member);
    previous = member;
  }
  return true;
}

}  // namespace

std::vector<uint32_t> PartitionState::SortedLiveSeries() const {
  std::vector<uint32_t> slots;
  for (uint32_t slot = 0; slot < series_.size(); ++slot) {
    if (series_[slot].live) slots.push_back(slot);
  }
  std::sort(slots.begin(), slots.end(), [this](uint32_t a, uint32_t b) {
    const Series& x = series_[a];
    const Series& y = series_[b];
    return x.account_id != y.account_id ? x.account_id < y.account_id : x.metric_id < y.metric_id;
  });
  return slots;
}

template <typename Writer>
void PartitionState::EncodeState(Writer& writer) const {
  writer.U32(options_.partition_id);
  writer.U64(applied_index_);
  writer.U64(next_offset_);
  writer.I64(log_time_ns_);
  writer.I64(retention_cutoff_ns_);
  writer.U32(static_cast<uint32_t>(metrics_.size()));
  for (const Metric& metric : metrics_) {
    writer.String8(metric.code);
    writer.U8(metric.schema != nullptr ? 1 : 0);
    if (metric.schema == nullptr) continue;
    std::vector<uint8_t> schema_bytes;
    ByteWriter schema_writer(&schema_bytes);
    EncodeSchema(metric.schema->schema(), schema_writer);
    writer.Raw(schema_bytes.data(), schema_bytes.size());
  }
  const std::vector<uint32_t> slots = SortedLiveSeries();
  writer.U64(slots.size());
  for (const uint32_t slot : slots) {
    const Series& series = series_[slot];
    writer.U64(series.account_id);
    writer.U32(series.metric_id);
    writer.U32(static_cast<uint32_t>(series.buckets.size()));
    for (const Bucket& bucket : series.buckets) {
      writer.I64(bucket.range.start_ns);
      writer.I64(bucket.range.end_ns);
      EncodeAgg(bucket.total, writer);
      writer.U32(static_cast<uint32_t>(bucket.slices.size()));
      for (const SliceAgg& slice : bucket.slices.view()) {
        writer.U64(slice.slice_id);
        EncodeAgg(slice.value, writer);
      }
      writer.U8(bucket.unique != nullptr ? 1 : 0);
      if (bucket.unique == nullptr) continue;
      EncodeSet(bucket.unique->total, writer);
      writer.U64(bucket.unique->slices.size());
      for (const auto& [slice_id, members] : bucket.unique->slices) {
        writer.U64(slice_id);
        EncodeSet(members, writer);
      }
    }
  }
  if constexpr (std::is_same_v<Writer, ByteWriter>) {
    if (BugPlanted(PlantedBug::kDedupNotInSnapshot)) {
      DedupIndex().Encode(writer);
      return;
    }
  }
  dedup_.Encode(writer);
  writer.U64(unconfirmed_crossings_.size());
  for (const UnconfirmedCrossing& unconfirmed : unconfirmed_crossings_) {
    writer.U64(unconfirmed.index);
    EncodeAlertCrossing(unconfirmed.crossing, writer);
  }
  writer.U32(static_cast<uint32_t>(metrics_.size()));
  for (const Metric& metric : metrics_) {
    writer.U64(metric.version.epoch);
    writer.U32(metric.version.sequence);
  }
  writer.U64(alert_copies_.size());
  for (const auto& [key, crossing] : alert_copies_) {
    writer.U32(key.first);
    writer.U64(key.second);
    EncodeAlertCrossing(crossing, writer);
  }
  writer.U32(static_cast<uint32_t>(alert_copy_ends_.size()));
  for (const auto& [recorder, end] : alert_copy_ends_) {
    writer.U32(recorder);
    writer.U64(end);
  }
}

uint64_t PartitionState::Digest() const {
  DigestWriter writer;
  EncodeState(writer);
  return writer.Finish();
}

std::vector<uint8_t> PartitionState::EncodeSnapshot() const {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.U32(kSnapshotMagic);
  writer.U32(kSnapshotVersion);
  EncodeState(writer);
  const uint32_t crc = Crc32c(bytes.data(), bytes.size());
  writer.U32(crc);
  return bytes;
}

absl::StatusOr<std::unique_ptr<PartitionState>> PartitionState::DecodeSnapshot(
    const PartitionOptions& options, absl::Span<const uint8_t> bytes) {
  if (bytes.size() < 12) return absl::DataLossError("snapshot too short");
  const size_t body_size = bytes.size() - 4;
  if (Crc32c(bytes.data(), body_size) != LoadU32(bytes.data() + body_size)) {
    return absl::DataLossError("snapshot checksum mismatch");
  }
  ByteReader reader(bytes.data(), body_size);
  uint32_t magic = 0;
  uint32_t version = 0;
  uint32_t partition_id = 0;
  if (!reader.U32(&magic) || !reader.U32(&version) || magic != kSnapshotMagic ||
      version < kSnapshotVersionWithoutCrossings || version > kSnapshotVersion ||
      !reader.U32(&partition_id)) {
    return absl::DataLossError("bad snapshot header");
  }
  if (partition_id != options.partition_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot of partition ", partition_id, ", expected ", options.partition_id));
  }
  auto state = std::make_unique<PartitionState>(options);
  absl::Status status = state->DecodeState(reader, version);
  if (!status.ok()) return status;
  if (reader.left() != 0) return absl::DataLossError("trailing bytes in snapshot");
  return state;
}

absl::Status PartitionState::DecodeState(ByteReader& reader, uint32_t version) {
  uint32_t metric_count = 0;
  if (!reader.U64(&applied_index_) || !reader.U64(&next_offset_) || !reader.I64(&log_time_ns_) ||
      !reader.I64(&retention_cutoff_ns_) || !reader.U32(&metric_count) ||
      metric_count > reader.left()) {
    return absl::DataLossError("truncated snapshot state header");
  }
  for (uint32_t id = 0; id < metric_count; ++id) {
    std::string code;
    bool has_schema = false;
    if (!reader.String8(kMetricCodeBytesMax, &code) || !reader.Bool(&has_schema) ||
        metric_ids_.Find(code) != nullptr) {
      return absl::DataLossError("bad metric in snapshot");
    }
    InternCode(code);
    if (!has_schema) continue;
    absl::StatusOr<SchemaRef> schema = DecodeSchema(reader);
    if (!schema.ok() || (*schema)->code() != code) return absl::DataLossError("bad schema");
    metrics_[id].schema = *std::move(schema);
  }
  uint64_t series_count = 0;
  if (!reader.U64(&series_count) || series_count > reader.left() / 16) {
    return absl::DataLossError("bad series count in snapshot");
  }
  for (uint64_t s = 0; s < series_count; ++s) {
    uint64_t account_id = 0;
    uint32_t metric_id = 0;
    uint32_t bucket_count = 0;
    if (!reader.U64(&account_id) || !reader.U32(&metric_id) || !reader.U32(&bucket_count) ||
        metric_id >= metrics_.size() || bucket_count == 0 ||
        series_index_.Find(SeriesKey{account_id, metric_id}) != nullptr) {
      return absl::DataLossError("bad series in snapshot");
    }
    Series& series = FindOrCreateSeries(account_id, metric_id);
    for (uint32_t b = 0; b < bucket_count; ++b) {
      BucketRange range;
      if (!reader.I64(&range.start_ns) || !reader.I64(&range.end_ns) ||
          range.start_ns >= range.end_ns ||
          (!series.buckets.empty() && !(series.buckets.back().range < range))) {
        return absl::DataLossError("bad bucket in snapshot");
      }
      Bucket& bucket = FindOrCreateBucket(series, range);
      uint32_t slice_count = 0;
      if (!DecodeAgg(reader, &bucket.total) || !reader.U32(&slice_count) ||
          slice_count > reader.left() / 8) {
        return absl::DataLossError("bad bucket total in snapshot");
      }
      for (uint32_t i = 0; i < slice_count; ++i) {
        SliceAgg slice;
        if (!reader.U64(&slice.slice_id) || !DecodeAgg(reader, &slice.value) ||
            (!bucket.slices.empty() && slice.slice_id <= bucket.slices.view().back().slice_id)) {
          return absl::DataLossError("bad slice in snapshot");
        }
        bucket.slices.mutable_view().push_back(slice);
        ++aggregate_key_count_;
      }
      bool has_unique = false;
      if (!reader.Bool(&has_unique)) return absl::DataLossError("truncated bucket");
      if (!has_unique) continue;
      bucket.unique = std::make_unique<UniqueSets>();
      uint64_t set_count = 0;
      if (!DecodeSet(reader, &bucket.unique->total) || !reader.U64(&set_count) ||
          set_count > reader.left() / 16) {
        return absl::DataLossError("bad unique sets in snapshot");
      }
      for (uint64_t i = 0; i < set_count; ++i) {
        uint64_t slice_id = 0;
        if (!reader.U64(&slice_id) || bucket.unique->slices.count(slice_id) != 0 ||
            !DecodeSet(reader, &bucket.unique->slices[slice_id])) {
          return absl::DataLossError("bad unique set in snapshot");
        }
      }
    }
  }
  if (!dedup_.Decode(reader)) return absl::DataLossError("bad dedup index in snapshot");
  if (version == kSnapshotVersionWithoutCrossings) return absl::OkStatus();
  uint64_t crossing_count = 0;
  if (!reader.U64(&crossing_count) || crossing_count > reader.left() / 40) {
    return absl::DataLossError("bad crossing count in snapshot");
  }
  for (uint64_t i = 0; i < crossing_count; ++i) {
    UnconfirmedCrossing unconfirmed;
    if (!reader.U64(&unconfirmed.index) || !DecodeAlertCrossing(reader, &unconfirmed.crossing) ||
        unconfirmed.index > applied_index_ ||
        (!unconfirmed_crossings_.empty() &&
         unconfirmed.index < unconfirmed_crossings_.back().index)) {
      return absl::DataLossError("bad unconfirmed crossing in snapshot");
    }
    unconfirmed_crossings_.push_back(std::move(unconfirmed));
  }
  if (version == kSnapshotVersionWithoutRegistryVersions) return absl::OkStatus();
  uint32_t versioned_count = 0;
  if (!reader.U32(&versioned_count) || versioned_count != metrics_.size()) {
    return absl::DataLossError("bad registry versions in snapshot");
  }
  for (Metric& metric : metrics_) {
    if (!reader.U64(&metric.version.epoch) || !reader.U32(&metric.version.sequence)) {
      return absl::DataLossError("truncated registry versions in snapshot");
    }
  }
  if (version == kSnapshotVersionWithoutAlertCopies) return absl::OkStatus();
  uint64_t copy_count = 0;
  if (!reader.U64(&copy_count) || copy_count > reader.left()) {
    return absl::DataLossError("bad alert copy count in snapshot");
  }
  for (uint64_t i = 0; i < copy_count; ++i) {
    AlertCopyKey key;
    AlertCrossing crossing;
    if (!reader.U32(&key.first) || !reader.U64(&key.second) ||
        !DecodeAlertCrossing(reader, &crossing)) {
      return absl::DataLossError("truncated alert copy in snapshot");
    }
    if (!alert_copies_.empty() && !(std::prev(alert_copies_.end())->first < key)) {
      return absl::DataLossError("alert copies out of order in snapshot");
    }
    alert_copies_.emplace_hint(alert_copies_.end(), key, std::move(crossing));
  }
  uint32_t recorder_count = 0;
  if (!reader.U32(&recorder_count) || recorder_count > reader.left()) {
    return absl::DataLossError("bad alert copy ends in snapshot");
  }
  for (uint32_t i = 0; i < recorder_count; ++i) {
    uint32_t recorder = 0;
    uint64_t end = 0;
    if (!reader.U32(&recorder) || !reader.U64(&end) ||
        (!alert_copy_ends_.empty() && recorder <= alert_copy_ends_.rbegin()->first)) {
      return absl::DataLossError("bad alert copy end in snapshot");
    }
    alert_copy_ends_.emplace_hint(alert_copy_ends_.end(), recorder, end);
  }
  for (const auto& [key, crossing] : alert_copies_) {
    const auto end = alert_copy_ends_.find(key.first);
    if (end == alert_copy_ends_.end() || key.second >= end->second) {
      return absl::DataLossError("alert copy beyond its recorder's end in snapshot");
    }
  }
  return absl::OkStatus();
}

}  // namespace unimeter::metering
