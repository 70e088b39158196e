// node/replication/meta_history.h
//
// Finds a data directory that went back in time: a node started on an old backup of its
// whole directory, or on a disk that lost writes it had synced. Its replica.meta then holds
// older votes and promises than the ones its previous processes told, and its log may lack
// entries they acknowledged; acting on it could break every quorum argument.
//
// The facts used: every replica.meta write has a sequence number one above the last
// (MetaFile), and the WAL a global position up to which it is durable; on a disk that keeps
// synced writes, every write an earlier process made durable is at or below what a later
// process opens, for both. Each process of a node announces, in its HeartbeatAcks, the
// meta sequence it opened (`start`, which also orders the processes: each writes its meta
// once before it announces anything) and the newest meta sequence and WAL position it made
// durable. Each peer keeps a PeerMetaRecord of those announcements per member and echoes it
// back to that member in its own HeartbeatAcks; the member judges the echo against what it
// opened (JudgeEcho).
//
// What it catches: a directory older than the newest replica.meta write or WAL sync a live
// peer heard announced by an earlier process (the WAL syncs continuously under load, and
// the meta at every vote, term change, promise and epoch begun). What it misses: writes of
// the last announcement interval (heartbeat_interval_ns) before the old process died, and
// what peers forgot by restarting themselves since their last checkpoint (each node keeps
// its records in the state store with every checkpoint, EncodePeerRecords, and reads them
// back at start, so even a restart of the whole cluster keeps what was checkpointed).
#ifndef UNIMETER_NODE_REPLICATION_META_HISTORY_H_
#define UNIMETER_NODE_REPLICATION_META_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace unimeter::replication {

// What a peer recorded of one member's processes, for the member's incarnation
// `incarnation` (0: nothing recorded).
inline constexpr uint64_t kSuperseded = UINT64_MAX;

struct MetaEcho {
  uint64_t incarnation = 0;
  // The newest process's opened meta sequence; kSuperseded: a process of an incarnation
  // that a later one (a replaced disk) superseded, which can only be a directory restored
  // from a copy older than the replacement.
  uint64_t start = 0;
  uint64_t earlier = 0;      // The newest meta write any earlier process announced as durable.
  uint64_t wal_earlier = 0;  // The highest durable WAL position any earlier process announced.
  bool operator==(const MetaEcho&) const = default;
};

class PeerMetaRecord {
 public:
  // An announcement from the member's process `boot_id` of incarnation `incarnation`: it
  // opened meta sequence `start`, made `durable` durable since (0: nothing yet; ignored)
  // and its WAL durable up to `wal_durable`.
  // Announcements may arrive late and out of order: one from a process with an older start
  // counts as an earlier process's. Two processes with the same start are impossible on a
  // disk that keeps synced writes (each process writes once before it announces), so
  // everything either announced counts as earlier. An incarnation never comes back once a
  // later one replaced it: of the last kRetiredMax replaced ones, an announcement of the
  // last process recorded, or of any that started before it, is a late one and changes
  // nothing; any other process of one is echoed as superseded (a directory restored from a
  // copy taken before the replacement: one taken before that last process started is not
  // told apart from a late announcement, and its node then waits unconfirmed).
  void Note(uint64_t incarnation, uint64_t boot_id, uint64_t start, uint64_t durable,
            uint64_t wal_durable);
  MetaEcho Echo() const;

  // The whole record as kEncodedBytes bytes, and back. DecodeFrom returns false, the
  // record unchanged, when the bytes cannot be one.
  static constexpr size_t kEncodedBytes = 7 * 8 + 1 + 8 + 4 * 3 * 8;
  void EncodeTo(uint8_t* out) const;
  bool DecodeFrom(const uint8_t* in);

 private:
  static constexpr size_t kRetiredMax = 4;
  struct Retired {
    uint64_t incarnation = 0;
    uint64_t boot_id = 0;  // Its last recorded process's, and that one's start.
    uint64_t start = 0;
  };
  // The newest retirement of `incarnation`; nullptr if it is not among them.
  const Retired* FindRetired(uint64_t incarnation) const;

  Retired retired_[kRetiredMax];  // A ring: the last kRetiredMax replaced incarnations.
  uint64_t retired_next_ = 0;
  bool superseded_ = false;  // The recorded incarnation is a replaced one come back.
  uint64_t incarnation_ = 0;
  uint64_t boot_id_ = 0;  // The newest process's.
  uint64_t start_ = 0;
  uint64_t newest_durable_ = 0;  // The newest process's newest announcements.
  uint64_t newest_wal_durable_ = 0;
  uint64_t earlier_ = 0;
  uint64_t wal_earlier_ = 0;
};

// The records of several members, by node id, as bytes (kept by NodeStore with each
// checkpoint), and back: false when `bytes` is malformed (`records` then unspecified).
std::string EncodePeerRecords(const std::vector<std::pair<uint32_t, PeerMetaRecord>>& records);
bool DecodePeerRecords(std::string_view bytes,
                       std::vector<std::pair<uint32_t, PeerMetaRecord>>* records);

enum class EchoVerdict {
  kNotYet,     // The peer has not recorded this process yet.
  kConfirmed,  // Nothing the peer heard is newer than this process's directory.
  kWentBack,   // The peer heard of writes this directory lacks.
};

// Judges a peer's echo for this process: incarnation `incarnation`, opened meta sequence
// `start` and WAL position `wal_start`.
EchoVerdict JudgeEcho(const MetaEcho& echo, uint64_t incarnation, uint64_t start,
                      uint64_t wal_start);

}  // namespace unimeter::replication

#endif  // UNIMETER_NODE_REPLICATION_META_HISTORY_H_
