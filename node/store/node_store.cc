#include "node/store/node_store.h"

#include <algorithm>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/endian.h"
#include "node/metering/byte_io.h"

namespace unimeter {
namespace {

using metering::ByteReader;
using metering::ByteWriter;

// Version 1 held one event per key; version 2 holds a group of one account's events.
constexpr uint8_t kStoredEventVersion1 = 1;
constexpr uint8_t kStoredEventGroupVersion = 2;
constexpr uint8_t kAlertRecordVersion = 1;
constexpr uint8_t kMetaVersion = 1;
constexpr char kNodeMetaKey[] = "n";
constexpr char kPeerRecordsKey[] = "r";

// What an applied entry weighs against retained_events_max: its events, at least 1.
size_t TailWeight(const metering::LogEntry& entry) {
  if (entry.kind() != metering::LogEntryKind::kEventBatch) return 1;
  return std::max<size_t>(1, entry.batch()->events.size());
}

// Appends `value` big-endian, so keys sort by it.
void AppendBigEndian64(uint64_t value, std::string* out) {
  for (int i = 0; i < 8; ++i) {
    out->push_back(static_cast<char>(value >> (56 - 8 * i)));
  }
}

uint64_t LoadBigEndian64(const char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}

std::string PartitionKey(uint32_t partition, char suffix) {
  return absl::StrCat("p", std::string(1, static_cast<char>(partition)), std::string(1, suffix));
}

std::string AlertKey(uint64_t offset) {
  std::string key = "a";
  AppendBigEndian64(offset, &key);
  return key;
}

std::string ToString(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

absl::Span<const uint8_t> AsBytes(absl::string_view text) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// Partition meta: version u8, applied index u64, epoch of the applied entry u64.
std::string EncodePartitionMeta(uint64_t applied_index, uint64_t epoch) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.U8(kMetaVersion);
  writer.U64(applied_index);
  writer.U64(epoch);
  return ToString(bytes);
}

// A meta value holding one offset: version u8, offset u64. The node meta holds the next
// alert offset; a partition's events meta the offset below which every event of the
// partition was written (or deliberately left out as expired) by a flush.
std::string EncodeOffsetMeta(uint64_t offset) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.U8(kMetaVersion);
  writer.U64(offset);
  return ToString(bytes);
}

// The stored-event encoding of `event` at `offset` (without a version byte). `Event` is a
// StoredEvent or an applied metering::BatchEvent (same field names), so checkpoints encode
// straight from the applied batches without a copy.
template <typename Event>
void AppendStoredEventBody(uint64_t offset, const Event& event, ByteWriter& writer) {
  writer.U64(offset);
  writer.I64(event.timestamp_ns);
  writer.U64(event.account_id);
  writer.String8(event.metric_code);
  writer.U64(event.value);
  writer.U8(static_cast<uint8_t>(event.operation));
  writer.U8((event.registered ? 1 : 0) | (event.negative_correction ? 2 : 0));
  writer.U8(static_cast<uint8_t>(event.properties.size()));
  for (const metering::Property& property : event.properties) {
    writer.String8(property.key);
    writer.String8(property.value);
  }
}

// A version-2 group of `count` events (1..kStoredGroupEventsMax), ascending by offset;
// `at(i)` returns the i-th as a pair (offset, event), the event as AppendStoredEventBody
// takes it.
template <typename EventAt>
void AppendStoredEventGroup(size_t count, EventAt at, ByteWriter& writer) {
  UM_CHECK_GT(count, 0u);
  UM_CHECK_LE(count, kStoredGroupEventsMax);
  writer.U8(kStoredEventGroupVersion);
  writer.U16(static_cast<uint16_t>(count));
  for (size_t i = 0; i < count; ++i) {
    const auto [offset, event] = at(i);
    AppendStoredEventBody(offset, *event, writer);
  }
}

bool ReadStoredEventBody(ByteReader& reader, StoredEvent* event) {
  uint8_t flags = 0;
  uint8_t property_count = 0;
  if (!reader.U64(&event->offset) || !reader.I64(&event->timestamp_ns) ||
      !reader.U64(&event->account_id) ||
      !reader.String8(metering::kMetricCodeBytesMax, &event->metric_code) ||
      !reader.U64(&event->value) || !reader.U8(&event->operation) || !reader.U8(&flags) ||
      (flags & ~3u) != 0 || !reader.U8(&property_count)) {
    return false;
  }
  event->registered = (flags & 1) != 0;
  event->negative_correction = (flags & 2) != 0;
  event->properties.resize(property_count);
  for (metering::Property& property : event->properties) {
    if (!reader.String8(metering::kPropertyKeyBytesMax, &property.key) ||
        !reader.String8(metering::kPropertyValueBytesMax, &property.value)) {
      return false;
    }
  }
  return true;
}

}  // namespace

size_t EstimatedEntryBytes(const metering::LogEntry& entry) {
  if (entry.kind() == metering::LogEntryKind::kEventBatch) {
    return 64 + entry.batch()->events.size() * 96;
  }
  return 512;
}

StoredEvent ToStoredEvent(const metering::EventBatch& batch, size_t i) {
  const metering::BatchEvent& event = batch.events[i];
  return StoredEvent{batch.first_offset + i,
                     event.timestamp_ns,
                     event.account_id,
                     event.metric_code,
                     event.value,
                     static_cast<uint8_t>(event.operation),
                     event.registered,
                     event.negative_correction,
                     event.properties};
}

void AppendStoredEventKey(uint32_t partition, uint64_t account_id, uint64_t offset,
                          std::string* out) {
  UM_CHECK_LT(partition, kPartitionCount);
  out->push_back('e');
  out->push_back(static_cast<char>(partition));
  AppendBigEndian64(account_id, out);
  AppendBigEndian64(offset, out);
}

std::string StoredEventKey(uint32_t partition, uint64_t account_id, uint64_t offset) {
  std::string key;
  AppendStoredEventKey(partition, account_id, offset, &key);
  return key;
}

std::string EncodeStoredEventVersion1(const StoredEvent& event) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.U8(kStoredEventVersion1);
  AppendStoredEventBody(event.offset, event, writer);
  return ToString(bytes);
}

std::string EncodeStoredEvents(absl::Span<const StoredEvent> events) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  AppendStoredEventGroup(
      events.size(), [&](size_t i) { return std::pair(events[i].offset, &events[i]); }, writer);
  return ToString(bytes);
}

absl::Status DecodeStoredEvents(absl::string_view bytes, std::vector<StoredEvent>* events) {
  events->clear();
  ByteReader reader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  uint8_t version = 0;
  uint16_t count = 1;
  if (!reader.U8(&version) ||
      (version != kStoredEventVersion1 && version != kStoredEventGroupVersion) ||
      (version == kStoredEventGroupVersion &&
       (!reader.U16(&count) || count == 0 || count > kStoredGroupEventsMax))) {
    return absl::DataLossError("malformed stored event group header");
  }
  events->resize(count);
  for (size_t i = 0; i < count; ++i) {
    StoredEvent& event = (*events)[i];
    if (!ReadStoredEventBody(reader, &event)) {
      return absl::DataLossError("malformed stored event");
    }
    // One account's events, ascending by offset.
    if (i > 0 && (event.offset <= (*events)[i - 1].offset ||
                  event.account_id != (*events)[i - 1].account_id)) {
      return absl::DataLossError("malformed stored event group: order or account");
    }
  }
  if (reader.left() != 0) {
    return absl::DataLossError("malformed stored event: trailing bytes");
  }
  return absl::OkStatus();
}

std::string EncodeAlertRecord(const AlertRecord& record) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.U8(kAlertRecordVersion);
  writer.U64(record.offset);
  metering::EncodeAlertCrossing(record.crossing, writer);
  return ToString(bytes);
}

absl::StatusOr<AlertRecord> DecodeAlertRecord(absl::string_view text) {
  ByteReader reader(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  AlertRecord record;
  uint8_t version = 0;
  if (!reader.U8(&version) || version != kAlertRecordVersion || !reader.U64(&record.offset) ||
      !metering::DecodeAlertCrossing(reader, &record.crossing) || reader.left() != 0) {
    return absl::DataLossError("malformed alert record");
  }
  return record;
}

NodeStore::NodeStore(Env& env, const NodeStoreOptions& options, StateStore& store)
    : env_(env), options_(options), store_(store) {}

NodeStore::~NodeStore() { env_.CancelTimer(checkpoint_timer_); }

absl::StatusOr<std::unique_ptr<NodeStore>> NodeStore::Open(Env& env,
                                                           const NodeStoreOptions& options) {
  absl::StatusOr<StateStore*> store = env.OpenStateStore();
  if (!store.ok()) {
    return store.status();
  }
  std::unique_ptr<NodeStore> node_store(new NodeStore(env, options, **store));
  if (absl::Status status = node_store->LoadCheckpoint(); !status.ok()) {
    return status;
  }
  absl::Status replay_status = absl::OkStatus();
  NodeStore* raw = node_store.get();
  absl::StatusOr<std::unique_ptr<Wal>> wal =
      Wal::Open(env, options.wal, [&](const WalRecordView& record) {
        if (replay_status.ok()) {
          replay_status = raw->Replay(record);
        }
      });
  if (!wal.ok()) {
    return wal.status();
  }
  if (!replay_status.ok()) {
    return replay_status;
  }
  node_store->wal_ = std::move(*wal);
  node_store->checkpoint_start_position_ = node_store->wal_->appended_position();
  node_store->FindRecordedUnconfirmed();
  env.Log(absl::StrCat("node store open: replayed ", node_store->stats_.entries_replayed,
                       " entries, ", node_store->alert_next_offset_, " alert records"));
  return node_store;
}

absl::Status NodeStore::LoadCheckpoint() {
  absl::StatusOr<std::optional<std::string>> node_meta = store_.Get(kNodeMetaKey);
  if (!node_meta.ok()) {
    return node_meta.status();
  }
  if (node_meta->has_value()) {
    ByteReader reader(reinterpret_cast<const uint8_t*>((*node_meta)->data()), (*node_meta)->size());
    uint8_t version = 0;
    if (!reader.U8(&version) || version != kMetaVersion || !reader.U64(&alert_next_offset_)) {
      return absl::DataLossError("state store: malformed node meta");
    }
    alert_checkpointed_offset_ = alert_next_offset_;
  }
  absl::StatusOr<std::optional<std::string>> peer_records = store_.Get(kPeerRecordsKey);
  if (!peer_records.ok()) {
    env_.Log(absl::StrCat("state store: the records of what peers announced are unreadable (",
                          peer_records.status().ToString(), "): starting without them"));
  } else if (peer_records->has_value()) {
    loaded_peer_records_ = std::move(**peer_records);
  }
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    PartitionLog& log = partitions_[partition];
    const metering::PartitionOptions partition_options = this->partition_options(partition);
    absl::StatusOr<std::optional<std::string>> meta = store_.Get(PartitionKey(partition, 'm'));
    absl::StatusOr<std::optional<std::string>> snapshot = store_.Get(PartitionKey(partition, 's'));
    if (!meta.ok() || !snapshot.ok()) {
      return !meta.ok() ? meta.status() : snapshot.status();
    }
    if (!meta->has_value()) {
      log.state = std::make_unique<metering::PartitionState>(partition_options);
      continue;
    }
    ByteReader reader(reinterpret_cast<const uint8_t*>((*meta)->data()), (*meta)->size());
    uint8_t version = 0;
    uint64_t applied_index = 0;
    if (!reader.U8(&version) || version != kMetaVersion || !reader.U64(&applied_index) ||
        !reader.U64(&log.commit_epoch) || !snapshot->has_value()) {
      return absl::DataLossError(
          absl::StrCat("state store: malformed checkpoint of partition ", partition));
    }
    absl::StatusOr<std::unique_ptr<metering::PartitionState>> state =
        metering::PartitionState::DecodeSnapshot(partition_options, AsBytes(**snapshot));
    if (!state.ok()) {
      return absl::DataLossError(absl::StrCat("state store: snapshot of partition ", partition,
                                              ": ", state.status().message()));
    }
    if ((*state)->applied_index() != applied_index) {
      return absl::DataLossError(
          absl::StrCat("state store: partition ", partition, " snapshot and meta disagree"));
    }
    log.state = std::move(*state);
    log.last_index = applied_index;
    log.last_epoch = log.commit_epoch;
    log.checkpoint_index = applied_index;
  }
  return LoadEventsMeta();
}

absl::Status NodeStore::LoadEventsMeta() {
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    absl::StatusOr<std::optional<std::string>> meta = store_.Get(PartitionKey(partition, 'f'));
    if (!meta.ok()) return meta.status();
    if (!meta->has_value()) continue;
    ByteReader reader(reinterpret_cast<const uint8_t*>((*meta)->data()), (*meta)->size());
    uint8_t version = 0;
    if (!reader.U8(&version) || version != kMetaVersion ||
        !reader.U64(&partitions_[partition].events_stored_end) || reader.left() != 0) {
      return absl::DataLossError(
          absl::StrCat("state store: malformed events meta of partition ", partition));
    }
  }
  return absl::OkStatus();
}

absl::Status NodeStore::Replay(const WalRecordView& record) {
  if (record.kind == kWalKindAlert) {
    if (record.index < alert_next_offset_) {
      return absl::OkStatus();  // Already in the checkpoint.
    }
    absl::StatusOr<AlertRecord> alert = DecodeAlertRecord(
        absl::string_view(reinterpret_cast<const char*>(record.body.data()), record.body.size()));
    if (!alert.ok() || alert->offset != record.index || record.index != alert_next_offset_) {
      return absl::DataLossError(
          absl::StrCat("wal: bad alert record at position ", record.position));
    }
    alerts_.push_back(*alert);
    ++alert_next_offset_;
    return absl::OkStatus();
  }
  if (record.partition >= kPartitionCount) {
    return absl::OkStatus();  // Node-level records of other layers.
  }
  PartitionLog& log = partitions_[record.partition];
  const uint64_t committed = log.state->applied_index();
  switch (record.kind) {
    case kWalKindEntry: {
      if (record.index <= committed) {
        return absl::OkStatus();  // Covered by the checkpoint.
      }
      if (record.index != log.last_index + 1) {
        return absl::DataLossError(absl::StrCat("wal: partition ", record.partition, " entry ",
                                                record.index, " after ", log.last_index,
                                                " at position ", record.position));
      }
      absl::StatusOr<metering::LogEntry> entry = metering::DecodeLogEntry(record.body);
      if (!entry.ok()) {
        return absl::DataLossError(absl::StrCat("wal: undecodable entry at position ",
                                                record.position, ": ", entry.status().message()));
      }
      log.uncommitted.push_back(Pending{record.index, record.epoch, record.position,
                                        std::make_shared<metering::LogEntry>(*std::move(entry))});
      log.last_index = record.index;
      log.last_epoch = std::max(log.last_epoch, record.epoch);
      ++stats_.entries_replayed;
      return absl::OkStatus();
    }
    case kWalKindCommitMark:
      if (record.index > committed) {
        if (record.index > log.last_index) {
          return absl::DataLossError(
              absl::StrCat("wal: commit mark past the log end at position ", record.position));
        }
        // Crossings were recorded when first applied; their alert records replay themselves.
        ApplyUpTo(record.partition, record.index, false);
      }
      return absl::OkStatus();
    case kWalKindTruncate: {
      // Every entry replayed so far past the truncation point was dropped when this record
      // was written, including entries above a later checkpoint that covers the point.
      const uint64_t keep = std::max(record.index, committed);
      if (keep <= log.last_index) {
        while (!log.uncommitted.empty() && log.uncommitted.back().index > keep) {
          log.uncommitted.pop_back();
        }
        log.last_index = keep;
        // The epoch of the entry now last.
        log.last_epoch = keep == record.index ? record.epoch : log.commit_epoch;
      }
      return absl::OkStatus();
    }
    default:
      return absl::OkStatus();  // Other layers' records.
  }
}

absl::Status NodeStore::Append(uint32_t partition, uint64_t index, uint64_t epoch,
                               std::shared_ptr<const metering::LogEntry> entry) {
  PartitionLog& log = partitions_.at(partition);
  UM_CHECK_EQ(index, log.last_index + 1);
  UM_CHECK_GE(epoch, log.last_epoch);
  std::vector<uint8_t>& body = encode_scratch_.entry;
  body.clear();
  metering::AppendLogEntry(*entry, &body);
  absl::StatusOr<uint64_t> position = wal_->Append(kWalKindEntry, partition, index, epoch, body);
  if (!position.ok()) {
    return position.status();
  }
  if (options_.append_observer) options_.append_observer(partition, index, epoch, *position);
  log.uncommitted.push_back(Pending{index, epoch, *position, std::move(entry)});
  log.last_index = index;
  log.last_epoch = epoch;
  ++stats_.entries_appended;
  return absl::OkStatus();
}

void NodeStore::Sync(Wal::SyncDone done) {
  ++stats_.wal_syncs;
  wal_->Sync([this, done = std::move(done)](absl::Status status) mutable {
    // A full disk rolled back every record not yet durable, alert records included: until
    // a checkpoint writes them, the ones in memory are the only copy.
    if (absl::IsResourceExhausted(status)) unlogged_alerts_below_ = alert_next_offset_;
    done(std::move(status));
  });
}

std::vector<AlertRecord> NodeStore::Commit(uint32_t partition, uint64_t index, bool record_alerts) {
  PartitionLog& log = partitions_.at(partition);
  UM_CHECK_LE(log.state->applied_index(), index);
  UM_CHECK_LE(index, log.last_index);
  if (index == log.state->applied_index()) {
    return {};
  }
  std::vector<AlertRecord> alerts = ApplyUpTo(partition, index, record_alerts);
  // The mark is durable with the next group; until then a restart recovers the entries
  // as uncommitted and the replication layer settles them again.
  const absl::StatusOr<uint64_t> position =
      wal_->Append(kWalKindCommitMark, partition, index, log.commit_epoch, {});
  if (!position.ok()) {
    env_.Log(absl::StrCat("commit mark of partition ", partition,
                          " not logged: ", position.status().ToString()));
  }
  return alerts;
}

uint64_t NodeStore::CommitIndexWithin(uint32_t partition, uint64_t target, uint64_t budget) const {
  const PartitionLog& log = partitions_.at(partition);
  const uint64_t applied = log.state->applied_index();
  UM_CHECK_LT(applied, target);
  UM_CHECK_LE(target, log.last_index);
  uint64_t index = applied;
  uint64_t cost = 0;
  for (const Pending& pending : log.uncommitted) {
    if (pending.index > target) break;
    uint64_t entry_cost = 1;
    if (pending.entry->kind() == metering::LogEntryKind::kEventBatch) {
      entry_cost += pending.entry->batch()->events.size();
    }
    if (index > applied && cost + entry_cost > budget) break;
    cost += entry_cost;
    index = pending.index;
  }
  UM_CHECK_GT(index, applied);
  return index;
}

std::vector<AlertRecord> NodeStore::ApplyUpTo(uint32_t partition, uint64_t index,
                                              bool record_alerts) {
  PartitionLog& log = partitions_[partition];
  std::vector<AlertRecord> recorded;
  metering::ApplyOutput output;
  while (log.state->applied_index() < index) {
    UM_CHECK(!log.uncommitted.empty());
    Pending pending = std::move(log.uncommitted.front());
    log.uncommitted.pop_front();
    UM_CHECK_EQ(pending.index, log.state->applied_index() + 1);
    output.Clear();
    log.state->Apply(pending.index, *pending.entry, &output);
    const metering::LogEntryKind kind = pending.entry->kind();
    if (kind == metering::LogEntryKind::kAlertsRecorded ||
        kind == metering::LogEntryKind::kRetentionSweep) {
      ForgetConfirmed(partition);
    }
    if (options_.apply_observer) {
      options_.apply_observer(partition, pending.index, pending.epoch, *pending.entry, *log.state);
    }
    ++stats_.entries_applied;
    log.commit_epoch = pending.epoch;
    log.applied_tail_events += TailWeight(*pending.entry);
    log.applied_tail.push_back(LogRecord{pending.index, pending.epoch, pending.entry});
    while (
        log.applied_tail.size() > options_.retained_entries_max ||
        (log.applied_tail.size() > 1 && log.applied_tail_events > options_.retained_events_max)) {
      log.applied_tail_events -= TailWeight(*log.applied_tail.front().entry);
      log.applied_tail.pop_front();
    }
    log.unsaved_batches.insert(log.unsaved_batches.end(), output.stored_batches.begin(),
                               output.stored_batches.end());
    for (const auto& batch : output.stored_batches) {
      log.unsaved_events += batch->events.size();
      unsaved_event_count_ += batch->events.size();
    }
    log.retention_cutoffs_ns.insert(log.retention_cutoffs_ns.end(),
                                    output.retention_cutoffs_ns.begin(),
                                    output.retention_cutoffs_ns.end());
    // Never a second record of a crossing: an entry recovered as uncommitted made none (its
    // records and its commit mark go to the WAL in one group, below, durable together).
    if (record_alerts) {
      for (const metering::AlertCrossing& crossing : output.crossings) {
        AppendAlert(crossing);
        recorded.push_back(alerts_.back());
      }
    }
  }
  return recorded;
}

std::vector<AlertRecord> NodeStore::RecordUnconfirmed(uint32_t partition) {
  PartitionLog& log = partitions_.at(partition);
  std::vector<AlertRecord> recorded;
  for (const metering::UnconfirmedCrossing& unconfirmed : log.state->unconfirmed_crossings()) {
    if (log.recorded_unconfirmed.contains(CrossingKey::Of(unconfirmed.crossing))) continue;
    AppendAlert(unconfirmed.crossing);
    recorded.push_back(alerts_.back());
  }
  return recorded;
}

void NodeStore::ForgetConfirmed(uint32_t partition) {
  PartitionLog& log = partitions_[partition];
  if (log.recorded_unconfirmed.empty()) return;
  absl::flat_hash_set<CrossingKey> kept;  // determinism-ok: lookup only, never iterated
  for (const metering::UnconfirmedCrossing& unconfirmed : log.state->unconfirmed_crossings()) {
    const CrossingKey key = CrossingKey::Of(unconfirmed.crossing);
    if (log.recorded_unconfirmed.contains(key)) kept.insert(key);
  }
  log.recorded_unconfirmed = std::move(kept);
}

void NodeStore::FindRecordedUnconfirmed() {
  absl::flat_hash_set<CrossingKey> wanted;  // determinism-ok: lookup only, never iterated
  for (const PartitionLog& log : partitions_) {
    for (const metering::UnconfirmedCrossing& unconfirmed : log.state->unconfirmed_crossings()) {
      wanted.insert(CrossingKey::Of(unconfirmed.crossing));
    }
  }
  if (wanted.empty()) return;
  auto note = [&](const metering::AlertCrossing& crossing) {
    const CrossingKey key = CrossingKey::Of(crossing);
    if (!wanted.contains(key)) return;
    partitions_[crossing.account_id % kPartitionCount].recorded_unconfirmed.insert(key);
  };
  // A record that cannot be read counts as absent: its crossing is recorded again (a
  // duplicate is allowed, a loss is not).
  if (alert_checkpointed_offset_ > 0) {
    const absl::Status status =
        store_.Scan(AlertKey(0), AlertKey(alert_checkpointed_offset_),
                    [&](std::string_view, std::string_view value) {
                      absl::StatusOr<AlertRecord> record =
                          DecodeAlertRecord(absl::string_view(value.data(), value.size()));
                      if (record.ok()) note(record->crossing);
                      return true;
                    });
    if (!status.ok()) env_.Log(absl::StrCat("alert log scan at open: ", status.ToString()));
  }
  for (const AlertRecord& record : alerts_) note(record.crossing);
}

void NodeStore::RestoreAlerts(std::vector<AlertRecord> records, uint64_t next_offset,
                              absl::AnyInvocable<void(absl::Status)> done) {
  UM_CHECK(alerts_.empty());
  UM_CHECK(!checkpoint_running_);
  UM_CHECK(records.empty() || records.back().offset < next_offset);
  next_offset = std::max(next_offset, alert_next_offset_);
  WriteBatch batch;
  for (const AlertRecord& record : records) {
    batch.Put(AlertKey(record.offset), EncodeAlertRecord(record));
  }
  batch.Put(kNodeMetaKey, EncodeOffsetMeta(next_offset));
  alert_next_offset_ = next_offset;
  store_.Commit(std::move(batch),
                [this, next_offset, done = std::move(done)](absl::Status status) mutable {
                  if (status.ok()) {
                    alert_checkpointed_offset_ = next_offset;
                    // Restored records of crossings still unconfirmed are not made again.
                    FindRecordedUnconfirmed();
                  }
                  done(status);
                });
}

void NodeStore::AppendAlert(const metering::AlertCrossing& crossing) {
  partitions_[crossing.account_id % kPartitionCount].recorded_unconfirmed.insert(
      CrossingKey::Of(crossing));
  AlertRecord record{alert_next_offset_, crossing};
  const std::string body = EncodeAlertRecord(record);
  const absl::StatusOr<uint64_t> position =
      wal_->Append(kWalKindAlert, kWalNodePartition, record.offset, 0, AsBytes(body));
  // Alert logging must not fail the ingest (product-semantics 7.2); a full tail is retried
  // by the next checkpoint, which writes every record in alerts_ to the state store.
  if (!position.ok()) {
    env_.Log(absl::StrCat("alert record ", record.offset,
                          " not logged yet: ", position.status().ToString()));
    unlogged_alerts_below_ = record.offset + 1;
  }
  alerts_.push_back(std::move(record));
  ++alert_next_offset_;
}

void NodeStore::TruncateAfter(uint32_t partition, uint64_t index) {
  PartitionLog& log = partitions_.at(partition);
  UM_CHECK_LE(log.state->applied_index(), index);
  UM_CHECK_LE(index, log.last_index);
  while (!log.uncommitted.empty() && log.uncommitted.back().index > index) {
    log.uncommitted.pop_back();
  }
  log.last_index = index;
  const std::optional<uint64_t> epoch = EpochAt(partition, index);
  UM_CHECK(epoch.has_value());
  log.last_epoch = *epoch;
  const absl::StatusOr<uint64_t> position =
      wal_->Append(kWalKindTruncate, partition, index, log.last_epoch, {});
  UM_CHECK_OK(position.status());  // A truncation that cannot be logged would resurrect entries.
}

std::optional<uint64_t> NodeStore::EpochAt(uint32_t partition, uint64_t index) const {
  const PartitionLog& log = partitions_.at(partition);
  const uint64_t applied = log.state->applied_index();
  if (index == applied) {
    return log.commit_epoch;
  }
  if (index > applied) {
    if (index > log.last_index) {
      return std::nullopt;
    }
    const Pending& pending = log.uncommitted[index - applied - 1];
    UM_CHECK_EQ(pending.index, index);
    return pending.epoch;
  }
  if (log.applied_tail.empty() || index < log.applied_tail.front().index) {
    return std::nullopt;
  }
  const LogRecord& record = log.applied_tail[index - log.applied_tail.front().index];
  UM_CHECK_EQ(record.index, index);
  return record.epoch;
}

bool NodeStore::EntriesFrom(uint32_t partition, uint64_t from, size_t max_entries, size_t max_bytes,
                            std::vector<LogRecord>* out) const {
  UM_CHECK_GE(from, 1u);
  const PartitionLog& log = partitions_.at(partition);
  const uint64_t applied = log.state->applied_index();
  if (from <= applied && (log.applied_tail.empty() || from < log.applied_tail.front().index)) {
    return false;
  }
  size_t bytes = 0;
  auto add = [&](uint64_t index, uint64_t epoch, const auto& entry) {
    if (out->size() >= max_entries || (bytes >= max_bytes && bytes > 0)) {
      return false;
    }
    bytes += EstimatedEntryBytes(*entry);
    out->push_back(LogRecord{index, epoch, entry});
    return true;
  };
  for (uint64_t index = from; index <= applied; ++index) {
    const LogRecord& record = log.applied_tail[index - log.applied_tail.front().index];
    if (!add(record.index, record.epoch, record.entry)) return true;
  }
  const uint64_t first_uncommitted = std::max(from, applied + 1);
  for (uint64_t index = first_uncommitted; index <= log.last_index; ++index) {
    const Pending& pending = log.uncommitted[index - applied - 1];
    if (!add(pending.index, pending.epoch, pending.entry)) return true;
  }
  return true;
}

metering::PartitionOptions NodeStore::partition_options(uint32_t partition) const {
  metering::PartitionOptions options;
  options.partition_id = partition;
  options.dedup_window_ns = options_.dedup_window_ns;
  options.idempotency_window_ns = options_.idempotency_window_ns;
  return options;
}

void NodeStore::InstallSnapshot(uint32_t partition, std::unique_ptr<metering::PartitionState> state,
                                absl::Span<const uint8_t> encoded, uint64_t epoch,
                                absl::AnyInvocable<void(absl::Status)> done) {
  PartitionLog& log = partitions_.at(partition);
  const uint64_t index = state->applied_index();
  UM_CHECK_GT(index, log.state->applied_index());
  const bool keeps_suffix = EpochAt(partition, index) == std::optional<uint64_t>(epoch);
  WriteBatch batch;
  batch.Put(PartitionKey(partition, 's'),
            std::string(reinterpret_cast<const char*>(encoded.data()), encoded.size()));
  batch.Put(PartitionKey(partition, 'm'), EncodePartitionMeta(index, epoch));
  // The new state takes over in memory now (reads of this replica wait for commit indexes
  // anyway); nothing after it is acknowledged before `done`.
  if (keeps_suffix) {
    while (!log.uncommitted.empty() && log.uncommitted.front().index <= index) {
      log.uncommitted.pop_front();
    }
  } else {
    log.uncommitted.clear();
    log.last_index = index;
    log.last_epoch = epoch;
    // Stale entries after `index` in the WAL must not come back on replay.
    const absl::StatusOr<uint64_t> position =
        wal_->Append(kWalKindTruncate, partition, index, epoch, {});
    UM_CHECK_OK(position.status());
  }
  log.state = std::move(state);
  log.commit_epoch = epoch;
  log.applied_tail.clear();
  log.applied_tail_events = 0;
  ForgetConfirmed(partition);
  store_.Commit(std::move(batch),
                [this, partition, index, done = std::move(done)](absl::Status status) mutable {
                  if (status.ok()) {
                    partitions_[partition].checkpoint_index =
                        std::max(partitions_[partition].checkpoint_index, index);
                  }
                  done(status);
                });
}

absl::StatusOr<std::vector<StoredEvent>> NodeStore::ListEvents(uint64_t account_id,
                                                               int64_t since_ns, int64_t until_ns,
                                                               size_t limit,
                                                               uint64_t first_offset) const {
  const uint32_t partition = static_cast<uint32_t>(account_id % kPartitionCount);
  std::vector<StoredEvent> events;
  if (limit == 0) {
    return events;
  }
  // A group's key is its last offset, so the first group at or after `first_offset`'s key
  // is the first that may hold offsets >= first_offset; groups of an account are disjoint
  // and ascending (docs/formats/node_store.md). Merged by offset all the same, counting
  // each offset once: events a version-1 store held were grouped again once after the
  // upgrade.
  const std::string begin = StoredEventKey(partition, account_id, first_offset);
  const std::string end = StoredEventKey(partition, account_id, UINT64_MAX);
  absl::Status decode_status = absl::OkStatus();
  std::vector<StoredEvent> group;
  absl::btree_map<uint64_t, StoredEvent> merged;
  absl::Status scan_status = store_.Scan(begin, end, [&](std::string_view, std::string_view value) {
    decode_status = DecodeStoredEvents(absl::string_view(value.data(), value.size()), &group);
    if (!decode_status.ok()) return false;
    for (StoredEvent& event : group) {
      if (event.offset >= first_offset && event.timestamp_ns >= since_ns &&
          event.timestamp_ns <= until_ns) {
        const uint64_t offset = event.offset;
        merged.emplace(offset, std::move(event));
      }
    }
    return merged.size() < limit;
  });
  if (!scan_status.ok()) {
    return scan_status;
  }
  if (!decode_status.ok()) {
    return decode_status;
  }
  // Events not yet durable in the store: in the running checkpoint, then applied since.
  // The store may already show some of the checkpoint's (durable before its completion
  // ran), so merge by offset.
  const PartitionLog& log = partitions_[partition];
  for (const auto* list : {&log.checkpointing_batches, &log.unsaved_batches}) {
    for (const auto& batch : *list) {
      for (size_t i = 0; i < batch->events.size(); ++i) {
        const metering::BatchEvent& event = batch->events[i];
        if (event.account_id == account_id && batch->first_offset + i >= first_offset &&
            event.timestamp_ns >= since_ns && event.timestamp_ns <= until_ns) {
          merged.emplace(batch->first_offset + i, ToStoredEvent(*batch, i));
        }
      }
    }
  }
  events.clear();
  for (auto& [offset, event] : merged) {
    if (events.size() >= limit) {
      break;
    }
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<std::vector<AlertRecord>> NodeStore::ListAlerts(uint64_t account_id,
                                                               uint64_t since_offset,
                                                               size_t limit) const {
  return ListAlerts(account_id, since_offset, limit,
                    [](uint64_t) { return std::optional<metering::AlertCrossing>(); });
}

absl::StatusOr<std::vector<AlertRecord>> NodeStore::ListAlerts(uint64_t account_id,
                                                               uint64_t since_offset, size_t limit,
                                                               AlertRepair repair) const {
  std::vector<AlertRecord> records;
  auto matches = [&](const AlertRecord& record) {
    return record.offset >= since_offset &&
           (account_id == 0 || record.crossing.account_id == account_id);
  };
  if (since_offset < alert_checkpointed_offset_) {
    absl::Status decode_status = absl::OkStatus();
    bool more = true;
    // A damaged record (its stored checksum or its decoding fails) is answered from an
    // intact copy if `repair` has one; else the listing fails: never skipped silently, or
    // the listing would look complete.
    auto repaired = [&](std::string_view key, const std::string& why) -> bool {
      std::optional<metering::AlertCrossing> copy;
      if (key.size() == 9 && key[0] == 'a') {
        const uint64_t offset = LoadBigEndian64(key.data() + 1);
        copy = repair(offset);
        if (copy.has_value()) {
          const AlertRecord record{offset, *std::move(copy)};
          if (matches(record)) records.push_back(record);
          more = records.size() < limit;
          return true;
        }
      }
      decode_status = absl::DataLossError(
          absl::StrCat("alert record ", absl::CHexEscape(absl::string_view(key.data(), key.size())),
                       " is damaged: ", why));
      return false;
    };
    const absl::Status scan_status = store_.ScanPastDamage(
        AlertKey(since_offset), AlertKey(alert_checkpointed_offset_),
        [&](std::string_view key, std::string_view value) {
          if (!more) return false;  // A repaired record filled the listing.
          absl::StatusOr<AlertRecord> record =
              DecodeAlertRecord(absl::string_view(value.data(), value.size()));
          if (!record.ok()) {
            return repaired(key, std::string(record.status().message())) && more;
          }
          if (matches(*record)) records.push_back(*std::move(record));
          return records.size() < limit;
        },
        [&](std::string_view key, const absl::Status& damage) -> bool {
          return repaired(key, std::string(damage.message()));
        });
    if (!decode_status.ok()) return decode_status;
    if (!scan_status.ok()) return scan_status;
  }
  for (const AlertRecord& record : alerts_) {
    if (records.size() >= limit) {
      break;
    }
    if (matches(record)) {
      records.push_back(record);
    }
  }
  return records;
}

uint64_t NodeStore::wal_durable_position() const { return wal_->durable_position(); }

uint64_t NodeStore::wal_bytes_since_checkpoint() const {
  return wal_->appended_position() - checkpoint_start_position_;
}

void NodeStore::DeleteExpiredEvents(uint32_t partition, int64_t cutoff_ns, WriteBatch& batch) {
  const std::string begin = "e" + std::string(1, static_cast<char>(partition));
  const std::string end = "e" + std::string(1, static_cast<char>(partition + 1));
  uint64_t deleted = 0;
  std::vector<StoredEvent> group;
  std::vector<StoredEvent> kept;
  const absl::Status status = store_.Scan(
      begin, partition + 1 < kPartitionCount ? end : std::string("f"),
      [&](std::string_view key, std::string_view value) {
        // A damaged group is left for ListEvents to report.
        if (!DecodeStoredEvents(absl::string_view(value.data(), value.size()), &group).ok()) {
          return true;
        }
        kept.clear();
        for (StoredEvent& event : group) {
          if (event.timestamp_ns >= cutoff_ns) kept.push_back(std::move(event));
        }
        if (kept.size() == group.size()) return true;
        deleted += group.size() - kept.size();
        // The survivors keep the group's key: still >= each of their offsets.
        if (kept.empty()) {
          batch.Delete(key);
        } else {
          batch.Put(key, EncodeStoredEvents(kept));
        }
        return true;
      });
  if (!status.ok()) {
    env_.Log(absl::StrCat("retention: partition ", partition, ": ", status.ToString(),
                          "; expired events stay until the next sweep"));
  }
  stats_.events_expired += deleted;
}

void NodeStore::FillPartitionBatch(uint32_t partition, bool snapshot, WriteBatch& batch) {
  PartitionLog& log = partitions_[partition];
  // Events older than a cut-off swept in this checkpoint are not written (the sweep
  // removes them); later late events are stored until the next sweep.
  int64_t expired_before_ns = INT64_MIN;
  if (!log.retention_cutoffs_ns.empty()) {
    expired_before_ns =
        *std::max_element(log.retention_cutoffs_ns.begin(), log.retention_cutoffs_ns.end());
    DeleteExpiredEvents(partition, expired_before_ns, batch);
    log.retention_cutoffs_ns.clear();
  }
  // Each account's new events as groups of up to kStoredGroupEventsMax, keyed by their last
  // offset. Events below the flushed offset are already stored (a restart replays entries
  // a flush wrote after the last checkpoint): never written twice, in two groups.
  std::vector<EventToStore>& to_store = encode_scratch_.events;
  to_store.clear();
  for (const auto& applied : log.unsaved_batches) {
    for (size_t i = 0; i < applied->events.size(); ++i) {
      const metering::BatchEvent& event = applied->events[i];
      const uint64_t offset = applied->first_offset + i;
      if (offset < log.events_stored_end || event.timestamp_ns < expired_before_ns) continue;
      to_store.push_back(EventToStore{event.account_id, offset, &event});
    }
  }
  std::sort(to_store.begin(), to_store.end(), [](const EventToStore& a, const EventToStore& b) {
    return a.account_id != b.account_id ? a.account_id < b.account_id : a.offset < b.offset;
  });
  batch.Reserve(to_store.size() / 4 + 4);
  std::string& key = encode_scratch_.key;
  std::vector<uint8_t>& value = encode_scratch_.value;
  for (size_t first = 0; first < to_store.size();) {
    size_t end = first + 1;
    while (end < to_store.size() && end - first < kStoredGroupEventsMax &&
           to_store[end].account_id == to_store[first].account_id) {
      ++end;
    }
    key.clear();
    value.clear();
    AppendStoredEventKey(partition, to_store[first].account_id, to_store[end - 1].offset, &key);
    ByteWriter writer(&value);
    AppendStoredEventGroup(
        end - first,
        [&](size_t i) { return std::pair(to_store[first + i].offset, to_store[first + i].event); },
        writer);
    batch.Put(key, std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
    stats_.events_written += end - first;
    ++stats_.event_groups_written;
    first = end;
  }
  if (!log.unsaved_batches.empty()) {
    const metering::EventBatch& newest = *log.unsaved_batches.back();
    log.events_stored_end =
        std::max(log.events_stored_end, newest.first_offset + newest.events.size());
    batch.Put(PartitionKey(partition, 'f'), EncodeOffsetMeta(log.events_stored_end));
  }
  log.checkpointing_batches.insert(log.checkpointing_batches.end(), log.unsaved_batches.begin(),
                                   log.unsaved_batches.end());
  log.unsaved_batches.clear();
  UM_CHECK_LE(log.unsaved_events, unsaved_event_count_);
  unsaved_event_count_ -= log.unsaved_events;
  log.unsaved_events = 0;
  if (snapshot && log.state->applied_index() != log.checkpoint_index) {
    batch.Put(PartitionKey(partition, 's'), ToString(log.state->EncodeSnapshot()));
    batch.Put(PartitionKey(partition, 'm'),
              EncodePartitionMeta(log.state->applied_index(), log.commit_epoch));
  }
}

void NodeStore::Checkpoint(absl::AnyInvocable<void(absl::Status)> done) {
  StartJob(/*snapshots=*/true, std::move(done));
}

void NodeStore::FlushEvents(absl::AnyInvocable<void(absl::Status)> done) {
  StartJob(/*snapshots=*/false, std::move(done));
}

void NodeStore::StartJob(bool snapshots, absl::AnyInvocable<void(absl::Status)> done) {
  if (checkpoint_running_) {
    done(absl::FailedPreconditionError("a checkpoint is already running"));
    return;
  }
  checkpoint_running_ = true;
  auto job = std::make_shared<CheckpointJob>();
  job->snapshots = snapshots;
  job->done = std::move(done);
  if (snapshots) {
    checkpoint_start_position_ = wal_->appended_position();
    stats_.checkpoint_bytes = 0;
    // Everything appended so far will be covered except uncommitted entries, which stay in
    // the WAL: keep from the oldest of them.
    job->keep_from_position = checkpoint_start_position_;
    for (const PartitionLog& log : partitions_) {
      if (!log.uncommitted.empty()) {
        job->keep_from_position =
            std::min(job->keep_from_position, log.uncommitted.front().position);
      }
    }
  }
  CheckpointStep(std::move(job));
}

void NodeStore::FinishFlushIfDone(CheckpointJob& job) {
  if (job.next_partition < kPartitionCount || job.commits_running > 0) return;
  ++stats_.event_flushes;
  checkpoint_running_ = false;
  job.done(job.status);
}

void NodeStore::CheckpointStep(std::shared_ptr<CheckpointJob> job) {
  checkpoint_timer_ = kNoTimer;
  if (job->next_partition < kPartitionCount) {
    // One partition per loop turn: its batch is atomic on its own (partitions are
    // independent), and the loop keeps serving between partitions.
    const uint32_t partition = job->next_partition++;
    WriteBatch batch;
    batch.set_write_behind(true);  // Readable from memory until durable (ListEvents).
    FillPartitionBatch(partition, job->snapshots, batch);
    if (batch.empty()) {
      partitions_[partition].checkpointing_batches.clear();  // Nothing of them is stored.
    } else {
      if (job->snapshots) stats_.checkpoint_bytes += batch.byte_size();
      const uint64_t applied = partitions_[partition].state->applied_index();
      ++job->commits_running;
      store_.Commit(std::move(batch), [this, job, partition, applied](absl::Status status) {
        --job->commits_running;
        if (status.ok()) {
          if (job->snapshots) partitions_[partition].checkpoint_index = applied;
          partitions_[partition].checkpointing_batches.clear();
        } else if (job->status.ok()) {
          job->status = status;
        }
        if (!job->snapshots) FinishFlushIfDone(*job);
      });
    }
    checkpoint_timer_ = env_.StartTimer(0, [this, job] { CheckpointStep(job); });
    return;
  }
  if (!job->snapshots) {
    FinishFlushIfDone(*job);
    return;
  }
  WriteBatch batch;
  batch.set_write_behind(true);  // Alert records stay in alerts_ until durable.
  for (const AlertRecord& record : alerts_) {
    batch.Put(AlertKey(record.offset), EncodeAlertRecord(record));
  }
  batch.Put(kNodeMetaKey, EncodeOffsetMeta(alert_next_offset_));
  if (peer_records_source_) batch.Put(kPeerRecordsKey, peer_records_source_());
  const uint64_t checkpointed_alerts = alert_next_offset_;
  // Completions run in commit order: this one runs after every partition's.
  store_.Commit(std::move(batch), [this, job, checkpointed_alerts](absl::Status status) {
    if (!status.ok() || !job->status.ok()) {
      checkpoint_running_ = false;
      job->done(status.ok() ? job->status : status);
      return;
    }
    // Checkpointed records leave memory only once durable; ListAlerts reads them from the
    // store after that.
    while (!alerts_.empty() && alerts_.front().offset < checkpointed_alerts) {
      alerts_.pop_front();
    }
    alert_checkpointed_offset_ = checkpointed_alerts;
    FinishCheckpoint(job->keep_from_position, std::move(job->done));
  });
}

void NodeStore::FinishCheckpoint(uint64_t keep_from_position,
                                 absl::AnyInvocable<void(absl::Status)> done) {
  ++stats_.checkpoints;
  // Segments before keep_from hold only checkpointed records (or superseded ones).
  const uint64_t removable = std::min(keep_from_position, wal_->durable_position());
  wal_->RemoveSegmentsBefore(removable,
                             [this, done = std::move(done)](absl::Status status) mutable {
                               checkpoint_running_ = false;
                               done(status);
                             });
}

uint64_t NodeStore::Digest() const {
  unimeter::Digest digest;
  for (const PartitionLog& log : partitions_) {
    digest.Add(log.state->Digest());
  }
  return digest.value();
}

}  // namespace unimeter
