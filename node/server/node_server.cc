#include "node/server/node_server.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/server/binary_session.h"
#include "node/server/ingest_fanout.h"
#include "node/server/json_events.h"

namespace unimeter {
namespace {

constexpr int64_t kSecondNs = 1'000'000'000;
constexpr int64_t kDayNs = 86'400 * kSecondNs;

HttpResponse Json(int status, std::string body) {
  return HttpResponse{status, "application/json", std::move(body)};
}

}  // namespace

NodeServer::NodeServer(Env& env, NodeServerOptions options)
    : env_(env), options_(std::move(options)), started_ns_(env.MonotonicNowNs()) {
  for (const PeerAddress& peer : options_.peers) {
    peer_addresses_.push_back(absl::StrCat(peer.host, ":", peer.port - 1000));
  }
  RegisterMetrics();
}

NodeServer::~NodeServer() {
  env_.CancelTimer(disk_timer_);
  env_.CancelTimer(retention_timer_);
  env_.CancelTimer(reap_timer_);
  env_.CancelTimer(map_timer_);
}

namespace {

// Counters of the replicated engine exported as gauges (totals since this process started),
// in /metrics order: one line per counter here, set from ReplicationStatus in RefreshGauges.
struct ReplicationCounterGauge {
  const char* name;
  const char* help;
  uint64_t replication::ReplicationStatus::*field;
};
constexpr ReplicationCounterGauge kReplicationCounterGauges[] = {
    {"billing_replication_forwarded_requests",
     "Requests forwarded to partition owners since start.",
     &replication::ReplicationStatus::forwarded},
    {"billing_replication_snapshots_installed", "Partition snapshots installed since start.",
     &replication::ReplicationStatus::snapshots_installed},
    {"billing_replication_snapshots_sent", "Partition snapshot transfers started since start.",
     &replication::ReplicationStatus::snapshots_sent},
    {"billing_replication_snapshot_chunks_resent",
     "Snapshot chunks sent again since start (lost or overtaken on the way).",
     &replication::ReplicationStatus::snapshot_chunks_resent},
    {"billing_replication_appends_refused_low_disk",
     "Replicated entries not stored since start because free disk was low.",
     &replication::ReplicationStatus::appends_refused_low_disk},
    {"billing_replication_forwards_replayed",
     "Forwarded request copies dropped since start as already handled.",
     &replication::ReplicationStatus::forwards_replayed},
    {"billing_replication_reads_leased",
     "Reads this node answered as owner under a read lease since start.",
     &replication::ReplicationStatus::reads_leased},
    {"billing_replication_peers_lost_acknowledged",
     "Times a restarted peer held fewer entries of a partition than it had acknowledged as "
     "durable (its disk lost synced writes).",
     &replication::ReplicationStatus::peers_lost_acknowledged},
    {"billing_replication_directories_went_back",
     "Times this node found its data directory older than what its peers had heard from it "
     "(an old backup, a disk that lost synced writes) and resynced as a new incarnation.",
     &replication::ReplicationStatus::directories_went_back},
    {"billing_replication_messages_held_back",
     "Promise requests, appends and snapshot chunks held while this process waited for its "
     "data directory to be confirmed current after a restart.",
     &replication::ReplicationStatus::messages_held_back},
    {"billing_replication_ingest_parts_combined",
     "Ingest parts this node accepted as owner into a log entry shared with other parts.",
     &replication::ReplicationStatus::ingest_parts_combined},
    {"billing_replication_reads_confirmed",
     "Reads this node answered as owner after a confirm round since start.",
     &replication::ReplicationStatus::reads_confirmed},
    {"billing_replication_registry_changes_resent",
     "Metric registry changes the registry leader proposed again to partitions lacking them.",
     &replication::ReplicationStatus::registry_changes_resent},
    {"billing_replication_alerts_copied",
     "Alert records of this node whose copies committed to a majority since start.",
     &replication::ReplicationStatus::alerts_copied},
    {"billing_replication_alerts_restored",
     "Alert records restored from peers' copies after this node's disk was replaced.",
     &replication::ReplicationStatus::alerts_restored},
    {"billing_replication_alert_records_repaired",
     "Damaged stored alert records this node listed from their replicated copies instead.",
     &replication::ReplicationStatus::alert_records_repaired},
};

}  // namespace

void NodeServer::RegisterMetrics() {
  MetricsRegistry& r = registry_;
  const char* ingested = "Events accepted (stored, not duplicates), owner-side, by request mode.";
  metrics_.ingested_async =
      &r.AddCounter("billing_events_ingested_total", ingested, {{"mode", "async"}});
  metrics_.ingested_sync =
      &r.AddCounter("billing_events_ingested_total", ingested, {{"mode", "sync"}});
  metrics_.duplicates =
      &r.AddCounter("billing_events_duplicate_total", "Events dropped as duplicates, owner-side.");
  EngineMetrics engine_metrics;
  engine_metrics.wal_writes =
      &r.AddCounter("billing_wal_writes_total", "Completed writes to this node's durable log.");
  engine_metrics.wal_syncs =
      &r.AddCounter("billing_wal_syncs_total", "Completed fsyncs of this node's durable log.");
  metrics_.wall_clock_steps = &r.AddCounter(
      "billing_wall_clock_steps_total",
      "Steps of a second or more of this node's wall clock against its monotonic clock.");
  metrics_.view_changes = &r.AddCounter("billing_view_changes_total",
                                        "Partition epochs this node started as the owner.");
  metrics_.term = &r.AddGauge("billing_replication_term", "Configuration group term.");
  metrics_.is_leader = &r.AddGauge("billing_replication_is_leader",
                                   "1 when this node leads the configuration group.");
  metrics_.partitions_serving = &r.AddGauge(
      "billing_partitions_serving",
      "Partitions this node owns and serves (epoch committed, a quorum of active members "
      "reachable).");
  metrics_.reachable_members = &r.AddGauge("billing_replication_reachable_members",
                                           "Members heard from recently, this node included.");
  metrics_.commit_index_total = &r.AddGauge("billing_replication_commit_index_total",
                                            "Sum over partitions of the commit index here.");
  metrics_.replication_lag_entries =
      &r.AddGauge("billing_replication_uncommitted_entries",
                  "Entries in this node's logs not yet known committed.");
  for (const ReplicationCounterGauge& gauge : kReplicationCounterGauges) {
    replication_counters_.emplace_back(&r.AddGauge(gauge.name, gauge.help), gauge.field);
  }
  engine_metrics.alerts_recorded = &r.AddCounter(
      "billing_alerts_recorded_total", "Crossing records appended to this node's alert log.");
  metrics_.alerts_pushed = &r.AddCounter("billing_alerts_pushed_total",
                                         "Alert push frames queued to subscribed connections.");
  metrics_.backpressure = &r.AddCounter("billing_backpressure_total", "BACKPRESSURE replies sent.");
  metrics_.requests_rejected = &r.AddCounter("billing_requests_rejected_total",
                                             "Requests answered ERR at the framing level.");
  metrics_.connections =
      &r.AddGauge("billing_connections_active", "Open binary-protocol connections.");
  metrics_.http_connections =
      &r.AddGauge("billing_http_connections_active", "Open HTTP connections.");
  metrics_.wal_offset =
      &r.AddGauge("billing_wal_offset_bytes", "Current write position of this node's durable log.");
  metrics_.alert_subscribers =
      &r.AddGauge("billing_alert_subscribers", "Connections with alert push enabled.");
  metrics_.agg_keys =
      &r.AddGauge("billing_agg_keys_total", "Live aggregate keys held by this node.");
  metrics_.memtable_bytes =
      &r.AddGauge("billing_memtable_bytes", "Approximate memory held by aggregates.");
  metrics_.alert_copies = &r.AddGauge(
      "billing_alert_copies", "Copies of alert records (of every node) this node keeps in memory.");
  metrics_.checkpoint_bytes =
      &r.AddGauge("billing_checkpoint_bytes", "Size of the latest checkpoint batch.");
  metrics_.partitions_owned =
      &r.AddGauge("billing_partitions_owned", "Partitions this node currently owns.");
  metrics_.node_ready = &r.AddGauge("billing_node_ready", "1 when the node is serving.");
  metrics_.ingest_async_duration = &r.AddHistogram("billing_ingest_async_duration_seconds",
                                                   "INGEST_ASYNC latency.", {}, kLatencyBoundsNs);
  metrics_.ingest_sync_duration = &r.AddHistogram("billing_ingest_sync_duration_seconds",
                                                  "INGEST_SYNC latency.", {}, kLatencyBoundsNs);
  engine_metrics.wal_sync_duration =
      &r.AddHistogram("billing_wal_sync_duration_seconds",
                      "Latency of one fsync of the durable log.", {}, kLatencyBoundsNs);
  options_engine_metrics_ = engine_metrics;
}

absl::Status NodeServer::Start() {
  if (options_.peers.empty()) {
    absl::StatusOr<std::unique_ptr<LocalEngine>> engine =
        LocalEngine::Open(env_, options_.engine, options_engine_metrics_);
    if (!engine.ok()) {
      return engine.status();
    }
    engine_ = std::move(*engine);
  } else {
    replication::ReplicatedEngineOptions cluster = options_.cluster;
    cluster.local = options_.engine;
    cluster.members = {env_.node_id()};
    for (const PeerAddress& peer : options_.peers) {
      cluster.members.push_back(peer.id);
    }
    absl::StatusOr<std::unique_ptr<replication::ReplicatedEngine>> engine =
        replication::ReplicatedEngine::Open(env_, std::move(cluster), options_engine_metrics_);
    if (!engine.ok()) {
      return engine.status();
    }
    cluster_engine_ = engine->get();
    engine_ = std::move(*engine);
  }
  engine_->SetAlertsDurable(
      [this](const std::vector<AlertRecord>& records) { OnAlertsDurable(records); });
  absl::StatusOr<std::unique_ptr<Listener>> listener = env_.Listen(
      options_.port, [this](std::unique_ptr<Stream> stream) { OnAccept(std::move(stream)); });
  if (!listener.ok()) {
    return listener.status();
  }
  listener_ = std::move(*listener);
  if (options_.http_port != 0) {
    http_ = std::make_unique<HttpServer>(
        env_, HttpServerOptions{},
        [this](const HttpRequest& request, HttpResponder respond) {
          HandleHttp(request, std::move(respond));
        },
        metrics_.http_connections);
    if (absl::Status status = http_->Start(options_.http_port); !status.ok()) {
      return status;
    }
  }
  CheckFreeDisk();
  if (cluster_engine_ != nullptr) PushMapIfChanged();
  retention_timer_ =
      env_.StartTimer(options_.retention_sweep_interval_ns, [this] { SweepRetention(); });
  env_.Log(absl::StrCat("serving: port=", port(), " http_port=", http_port(),
                        " partitions=", kPartitionCount));
  return absl::OkStatus();
}

uint16_t NodeServer::port() const { return listener_ == nullptr ? 0 : listener_->port(); }
uint16_t NodeServer::http_port() const { return http_ == nullptr ? 0 : http_->port(); }

void NodeServer::OnAccept(std::unique_ptr<Stream> stream) {
  if (shutting_down_ || sessions_.size() >= options_.connections_max) {
    stream->Close();  // Over the limit: accepted and closed at once (WP 1).
    auto doomed = std::make_shared<BinarySession>(*this, std::move(stream));
    closed_sessions_.push_back(std::move(doomed));
    return;
  }
  auto session = std::make_shared<BinarySession>(*this, std::move(stream));
  sessions_[session->id()] = session;
  metrics_.connections->Set(static_cast<int64_t>(sessions_.size()));
  session->Start();
}

void NodeServer::OnSessionClosed(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return;
  }
  if (it->second->alert_subscriber()) {
    metrics_.alert_subscribers->Add(-1);
  }
  // The session may be inside its own stream callback: destroy it from a later loop turn.
  closed_sessions_.push_back(std::move(it->second));
  sessions_.erase(it);
  metrics_.connections->Set(static_cast<int64_t>(sessions_.size()));
  if (reap_timer_ == kNoTimer) {
    reap_timer_ = env_.StartTimer(0, [this] {
      reap_timer_ = kNoTimer;
      closed_sessions_.clear();
    });
  }
}

void NodeServer::OnAlertsDurable(const std::vector<AlertRecord>& records) {
  for (const AlertRecord& record : records) {
    const metering::AlertCrossing& crossing = record.crossing;
    protocol::AlertPush push;
    push.record = protocol::AlertRecord{record.offset,           crossing.account_id,
                                        crossing.metric_code,    crossing.threshold_code,
                                        crossing.value_at_cross, crossing.event_timestamp_ns};
    push.node_id = static_cast<uint8_t>(env_.node_id());
    std::string frame;
    if (!protocol::AppendAlertPushFrame(push, &frame).ok()) {
      continue;
    }
    for (const auto& [id, session] : sessions_) {
      if (session->alert_subscriber() && session->Push(frame)) {
        metrics_.alerts_pushed->Increment();
      }
    }
  }
}

void NodeServer::PushMapIfChanged() {
  const uint64_t version = cluster_engine_->map_version();
  if (version != pushed_map_version_) {
    pushed_map_version_ = version;
    for (const auto& [id, session] : sessions_) {
      session->PushPartitionMap();
    }
  }
  map_timer_ = env_.StartTimer(100'000'000, [this] { PushMapIfChanged(); });
}

void NodeServer::CheckFreeDisk() {
  absl::StatusOr<uint64_t> free_bytes = env_.FreeDiskBytes();
  // Hysteresis: once low, writes resume only above the threshold plus an eighth of it (at
  // least 1 MiB), so a disk hovering around the threshold does not flip the node, and in a
  // cluster its partitions (docs/replication.md, "Ownership"), at every check.
  const uint64_t min_bytes = static_cast<uint64_t>(options_.min_free_disk_mb) * 1024 * 1024;
  const uint64_t resume_bytes =
      min_bytes == 0 ? 0 : min_bytes + std::max<uint64_t>(min_bytes / 8, 1024 * 1024);
  const bool low = free_bytes.ok() && *free_bytes < (disk_low_ ? resume_bytes : min_bytes);
  engine_->SetWritesBlocked(low);
  if (low && !disk_low_) {
    env_.Log(absl::StrCat("free disk below ", options_.min_free_disk_mb,
                          " MiB: refusing writes with BACKPRESSURE"));
  } else if (!low && disk_low_) {
    env_.Log(absl::StrCat("free disk back above ", resume_bytes / (1024 * 1024),
                          " MiB: taking writes again"));
  }
  disk_low_ = low;
  CheckWallClock();
  disk_timer_ = env_.StartTimer(
      low ? std::min(options_.disk_check_interval_ns, options_.low_disk_check_interval_ns)
          : options_.disk_check_interval_ns,
      [this] { CheckFreeDisk(); });
}

void NodeServer::CheckWallClock() {
  constexpr int64_t kStepReportNs = 1'000'000'000;
  const int64_t wall_ns = env_.WallNowNs();
  const int64_t monotonic_ns = env_.MonotonicNowNs();
  const bool first = !clock_sampled_;
  clock_sampled_ = true;
  const int64_t step_ns =
      (wall_ns - clock_sample_wall_ns_) - (monotonic_ns - clock_sample_monotonic_ns_);
  clock_sample_wall_ns_ = wall_ns;
  clock_sample_monotonic_ns_ = monotonic_ns;
  if (first || (step_ns > -kStepReportNs && step_ns < kStepReportNs)) return;
  metrics_.wall_clock_steps->Increment();
  env_.Log(absl::StrCat("wall clock stepped by ", step_ns / 1'000'000,
                        " ms: dedup windows and server timestamps use it; a step forward longer "
                        "than the dedup window lets a retried event count twice (slew, do not "
                        "step: docs/operations.md, Clocks)"));
}

void NodeServer::SweepRetention() {
  const int64_t cutoff_ns = env_.WallNowNs() - options_.retention_days * kDayNs;
  engine_->SweepRetention(cutoff_ns, [this, cutoff_ns](absl::Status status) {
    if (!status.ok()) {
      env_.Log(absl::StrCat("retention sweep at cut-off ", cutoff_ns,
                            " failed: ", status.ToString(), "; retrying next hour"));
    }
  });
  retention_timer_ =
      env_.StartTimer(options_.retention_sweep_interval_ns, [this] { SweepRetention(); });
}

void NodeServer::RefreshGauges() {
  const NodeStore& store = engine_->store();
  metrics_.wal_offset->Set(
      static_cast<int64_t>(const_cast<NodeStore&>(store).wal().appended_position()));
  uint64_t keys = 0;
  uint64_t alert_copies = 0;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    keys += store.state(partition).aggregate_key_count();
    alert_copies += store.state(partition).alert_copies().size();
  }
  metrics_.agg_keys->Set(static_cast<int64_t>(keys));
  metrics_.alert_copies->Set(static_cast<int64_t>(alert_copies));
  metrics_.memtable_bytes->Set(static_cast<int64_t>(keys * 128));  // Measured bytes per key.
  metrics_.checkpoint_bytes->Set(static_cast<int64_t>(store.stats().checkpoint_bytes));
  metrics_.node_ready->Set(ready() ? 1 : 0);
  if (cluster_engine_ == nullptr) {
    metrics_.partitions_owned->Set(kPartitionCount);
    metrics_.partitions_serving->Set(kPartitionCount);
    metrics_.is_leader->Set(1);
    metrics_.reachable_members->Set(1);
  } else {
    const replication::ReplicationStatus status = cluster_engine_->status();
    metrics_.partitions_owned->Set(status.owned_partitions);
    metrics_.partitions_serving->Set(status.serving_partitions);
    metrics_.term->Set(static_cast<int64_t>(status.term));
    metrics_.is_leader->Set(status.is_leader ? 1 : 0);
    metrics_.reachable_members->Set(status.reachable_members);
    for (const auto& [gauge, field] : replication_counters_) {
      gauge->Set(static_cast<int64_t>(status.*field));
    }
    metrics_.view_changes->Increment(status.epoch_changes - epoch_changes_reported_);
    epoch_changes_reported_ = status.epoch_changes;
  }
  uint64_t commit_total = 0;
  uint64_t uncommitted = 0;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    commit_total += store.commit_index(partition);
    uncommitted += store.last_index(partition) - store.commit_index(partition);
  }
  metrics_.commit_index_total->Set(static_cast<int64_t>(commit_total));
  metrics_.replication_lag_entries->Set(static_cast<int64_t>(uncommitted));
}

std::string NodeServer::HealthJson() const {
  std::string cluster;
  uint32_t owned = kPartitionCount;
  if (cluster_engine_ != nullptr) {
    const replication::ReplicationStatus status = cluster_engine_->status();
    owned = status.owned_partitions;
    const char* incarnation = status.incarnation == replication::NodeState::kActive    ? "active"
                              : status.incarnation == replication::NodeState::kSyncing ? "syncing"
                                                                                       : "fresh";
    // `problem` is our own fixed text (no quotes or backslashes).
    cluster = absl::StrCat(
        ",\"term\":", status.term,
        ",\"leader\":", status.leader == replication::kNoVote ? -1 : int64_t{status.leader},
        ",\"incarnation\":\"", incarnation, "\",\"partitions_serving\":", status.serving_partitions,
        ",\"reachable_members\":", status.reachable_members, ",\"problem\":\"", status.problem,
        "\"");
  }
  return absl::StrCat("{\"status\":\"", ready() ? "ok" : "unavailable",
                      "\",\"uptime_seconds\":", (env_.MonotonicNowNs() - started_ns_) / kSecondNs,
                      ",\"node_id\":", env_.node_id(), ",\"nodes\":", engine_->node_count(),
                      ",\"role\":\"", engine_->node_count() == 1 ? "single" : "member",
                      "\",\"partitions_owned\":", owned, cluster,
                      ",\"ready\":", ready() ? "true" : "false", "}");
}

void NodeServer::HandleHttp(const HttpRequest& request, HttpResponder respond) {
  if (request.path == "/health" && request.method == "GET") {
    return respond(Json(ready() ? 200 : 503, HealthJson()));
  }
  if (request.path == "/metrics" && request.method == "GET") {
    RefreshGauges();
    return respond(HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                                registry_.RenderPrometheus()});
  }
  if (request.path == "/v1/events" && request.method == "POST") {
    return HandleHttpIngest(request, std::move(respond));
  }
  respond(Json(404, "{\"error\":\"not found\"}"));
}

void NodeServer::HandleHttpIngest(const HttpRequest& request, HttpResponder respond) {
  if (request.body.empty()) {
    return respond(Json(400, "{\"error\":\"empty body\"}"));
  }
  absl::StatusOr<JsonEventsRequest> parsed = ParseJsonEvents(request.body);
  if (!parsed.ok()) {
    return respond(Json(400, "{\"error\":\"invalid json\"}"));
  }
  std::vector<metering::Event> events;
  for (const JsonEvent& json : parsed->events) {
    metering::Event event;
    event.account_id = json.account_id;
    event.metric_code = json.metric_code;
    event.value = json.value;
    if (!metering::ValidateEvent(event).ok()) {
      return respond(Json(400, "{\"error\":\"invalid json\"}"));
    }
    events.push_back(std::move(event));
  }
  const IngestMode mode = parsed->sync ? IngestMode::kSync : IngestMode::kAsync;
  IngestFanout(*engine_, std::move(events), mode,
               [this, mode, respond = std::move(respond)](MergedIngest merged) mutable {
                 switch (merged.outcome) {
                   case MergedIngest::Outcome::kNothingAccepted:
                     metrics_.backpressure->Increment();
                     return respond(Json(503, "{\"error\":\"backpressure\"}"));
                   case MergedIngest::Outcome::kUnknown:
                     return respond(Json(500, "{\"error\":\"ingest failed\"}"));
                   case MergedIngest::Outcome::kAcknowledged:
                     (mode == IngestMode::kSync ? metrics_.ingested_sync : metrics_.ingested_async)
                         ->Increment(merged.n_stored);
                     return respond(
                         Json(200, absl::StrCat("{\"ok\":true,\"count\":", merged.n_stored, "}")));
                 }
               });
}

protocol::PartitionMap NodeServer::BuildPartitionMap(const std::string& local_address,
                                                     std::string* storage) const {
  // This node's own address, then each peer's client address (replication port - 1000).
  if (!options_.advertised_address.empty()) {
    *storage = options_.advertised_address;
  } else {
    const size_t colon = local_address.rfind(':');
    *storage = absl::StrCat(local_address.substr(0, colon), ":", port());
  }
  protocol::PartitionMap map;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    map[partition].leader = *storage;  // Unknown owners: ask here, the request is forwarded.
    const NodeId owner = engine_->owner(partition);
    std::vector<std::string_view> replicas;
    if (owner != env_.node_id()) replicas.push_back(*storage);
    for (size_t i = 0; i < options_.peers.size(); ++i) {
      if (options_.peers[i].id == owner) {
        map[partition].leader = peer_addresses_[i];
      } else {
        replicas.push_back(peer_addresses_[i]);
      }
    }
    if (replicas.size() > 0 && map[partition].leader != replicas[0]) {
      map[partition].replica0 = replicas[0];
    }
    if (replicas.size() > 1) map[partition].replica1 = replicas[1];
  }
  return map;
}

std::optional<std::string> NodeServer::PeerClientAddress(NodeId node) const {
  for (size_t i = 0; i < options_.peers.size(); ++i) {
    if (options_.peers[i].id == node) return peer_addresses_[i];
  }
  return std::nullopt;
}

protocol::ClusterStatus NodeServer::BuildClusterStatus() const {
  const NodeStore& store = engine_->store();
  protocol::ClusterStatus status;
  status.node_id = static_cast<uint8_t>(env_.node_id());
  status.n_nodes = static_cast<uint8_t>(engine_->node_count());
  status.wal_offset = const_cast<NodeStore&>(store).wal().appended_position();
  status.segment_count = const_cast<NodeStore&>(store).wal().segment_bases().size();
  uint64_t keys = 0;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    keys += store.state(partition).aggregate_key_count();
    protocol::PartitionStatus& entry = status.partitions[partition];
    // The view is the term that issued the partition's current epoch.
    entry.view_number = cluster_engine_ == nullptr
                            ? static_cast<uint32_t>(store.last_epoch(partition))
                            : static_cast<uint32_t>(cluster_engine_->epoch(partition) >> 32);
    entry.commit_number = static_cast<uint16_t>(store.commit_index(partition));
    entry.role = engine_->owner(partition) == env_.node_id() ? 0 : 1;
    entry.leader = static_cast<uint8_t>(engine_->owner(partition));
  }
  status.memtable_entries = keys;
  status.uptime_ns = env_.MonotonicNowNs() - started_ns_;
  return status;
}

void NodeServer::Shutdown(absl::AnyInvocable<void()> done) {
  shutting_down_ = true;
  listener_.reset();
  if (http_ != nullptr) {
    http_->StopAccepting();
  }
  for (auto& [id, session] : sessions_) {
    session->StopReading();
  }
  // Wait (polling each 10 ms) until no request is in flight and no checkpoint or events
  // flush is running (one job at a time), then checkpoint.
  auto wait = std::make_shared<absl::AnyInvocable<void()>>();
  *wait = [this, wait, done = std::move(done)]() mutable {
    size_t in_flight = 0;
    for (const auto& [id, session] : sessions_) {
      in_flight += session->in_flight();
    }
    if (in_flight > 0 || engine_->store().checkpoint_running()) {
      env_.StartTimer(10'000'000, [wait] { (*wait)(); });
      return;
    }
    engine_->Checkpoint([this, wait, done = std::move(done)](absl::Status status) mutable {
      if (!status.ok()) {
        env_.Log(absl::StrCat("shutdown checkpoint failed: ", status.ToString()));
      }
      *wait = nullptr;  // Breaks the self-reference.
      done();
    });
  };
  (*wait)();
}

}  // namespace unimeter
