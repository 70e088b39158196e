// storage/wal.cc
//
// See wal.h for the contract and docs/formats/wal.md for the bytes. The file is in three
// parts: encoding and parsing (pure functions), recovery (Open), and the append/flush
// state machine (one disk operation in flight at a time).
#include "storage/wal.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/base/endian.h"

namespace unimeter {
namespace {

// Manifest slot header field offsets.
constexpr size_t kManifestOffsetMagic = 0;
constexpr size_t kManifestOffsetVersion = 4;
constexpr size_t kManifestOffsetSlot = 6;
constexpr size_t kManifestOffsetGeneration = 8;
constexpr size_t kManifestOffsetCount = 16;
constexpr size_t kManifestOffsetChecksum = 24;
static_assert(kManifestOffsetChecksum + 8 == kWalManifestHeaderSizeBytes);
constexpr uint32_t kManifestEntryLive = 1;
constexpr uint32_t kManifestEntryUnlisted = 2;

constexpr uint64_t kSector = kWalSectorSizeBytes;

uint64_t AlignUp(uint64_t value) { return (value + kSector - 1) / kSector * kSector; }

// Writes a header at `out` and sets its record_hash over header and the `body_size`
// bytes that follow it. Returns the hash.
uint64_t EncodeRecord(uint8_t* out, uint16_t kind, uint32_t body_size, uint32_t partition,
                      uint64_t index, uint64_t epoch, uint64_t previous_hash) {
  StoreU32(out + kWalOffsetMagic, kWalRecordMagic);
  StoreU16(out + kWalOffsetVersion, kWalFormatVersion);
  StoreU16(out + kWalOffsetKind, kind);
  StoreU32(out + kWalOffsetBodySize, body_size);
  StoreU32(out + kWalOffsetPartition, partition);
  StoreU64(out + kWalOffsetIndex, index);
  StoreU64(out + kWalOffsetEpoch, epoch);
  StoreU64(out + kWalOffsetPreviousHash, previous_hash);
  StoreU64(out + kWalOffsetRecordHash, 0);
  const uint64_t hash = Hash64(out, kWalRecordHeaderSizeBytes + body_size);
  StoreU64(out + kWalOffsetRecordHash, hash);
  return hash;
}

// Parses the record at `offset` of `bytes`, which must end by `limit`. On success fills
// `view` (position relative to the segment) and returns the empty string; otherwise
// returns why the bytes are not a record. Zeroes the stored hash field while hashing and
// restores it, hence the mutable span.
std::string ParseRecord(absl::Span<uint8_t> bytes, uint64_t offset, uint64_t limit,
                        WalRecordView& view) {
  UM_CHECK_LE(limit, bytes.size());
  if (offset + kWalRecordHeaderSizeBytes > limit) {
    return "truncated header";
  }
  uint8_t* header = bytes.data() + offset;
  if (LoadU32(header + kWalOffsetMagic) != kWalRecordMagic) {
    return "bad magic";
  }
  if (LoadU16(header + kWalOffsetVersion) != kWalFormatVersion) {
    return "unknown format version";
  }
  const uint32_t body_size = LoadU32(header + kWalOffsetBodySize);
  if (body_size > kWalBodySizeBytesMax) {
    return "body_size too large";
  }
  if (offset + kWalRecordHeaderSizeBytes + body_size > limit) {
    return "truncated body";
  }
  const uint32_t partition = LoadU32(header + kWalOffsetPartition);
  if (partition >= kWalPartitionCount && partition != kWalNodePartition) {
    return "bad partition";
  }
  const uint64_t stored_hash = LoadU64(header + kWalOffsetRecordHash);
  StoreU64(header + kWalOffsetRecordHash, 0);
  const uint64_t hash = Hash64(header, kWalRecordHeaderSizeBytes + body_size);
  StoreU64(header + kWalOffsetRecordHash, stored_hash);
  if (hash != stored_hash) {
    return "record_hash mismatch";
  }
  view.kind = LoadU16(header + kWalOffsetKind);
  view.partition = partition;
  view.index = LoadU64(header + kWalOffsetIndex);
  view.epoch = LoadU64(header + kWalOffsetEpoch);
  view.previous_hash = LoadU64(header + kWalOffsetPreviousHash);
  view.record_hash = stored_hash;
  view.body = absl::Span<const uint8_t>(header + kWalRecordHeaderSizeBytes, body_size);
  view.position = offset;
  return std::string();
}

// Parses the group marker at the start of `bytes`, read at `offset` of a segment whose
// base is `base` and size `file_size`; checks the marker's own claims (kind, position,
// size) but not its chain.
std::string ParseGroupMarker(absl::Span<uint8_t> bytes, uint64_t base, uint64_t offset,
                             uint64_t file_size, WalRecordView& marker) {
  UM_CHECK_LE(offset, file_size);
  std::string reason = ParseRecord(bytes, 0, bytes.size(), marker);
  if (!reason.empty()) {
    return reason;
  }
  if (marker.kind != kWalKindGroup || !marker.body.empty() ||
      marker.partition != kWalNodePartition) {
    return "not a group marker";
  }
  if (marker.index != base + offset) {
    return absl::StrCat("group marker names position ", marker.index);  // Misdirected.
  }
  if (marker.epoch < kWalRecordHeaderSizeBytes || marker.epoch > file_size - offset) {
    return absl::StrCat("group size ", marker.epoch, " exceeds the file");
  }
  return std::string();
}

absl::Status ReadWholeFile(DiskFile& file, std::vector<uint8_t>& out) {
  out.resize(file.size_bytes());
  size_t done = 0;
  while (done < out.size()) {
    absl::StatusOr<size_t> count =
        file.Read(done, absl::Span<uint8_t>(out.data() + done, out.size() - done));
    if (!count.ok()) {
      return count.status();
    }
    if (*count == 0) {
      break;
    }
    done += *count;
  }
  out.resize(done);
  return absl::OkStatus();
}

bool AllZero(absl::Span<const uint8_t> bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string WalSegmentFileName(uint64_t base_position) {
  return absl::StrFormat("wal-%016x.log", base_position);
}

size_t Wal::ChainSlot(uint16_t kind, uint32_t partition) {
  if (kind == kWalKindGroup) {
    return kGroupChainSlot;
  }
  if (partition == kWalNodePartition) {
    return kWalPartitionCount;
  }
  UM_CHECK_LT(partition, kWalPartitionCount);
  return partition;
}

uint64_t Wal::chain_head(uint32_t partition) const { return heads_[ChainSlot(1, partition)]; }

std::vector<uint64_t> Wal::segment_bases() const {
  std::vector<uint64_t> bases;
  for (const Segment& segment : segments_) {
    bases.push_back(segment.base);
  }
  return bases;
}

Wal::Wal(Env& env, const WalOptions& options)
    : env_(env), options_(options), zeros_(options.preallocate_bytes, 0) {
  tail_.resize(std::max(options_.tail_bytes_initial, kWalSectorSizeBytes));
}

Wal::~Wal() = default;

// =======================================================================================
// Recovery.

struct Wal::Recovery {
  ChainHeads heads{};
  std::array<bool, kChainSlotCount> seen{};
  // True if the log still holds its first group: every chain must then start at 0.
  bool anchored = true;
  std::vector<WalRecordView> group;  // Records of the group being validated.
  // The segment being replayed, read through a reused window (no whole-file buffer).
  DiskFile* file = nullptr;
  uint64_t file_size = 0;
  uint64_t valid_end = 0;
  std::unique_ptr<uint8_t[]> window;
  size_t window_capacity = 0;
  uint64_t window_offset = 0;
  size_t window_size = 0;

  // Returns the file's bytes [offset, offset + length), reading them into the window
  // unless it holds them already. REQUIRES: offset + length <= file_size.
  absl::StatusOr<absl::Span<uint8_t>> Fetch(uint64_t offset, size_t length);
  // True if every byte of the file from `offset` on is zero.
  absl::StatusOr<bool> ZeroFrom(uint64_t offset);
};

absl::StatusOr<bool> Wal::Recovery::ZeroFrom(uint64_t offset) {
  constexpr uint64_t kStepBytes = 1024 * 1024;
  while (offset < file_size) {
    const uint64_t length = std::min(kStepBytes, file_size - offset);
    absl::StatusOr<absl::Span<uint8_t>> bytes = Fetch(offset, static_cast<size_t>(length));
    if (!bytes.ok()) {
      return bytes.status();
    }
    if (!AllZero(*bytes)) {
      return false;
    }
    offset += length;
  }
  return true;
}

absl::StatusOr<absl::Span<uint8_t>> Wal::Recovery::Fetch(uint64_t offset, size_t length) {
  UM_CHECK_LE(offset + length, file_size);
  if (offset >= window_offset && offset + length <= window_offset + window_size) {
    return absl::Span<uint8_t>(window.get() + (offset - window_offset), length);
  }
  constexpr size_t kWindowBytesMin = 4 * 1024 * 1024;
  const size_t wanted = std::max(length, kWindowBytesMin);
  if (window_capacity < wanted) {
    window = std::make_unique_for_overwrite<uint8_t[]>(wanted);
    window_capacity = wanted;
  }
  const size_t fill = static_cast<size_t>(std::min<uint64_t>(window_capacity, file_size - offset));
  size_t done = 0;
  while (done < fill) {
    absl::StatusOr<size_t> count =
        file->Read(offset + done, absl::Span<uint8_t>(window.get() + done, fill - done));
    if (!count.ok()) {
      return count.status();
    }
    if (*count == 0) {
      return absl::DataLossError("wal: segment shorter than its size while reading");
    }
    done += *count;
  }
  window_offset = offset;
  window_size = fill;
  UM_CHECK_GE(fill, length);
  return absl::Span<uint8_t>(window.get(), length);
}

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(Env& env, const WalOptions& options,
                                               RecordVisitor visitor) {
  if (options.segment_size_bytes < kWalSectorSizeBytes) {
    return absl::InvalidArgumentError("wal: segment_size_bytes below one sector");
  }
  if (options.tail_bytes_max < 2 * kWalRecordHeaderSizeBytes + kWalBodySizeBytesMax) {
    return absl::InvalidArgumentError("wal: tail_bytes_max cannot hold the largest record");
  }
  std::unique_ptr<Wal> wal(new Wal(env, options));
  absl::Status status = wal->Recover(visitor);
  if (!status.ok()) {
    return status;
  }
  return wal;
}

absl::Status Wal::Recover(RecordVisitor visitor) {
  absl::StatusOr<std::unique_ptr<DiskFile>> manifest = env_.OpenDiskFile(kWalManifestFileName);
  if (!manifest.ok()) {
    return manifest.status();
  }
  manifest_file_ = std::move(*manifest);
  absl::Status status = LoadManifest();
  if (!status.ok()) {
    return status;
  }
  status = RemoveUnlistedFiles();
  if (!status.ok()) {
    env_.Log(absl::StrCat("wal: could not remove an unlisted segment: ", status.ToString()));
  }
  Recovery recovery;
  recovery.anchored = segments_.empty() || segments_.front().base == 0;
  std::unique_ptr<DiskFile> last_file;
  for (size_t i = 0; i < segments_.size(); ++i) {
    absl::StatusOr<std::unique_ptr<DiskFile>> file =
        env_.OpenDiskFile(WalSegmentFileName(segments_[i].base));
    if (!file.ok()) {
      return file.status();
    }
    recovery.file = file->get();
    recovery.file_size = (*file)->size_bytes();
    recovery.window_size = 0;
    status = ReplaySegment(i, recovery, visitor);
    if (!status.ok()) {
      return status;
    }
    if (recovery.valid_end < recovery.file_size && i + 1 == segments_.size()) {
      // A torn tail or zeros written ahead: the tail is placed at the valid end.
      (*file)->Truncate(recovery.valid_end);
      truncation_pending_ = true;
    }
    // Earlier segments never end in zeros (a segment's last group trims them before the
    // manifest lists its successor); zeros there would be left alone.
    segments_[i].size_bytes = AlignUp(recovery.valid_end);
    if (i + 1 == segments_.size()) {
      last_file = std::move(*file);  // Becomes the active file; others close here.
    }
  }
  heads_ = recovery.heads;
  FinishRecovery(std::move(last_file));
  return absl::OkStatus();
}

void Wal::FinishRecovery(std::unique_ptr<DiskFile> last_file) {
  durable_heads_ = heads_;
  sealed_heads_ = heads_;
  active_file_ = std::move(last_file);
  PlaceTailAfterDurable();
  durable_end_ = tail_start_;
  sealed_end_ = durable_end_;
  UM_CHECK_EQ(tail_start_ % kSector, 0u);
  UM_CHECK_GE(tail_start_, durable_end_);
}

absl::Status Wal::ReplaySegment(size_t segment_index, Recovery& recovery, RecordVisitor visitor) {
  const uint64_t base = segments_[segment_index].base;
  const uint64_t size = recovery.file_size;
  uint64_t offset = 0;
  recovery.valid_end = 0;
  while (offset < size) {
    absl::StatusOr<absl::Span<uint8_t>> head =
        recovery.Fetch(offset, std::min<uint64_t>(kSector, size - offset));
    if (!head.ok()) {
      return head.status();
    }
    if (AllZero(*head)) {
      absl::StatusOr<bool> zero_tail = recovery.ZeroFrom(offset + head->size());
      if (!zero_tail.ok()) {
        return zero_tail.status();
      }
      if (*zero_tail) {
        break;  // Only zeros follow (preallocated, or an unwritten sector): the end.
      }
    }
    WalRecordView marker;
    std::string reason = ParseGroupMarker(*head, base, offset, size, marker);
    if (reason.empty() && (recovery.seen[kGroupChainSlot] || recovery.anchored) &&
        marker.previous_hash != recovery.heads[kGroupChainSlot]) {
      reason = "broken group chain";
    }
    if (!reason.empty()) {
      return HandleInvalidGroup(segment_index, offset, offset, reason, recovery);
    }
    absl::StatusOr<absl::Span<uint8_t>> group = recovery.Fetch(offset, marker.epoch);
    if (!group.ok()) {
      return group.status();
    }
    // Validate the whole group before replaying any of it: a group is all or nothing.
    ChainHeads heads = recovery.heads;
    std::array<bool, kChainSlotCount> seen = recovery.seen;
    heads[kGroupChainSlot] = marker.record_hash;
    seen[kGroupChainSlot] = true;
    recovery.group.clear();
    for (uint64_t p = kWalRecordHeaderSizeBytes; p < group->size();) {
      WalRecordView record;
      reason = ParseRecord(*group, p, group->size(), record);
      const size_t slot = reason.empty() ? ChainSlot(record.kind, record.partition) : 0;
      if (reason.empty() && record.kind == kWalKindGroup) {
        reason = "group marker inside a group";
      } else if (reason.empty() && (seen[slot] || recovery.anchored) &&
                 record.previous_hash != heads[slot]) {
        reason = absl::StrCat("broken hash chain of partition ", record.partition);
      }
      if (!reason.empty()) {
        return HandleInvalidGroup(segment_index, offset, offset + p, reason, recovery);
      }
      heads[slot] = record.record_hash;
      seen[slot] = true;
      record.position = base + offset + p;
      recovery.group.push_back(record);
      p += kWalRecordHeaderSizeBytes + record.body.size();
    }
    for (const WalRecordView& record : recovery.group) {
      visitor(record);
      ++stats_.records_replayed;
      stats_.bytes_replayed += kWalRecordHeaderSizeBytes + record.body.size();
    }
    recovery.heads = heads;
    recovery.seen = seen;
    offset = std::min<uint64_t>(AlignUp(offset + marker.epoch), size);
    recovery.valid_end = offset;
  }
  return absl::OkStatus();
}

absl::Status Wal::HandleInvalidGroup(size_t segment_index, uint64_t group_offset,
                                     uint64_t bad_offset, const std::string& reason,
                                     Recovery& recovery) {
  const uint64_t base = segments_[segment_index].base;
  const std::string name = WalSegmentFileName(base);
  const std::string where = absl::StrCat(name, " at offset ", bad_offset, " (", reason, ")");
  if (segment_index + 1 < segments_.size()) {
    // A segment is complete and durable before its successor is created.
    return absl::DataLossError(
        absl::StrCat("wal: corrupt record in ", where, " in a segment followed by another"));
  }
  const uint64_t size = recovery.file_size;
  for (uint64_t q = group_offset + kSector; q + kWalRecordHeaderSizeBytes <= size; q += kSector) {
    absl::StatusOr<absl::Span<uint8_t>> head = recovery.Fetch(q, kWalRecordHeaderSizeBytes);
    if (!head.ok()) {
      return head.status();
    }
    WalRecordView marker;
    if (ParseGroupMarker(*head, base, q, size, marker).empty()) {
      return absl::DataLossError(
          absl::StrCat("wal: corrupt record in ", where, "; a valid group follows at offset ", q));
    }
  }
  // A torn tail: the last group never became durable (it was never acknowledged).
  UM_CHECK_EQ(group_offset % kSector, 0u);
  recovery.valid_end = group_offset;
  stats_.torn_tail_bytes += size - group_offset;
  env_.Log(absl::StrCat("wal: torn tail in ", where, "; truncating ", name, " to ", group_offset,
                        " bytes (dropping ", size - group_offset, ")"));
  return absl::OkStatus();
}

absl::Status Wal::LoadManifest() {
  std::vector<uint8_t> bytes;
  absl::Status status = ReadWholeFile(*manifest_file_, bytes);
  if (!status.ok()) {
    return status;
  }
  bytes.resize(kWalManifestSlotCount * kWalManifestSlotSizeBytes, 0);
  size_t best_slot = kWalManifestSlotCount;
  uint64_t best_generation = 0;
  for (size_t slot = 0; slot < kWalManifestSlotCount; ++slot) {
    uint8_t* header = bytes.data() + slot * kWalManifestSlotSizeBytes;
    const uint32_t count = LoadU32(header + kManifestOffsetCount);
    if (LoadU32(header + kManifestOffsetMagic) != kWalManifestMagic ||
        LoadU16(header + kManifestOffsetVersion) != kWalFormatVersion ||
        LoadU16(header + kManifestOffsetSlot) != slot || count > kWalSegmentCountMax) {
      continue;
    }
    const uint64_t stored = LoadU64(header + kManifestOffsetChecksum);
    StoreU64(header + kManifestOffsetChecksum, 0);
    const uint64_t checksum =
        Hash64(header, kWalManifestHeaderSizeBytes + count * kWalManifestEntrySizeBytes);
    StoreU64(header + kManifestOffsetChecksum, stored);
    const uint64_t generation = LoadU64(header + kManifestOffsetGeneration);
    if (checksum == stored && generation > best_generation) {
      best_slot = slot;
      best_generation = generation;
    }
  }
  if (best_slot == kWalManifestSlotCount) {
    if (AllZero(bytes)) {
      return absl::OkStatus();  // A fresh WAL.
    }
    // Only the first manifest write can have torn with no valid copy left; it listed
    // just the first segment, which then holds no group.
    absl::StatusOr<std::unique_ptr<DiskFile>> first = env_.OpenDiskFile(WalSegmentFileName(0));
    if (!first.ok()) {
      return first.status();
    }
    if ((*first)->size_bytes() > 0) {
      return absl::DataLossError("wal: wal.manifest has no valid slot but segments exist");
    }
    env_.Log("wal: wal.manifest holds only a torn first write; starting an empty log");
    return absl::OkStatus();
  }
  manifest_generation_ = best_generation;
  const uint8_t* header = bytes.data() + best_slot * kWalManifestSlotSizeBytes;
  const uint32_t count = LoadU32(header + kManifestOffsetCount);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* entry = header + kWalManifestHeaderSizeBytes + i * kWalManifestEntrySizeBytes;
    const uint64_t base = LoadU64(entry);
    if (LoadU32(entry + 8) == kManifestEntryLive) {
      segments_.push_back(Segment{base, 0});
    } else {
      unlisted_bases_.push_back(base);
    }
  }
  for (size_t i = 1; i < segments_.size(); ++i) {
    if (segments_[i].base <= segments_[i - 1].base) {
      return absl::DataLossError("wal: wal.manifest lists segments out of order");
    }
  }
  return absl::OkStatus();
}

std::vector<uint8_t> Wal::EncodeManifestSlot(size_t slot, uint64_t generation,
                                             const std::vector<uint64_t>& live,
                                             const std::vector<uint64_t>& unlisted) const {
  const size_t count = live.size() + unlisted.size();
  UM_CHECK_LE(count, kWalSegmentCountMax);
  const size_t used = kWalManifestHeaderSizeBytes + count * kWalManifestEntrySizeBytes;
  std::vector<uint8_t> out(AlignUp(used), 0);
  StoreU32(out.data() + kManifestOffsetMagic, kWalManifestMagic);
  StoreU16(out.data() + kManifestOffsetVersion, kWalFormatVersion);
  StoreU16(out.data() + kManifestOffsetSlot, static_cast<uint16_t>(slot));
  StoreU64(out.data() + kManifestOffsetGeneration, generation);
  StoreU32(out.data() + kManifestOffsetCount, static_cast<uint32_t>(count));
  uint8_t* entry = out.data() + kWalManifestHeaderSizeBytes;
  for (size_t i = 0; i < count; ++i, entry += kWalManifestEntrySizeBytes) {
    const bool is_live = i < live.size();
    StoreU64(entry, is_live ? live[i] : unlisted[i - live.size()]);
    StoreU32(entry + 8, is_live ? kManifestEntryLive : kManifestEntryUnlisted);
  }
  StoreU64(out.data() + kManifestOffsetChecksum, Hash64(out.data(), used));
  return out;
}

// =======================================================================================
// Appending and flushing.

void Wal::PlaceTail(uint64_t segment_base, uint64_t end_offset, bool segment_listed) {
  UM_CHECK_EQ(end_offset % kSector, 0u);
  if (segment_listed && EndsSegment(end_offset)) {
    tail_segment_base_ = segment_base + end_offset;  // Roll: a new, unlisted segment.
    tail_segment_listed_ = false;
  } else {
    tail_segment_base_ = segment_base;
    tail_segment_listed_ = segment_listed;
  }
  tail_start_ = segment_base + end_offset;
  tail_size_ = kWalRecordHeaderSizeBytes;  // Room for the group marker.
  records_in_tail_ = 0;
}

void Wal::PlaceTailAfterDurable() {
  if (segments_.empty()) {
    PlaceTail(0, 0, false);
  } else {
    PlaceTail(segments_.back().base, segments_.back().size_bytes, true);
  }
}

void Wal::EnsureTailCapacity(size_t size_bytes) {
  if (tail_.size() < size_bytes) {
    tail_.resize(std::max(size_bytes, 2 * tail_.size()));
  }
}

absl::StatusOr<uint64_t> Wal::Append(uint16_t kind, uint32_t partition, uint64_t index,
                                     uint64_t epoch, absl::Span<const uint8_t> body) {
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("wal: failed by an earlier sync error: ", failure_.ToString()));
  }
  UM_CHECK_NE(kind, kWalKindGroup);
  UM_CHECK_LE(body.size(), kWalBodySizeBytesMax);
  const size_t slot = ChainSlot(kind, partition);  // Checks the partition.
  const size_t size = kWalRecordHeaderSizeBytes + body.size();
  if (tail_size_ + size > options_.tail_bytes_max) {
    return absl::ResourceExhaustedError("wal: tail full; sync before appending more");
  }
  EnsureTailCapacity(tail_size_ + size + kSector);  // Room for the padding too.
  const uint64_t position = tail_start_ + tail_size_;
  uint8_t* out = tail_.data() + tail_size_;
  if (!body.empty()) {
    std::memcpy(out + kWalRecordHeaderSizeBytes, body.data(), body.size());
  }
  heads_[slot] = EncodeRecord(out, kind, static_cast<uint32_t>(body.size()), partition, index,
                              epoch, heads_[slot]);
  tail_size_ += size;
  ++records_in_tail_;
  ++records_since_sync_call_;
  ++stats_.records_appended;
  stats_.bytes_appended += size;
  return position;
}

void Wal::Sync(SyncDone done) {
  ++stats_.sync_requests;
  if (!failure_.ok()) {
    CompleteLater(std::move(done), failure_);
    return;
  }
  if (unclaimed_discard_) {
    // Records appended before this call were discarded by a rollback that no waiter
    // reported; fail this call and drop what was appended since, so the caller's view
    // stays "everything since the last OK sync is gone".
    unclaimed_discard_ = false;
    DiscardTail();
    CompleteLater(std::move(done),
                  absl::ResourceExhaustedError("wal: records appended before this sync were rolled "
                                               "back after a full disk"));
    return;
  }
  records_since_sync_call_ = 0;
  if (records_in_tail_ == 0) {
    if (in_flight_ == Operation::kGroup) {
      in_flight_waiters_.push_back(std::move(done));  // Its records are in that group.
    } else {
      CompleteLater(std::move(done), absl::OkStatus());
    }
    return;
  }
  waiting_.push_back(std::move(done));
  StartNextOperation();
}

absl::Status Wal::SyncAndWait() {
  return Await<absl::Status>(env_.fibers(), [this](absl::AnyInvocable<void(absl::Status)> done) {
    Sync(std::move(done));
  });
}

void Wal::StartNextOperation() {
  if (in_flight_ != Operation::kNone || !failure_.ok()) {
    return;
  }
  if (!waiting_.empty()) {
    UM_CHECK_GT(records_in_tail_, 0u);
    if (!tail_segment_listed_) {
      StartManifestWrite(Operation::kManifestForSegment);
    } else {
      StartGroup();
    }
    return;
  }
  if (!removal_bases_.empty()) {
    StartManifestWrite(Operation::kManifestForRemoval);
  }
}

void Wal::SealGroupMarker() {
  const uint64_t previous = heads_[kGroupChainSlot];
  heads_[kGroupChainSlot] = EncodeRecord(tail_.data(), kWalKindGroup, 0, kWalNodePartition,
                                         tail_start_, tail_size_, previous);
  const size_t padded = AlignUp(tail_size_);
  UM_CHECK_LE(padded, tail_.size());
  std::memset(tail_.data() + tail_size_, 0, padded - tail_size_);
  stats_.padding_bytes += padded - tail_size_;
}

void Wal::StartGroup() {
  UM_CHECK(tail_segment_listed_);
  UM_CHECK(active_file_ != nullptr);
  UM_CHECK(in_flight_waiters_.empty());
  SealGroupMarker();
  const size_t padded = AlignUp(tail_size_);
  const uint64_t offset = tail_start_ - tail_segment_base_;
  active_file_->Write(offset, absl::Span<const uint8_t>(tail_.data(), padded));
  PreallocateAfter(offset + padded);
  sealed_end_ = tail_start_ + padded;
  sealed_heads_ = heads_;
  records_in_flight_ = records_in_tail_;
  in_flight_waiters_.swap(waiting_);
  PlaceTail(tail_segment_base_, offset + padded, true);
  in_flight_ = Operation::kGroup;
  ++stats_.disk_syncs;
  active_file_->Sync([this](absl::Status status) { OnGroupSynced(std::move(status)); });
}

void Wal::PreallocateAfter(uint64_t group_end) {
  const uint64_t file_end = active_file_->size_bytes();  // Queued writes included.
  UM_CHECK_GE(file_end, group_end);
  if (EndsSegment(group_end)) {
    // The segment's last group (PlaceTail rolls after it): the segment ends here, so that
    // its successor starts where its records do.
    if (file_end > group_end) active_file_->Truncate(group_end);
    return;
  }
  const uint64_t limit = AlignUp(options_.segment_size_bytes);
  const uint64_t end = std::min<uint64_t>(group_end + zeros_.size(), limit);
  if (zeros_.empty() || end <= file_end || file_end - group_end >= zeros_.size() / 2) return;
  active_file_->Write(file_end, absl::Span<const uint8_t>(zeros_.data(), end - file_end));
  stats_.preallocated_bytes += end - file_end;
}

void Wal::OnGroupSynced(absl::Status status) {
  UM_CHECK(in_flight_ == Operation::kGroup);
  in_flight_ = Operation::kNone;
  if (!status.ok()) {
    if (absl::IsResourceExhausted(status)) {
      Rollback(status, /*truncate_active_file=*/true);
    } else {
      Fail(status);
    }
    return;
  }
  UM_CHECK_GE(sealed_end_, durable_end_ + kSector);
  durable_end_ = sealed_end_;
  durable_heads_ = sealed_heads_;
  Segment& segment = segments_.back();
  segment.size_bytes = durable_end_ - segment.base;
  truncation_pending_ = false;
  records_in_flight_ = 0;
  ++stats_.groups;
  if (records_in_tail_ == 0) {
    PlaceTailAfterDurable();  // A roll may have been deferred by a pending truncation.
  }
  std::vector<SyncDone> done;
  done.swap(in_flight_waiters_);
  StartNextOperation();
  CompleteAll(done, absl::OkStatus());
}

void Wal::StartManifestWrite(Operation operation) {
  std::vector<uint64_t> live;
  std::vector<uint64_t> unlisted = unlisted_bases_;
  for (const Segment& segment : segments_) {
    const bool removing = operation == Operation::kManifestForRemoval &&
                          std::find(removal_bases_.begin(), removal_bases_.end(), segment.base) !=
                              removal_bases_.end();
    (removing ? unlisted : live).push_back(segment.base);
  }
  if (operation == Operation::kManifestForSegment) {
    live.push_back(tail_segment_base_);
  }
  if (live.size() + unlisted.size() > kWalSegmentCountMax) {
    RefuseManifestWrite(operation);
    return;
  }
  if (operation == Operation::kManifestForRemoval) {
    removal_in_flight_.swap(removal_bases_);
    removal_bases_.clear();
    removal_in_flight_waiters_.swap(removal_waiters_);
  }
  const uint64_t generation = manifest_generation_ + 1;
  const size_t first_slot = (generation % 2) * 2;
  for (size_t slot = first_slot; slot < first_slot + 2; ++slot) {
    const std::vector<uint8_t> bytes = EncodeManifestSlot(slot, generation, live, unlisted);
    manifest_file_->Write(slot * kWalManifestSlotSizeBytes, bytes);
  }
  in_flight_ = operation;
  ++stats_.disk_syncs;
  ++stats_.manifest_writes;
  manifest_file_->Sync(
      [this, operation](absl::Status status) { OnManifestSynced(operation, std::move(status)); });
}

void Wal::RefuseManifestWrite(Operation operation) {
  // Not a disk failure: nothing was written, and the waiters hear it later from the loop
  // (this runs inside Sync or RemoveSegmentsBefore).
  const absl::Status full = absl::ResourceExhaustedError(
      "wal: too many segments for the manifest; checkpoint and recycle");
  std::vector<SyncDone>& waiters =
      operation == Operation::kManifestForSegment ? waiting_ : removal_waiters_;
  UM_CHECK(!waiters.empty());
  for (SyncDone& waiter : waiters) {
    CompleteLater(std::move(waiter), full);
  }
  waiters.clear();
  if (operation == Operation::kManifestForSegment) {
    ++stats_.rollbacks;
    unclaimed_discard_ = records_since_sync_call_ > 0;
    DiscardTail();
  } else {
    removal_bases_.clear();
  }
}

void Wal::OnManifestSynced(Operation operation, absl::Status status) {
  UM_CHECK(in_flight_ == operation);
  in_flight_ = Operation::kNone;
  if (!status.ok() && !absl::IsResourceExhausted(status)) {
    Fail(status);
    return;
  }
  if (status.ok()) {
    ++manifest_generation_;
  } else if (absl::Status reopened = ReopenManifestFile(); !reopened.ok()) {
    Fail(reopened);
    return;
  }
  if (operation == Operation::kManifestForSegment) {
    if (!status.ok()) {
      Rollback(status, /*truncate_active_file=*/false);
      return;
    }
    segments_.push_back(Segment{tail_segment_base_, 0});
    tail_segment_listed_ = true;
    ++stats_.segments_created;
    active_file_.reset();  // The previous segment is complete and durable.
    if (absl::Status opened = OpenActiveFile(); !opened.ok()) {
      Fail(opened);
      return;
    }
    StartNextOperation();
    return;
  }
  if (status.ok()) {
    for (uint64_t base : removal_in_flight_) {
      segments_.erase(std::find_if(segments_.begin(), segments_.end(),
                                   [base](const Segment& s) { return s.base == base; }));
      unlisted_bases_.push_back(base);
    }
    status = RemoveUnlistedFiles();
  }
  removal_in_flight_.clear();
  std::vector<SyncDone> done;
  done.swap(removal_in_flight_waiters_);
  StartNextOperation();
  CompleteAll(done, status);
}

absl::Status Wal::RemoveUnlistedFiles() {
  absl::Status first_error;
  std::vector<uint64_t> kept;
  for (uint64_t base : unlisted_bases_) {
    const absl::Status status = env_.RemoveDiskFile(WalSegmentFileName(base));
    if (status.ok()) {
      ++stats_.segments_removed;
    } else if (!absl::IsNotFound(status)) {
      kept.push_back(base);  // Retried after the next manifest write or Open.
      first_error.Update(status);
    }
  }
  unlisted_bases_ = std::move(kept);
  return first_error;
}

void Wal::RemoveSegmentsBefore(uint64_t position, SyncDone done) {
  UM_CHECK_LE(position, durable_end_);
  if (!failure_.ok()) {
    CompleteLater(std::move(done), failure_);
    return;
  }
  size_t added = 0;
  // Never the last listed segment: the tail goes there or right after it.
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    const Segment& segment = segments_[i];
    if (segment.base + segment.size_bytes > position) {
      break;
    }
    if (std::find(removal_bases_.begin(), removal_bases_.end(), segment.base) ==
            removal_bases_.end() &&
        std::find(removal_in_flight_.begin(), removal_in_flight_.end(), segment.base) ==
            removal_in_flight_.end()) {
      removal_bases_.push_back(segment.base);
      ++added;
    }
  }
  if (added == 0 && removal_bases_.empty()) {
    CompleteLater(std::move(done), absl::OkStatus());
    return;
  }
  removal_waiters_.push_back(std::move(done));
  StartNextOperation();
}

// =======================================================================================
// Errors.

void Wal::DiscardTail() {
  stats_.records_discarded += records_in_tail_;
  heads_ = durable_heads_;
  PlaceTailAfterDurable();
}

void Wal::Rollback(const absl::Status& status, bool truncate_active_file) {
  ++stats_.rollbacks;
  stats_.records_discarded += records_in_flight_;
  records_in_flight_ = 0;
  unclaimed_discard_ = records_since_sync_call_ > 0;
  records_since_sync_call_ = 0;
  sealed_end_ = durable_end_;
  sealed_heads_ = durable_heads_;
  DiscardTail();
  env_.Log(absl::StrCat("wal: sync failed (", status.ToString(), "); rolled back to position ",
                        durable_end_));
  std::vector<SyncDone> done;
  done.swap(in_flight_waiters_);
  for (SyncDone& waiter : waiting_) {
    done.push_back(std::move(waiter));
  }
  waiting_.clear();
  if (truncate_active_file) {
    // A failed handle may keep failing (PosixDiskFile errors are sticky): reopen it, and
    // make the truncation durable before anything else is written, so bytes of the failed
    // group that reached the disk anyway cannot sit after the next group.
    active_file_.reset();
    if (absl::Status opened = OpenActiveFile(); !opened.ok()) {
      Fail(opened);
      CompleteAll(done, failure_);
      return;
    }
    active_file_->Truncate(segments_.back().size_bytes);
    in_flight_ = Operation::kTruncate;
    ++stats_.disk_syncs;
    active_file_->Sync([this](absl::Status synced) {
      in_flight_ = Operation::kNone;
      if (!synced.ok()) {
        Fail(synced);
        return;
      }
      StartNextOperation();
    });
  }
  CompleteAll(done, status);
}

void Wal::Fail(const absl::Status& status) {
  failure_ = absl::InternalError(absl::StrCat("wal: disk error: ", status.ToString()));
  env_.Log(failure_.ToString());
  std::vector<SyncDone> done;
  done.swap(in_flight_waiters_);
  for (std::vector<SyncDone>* list : {&waiting_, &removal_waiters_, &removal_in_flight_waiters_}) {
    for (SyncDone& waiter : *list) {
      done.push_back(std::move(waiter));
    }
    list->clear();
  }
  CompleteAll(done, failure_);
}

absl::Status Wal::OpenActiveFile() {
  UM_CHECK(!segments_.empty());
  UM_CHECK(active_file_ == nullptr);
  absl::StatusOr<std::unique_ptr<DiskFile>> file =
      env_.OpenDiskFile(WalSegmentFileName(segments_.back().base));
  if (!file.ok()) {
    return file.status();
  }
  active_file_ = std::move(*file);
  return absl::OkStatus();
}

absl::Status Wal::ReopenManifestFile() {
  manifest_file_.reset();
  absl::StatusOr<std::unique_ptr<DiskFile>> file = env_.OpenDiskFile(kWalManifestFileName);
  if (!file.ok()) {
    return file.status();
  }
  manifest_file_ = std::move(*file);
  return absl::OkStatus();
}

void Wal::CompleteLater(SyncDone done, absl::Status status) {
  env_.StartTimer(0, [done = std::move(done), status = std::move(status)]() mutable {
    done(std::move(status));
  });
}

void Wal::CompleteAll(std::vector<SyncDone>& waiters, const absl::Status& status) {
  for (SyncDone& waiter : waiters) {
    waiter(status);
  }
  waiters.clear();
}

}  // namespace unimeter
