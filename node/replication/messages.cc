#include "node/replication/messages.h"

#include <utility>

#include "node/metering/byte_io.h"
#include "node/metering/log_entry.h"

namespace unimeter::replication {
namespace {

using metering::ByteReader;
using metering::ByteWriter;

constexpr size_t kItemsMax = 4 * kPartitionCount;
constexpr size_t kEntriesMax = 1 << 20;
constexpr size_t kEventsMax = 1 << 20;
constexpr size_t kForwardItemsMax = 1 << 16;
constexpr size_t kStatusMessageBytesMax = 255;

// A blob (u32 length, then the bytes) whose bytes `append` writes straight into the
// writer's buffer; the length is patched in afterwards.
template <typename AppendBytes>
void PutBlobInPlace(ByteWriter& writer, AppendBytes append) {
  const size_t length_at = writer.size();
  writer.U32(0);
  append(*writer.buffer());
  writer.PatchU32(length_at, static_cast<uint32_t>(writer.size() - length_at - 4));
}

void PutBlob(ByteWriter& writer, absl::Span<const uint8_t> bytes) {
  PutBlobInPlace(writer, [bytes](std::vector<uint8_t>& buffer) {
    buffer.insert(buffer.end(), bytes.begin(), bytes.end());
  });
}

bool GetBlob(ByteReader& reader, absl::Span<const uint8_t>* bytes) {
  uint32_t size = 0;
  if (!reader.U32(&size)) return false;
  const uint8_t* data = reader.Skip(size);
  if (data == nullptr) return false;
  *bytes = absl::MakeConstSpan(data, size);
  return true;
}

bool GetPartition(ByteReader& reader, uint32_t* partition) {
  uint16_t raw = 0;
  if (!reader.U16(&raw) || raw >= kPartitionCount) return reader.Fail();
  *partition = raw;
  return true;
}

bool GetCount(ByteReader& reader, size_t max, size_t* count) {
  uint32_t raw = 0;
  if (!reader.U32(&raw) || raw > max) return reader.Fail();
  *count = raw;
  return true;
}

void PutStatus(ByteWriter& writer, const absl::Status& status) {
  writer.U8(static_cast<uint8_t>(status.code()));
  std::string text(status.message().substr(0, kStatusMessageBytesMax));
  writer.String8(text);
}

bool GetStatus(ByteReader& reader, absl::Status* status) {
  uint8_t code = 0;
  std::string text;
  if (!reader.U8(&code) || code > static_cast<uint8_t>(absl::StatusCode::kUnauthenticated) ||
      !reader.String8(kStatusMessageBytesMax, &text)) {
    return reader.Fail();
  }
  *status = absl::Status(static_cast<absl::StatusCode>(code), text);
  return true;
}

void PutEvent(ByteWriter& writer, const metering::Event& event) {
  writer.U64(event.account_id);
  writer.String8(event.metric_code);
  writer.U64(event.value);
  writer.I64(event.timestamp_ns);
  writer.U8(static_cast<uint8_t>(event.operation));
  writer.U8(static_cast<uint8_t>(event.properties.size()));
  for (const metering::Property& property : event.properties) {
    writer.String8(property.key);
    writer.String8(property.value);
  }
  writer.U8(event.idempotency_key.has_value() ? 1 : 0);
  if (event.idempotency_key.has_value()) {
    writer.U64(event.idempotency_key->high);
    writer.U64(event.idempotency_key->low);
  }
  writer.U8(event.negative_correction ? 1 : 0);
}

bool GetEvent(ByteReader& reader, metering::Event* event) {
  uint8_t operation = 0;
  uint8_t properties = 0;
  bool has_key = false;
  if (!reader.U64(&event->account_id) || !reader.String8(255, &event->metric_code) ||
      !reader.U64(&event->value) || !reader.I64(&event->timestamp_ns) || !reader.U8(&operation) ||
      operation > metering::kOperationTypeMax || !reader.U8(&properties)) {
    return reader.Fail();
  }
  event->operation = static_cast<metering::OperationType>(operation);
  event->properties.resize(properties);
  for (metering::Property& property : event->properties) {
    if (!reader.String8(255, &property.key) || !reader.String8(255, &property.value)) {
      return false;
    }
  }
  if (!reader.Bool(&has_key)) return false;
  if (has_key) {
    metering::IdempotencyKey key;
    if (!reader.U64(&key.high) || !reader.U64(&key.low)) return false;
    event->idempotency_key = key;
  }
  return reader.Bool(&event->negative_correction);
}

void PutResult(ByteWriter& writer, const metering::IngestResult& result) {
  writer.U32(result.n_stored);
  writer.U32(result.n_duplicates);
  writer.U32(result.n_conflicts);
  writer.U64(result.last_offset);
  writer.U8(static_cast<uint8_t>(result.status));
  writer.U32(static_cast<uint32_t>(result.outcomes.size()));
  for (metering::EventOutcome outcome : result.outcomes) {
    writer.U8(static_cast<uint8_t>(outcome));
  }
}

bool GetResult(ByteReader& reader, metering::IngestResult* result) {
  uint8_t status = 0;
  size_t outcomes = 0;
  if (!reader.U32(&result->n_stored) || !reader.U32(&result->n_duplicates) ||
      !reader.U32(&result->n_conflicts) || !reader.U64(&result->last_offset) ||
      !reader.U8(&status) || status > 2 || !GetCount(reader, kEventsMax, &outcomes)) {
    return reader.Fail();
  }
  result->status = static_cast<metering::IngestStatus>(status);
  result->outcomes.resize(outcomes);
  for (metering::EventOutcome& outcome : result->outcomes) {
    uint8_t raw = 0;
    if (!reader.U8(&raw) || raw > 2) return reader.Fail();
    outcome = static_cast<metering::EventOutcome>(raw);
  }
  return true;
}

// A blob holding the entry's encoding, written in place (no temporary buffer).
void PutEntry(ByteWriter& writer, const metering::LogEntry& entry) {
  PutBlobInPlace(
      writer, [&entry](std::vector<uint8_t>& buffer) { metering::AppendLogEntry(entry, &buffer); });
}

bool GetEntry(ByteReader& reader, std::shared_ptr<const metering::LogEntry>* entry) {
  absl::Span<const uint8_t> bytes;
  if (!GetBlob(reader, &bytes)) return false;
  absl::StatusOr<metering::LogEntry> decoded = metering::DecodeLogEntry(bytes);
  if (!decoded.ok()) return reader.Fail();
  *entry = std::make_shared<const metering::LogEntry>(*std::move(decoded));
  return true;
}

// ---- Per-type bodies ----

void Put(ByteWriter& w, const Heartbeat& m) {
  w.U64(m.term);
  w.U64(m.map_version);
  for (uint32_t p = 0; p < kPartitionCount; ++p) {
    w.U8(m.owner[p]);
    w.U64(m.epoch[p]);
  }
  w.I64(m.sent_ns);
}
bool Get(ByteReader& r, Heartbeat* m) {
  if (!r.U64(&m->term) || !r.U64(&m->map_version)) return false;
  for (uint32_t p = 0; p < kPartitionCount; ++p) {
    if (!r.U8(&m->owner[p]) || !r.U64(&m->epoch[p])) return false;
  }
  m->sent_ns = 0;  // Absent (minor version 0).
  return r.left() == 0 || r.I64(&m->sent_ns);
}
void Put(ByteWriter& w, const HeartbeatAck& m) {
  w.U64(m.term);
  for (uint64_t index : m.commit_index) w.U64(index);
  w.U8(m.hello ? 1 : 0);
  w.I64(m.echo_ns);
  w.U8(m.writes_blocked ? 1 : 0);
  w.U64(m.meta_start);
  w.U64(m.meta_durable);
  w.U64(m.wal_durable);
  w.U64(m.echo.incarnation);
  w.U64(m.echo.start);
  w.U64(m.echo.earlier);
  w.U64(m.echo.wal_earlier);
}
bool Get(ByteReader& r, HeartbeatAck* m) {
  if (!r.U64(&m->term)) return false;
  for (uint64_t& index : m->commit_index) {
    if (!r.U64(&index)) return false;
  }
  m->hello = false;  // Absent (minor version 0): an answer, of unknown age.
  m->echo_ns = 0;
  m->writes_blocked = false;  // Absent (minor version below 6).
  m->meta_start = 0;          // Absent (minor version below 7).
  m->meta_durable = 0;
  m->wal_durable = 0;
  m->echo = MetaEcho{};
  if (r.left() == 0) return true;
  if (!r.Bool(&m->hello)) return false;
  if (r.left() == 0) return true;
  if (!r.I64(&m->echo_ns)) return false;
  if (r.left() == 0) return true;
  if (!r.Bool(&m->writes_blocked)) return false;
  if (r.left() == 0) return true;
  return r.U64(&m->meta_start) && r.U64(&m->meta_durable) && r.U64(&m->wal_durable) &&
         r.U64(&m->echo.incarnation) && r.U64(&m->echo.start) && r.U64(&m->echo.earlier) &&
         r.U64(&m->echo.wal_earlier);
}
void Put(ByteWriter& w, const VoteRequest& m) {
  w.U64(m.term);
  w.U8(m.pre_vote ? 1 : 0);
}
bool Get(ByteReader& r, VoteRequest* m) { return r.U64(&m->term) && r.Bool(&m->pre_vote); }
void Put(ByteWriter& w, const VoteReply& m) {
  w.U64(m.term);
  w.U8(m.pre_vote ? 1 : 0);
  w.U8(m.granted ? 1 : 0);
}
bool Get(ByteReader& r, VoteReply* m) {
  return r.U64(&m->term) && r.Bool(&m->pre_vote) && r.Bool(&m->granted);
}
void Put(ByteWriter& w, const StartEpoch& m) {
  w.U32(static_cast<uint32_t>(m.items.size()));
  for (const StartEpochItem& item : m.items) {
    w.U16(static_cast<uint16_t>(item.partition));
    w.U64(item.epoch);
  }
}
bool Get(ByteReader& r, StartEpoch* m) {
  size_t count = 0;
  if (!GetCount(r, kItemsMax, &count)) return false;
  m->items.resize(count);
  for (StartEpochItem& item : m->items) {
    if (!GetPartition(r, &item.partition) || !r.U64(&item.epoch)) return false;
  }
  return true;
}
void Put(ByteWriter& w, const Promise& m) {
  w.U32(static_cast<uint32_t>(m.items.size()));
  for (const PromiseItem& item : m.items) {
    w.U16(static_cast<uint16_t>(item.partition));
    w.U64(item.epoch);
    w.U8(item.granted ? 1 : 0);
    w.U64(item.promised_epoch);
    w.U64(item.last_epoch);
    w.U64(item.last_index);
    w.U64(item.commit_index);
  }
}
bool Get(ByteReader& r, Promise* m) {
  size_t count = 0;
  if (!GetCount(r, kItemsMax, &count)) return false;
  m->items.resize(count);
  for (PromiseItem& item : m->items) {
    if (!GetPartition(r, &item.partition) || !r.U64(&item.epoch) || !r.Bool(&item.granted) ||
        !r.U64(&item.promised_epoch) || !r.U64(&item.last_epoch) || !r.U64(&item.last_index) ||
        !r.U64(&item.commit_index)) {
      return false;
    }
  }
  return true;
}
void Put(ByteWriter& w, const Append& m) {
  w.U64(m.sequence);
  w.U8(m.fetch_reply ? 1 : 0);
  w.U32(static_cast<uint32_t>(m.items.size()));
  for (const AppendItem& item : m.items) {
    w.U16(static_cast<uint16_t>(item.partition));
    w.U64(item.epoch);
    w.U64(item.prev_index);
    w.U64(item.prev_epoch);
    w.U64(item.commit_index);
    w.U32(static_cast<uint32_t>(item.entries.size()));
    for (const WireEntry& entry : item.entries) {
      w.U64(entry.index);
      w.U64(entry.epoch);
      PutEntry(w, *entry.entry);
    }
  }
}
bool Get(ByteReader& r, Append* m) {
  size_t count = 0;
  if (!r.U64(&m->sequence) || !r.Bool(&m->fetch_reply) || !GetCount(r, kItemsMax, &count)) {
    return false;
  }
  m->items.resize(count);
  for (AppendItem& item : m->items) {
    size_t entries = 0;
    if (!GetPartition(r, &item.partition) || !r.U64(&item.epoch) || !r.U64(&item.prev_index) ||
        !r.U64(&item.prev_epoch) || !r.U64(&item.commit_index) ||
        !GetCount(r, kEntriesMax, &entries)) {
      return false;
    }
    item.entries.resize(entries);
    uint64_t expected = item.prev_index + 1;
    for (WireEntry& entry : item.entries) {
      if (!r.U64(&entry.index) || entry.index != expected++ || !r.U64(&entry.epoch) ||
          entry.epoch > item.epoch || !GetEntry(r, &entry.entry)) {
        return r.Fail();
      }
    }
  }
  return true;
}
void Put(ByteWriter& w, const AppendAck& m) {
  w.U64(m.sequence);
  w.U32(static_cast<uint32_t>(m.items.size()));
  for (const AckItem& item : m.items) {
    w.U16(static_cast<uint16_t>(item.partition));
    w.U64(item.epoch);
    w.U8(static_cast<uint8_t>(item.result));
    w.U64(item.index);
    w.U64(item.promised_epoch);
  }
}
bool Get(ByteReader& r, AppendAck* m) {
  size_t count = 0;
  if (!r.U64(&m->sequence) || !GetCount(r, kItemsMax, &count)) return false;
  m->items.resize(count);
  for (AckItem& item : m->items) {
    uint8_t result = 0;
    if (!GetPartition(r, &item.partition) || !r.U64(&item.epoch) || !r.U8(&result) ||
        result > static_cast<uint8_t>(AckResult::kBusy) || !r.U64(&item.index) ||
        !r.U64(&item.promised_epoch)) {
      return r.Fail();
    }
    item.result = static_cast<AckResult>(result);
  }
  return true;
}
void Put(ByteWriter& w, const Fetch& m) {
  w.U32(static_cast<uint32_t>(m.items.size()));
  for (const FetchItem& item : m.items) {
    w.U16(static_cast<uint16_t>(item.partition));
    w.U64(item.epoch);
    w.U64(item.from_index);
  }
}
bool Get(ByteReader& r, Fetch* m) {
  size_t count = 0;
  if (!GetCount(r, kItemsMax, &count)) return false;
  m->items.resize(count);
  for (FetchItem& item : m->items) {
    if (!GetPartition(r, &item.partition) || !r.U64(&item.epoch) || !r.U64(&item.from_index) ||
        item.from_index == 0) {
      return r.Fail();
    }
  }
  return true;
}
void Put(ByteWriter& w, const SnapshotChunk& m) {
  w.U16(static_cast<uint16_t>(m.partition));
  w.U64(m.epoch);
  w.U64(m.index);
  w.U64(m.entry_epoch);
  w.U64(m.total_bytes);
  w.U64(m.offset);
  w.U8(m.fetch_reply ? 1 : 0);
  PutBlob(w, m.bytes);
}
bool Get(ByteReader& r, SnapshotChunk* m) {
  absl::Span<const uint8_t> bytes;
  if (!GetPartition(r, &m->partition) || !r.U64(&m->epoch) || !r.U64(&m->index) ||
      !r.U64(&m->entry_epoch) || !r.U64(&m->total_bytes) || !r.U64(&m->offset) ||
      !r.Bool(&m->fetch_reply) || !GetBlob(r, &bytes) || m->offset > m->total_bytes ||
      bytes.size() > m->total_bytes - m->offset) {
    return r.Fail();
  }
  m->bytes.assign(bytes.begin(), bytes.end());
  return true;
}
void Put(ByteWriter& w, const ForwardItem& m) {
  w.U64(m.request_id);
  w.U16(static_cast<uint16_t>(m.partition));
  w.U8(static_cast<uint8_t>(m.kind));
  w.U8(m.sync ? 1 : 0);
  if (m.kind == ForwardKind::kIngest) {
    w.U32(static_cast<uint32_t>(m.events.size()));
    for (const metering::Event& event : m.events) PutEvent(w, event);
  } else {
    PutEntry(w, *m.entry);
  }
}
bool Get(ByteReader& r, ForwardItem* m) {
  uint8_t kind = 0;
  if (!r.U64(&m->request_id) || !GetPartition(r, &m->partition) || !r.U8(&kind) || kind > 1 ||
      !r.Bool(&m->sync)) {
    return r.Fail();
  }
  m->kind = static_cast<ForwardKind>(kind);
  if (m->kind == ForwardKind::kEntry) return GetEntry(r, &m->entry);
  size_t count = 0;
  if (!GetCount(r, kEventsMax, &count)) return false;
  m->events.resize(count);
  for (metering::Event& event : m->events) {
    if (!GetEvent(r, &event)) return false;
  }
  return true;
}
void Put(ByteWriter& w, const ForwardReplyItem& m) {
  w.U64(m.request_id);
  PutStatus(w, m.status);
  PutResult(w, m.result);
}
bool Get(ByteReader& r, ForwardReplyItem* m) {
  return r.U64(&m->request_id) && GetStatus(r, &m->status) && GetResult(r, &m->result);
}
void Put(ByteWriter& w, const ReadIndexItem& m) {
  w.U64(m.request_id);
  w.U16(static_cast<uint16_t>(m.partition));
}
bool Get(ByteReader& r, ReadIndexItem* m) {
  return r.U64(&m->request_id) && GetPartition(r, &m->partition);
}
void Put(ByteWriter& w, const ReadIndexReplyItem& m) {
  w.U64(m.request_id);
  PutStatus(w, m.status);
  w.U64(m.commit_index);
}
bool Get(ByteReader& r, ReadIndexReplyItem* m) {
  return r.U64(&m->request_id) && GetStatus(r, &m->status) && r.U64(&m->commit_index);
}
void Put(ByteWriter& w, const ConfirmItem& m) {
  w.U16(static_cast<uint16_t>(m.partition));
  w.U64(m.epoch);
}
bool Get(ByteReader& r, ConfirmItem* m) {
  return GetPartition(r, &m->partition) && r.U64(&m->epoch);
}
void Put(ByteWriter& w, const ConfirmReplyItem& m) {
  w.U16(static_cast<uint16_t>(m.partition));
  w.U64(m.epoch);
  w.U8(m.confirmed ? 1 : 0);
}
bool Get(ByteReader& r, ConfirmReplyItem* m) {
  return GetPartition(r, &m->partition) && r.U64(&m->epoch) && r.Bool(&m->confirmed);
}
void Put(ByteWriter& w, const SnapshotAckItem& m) {
  w.U16(static_cast<uint16_t>(m.partition));
  w.U64(m.epoch);
  w.U64(m.index);
  w.U64(m.received_bytes);
  w.U64(m.chunk_offset);
}
bool Get(ByteReader& r, SnapshotAckItem* m) {
  return GetPartition(r, &m->partition) && r.U64(&m->epoch) && r.U64(&m->index) &&
         r.U64(&m->received_bytes) && r.U64(&m->chunk_offset);
}

// Messages that are just a list of items.
template <typename T>
void PutItems(ByteWriter& w, const std::vector<T>& items) {
  w.U32(static_cast<uint32_t>(items.size()));
  for (const T& item : items) Put(w, item);
}
template <typename T>
bool GetItems(ByteReader& r, std::vector<T>* items) {
  size_t count = 0;
  if (!GetCount(r, kForwardItemsMax, &count)) return false;
  items->resize(count);
  for (T& item : *items) {
    if (!Get(r, &item)) return false;
  }
  return true;
}
void Put(ByteWriter& w, const Forward& m) { PutItems(w, m.items); }
bool Get(ByteReader& r, Forward* m) { return GetItems(r, &m->items); }
void Put(ByteWriter& w, const ForwardReply& m) { PutItems(w, m.items); }
bool Get(ByteReader& r, ForwardReply* m) { return GetItems(r, &m->items); }
void Put(ByteWriter& w, const ReadIndex& m) { PutItems(w, m.items); }
bool Get(ByteReader& r, ReadIndex* m) { return GetItems(r, &m->items); }
void Put(ByteWriter& w, const ReadIndexReply& m) { PutItems(w, m.items); }
bool Get(ByteReader& r, ReadIndexReply* m) { return GetItems(r, &m->items); }
// A confirm round and its answer: the round, the items and (minor version 2) the lease.
template <typename T>
void PutRound(ByteWriter& w, const T& m) {
  w.U64(m.round);
  PutItems(w, m.items);
  w.I64(m.lease_ns);
}
template <typename T>
bool GetRound(ByteReader& r, T* m) {
  if (!r.U64(&m->round) || !GetItems(r, &m->items)) return false;
  m->lease_ns = 0;  // Absent (minor version 1): no lease.
  if (r.left() == 0) return true;
  return r.I64(&m->lease_ns) && m->lease_ns >= 0;
}
void Put(ByteWriter& w, const SnapshotAck& m) { PutItems(w, m.items); }
bool Get(ByteReader& r, SnapshotAck* m) { return GetItems(r, &m->items); }
void Put(ByteWriter& w, const ConfirmEpoch& m) { PutRound(w, m); }
bool Get(ByteReader& r, ConfirmEpoch* m) { return GetRound(r, m); }
void Put(ByteWriter& w, const ConfirmEpochReply& m) { PutRound(w, m); }
bool Get(ByteReader& r, ConfirmEpochReply* m) { return GetRound(r, m); }

template <size_t I>
bool DecodeAlternative(size_t index, ByteReader& reader, Message* message) {
  if constexpr (I < std::variant_size_v<Message>) {
    if (index == I) {
      std::variant_alternative_t<I, Message> body;
      if (!Get(reader, &body)) return false;
      *message = std::move(body);
      return true;
    }
    return DecodeAlternative<I + 1>(index, reader, message);
  } else {
    return false;
  }
}

}  // namespace

std::vector<uint8_t> EncodeMessage(const Header& header, const Message& message) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.U8(kProtocolMajor);
  writer.U8(kProtocolMinor);
  writer.U8(static_cast<uint8_t>(message.index() + 1));
  writer.U64(header.incarnation);
  writer.U64(header.boot_id);
  writer.U8(static_cast<uint8_t>(header.state));
  writer.U8(header.formed ? 1 : 0);
  std::visit([&writer](const auto& body) { Put(writer, body); }, message);
  return bytes;
}

absl::Status DecodeMessage(absl::Span<const uint8_t> bytes, Header* header, Message* message) {
  ByteReader reader(bytes.data(), bytes.size());
  uint8_t major = 0;
  uint8_t minor = 0;
  uint8_t type = 0;
  if (!reader.U8(&major) || !reader.U8(&minor) || !reader.U8(&type)) {
    return absl::InvalidArgumentError("replication message: short header");
  }
  header->minor = minor;
  if (major != kProtocolMajor) {
    return absl::InvalidArgumentError("replication message: another major protocol version");
  }
  uint8_t state = 0;
  if (type == 0 || type > std::variant_size_v<Message> || !reader.U64(&header->incarnation) ||
      !reader.U64(&header->boot_id) || !reader.U8(&state) || state > 2 ||
      !reader.Bool(&header->formed)) {
    return absl::InvalidArgumentError("replication message: bad header");
  }
  header->state = static_cast<NodeState>(state);
  if (!DecodeAlternative<0>(type - 1, reader, message)) {
    return absl::InvalidArgumentError("replication message: malformed body");
  }
  // Trailing bytes are fields of a newer minor version: ignored.
  return absl::OkStatus();
}

}  // namespace unimeter::replication
