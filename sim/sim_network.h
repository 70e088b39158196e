// sim/sim_network.h
//
// SimNetwork is the packet simulator behind every SimEnv's Transport and Streams.
//
// Node-to-node messages: each directed path (source, target) has a bounded number of
// messages in flight; a message is dropped when the path is full (queue overflow),
// blocked (partition, one direction at a time, so asymmetric splits and bridges are
// expressible), lost, or corrupted (the real transport's checksum would reject it, so a
// corrupted message is dropped and counted). Survivors are delayed independently
// (min + exponential), which reorders them, and may be duplicated. A clogged path adds an
// exponential delay of its own (seconds), so its messages queue up, arrive late and out of
// order, and overflow once the path is full. A reset connection (as TcpTransport's: one
// outbound connection per direction) loses every message in flight on it, and messages
// sent while the sender reconnects wait until it has.
//
// Client streams: ordered, reliable byte pipes with per-chunk delay, closed when either
// side closes or is destroyed (a crashed node's streams reset), or reset by a fault. Addresses are
// "n<id>:<port>".
//
// Every decision draws from the network's own PRNG (a sub-seed of the run seed).
#ifndef UNIMETER_SIM_SIM_NETWORK_H_
#define UNIMETER_SIM_SIM_NETWORK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "node/base/random.h"
#include "node/env/env.h"
#include "sim/simulator.h"

namespace unimeter::sim {

struct SimPipe;  // One simulated stream's two ends (sim_network.cc).

struct NetworkOptions {
  int64_t delay_min_ns = 50'000;
  int64_t delay_mean_ns = 500'000;  // Exponential part, added to the minimum.
  uint32_t loss_ppm = 0;
  uint32_t duplicate_ppm = 0;
  uint32_t corrupt_ppm = 0;
  uint32_t path_capacity_messages = 64;
  int64_t connect_timeout_ns = 1'000'000'000;
};

struct NetworkStats {
  uint64_t messages_sent = 0;
  uint64_t message_bytes_sent = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_lost = 0;
  uint64_t messages_blocked = 0;
  uint64_t messages_overflowed = 0;
  uint64_t messages_corrupted = 0;
  uint64_t messages_duplicated = 0;
  uint64_t messages_clogged = 0;  // Sent on a clogged path (delivered late, if at all).
  uint64_t messages_reset = 0;    // In flight on a connection when it was reset: lost.
  uint64_t connections_reset = 0;
  uint64_t stream_bytes = 0;
  uint64_t streams_opened = 0;
  uint64_t streams_reset = 0;
};

// What the network needs from a live SimEnv (one per node incarnation or client).
class NetworkEndpoint {
 public:
  virtual ~NetworkEndpoint() = default;
  virtual EventOwner owner() const = 0;
  // Delivers one node-to-node message (called from a world event).
  virtual void DeliverMessage(NodeId source, absl::Span<const uint8_t> message) = 0;
  // Hands an accepted stream to the listener on `port`; false if nothing listens.
  virtual bool AcceptStream(uint16_t port, std::unique_ptr<Stream>& stream) = 0;
  // Runs `action` as a callback of this endpoint (then its ready fibers).
  virtual void RunCallback(absl::AnyInvocable<void()> action) = 0;
};

class SimNetwork {
 public:
  SimNetwork(Simulator& simulator, uint64_t seed, const NetworkOptions& options);

  void Attach(NodeId node, NetworkEndpoint* endpoint);
  void Detach(NodeId node, NetworkEndpoint* endpoint);

  // Sends one message; every fault decision is made here, at send time.
  void Send(NodeId source, NodeId target, absl::Span<const uint8_t> message);

  // Rewrites every node-to-node message `node` sends or is sent from now on, before any
  // fault decision (a node emulating an older protocol version); an empty function stops it.
  using Rewrite = std::function<void(std::vector<uint8_t>& message)>;
  void SetRewrite(NodeId node, Rewrite rewrite);

  // Partitions: blocking is per direction.
  void SetBlocked(NodeId source, NodeId target, bool blocked);
  bool IsBlocked(NodeId source, NodeId target) const;
  // Blocks every path between `group` and the rest of `nodes`, both directions.
  void Isolate(const std::vector<NodeId>& group, const std::vector<NodeId>& nodes);
  // Clogs the path (one direction) with an extra exponential delay of this mean; 0 unclogs,
  // and drops what is still queued behind the clog.
  void SetClogged(NodeId source, NodeId target, int64_t extra_delay_mean_ns);
  // Unblocks and unclogs every path.
  void HealAll();

  // Resets every open stream with an end on `node` (F39): both ends see it close with an
  // error; bytes in flight are lost.
  void ResetStreams(NodeId node);

  // Resets the node-to-node connections between `node` and each of `peers`, both
  // directions (F39): messages in flight on them are lost; each sender reconnects after
  // `reconnect_ns`, and what it sends before then leaves after it.
  void ResetConnections(NodeId node, const std::vector<NodeId>& peers, int64_t reconnect_ns);
  // Opens a stream from `client` to "n<id>:<port>"; `done` runs as a callback of `client`.
  void Connect(NodeId client, std::string_view address, ConnectFunction done);

  NetworkOptions& options() { return options_; }
  const NetworkStats& stats() const { return stats_; }
  Simulator& simulator() { return simulator_; }
  Prng& prng() { return prng_; }

  // A delay drawn for one message or stream chunk.
  int64_t DrawDelayNs();

  NetworkEndpoint* endpoint(NodeId node) const;

 private:
  void ScheduleDelivery(NodeId source, NodeId target, std::shared_ptr<std::vector<uint8_t>> bytes,
                        uint64_t checksum);
  uint64_t ResetGeneration(NodeId source, NodeId target) const;

  Simulator& simulator_;
  Prng prng_;
  NetworkOptions options_;
  NetworkStats stats_;
  absl::btree_map<NodeId, NetworkEndpoint*> endpoints_;
  absl::btree_set<std::pair<NodeId, NodeId>> blocked_;
  absl::btree_map<std::pair<NodeId, NodeId>, int64_t> clogged_;  // Extra delay mean, ns.
  // Bumped when a path's clog ends: messages still queued behind it are dropped then (the
  // real transport resets a connection whose data stays unacknowledged for seconds).
  absl::btree_map<std::pair<NodeId, NodeId>, uint64_t> clog_generations_;
  absl::btree_map<std::pair<NodeId, NodeId>, uint32_t> in_flight_;
  absl::btree_map<NodeId, Rewrite> rewrites_;
  // Bumped when a path's connection is reset: messages sent before are lost.
  absl::btree_map<std::pair<NodeId, NodeId>, uint64_t> reset_generations_;
  // While a path's sender reconnects: the time its connection is back.
  absl::btree_map<std::pair<NodeId, NodeId>, int64_t> reconnected_ns_;
  std::vector<std::weak_ptr<SimPipe>> pipes_;  // Every stream opened (pruned on reset).
};

// Parses "n<id>:<port>". Returns false on any other form.
bool ParseSimAddress(std::string_view address, NodeId* node, uint16_t* port);
std::string SimAddress(NodeId node, uint16_t port);

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SIM_NETWORK_H_
