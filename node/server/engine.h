// node/server/engine.h
//
// Engine is what the node's front doors (binary protocol, HTTP) ask to ingest, read and
// change metrics. It hides where partitions live: today LocalEngine (one node, a quorum of
// one: an entry is committed once durable here); the replicated engine (docs/replication.md)
// keeps the same contract across a cluster.
//
// Outcome contract of Ingest (product-semantics 8.5, wire-protocol-v1 7.1):
//   result                          acknowledged per the mode (SYNC: committed; ASYNC:
//                                   accepted into the pipeline)
//   Unavailable / ResourceExhausted nothing from the part was accepted (BACKPRESSURE)
//   InvalidArgument                 malformed; nothing accepted (ERR)
//   Unknown / DeadlineExceeded      the outcome is unknown (ERR)
// Registry changes (PutMetric, DeleteMetric) run on the registry leader (product-semantics
// 9); elsewhere they complete with RedirectStatus(leader) (engine_support.h): nothing was
// changed, the request
// belongs there (REDIRECT, wire-protocol-v1 9.3).
// Event-loop only; every callback runs later on the loop, never inside the call.
#ifndef UNIMETER_NODE_SERVER_ENGINE_H_
#define UNIMETER_NODE_SERVER_ENGINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/metering/partition_state.h"
#include "node/store/node_store.h"

namespace unimeter {

enum class IngestMode : uint8_t { kAsync, kSync };

class Engine {
 public:
  using IngestDone = absl::AnyInvocable<void(absl::StatusOr<metering::IngestResult> result)>;
  using ReadFunction =
      absl::AnyInvocable<void(absl::StatusOr<const metering::PartitionState*> state)>;
  using StatusDone = absl::AnyInvocable<void(absl::Status status)>;
  // Alert records once they are released (durable, and replicated: copied to a majority),
  // in offset order (for ALERT_PUSH).
  using AlertsDurable = absl::AnyInvocable<void(const std::vector<AlertRecord>& records)>;

  virtual ~Engine() = default;

  // Ingests one part of a request: the events of `partition`, in request order.
  virtual void Ingest(uint32_t partition, std::vector<metering::Event> events, IngestMode mode,
                      IngestDone done) = 0;

  // Calls `read` with the partition's state once this node may answer for it: the state
  // reflects every write acknowledged before the call. Unavailable if no owner can answer.
  virtual void Read(uint32_t partition, ReadFunction read) = 0;

  // Registry changes: acknowledged once committed and in force at every owner.
  virtual void PutMetric(metering::MetricSchema schema, StatusDone done) = 0;
  virtual void DeleteMetric(std::string code, StatusDone done) = 0;

  // Events and this node's alert log.
  virtual absl::StatusOr<std::vector<StoredEvent>> ListEvents(uint64_t account_id, int64_t since_ns,
                                                              int64_t until_ns, size_t limit,
                                                              uint64_t first_offset) const = 0;
  // DataLoss if a damaged record lies in the range (NodeStore::ListAlerts).
  virtual absl::StatusOr<std::vector<AlertRecord>> ListAlerts(uint64_t account_id,
                                                              uint64_t since_offset,
                                                              size_t limit) const = 0;
  virtual void SetAlertsDurable(AlertsDurable on_durable) = 0;
  // Alert records made but not yet released (ListAlerts and pushes show them once they are).
  virtual size_t alerts_unreleased() const = 0;

  // Applies a retention sweep with the given cut-off to every partition.
  virtual void SweepRetention(int64_t cutoff_ns, StatusDone done) = 0;

  // Writes a checkpoint of this node's state now (graceful shutdown, tests).
  virtual void Checkpoint(StatusDone done) = 0;

  // Refuses writes (BACKPRESSURE) while set: free disk below the threshold.
  virtual void SetWritesBlocked(bool blocked) = 0;

  // Topology, for the partition map, CLUSTER_STATUS and /health.
  virtual uint32_t node_count() const = 0;
  virtual NodeId owner(uint32_t partition) const = 0;
  virtual bool ready() const = 0;
  virtual const NodeStore& store() const = 0;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_ENGINE_H_
