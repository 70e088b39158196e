// The engine's frame: opening, message dispatch, outboxes, group commit and status.
// The configuration group, partition epochs and requests live in replicated_engine_*.cc.
#include "node/replication/replicated_engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/planted_bugs.h"

namespace unimeter::replication {

absl::StatusOr<std::unique_ptr<ReplicatedEngine>> ReplicatedEngine::Open(
    Env& env, ReplicatedEngineOptions options, EngineMetrics metrics) {
  std::sort(options.members.begin(), options.members.end());
  options.members.erase(std::unique(options.members.begin(), options.members.end()),
                        options.members.end());
  if (!std::binary_search(options.members.begin(), options.members.end(), env.node_id())) {
    return absl::InvalidArgumentError("the member list does not name this node");
  }
  // replica.meta first: nothing of another node's directory is read or replayed.
  bool fresh = false;
  absl::StatusOr<std::unique_ptr<MetaFile>> meta = MetaFile::Open(env, &fresh);
  if (!meta.ok()) return meta.status();
  const NodeId owner = (*meta)->meta().node_id;
  if (!fresh && owner != kUnknownNodeId && owner != env.node_id()) {
    return absl::FailedPreconditionError(absl::StrCat("the data directory belongs to node ", owner,
                                                      " (replica.meta), not to node ",
                                                      env.node_id(), ": start node ", owner,
                                                      " on it, or give this node its own directory "
                                                      "(an empty one resyncs it from its peers)"));
  }
  absl::StatusOr<std::unique_ptr<NodeStore>> store = NodeStore::Open(env, options.local.store);
  if (!store.ok()) return store.status();
  if (fresh) {
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      if ((*store)->last_index(partition) > 0) {
        return absl::DataLossError(
            "replica.meta is missing but the data directory holds partition logs: the "
            "directory is damaged (wipe it to resync this node from its peers)");
      }
    }
  }
  std::unique_ptr<ReplicatedEngine> engine(new ReplicatedEngine(
      env, std::move(options), metrics, std::move(*store), std::move(*meta), fresh));
  engine->Start();
  return engine;
}

ReplicatedEngine::ReplicatedEngine(Env& env, ReplicatedEngineOptions options, EngineMetrics metrics,
                                   std::unique_ptr<NodeStore> store, std::unique_ptr<MetaFile> meta,
                                   bool fresh)
    : env_(env),
      options_(std::move(options)),
      metrics_(metrics),
      store_(std::move(store)),
      meta_(std::move(meta)),
      members_(options_.members) {
  quorum_ = members_.size() / 2 + 1;
  const size_t n = members_.size();
  last_heard_ns_.assign(n, kLongAgoNs);
  live_since_ns_.assign(n, INT64_MIN);
  answered_ns_.assign(n, kLongAgoNs);
  peer_header_.assign(n, Header{});
  forwards_seen_.assign(n, ReplayWindow());
  restarted_.assign(n, false);
  peer_writes_blocked_.assign(n, false);
  peer_meta_.assign(n, PeerMetaRecord{});
  peer_commit_.assign(n, std::array<uint64_t, kPartitionCount>{});
  outboxes_.resize(n);
  append_in_flight_.assign(n, false);
  confirm_sent_round_.assign(n, 0);
  confirm_in_flight_.assign(n, false);
  confirm_deadline_ns_.assign(n, 0);
  confirm_lease_round_.assign(n, 0);
  confirm_lease_sent_ns_.assign(n, kLongAgoNs);
  // The previous process may have granted read leases it did not live to see end: tell no
  // promise until any of them would have (a cluster of one grants none).
  const int64_t leases_end_ns =
      n == 1 ? kLongAgoNs : env_.MonotonicNowNs() + std::max<int64_t>(options_.read_lease_ns, 0);
  for (LeaseGrant& grant : lease_grants_) {
    grant = LeaseGrant{.epoch = 0, .until_ns = leases_end_ns, .older_until_ns = leases_end_ns};
  }
  append_deadline_ns_.assign(n, 0);
  append_sequence_sent_.assign(n, 0);
  flush_start_.assign(n, 0);
  snapshot_window_ns_.assign(n, kLongAgoNs);
  snapshot_budget_.assign(n, 0);
  for (Part& part : parts_) part.peers.resize(n);
  map_.owner.fill(static_cast<uint8_t>(kNoOwner));
  ReplicaMeta& m = meta_->mutable_meta();
  m.node_id = env_.node_id();  // New, or a version-2 file: recorded with the next write.
  if (fresh) {
    m.incarnation = env_.prng().NextU64() | 1;
    if (n == 1) {
      m.active = true;  // A cluster of one bootstraps alone.
      m.formed = true;
    }
  }
  boot_id_ = env_.prng().NextU64();
  // Forwarded requests are numbered from a random point of each process: a peer may answer
  // a request of this node's previous process after the restart (it took the request
  // before and answers on the new connection), and that answer must match no request of
  // this process (the simulator found one acknowledging another request's events).
  next_request_id_ = env_.prng().NextU64() | 1;
  state_ = m.active ? NodeState::kActive : (m.formed ? NodeState::kSyncing : NodeState::kFresh);
  header_incarnation_ = m.incarnation;
  meta_start_ = meta_->opened_sequence();
  wal_start_ = store_->wal_durable_position();
  // An active directory may have gone back in time: a quorum must confirm it first. A
  // syncing or fresh one counts toward no quorum anyway.
  confirmed_ = state_ != NodeState::kActive || n == 1;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    parts_[partition].durable_index = store_->last_index(partition);
  }
  LoadPeerRecords();
}

ReplicatedEngine::~ReplicatedEngine() {
  store_->set_peer_records_source(nullptr);
  env_.CancelTimer(election_timer_);
  env_.CancelTimer(tick_timer_);
  env_.CancelTimer(sweep_timer_);
  env_.CancelTimer(flush_timer_);
  env_.CancelTimer(accept_timer_);
  env_.CancelTimer(hold_timer_);
  env_.CancelTimer(held_timer_);
  env_.CancelTimer(commit_timer_);
  env_.transport().SetReceiver(nullptr);
}

void ReplicatedEngine::Start() {
  if (options_.ownership_observer) {
    const ReplicaMeta& restored = meta_->meta();
    Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kRestoredVote,
                           .term = restored.term,
                           .candidate = restored.voted_for});
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kRestoredPromise,
                             .partition = partition,
                             .epoch = restored.promised_epoch[partition]});
    }
  }
  meta_->Save([this, incarnation = meta_->meta().incarnation](absl::Status status) {
    if (FailStopOnError(env_, status, "replica.meta write")) return;
    // Durable now (a fresh directory's was only drawn): it is this directory's for good.
    Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kIncarnation, .incarnation = incarnation});
  });
  ResetAlertCopies();
  env_.transport().SetReceiver(
      [this](NodeId source, absl::Span<const uint8_t> bytes) { OnMessage(source, bytes); });
  env_.Log(absl::StrCat("replication: member of ", members_.size(), ", quorum ", quorum_,
                        ", incarnation ", meta_->meta().incarnation, ", state ",
                        static_cast<int>(state_), ", term ", meta_->meta().term));
  checkpoint_timer_ = std::make_unique<CheckpointTimer>(env_, *store_, options_.local.checkpoint);
  sweep_timer_ = env_.StartTimer(options_.heartbeat_interval_ns, [this] { SweepTimeouts(); });
  if (members_.size() == 1) {
    BecomeLeader();
  } else {
    ResetElectionTimer();
  }
}

int ReplicatedEngine::Position(NodeId node) const {
  auto it = std::lower_bound(members_.begin(), members_.end(), node);
  if (it == members_.end() || *it != node) return -1;
  return static_cast<int>(it - members_.begin());
}

bool ReplicatedEngine::CountsForQuorum(NodeId node) const {
  const bool planted = BugPlanted(PlantedBug::kFreshNodeCountsForQuorum);
  if (node == env_.node_id()) return state_ == NodeState::kActive || planted;
  const int position = Position(node);
  return position >= 0 && (peer_header_[position].state == NodeState::kActive || planted);
}

size_t ReplicatedEngine::QuorumSize() const {
  if (!BugPlanted(PlantedBug::kQuorumOfReachable)) return quorum_;
  size_t reachable = 1;
  for (NodeId member : members_) {
    if (member != env_.node_id() && Reachable(member)) ++reachable;
  }
  return reachable / 2 + 1;
}

void ReplicatedEngine::Send(NodeId target, const Message& message) {
  Header header;
  header.incarnation = header_incarnation_;
  header.boot_id = boot_id_;
  header.state = state_;
  header.formed = meta_->meta().formed;
  const std::vector<uint8_t> bytes = EncodeMessage(header, message);

  UM_CHECK_LE(bytes.size(), kMessageSizeBytesMax);
  env_.transport().Send(target, bytes);
}

void ReplicatedEngine::OnMessage(NodeId source, absl::Span<const uint8_t> bytes) {
  const int position = Position(source);
  Header header;
  Message message;
  if (position < 0 || source == env_.node_id() || !DecodeMessage(bytes, &header, &message).ok()) {
    ++counters_.messages_dropped;
    return;
  }
  Header& known = peer_header_[position];
  if (known.incarnation != 0 && known.incarnation != header.incarnation) {
    // A new incarnation (wiped disk): nothing it acknowledged before counts any more.
    env_.Log(
        absl::StrCat("replication: node ", source, " has a new incarnation ", header.incarnation));
    for (Part& part : parts_) {
      part.peers[position] = PeerProgress{};
      part.promises.erase(source);
    }
    live_since_ns_[position] = INT64_MIN;
  }
  if (known.boot_id != header.boot_id) {
    // A new process (or a new incarnation): it will not begin its old epochs again, so its
    // partitions need new ones from the leader; it numbers its forwards afresh.
    restarted_[position] = true;
    forwards_seen_[position].Reset();
  }
  if (known.boot_id != 0 && known.boot_id != header.boot_id) {
    // The peer restarted: its durable log is intact but what it applied past its last
    // durable commit mark is not. Tell it everything again from its durable match. Snapshots
    // sent to the old process died with it: the pacing that waits for one to be installed
    // must not hold back the first one the new process needs (catch-up waited up to 2 s).
    for (Part& part : parts_) {
      PeerProgress& peer = part.peers[position];
      peer.next_index = peer.ResendIndex();
      peer.sent_commit = 0;
      peer.acked = false;
      peer.snapshot_sent_ns = kLongAgoNs;
    }
    const size_t at = static_cast<size_t>(position);
    snapshots_out_.erase(snapshots_out_.lower_bound({at, 0}),
                         snapshots_out_.lower_bound({at + 1, 0}));
  }
  const bool process_changed = known.boot_id != 0 && known.boot_id != header.boot_id;
  known = header;
  last_heard_ns_[position] = env_.MonotonicNowNs();
  if (process_changed) {
    // Requests forwarded to the old process have an unknown outcome (it may have accepted
    // them before dying). Fail them before this message is handled: an answer from the new
    // process (to a duplicated or resent forward) says only what the new one did, and a
    // "nothing accepted" from it must not reach a client as BACKPRESSURE.
    FailRemotes(
        [source](const Remote& remote) { return remote.target == source; },
        absl::UnknownError(absl::StrCat(
            "node ", source,
            " restarted before answering; the outcome is unknown: retry with the same ids")));
  }
  if (state_ == NodeState::kFresh) {
    if (header.formed && header.state == NodeState::kActive) {
      // A formed cluster exists: this empty directory is a replaced disk. Resync.
      state_ = NodeState::kSyncing;
      meta_->mutable_meta().formed = true;
      meta_->Save(
          [this](absl::Status status) { FailStopOnError(env_, status, "replica.meta write"); });
      env_.Log("replication: fresh data directory in a formed cluster: resyncing");
    } else {
      MaybeBootstrap();
    }
  }
  if (!confirmed_ && HeldUntilConfirmed(message)) {
    Hold(source, bytes);
    return;
  }
  std::visit(
      [this, source](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, Heartbeat>) HandleHeartbeat(source, body);
        if constexpr (std::is_same_v<T, HeartbeatAck>) HandleHeartbeatAck(source, body);
        if constexpr (std::is_same_v<T, VoteRequest>) HandleVoteRequest(source, body);
        if constexpr (std::is_same_v<T, VoteReply>) HandleVoteReply(source, body);
        if constexpr (std::is_same_v<T, StartEpoch>) HandleStartEpoch(source, body);
        if constexpr (std::is_same_v<T, Promise>) HandlePromise(source, body);
        if constexpr (std::is_same_v<T, Append>) HandleAppend(source, body);
        if constexpr (std::is_same_v<T, AppendAck>) HandleAppendAck(source, body);
        if constexpr (std::is_same_v<T, Fetch>) HandleFetch(source, body);
        if constexpr (std::is_same_v<T, SnapshotChunk>) HandleSnapshotChunk(source, body);
        if constexpr (std::is_same_v<T, Forward>) HandleForward(source, body);
        if constexpr (std::is_same_v<T, ForwardReply>) HandleForwardReply(body);
        if constexpr (std::is_same_v<T, ReadIndex>) HandleReadIndex(source, body);
        if constexpr (std::is_same_v<T, ReadIndexReply>) HandleReadIndexReply(body);
        if constexpr (std::is_same_v<T, ConfirmEpoch>) HandleConfirmEpoch(source, body);
        if constexpr (std::is_same_v<T, ConfirmEpochReply>) HandleConfirmEpochReply(source, body);
        if constexpr (std::is_same_v<T, SnapshotAck>) HandleSnapshotAck(source, body);
      },
      message);
  FlushOutboxes();
  FlushPeers();
}

void ReplicatedEngine::FlushOutboxes() {
  for (size_t position = 0; position < members_.size(); ++position) {
    Outbox& box = outboxes_[position];
    const NodeId target = members_[position];
    if (!box.start_epoch.items.empty()) Send(target, std::exchange(box.start_epoch, {}));
    if (!box.promise.items.empty()) Send(target, std::exchange(box.promise, {}));
    if (!box.acks.items.empty()) Send(target, std::exchange(box.acks, {}));
    if (!box.fetch.items.empty()) Send(target, std::exchange(box.fetch, {}));
    if (!box.forward.items.empty()) {
      Send(target, std::exchange(box.forward, {}));
      box.forward_bytes = 0;
    }
    if (!box.forward_reply.items.empty()) Send(target, std::exchange(box.forward_reply, {}));
    if (!box.read_index.items.empty()) Send(target, std::exchange(box.read_index, {}));
    if (!box.read_index_reply.items.empty()) {
      Send(target, std::exchange(box.read_index_reply, {}));
    }
    if (!box.snapshot_acks.items.empty()) Send(target, std::exchange(box.snapshot_acks, {}));
  }
}

// ---------------------------------------------------------------------------------------
// Group commit.

void ReplicatedEngine::RequestSync() {
  if (sync_in_flight_) {
    sync_requested_ = true;
    return;
  }
  StartSync();
}

void ReplicatedEngine::StartSync() {
  UM_CHECK(!sync_in_flight_);
  sync_in_flight_ = true;
  sync_requested_ = false;
  std::array<uint64_t, kPartitionCount> covered;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    covered[partition] = store_->last_index(partition);
    parts_[partition].sync_floor = UINT64_MAX;
  }
  std::vector<PendingAck> acks = std::move(acks_awaiting_sync_);
  acks_awaiting_sync_.clear();
  const size_t alerts_covered = alerts_.waiting();
  const int64_t started_ns = env_.MonotonicNowNs();
  store_->Sync([this, covered, acks = std::move(acks), alerts_covered,
                started_ns](absl::Status status) mutable {
    if (metrics_.wal_syncs != nullptr) {
      metrics_.wal_syncs->Increment();
      metrics_.wal_sync_duration->ObserveNs(env_.MonotonicNowNs() - started_ns);
    }
    OnSynced(std::move(status), covered, std::move(acks), alerts_covered);
  });
}

void ReplicatedEngine::OnSynced(absl::Status status, std::array<uint64_t, kPartitionCount> covered,
                                std::vector<PendingAck> acks, size_t alerts_covered) {
  UM_CHECK(sync_in_flight_);
  sync_in_flight_ = false;
  // A replica's WAL cannot roll back entries that may already count toward a quorum or be
  // applied as committed: any sync failure (a full disk included) crashes the node, which
  // then recovers from its durable state and catches up from its peers.
  if (!status.ok() && BugPlanted(PlantedBug::kRetryFailedSync)) {
    // The classic fsyncgate mistake: retry, and take the retry's success (the kernel
    // already dropped the failed writes) as the failed writes' durability.
    env_.Log(absl::StrCat("replication: WAL sync failed, retried: ", status.ToString()));
    status = absl::OkStatus();
  }
  if (!status.ok()) {
    env_.Log(absl::StrCat("replication: WAL sync failed, crashing: ", status.ToString()));
    FailStopOnError(env_, status, "WAL sync");
    return;
  }
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    Part& part = parts_[partition];
    part.durable_index =
        std::max(part.durable_index, std::min(covered[partition], part.sync_floor));
    part.durable_index = std::min(part.durable_index, store_->last_index(partition));
  }
  for (PendingAck& pending : acks) {
    Part& part = parts_[pending.item.partition];
    if (meta_->meta().promised_epoch[pending.item.partition] != pending.item.epoch ||
        part.durable_index < pending.item.index) {
      continue;  // Superseded or truncated meanwhile: the owner retransmits.
    }
    if (state_ == NodeState::kSyncing && pending.item.index >= part.sync_target) {
      part.synced = true;
    }
    AppendAck& box = outboxes_[Position(pending.target)].acks;
    box.sequence = std::max(box.sequence, pending.sequence);
    box.items.push_back(pending.item);
  }
  alerts_.Synced(alerts_covered, on_alerts_durable_);
  CopyAlerts();
  ConfirmRecordedAlerts();
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    if (parts_[partition].role == PartRole::kOwner) AdvanceCommit(partition);
  }
  MaybeActivate();
  FlushOutboxes();
  FlushPeers();
  // Completions above may have started the next sync already.
  if (!sync_in_flight_ && (sync_requested_ || alerts_.waiting() > 0)) StartSync();
}

// ---------------------------------------------------------------------------------------
// Reads of local data and status.

absl::StatusOr<std::vector<StoredEvent>> ReplicatedEngine::ListEvents(uint64_t account_id,
                                                                      int64_t since_ns,
                                                                      int64_t until_ns,
                                                                      size_t limit,
                                                                      uint64_t first_offset) const {
  return store_->ListEvents(account_id, since_ns, until_ns, limit, first_offset);
}

absl::StatusOr<std::vector<AlertRecord>> ReplicatedEngine::ListAlerts(uint64_t account_id,
                                                                      uint64_t since_offset,
                                                                      size_t limit) const {
  // A record damaged in this node's store is answered from the copy every replica keeps
  // (this one included): released records all have one.
  absl::StatusOr<std::vector<AlertRecord>> records =
      store_->ListAlerts(account_id, since_offset, limit, [this](uint64_t offset) {
        std::optional<metering::AlertCrossing> copy = FindAlertCopy(offset);
        if (copy.has_value()) ++counters_.alert_records_repaired;
        return copy;
      });
  if (records.ok()) alerts_.TrimToReleased(&*records);
  return records;
}

NodeId ReplicatedEngine::owner(uint32_t partition) const { return map_.owner.at(partition); }

bool ReplicatedEngine::serving(uint32_t partition) const {
  const Part& part = parts_.at(partition);
  return part.role == PartRole::kOwner && part.serving;
}

bool ReplicatedEngine::ready() const {
  return state_ == NodeState::kActive && leader_ != kNoVote &&
         env_.MonotonicNowNs() - leader_contact_ns_ < 2 * options_.election_timeout_ns;
}

ReplicationStatus ReplicatedEngine::status() const {
  ReplicationStatus status = counters_;
  status.incarnation = state_;
  status.directory_confirmed = confirmed_;
  status.term = meta_->meta().term;
  status.leader = leader_;
  status.is_leader = role_ == Role::kLeader;
  status.map_version = map_.map_version;
  status.reachable_members = 1;
  size_t reachable_voters = CountsForQuorum(env_.node_id()) ? 1 : 0;
  for (NodeId member : members_) {
    if (member == env_.node_id() || !Reachable(member)) continue;
    ++status.reachable_members;
    reachable_voters += CountsForQuorum(member) ? 1 : 0;
  }
  const uint32_t syncing = SyncingMembers();
  const bool majority_lost = members_.size() - syncing < quorum_;
  // An owner serves only while it can commit: the survivor of a majority's disk loss, or
  // an owner cut off with a minority, still holds its epochs but commits nothing.
  const bool can_commit = !majority_lost && reachable_voters >= quorum_;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    status.owned_partitions += map_.owner[partition] == env_.node_id() ? 1 : 0;
    status.serving_partitions += can_commit && serving(partition) ? 1 : 0;
  }
  if (state_ == NodeState::kFresh) {
    status.problem = "fresh data directory: waiting for every member to bootstrap the cluster";
  } else if (majority_lost) {
    // Syncing members count toward no quorum and need an active quorum to finish: halted.
    status.problem = absl::StrCat(
        "data loss: ", syncing, " of ", members_.size(),
        " members are resyncing after disk replacements, so no quorum of intact disks "
        "remains (needs ",
        quorum_,
        "); nothing can commit and nothing is served. Committed events may exist only on the "
        "lost disks: restore from a backup (docs/operations.md)");
  } else if (writes_blocked_) {
    status.problem =
        "free disk below the threshold: refusing writes and not storing replicated entries "
        "(its partitions move to members that take writes)";
  } else if (state_ == NodeState::kSyncing) {
    status.problem = counters_.directories_went_back > 0
                         ? "resyncing from peers: this data directory went back in time (an old "
                           "backup, or a disk that lost synced writes)"
                         : "resyncing from peers after a disk replacement";
  } else if (!confirmed_) {
    status.problem = absl::StrCat(
        "restarted: waiting for ", quorum_ - 1 - confirmed_by_.size(),
        " more members to confirm this data directory is current (it votes, promises and "
        "stores nothing until then)");
  } else if (status.reachable_members < quorum_) {
    status.problem = absl::StrCat("no quorum: reaches ", status.reachable_members, " of ",
                                  members_.size(), " members, needs ", quorum_);
  } else if (!ready()) {
    status.problem = "no leader yet (election in progress, or too few active members)";
  }
  return status;
}

}  // namespace unimeter::replication
