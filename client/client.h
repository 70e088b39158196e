// client/client.h
//
// The Unimeter C++ client: one object per application (or per benchmark worker) that talks the
// binary protocol v1 (shared/spec/wire-protocol-v1.md, "WP") to a Unimeter cluster.
//
//   absl::StatusOr<std::unique_ptr<Client>> client =
//       Client::Connect({.seeds = {"10.0.0.1:7001", "10.0.0.2:7001"}});
//   std::vector<Event> events = {{.account_id = 42, .metric_code = "api_calls", .value = 1}};
//   absl::StatusOr<IngestResult> result = (*client)->IngestSync(events);
//   absl::StatusOr<AggValue> usage = (*client)->Usage(42, "api_calls", start_ns, end_ns);
//
// What the client does for the application:
//   - Downloads the partition map (GET_PARTITION_MAP) from the first reachable seed, refreshes
//     it every 30 s, on PARTITION_MAP_UPDATE pushes, after a REDIRECT and after connection
//     errors. Requests are routed by `account_id % 256` to the partition's leader; every node
//     forwards what it does not own, so any live node is an acceptable fallback.
//   - Keeps one multiplexed connection per node, pipelines requests on it and matches replies
//     by request id (replies may arrive out of order).
//   - Splits ingest input into requests of at most 1,024 events and 1,024 property pairs,
//     grouped by the owner node of each event's partition (header partition 0xFFFF).
//   - Retries on BACKPRESSURE (exponential backoff with jitter, until the call's deadline), on
//     REDIRECT (refreshes the map and resends to the named node) and on connection failures
//     (fails over to the other nodes of the map and the seed list).
//
// The unknown-outcome rule (product-semantics 8.5). After an ERR reply to a well-formed ingest
// request, a connection lost after the request's bytes were (even partly) written, or a
// deadline that expires while such a request is in flight, some or all events may have been
// stored. The client resends such a request only if EVERY event in it carries a client
// timestamp (the server deduplicates those within its window). Otherwise the call returns
// absl::UnknownError and nothing is resent. absl::UnknownError is returned for ingest ONLY in
// this situation: any other error status means that nothing of the failed requests was
// accepted (BACKPRESSURE until the deadline => ResourceExhausted, no reachable node =>
// Unavailable or DeadlineExceeded, bad input => InvalidArgument).
//
// Threads: a Client owns one background I/O thread (poll loop) that owns all sockets. Every
// public method is thread-safe. Blocking methods wait for their reply; the callback methods
// (SubmitIngest, the alert callback) run their callbacks on the I/O thread, so callbacks must
// be short and must not call blocking Client methods. The destructor stops the I/O thread and
// completes every outstanding call (CancelledError, or UnknownError for ingest requests that
// were already sent).
#ifndef UNIMETER_CLIENT_CLIENT_H_
#define UNIMETER_CLIENT_CLIENT_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protocol/wire.h"

namespace unimeter::client {

using AggValue = protocol::AggValue;                // sum is an unsigned __int128.
using MetricSchema = protocol::MetricSchemaRecord;  // Owning strings.
using ClusterStatus = protocol::ClusterStatus;      // No strings.
using OperationType = protocol::OperationType;

struct ClientOptions {
  // host:port of one or more nodes; the map is downloaded from the first reachable one.
  std::vector<std::string> seeds{};
  // Default deadline of every call (from the call until its result), overridable per call.
  int64_t request_timeout_ms = 10'000;
  // TCP connect timeout of one attempt to one node.
  int64_t connect_timeout_ms = 3'000;
  // Connect() fails when no seed served a partition map within this time.
  int64_t initial_map_timeout_ms = 10'000;
  int64_t map_refresh_interval_ms = 30'000;
  // BACKPRESSURE and failover backoff: initial delay, doubled per attempt up to the maximum,
  // with full jitter (a uniform delay in [delay / 2, delay]).
  int64_t backoff_initial_ms = 5;
  int64_t backoff_max_ms = 1'000;
  // After a connection to a node fails, the node is avoided (when others exist) this long.
  int64_t node_down_ms = 1'000;
  // Bound on calls submitted but not yet completed (one per wire request). Submitting beyond
  // it blocks until a call completes or the submitter's deadline expires.
  size_t pending_calls_max = 8'192;
  // How many times an ingest request with client timestamps on every event is resent after an
  // ERR reply (a lost connection is retried until the deadline).
  int ingest_err_resends_max = 2;
  // How many REDIRECT replies one call follows (metric admin follows at most one, WP 9.4).
  int redirects_max = 3;
};

struct Property {
  std::string key{};    // <= 31 bytes.
  std::string value{};  // <= 63 bytes.
};

struct Event {
  uint64_t account_id = 0;
  std::string metric_code{};  // 1..63 bytes.
  uint64_t value = 0;
  // ns since the Unix epoch; 0 = the partition owner stamps it (never deduplicated, so never
  // resent automatically after an unknown outcome).
  int64_t timestamp_ns = 0;
  OperationType operation = OperationType::kNone;
  std::vector<Property> properties{};  // <= 255.
};

enum class DeliveryMode : uint8_t {
  kAsync,  // INGEST_ASYNC: acknowledged once the owner accepted the events.
  kSync,   // INGEST_SYNC: acknowledged once durable on a majority.
};

// The sum of the replies of every request one ingest call was split into.
struct IngestResult {
  uint64_t n_stored = 0;
  uint64_t n_duplicates = 0;
  // The largest last_offset over the requests (offsets of different partitions are not
  // comparable; this is what the existing SDKs report).
  uint64_t last_offset = 0;
  uint32_t requests = 0;                // Wire requests sent (after splitting).
  uint32_t unknown_metric_replies = 0;  // Replies with status UNKNOWN_METRIC.
  uint32_t duplicate_replies = 0;       // Replies with status DUPLICATE.
};

struct Filter {
  std::string key{};
  std::string value{};
};

struct BreakdownCell {
  std::vector<Filter> dimensions{};  // (key, value) per group-by key, in the requested order.
  AggValue value{};
};

struct EventRecord {
  uint64_t offset = 0;
  int64_t timestamp_ns = 0;
  uint64_t account_id = 0;
  std::string metric_code{};
  uint64_t value = 0;
  uint8_t operation_type = 0;
};

struct AlertRecord {
  uint64_t offset = 0;  // In the alert log of the node that answered or pushed it.
  uint64_t account_id = 0;
  std::string metric_code{};
  std::string threshold_code{};
  uint64_t value_at_cross = 0;
  int64_t event_timestamp_ns = 0;
};

struct AlertPush {
  AlertRecord record{};
  uint8_t node_id = 0;
  std::string node_address{};  // The connection the push arrived on.
};

struct PartitionMapEntry {
  std::string leader{};
  std::string replica0{};
  std::string replica1{};
};
using PartitionMap = std::array<PartitionMapEntry, protocol::kPartitionCount>;

// Per-call options.
struct CallOptions {
  // Deadline of this call; <= 0 means ClientOptions::request_timeout_ms.
  int64_t timeout_ms = 0;
};

using IngestCallback = std::function<void(absl::StatusOr<IngestResult>)>;
using AlertCallback = std::function<void(const AlertPush&)>;

class IoLoop;  // client.cc

class Client {
 public:
  // Starts the I/O thread and downloads the partition map from the first seed that answers.
  // Unavailable / DeadlineExceeded when none does within initial_map_timeout_ms;
  // InvalidArgument for an empty or malformed seed list.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // ---- Ingest. `events` may be any length; it is split into requests (see the banner).
  // InvalidArgument (nothing sent) if an event has a metric code outside 1..63 bytes, more than
  // 255 properties, an over-long property or a NUL inside a string.
  absl::StatusOr<IngestResult> Ingest(std::span<const Event> events, DeliveryMode mode,
                                      CallOptions call_options = {});
  // INGEST_SYNC (durable on a majority when this returns OK).
  absl::StatusOr<IngestResult> IngestSync(std::span<const Event> events,
                                          CallOptions call_options = {}) {
    return Ingest(events, DeliveryMode::kSync, call_options);
  }
  // INGEST_ASYNC (accepted by the owner when this returns OK). Blocks for the reply; for a
  // non-blocking submission use SubmitIngest.
  absl::StatusOr<IngestResult> IngestAsync(std::span<const Event> events,
                                           CallOptions call_options = {}) {
    return Ingest(events, DeliveryMode::kAsync, call_options);
  }
  // Non-blocking: encodes and queues the requests, then returns; `done` runs once on the I/O
  // thread with the combined result. Blocks only while pending_calls_max calls are pending.
  // Returns InvalidArgument (and does not call `done`) if the events are invalid.
  absl::Status SubmitIngest(std::span<const Event> events, DeliveryMode mode, IngestCallback done,
                            CallOptions call_options = {});

  // ---- Queries (served by the owner of account_id % 256; any node forwards them).
  // USAGE_QUERY over [start_ns, end_ns), whole buckets (product-semantics 6.1); <= 4 filters.
  absl::StatusOr<AggValue> Usage(uint64_t account_id, const std::string& metric_code,
                                 int64_t start_ns, int64_t end_ns,
                                 std::span<const Filter> filters = {},
                                 CallOptions call_options = {});
  absl::StatusOr<AggValue> Realtime(uint64_t account_id, const std::string& metric_code,
                                    CallOptions call_options = {});
  // 1..4 group-by keys; only non-empty cells are returned.
  absl::StatusOr<std::vector<BreakdownCell>> Breakdown(uint64_t account_id,
                                                       const std::string& metric_code,
                                                       int64_t start_ns, int64_t end_ns,
                                                       std::span<const std::string> group_by,
                                                       CallOptions call_options = {});
  // Events with since_ns <= timestamp <= until_ns, ascending offset, at most 1,024.
  absl::StatusOr<std::vector<EventRecord>> EventsList(uint64_t account_id, int64_t since_ns,
                                                      int64_t until_ns,
                                                      CallOptions call_options = {});
  // The alert log of one node (`node` = host:port; offsets are node-local). account_id 0 = all.
  absl::StatusOr<std::vector<AlertRecord>> AlertsList(const std::string& node, uint64_t account_id,
                                                      uint64_t since_offset,
                                                      CallOptions call_options = {});

  // ---- Alert pushes. The callback runs on the I/O thread for every ALERT_PUSH frame.
  void SetAlertCallback(AlertCallback callback);
  // Sends ALERT_PUSH_ENABLE to every node of the partition map (and, from then on, to every
  // node the client connects to, including after reconnects). OK once every node answered.
  absl::Status EnableAlertPush(CallOptions call_options = {});

  // ---- Metric registry (sent to partition 0's leader; follows one REDIRECT).
  absl::Status PutMetric(const MetricSchema& schema, CallOptions call_options = {});
  absl::Status DeleteMetric(const std::string& metric_code, CallOptions call_options = {});
  absl::StatusOr<std::vector<MetricSchema>> ListMetrics(CallOptions call_options = {});

  // ---- Cluster.
  // CLUSTER_STATUS of one node (host:port); empty = any node.
  absl::StatusOr<ClusterStatus> GetClusterStatus(const std::string& node,
                                                 CallOptions call_options = {});
  // The latest partition map (copy).
  PartitionMap GetPartitionMap() const;
  // Every distinct address of the map (leaders and replicas), sorted; the seeds if no map.
  std::vector<std::string> Nodes() const;
  // Asks the I/O thread to download the map now (asynchronously).
  void RefreshPartitionMap();

 private:
  explicit Client(std::unique_ptr<IoLoop> loop);
  std::unique_ptr<IoLoop> loop_;
};

}  // namespace unimeter::client

#endif  // UNIMETER_CLIENT_CLIENT_H_
