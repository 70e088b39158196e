// Partition epochs (promises, adopting the most advanced log) and the data path (appends,
// acknowledgements, commit, snapshots, read confirmation).
#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/planted_bugs.h"
#include "node/replication/replicated_engine.h"

namespace unimeter::replication {

void ReplicatedEngine::BeginEpoch(uint32_t partition, uint64_t epoch) {
  Part& part = parts_[partition];
  ReplicaMeta& meta = meta_->mutable_meta();
  if (part.role != PartRole::kReplica) {
    StepDown(partition, "the partition's epoch changed before commit");
  }
  if (epoch < meta.promised_epoch[partition]) {
    return;  // A newer epoch was promised to another owner: this map is stale.
  }
  if (epoch <= meta.started_epoch[partition] && epoch != part.begun_epoch) {
    // Begun by an earlier process of this node: entries of it may exist elsewhere that this
    // log lost, so appending in it again could put two entries at one (index, epoch). The
    // leader issues a new epoch when it sees this node restarted.
    return;
  }
  part.begun_epoch = epoch;
  meta.started_epoch[partition] = std::max(meta.started_epoch[partition], epoch);
  part.role = PartRole::kStarting;
  part.epoch = epoch;
  part.promises.clear();
  part.self_promised = false;
  part.serving = false;
  part.start_deadline_ns = env_.MonotonicNowNs() + options_.epoch_start_timeout_ns;
  for (PeerProgress& peer : part.peers) peer = PeerProgress{};
  ++counters_.epoch_changes;
  meta.promised_epoch[partition] = epoch;
  // Our own promise counts once it is durable, like everybody else's.
  meta_->Save([this, partition, epoch](absl::Status status) {
    if (FailStopOnError(env_, status, "replica.meta write")) return;
    Observe(OwnershipEvent{
        .kind = OwnershipEvent::Kind::kPromised, .partition = partition, .epoch = epoch});
    TellWhenFree(HeldPromise{.owner = env_.node_id(), .partition = partition, .epoch = epoch});
  });
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] != env_.node_id()) {
      outboxes_[position].start_epoch.items.push_back(StartEpochItem{partition, epoch});
    }
  }
}

void ReplicatedEngine::StepDown(uint32_t partition, absl::string_view reason) {
  Part& part = parts_[partition];
  part.role = PartRole::kReplica;
  part.serving = false;
  part.promises.clear();
  if (BugPlanted(PlantedBug::kStepDownSaysRefused)) {
    FailWaiters(partition, absl::ResourceExhaustedError(reason));
    pending_dedup_[partition].Clear();
    return;
  }
  // Every waiter's entries are in this node's log: a later owner may still adopt and commit
  // them (an uncommitted suffix survives when no newer epoch overwrote it), so the outcome
  // is unknown, never "nothing accepted".
  FailWaiters(partition,
              absl::UnknownError(absl::StrCat(reason,
                                              "; the outcome of writes waiting for "
                                              "commit is unknown: retry with the same ids")));
  pending_dedup_[partition].Clear();
}

void ReplicatedEngine::HandleStartEpoch(NodeId source, const StartEpoch& request) {
  ReplicaMeta& meta = meta_->mutable_meta();
  std::vector<StartEpochItem> granted;
  Promise refused;
  for (const StartEpochItem& item : request.items) {
    uint64_t& promised = meta.promised_epoch[item.partition];
    if (item.epoch < promised) {
      PromiseItem reply;
      reply.partition = item.partition;
      reply.epoch = item.epoch;
      reply.promised_epoch = promised;
      refused.items.push_back(reply);
      continue;
    }
    if (item.epoch > promised) {
      promised = item.epoch;
      Part& part = parts_[item.partition];
      if (part.role != PartRole::kReplica && part.epoch < item.epoch) {
        StepDown(item.partition, "a newer owner took the partition before commit");
      }
    }
    granted.push_back(item);
  }
  if (!refused.items.empty()) Send(source, std::move(refused));
  if (granted.empty()) return;
  // Promises are durable before the owner hears of them, and told only once no read lease
  // this node granted to another epoch of the partition lasts.
  auto tell = [this, source, granted = std::move(granted)](absl::Status status) {
    if (FailStopOnError(env_, status, "replica.meta write")) return;
    for (const StartEpochItem& item : granted) {
      if (meta_->meta().promised_epoch[item.partition] == item.epoch) {
        Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kPromised,
                               .partition = item.partition,
                               .epoch = item.epoch});
      }
      TellWhenFree(HeldPromise{.owner = source, .partition = item.partition, .epoch = item.epoch});
    }
    FlushOutboxes();
  };
  if (BugPlanted(PlantedBug::kPromiseBeforeDurable)) {
    meta_->Save([](absl::Status) {});
    tell(absl::OkStatus());
    return;
  }
  meta_->Save(std::move(tell));
}

void ReplicatedEngine::HandlePromise(NodeId source, const Promise& promise) {
  for (const PromiseItem& item : promise.items) {
    Part& part = parts_[item.partition];
    if (part.role == PartRole::kReplica || item.epoch != part.epoch) continue;
    if (!item.granted) {
      if (item.promised_epoch > part.epoch) {
        StepDown(item.partition, "a newer epoch exists");
      }
      continue;
    }
    if (part.role == PartRole::kOwner) {
      // A late promise: the peer refused this epoch's items until now, snapshots included.
      // A refused snapshot is not being installed, so the pacing must not hold back the
      // next one (a restarted replica behind a compacted log waited 2 s for it).
      const int position = Position(source);
      if (position >= 0) part.peers[position].snapshot_sent_ns = kLongAgoNs;
      continue;
    }
    if (part.role == PartRole::kStarting && CountsForQuorum(source)) {
      part.promises[source] = item;
      MaybeFinishPromises(item.partition);
    }
  }
}

void ReplicatedEngine::MaybeFinishPromises(uint32_t partition) {
  Part& part = parts_[partition];
  const size_t self = CountsForQuorum(env_.node_id()) ? 1 : 0;
  if (part.role != PartRole::kStarting || !part.self_promised ||
      part.promises.size() + self < QuorumSize()) {
    return;
  }
  if (BugPlanted(PlantedBug::kSkipLogCollection)) {
    EstablishEpoch(partition);
    return;
  }
  // Adopt the most advanced log of the quorum: highest last epoch, then highest index.
  NodeId best = env_.node_id();
  uint64_t best_epoch = store_->last_epoch(partition);
  uint64_t best_index = store_->last_index(partition);
  for (const auto& [node, item] : part.promises) {
    if (std::make_pair(item.last_epoch, item.last_index) > std::make_pair(best_epoch, best_index)) {
      best = node;
      best_epoch = item.last_epoch;
      best_index = item.last_index;
    }
  }
  if (best == env_.node_id()) {
    EstablishEpoch(partition);
    return;
  }
  part.role = PartRole::kFetching;
  part.fetch_from = best;
  part.fetch_target = best_index;
  outboxes_[Position(best)].fetch.items.push_back(
      FetchItem{partition, part.epoch, store_->commit_index(partition) + 1});
}

void ReplicatedEngine::EstablishEpoch(uint32_t partition) {
  Part& part = parts_[partition];
  const uint64_t index = store_->last_index(partition) + 1;
  const absl::Status appended = store_->Append(
      partition, index, part.epoch,
      std::make_shared<const metering::LogEntry>(metering::LogEntry::StartOfEpoch(part.epoch)));
  if (!appended.ok()) {
    env_.Log(absl::StrCat("replication: partition ", partition,
                          " epoch start not appended: ", appended.ToString()));
    part.role = PartRole::kStarting;  // The timeout sweep restarts the epoch.
    return;
  }
  part.role = PartRole::kOwner;
  part.start_index = index;
  Observe(OwnershipEvent{
      .kind = OwnershipEvent::Kind::kOwner, .partition = partition, .epoch = part.epoch});
  part.serving = false;
  for (PeerProgress& peer : part.peers) {
    peer = PeerProgress{};
    peer.next_index = index;
    peer.resend_index = index;
  }
  RequestSync();
}

void ReplicatedEngine::HandleFetch(NodeId source, const Fetch& fetch) {
  for (const FetchItem& item : fetch.items) {
    if (meta_->meta().promised_epoch[item.partition] != item.epoch) continue;
    Append reply;
    reply.fetch_reply = true;
    AppendItem out;
    out.partition = item.partition;
    out.epoch = item.epoch;
    out.prev_index = item.from_index - 1;
    out.commit_index = store_->commit_index(item.partition);
    const std::optional<uint64_t> prev_epoch = store_->EpochAt(item.partition, out.prev_index);
    std::vector<LogRecord> records;
    if (!prev_epoch.has_value() ||
        !store_->EntriesFrom(item.partition, item.from_index, options_.entries_per_item_max,
                             options_.message_bytes_max, &records)) {
      // At most one snapshot per partition and fetcher per snapshot period: fetches repeated
      // while a slow node caught up (queued retries) must not each cost a whole partition
      // state, or catching up turns into a snapshot storm. The fetcher retries later.
      const int position = Position(source);
      PeerProgress& fetcher = parts_[item.partition].peers[position];
      const int64_t now_ns = env_.MonotonicNowNs();
      if (SnapshotDue(fetcher, now_ns) &&
          !SnapshotRunning(static_cast<size_t>(position), item.partition, item.epoch,
                           /*fetch_reply=*/true)) {
        SendSnapshot(item.partition, source, item.epoch, /*fetch_reply=*/true, fetcher, now_ns);
      }
      continue;
    }
    out.prev_epoch = *prev_epoch;
    for (LogRecord& record : records) {
      out.entries.push_back(WireEntry{record.index, record.epoch, std::move(record.entry)});
    }
    reply.items.push_back(std::move(out));
    Send(source, std::move(reply));
  }
}

void ReplicatedEngine::ContinueFetch(uint32_t partition, int source_position, uint64_t reached) {
  Part& part = parts_[partition];
  if (reached < part.fetch_target) {
    outboxes_[source_position].fetch.items.push_back(FetchItem{partition, part.epoch, reached + 1});
    return;
  }
  // The log now holds the most advanced one; anything of ours beyond it is uncommitted.
  if (store_->last_index(partition) > part.fetch_target) Truncate(partition, part.fetch_target);
  EstablishEpoch(partition);
}

void ReplicatedEngine::HandleAppend(NodeId source, const Append& append) {
  const int position = Position(source);
  bool appended = false;
  for (const AppendItem& item : append.items) {
    Part& part = parts_[item.partition];
    if (writes_blocked_ && !item.entries.empty()) {
      // Free disk below the threshold: store nothing new (a full disk would crash this
      // node at its next WAL sync). No acknowledgement: the owner commits with the others
      // and resends once this node takes entries again.
      ++counters_.appends_refused_low_disk;
      continue;
    }
    if (append.fetch_reply) {
      if (part.role != PartRole::kFetching || part.epoch != item.epoch ||
          part.fetch_from != source) {
        continue;
      }
      const AckItem result = ApplyItem(item);
      if (result.result != AckResult::kOk) continue;  // The timeout sweep restarts.
      appended = true;
      ContinueFetch(item.partition, position, result.index);
      continue;
    }
    const AckItem ack = ApplyItem(item);
    if (ack.result == AckResult::kOk) {
      if (state_ == NodeState::kSyncing && !part.synced && part.sync_target == UINT64_MAX) {
        part.sync_target = item.commit_index;
      }
      if (state_ == NodeState::kSyncing) part.owner_epoch = std::max(part.owner_epoch, item.epoch);
      if (ack.index > part.durable_index) {
        acks_awaiting_sync_.push_back(PendingAck{source, append.sequence, ack});
        appended = true;
        continue;
      }
      if (state_ == NodeState::kSyncing && ack.index >= part.sync_target) part.synced = true;
    }
    AppendAck& box = outboxes_[position].acks;
    box.sequence = std::max(box.sequence, append.sequence);
    box.items.push_back(ack);
  }
  if (appended) RequestSync();
  MaybeActivate();
}

AckItem ReplicatedEngine::ApplyItem(const AppendItem& item) {
  const uint32_t partition = item.partition;
  AckItem ack;
  ack.partition = partition;
  ack.epoch = item.epoch;
  ack.promised_epoch = meta_->meta().promised_epoch[partition];
  if (BugPlanted(PlantedBug::kAcceptOlderEpoch) && item.epoch < ack.promised_epoch) {
    ack.promised_epoch = item.epoch;
  }
  if (item.epoch < ack.promised_epoch) {
    ack.result = AckResult::kStale;
    return ack;
  }
  if (item.epoch > ack.promised_epoch) {
    ack.result = AckResult::kNeedPromise;
    return ack;
  }
  if (parts_[partition].installing) {
    ack.result = AckResult::kBusy;
    return ack;
  }
  // Committed entries never change: checked against what is known committed, applied or not.
  const uint64_t commit = Committed(partition);
  if (item.prev_index > store_->last_index(partition)) {
    ack.result = AckResult::kMismatch;
    ack.index = store_->last_index(partition);
    return ack;
  }
  if (item.prev_index >= commit) {
    const std::optional<uint64_t> epoch = store_->EpochAt(partition, item.prev_index);
    UM_CHECK(epoch.has_value());
    if (*epoch != item.prev_epoch) {
      // Entries agree up to the commit index (committed entries never change).
      UM_CHECK_NE(item.prev_index, commit);
      ack.result = AckResult::kMismatch;
      ack.index = commit;
      return ack;
    }
  }
  for (const WireEntry& entry : item.entries) {
    if (entry.index <= commit) continue;
    if (entry.index <= store_->last_index(partition)) {
      if (store_->EpochAt(partition, entry.index) == std::optional<uint64_t>(entry.epoch)) {
        continue;
      }
      Truncate(partition, entry.index - 1);
    }
    const absl::Status status = store_->Append(partition, entry.index, entry.epoch, entry.entry);
    if (!status.ok()) {
      ack.result = AckResult::kBusy;  // WAL tail full: the owner retries.
      return ack;
    }
  }
  const uint64_t match = item.prev_index + item.entries.size();
  const uint64_t new_commit = std::min(item.commit_index, match);
  CommitUpTo(partition, new_commit);
  ack.result = AckResult::kOk;
  ack.index = match;
  if (options_.ownership_observer) {
    Observe(OwnershipEvent{
        .kind = OwnershipEvent::Kind::kAccepted, .partition = partition, .epoch = item.epoch});
  }
  return ack;
}

void ReplicatedEngine::Truncate(uint32_t partition, uint64_t index) {
  UM_CHECK_GE(index, Committed(partition));  // Committed entries are never rewritten.
  Part& part = parts_[partition];
  store_->TruncateAfter(partition, index);
  part.durable_index = std::min(part.durable_index, index);
  part.sync_floor = std::min(part.sync_floor, index);
}

void ReplicatedEngine::HandleAppendAck(NodeId source, const AppendAck& ack) {
  const int position = Position(source);
  if (ack.sequence == append_sequence_sent_[position]) append_in_flight_[position] = false;
  for (const AckItem& item : ack.items) {
    Part& part = parts_[item.partition];
    if (part.role != PartRole::kOwner || item.epoch != part.epoch) continue;
    PeerProgress& peer = part.peers[position];
    switch (item.result) {
      case AckResult::kOk:
        if (item.index > peer.match_index) peer.match_boot_id = peer_header_[position].boot_id;
        peer.match_index = std::max(peer.match_index, item.index);
        peer.next_index = std::max(peer.next_index, item.index + 1);
        break;
      case AckResult::kMismatch:
        if (item.index < peer.match_index && peer.match_boot_id != peer_header_[position].boot_id) {
          NoteLostAcknowledged(source, item.partition, item.index);
        }
        peer.next_index = std::min(item.index, peer.next_index - 1) + 1;
        peer.next_index = std::max(peer.next_index, peer.match_index + 1);
        peer.resend_index = peer.next_index;
        break;
      case AckResult::kBusy:
        // The peer stored nothing, not even the commit index: repeat the item even when it
        // carries no entries (a resyncing peer installing a snapshot of an idle partition
        // waited for it forever).
        peer.next_index = peer.ResendIndex();
        peer.sent_commit = 0;
        break;
      case AckResult::kStale:
        StepDown(item.partition, "a newer owner took the partition before commit");
        continue;
      case AckResult::kNeedPromise:
        outboxes_[position].start_epoch.items.push_back(StartEpochItem{item.partition, part.epoch});
        peer.next_index = peer.ResendIndex();
        continue;
    }
    peer.acked = true;
    peer.acked_sequence = std::max(peer.acked_sequence, ack.sequence);
    AdvanceCommit(item.partition);
    CheckReads(item.partition);
  }
}

void ReplicatedEngine::NoteLostAcknowledged(NodeId peer_id, uint32_t partition,
                                            uint64_t held_index) {
  // A durable acknowledgement survives any restart: a later process that lacks the entries
  // runs on a disk that lost synced writes. Entries may have committed on its word, so they
  // must reach it again; resending only above its acknowledged match, as for an intact
  // restart, is refused (its log ends below) until something else starts the partition
  // over for it. Its match drops to what it holds; the commit index never goes back.
  const int position = Position(peer_id);
  PeerProgress& peer = parts_[partition].peers[position];
  ++counters_.peers_lost_acknowledged;
  const int64_t now_ns = env_.MonotonicNowNs();
  if (now_ns - lost_acknowledged_logged_ns_ >= kRefusalLogIntervalNs) {
    lost_acknowledged_logged_ns_ = now_ns;
    env_.Log(absl::StrCat("replication: node ", peer_id, " restarted holding partition ", partition,
                          " only up to index ", held_index, " after acknowledging ",
                          peer.match_index,
                          " as durable: its data directory lost synced writes (an old backup of "
                          "it? a disk that ignores syncs?); sending the entries again. Check or "
                          "replace that disk (docs/operations.md)"));
  }
  peer.match_index = held_index;
  peer.match_boot_id = peer_header_[position].boot_id;
  peer.resend_index = held_index + 1;
}

void ReplicatedEngine::AdvanceCommit(uint32_t partition) {
  Part& part = parts_[partition];
  if (part.role != PartRole::kOwner) return;
  if (store_->last_index(partition) <= Committed(partition)) return;  // Nothing to commit.
  absl::InlinedVector<uint64_t, 8> durable;
  for (size_t position = 0; position < members_.size(); ++position) {
    const NodeId member = members_[position];
    if (!CountsForQuorum(member)) continue;
    if (member == env_.node_id()) {
      durable.push_back(part.durable_index);
    } else if (part.peers[position].acked) {
      durable.push_back(part.peers[position].match_index);
    }
  }
  const size_t quorum = BugPlanted(PlantedBug::kOwnerCopyIsQuorum) ? 1 : QuorumSize();
  if (durable.size() < quorum) return;
  std::sort(durable.begin(), durable.end(), std::greater<>());
  const uint64_t index = std::min(durable[quorum - 1], store_->last_index(partition));
  if (index <= Committed(partition)) return;
  // Entries of earlier epochs commit only behind one of ours.
  if (store_->EpochAt(partition, index) != std::optional<uint64_t>(part.epoch)) return;
  CommitUpTo(partition, index);
}

uint64_t ReplicatedEngine::Committed(uint32_t partition) const {
  return std::max(store_->commit_index(partition),
                  std::min(commit_target_[partition], store_->last_index(partition)));
}

void ReplicatedEngine::CommitUpTo(uint32_t partition, uint64_t index) {
  if (index <= Committed(partition)) return;
  UM_CHECK_LE(index, store_->last_index(partition));
  commit_target_[partition] = index;
  QueueCommit(partition);
}

void ReplicatedEngine::QueueCommit(uint32_t partition) {
  if (!commit_queued_[partition]) {
    commit_queued_[partition] = true;
    commit_queued_ns_[partition] = env_.MonotonicNowNs();
    commit_queue_.push_back(partition);
  }
  ScheduleCommitSlice();
}

void ReplicatedEngine::ScheduleCommitSlice() {
  if (commit_timer_ != kNoTimer) return;
  commit_timer_ = env_.StartTimer(0, [this] {
    commit_timer_ = kNoTimer;
    RunCommitSlice();
  });
}

void ReplicatedEngine::RunCommitSlice() {
  uint64_t budget = std::max<uint64_t>(options_.local.commit_events_per_slice, 1);
  if (!commit_queue_.empty() &&
      env_.MonotonicNowNs() - commit_queued_ns_[commit_queue_.front()] > kCommitBehindNs) {
    budget *= kCommitCatchUpFactor;  // Falling behind: larger slices until caught up.
  }
  uint64_t spent = 0;  // Entries plus events applied.
  while (!commit_queue_.empty() && spent < budget) {
    const uint32_t partition = commit_queue_.front();
    const uint64_t applied = store_->commit_index(partition);
    const uint64_t target = Committed(partition);
    if (target <= applied || parts_[partition].installing) {
      // Done, or a snapshot is replacing the state: its install queues the rest again.
      commit_queue_.pop_front();
      commit_queued_[partition] = false;
      continue;
    }
    const uint64_t index = store_->CommitIndexWithin(partition, target, budget - spent);
    const uint64_t offset_before = store_->state(partition).next_offset();
    ApplyCommitted(partition, index);
    spent += (index - applied) + (store_->state(partition).next_offset() - offset_before);
  }
  FlushOutboxes();  // Answers to forwarded requests completed by this slice.
  if (!commit_queue_.empty()) {
    ScheduleCommitSlice();
    return;
  }
  FlushPeers();  // Caught up: tell replicas the new commit indexes.
}

void ReplicatedEngine::ApplyCommitted(uint32_t partition, uint64_t index) {
  Part& part = parts_[partition];
  const bool owner = part.role == PartRole::kOwner;
  std::vector<AlertRecord> alerts = store_->Commit(partition, index, owner);
  if (!alerts.empty()) {
    if (metrics_.alerts_recorded != nullptr) metrics_.alerts_recorded->Increment(alerts.size());
    alerts_.Add(alerts);
    alerts_.NoteRecorded(partition, index);
    RequestSync();
  }
  if (owner) {
    pending_dedup_[partition].RetireApplied(store_->state(partition).next_offset());
    if (!part.serving && index >= part.start_index) {
      part.serving = true;
      RecordUnconfirmedAlerts(partition);
      RunParked(partition);
    }
  }
  CompleteWaiters(partition);
  CheckReads(partition);
}

void ReplicatedEngine::RecordUnconfirmedAlerts(uint32_t partition) {
  if (store_->state(partition).unconfirmed_crossings().empty() ||
      BugPlanted(PlantedBug::kSkipUnconfirmedAlerts)) {
    return;
  }
  const std::vector<AlertRecord> recorded = RecordUnconfirmedCrossings(*store_, alerts_, partition);
  if (metrics_.alerts_recorded != nullptr) metrics_.alerts_recorded->Increment(recorded.size());
  RequestSync();
}

void ReplicatedEngine::ConfirmRecordedAlerts() {
  AppendAlertConfirmations(
      env_, *store_, alerts_,
      [this](uint32_t partition) {
        const Part& part = parts_[partition];
        return part.role == PartRole::kOwner && part.serving ? std::optional<uint64_t>(part.epoch)
                                                             : std::nullopt;
      },
      [this] { RequestSync(); });
}

void ReplicatedEngine::CopyAlerts() {
  if (alerts_.copy_in_flight() || alerts_.unreleased() == alerts_.waiting()) return;
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] != env_.node_id() && peer_header_[position].minor < kAlertCopiesMinor) {
      // A peer of an older version could not decode the copy: released uncopied, as before
      // (not restorable after a disk loss; docs/replication.md, "Mixed versions").
      alerts_.ReleaseUncopied(on_alerts_durable_);
      ConfirmRecordedAlerts();
      return;
    }
  }
  // A record held only in memory (its WAL append failed) waits for the checkpoint that
  // writes it: copied now, a crash would lose it here while its offset lives on in the copy.
  if (store_->alerts_unlogged() || writes_blocked_) return;
  std::vector<AlertRecord> records = alerts_.StartCopy(metering::kAlertCopiesPerEntryMax);
  if (records.empty()) return;
  // Into the partition of the first record if this node serves it (copies spread like the
  // accounts), else into the first one it serves; none: the sweep tries again.
  std::optional<uint32_t> target;
  const uint32_t first =
      static_cast<uint32_t>(records.front().crossing.account_id % kPartitionCount);
  for (uint32_t i = 0; i < kPartitionCount && !target.has_value(); ++i) {
    if (serving((first + i) % kPartitionCount)) target = (first + i) % kPartitionCount;
  }
  const uint64_t through_offset = records.back().offset;
  if (!target.has_value()) {
    alerts_.CopyDone(false, through_offset, on_alerts_durable_);
    return;
  }
  auto copies = std::make_shared<metering::AlertCopies>();
  copies->recorder = env_.node_id();
  copies->records.reserve(records.size());
  for (AlertRecord& record : records) {
    copies->records.push_back(metering::AlertCopy{record.offset, std::move(record.crossing)});
  }
  const size_t count = copies->records.size();
  Parked request;
  request.entry =
      std::make_shared<const metering::LogEntry>(metering::LogEntry::CopiesOfAlerts(copies));
  request.deadline_ns = env_.MonotonicNowNs() + options_.request_timeout_ns;
  request.status_done = [this, through_offset, count](absl::Status status) {
    alerts_.CopyDone(status.ok(), through_offset, on_alerts_durable_);
    if (!status.ok()) return;  // The sweep sends them again (maybe to another partition).
    counters_.alerts_copied += count;
    ConfirmRecordedAlerts();
    CopyAlerts();
  };
  Dispatch(*target, std::move(request));
}

void ReplicatedEngine::CompleteWaiters(uint32_t partition) {
  std::deque<Waiter>& waiters = waiters_[partition];
  const uint64_t commit = store_->commit_index(partition);
  bool schema_done = false;
  while (!waiters.empty() && waiters.front().index <= commit) {
    Waiter waiter = std::move(waiters.front());
    waiters.pop_front();
    pending_events_ -= waiter.events;
    if (waiter.schema_change) {
      UM_CHECK_GT(parts_[partition].schema_changes_in_flight, 0);
      --parts_[partition].schema_changes_in_flight;
      schema_done = true;
    }
    if (waiter.ingest_done) {
      waiter.ingest_done(std::move(waiter.result));
    } else if (waiter.status_done) {
      waiter.status_done(absl::OkStatus());
    }
  }
  if (schema_done && parts_[partition].schema_changes_in_flight == 0) RunParked(partition);
}

void ReplicatedEngine::FailWaiters(uint32_t partition, const absl::Status& status) {
  std::deque<Waiter> waiters = std::move(waiters_[partition]);
  waiters_[partition].clear();
  Part& part = parts_[partition];
  for (Waiter& waiter : waiters) {
    pending_events_ -= waiter.events;
    if (waiter.ingest_done) {
      waiter.ingest_done(status);
    } else if (waiter.status_done) {
      waiter.status_done(status);
    }
  }
  part.schema_changes_in_flight = 0;
  std::deque<ReadWait> reads = std::move(part.owner_reads);
  part.owner_reads.clear();
  for (ReadWait& wait : reads) {
    const absl::Status unavailable = absl::UnavailableError("the owner changed during the read");
    if (wait.read) wait.read(unavailable);
    if (wait.confirm) wait.confirm(unavailable);
  }
}

bool ReplicatedEngine::SnapshotDue(const PeerProgress& peer, int64_t now_ns) const {
  const int64_t periods = peer.snapshot_sent_bytes > kSmallSnapshotBytes ? kSnapshotPeriods : 1;
  return now_ns - peer.snapshot_sent_ns >= periods * options_.retransmit_ns;
}

bool ReplicatedEngine::SendSnapshot(uint32_t partition, NodeId target, uint64_t epoch,
                                    bool fetch_reply, PeerProgress& peer, int64_t now_ns) {
  const size_t position = static_cast<size_t>(Position(target));
  const auto key = std::make_pair(position, partition);
  const bool pacing = peer_header_[position].minor >= 3;
  if (pacing && !snapshots_out_.contains(key)) {
    size_t running = 0;
    for (auto it = snapshots_out_.lower_bound({position, 0});
         it != snapshots_out_.end() && it->first.first == position; ++it) {
      ++running;
    }
    if (running >= kSnapshotTransfersMax) return false;  // Asked again later.
  }
  SnapshotOut out;
  out.bytes =
      std::make_shared<const std::vector<uint8_t>>(store_->state(partition).EncodeSnapshot());
  out.epoch = epoch;
  out.index = store_->commit_index(partition);
  out.entry_epoch = store_->commit_epoch(partition);
  out.fetch_reply = fetch_reply;
  out.progress_ns = now_ns;
  out.sent_ns = now_ns;
  out.resend_after_ns = options_.retransmit_ns;
  const uint64_t total_bytes = out.bytes->size();
  // A snapshot of one chunk is sent like any message: resent whole if lost (SnapshotDue).
  if (pacing && total_bytes > options_.snapshot_chunk_bytes) {
    SnapshotOut& running = snapshots_out_[key] = std::move(out);  // Replaces another kind.
    SendSnapshotChunks(position, partition, running, now_ns);
  } else {
    snapshots_out_.erase(key);
    uint64_t offset = 0;  // An empty state still takes one (empty) chunk.
    do {
      offset = SendSnapshotChunk(target, partition, out, offset);
    } while (offset < total_bytes);
  }
  ++counters_.snapshots_sent;
  peer.snapshot_sent_ns = now_ns;
  peer.snapshot_sent_bytes = total_bytes;
  return true;
}

uint64_t ReplicatedEngine::SendSnapshotChunk(NodeId target, uint32_t partition,
                                             const SnapshotOut& out, uint64_t offset) {
  const std::vector<uint8_t>& bytes = *out.bytes;
  UM_CHECK(offset <= bytes.size());
  SnapshotChunk chunk;
  chunk.partition = partition;
  chunk.epoch = out.epoch;
  chunk.index = out.index;
  chunk.entry_epoch = out.entry_epoch;
  chunk.total_bytes = bytes.size();
  chunk.offset = offset;
  chunk.fetch_reply = out.fetch_reply;
  const uint64_t end = std::min<uint64_t>(bytes.size(), offset + options_.snapshot_chunk_bytes);
  chunk.bytes.assign(bytes.begin() + static_cast<ptrdiff_t>(offset),
                     bytes.begin() + static_cast<ptrdiff_t>(end));
  Send(target, std::move(chunk));
  return end;
}

size_t ReplicatedEngine::SendSnapshotChunks(size_t position, uint32_t partition, SnapshotOut& out,
                                            int64_t now_ns) {
  const uint64_t total_bytes = out.bytes->size();
  const uint64_t limit = out.acked_bytes + kSnapshotWindowChunks * options_.snapshot_chunk_bytes;
  // Nothing left to send, unless an empty state's one (empty) chunk is due again.
  if (out.sent_bytes >= limit || (out.sent_bytes >= total_bytes && total_bytes > 0)) return 0;
  size_t chunks = 0;
  do {
    out.sent_bytes = SendSnapshotChunk(members_[position], partition, out, out.sent_bytes);
    ++chunks;
  } while (out.sent_bytes < total_bytes && out.sent_bytes < limit);
  out.sent_ns = now_ns;
  return chunks;
}

bool ReplicatedEngine::SnapshotRunning(size_t position, uint32_t partition, uint64_t epoch,
                                       bool fetch_reply) const {
  const auto it = snapshots_out_.find({position, partition});
  return it != snapshots_out_.end() && it->second.epoch == epoch &&
         it->second.fetch_reply == fetch_reply;
}

bool ReplicatedEngine::SnapshotTransferValid(uint32_t partition, const SnapshotOut& out) const {
  if (out.fetch_reply) return meta_->meta().promised_epoch[partition] == out.epoch;
  const Part& part = parts_[partition];
  return part.role == PartRole::kOwner && part.epoch == out.epoch;
}

void ReplicatedEngine::PumpSnapshots(size_t position, int64_t now_ns) {
  auto it = snapshots_out_.lower_bound({position, 0});
  while (it != snapshots_out_.end() && it->first.first == position) {
    const uint32_t partition = it->first.second;
    SnapshotOut& out = it->second;
    if (!SnapshotTransferValid(partition, out) ||
        now_ns - out.progress_ns >= kSnapshotPeriods * options_.retransmit_ns) {
      // The epoch ended, or the receiver stopped taking chunks (down, or it dropped the
      // partial state): the pacing (SnapshotDue) decides when a new transfer starts.
      it = snapshots_out_.erase(it);
      continue;
    }
    if (now_ns - out.sent_ns >= out.resend_after_ns) {
      // Chunks or their acknowledgements were lost, or the receiver is slow to answer (busy
      // installing other snapshots): send again from what it holds, waiting twice as long
      // before the next resend unless it makes progress meanwhile.
      out.resend_after_ns *= 2;
      out.sent_bytes = out.acked_bytes;
      counters_.snapshot_chunks_resent += SendSnapshotChunks(position, partition, out, now_ns);
    }
    ++it;
  }
}

void ReplicatedEngine::HandleSnapshotAck(NodeId source, const SnapshotAck& ack) {
  const size_t position = static_cast<size_t>(Position(source));
  const int64_t now_ns = env_.MonotonicNowNs();
  for (const SnapshotAckItem& item : ack.items) {
    const auto it = snapshots_out_.find({position, item.partition});
    if (it == snapshots_out_.end()) continue;
    SnapshotOut& out = it->second;
    if (out.epoch != item.epoch || out.index != item.index) continue;  // Another transfer's.
    if (item.received_bytes >= out.bytes->size()) {
      // The receiver has it all and installs it; the pacing counts from now, so that a slow
      // install is not answered with the same state again.
      parts_[item.partition].peers[position].snapshot_sent_ns = now_ns;
      snapshots_out_.erase(it);
      continue;
    }
    if (item.received_bytes < out.acked_bytes) continue;  // Old news (reordered).
    if (item.received_bytes == out.acked_bytes) {
      // The receiver got a chunk past a gap (one lost or overtaken): send again from what it
      // holds, once per prefix (later answers to the same window repeat it). An answer to a
      // copy (a resend that crossed an acknowledgement) asks for nothing.
      if (item.chunk_offset > item.received_bytes && out.sent_bytes > out.acked_bytes &&
          out.resent_at_bytes != out.acked_bytes) {
        out.resent_at_bytes = out.acked_bytes;
        out.sent_bytes = out.acked_bytes;
        counters_.snapshot_chunks_resent +=
            SendSnapshotChunks(position, item.partition, out, now_ns);
      }
      continue;
    }
    out.acked_bytes = item.received_bytes;
    out.progress_ns = now_ns;
    out.resend_after_ns = options_.retransmit_ns;
    out.sent_bytes = std::max(out.sent_bytes, out.acked_bytes);
    SendSnapshotChunks(position, item.partition, out, now_ns);
  }
}

void ReplicatedEngine::AckSnapshotChunk(NodeId source, const SnapshotChunk& chunk,
                                        uint64_t received_bytes) {
  const size_t position = static_cast<size_t>(Position(source));
  if (peer_header_[position].minor < 3) return;  // It sends every chunk unasked.
  outboxes_[position].snapshot_acks.items.push_back(
      SnapshotAckItem{chunk.partition, chunk.epoch, chunk.index,
                      std::min(received_bytes, chunk.total_bytes), chunk.offset});
}

void ReplicatedEngine::HandleSnapshotChunk(NodeId source, const SnapshotChunk& chunk) {
  const uint32_t partition = chunk.partition;
  Part& part = parts_[partition];
  const uint64_t promised = meta_->meta().promised_epoch[partition];
  if (chunk.epoch != promised && !chunk.fetch_reply) {
    // Tell the owner, as for an append: it re-sends its epoch start or steps down.
    AckItem ack;
    ack.partition = partition;
    ack.epoch = chunk.epoch;
    ack.result = chunk.epoch > promised ? AckResult::kNeedPromise : AckResult::kStale;
    ack.promised_epoch = promised;
    outboxes_[Position(source)].acks.items.push_back(ack);
    return;
  }
  if (chunk.epoch != promised || part.installing) return;
  if (chunk.fetch_reply ? (part.role != PartRole::kFetching || part.fetch_from != source ||
                           part.epoch != chunk.epoch)
                        : part.role != PartRole::kReplica) {
    return;
  }
  std::unique_ptr<SnapshotIn>& in = part.snapshot_in;
  const bool same_transfer =
      in != nullptr && in->source == source && in->epoch == chunk.epoch && in->index == chunk.index;
  if (chunk.offset == 0) {
    in = std::make_unique<SnapshotIn>();
    in->epoch = chunk.epoch;
    in->index = chunk.index;
    in->entry_epoch = chunk.entry_epoch;
    in->fetch_reply = chunk.fetch_reply;
    in->source = source;
    in->total_bytes = chunk.total_bytes;
  } else if (!same_transfer) {
    // A chunk of a transfer this node completed (its last acknowledgement was lost): tell the
    // sender it is done. Otherwise nothing before it is here: the sender gives up on it.
    if (chunk.index <= store_->commit_index(partition)) {
      AckSnapshotChunk(source, chunk, chunk.total_bytes);
    }
    return;
  } else if (in->bytes.size() != chunk.offset) {
    AckSnapshotChunk(source, chunk, in->bytes.size());  // A gap or a copy: resend from here.
    return;
  }
  in->bytes.insert(in->bytes.end(), chunk.bytes.begin(), chunk.bytes.end());
  AckSnapshotChunk(source, chunk, in->bytes.size());
  if (in->bytes.size() < in->total_bytes) return;
  std::unique_ptr<SnapshotIn> complete = std::move(in);
  const uint64_t index = complete->index;
  const uint64_t epoch = complete->epoch;
  const bool fetch_reply = complete->fetch_reply;
  if (index <= store_->commit_index(partition)) {
    // Already there (a resent snapshot): no need to decode it.
    FinishSnapshot(partition, source, index, epoch, fetch_reply);
    return;
  }
  absl::StatusOr<std::unique_ptr<metering::PartitionState>> state =
      metering::PartitionState::DecodeSnapshot(store_->partition_options(partition),
                                               complete->bytes);
  if (!state.ok() || (*state)->applied_index() != index) {
    env_.Log(absl::StrCat("replication: bad snapshot of partition ", partition, " from node ",
                          source, ": ", state.status().ToString()));
    return;
  }
  env_.Log(absl::StrCat("replication: catch-up: partition ", partition, " installs a snapshot at ",
                        "index ", index, " (", complete->bytes.size(), " bytes) from node ",
                        source));
  part.installing = true;
  store_->InstallSnapshot(
      partition, *std::move(state), complete->bytes, complete->entry_epoch,
      [this, partition, index, epoch, fetch_reply, source](absl::Status status) {
        // A state store that cannot commit: crash and recover.
        if (FailStopOnError(env_, status, "snapshot install")) return;
        Part& part = parts_[partition];
        part.installing = false;
        part.durable_index =
            std::min(std::max(part.durable_index, index), store_->last_index(partition));
        ++counters_.snapshots_installed;
        QueueCommit(partition);  // Known committed entries after the snapshot, if any.
        FinishSnapshot(partition, source, index, epoch, fetch_reply);
      });
}

void ReplicatedEngine::FinishSnapshot(uint32_t partition, NodeId source, uint64_t index,
                                      uint64_t epoch, bool fetch_reply) {
  Part& part = parts_[partition];
  const int position = Position(source);
  if (fetch_reply) {
    if (part.role != PartRole::kFetching || part.epoch != epoch) return;
    ContinueFetch(partition, position, index);
  } else {
    AckItem ack;
    ack.partition = partition;
    ack.epoch = epoch;
    ack.result = AckResult::kOk;
    ack.index = index;
    ack.promised_epoch = meta_->meta().promised_epoch[partition];
    outboxes_[position].acks.items.push_back(ack);
  }
  CheckReads(partition);
  FlushOutboxes();
  FlushPeers();
}

void ReplicatedEngine::FlushPeers() {
  SendConfirmRounds();
  const int64_t now_ns = env_.MonotonicNowNs();
  for (size_t position = 0; position < members_.size(); ++position) {
    const NodeId target = members_[position];
    if (target == env_.node_id()) continue;
    PumpSnapshots(position, now_ns);
    if (append_in_flight_[position]) {
      if (now_ns < append_deadline_ns_[position]) continue;
      append_in_flight_[position] = false;  // Lost or slow: resend from the durable match.
      for (Part& part : parts_) {
        PeerProgress& peer = part.peers[position];
        peer.next_index = peer.ResendIndex();
        peer.sent_commit = 0;
      }
    }
    Append message;
    message.sequence = sequence_ + 1;
    size_t bytes = 0;
    // Snapshots are large: a few per peer per retransmit period (a dead peer costs little).
    if (now_ns - snapshot_window_ns_[position] >= options_.retransmit_ns) {
      snapshot_window_ns_[position] = now_ns;
      snapshot_budget_[position] = kSnapshotsPerWindow;
    }
    size_t& snapshot_budget = snapshot_budget_[position];
    // Round robin from where the last full message stopped: under load a message fills up
    // before the walk ends, and the partitions after that point must not wait for a quiet
    // moment (a new owner's epoch start among them stalled for seconds).
    const uint32_t first = flush_start_[position];
    for (uint32_t step = 0; step < kPartitionCount; ++step) {
      const uint32_t partition = (first + step) % kPartitionCount;
      Part& part = parts_[partition];
      if (part.role != PartRole::kOwner) continue;
      PeerProgress& peer = part.peers[position];
      const uint64_t commit = store_->commit_index(partition);
      const uint64_t last = store_->last_index(partition);
      if (peer.next_index > peer.ResendIndex() &&
          now_ns - peer.entries_sent_ns >= options_.retransmit_ns) {
        // Sent long ago and never acknowledged (a lost message or an acknowledgement the
        // peer's crash swallowed): send again from the acknowledged match.
        peer.next_index = peer.ResendIndex();
      }
      const bool has_entries = peer.next_index <= last;
      if (!has_entries && peer.sent_commit >= commit && !peer.probe && peer.acked) continue;
      AppendItem item;
      item.partition = partition;
      item.epoch = part.epoch;
      item.prev_index = peer.next_index - 1;
      item.commit_index = commit;
      const std::optional<uint64_t> prev_epoch = store_->EpochAt(partition, item.prev_index);
      std::vector<LogRecord>& records = flush_records_;  // Reused: no allocation per item.
      records.clear();
      if (!prev_epoch.has_value() ||
          (has_entries &&
           !store_->EntriesFrom(partition, peer.next_index, options_.entries_per_item_max,
                                options_.message_bytes_max - bytes, &records))) {
        if (snapshot_budget > 0 && SnapshotDue(peer, now_ns) &&
            !SnapshotRunning(position, partition, part.epoch, /*fetch_reply=*/false) &&
            SendSnapshot(partition, target, part.epoch, /*fetch_reply=*/false, peer, now_ns)) {
          // Once installed, the peer still needs an item with the commit index (a
          // resyncing node counts a partition caught up only from one).
          peer.sent_commit = 0;
          if (peer.snapshot_sent_bytes > kSmallSnapshotBytes) --snapshot_budget;
        }
        continue;
      }
      item.prev_epoch = *prev_epoch;
      item.entries.reserve(records.size());
      for (LogRecord& record : records) {
        bytes += EstimatedEntryBytes(*record.entry);
        item.entries.push_back(WireEntry{record.index, record.epoch, std::move(record.entry)});
      }
      if (!item.entries.empty()) {
        peer.next_index = item.entries.back().index + 1;
        peer.entries_sent_ns = now_ns;
      }
      peer.sent_commit = commit;
      peer.probe = false;
      bytes += 64;
      message.items.push_back(std::move(item));
      if (bytes >= options_.message_bytes_max) {
        flush_start_[position] = (partition + 1) % kPartitionCount;
        break;
      }
    }
    if (message.items.empty()) continue;
    sequence_ = message.sequence;
    append_in_flight_[position] = true;
    append_deadline_ns_[position] = now_ns + options_.retransmit_ns;
    append_sequence_sent_[position] = message.sequence;
    Send(target, std::move(message));
  }
}

void ReplicatedEngine::AnswerOwnerRead(uint32_t partition, ReadWait& wait) {
  if (wait.read) wait.read(&store_->state(partition));
  if (wait.confirm) wait.confirm(store_->commit_index(partition));
}

void ReplicatedEngine::ConfirmAsOwner(uint32_t partition, ReadWait wait) {
  Part& part = parts_[partition];
  const int64_t now_ns = env_.MonotonicNowNs();
  const int64_t lease_end_ns = LeaseEnd(part);
  if (lease_end_ns > now_ns) {
    // No newer epoch can have committed anything: its owner lacks the promise of at least
    // one member of the lease quorum until the leases end. Renewed in the background once
    // half of the lease is gone, so reads under steady load never wait for a round.
    if (lease_end_ns - now_ns < options_.read_lease_ns / 2 && !lease_renew_) {
      lease_renew_ = true;
      confirm_wanted_ = confirm_round_ + 1;
      ScheduleFlush();
    }
    ++counters_.reads_leased;
    AnswerOwnerRead(partition, wait);
    return;
  }
  // Either proof will do: acknowledgements of an append sent after now (peers of minor
  // version 0 answer only those) or answers to a confirm round started after now (peers
  // answer at once, not after their next log sync).
  wait.sequence = sequence_ + 1;
  wait.round = confirm_round_ + 1;
  confirm_wanted_ = wait.round;
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] != env_.node_id()) part.peers[position].probe = true;
  }
  part.owner_reads.push_back(std::move(wait));
  CheckReads(partition);
  ScheduleFlush();
}

void ReplicatedEngine::SendConfirmRounds() {
  const int64_t now_ns = env_.MonotonicNowNs();
  std::optional<ConfirmEpoch> request;  // Built once, for the first peer that needs it.
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] == env_.node_id()) continue;
    if (confirm_in_flight_[position]) {
      if (now_ns < confirm_deadline_ns_[position]) continue;
      confirm_in_flight_[position] = false;  // Lost or slow: a new round replaces it.
      confirm_sent_round_[position] = 0;
    }
    if (confirm_sent_round_[position] >= confirm_wanted_) continue;
    if (!request.has_value()) {
      confirm_round_ = std::max(confirm_round_, confirm_wanted_);
      request.emplace();
      request->round = confirm_round_;
      // With leases, every served partition: reads spread over many partitions then find
      // their lease alive, renewed by the reads of any of them.
      const bool leases = options_.read_lease_ns > 0;
      for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
        const Part& part = parts_[partition];
        if (part.role == PartRole::kOwner &&
            (!part.owner_reads.empty() || (leases && part.serving))) {
          request->items.push_back(ConfirmItem{partition, part.epoch});
        }
      }
      request->lease_ns = std::max<int64_t>(options_.read_lease_ns, 0);
      lease_renew_ = false;
    }
    // Nothing waits (the append path answered first): the round is done without a send.
    confirm_sent_round_[position] = confirm_round_;
    if (request->items.empty()) continue;
    confirm_in_flight_[position] = true;
    confirm_deadline_ns_[position] = now_ns + options_.retransmit_ns;
    if (confirm_lease_round_[position] != confirm_round_) {
      confirm_lease_round_[position] = confirm_round_;
      confirm_lease_sent_ns_[position] = now_ns;
    }
    Send(members_[position], *request);
  }
}

void ReplicatedEngine::HandleConfirmEpoch(NodeId source, const ConfirmEpoch& request) {
  ConfirmEpochReply reply;  // Sent at once: a round's answer never mixes with another's.
  reply.round = request.round;
  // An inactive node (or one not yet confirmed current) counts toward no quorum.
  const bool voting = state_ == NodeState::kActive && confirmed_;
  reply.lease_ns = voting ? std::clamp<int64_t>(request.lease_ns, 0, options_.read_lease_ns) : 0;
  const int64_t lease_until_ns = env_.MonotonicNowNs() + reply.lease_ns;
  for (const ConfirmItem& item : request.items) {
    // An inactive node counts toward no quorum; a promise of any other epoch means the
    // asking owner may already be superseded.
    const bool confirmed = voting && meta_->meta().promised_epoch[item.partition] == item.epoch;
    reply.items.push_back(ConfirmReplyItem{item.partition, item.epoch, confirmed});
    if (confirmed && reply.lease_ns > 0) GrantLease(item.partition, item.epoch, lease_until_ns);
  }
  Send(source, std::move(reply));
}

void ReplicatedEngine::HandleConfirmEpochReply(NodeId source, const ConfirmEpochReply& reply) {
  const int position = Position(source);
  if (confirm_in_flight_[position] && reply.round == confirm_sent_round_[position]) {
    confirm_in_flight_[position] = false;
  }
  // The peer granted the lease when it handled the round, after we first sent it.
  int64_t lease_until_ns = kLongAgoNs;
  const int64_t lease_ns = std::min(reply.lease_ns, options_.read_lease_ns);
  if (lease_ns > 0 && reply.round == confirm_lease_round_[position]) {
    lease_until_ns =
        confirm_lease_sent_ns_[position] + lease_ns - lease_ns / kLeaseClockMarginDivisor;
  }
  for (const ConfirmReplyItem& item : reply.items) {
    Part& part = parts_[item.partition];
    if (!item.confirmed || part.role != PartRole::kOwner || item.epoch != part.epoch) continue;
    PeerProgress& peer = part.peers[position];
    peer.confirmed_round = std::max(peer.confirmed_round, reply.round);
    peer.lease_until_ns = std::max(peer.lease_until_ns, lease_until_ns);
    CheckReads(item.partition);
  }
}

int64_t ReplicatedEngine::LeaseEnd(const Part& part) const {
  if (options_.read_lease_ns <= 0 || part.role != PartRole::kOwner || !part.serving) {
    return kLongAgoNs;
  }
  absl::InlinedVector<int64_t, 8> ends;
  if (CountsForQuorum(env_.node_id())) ends.push_back(INT64_MAX);
  for (size_t position = 0; position < members_.size(); ++position) {
    const NodeId member = members_[position];
    if (member != env_.node_id() && CountsForQuorum(member)) {
      ends.push_back(part.peers[position].lease_until_ns);
    }
  }
  if (ends.size() < quorum_) return kLongAgoNs;
  std::nth_element(ends.begin(), ends.begin() + static_cast<ptrdiff_t>(quorum_ - 1), ends.end(),
                   std::greater<>());
  return ends[quorum_ - 1];
}

void ReplicatedEngine::GrantLease(uint32_t partition, uint64_t epoch, int64_t until_ns) {
  LeaseGrant& grant = lease_grants_[partition];
  UM_CHECK_GE(epoch, grant.epoch);  // Granted only to the promised epoch, which only grows.
  if (epoch != grant.epoch) {
    grant.older_until_ns = std::max(grant.older_until_ns, grant.until_ns);
    grant.epoch = epoch;
    grant.until_ns = until_ns;
  } else {
    grant.until_ns = std::max(grant.until_ns, until_ns);
  }
}

int64_t ReplicatedEngine::PromiseHeldUntil(uint32_t partition, uint64_t epoch) const {
  if (BugPlanted(PlantedBug::kPromiseIgnoresLeases)) return kLongAgoNs;
  const LeaseGrant& grant = lease_grants_[partition];
  return epoch == grant.epoch ? grant.older_until_ns
                              : std::max(grant.older_until_ns, grant.until_ns);
}

void ReplicatedEngine::TellWhenFree(HeldPromise promise) {
  const int64_t now_ns = env_.MonotonicNowNs();
  const int64_t release_ns = PromiseHeldUntil(promise.partition, promise.epoch);
  if (release_ns > now_ns) {
    held_promises_.emplace(release_ns, promise);
    ArmHoldTimer(release_ns, now_ns);
    return;
  }
  if (promise.owner == env_.node_id()) {
    OnSelfPromised(promise.partition, promise.epoch);
    return;
  }
  const int position = Position(promise.owner);
  if (position < 0) return;
  PromiseItem reply;
  reply.partition = promise.partition;
  reply.epoch = promise.epoch;
  reply.promised_epoch = meta_->meta().promised_epoch[promise.partition];
  reply.granted = reply.promised_epoch == promise.epoch;
  reply.last_epoch = store_->last_epoch(promise.partition);
  reply.last_index = store_->last_index(promise.partition);
  reply.commit_index = store_->commit_index(promise.partition);
  outboxes_[position].promise.items.push_back(reply);
  ScheduleFlush();
}

void ReplicatedEngine::ArmHoldTimer(int64_t release_ns, int64_t now_ns) {
  if (hold_timer_ != kNoTimer && hold_timer_ns_ <= release_ns) return;
  env_.CancelTimer(hold_timer_);
  hold_timer_ns_ = release_ns;
  hold_timer_ = env_.StartTimer(release_ns - now_ns, [this] {
    hold_timer_ = kNoTimer;
    ReleaseHeldPromises();
  });
}

void ReplicatedEngine::ReleaseHeldPromises() {
  const int64_t now_ns = env_.MonotonicNowNs();
  std::vector<HeldPromise> due;
  while (!held_promises_.empty() && held_promises_.begin()->first <= now_ns) {
    due.push_back(held_promises_.begin()->second);
    held_promises_.erase(held_promises_.begin());
  }
  if (!held_promises_.empty()) ArmHoldTimer(held_promises_.begin()->first, now_ns);
  for (const HeldPromise& promise : due) TellWhenFree(promise);  // Held again if renewed.
  FlushOutboxes();
}

void ReplicatedEngine::OnSelfPromised(uint32_t partition, uint64_t epoch) {
  Part& part = parts_[partition];
  if (part.role == PartRole::kStarting && part.epoch == epoch) {
    part.self_promised = true;
    MaybeFinishPromises(partition);
    FlushOutboxes();
    FlushPeers();
  }
}

void ReplicatedEngine::CheckReads(uint32_t partition) {
  Part& part = parts_[partition];
  while (!part.owner_reads.empty() && part.serving) {
    ReadWait& wait = part.owner_reads.front();
    size_t confirmed = CountsForQuorum(env_.node_id()) ? 1 : 0;
    for (size_t position = 0; position < members_.size(); ++position) {
      const NodeId member = members_[position];
      const PeerProgress& peer = part.peers[position];
      if (member != env_.node_id() && CountsForQuorum(member) &&
          (peer.acked_sequence >= wait.sequence || peer.confirmed_round >= wait.round)) {
        ++confirmed;
      }
    }
    if (confirmed < quorum_ && LeaseEnd(part) <= env_.MonotonicNowNs() &&
        !BugPlanted(PlantedBug::kUnconfirmedOwnerReads)) {
      break;
    }
    ReadWait done = std::move(wait);
    part.owner_reads.pop_front();
    ++counters_.reads_confirmed;
    AnswerOwnerRead(partition, done);
  }
  if (part.replica_reads.empty()) return;  // (An empty std::deque still allocates.)
  const uint64_t commit = store_->commit_index(partition);
  std::deque<ReadWait> waiting;
  std::deque<ReadWait> ready;
  for (ReadWait& wait : part.replica_reads) {
    (wait.index <= commit ? ready : waiting).push_back(std::move(wait));
  }
  part.replica_reads = std::move(waiting);
  for (ReadWait& wait : ready) wait.read(&store_->state(partition));
}

}  // namespace unimeter::replication
