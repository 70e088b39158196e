// node/replication/meta_history.h
//
// Finds a data directory that went back in time: a node started on an old backup of its
// whole directory, or on a disk that lost writes it had synced. Its replica.meta then holds
// older votes and promises than the ones its previous processes told, and its log may lack
// entries they acknowledged; acting on it could break every quorum argument.
//
// The facts used: every replica.meta write has a sequence number one above the last
// (MetaFile), and on a disk that keeps synced writes, every write an earlier process made
// durable is at or below the sequence a later process opens. Each process of a node
// announces, in its HeartbeatAcks, the sequence it opened (`start`) and the newest one it
// made durable. Each peer keeps a PeerMetaRecord of those announcements per member and
// echoes it back to that member in its own HeartbeatAcks; the member judges the echo
// against its own start (JudgeEcho).
//
// What it catches: a directory older than the newest replica.meta write a live peer heard
// announced by an earlier process (writes happen at every vote, term change, promise and
// epoch begun, so a backup older than the last of those is found). What it misses: writes
// of the last announcement interval (heartbeat_interval_ns) before the old process died,
// and everything peers forgot by restarting themselves (records are kept in memory only).
#ifndef UNIMETER_NODE_REPLICATION_META_HISTORY_H_
#define UNIMETER_NODE_REPLICATION_META_HISTORY_H_

#include <cstdint>

namespace unimeter::replication {

// What a peer recorded of one member's processes, for the member's incarnation
// `incarnation` (0: nothing recorded).
struct MetaEcho {
  uint64_t incarnation = 0;
  uint64_t start = 0;    // The newest process's opened sequence.
  uint64_t earlier = 0;  // The newest write any earlier process announced as durable.
  bool operator==(const MetaEcho&) const = default;
};

class PeerMetaRecord {
 public:
  // An announcement from the member's process `boot_id` of incarnation `incarnation`: it
  // opened sequence `start` and made `durable` durable since (0: nothing yet; ignored).
  // Announcements may arrive late and out of order: one from a process with an older start
  // counts as an earlier process's. Two processes with the same start are impossible on a
  // disk that keeps synced writes (each process writes once before it announces), so
  // everything either announced counts as earlier.
  void Note(uint64_t incarnation, uint64_t boot_id, uint64_t start, uint64_t durable);
  MetaEcho Echo() const;

 private:
  uint64_t incarnation_ = 0;
  uint64_t boot_id_ = 0;  // The newest process's.
  uint64_t start_ = 0;
  uint64_t newest_durable_ = 0;  // The newest process's newest announcement.
  uint64_t earlier_ = 0;
};

enum class EchoVerdict {
  kNotYet,     // The peer has not recorded this process yet.
  kConfirmed,  // Nothing the peer heard is newer than this process's directory.
  kWentBack,   // The peer heard of writes this directory lacks.
};

// Judges a peer's echo for this process: incarnation `incarnation`, opened `start`.
EchoVerdict JudgeEcho(const MetaEcho& echo, uint64_t incarnation, uint64_t start);

}  // namespace unimeter::replication

#endif  // UNIMETER_NODE_REPLICATION_META_HISTORY_H_
