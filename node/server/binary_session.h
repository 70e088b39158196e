// node/server/binary_session.h
//
// BinarySession serves one client connection of the binary protocol v1. Frames come from a
// protocol::FrameReader (header validation, draining, bounded buffering); each request is
// dispatched to the node's Engine and answered when it completes, possibly out of order.
// Replies and pushes are written whole. A connection that cannot keep up with its replies
// (output buffer full) is closed; pushes to it are dropped instead (fire-and-forget).
//
// Completion callbacks hold a weak reference: a request that completes after its
// connection closed is dropped (the client sees a lost connection: outcome unknown).
#ifndef UNIMETER_NODE_SERVER_BINARY_SESSION_H_
#define UNIMETER_NODE_SERVER_BINARY_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "node/env/env.h"
#include "node/metering/partition_state.h"
#include "protocol/extensions.pb.h"
#include "protocol/frame_reader.h"
#include "protocol/wire.h"

namespace unimeter {

class NodeServer;

class BinarySession : public std::enable_shared_from_this<BinarySession> {
 public:
  BinarySession(NodeServer& server, std::unique_ptr<Stream> stream);
  ~BinarySession();

  // Installs the stream handler. REQUIRES: owned by a shared_ptr.
  void Start();
  uint64_t id() const { return id_; }
  bool alert_subscriber() const { return alert_subscriber_; }
  // Writes a push frame if the output has room; returns false if dropped.
  bool Push(const std::string& frame);
  // Pushes this node's current partition map (PARTITION_MAP_UPDATE, WP 8.2).
  void PushPartitionMap();
  // Stops reading requests (graceful shutdown); in-flight ones still get replies.
  void StopReading() { reading_ = false; }
  size_t in_flight() const { return in_flight_; }
  void Close();

 private:
  void OnData(absl::Span<const uint8_t> bytes);
  void HandleFrame(const protocol::FrameEvent& event);
  void Dispatch(const protocol::RequestHeader& header, std::span<const uint8_t> payload);
  void Reply(std::string frame);
  void ReplyError(uint32_t request_id);
  // REDIRECT to `node`'s client address (BACKPRESSURE if it has none).
  void ReplyRedirect(uint32_t request_id, NodeId node);
  void ReplyStatus(uint32_t request_id, const absl::Status& status);

  // Runs `answer` on the state of `account_id`'s partition once the engine may answer for
  // it, counting the request in flight meanwhile; replies BACKPRESSURE (or, for an
  // extension, its error) if no owner can answer; does nothing if the session is gone.
  using StateAnswer =
      absl::AnyInvocable<void(BinarySession& self, const metering::PartitionState& state)>;
  void AnswerFromState(uint32_t request_id, uint64_t account_id, bool extension,
                       StateAnswer answer);
  // The same for `partition` (partition 0 holds the registry its owner leads).
  void AnswerFromPartition(uint32_t request_id, uint32_t partition, bool extension,
                           StateAnswer answer);
  void HandleIngest(const protocol::RequestHeader& header, std::span<const uint8_t> payload);
  void HandleMetricPut(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleMetricDelete(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleMetricList(uint32_t request_id);
  void HandleUsageQuery(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleUsageRealtime(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleBreakdown(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleEventsList(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleAlertsList(uint32_t request_id, std::span<const uint8_t> payload);
  void HandlePartitionMap(uint32_t request_id);
  void HandleClusterStatus(uint32_t request_id);
  void HandleRebalance(uint32_t request_id, std::span<const uint8_t> payload);
  // Extension opcodes (node/server/extensions.h); their ERR replies carry an ErrorReply.
  void HandleExtIngest(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleExtRangeQuery(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleExtEventsPage(uint32_t request_id, std::span<const uint8_t> payload);
  void HandleExtServerInfo(uint32_t request_id);
  void ReplyExtError(uint32_t request_id, const absl::Status& status);
  void AnswerRangeQuery(uint32_t request_id, const ext::RangeQueryRequest& request,
                        const std::vector<metering::Filter>& filters,
                        const metering::PartitionState& state);
  void ReplyMessage(uint32_t request_id, const std::string& serialized);

  NodeServer& server_;
  std::unique_ptr<Stream> stream_;
  const uint64_t id_;
  protocol::FrameReader reader_;
  size_t in_flight_ = 0;
  bool alert_subscriber_ = false;
  bool reading_ = true;
  bool closed_ = false;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_BINARY_SESSION_H_
