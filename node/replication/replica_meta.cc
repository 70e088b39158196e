#include "node/replication/replica_meta.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/base/planted_bugs.h"
#include "node/metering/byte_io.h"

namespace unimeter::replication {
namespace {

constexpr uint32_t kMetaMagic = 0x554d4d31;  // "UMM1"
constexpr uint8_t kMetaVersion = 3;          // 3 added node_id; version 2 slots are still read.

}  // namespace

std::vector<uint8_t> EncodeMetaSlot(const ReplicaMeta& meta, uint64_t sequence) {
  std::vector<uint8_t> bytes;
  metering::ByteWriter writer(&bytes);
  writer.U32(kMetaMagic);
  writer.U8(kMetaVersion);
  writer.U64(sequence);
  writer.U64(meta.incarnation);
  writer.U8((meta.active ? 1 : 0) | (meta.formed ? 2 : 0));
  writer.U64(meta.term);
  writer.U32(meta.voted_for);
  for (uint64_t epoch : meta.promised_epoch) {
    writer.U64(epoch);
  }
  for (uint64_t epoch : meta.started_epoch) {
    writer.U64(epoch);
  }
  writer.U32(meta.node_id);
  writer.U32(Crc32c(bytes.data(), bytes.size()));
  UM_CHECK_EQ(bytes.size(), kMetaSlotUsedBytes);
  bytes.resize(kMetaSlotBytes, 0);
  return bytes;
}

absl::StatusOr<ReplicaMeta> DecodeMetaSlot(absl::Span<const uint8_t> slot, uint64_t* sequence) {
  metering::ByteReader reader(slot.data(), slot.size());
  uint32_t magic = 0;
  uint8_t version = 0;
  uint8_t active = 0;
  ReplicaMeta meta;
  if (!reader.U32(&magic) || magic != kMetaMagic || !reader.U8(&version) ||
      (version != 2 && version != kMetaVersion) || !reader.U64(sequence) ||
      !reader.U64(&meta.incarnation) || !reader.U8(&active) || active > 3 ||
      !reader.U64(&meta.term) || !reader.U32(&meta.voted_for)) {
    return absl::DataLossError("replica meta slot: bad header");
  }
  for (uint64_t& epoch : meta.promised_epoch) {
    if (!reader.U64(&epoch)) return absl::DataLossError("replica meta slot: truncated");
  }
  for (uint64_t& epoch : meta.started_epoch) {
    if (!reader.U64(&epoch)) return absl::DataLossError("replica meta slot: truncated");
  }
  if (version >= 3 && !reader.U32(&meta.node_id)) {
    return absl::DataLossError("replica meta slot: truncated");
  }
  const size_t covered = slot.size() - reader.left();
  uint32_t crc = 0;
  if (!reader.U32(&crc) || crc != Crc32c(slot.data(), covered)) {
    return absl::DataLossError("replica meta slot: checksum mismatch");
  }
  meta.active = (active & 1) != 0;
  meta.formed = (active & 2) != 0;
  return meta;
}

absl::StatusOr<std::unique_ptr<MetaFile>> MetaFile::Open(Env& env, bool* fresh) {
  absl::StatusOr<std::unique_ptr<DiskFile>> file = env.OpenDiskFile(kMetaFileName);
  if (!file.ok()) return file.status();
  std::unique_ptr<MetaFile> meta_file(new MetaFile(env, std::move(*file)));
  const uint64_t size = meta_file->file_->size_bytes();
  bool found = false;
  size_t newest_slot = 0;
  std::vector<size_t> damaged;
  std::vector<uint8_t> slot(kMetaSlotBytes);
  for (size_t index = 0; (index + 1) * kMetaSlotBytes <= size; ++index) {
    absl::StatusOr<size_t> read =
        meta_file->file_->Read(index * kMetaSlotBytes, absl::MakeSpan(slot));
    if (!read.ok()) return read.status();
    if (*read != kMetaSlotBytes) continue;
    uint64_t sequence = 0;
    absl::StatusOr<ReplicaMeta> meta = DecodeMetaSlot(slot, &sequence);
    if (!meta.ok()) {
      // An all-zero slot was never written (a new file grows one pair at a time).
      if (std::any_of(slot.begin(), slot.end(), [](uint8_t byte) { return byte != 0; })) {
        damaged.push_back(index);
      }
      continue;
    }
    if (!found || sequence > meta_file->sequence_) {
      found = true;
      newest_slot = index;
      meta_file->sequence_ = sequence;
      meta_file->meta_ = *meta;
    }
  }
  if (!found && size > 0) {
    return absl::DataLossError(
        "replica.meta: no intact slot; the data directory is damaged (wipe it to resync "
        "this node from its peers)");
  }
  for (size_t index : damaged) {
    // A torn write of a pair not yet durable, or damage at rest or on read. Either way the
    // newest durable state is intact elsewhere: the newest pair holds two copies of it.
    env.Log(absl::StrCat("replica.meta: slot ", index,
                         " is damaged; using the newest intact slot (", newest_slot, ", sequence ",
                         meta_file->sequence_, ")"));
  }
  meta_file->next_pair_ = found ? 1 - newest_slot / 2 % 2 : 0;
  meta_file->opened_sequence_ = meta_file->sequence_;
  meta_file->durable_sequence_ = meta_file->sequence_;
  *fresh = !found;
  return meta_file;
}

void MetaFile::Save(Done done) {
  if (!failed_.ok()) {
    done(failed_);  // The node is stopping: write nothing more.
    return;
  }
  waiting_.push_back(std::move(done));
  if (!writing_) StartWrite();
}

void MetaFile::StartWrite() {
  UM_CHECK(!writing_);
  writing_ = true;
  in_flight_ = std::move(waiting_);
  waiting_.clear();
  ++sequence_;
  std::vector<uint8_t> pair = EncodeMetaSlot(meta_, sequence_);
  if (!BugPlanted(PlantedBug::kMetaSingleCopy)) pair.insert(pair.end(), pair.begin(), pair.end());
  file_->Write(next_pair_ * 2 * kMetaSlotBytes, pair);
  file_->Sync([this, written = sequence_](absl::Status status) {
    writing_ = false;
    if (!status.ok()) {
      // The pair just written may hold anything now; the other one holds the newest durable
      // state. Never write that one next: a torn write there would lose promises already
      // told (the simulator found one). Nothing more is written: the node fail-stops.
      --sequence_;
      failed_ = status;
    } else {
      next_pair_ = 1 - next_pair_;
      durable_sequence_ = written;
    }
    std::vector<Done> finished = std::move(in_flight_);
    in_flight_.clear();
    for (Done& done : finished) done(status);
    if (!failed_.ok()) {
      std::vector<Done> refused = std::move(waiting_);
      waiting_.clear();
      for (Done& done : refused) done(failed_);
      return;
    }
    if (!waiting_.empty()) StartWrite();
  });
}

}  // namespace unimeter::replication
