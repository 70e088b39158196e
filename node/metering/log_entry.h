// node/metering/log_entry.h
//
// The replicated entries of one partition log (docs/formats/metering_entries.md) and
// their fixed little-endian encoding (format version 1; never protobuf, never a memcpy of
// a struct). Every decision of the owner travels inside the entry, so every replica
// applying the same entries reaches the same state:
//
//   EventBatch      accepted events with their final timestamps, registered flags, dedup
//                   key classes and offsets (first_offset + position).
//   MetricPut       a full schema; later events of the partition are interpreted under it.
//   MetricDelete    removes a schema.
//                   Both carry the registry version the change was ordered at: a partition
//                   applies a change only if its version is not below the one it holds for
//                   the code, so every partition ends with the same schema whatever order
//                   concurrent changes reach it in (docs/replication.md, "Metric registry").
//   RetentionSweep  evicts buckets that end at or before cutoff_ns.
//   EpochStart      a new owner's first entry; no effect on the state.
//   AlertsRecorded  the owner's alert log durably holds every crossing of the entries up to
//                   through_index: replicas stop keeping them as unconfirmed.
//   AlertCopies     copies of records of one node's alert log, with their offsets: every
//                   replica keeps them, so a node that lost its disk restores its alert log
//                   from them (docs/replication.md, "Alerts").
//
// Payloads are immutable and shared (std::shared_ptr<const ...>), so an entry can be handed
// to the state machine, the event store and the log without copies.
//
// DecodeLogEntry validates everything and never reads past its input: DataLoss on
// truncated or malformed bytes, InvalidArgument on a well-formed entry breaking a rule.
#ifndef UNIMETER_NODE_METERING_LOG_ENTRY_H_
#define UNIMETER_NODE_METERING_LOG_ENTRY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/metering/byte_io.h"
#include "node/metering/schema.h"
#include "node/metering/types.h"

namespace unimeter::metering {

inline constexpr uint8_t kLogEntryFormatVersion = 1;
inline constexpr size_t kLogEntryHeaderSizeBytes = 4;
// The header's flags field (once "reserved = 0"): a MetricPut or MetricDelete with a
// non-zero registry version carries it (u64 epoch, u32 sequence) right after the header.
inline constexpr uint16_t kLogEntryFlagRegistryVersion = 1;

enum class LogEntryKind : uint8_t {
  kEventBatch = 1,
  kMetricPut = 2,
  kMetricDelete = 3,
  kRetentionSweep = 4,
  kEpochStart = 5,
  kAlertsRecorded = 6,
  kAlertCopies = 7,
};

// Which dedup key an accepted event registers (product-semantics 8.4).
enum class DedupClass : uint8_t {
  kNone = 0,         // Server-stamped without idempotency key: never deduplicated.
  kContent = 1,      // (metric code, account, timestamp, value): client timestamp != 0.
  kIdempotency = 2,  // The client's 128-bit idempotency key (takes precedence).
};

// One accepted event with the owner's decisions.
struct BatchEvent {
  uint64_t account_id = 0;
  std::string metric_code;
  uint64_t value = 0;
  int64_t timestamp_ns = 0;  // Final: stamped accept_time_ns + position if sent as 0.
  OperationType operation = OperationType::kNone;
  bool registered = false;      // The metric had a schema at acceptance.
  bool server_stamped = false;  // The client sent timestamp 0.
  bool negative_correction = false;
  DedupClass dedup_class = DedupClass::kNone;
  std::optional<IdempotencyKey> idempotency_key;
  std::vector<Property> properties;
  bool operator==(const BatchEvent&) const = default;
};

struct EventBatch {
  int64_t accept_time_ns = 0;  // The owner's wall clock at acceptance.
  uint64_t first_offset = 0;   // Offset of events[0]; events[i] has first_offset + i.
  std::vector<BatchEvent> events;
  bool operator==(const EventBatch&) const = default;
};

// The order of registry changes: (epoch of partition 0 at its owner, that owner's sequence
// within the epoch). {0, 0} (a single node, or entries written before versions existed):
// ordered by the log alone.
struct RegistryVersion {
  uint64_t epoch = 0;
  uint32_t sequence = 0;
  bool is_zero() const { return epoch == 0 && sequence == 0; }
  auto operator<=>(const RegistryVersion&) const = default;
};

struct MetricPut {
  SchemaRef schema;  // Never null.
  RegistryVersion version;
};

struct MetricDelete {
  std::string code;
  RegistryVersion version;
};

struct RetentionSweep {
  int64_t cutoff_ns = 0;
};

// The first entry a new owner appends in its epoch: committing it commits everything
// before it (docs/replication.md). Changes no state.
struct EpochStart {
  uint64_t epoch = 0;
};

// Appended by an owner once its alert log durably holds every crossing made by the entries
// at or below through_index (product-semantics 7.2). Until then every replica keeps those
// crossings as unconfirmed, and a new owner records them (docs/replication.md, "Alerts").
struct AlertsRecorded {
  uint64_t through_index = 0;
};

// One threshold crossing of an unfiltered total (product-semantics 7.2).
struct AlertCrossing {
  uint64_t account_id = 0;
  std::string metric_code;
  uint32_t threshold_index = 0;
  std::string threshold_code;
  uint64_t value_at_cross = 0;  // SUM clamped to 2^64 - 1.
  int64_t event_timestamp_ns = 0;
  uint64_t event_offset = 0;
  bool operator==(const AlertCrossing&) const = default;
};

// The fixed encoding of a crossing, shared by log entries, partition snapshots and the
// node's alert records: u64 account_id, str8 metric_code, u32 threshold_index, str8 threshold_code,
// u64 value_at_cross, i64 event_timestamp_ns, u64 event_offset.
template <typename Writer>
void EncodeAlertCrossing(const AlertCrossing& crossing, Writer& writer) {
  writer.U64(crossing.account_id);
  writer.String8(crossing.metric_code);
  writer.U32(crossing.threshold_index);
  writer.String8(crossing.threshold_code);
  writer.U64(crossing.value_at_cross);
  writer.I64(crossing.event_timestamp_ns);
  writer.U64(crossing.event_offset);
}
// False on truncated bytes, an oversized code or a threshold index out of range.
bool DecodeAlertCrossing(ByteReader& reader, AlertCrossing* crossing);

// One record of a node's alert log: its offset there and its crossing.
struct AlertCopy {
  uint64_t offset = 0;
  AlertCrossing crossing;
  bool operator==(const AlertCopy&) const = default;
};

inline constexpr size_t kAlertCopiesPerEntryMax = 1024;

// Appended by `recorder` to a partition it serves once the records are durable in its own
// alert log; committed, they are on a majority, and every replica keeps them until
// retention drops them. Records ascending by offset, 1..kAlertCopiesPerEntryMax of them.
struct AlertCopies {
  uint32_t recorder = 0;
  std::vector<AlertCopy> records;
  bool operator==(const AlertCopies&) const = default;
};

class LogEntry {
 public:
  using Payload =
      std::variant<std::shared_ptr<const EventBatch>, MetricPut, MetricDelete, RetentionSweep,
                   EpochStart, AlertsRecorded, std::shared_ptr<const AlertCopies>>;

  static LogEntry Events(std::shared_ptr<const EventBatch> batch);
  static LogEntry Put(SchemaRef schema, RegistryVersion version = {});
  static LogEntry Delete(std::string code, RegistryVersion version = {});
  static LogEntry Retention(int64_t cutoff_ns);
  static LogEntry StartOfEpoch(uint64_t epoch);
  static LogEntry RecordedAlerts(uint64_t through_index);
  static LogEntry CopiesOfAlerts(std::shared_ptr<const AlertCopies> copies);

  LogEntryKind kind() const;
  const Payload& payload() const { return payload_; }
  // REQUIRES: kind() matches.
  const std::shared_ptr<const EventBatch>& batch() const;
  const MetricPut& put() const;
  const MetricDelete& del() const;
  const RetentionSweep& retention() const;
  const EpochStart& epoch_start() const;
  const AlertsRecorded& alerts_recorded() const;
  const AlertCopies& alert_copies() const;

  // Structural equality (schemas and batches compared by value).
  bool operator==(const LogEntry& other) const;

 private:
  explicit LogEntry(Payload payload) : payload_(std::move(payload)) {}
  Payload payload_;
};

// The payload fingerprint that detects a reused idempotency key with a different payload:
// a fixed hash over (code, account, client timestamp, value, operation, correction sign,
// properties). `client_timestamp_ns` is the timestamp as sent (0 when server-stamped).
uint64_t PayloadFingerprint(const std::string& metric_code, uint64_t account_id,
                            int64_t client_timestamp_ns, uint64_t value, OperationType operation,
                            bool negative_correction, absl::Span<const Property> properties);
uint64_t PayloadFingerprint(const BatchEvent& event);

std::vector<uint8_t> EncodeLogEntry(const LogEntry& entry);
// Appends the same encoding to `out` (callers reuse one buffer).
void AppendLogEntry(const LogEntry& entry, std::vector<uint8_t>* out);
absl::StatusOr<LogEntry> DecodeLogEntry(absl::Span<const uint8_t> bytes);

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_LOG_ENTRY_H_
