// storage/wal.h
//
// Wal is one node's write-ahead log: the system of record for every replicated entry of
// all 256 partitions. Records are appended to an in-memory tail and made durable in
// groups, one DiskFile::Sync (fdatasync on a real node) per group, covering every
// partition's records. Event-loop only; all I/O goes through Env (node/env/env.h), so the
// same code runs on a real node and in the simulator. docs/formats/wal.md is the format.
//
// Records. A 48-byte little-endian header {magic, format_version, kind, body_size,
// partition, index, epoch, previous_hash, record_hash} and the body. record_hash is
// Hash64 over the header (record_hash zeroed) and the body; previous_hash is the
// record_hash of the previous record of the same partition, so each partition's records
// form a hash chain and torn, misdirected and corrupted records are detected.
//
// Groups and segments. Each group (the bytes one Sync makes durable) starts at a
// 4096-byte sector boundary with a group marker (a kind-0 record giving the group's
// position and size, hash-chained to the previous group's marker) and ends with zero
// padding to the next boundary, so a torn write damages only the last group and never
// rewrites a sector holding durable records. A group is replayed whole or not at all.
// Groups go into segment files "wal-<16 hex digits of the segment's first global byte
// position>.log"; a new segment starts at the first group boundary after the current
// one reached options.segment_size_bytes. A position is a global byte offset (the
// segment's base plus the offset in the segment); positions only grow.
//
// Manifest. Env cannot list or rename files, so "wal.manifest" names the segments: four
// fixed 64 KiB slots, each holding a whole checksummed copy of the segment list with a
// generation number. A new generation is written into two slots (alternating pairs) and
// synced before it is acted upon (a segment is created only after it is listed; a
// segment is removed only after it is unlisted), so a torn manifest write leaves the
// previous generation intact and one damaged copy leaves the other.
//
// Recovery (Open). Every record of every valid group is replayed in log order. The
// first invalid group (a bad header, checksum, size or position, or a broken chain in
// any of its records) in the LAST segment is a torn tail if no later sector boundary of
// that segment holds a valid group marker: it is truncated and logged.
// Otherwise, and for any invalid record in an earlier segment (a segment is complete and
// durable before its successor is created), Open returns DataLoss naming file and offset.
//
// Errors of Sync:
//   ResourceExhausted (disk full): every record not yet durable is discarded (the file is
//     truncated back to its durable size, the chain heads restored), every pending
//     waiter gets the error, and the Wal stays usable: the caller answers BACKPRESSURE
//     and appends again later. A Sync called after such a rollback fails too if records
//     appended before it were discarded (so no caller mistakes them for durable).
//   anything else (an IO or fsync error): every waiter gets Internal and the Wal is
//     failed for good: Append and Sync return FailedPrecondition / Internal. The caller
//     must crash the node (UM_CHECK); recovery then restarts from disk and peers.
//
// Records whose Sync failed may still turn up at a later recovery (the disk may have
// kept them), exactly like records appended before a crash and never synced.
#ifndef UNIMETER_STORAGE_WAL_H_
#define UNIMETER_STORAGE_WAL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/env/env.h"

namespace unimeter {

// ---------------------------------------------------------------------------------------
// Format constants (docs/formats/wal.md; wal_test.cc pins them).
inline constexpr uint32_t kWalRecordMagic = 0x4C574D55;  // "UMWL" in little-endian bytes.
inline constexpr uint16_t kWalFormatVersion = 1;
inline constexpr size_t kWalRecordHeaderSizeBytes = 48;
inline constexpr size_t kWalSectorSizeBytes = 4096;
// One record body carries at most one replication batch entry; the header must fit too.
inline constexpr size_t kWalBodySizeBytesMax = 4 * 1024 * 1024;
static_assert(kWalBodySizeBytesMax <= kMessageSizeBytesMax);
static_assert(kWalRecordHeaderSizeBytes % 8 == 0);
// Record header field offsets (little-endian fields; docs/formats/wal.md).
inline constexpr size_t kWalOffsetMagic = 0;          // u32
inline constexpr size_t kWalOffsetVersion = 4;        // u16
inline constexpr size_t kWalOffsetKind = 6;           // u16; 0 = group marker
inline constexpr size_t kWalOffsetBodySize = 8;       // u32
inline constexpr size_t kWalOffsetPartition = 12;     // u32
inline constexpr size_t kWalOffsetIndex = 16;         // u64
inline constexpr size_t kWalOffsetEpoch = 24;         // u64; a group marker's group size
inline constexpr size_t kWalOffsetPreviousHash = 32;  // u64
inline constexpr size_t kWalOffsetRecordHash = 40;    // u64
static_assert(kWalOffsetRecordHash + 8 == kWalRecordHeaderSizeBytes);
static_assert(kWalRecordHeaderSizeBytes < kWalSectorSizeBytes);
// Kind 0 is reserved for the WAL's own framing: the group marker that opens every group
// (and whose zero padding closes it). Callers' kinds are 1..65535.
inline constexpr uint16_t kWalKindGroup = 0;
inline constexpr uint32_t kWalPartitionCount = 256;
inline constexpr uint32_t kWalNodePartition = 0xFFFFFFFF;  // Node-level records.

// Manifest layout.
inline constexpr uint32_t kWalManifestMagic = 0x464D4D55;  // "UMMF".
inline constexpr size_t kWalManifestSlotCount = 4;
inline constexpr size_t kWalManifestSlotSizeBytes = 64 * 1024;
inline constexpr size_t kWalManifestHeaderSizeBytes = 32;
inline constexpr size_t kWalManifestEntrySizeBytes = 16;
inline constexpr size_t kWalSegmentCountMax =
    (kWalManifestSlotSizeBytes - kWalManifestHeaderSizeBytes) / kWalManifestEntrySizeBytes;
static_assert(kWalManifestSlotSizeBytes % kWalSectorSizeBytes == 0);

inline constexpr char kWalManifestFileName[] = "wal.manifest";

// "wal-<16 lower-case hex digits of base_position>.log".
std::string WalSegmentFileName(uint64_t base_position);

// ---------------------------------------------------------------------------------------
struct WalOptions {
  // A new segment starts at the first group boundary at or after this size.
  uint64_t segment_size_bytes = 64 * 1024 * 1024;
  // Bound on the in-memory tail (records appended and not yet handed to a sync);
  // Append returns ResourceExhausted beyond it.
  size_t tail_bytes_max = 64 * 1024 * 1024;
  // Initial capacity of the tail buffer (it grows to the largest group seen, then stays).
  size_t tail_bytes_initial = 1024 * 1024;
  // Zeros written ahead of the log's end in the active segment (in the same write as a
  // group, refilled once fewer than half remain), so that most group syncs overwrite
  // allocated blocks inside the file's size and fdatasync need not commit size metadata
  // (docs/benchmarks.md, "WAL preallocation"). A segment's last group trims the zeros
  // after it; recovery takes zeros after the last group for the end of the log. 0: off.
  size_t preallocate_bytes = 1024 * 1024;
};

// One record as replayed by Open. `body` points into a recovery buffer and is valid only
// during the visitor call.
struct WalRecordView {
  uint16_t kind = 0;
  uint32_t partition = 0;
  uint64_t index = 0;
  uint64_t epoch = 0;
  uint64_t previous_hash = 0;
  uint64_t record_hash = 0;
  absl::Span<const uint8_t> body;
  uint64_t position = 0;  // Global byte position of the record's header.
};

struct WalStats {
  uint64_t records_appended = 0;   // Since Open.
  uint64_t bytes_appended = 0;     // Record bytes (headers and bodies) since Open.
  uint64_t sync_requests = 0;      // Sync() calls.
  uint64_t disk_syncs = 0;         // DiskFile::Sync calls issued (groups + manifest).
  uint64_t groups = 0;             // Groups made durable.
  uint64_t padding_bytes = 0;      // Zero bytes written to align groups.
  uint64_t rollbacks = 0;          // Disk-full rollbacks.
  uint64_t records_discarded = 0;  // Records dropped by rollbacks.
  uint64_t manifest_writes = 0;
  uint64_t segments_created = 0;
  uint64_t segments_removed = 0;
  uint64_t records_replayed = 0;    // By Open.
  uint64_t bytes_replayed = 0;      // Record bytes replayed by Open.
  uint64_t torn_tail_bytes = 0;     // Bytes truncated by Open.
  uint64_t preallocated_bytes = 0;  // Zeros written ahead of the log's end.
};

class Wal {
 public:
  using RecordVisitor = absl::FunctionRef<void(const WalRecordView& record)>;
  using SyncDone = absl::AnyInvocable<void(absl::Status status)>;

  // Opens the WAL in env's data directory (creating an empty one if there is none) and
  // replays every valid record, in log order, to `visitor`. Truncates a torn tail (and
  // logs file and offset through env.Log). Returns DataLoss naming file and offset for
  // corruption followed by valid records, InvalidArgument for bad options, or the IO
  // error. Does not suspend (the truncation becomes durable with the next group).
  static absl::StatusOr<std::unique_ptr<Wal>> Open(Env& env, const WalOptions& options,
                                                   RecordVisitor visitor);

  // Does no I/O: queued work that was not synced is dropped and the completions of disk
  // syncs in flight never run (as in a crash); their waiters are never called.
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Appends one record to the in-memory tail and returns its global position. It is
  // durable only once a Sync() called after this returns OK. No allocation once the tail
  // buffer is warm. Returns ResourceExhausted if the tail would exceed tail_bytes_max,
  // FailedPrecondition after a fatal sync error.
  // REQUIRES: kind != kWalKindGroup; partition < kWalPartitionCount or
  // partition == kWalNodePartition; body.size() <= kWalBodySizeBytesMax.
  absl::StatusOr<uint64_t> Append(uint16_t kind, uint32_t partition, uint64_t index, uint64_t epoch,
                                  absl::Span<const uint8_t> body);

  // Makes every record appended before this call durable, then calls `done` (always
  // later from the loop, never inside this call). Group commit: while one group's sync
  // is in flight, every Sync() call waits and all of them are served by ONE following
  // DiskFile::Sync. Errors: see the banner. After a disk-full rollback, OK covers the
  // records appended since the rollback: records it discarded were reported to the Sync
  // calls covering them, or (if appended after the last Sync call) to the next one.
  // Waiters complete in call order.
  void Sync(SyncDone done);

  // Sync() for fibers: suspends until done. May suspend. REQUIRES: called in a fiber.
  absl::Status SyncAndWait();

  // Removes every segment that lies entirely before `position` (never the segment the
  // tail goes to). The manifest stops listing them durably first, then the files are
  // removed. `done` runs later from the loop. REQUIRES: position <= durable_position().
  void RemoveSegmentsBefore(uint64_t position, SyncDone done);

  // Global position after the last appended record, or where the next group starts if
  // the tail holds none (never goes back except through a disk-full rollback).
  uint64_t appended_position() const {
    return records_in_tail_ > 0 ? tail_start_ + tail_size_ : tail_start_;
  }
  // Global position up to which everything is durable (sector-aligned).
  uint64_t durable_position() const { return durable_end_; }
  // The chain head (record_hash of the last appended record) of `partition`, 0 if none.
  uint64_t chain_head(uint32_t partition) const;
  // Base positions of the live segments, ascending.
  std::vector<uint64_t> segment_bases() const;
  const WalStats& stats() const { return stats_; }
  // OK, or the fatal error that failed the Wal.
  const absl::Status& failure() const { return failure_; }

 private:
  // One chain per partition, one for node-level records, one for group markers.
  static constexpr size_t kChainSlotCount = kWalPartitionCount + 2;
  static constexpr size_t kGroupChainSlot = kWalPartitionCount + 1;
  using ChainHeads = std::array<uint64_t, kChainSlotCount>;

  struct Segment {
    uint64_t base = 0;
    uint64_t size_bytes = 0;  // Durable bytes (sector-aligned after the first group).
  };
  struct Recovery;
  // The one disk operation in flight (they never overlap).
  enum class Operation { kNone, kGroup, kTruncate, kManifestForSegment, kManifestForRemoval };

  Wal(Env& env, const WalOptions& options);

  // Recovery (wal.cc).
  absl::Status Recover(RecordVisitor visitor);
  absl::Status LoadManifest();
  absl::Status ReplaySegment(size_t segment_index, Recovery& recovery, RecordVisitor visitor);
  absl::Status HandleInvalidGroup(size_t segment_index, uint64_t group_offset, uint64_t bad_offset,
                                  const std::string& reason, Recovery& recovery);
  void FinishRecovery(std::unique_ptr<DiskFile> last_file);

  // Flushing (wal.cc).
  void StartNextOperation();
  void StartGroup();
  void StartManifestWrite(Operation operation);
  void OnGroupSynced(absl::Status status);
  void OnManifestSynced(Operation operation, absl::Status status);
  void RefuseManifestWrite(Operation operation);
  absl::Status RemoveUnlistedFiles();
  void Rollback(const absl::Status& status, bool truncate_active_file);
  void DiscardTail();
  void SealGroupMarker();
  void Fail(const absl::Status& status);
  // True if a group ending at `end_offset` of a listed segment is its last: the next tail
  // rolls to a new segment (deferred while a truncation is pending).
  bool EndsSegment(uint64_t end_offset) const {
    return end_offset >= options_.segment_size_bytes && !truncation_pending_;
  }
  void PlaceTail(uint64_t segment_base, uint64_t end_offset, bool segment_listed);
  void PlaceTailAfterDurable();
  std::vector<uint8_t> EncodeManifestSlot(size_t slot, uint64_t generation,
                                          const std::vector<uint64_t>& live,
                                          const std::vector<uint64_t>& unlisted) const;
  absl::Status OpenActiveFile();
  absl::Status ReopenManifestFile();
  void CompleteLater(SyncDone done, absl::Status status);
  void CompleteAll(std::vector<SyncDone>& waiters, const absl::Status& status);
  void EnsureTailCapacity(size_t size_bytes);
  // After the write of a group ending at `group_end` (an offset in the active file):
  // extends the zeros ahead of it, or trims them if the group ends the segment.
  void PreallocateAfter(uint64_t group_end);
  static size_t ChainSlot(uint16_t kind, uint32_t partition);

  Env& env_;
  const WalOptions options_;

  // Live segments listed by the durable manifest, ascending by base.
  std::vector<Segment> segments_;
  // Segments unlisted by the durable manifest whose files may still exist.
  std::vector<uint64_t> unlisted_bases_;
  uint64_t manifest_generation_ = 0;
  std::unique_ptr<DiskFile> manifest_file_;
  std::unique_ptr<DiskFile> active_file_;  // The tail's segment, once listed and opened.

  // The tail: the next group, starting at global position tail_start_ (sector-aligned)
  // in the segment at tail_segment_base_ (listed in the manifest or not yet). Its first
  // kWalRecordHeaderSizeBytes are the group marker, filled in when the group is sealed.
  std::vector<uint8_t> tail_;
  const std::vector<uint8_t> zeros_;  // options_.preallocate_bytes of them.
  size_t tail_size_ = 0;
  uint64_t tail_start_ = 0;
  uint64_t tail_segment_base_ = 0;
  bool tail_segment_listed_ = false;
  ChainHeads heads_{};          // After every appended record.
  ChainHeads sealed_heads_{};   // After the group in flight.
  ChainHeads durable_heads_{};  // After the last durable group.
  uint64_t durable_end_ = 0;
  uint64_t sealed_end_ = 0;  // End of the group in flight (padding included).
  uint64_t records_in_tail_ = 0;
  uint64_t records_in_flight_ = 0;
  uint64_t records_since_sync_call_ = 0;
  // Open truncated a torn tail of the last segment and no sync has made that durable
  // yet: the tail must not leave that segment (a non-last segment must be clean).
  bool truncation_pending_ = false;

  Operation in_flight_ = Operation::kNone;
  std::vector<SyncDone> waiting_;            // For the next group.
  std::vector<SyncDone> in_flight_waiters_;  // For the group in flight.
  std::vector<SyncDone> removal_waiters_;
  std::vector<SyncDone> removal_in_flight_waiters_;
  std::vector<uint64_t> removal_bases_;  // Requested removals not yet in the manifest.
  std::vector<uint64_t> removal_in_flight_;
  // A rollback discarded records appended after the last Sync() call.
  bool unclaimed_discard_ = false;
  absl::Status failure_;
  WalStats stats_;
};

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_WAL_H_
