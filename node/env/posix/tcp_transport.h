// node/env/posix/tcp_transport.h
//
// TcpTransport is the real node's Transport (node/env/env.h): TCP between nodes.
//
// Connections are one-way. For each configured peer the node keeps ONE outbound
// connection that only sends; it accepts inbound connections on its replication port
// that only receive. An outbound connection is (re)established with exponential backoff
// (10 ms doubling up to 1 s, reset after a successful connect) whenever it fails.
//
// Wire format (all integers little-endian), one frame per message:
//   u32 payload_size_bytes   (<= kMessageSizeBytesMax)
//   u32 crc32c(payload)      (node/base/checksum.h)
//   payload
// The first frame on every connection is a hello whose payload is
//   u32 kHelloMagic, u32 source node id.
// A receiver closes a connection on any bad frame (oversized, checksum mismatch, hello
// missing or from a node that is not a configured peer) and counts it; frames before it
// were delivered, later ones are lost.
//
// Delivery is best effort. Messages queued for a disconnected peer are kept, up to the
// per-peer bound (kQueueMessagesMax messages / kQueueBytesMax bytes), and sent after the
// next connect; Send() beyond the bound drops the message and counts it. A message being
// written when a connection breaks, and messages the kernel accepted but the peer never
// read, are lost. Messages to one peer are sent in order on one connection, so within a
// connection they also arrive in order.
//
// Loop thread only. The receiver may call Send() and SetReceiver(), but must not destroy
// the transport.
#ifndef UNIMETER_NODE_ENV_POSIX_TCP_TRANSPORT_H_
#define UNIMETER_NODE_ENV_POSIX_TCP_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/env/env.h"
#include "node/env/posix/event_loop.h"

namespace unimeter {

inline constexpr size_t kFrameHeaderSizeBytes = 8;
inline constexpr uint32_t kHelloMagic = 0x31544D55;  // "UMT1" as little-endian bytes.
inline constexpr size_t kHelloPayloadSizeBytes = 8;

// One frame carrying `payload`. REQUIRES: payload.size() <= kMessageSizeBytesMax.
std::vector<uint8_t> EncodeFrame(absl::Span<const uint8_t> payload);
// The hello frame a node sends first on each outbound connection.
std::vector<uint8_t> EncodeHelloFrame(NodeId source);

struct TransportPeer {
  NodeId id = 0;
  std::string host;  // Numeric IPv4 or a name (resolved at each connect attempt).
  uint16_t port = 0;
};

struct TcpTransportOptions {
  NodeId node_id = 0;
  uint16_t listen_port = 0;  // 0 = ephemeral (tests); see TcpTransport::listen_port().
  std::vector<TransportPeer> peers;
  size_t queue_messages_max = 4096;           // Per peer.
  size_t queue_bytes_max = 64 * 1024 * 1024;  // Per peer, frame headers included.
  int64_t backoff_ns_min = 10'000'000;        // 10 ms.
  int64_t backoff_ns_max = 1'000'000'000;     // 1 s.
  // TCP_USER_TIMEOUT of outbound connections: data (or a SYN) left unacknowledged this long
  // closes the connection, which is then re-established. Without it a path that was cut and
  // healed carries nothing until TCP's own retransmission backoff (seconds to minutes) runs
  // out, and the cluster stays without a quorum long after the network is back.
  int64_t unacknowledged_timeout_ms = 5'000;
};

class TcpTransport final : public Transport {
 public:
  struct Counters {
    uint64_t messages_sent = 0;      // Fully written to a socket.
    uint64_t messages_received = 0;  // Delivered to the receiver.
    uint64_t messages_dropped = 0;   // Queue full, or lost mid-write on a broken connection.
    uint64_t bad_frames = 0;         // Inbound connections closed for a bad frame.
    uint64_t connects = 0;           // Outbound connections established.
    uint64_t disconnects = 0;        // Outbound connections lost.
  };

  // Listens on options.listen_port (only when peers are configured) and starts connecting
  // to every peer. REQUIRES: peer ids distinct, none equal to node_id.
  static absl::StatusOr<std::unique_ptr<TcpTransport>> Create(EventLoop& loop,
                                                              TcpTransportOptions options);
  ~TcpTransport() override;

  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  void Send(NodeId target, absl::Span<const uint8_t> message) override;
  void SetReceiver(Receiver receiver) override;

  // The actual listening port, or 0 when not listening.
  uint16_t listen_port() const { return listen_port_; }
  const Counters& counters() const { return counters_; }
  // Whether the outbound connection to `peer` is established.
  bool connected(NodeId peer) const;
  size_t inbound_connection_count() const { return inbound_.size(); }

 private:
  class OutboundPeer;
  class InboundConnection;

  TcpTransport(EventLoop& loop, TcpTransportOptions options);
  absl::Status StartListening();
  void AcceptAll();
  // Stops accepting for kAcceptPauseNs (out of descriptors: accepting would spin).
  void PauseAccepting();
  static constexpr int64_t kAcceptPauseNs = 100'000'000;
  void CloseInbound(uint64_t connection_id);
  // A peer keeps one outbound connection: once a new one says hello, older inbound ones from
  // the same peer are dead (their sender gave up on them) and are closed, not leaked.
  void CloseSupersededInbound(NodeId source, uint64_t newest_connection_id);
  void Deliver(NodeId source, absl::Span<const uint8_t> message);

  EventLoop& loop_;
  const TcpTransportOptions options_;
  Counters counters_;
  std::shared_ptr<Receiver> receiver_;  // Shared: survives SetReceiver during a call.

  int listen_fd_ = -1;
  uint16_t listen_port_ = 0;
  WatchId listen_watch_ = kNoWatch;
  TimerId accept_resume_timer_ = kNoTimer;

  absl::btree_map<NodeId, std::unique_ptr<OutboundPeer>> peers_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<InboundConnection>> inbound_;
  uint64_t next_inbound_id_ = 1;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_TCP_TRANSPORT_H_
