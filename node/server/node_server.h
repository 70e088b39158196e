// node/server/node_server.h
//
// NodeServer is the `unimeter` node as a NodeService: the binary protocol v1 on --port
// (wire-protocol-v1.md), HTTP on --http-port (/health, /metrics, POST /v1/events), the
// Prometheus metrics of product-semantics §15, and the periodic work (free-disk check for
// backpressure, hourly retention sweep). Requests go to an Engine (node/server/engine.h).
//
// Each binary connection is a BinarySession: frames are decoded in order, requests may
// complete out of order (replies carry their request id), replies and pushes are written
// whole. Bad input gets ERR (the stream stays in sync; bad magic closes it). Event-loop only.
#ifndef UNIMETER_NODE_SERVER_NODE_SERVER_H_
#define UNIMETER_NODE_SERVER_NODE_SERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "node/base/flags.h"
#include "node/env/env.h"
#include "node/env/node_service.h"
#include "node/observability/metrics.h"
#include "node/replication/replicated_engine.h"
#include "node/server/http_server.h"
#include "node/server/local_engine.h"
#include "protocol/wire.h"

namespace unimeter {

struct NodeServerOptions {
  uint16_t port = 7001;
  uint16_t http_port = 9090;  // 0 disables HTTP.
  // Advertised "host:port" (--bind / MY_ADDR); empty: the local address of the asking
  // connection's socket, with --port.
  std::string advertised_address;
  int64_t retention_days = 90;
  int64_t min_free_disk_mb = 256;
  size_t connections_max = 1024;
  size_t requests_in_flight_max = 4096;  // Per connection; more get BACKPRESSURE.
  int64_t retention_sweep_interval_ns = 3'600'000'000'000;
  // One statfs per check; a low disk is found (and its partitions handed over) this soon.
  int64_t disk_check_interval_ns = 1'000'000'000;
  // While free disk is low, how soon it is checked again: writes resume this soon after
  // space is freed (one statfs per check).
  int64_t low_disk_check_interval_ns = 250'000'000;
  LocalEngineOptions engine;
  // The other members (--peers); empty: a single node (LocalEngine). Their client address
  // is host:(repl_port - 1000), advertised in the partition map.
  std::vector<PeerAddress> peers;
  replication::ReplicatedEngineOptions cluster;  // `local` and `members` are filled in.
};

class BinarySession;

class NodeServer final : public NodeService {
 public:
  NodeServer(Env& env, NodeServerOptions options);
  ~NodeServer() override;

  absl::Status Start() override;

  // Graceful shutdown: stop accepting connections and requests, let in-flight ones finish,
  // checkpoint, then call `done`.
  void Shutdown(absl::AnyInvocable<void()> done);

  uint16_t port() const;
  uint16_t http_port() const;
  MetricsRegistry& metrics() { return registry_; }
  Engine& engine() { return *engine_; }
  bool ready() const { return engine_ != nullptr && engine_->ready(); }

 private:
  friend class BinarySession;
  struct Metrics {
    Counter* ingested_async;
    Counter* ingested_sync;
    Counter* duplicates;
    Counter* alerts_pushed;
    Counter* backpressure;
    Counter* requests_rejected;
    Gauge* connections;
    Gauge* http_connections;
    Gauge* wal_offset;
    Gauge* alert_subscribers;
    Gauge* agg_keys;
    Gauge* alert_copies;
    Gauge* memtable_bytes;
    Gauge* checkpoint_bytes;
    Gauge* partitions_owned;
    Gauge* node_ready;
    Counter* view_changes;
    Gauge* term;
    Gauge* is_leader;
    Gauge* partitions_serving;
    Gauge* reachable_members;
    Gauge* commit_index_total;
    Gauge* replication_lag_entries;
    Counter* wall_clock_steps;
    Histogram* ingest_async_duration;
    Histogram* ingest_sync_duration;
  };

  void RegisterMetrics();
  void RefreshGauges();
  void OnAccept(std::unique_ptr<Stream> stream);
  void OnSessionClosed(uint64_t id);
  void OnAlertsDurable(const std::vector<AlertRecord>& records);
  void CheckFreeDisk();
  // Compares the wall clock's progress with the monotonic clock's since the last check
  // (every disk check) and reports a step of a second or more: dedup windows and server
  // timestamps are measured on the wall clock (docs/operations.md, "Clocks").
  void CheckWallClock();
  // Cluster members: pushes the partition map to every connection when it changed
  // (checked every 100 ms, so the many moves of one failover become one push).
  void PushMapIfChanged();
  void SweepRetention();
  void HandleHttp(const HttpRequest& request, HttpResponder respond);
  void HandleHttpIngest(const HttpRequest& request, HttpResponder respond);
  std::string HealthJson() const;
  // The partition map this node returns; `local_address` is the asking socket's address.
  protocol::PartitionMap BuildPartitionMap(const std::string& local_address,
                                           std::string* storage) const;
  protocol::ClusterStatus BuildClusterStatus() const;
  // A peer's client address ("host:port", from --peers); nullopt for an unknown node.
  std::optional<std::string> PeerClientAddress(NodeId node) const;

  Env& env_;
  const NodeServerOptions options_;
  const int64_t started_ns_;
  MetricsRegistry registry_;
  Metrics metrics_{};
  // Gauges of the replicated engine's counters and the status field each shows
  // (kReplicationCounterGauges in node_server.cc); empty until RegisterMetrics.
  std::vector<std::pair<Gauge*, uint64_t replication::ReplicationStatus::*>> replication_counters_;
  EngineMetrics options_engine_metrics_;
  std::unique_ptr<Engine> engine_;
  replication::ReplicatedEngine* cluster_engine_ = nullptr;  // engine_, when clustered.
  uint64_t epoch_changes_reported_ = 0;
  std::vector<std::string> peer_addresses_;  // Client address of options_.peers[i].
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<HttpServer> http_;
  absl::btree_map<uint64_t, std::shared_ptr<BinarySession>> sessions_;
  std::vector<std::shared_ptr<BinarySession>> closed_sessions_;
  TimerId disk_timer_ = kNoTimer;
  bool disk_low_ = false;  // Writes blocked by the last free-disk check.
  TimerId retention_timer_ = kNoTimer;
  TimerId reap_timer_ = kNoTimer;
  TimerId map_timer_ = kNoTimer;
  uint64_t pushed_map_version_ = 0;
  bool shutting_down_ = false;
  bool clock_sampled_ = false;
  int64_t clock_sample_wall_ns_ = 0;
  int64_t clock_sample_monotonic_ns_ = 0;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_NODE_SERVER_H_
