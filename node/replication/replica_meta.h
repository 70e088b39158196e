// node/replication/replica_meta.h
//
// ReplicaMeta is the small replication state a node must never forget once it has told a
// peer about it: its term and vote in the configuration group, the highest epoch promised
// for every partition, its incarnation and whether that incarnation is active (counts
// toward quorums). MetaFile keeps it in one disk file ("replica.meta") of four 8 KiB
// slots, each with a sequence number and a CRC32C. Every write puts two identical copies of
// the new state into one pair of slots (0-1 or 2-3) with one sync, alternating pairs, and
// Open picks the newest intact slot. So once a write is durable, one damaged slot (a bit
// flipped at rest, a bad read) leaves the other copy of the newest state, and a torn write
// damages only the pair being written, never the one holding the newest durable state.
// Files of format version 2 and 3 (two slots written alternately) are read as they are.
//
// Writes are coalesced: Save() while a write is in flight writes the newest state once that
// write completes, and every caller's `done` runs when a write covering its state is
// durable. A sync error is reported to `done` (the caller crashes the node).
// Event-loop only.
#ifndef UNIMETER_NODE_REPLICATION_REPLICA_META_H_
#define UNIMETER_NODE_REPLICATION_REPLICA_META_H_

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "node/env/env.h"
#include "node/store/node_store.h"

namespace unimeter::replication {

inline constexpr NodeId kNoVote = 0xFFFF'FFFF;
inline constexpr size_t kMetaSlotBytes = 8192;
inline constexpr size_t kMetaSlotCount = 4;  // Two pairs; each write fills one pair.
// The bytes of a slot its checksum covers, checksum included (format version 3); the rest
// of the slot is zero.
inline constexpr size_t kMetaSlotUsedBytes = 4138;
// The file's name in the data directory.
inline constexpr char kMetaFileName[] = "replica.meta";

inline constexpr NodeId kUnknownNodeId = 0xFFFF'FFFF;

struct ReplicaMeta {
  uint64_t incarnation = 0;  // Drawn when the data directory is created; never 0.
  // The node this data directory belongs to (--node-id when it was created); a node must
  // never run on another node's directory. kUnknownNodeId in files of format version 2.
  NodeId node_id = kUnknownNodeId;
  bool active = false;  // Holds every committed entry it ever acknowledged.
  bool formed = false;  // Has seen a leader: its cluster may hold data.
  uint64_t term = 0;
  NodeId voted_for = kNoVote;
  std::array<uint64_t, kPartitionCount> promised_epoch{};
  // The highest epoch this node began as owner, per partition: never begun again after a
  // restart (entries of it may live on peers and not here).
  std::array<uint64_t, kPartitionCount> started_epoch{};
  bool operator==(const ReplicaMeta&) const = default;
};

std::vector<uint8_t> EncodeMetaSlot(const ReplicaMeta& meta, uint64_t sequence);
// DataLoss if the slot is damaged or not a meta slot.
absl::StatusOr<ReplicaMeta> DecodeMetaSlot(absl::Span<const uint8_t> slot, uint64_t* sequence);

class MetaFile {
 public:
  using Done = absl::AnyInvocable<void(absl::Status status)>;

  // Opens or creates the file. `*fresh` is true if the file held no intact slot (a new or
  // wiped data directory); the returned meta is then default with incarnation 0.
  // DataLoss if the file exists with content but no slot is intact. A damaged slot beside
  // an intact one is logged and otherwise harmless (its pair is written next).
  static absl::StatusOr<std::unique_ptr<MetaFile>> Open(Env& env, bool* fresh);

  const ReplicaMeta& meta() const { return meta_; }
  // Write sequence numbers: every write's is one above the last (failed writes reuse
  // theirs). `opened_sequence()` is the newest intact one Open found (0: none),
  // `durable_sequence()` the newest write known durable (the opened one until a write
  // completes). On a disk that keeps synced writes, every write an earlier process made
  // durable is at or below the sequence a later process opens.
  uint64_t opened_sequence() const { return opened_sequence_; }
  uint64_t durable_sequence() const { return durable_sequence_; }
  // Changes the in-memory state; durable once a Save() issued after it completes.
  ReplicaMeta& mutable_meta() { return meta_; }
  // Writes two copies of the state to the pair of slots not holding the newest durable
  // state, then syncs. After a failed sync nothing more is written (every Save fails with
  // that error): the caller fail-stops, and the pair with the newest durable state is never
  // touched.
  void Save(Done done);

 private:
  MetaFile(Env& env, std::unique_ptr<DiskFile> file) : env_(env), file_(std::move(file)) {}
  void StartWrite();

  Env& env_;
  std::unique_ptr<DiskFile> file_;
  ReplicaMeta meta_;
  uint64_t sequence_ = 0;
  uint64_t opened_sequence_ = 0;
  uint64_t durable_sequence_ = 0;
  size_t next_pair_ = 0;  // 0 or 1: the pair the next write fills.
  bool writing_ = false;
  absl::Status failed_;  // The first failed sync's error; OK until then.
  std::vector<Done> in_flight_;
  std::vector<Done> waiting_;
};

}  // namespace unimeter::replication

#endif  // UNIMETER_NODE_REPLICATION_REPLICA_META_H_
