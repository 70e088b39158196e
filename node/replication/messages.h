// node/replication/messages.h
//
// Node-to-node messages of the replication protocol (docs/replication.md) and their
// little-endian encoding. Every message starts with a header: protocol major u8, minor u8,
// type u8, the sender's incarnation u64, boot id u64, state u8 and formed flag u8. A receiver drops
// messages of another major version and ignores fields it does not know at the end of a message of
// a newer minor version (mixed minor versions interoperate).
//
// Decode* validate everything and never read past the input: InvalidArgument on malformed
// bytes (the message is dropped and counted).
#ifndef UNIMETER_NODE_REPLICATION_MESSAGES_H_
#define UNIMETER_NODE_REPLICATION_MESSAGES_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/env/env.h"
#include "node/metering/partition_state.h"
#include "node/replication/meta_history.h"
#include "node/store/node_store.h"

namespace unimeter::replication {

inline constexpr uint8_t kProtocolMajor = 1;
// 1: ConfirmEpoch, ConfirmEpochReply. 2: read leases in them. 3: SnapshotAck (snapshot
// transfers paced by the receiver). 4: registry versions in MetricPut and MetricDelete
// entries, partition snapshots of version 3 (a minor-3 node decodes neither). 5: AlertCopies
// entries (sent only once every member is of minor 5), partition snapshots of version 4.
// 6: `writes_blocked` in HeartbeatAck (a minor-5 member's acks decode as not blocked).
// 7: replica.meta sequences and their echo in HeartbeatAck (an older member's acks carry
// none: it confirms every restarted member and learns nothing of their directories).
inline constexpr uint8_t kProtocolMinor = 7;
inline constexpr uint8_t kMetaEchoMinor = 7;
inline constexpr uint8_t kAlertCopiesMinor = 5;
inline constexpr NodeId kNoOwner = 0xFF;

// The sender's incarnation: kFresh (new data directory, knows no cluster), kSyncing
// (resyncing from a formed cluster) or kActive (counts toward quorums). `formed`: the
// sender's incarnation has seen a leader (its cluster may hold data).
enum class NodeState : uint8_t { kFresh = 0, kSyncing = 1, kActive = 2 };
struct Header {
  uint64_t incarnation = 0;
  uint64_t boot_id = 0;  // Drawn at each process start: a restart forgets volatile state.
  NodeState state = NodeState::kFresh;
  bool formed = false;
  // Decoded: the sender's minor version. EncodeMessage always writes kProtocolMinor.
  uint8_t minor = kProtocolMinor;
};

// Configuration group (leader election and the partition map).
struct Heartbeat {
  uint64_t term = 0;
  uint64_t map_version = 0;
  std::array<uint8_t, kPartitionCount> owner{};  // kNoOwner when unassigned.
  std::array<uint64_t, kPartitionCount> epoch{};
  // Minor version 1: the leader's monotonic time at sending, echoed by the answer, so the
  // leader judges a member by when the heartbeat it answered left, not by when a (maybe
  // long delayed) answer arrived. 0 from a minor-0 leader.
  int64_t sent_ns = 0;
};
struct HeartbeatAck {
  uint64_t term = 0;
  std::array<uint64_t, kPartitionCount> commit_index{};
  // Minor version 1: an unprompted announcement (sent every heartbeat interval to every
  // member), not an answer to the leader's heartbeat. Only answers prove that a member
  // also hears the leader; a minor-0 sender's acks decode as answers.
  bool hello = false;
  int64_t echo_ns = 0;  // Minor version 1: the answered heartbeat's sent_ns.
  // Minor version 6: the member's free disk is below its threshold, so it refuses writes
  // and stores no replicated entries; the leader moves its partitions to members that can
  // take writes (docs/replication.md, "Ownership").
  bool writes_blocked = false;
  // Minor version 7 (docs/replication.md, "Directories that went back"): the sender's
  // replica.meta write sequence its process opened, the newest one it made durable since
  // (0: none yet, nothing to record), and the WAL position up to which it is durable.
  uint64_t meta_start = 0;
  uint64_t meta_durable = 0;
  uint64_t wal_durable = 0;
  // Minor version 7: what the sender recorded of the receiver's processes (MetaEcho).
  MetaEcho echo;
};
struct VoteRequest {
  uint64_t term = 0;
  bool pre_vote = false;
};
struct VoteReply {
  uint64_t term = 0;
  bool pre_vote = false;
  bool granted = false;
};

// Partition epochs.
struct StartEpochItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
};
struct StartEpoch {
  std::vector<StartEpochItem> items;
};
struct PromiseItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  bool granted = false;
  uint64_t promised_epoch = 0;  // The replica's promise after handling the request.
  uint64_t last_epoch = 0;
  uint64_t last_index = 0;
  uint64_t commit_index = 0;
};
struct Promise {
  std::vector<PromiseItem> items;
};

// The partition logs. A fetch reply (a replica's entries for a starting owner) reuses
// Append with fetch_reply set and is not acknowledged.
struct WireEntry {
  uint64_t index = 0;
  uint64_t epoch = 0;
  std::shared_ptr<const metering::LogEntry> entry;
};
struct AppendItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  uint64_t prev_index = 0;
  uint64_t prev_epoch = 0;
  uint64_t commit_index = 0;
  std::vector<WireEntry> entries;
};
struct Append {
  uint64_t sequence = 0;
  bool fetch_reply = false;
  std::vector<AppendItem> items;
};
enum class AckResult : uint8_t { kOk = 0, kStale = 1, kNeedPromise = 2, kMismatch = 3, kBusy = 4 };
struct AckItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  AckResult result = AckResult::kOk;
  uint64_t index = 0;  // kOk: durable match index; kMismatch: retry after this index.
  uint64_t promised_epoch = 0;
};
struct AppendAck {
  uint64_t sequence = 0;
  std::vector<AckItem> items;
};
struct FetchItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  uint64_t from_index = 0;
};
struct Fetch {
  std::vector<FetchItem> items;
};
// One piece of a partition snapshot (state at `index`, whose entry has `entry_epoch`).
struct SnapshotChunk {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  uint64_t index = 0;
  uint64_t entry_epoch = 0;
  uint64_t total_bytes = 0;
  uint64_t offset = 0;
  bool fetch_reply = false;
  std::vector<uint8_t> bytes;
};
// Minor version 3: a receiver tells a sender of minor version 3 or later how much of the
// snapshot (partition, epoch, index) it holds, a prefix of `received_bytes`, after each chunk
// it gets, and which chunk that was (`chunk_offset`: past the prefix, a chunk came after a
// gap; before it, a copy); the sender sends the next chunks only then (docs/replication.md,
// "Catch-up").
struct SnapshotAckItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  uint64_t index = 0;
  uint64_t received_bytes = 0;
  uint64_t chunk_offset = 0;
};
struct SnapshotAck {
  std::vector<SnapshotAckItem> items;
};

// Requests a node forwards to partitions' owners, many per message.
enum class ForwardKind : uint8_t { kIngest = 0, kEntry = 1 };
struct ForwardItem {
  uint64_t request_id = 0;
  uint32_t partition = 0;
  ForwardKind kind = ForwardKind::kIngest;
  bool sync = true;
  std::vector<metering::Event> events;              // kIngest.
  std::shared_ptr<const metering::LogEntry> entry;  // kEntry.
};
struct Forward {
  std::vector<ForwardItem> items;
};
struct ForwardReplyItem {
  uint64_t request_id = 0;
  absl::Status status;
  metering::IngestResult result;
};
struct ForwardReply {
  std::vector<ForwardReplyItem> items;
};
struct ReadIndexItem {
  uint64_t request_id = 0;
  uint32_t partition = 0;
};
struct ReadIndex {
  std::vector<ReadIndexItem> items;
};
struct ReadIndexReplyItem {
  uint64_t request_id = 0;
  absl::Status status;
  uint64_t commit_index = 0;
};
struct ReadIndexReply {
  std::vector<ReadIndexReplyItem> items;
};

// A read confirmation round (minor version 1): the owner asks whether the replica still holds
// its promise for each partition's epoch; the replica answers at once, without waiting for
// its log to be durable, so a read does not queue behind the append pipeline. A majority of
// "still promised" answers to a round sent after a read arrived proves that no newer epoch
// had committed anything before the read (docs/replication.md, "Reads"). A node of minor
// version 0 drops these; reads then confirm through the append pipeline as before.
struct ConfirmItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
};
//
// Minor version 2, read leases: the round also asks for a lease of `lease_ns`. A replica
// that confirms an item grants it for min(lease_ns, its own lease setting) from when it
// handled the round: until then it tells no promise of another epoch of that partition
// (docs/replication.md, "Read leases"). 0 from a minor-1 owner or replica: no lease.
struct ConfirmEpoch {
  uint64_t round = 0;
  std::vector<ConfirmItem> items;
  int64_t lease_ns = 0;  // Minor version 2: the lease asked for.
};
struct ConfirmReplyItem {
  uint32_t partition = 0;
  uint64_t epoch = 0;
  bool confirmed = false;  // The replica is active and its promise is exactly `epoch`.
};
struct ConfirmEpochReply {
  uint64_t round = 0;
  std::vector<ConfirmReplyItem> items;
  int64_t lease_ns = 0;  // Minor version 2: the lease granted with every confirmed item.
};

using Message =
    std::variant<Heartbeat, HeartbeatAck, VoteRequest, VoteReply, StartEpoch, Promise, Append,
                 AppendAck, Fetch, SnapshotChunk, Forward, ForwardReply, ReadIndex, ReadIndexReply,
                 ConfirmEpoch, ConfirmEpochReply, SnapshotAck>;

std::vector<uint8_t> EncodeMessage(const Header& header, const Message& message);
absl::Status DecodeMessage(absl::Span<const uint8_t> bytes, Header* header, Message* message);

}  // namespace unimeter::replication

#endif  // UNIMETER_NODE_REPLICATION_MESSAGES_H_
