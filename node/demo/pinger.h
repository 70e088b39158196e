// node/demo/pinger.h
//
// Pinger is a small demonstration service built only on Env. It exercises every Env
// facility the real node needs, and runs unchanged in the real process (pinger_main.cc)
// and in the simulator (sim/pinger_sim_test.cc):
//
//   - Each node repeatedly commits its own sequence number: it broadcasts PING(seq) to
//     its peers and counts seq as committed once a majority of the cluster (itself
//     included) holds it durably; then it persists COMMITTED(seq) before reporting it.
//   - A node receiving PING(source, seq) persists SEEN(source, seq) (group commit: one
//     sync for every ping that arrived meanwhile) and only then replies ACK(seq).
//   - Recovery reads the log, stops at the first record that fails its checksum (a torn
//     tail) and truncates there.
//   - Clients connect to the client port and send "STATUS\n"; the reply is one line
//     "node=<id> committed=<n> seen=<peer>:<seq>,...\n".
//
// Guarantee (checked by the tests): whenever COMMITTED(seq) is durable on a node, SEEN of
// at least seq from that node is durable on a majority minus one of its peers, and a
// node's committed number never goes backwards across crashes (unless its disk is wiped).
#ifndef UNIMETER_NODE_DEMO_PINGER_H_
#define UNIMETER_NODE_DEMO_PINGER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "node/env/env.h"
#include "node/env/node_service.h"

namespace unimeter::demo {

struct PingerOptions {
  std::vector<NodeId> peers;  // Every other node of the cluster.
  uint16_t client_port = 0;   // 0 = no client listener.
  int64_t commit_interval_ns = 10'000'000;
  int64_t retry_interval_ns = 50'000'000;
  uint64_t commit_target = UINT64_MAX;  // Stop after committing this many (for tests).
};

// One durable log record (24 bytes; see EncodePingerRecord).
enum class PingerRecordKind : uint32_t { kCommitted = 1, kSeen = 2 };
struct PingerRecord {
  PingerRecordKind kind;
  NodeId node;
  uint64_t sequence;
};
inline constexpr size_t kPingerRecordSizeBytes = 24;
void EncodePingerRecord(const PingerRecord& record, uint8_t* out);
// Returns false if the checksum or the kind is invalid.
bool DecodePingerRecord(const uint8_t* bytes, PingerRecord* record);

// Reads every valid record of a pinger log (stopping at the first invalid one).
absl::StatusOr<std::vector<PingerRecord>> ReadPingerLog(DiskFile& file);

class Pinger final : public NodeService {
 public:
  static constexpr char kLogFileName[] = "pinger.log";

  Pinger(Env& env, PingerOptions options);
  ~Pinger() override;

  absl::Status Start() override;

  uint64_t committed() const { return committed_; }
  uint64_t seen(NodeId peer) const;
  std::string StatusLine() const;

 private:
  struct ClientSession;

  absl::Status Recover();
  void RunCommitLoop();
  void RunAckLoop();
  void OnMessage(NodeId source, absl::Span<const uint8_t> message);
  void Append(const PingerRecord& record);
  void BroadcastPing(uint64_t sequence);
  void WaitForAcksOrRetry();
  void OnClientAccepted(std::unique_ptr<Stream> stream);
  size_t quorum() const { return (options_.peers.size() + 1) / 2 + 1; }

  Env& env_;
  const PingerOptions options_;
  std::unique_ptr<DiskFile> log_;
  std::unique_ptr<Listener> listener_;
  uint64_t committed_ = 0;
  uint64_t proposing_ = 0;                        // Sequence being committed, 0 if none.
  absl::btree_set<NodeId> acked_by_;              // Peers that acked `proposing_`.
  absl::btree_map<NodeId, uint64_t> seen_;        // Durable SEEN per peer.
  absl::btree_map<NodeId, uint64_t> to_persist_;  // Pings received, not yet durable.
  FiberId commit_fiber_ = kNoFiber;
  FiberId ack_fiber_ = kNoFiber;
  absl::btree_map<uint64_t, std::unique_ptr<ClientSession>> sessions_;
};

}  // namespace unimeter::demo

#endif  // UNIMETER_NODE_DEMO_PINGER_H_
