// The configuration group: leader election (PreVote, CheckQuorum), the partition map,
// bootstrap and activation of incarnations.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/base/planted_bugs.h"
#include "node/replication/replicated_engine.h"

namespace unimeter::replication {
namespace {

constexpr uint64_t kCaughtUpSlackEntries = 64;

uint64_t MakeEpoch(uint64_t term, uint32_t sequence) { return (term << 32) | sequence; }

// "[0-15,40,42-43]" for log lines (at most 24 runs, then "..."); sorted input.
std::string DescribePartitions(const std::vector<uint32_t>& partitions) {
  std::string text = "[";
  size_t runs = 0;
  for (size_t i = 0; i < partitions.size(); ++runs) {
    if (runs == 24) {
      absl::StrAppend(&text, ",...");
      break;
    }
    size_t j = i;
    while (j + 1 < partitions.size() && partitions[j + 1] == partitions[j] + 1) ++j;
    absl::StrAppend(&text, i == 0 ? "" : ",", partitions[i]);
    if (j > i) absl::StrAppend(&text, "-", partitions[j]);
    i = j + 1;
  }
  return absl::StrCat(text, "]");
}

// Identifies a map's content: every partition's owner and epoch.
uint64_t MapDigest(const Heartbeat& map) {
  return Hash64(map.epoch.data(), sizeof(map.epoch), Hash64(map.owner.data(), sizeof(map.owner)));
}

}  // namespace

void ReplicatedEngine::ResetElectionTimer() {
  env_.CancelTimer(election_timer_);
  const int64_t timeout_ns =
      options_.election_timeout_ns + static_cast<int64_t>(env_.prng().UniformBelow(
                                         static_cast<uint64_t>(options_.election_timeout_ns)));
  election_timer_ = env_.StartTimer(timeout_ns, [this] {
    election_timer_ = kNoTimer;
    OnElectionTimeout();
  });
}

void ReplicatedEngine::OnElectionTimeout() {
  ResetElectionTimer();
  if (role_ == Role::kLeader || state_ != NodeState::kActive || !confirmed_) return;
  StartElection(/*pre_vote=*/true);
}

void ReplicatedEngine::StartElection(bool pre_vote) {
  votes_.clear();
  votes_[env_.node_id()] = true;
  pre_voting_ = pre_vote;
  if (!pre_vote) {
    ReplicaMeta& meta = meta_->mutable_meta();
    ++meta.term;
    meta.voted_for = env_.node_id();
    role_ = Role::kCandidate;
    leader_ = kNoVote;
    ++counters_.term_changes;
  }
  const VoteRequest request{meta_->meta().term + (pre_vote ? 1 : 0), pre_vote};
  auto send = [this, request] {
    for (NodeId member : members_) {
      if (member != env_.node_id()) Send(member, request);
    }
  };
  if (pre_vote) {
    send();
    return;
  }
  // The vote for ourselves is durable before anyone hears of the term.
  meta_->Save([this, send = std::move(send), term = request.term](absl::Status status) mutable {
    if (FailStopOnError(env_, status, "replica.meta write")) return;
    Observe(OwnershipEvent{
        .kind = OwnershipEvent::Kind::kVoted, .term = term, .candidate = env_.node_id()});
    send();
  });
}

void ReplicatedEngine::BecomeFollower(uint64_t term, NodeId leader) {
  ReplicaMeta& meta = meta_->mutable_meta();
  if (term > meta.term) {
    meta.term = term;
    meta.voted_for = kNoVote;
    ++counters_.term_changes;
    meta_->Save(
        [this](absl::Status status) { FailStopOnError(env_, status, "replica.meta write"); });
  }
  if (role_ == Role::kLeader) {
    env_.CancelTimer(tick_timer_);
    tick_timer_ = kNoTimer;
    env_.Log(absl::StrCat("replication: leader steps down in term ", meta.term));
  }
  role_ = Role::kFollower;
  leader_ = leader;
}

void ReplicatedEngine::BecomeLeader() {
  role_ = Role::kLeader;
  leader_ = env_.node_id();
  leader_contact_ns_ = env_.MonotonicNowNs();
  epoch_sequence_ = 0;
  const int64_t now_ns = env_.MonotonicNowNs();
  for (size_t position = 0; position < members_.size(); ++position) {
    const bool voted = votes_.contains(members_[position]);
    live_since_ns_[position] = voted ? now_ns : INT64_MIN;
    if (voted) last_heard_ns_[position] = std::max(last_heard_ns_[position], now_ns);
    // A member heard lately has three heartbeat intervals to answer our heartbeats (one
    // that can send but not receive never will; its partitions then move at once).
    const int64_t grace_ns =
        std::min(3 * options_.heartbeat_interval_ns, options_.election_timeout_ns);
    answered_ns_[position] = voted ? now_ns
                                   : std::min(last_heard_ns_[position],
                                              now_ns - options_.election_timeout_ns + grace_ns);
  }
  if (!meta_->meta().formed) {
    meta_->mutable_meta().formed = true;
    meta_->Save(
        [this](absl::Status status) { FailStopOnError(env_, status, "replica.meta write"); });
  }
  env_.Log(absl::StrCat("replication: leader in term ", meta_->meta().term));
  Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kLeader, .term = meta_->meta().term});
  AssignOwners(/*new_term=*/true);
  LeaderTick();
}

void ReplicatedEngine::LeaderTick() {
  env_.CancelTimer(tick_timer_);
  tick_timer_ = kNoTimer;
  if (role_ != Role::kLeader) return;
  const int64_t now_ns = env_.MonotonicNowNs();
  size_t reachable = 0;
  for (size_t position = 0; position < members_.size(); ++position) {
    const NodeId member = members_[position];
    if (member == env_.node_id()) {
      reachable += CountsForQuorum(member) ? 1 : 0;
      continue;
    }
    const bool heard = Answering(position, now_ns);
    if (!heard) live_since_ns_[position] = INT64_MIN;
    reachable += heard && CountsForQuorum(member) ? 1 : 0;
  }
  if (reachable < quorum_) {  // CheckQuorum: a leader that cannot reach a quorum resigns.
    BecomeFollower(meta_->meta().term, kNoVote);
    ResetElectionTimer();
    return;
  }
  leader_contact_ns_ = now_ns;
  AssignOwners(/*new_term=*/false);
  for (NodeId member : members_) {
    if (member != env_.node_id()) {
      map_.sent_ns = now_ns;
      Send(member, map_);
    }
  }
  ApplyMap(map_);
  tick_timer_ = env_.StartTimer(options_.heartbeat_interval_ns, [this] {
    tick_timer_ = kNoTimer;
    LeaderTick();
  });
}

void ReplicatedEngine::AssignOwners(bool new_term) {
  const int64_t now_ns = env_.MonotonicNowNs();
  std::vector<NodeId> live;   // Answering active members, in member order.
  std::vector<NodeId> able;   // Those of them that take writes.
  std::vector<bool> settled;  // By `able`: taking writes for rebalance_settle_ns.
  for (size_t position = 0; position < members_.size(); ++position) {
    const NodeId member = members_[position];
    const bool self = member == env_.node_id();
    const bool heard = self || Answering(position, now_ns);
    if (!heard || !CountsForQuorum(member)) continue;
    live.push_back(member);
    if (self ? writes_blocked_ : peer_writes_blocked_[position]) continue;
    able.push_back(member);
    const int64_t since_ns = self ? writes_unblocked_ns_ : live_since_ns_[position];
    settled.push_back(since_ns != INT64_MIN && now_ns - since_ns >= options_.rebalance_settle_ns);
  }
  if (live.empty()) return;
  if (able.empty()) {
    // No live member takes writes (every free disk is low): none could commit, so
    // ownership follows liveness alone until one can.
    able = live;
    settled.assign(able.size(), true);
  }
  auto is_live = [&](NodeId node) { return std::binary_search(live.begin(), live.end(), node); };
  auto is_able = [&](NodeId node) { return std::binary_search(able.begin(), able.end(), node); };
  // Partition p belongs to member p mod N; while that member is down, not active or
  // refusing writes (its free disk is low), to the able member (p / N) mod A, which spreads
  // its partitions evenly and leaves the others' own partitions where they are.
  const size_t n = members_.size();
  auto target_of = [&](uint32_t partition) {
    const NodeId preferred = members_[partition % n];
    return is_able(preferred) ? preferred : able[(partition / n) % able.size()];
  };
  auto settled_node = [&](NodeId node) {
    const auto it = std::lower_bound(able.begin(), able.end(), node);
    return settled[static_cast<size_t>(it - able.begin())];
  };
  auto commit_of = [&](NodeId node, uint32_t partition) {
    return node == env_.node_id() ? store_->commit_index(partition)
                                  : peer_commit_[Position(node)][partition];
  };
  const uint64_t term = meta_->meta().term;
  bool changed = new_term;
  uint32_t sequence = epoch_sequence_ + 1;
  size_t moves = 0;
  absl::btree_map<std::pair<NodeId, NodeId>, uint32_t> failovers;  // (from, to) -> count.
  absl::btree_map<std::pair<NodeId, NodeId>, uint32_t> handovers;
  absl::btree_map<std::pair<NodeId, NodeId>, uint32_t> rebalances;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    const NodeId current = map_.owner[partition];
    const NodeId target = target_of(partition);
    NodeId next = current;
    const int current_position = current == kNoOwner ? -1 : Position(current);
    if (current_position >= 0 && restarted_[current_position] && current != env_.node_id()) {
      // The owner restarted: it never begins an epoch it began before, so it needs a new
      // one (same owner, new epoch).
      if (is_live(current)) {
        map_.epoch[partition] = MakeEpoch(term, sequence);
        changed = true;
      }
    }
    if (!is_live(current)) {
      next = target;  // Failover: one configuration change for all of a dead node's.
      if (current != kNoOwner) ++failovers[{current, next}];
    } else if (!is_able(current)) {
      next = target;  // Handover: a live owner that refuses writes serves nobody's.
      ++handovers[{current, next}];
    } else if (target != current && settled_node(target) &&
               moves < options_.rebalance_moves_per_tick &&
               commit_of(target, partition) + kCaughtUpSlackEntries >=
                   commit_of(current, partition)) {
      next = target;  // Rebalance back to a returned, caught-up member.
      ++moves;
      ++rebalances[{current, next}];
    }
    if (next != current || new_term) {
      map_.owner[partition] = static_cast<uint8_t>(next);
      map_.epoch[partition] = MakeEpoch(term, sequence);
      changed = true;
    }
  }
  for (size_t position = 0; position < members_.size(); ++position) {
    // Handled above for live owners; a dead one gets new owners anyway.
    if (members_[position] == env_.node_id() || is_live(members_[position])) {
      restarted_[position] = false;
    }
  }
  if (changed) {
    epoch_sequence_ = sequence;
    map_.term = term;
    ++map_.map_version;
    absl::btree_map<NodeId, uint32_t> owned;
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      ++owned[map_.owner[partition]];
    }
    std::string summary;
    for (const auto& [node, count] : owned) absl::StrAppend(&summary, " n", node, "=", count);
    for (const auto& [move, count] : failovers) {
      absl::StrAppend(&summary, "; failover of ", count, " partitions from unreachable n",
                      move.first, " to n", move.second);
    }
    for (const auto& [move, count] : handovers) {
      absl::StrAppend(&summary, "; handover of ", count, " partitions from n", move.first,
                      " (free disk low, refusing writes) to n", move.second);
    }
    for (const auto& [move, count] : rebalances) {
      absl::StrAppend(&summary, "; rebalance of ", count, " partitions from n", move.first,
                      " back to caught-up n", move.second);
    }
    env_.Log(absl::StrCat("replication: partition map ", map_.map_version, " (term ", term,
                          "):", summary));
  }
}

void ReplicatedEngine::HandleHeartbeat(NodeId source, const Heartbeat& heartbeat) {
  ReplicaMeta& meta = meta_->mutable_meta();
  if (heartbeat.term < meta.term) {
    HeartbeatAck stale;
    stale.term = meta.term;
    Send(source, stale);
    return;
  }
  if (heartbeat.term > meta.term || role_ != Role::kFollower || leader_ != source) {
    BecomeFollower(heartbeat.term, source);
  }
  leader_contact_ns_ = env_.MonotonicNowNs();
  ResetElectionTimer();
  if (!meta.formed) {
    meta.formed = true;
    meta_->Save(
        [this](absl::Status status) { FailStopOnError(env_, status, "replica.meta write"); });
  }
  // Heartbeats may arrive out of order: a map older than the one acted on would take
  // partitions from their owners until the next heartbeat (failed waiters, stray forwards).
  if (std::make_pair(heartbeat.term, heartbeat.map_version) >=
          std::make_pair(map_.term, map_.map_version) ||
      BugPlanted(PlantedBug::kApplyStaleMap)) {
    ApplyMap(heartbeat);
  }
  HeartbeatAck ack = CommitReport(/*hello=*/false, source);
  ack.echo_ns = heartbeat.sent_ns;
  Send(source, ack);
}

void ReplicatedEngine::SetWritesBlocked(bool blocked) {
  if (writes_blocked_ && !blocked) writes_unblocked_ns_ = env_.MonotonicNowNs();
  writes_blocked_ = blocked;
}

HeartbeatAck ReplicatedEngine::CommitReport(bool hello, NodeId target) const {
  HeartbeatAck report;
  report.hello = hello;
  report.writes_blocked = writes_blocked_;
  report.meta_start = meta_start_;
  // Announced once this process made a write durable (meta_history.h: a later process
  // opens at or above it, so two processes never announce one start).
  const uint64_t durable = meta_->durable_sequence();
  report.meta_durable = durable > meta_start_ ? durable : 0;
  report.wal_durable = store_->wal_durable_position();
  const int position = Position(target);
  if (position >= 0) report.echo = peer_meta_[position].Echo();
  report.term = meta_->meta().term;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    report.commit_index[partition] = store_->commit_index(partition);
  }
  return report;
}

bool ReplicatedEngine::Answering(size_t position, int64_t now_ns) const {
  return now_ns - answered_ns_[position] < options_.election_timeout_ns;
}

void ReplicatedEngine::HandleHeartbeatAck(NodeId source, const HeartbeatAck& ack) {
  const int position = Position(source);
  peer_writes_blocked_[position] = ack.writes_blocked;  // A fact whatever the terms.
  NoteMetaHistory(position, ack);
  if (ack.term > meta_->meta().term) {
    BecomeFollower(ack.term, kNoVote);
    return;
  }
  if (role_ != Role::kLeader || ack.term != meta_->meta().term) return;
  const int64_t now_ns = env_.MonotonicNowNs();
  peer_commit_[position] = ack.commit_index;
  if (ack.writes_blocked && live_since_ns_[position] != INT64_MIN) {
    // Its partitions move back only once it has taken writes for rebalance_settle_ns.
    live_since_ns_[position] = now_ns;
  }
  if (ack.hello) return;
  // When the answered heartbeat left (a minor-0 member echoes nothing: now). An answer that
  // took seconds to arrive proves the member was live then, not now.
  const int64_t answered_ns = ack.echo_ns > 0 && ack.echo_ns <= now_ns ? ack.echo_ns : now_ns;
  answered_ns_[position] = std::max(answered_ns_[position], answered_ns);
  if (live_since_ns_[position] == INT64_MIN) live_since_ns_[position] = now_ns;
}

void ReplicatedEngine::HandleVoteRequest(NodeId source, const VoteRequest& request) {
  ReplicaMeta& meta = meta_->mutable_meta();
  const int64_t now_ns = env_.MonotonicNowNs();
  // CheckQuorum stickiness: while a leader is heard from, nobody disrupts it.
  const bool leader_alive =
      role_ == Role::kLeader ||
      (leader_ != kNoVote && now_ns - leader_contact_ns_ < options_.election_timeout_ns);
  const bool eligible = state_ == NodeState::kActive && confirmed_ && CountsForQuorum(source);
  if (request.pre_vote) {
    Send(source,
         VoteReply{request.term, true, eligible && !leader_alive && request.term > meta.term});
    return;
  }
  if (leader_alive || !eligible) {
    Send(source, VoteReply{request.term, false, false});
    return;
  }
  if (request.term > meta.term) BecomeFollower(request.term, kNoVote);
  const bool grant =
      request.term == meta.term && (meta.voted_for == kNoVote || meta.voted_for == source);
  if (!grant) {
    Send(source, VoteReply{request.term, false, false});
    return;
  }
  meta.voted_for = source;
  ResetElectionTimer();
  const VoteReply reply{request.term, false, true};
  meta_->Save([this, source, reply](absl::Status status) {
    // The vote is durable before the candidate hears of it.
    if (FailStopOnError(env_, status, "replica.meta write")) return;
    Observe(OwnershipEvent{
        .kind = OwnershipEvent::Kind::kVoted, .term = reply.term, .candidate = source});
    Send(source, reply);
  });
}

void ReplicatedEngine::HandleVoteReply(NodeId source, const VoteReply& reply) {
  const uint64_t term = meta_->meta().term;
  if (!reply.pre_vote && reply.term > term) {
    BecomeFollower(reply.term, kNoVote);
    return;
  }
  if (!reply.granted || !CountsForQuorum(source)) return;
  if (reply.pre_vote) {
    if (!pre_voting_ || role_ == Role::kLeader || reply.term != term + 1) return;
  } else if (role_ != Role::kCandidate || reply.term != term) {
    return;
  }
  votes_[source] = true;
  if (votes_.size() < quorum_) return;
  if (reply.pre_vote) {
    StartElection(/*pre_vote=*/false);
  } else {
    BecomeLeader();
  }
}

void ReplicatedEngine::ApplyMap(const Heartbeat& map) {
  if (&map != &map_) map_ = map;
  if (options_.ownership_observer) {
    Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kMap,
                           .term = map_.term,
                           .map_version = map_.map_version,
                           .map_digest = MapDigest(map_)});
  }
  std::vector<uint32_t> taken;
  std::vector<uint32_t> given_up;
  const bool active = state_ == NodeState::kActive;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    Part& part = parts_[partition];
    if (map_.owner[partition] == env_.node_id() && active && !confirmed_) {
      // Begun at the first map after a quorum confirmed this directory current. Its
      // replica.meta covers every epoch its earlier processes began, else it went back.
    } else if (map_.owner[partition] == env_.node_id() && !active) {
      // A map from before this data directory was wiped still names this node. An
      // incarnation that is not active owns nothing, and its predecessor may have begun
      // this very epoch and left entries of it on peers: never begin it here (the leader
      // issues new epochs once it sees the new incarnation).
      uint64_t& started = meta_->mutable_meta().started_epoch[partition];
      started = std::max(started, map_.epoch[partition]);
    } else if (map_.owner[partition] == env_.node_id()) {
      if (part.role == PartRole::kReplica || part.epoch < map_.epoch[partition]) {
        if (part.role == PartRole::kReplica) taken.push_back(partition);
        BeginEpoch(partition, map_.epoch[partition]);
      }
    } else if (part.role != PartRole::kReplica) {
      given_up.push_back(partition);
      StepDown(partition, "the partition moved to another owner");
    }
    if (!part.parked.empty() || !part.unrouted_reads.empty()) RunParked(partition);
  }
  if (!taken.empty() || !given_up.empty()) {
    env_.Log(absl::StrCat("replication: map ", map_.map_version, ": this node takes ", taken.size(),
                          " partitions ", DescribePartitions(taken), " and gives up ",
                          given_up.size(), " ", DescribePartitions(given_up)));
  }
  FailRemotes(
      [this](const Remote& remote) { return map_.owner[remote.partition] != remote.target; },
      absl::UnknownError("the partition moved to a new owner before the answer; the outcome is "
                         "unknown: retry with the same ids"));
}

void ReplicatedEngine::MaybeBootstrap() {
  if (state_ != NodeState::kFresh) return;
  const int64_t now_ns = env_.MonotonicNowNs();
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] == env_.node_id()) continue;
    const Header& header = peer_header_[position];
    const bool heard = now_ns - last_heard_ns_[position] < options_.election_timeout_ns;
    const bool empty =
        header.state == NodeState::kFresh || (header.state == NodeState::kActive && !header.formed);
    if (!heard || !empty) return;
  }
  // Every member is new: this is a brand-new cluster, bootstrapped together.
  state_ = NodeState::kActive;
  meta_->mutable_meta().active = true;
  meta_->Save([this](absl::Status status) { FailStopOnError(env_, status, "replica.meta write"); });
  env_.Log("replication: every member is new: bootstrapping the cluster");
}

void ReplicatedEngine::MaybeActivate() {
  if (state_ != NodeState::kSyncing || alerts_restoring_) return;
  for (const Part& part : parts_) {
    if (!part.synced) return;
  }
  if (!AlertCopiesSettled() || store_->checkpoint_running()) return;  // Asked again later.
  if (store_->alerts_in_memory()) {
    // Records its own WAL still holds (a directory that went back in time, not a wiped
    // one): into the state store first, where the restored copies join them.
    store_->Checkpoint([this](absl::Status status) {
      if (FailStopOnError(env_, status, "checkpoint before the alert log restore")) return;
      MaybeActivate();
    });
    return;
  }
  RestoreAlertLog();
}

uint64_t ReplicatedEngine::AlertCopyEnd() const {
  uint64_t copied_end = 0;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    const auto& ends = store_->state(partition).alert_copy_ends();
    const auto end = ends.find(env_.node_id());
    if (end != ends.end()) copied_end = std::max(copied_end, end->second);
  }
  return copied_end;
}

std::optional<metering::AlertCrossing> ReplicatedEngine::FindAlertCopy(uint64_t offset) const {
  const metering::PartitionState::AlertCopyKey key{env_.node_id(), offset};
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    const auto& copies = store_->state(partition).alert_copies();
    const auto found = copies.find(key);
    if (found != copies.end()) return found->second;
  }
  return std::nullopt;
}

void ReplicatedEngine::ResetAlertCopies() {
  alerts_.RequireCopies();
  const uint64_t next_offset = store_->alert_count();
  const uint64_t copied_end = std::min(AlertCopyEnd(), next_offset);
  absl::StatusOr<std::vector<AlertRecord>> records =
      store_->ListAlerts(/*account_id=*/0, copied_end, SIZE_MAX);
  if (!records.ok()) {
    // A damaged record cannot be copied; listings report it (DataLoss) as before.
    env_.Log(absl::StrCat("replication: alert records from offset ", copied_end,
                          " not copied: ", records.status().ToString()));
    alerts_.Reset(next_offset);
    return;
  }
  alerts_.ResetWithUncopied(copied_end, *std::move(records), next_offset);
}

bool ReplicatedEngine::AlertCopiesSettled() const {
  // The previous incarnation appended copies only in epochs it owned. An owner streaming
  // to this node now began its epoch after them, and once an entry of that epoch is
  // committed, each of them is committed (and applied here) or gone for good.
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    if (store_->commit_epoch(partition) < parts_[partition].owner_epoch) return false;
  }
  return true;
}

void ReplicatedEngine::RestoreAlertLog() {
  const uint32_t self = env_.node_id();
  absl::btree_map<uint64_t, metering::AlertCrossing> mine;
  uint64_t next_offset = AlertCopyEnd();
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    const metering::PartitionState& state = store_->state(partition);
    for (auto it = state.alert_copies().lower_bound({self, 0});
         it != state.alert_copies().end() && it->first.first == self; ++it) {
      mine.try_emplace(it->first.second, it->second);
    }
  }
  if (BugPlanted(PlantedBug::kAlertLogNotRestored)) {
    mine.clear();
    next_offset = 0;
  }
  std::vector<AlertRecord> records;
  records.reserve(mine.size());
  for (auto& [offset, crossing] : mine) records.push_back(AlertRecord{offset, std::move(crossing)});
  const size_t count = records.size();
  alerts_restoring_ = true;
  store_->RestoreAlerts(
      std::move(records), next_offset, [this, count, next_offset](absl::Status status) {
        if (FailStopOnError(env_, status, "alert log restore")) return;
        alerts_restoring_ = false;
        // A syncing node serves nothing, so no copy of its own is in flight; records an earlier
        // start left waiting for a copy are in the restored log (or copied again from it).
        UM_CHECK(!alerts_.copy_in_flight());
        alerts_ = DurableAlerts();
        ResetAlertCopies();
        counters_.alerts_restored += count;
        env_.Log(absl::StrCat("replication: alert log restored from peers' copies: ", count,
                              " records, next offset ", next_offset));
        Activate();
      });
}

void ReplicatedEngine::Activate() {
  state_ = NodeState::kActive;
  meta_->mutable_meta().active = true;
  meta_->Save([this](absl::Status status) { FailStopOnError(env_, status, "replica.meta write"); });
  env_.Log("replication: resync complete: this incarnation is active");
}

}  // namespace unimeter::replication
