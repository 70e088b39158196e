#include "node/demo/pinger.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/base/endian.h"

namespace unimeter::demo {
namespace {

// Node-to-node message: type u8, version u8, reserved u16, sequence u64 (12 bytes).
constexpr uint8_t kMessagePing = 1;
constexpr uint8_t kMessageAck = 2;
constexpr uint8_t kMessageVersion = 1;
constexpr size_t kMessageSizeBytes = 12;

std::vector<uint8_t> EncodeMessage(uint8_t type, uint64_t sequence) {
  std::vector<uint8_t> bytes(kMessageSizeBytes, 0);
  bytes[0] = type;
  bytes[1] = kMessageVersion;
  StoreU64(bytes.data() + 4, sequence);
  return bytes;
}

}  // namespace

// Record layout: crc32c u32 (over bytes 4..24), kind u32, node u32, reserved u32 (0),
// sequence u64.
void EncodePingerRecord(const PingerRecord& record, uint8_t* out) {
  std::memset(out, 0, kPingerRecordSizeBytes);
  StoreU32(out + 4, static_cast<uint32_t>(record.kind));
  StoreU32(out + 8, record.node);
  StoreU64(out + 16, record.sequence);
  StoreU32(out, Crc32c(out + 4, kPingerRecordSizeBytes - 4));
}

bool DecodePingerRecord(const uint8_t* bytes, PingerRecord* record) {
  if (LoadU32(bytes) != Crc32c(bytes + 4, kPingerRecordSizeBytes - 4)) {
    return false;
  }
  const uint32_t kind = LoadU32(bytes + 4);
  if (kind != static_cast<uint32_t>(PingerRecordKind::kCommitted) &&
      kind != static_cast<uint32_t>(PingerRecordKind::kSeen)) {
    return false;
  }
  record->kind = static_cast<PingerRecordKind>(kind);
  record->node = LoadU32(bytes + 8);
  record->sequence = LoadU64(bytes + 16);
  return LoadU32(bytes + 12) == 0;
}

absl::StatusOr<std::vector<PingerRecord>> ReadPingerLog(DiskFile& file) {
  std::vector<PingerRecord> records;
  uint8_t bytes[kPingerRecordSizeBytes];
  for (uint64_t offset = 0; offset + kPingerRecordSizeBytes <= file.size_bytes();
       offset += kPingerRecordSizeBytes) {
    absl::StatusOr<size_t> read = file.Read(offset, absl::MakeSpan(bytes));
    if (!read.ok()) {
      return read.status();
    }
    PingerRecord record;
    if (*read != kPingerRecordSizeBytes || !DecodePingerRecord(bytes, &record)) {
      break;
    }
    records.push_back(record);
  }
  return records;
}

struct Pinger::ClientSession {
  std::unique_ptr<Stream> stream;
  std::string input;
};

Pinger::Pinger(Env& env, PingerOptions options) : env_(env), options_(std::move(options)) {}

Pinger::~Pinger() = default;

uint64_t Pinger::seen(NodeId peer) const {
  auto it = seen_.find(peer);
  return it == seen_.end() ? 0 : it->second;
}

std::string Pinger::StatusLine() const {
  std::vector<std::string> seen;
  for (const auto& [peer, sequence] : seen_) {
    seen.push_back(absl::StrCat(peer, ":", sequence));
  }
  return absl::StrCat("node=", env_.node_id(), " committed=", committed_,
                      " seen=", absl::StrJoin(seen, ","), "\n");
}

absl::Status Pinger::Start() {
  absl::StatusOr<std::unique_ptr<DiskFile>> log = env_.OpenDiskFile(kLogFileName);
  if (!log.ok()) {
    return log.status();
  }
  log_ = std::move(*log);
  if (absl::Status status = Recover(); !status.ok()) {
    return status;
  }
  env_.transport().SetReceiver(
      [this](NodeId source, absl::Span<const uint8_t> message) { OnMessage(source, message); });
  if (options_.client_port != 0) {
    absl::StatusOr<std::unique_ptr<Listener>> listener = env_.Listen(
        options_.client_port,
        [this](std::unique_ptr<Stream> stream) { OnClientAccepted(std::move(stream)); });
    if (!listener.ok()) {
      return listener.status();
    }
    listener_ = std::move(*listener);
  }
  commit_fiber_ = env_.fibers().Spawn("pinger-commit", [this] { RunCommitLoop(); });
  ack_fiber_ = env_.fibers().Spawn("pinger-ack", [this] { RunAckLoop(); });
  env_.Log(absl::StrCat("pinger started: committed=", committed_));
  return absl::OkStatus();
}

absl::Status Pinger::Recover() {
  absl::StatusOr<std::vector<PingerRecord>> records = ReadPingerLog(*log_);
  if (!records.ok()) {
    return records.status();
  }
  for (const PingerRecord& record : *records) {
    if (record.kind == PingerRecordKind::kCommitted) {
      UM_CHECK_EQ(record.node, env_.node_id());
      committed_ = std::max(committed_, record.sequence);
    } else {
      uint64_t& seen = seen_[record.node];
      seen = std::max(seen, record.sequence);
    }
  }
  const uint64_t valid_bytes = records->size() * kPingerRecordSizeBytes;
  if (valid_bytes < log_->size_bytes()) {
    env_.Log(absl::StrCat("pinger log: truncating torn tail at offset ", valid_bytes));
    log_->Truncate(valid_bytes);
  }
  return absl::OkStatus();
}

void Pinger::Append(const PingerRecord& record) {
  uint8_t bytes[kPingerRecordSizeBytes];
  EncodePingerRecord(record, bytes);
  UM_CHECK_EQ(log_->size_bytes() % kPingerRecordSizeBytes, 0u);
  log_->Write(log_->size_bytes(), absl::MakeConstSpan(bytes));
}

void Pinger::RunCommitLoop() {
  while (committed_ < options_.commit_target) {
    proposing_ = committed_ + 1;
    acked_by_.clear();
    while (acked_by_.size() + 1 < quorum()) {
      BroadcastPing(proposing_);
      WaitForAcksOrRetry();
    }
    Append({PingerRecordKind::kCommitted, env_.node_id(), proposing_});
    const absl::Status status = SyncAndWait(env_, *log_);
    UM_CHECK_OK(status);  // A failed sync means the page cache cannot be trusted: crash.
    UM_CHECK_EQ(committed_ + 1, proposing_);
    committed_ = proposing_;
    proposing_ = 0;
    SleepFor(env_, options_.commit_interval_ns);
  }
}

void Pinger::BroadcastPing(uint64_t sequence) {
  const std::vector<uint8_t> message = EncodeMessage(kMessagePing, sequence);
  for (NodeId peer : options_.peers) {
    if (!acked_by_.contains(peer)) {
      env_.transport().Send(peer, message);
    }
  }
}

void Pinger::WaitForAcksOrRetry() {
  const FiberId self = env_.fibers().current();
  const TimerId timer =
      env_.StartTimer(options_.retry_interval_ns, [this, self] { env_.fibers().Wake(self); });
  env_.fibers().Suspend();
  env_.CancelTimer(timer);
}

void Pinger::RunAckLoop() {
  for (;;) {
    while (to_persist_.empty()) {
      env_.fibers().Suspend();
    }
    absl::btree_map<NodeId, uint64_t> batch;
    batch.swap(to_persist_);
    for (const auto& [source, sequence] : batch) {
      Append({PingerRecordKind::kSeen, source, sequence});
    }
    const absl::Status status = SyncAndWait(env_, *log_);
    UM_CHECK_OK(status);
    for (const auto& [source, sequence] : batch) {
      uint64_t& seen = seen_[source];
      seen = std::max(seen, sequence);
      env_.transport().Send(source, EncodeMessage(kMessageAck, sequence));
    }
  }
}

void Pinger::OnMessage(NodeId source, absl::Span<const uint8_t> message) {
  if (message.size() != kMessageSizeBytes || message[1] != kMessageVersion) {
    env_.Log(absl::StrCat("pinger: dropping malformed message from n", source));
    return;
  }
  const uint64_t sequence = LoadU64(message.data() + 4);
  if (message[0] == kMessagePing) {
    if (sequence <= seen(source)) {
      env_.transport().Send(source, EncodeMessage(kMessageAck, sequence));  // Already durable.
      return;
    }
    uint64_t& pending = to_persist_[source];
    pending = std::max(pending, sequence);
    env_.fibers().Wake(ack_fiber_);
  } else if (message[0] == kMessageAck) {
    if (proposing_ != 0 && sequence == proposing_) {
      acked_by_.insert(source);
      if (acked_by_.size() + 1 >= quorum()) {
        env_.fibers().Wake(commit_fiber_);
      }
    }
  }
}

void Pinger::OnClientAccepted(std::unique_ptr<Stream> stream) {
  const uint64_t id = stream->id();
  auto session = std::make_unique<ClientSession>();
  session->stream = std::move(stream);
  ClientSession* raw = session.get();
  sessions_[id] = std::move(session);
  raw->stream->SetHandler(Stream::Handler{
      [this, raw](absl::Span<const uint8_t> bytes) {
        raw->input.append(bytes.begin(), bytes.end());
        size_t newline;
        while ((newline = raw->input.find('\n')) != std::string::npos) {
          const std::string line = raw->input.substr(0, newline);
          raw->input.erase(0, newline + 1);
          const std::string reply = line == "STATUS" ? StatusLine() : "error unknown command\n";
          const absl::Status status = raw->stream->Write(
              absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(reply.data()), reply.size()));
          if (!status.ok()) {
            raw->stream->Close();
            return;
          }
        }
        if (raw->input.size() > 4096) {
          raw->stream->Close();  // No line is that long: the client is misbehaving.
        }
      },
      [this, id](absl::Status) { sessions_.erase(id); }});
}

}  // namespace unimeter::demo
