// node/replication/replay_window.h
//
// Tells the first delivery of a request id from a later copy of it: the anti-replay window
// (as IPsec's) an owner keeps per forwarding peer process. A forwarder numbers its requests
// with increasing ids; the network may deliver a message twice or replay an old one (design
// fault F33), and an owner that handled a duplicated forward twice could answer the second
// copy "nothing accepted" (its pending bound reached, the disk full) while the first copy's
// events commit: the forwarder, taking the first answer to arrive, would tell the client
// BACKPRESSURE for stored events. The owner drops every copy after the first instead.
//
// Accept(id) is true exactly once per id among the kWindow newest ids seen (distances taken
// modulo 2^64: ids start at a random value and may wrap); an id older than that is refused (it may
// be a replay, and nothing tells): dropping a forward is always safe, its forwarder times out and
// reports an unknown outcome. Memory is fixed (kWindow bits). Reset() when the peer's process
// changes: a new process numbers afresh.
#ifndef UNIMETER_NODE_REPLICATION_REPLAY_WINDOW_H_
#define UNIMETER_NODE_REPLICATION_REPLAY_WINDOW_H_

#include <cstdint>
#include <vector>

namespace unimeter::replication {

class ReplayWindow {
 public:
  static constexpr uint64_t kWindow = uint64_t{1} << 16;

  ReplayWindow() : bits_(kWindow / 64, 0) {}

  // True if `id` was not seen before and is not older than the window.
  bool Accept(uint64_t id);
  void Reset();

 private:
  bool Test(uint64_t id) const { return (bits_[(id % kWindow) / 64] >> (id % 64)) & 1; }
  void Set(uint64_t id) { bits_[(id % kWindow) / 64] |= uint64_t{1} << (id % 64); }
  void Clear(uint64_t id) { bits_[(id % kWindow) / 64] &= ~(uint64_t{1} << (id % 64)); }

  std::vector<uint64_t> bits_;  // Bit id % kWindow: id seen, for ids in (newest - kWindow, newest].
  uint64_t newest_ = 0;
  bool started_ = false;
};

}  // namespace unimeter::replication

#endif  // UNIMETER_NODE_REPLICATION_REPLAY_WINDOW_H_
