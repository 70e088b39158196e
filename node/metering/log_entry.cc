#include "node/metering/log_entry.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/metering/byte_io.h"

namespace unimeter::metering {
namespace {

constexpr uint8_t kFlagRegistered = 1 << 0;
constexpr uint8_t kFlagServerStamped = 1 << 1;
constexpr uint8_t kFlagNegativeCorrection = 1 << 2;
constexpr uint8_t kFlagIdempotencyKey = 1 << 3;
constexpr uint8_t kFlagsKnown = 0x0F;

bool HasNul(const std::string& text) { return text.find('\0') != std::string::npos; }

void EncodeBatchEvent(const BatchEvent& event, ByteWriter& writer) {
  uint8_t flags = 0;
  if (event.registered) flags |= kFlagRegistered;
  if (event.server_stamped) flags |= kFlagServerStamped;
  if (event.negative_correction) flags |= kFlagNegativeCorrection;
  if (event.idempotency_key.has_value()) flags |= kFlagIdempotencyKey;
  UM_CHECK_LE(event.properties.size(), kPropertiesPerEventMax);
  UM_CHECK_LE(event.metric_code.size(), kMetricCodeBytesMax);
  writer.U64(event.account_id);
  writer.I64(event.timestamp_ns);
  writer.U64(event.value);
  writer.U8(static_cast<uint8_t>(event.operation));
  writer.U8(flags);
  writer.U8(static_cast<uint8_t>(event.dedup_class));
  writer.U8(static_cast<uint8_t>(event.properties.size()));
  if (event.idempotency_key.has_value()) {
    writer.U64(event.idempotency_key->high);
    writer.U64(event.idempotency_key->low);
  }
  writer.String8(event.metric_code);
  for (const Property& property : event.properties) {
    writer.String8(property.key);
    writer.String8(property.value);
  }
}

void EncodeBatch(const EventBatch& batch, ByteWriter& writer) {
  UM_CHECK_LE(batch.events.size(), kRequestEventsMax);
  writer.I64(batch.accept_time_ns);
  writer.U64(batch.first_offset);
  writer.U32(static_cast<uint32_t>(batch.events.size()));
  for (const BatchEvent& event : batch.events) EncodeBatchEvent(event, writer);
}

// Checks the rules a well-formed event must follow; returns an error message or "".
std::string CheckBatchEvent(const BatchEvent& event) {
  if (HasNul(event.metric_code)) return "metric code contains NUL";
  for (const Property& property : event.properties) {
    if (HasNul(property.key) || HasNul(property.value)) return "property contains NUL";
  }
  const bool has_key = event.idempotency_key.has_value();
  switch (event.dedup_class) {
    case DedupClass::kIdempotency:
      if (!has_key) return "idempotency dedup class without a key";
      break;
    case DedupClass::kContent:
      if (has_key || event.server_stamped) return "content dedup class on a keyed or stamped event";
      break;
    case DedupClass::kNone:
      if (has_key || !event.server_stamped) return "no dedup class on a client-timestamped event";
      break;
  }
  return "";
}

absl::Status DecodeBatchEvent(ByteReader& reader, size_t* properties_total, BatchEvent* event) {
  uint8_t operation = 0;
  uint8_t flags = 0;
  uint8_t dedup_class = 0;
  uint8_t props_count = 0;
  if (!reader.U64(&event->account_id) || !reader.I64(&event->timestamp_ns) ||
      !reader.U64(&event->value) || !reader.U8(&operation) || !reader.U8(&flags) ||
      !reader.U8(&dedup_class) || !reader.U8(&props_count)) {
    return absl::DataLossError("truncated event");
  }
  if (operation > kOperationTypeMax) return absl::DataLossError("bad operation");
  if ((flags & ~kFlagsKnown) != 0) return absl::DataLossError("unknown event flags");
  if (dedup_class > static_cast<uint8_t>(DedupClass::kIdempotency)) {
    return absl::DataLossError("bad dedup class");
  }
  event->operation = static_cast<OperationType>(operation);
  event->registered = (flags & kFlagRegistered) != 0;
  event->server_stamped = (flags & kFlagServerStamped) != 0;
  event->negative_correction = (flags & kFlagNegativeCorrection) != 0;
  event->dedup_class = static_cast<DedupClass>(dedup_class);
  if ((flags & kFlagIdempotencyKey) != 0) {
    IdempotencyKey key;
    if (!reader.U64(&key.high) || !reader.U64(&key.low)) return absl::DataLossError("truncated");
    event->idempotency_key = key;
  }
  *properties_total += props_count;
  if (*properties_total > kRequestPropertiesMax) {
    return absl::DataLossError("too many properties in batch");
  }
  if (!reader.String8(kMetricCodeBytesMax, &event->metric_code)) {
    return absl::DataLossError("truncated or oversized metric code");
  }
  event->properties.resize(props_count);
  for (Property& property : event->properties) {
    if (!reader.String8(kPropertyKeyBytesMax, &property.key) ||
        !reader.String8(kPropertyValueBytesMax, &property.value)) {
      return absl::DataLossError("truncated or oversized property");
    }
  }
  const std::string problem = CheckBatchEvent(*event);
  if (!problem.empty()) return absl::DataLossError(problem);
  return absl::OkStatus();
}

absl::StatusOr<LogEntry> DecodeBatch(ByteReader& reader) {
  auto batch = std::make_shared<EventBatch>();
  uint32_t count = 0;
  if (!reader.I64(&batch->accept_time_ns) || !reader.U64(&batch->first_offset) ||
      !reader.U32(&count)) {
    return absl::DataLossError("truncated event batch header");
  }
  if (count > kRequestEventsMax) return absl::DataLossError("too many events in batch");
  if (batch->first_offset > UINT64_MAX - count) {
    return absl::DataLossError("event offsets out of range");
  }
  batch->events.resize(count);
  size_t properties_total = 0;
  for (BatchEvent& event : batch->events) {
    absl::Status status = DecodeBatchEvent(reader, &properties_total, &event);
    if (!status.ok()) return status;
  }
  return LogEntry::Events(std::move(batch));
}

void EncodeAlertCopies(const AlertCopies& copies, ByteWriter& writer) {
  UM_CHECK(!copies.records.empty());
  UM_CHECK_LE(copies.records.size(), kAlertCopiesPerEntryMax);
  writer.U32(copies.recorder);
  writer.U32(static_cast<uint32_t>(copies.records.size()));
  for (const AlertCopy& record : copies.records) {
    writer.U64(record.offset);
    EncodeAlertCrossing(record.crossing, writer);
  }
}

absl::StatusOr<LogEntry> DecodeAlertCopies(ByteReader& reader) {
  auto copies = std::make_shared<AlertCopies>();
  uint32_t count = 0;
  if (!reader.U32(&copies->recorder) || !reader.U32(&count)) {
    return absl::DataLossError("truncated alert copies header");
  }
  if (count == 0 || count > kAlertCopiesPerEntryMax) {
    return absl::DataLossError("bad alert copy count");
  }
  copies->records.resize(count);
  for (size_t i = 0; i < count; ++i) {
    AlertCopy& record = copies->records[i];
    if (!reader.U64(&record.offset) || !DecodeAlertCrossing(reader, &record.crossing)) {
      return absl::DataLossError("truncated or malformed alert copy");
    }
    if (i > 0 && record.offset <= copies->records[i - 1].offset) {
      return absl::DataLossError("alert copies out of offset order");
    }
  }
  return LogEntry::CopiesOfAlerts(std::move(copies));
}

absl::StatusOr<LogEntry> DecodeBody(LogEntryKind kind, const RegistryVersion& version,
                                    ByteReader& reader) {
  switch (kind) {
    case LogEntryKind::kEventBatch:
      return DecodeBatch(reader);
    case LogEntryKind::kMetricPut: {
      absl::StatusOr<SchemaRef> schema = DecodeSchema(reader);
      if (!schema.ok()) return schema.status();
      return LogEntry::Put(*std::move(schema), version);
    }
    case LogEntryKind::kMetricDelete: {
      std::string code;
      if (!reader.String8(kMetricCodeBytesMax, &code) || code.empty() || HasNul(code)) {
        return absl::DataLossError("bad metric code in delete");
      }
      return LogEntry::Delete(std::move(code), version);
    }
    case LogEntryKind::kRetentionSweep: {
      int64_t cutoff_ns = 0;
      if (!reader.I64(&cutoff_ns)) return absl::DataLossError("truncated retention sweep");
      return LogEntry::Retention(cutoff_ns);
    }
    case LogEntryKind::kEpochStart: {
      uint64_t epoch = 0;
      if (!reader.U64(&epoch)) return absl::DataLossError("truncated epoch start");
      return LogEntry::StartOfEpoch(epoch);
    }
    case LogEntryKind::kAlertsRecorded: {
      uint64_t through_index = 0;
      if (!reader.U64(&through_index)) return absl::DataLossError("truncated alerts recorded");
      return LogEntry::RecordedAlerts(through_index);
    }
    case LogEntryKind::kAlertCopies:
      return DecodeAlertCopies(reader);
  }
  return absl::DataLossError("unknown entry kind");
}

}  // namespace

LogEntry LogEntry::Events(std::shared_ptr<const EventBatch> batch) {
  UM_CHECK(batch != nullptr);
  return LogEntry(Payload(std::move(batch)));
}
LogEntry LogEntry::Put(SchemaRef schema, RegistryVersion version) {
  UM_CHECK(schema != nullptr);
  return LogEntry(Payload(MetricPut{std::move(schema), version}));
}
LogEntry LogEntry::Delete(std::string code, RegistryVersion version) {
  return LogEntry(Payload(MetricDelete{std::move(code), version}));
}
LogEntry LogEntry::Retention(int64_t cutoff_ns) {
  return LogEntry(Payload(RetentionSweep{cutoff_ns}));
}

LogEntry LogEntry::StartOfEpoch(uint64_t epoch) { return LogEntry(Payload(EpochStart{epoch})); }
LogEntry LogEntry::RecordedAlerts(uint64_t through_index) {
  return LogEntry(Payload(AlertsRecorded{through_index}));
}

LogEntry LogEntry::CopiesOfAlerts(std::shared_ptr<const AlertCopies> copies) {
  UM_CHECK(copies != nullptr);
  return LogEntry(Payload(std::move(copies)));
}

LogEntryKind LogEntry::kind() const { return static_cast<LogEntryKind>(payload_.index() + 1); }
const std::shared_ptr<const EventBatch>& LogEntry::batch() const {
  return std::get<std::shared_ptr<const EventBatch>>(payload_);
}
const MetricPut& LogEntry::put() const { return std::get<MetricPut>(payload_); }
const MetricDelete& LogEntry::del() const { return std::get<MetricDelete>(payload_); }
const RetentionSweep& LogEntry::retention() const { return std::get<RetentionSweep>(payload_); }
const EpochStart& LogEntry::epoch_start() const { return std::get<EpochStart>(payload_); }
const AlertsRecorded& LogEntry::alerts_recorded() const {
  return std::get<AlertsRecorded>(payload_);
}
const AlertCopies& LogEntry::alert_copies() const {
  return *std::get<std::shared_ptr<const AlertCopies>>(payload_);
}

bool LogEntry::operator==(const LogEntry& other) const {
  if (kind() != other.kind()) return false;
  switch (kind()) {
    case LogEntryKind::kEventBatch:
      return *batch() == *other.batch();
    case LogEntryKind::kMetricPut:
      return put().schema->schema() == other.put().schema->schema() &&
             put().version == other.put().version;
    case LogEntryKind::kMetricDelete:
      return del().code == other.del().code && del().version == other.del().version;
    case LogEntryKind::kRetentionSweep:
      return retention().cutoff_ns == other.retention().cutoff_ns;
    case LogEntryKind::kEpochStart:
      return epoch_start().epoch == other.epoch_start().epoch;
    case LogEntryKind::kAlertsRecorded:
      return alerts_recorded().through_index == other.alerts_recorded().through_index;
    case LogEntryKind::kAlertCopies:
      return alert_copies() == other.alert_copies();
  }
  return false;
}

bool DecodeAlertCrossing(ByteReader& reader, AlertCrossing* crossing) {
  return reader.U64(&crossing->account_id) &&
         reader.String8(kMetricCodeBytesMax, &crossing->metric_code) &&
         reader.U32(&crossing->threshold_index) &&
         crossing->threshold_index < kThresholdsPerMetricMax &&
         reader.String8(kThresholdCodeBytesMax, &crossing->threshold_code) &&
         reader.U64(&crossing->value_at_cross) && reader.I64(&crossing->event_timestamp_ns) &&
         reader.U64(&crossing->event_offset);
}

uint64_t PayloadFingerprint(const std::string& metric_code, uint64_t account_id,
                            int64_t client_timestamp_ns, uint64_t value, OperationType operation,
                            bool negative_correction, absl::Span<const Property> properties) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.String8(metric_code);
  writer.U64(account_id);
  writer.I64(client_timestamp_ns);
  writer.U64(value);
  writer.U8(static_cast<uint8_t>(operation));
  writer.U8(negative_correction ? 1 : 0);
  writer.U32(static_cast<uint32_t>(properties.size()));
  for (const Property& property : properties) {
    writer.String8(property.key);
    writer.String8(property.value);
  }
  return Hash64(bytes.data(), bytes.size(), /*seed=*/0x1de5);
}

uint64_t PayloadFingerprint(const BatchEvent& event) {
  return PayloadFingerprint(event.metric_code, event.account_id,
                            event.server_stamped ? 0 : event.timestamp_ns, event.value,
                            event.operation, event.negative_correction, event.properties);
}

std::vector<uint8_t> EncodeLogEntry(const LogEntry& entry) {
  std::vector<uint8_t> bytes;
  AppendLogEntry(entry, &bytes);
  return bytes;
}

void AppendLogEntry(const LogEntry& entry, std::vector<uint8_t>* out) {
  ByteWriter writer(out);
  writer.U8(kLogEntryFormatVersion);
  writer.U8(static_cast<uint8_t>(entry.kind()));
  const RegistryVersion* version = entry.kind() == LogEntryKind::kMetricPut ? &entry.put().version
                                   : entry.kind() == LogEntryKind::kMetricDelete
                                       ? &entry.del().version
                                       : nullptr;
  const bool versioned = version != nullptr && !version->is_zero();
  writer.U16(versioned ? kLogEntryFlagRegistryVersion : 0);
  if (versioned) {
    writer.U64(version->epoch);
    writer.U32(version->sequence);
  }
  switch (entry.kind()) {
    case LogEntryKind::kEventBatch:
      EncodeBatch(*entry.batch(), writer);
      break;
    case LogEntryKind::kMetricPut:
      EncodeSchema(entry.put().schema->schema(), writer);
      break;
    case LogEntryKind::kMetricDelete:
      writer.String8(entry.del().code);
      break;
    case LogEntryKind::kRetentionSweep:
      writer.I64(entry.retention().cutoff_ns);
      break;
    case LogEntryKind::kEpochStart:
      writer.U64(entry.epoch_start().epoch);
      break;
    case LogEntryKind::kAlertsRecorded:
      writer.U64(entry.alerts_recorded().through_index);
      break;
    case LogEntryKind::kAlertCopies:
      EncodeAlertCopies(entry.alert_copies(), writer);
      break;
  }
}

absl::StatusOr<LogEntry> DecodeLogEntry(absl::Span<const uint8_t> bytes) {
  ByteReader reader(bytes.data(), bytes.size());
  uint8_t version = 0;
  uint8_t kind = 0;
  uint16_t reserved = 0;
  if (!reader.U8(&version) || !reader.U8(&kind) || !reader.U16(&reserved)) {
    return absl::DataLossError("log entry shorter than its header");
  }
  if (version != kLogEntryFormatVersion) {
    return absl::DataLossError(absl::StrCat("unknown log entry version ", version));
  }
  if (kind < 1 || kind > static_cast<uint8_t>(LogEntryKind::kAlertCopies) ||
      (reserved & ~kLogEntryFlagRegistryVersion) != 0) {
    return absl::DataLossError("bad log entry header");
  }
  RegistryVersion registry_version;
  if ((reserved & kLogEntryFlagRegistryVersion) != 0) {
    if (kind != static_cast<uint8_t>(LogEntryKind::kMetricPut) &&
        kind != static_cast<uint8_t>(LogEntryKind::kMetricDelete)) {
      return absl::DataLossError("registry version on an entry that is not a registry change");
    }
    if (!reader.U64(&registry_version.epoch) || !reader.U32(&registry_version.sequence) ||
        registry_version.is_zero()) {
      return absl::DataLossError("bad registry version");
    }
  }
  absl::StatusOr<LogEntry> entry =
      DecodeBody(static_cast<LogEntryKind>(kind), registry_version, reader);
  if (!entry.ok()) return entry.status();
  if (reader.left() != 0) return absl::DataLossError("trailing bytes after log entry");
  return entry;
}

}  // namespace unimeter::metering
