// Client requests: routing to the owner (locally or forwarded), acceptance at the owner,
// reads, timeouts.
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/planted_bugs.h"
#include "node/replication/replicated_engine.h"

namespace unimeter::replication {
namespace {

bool IsSchemaChange(const metering::LogEntry& entry) {
  return entry.kind() == metering::LogEntryKind::kMetricPut ||
         entry.kind() == metering::LogEntryKind::kMetricDelete;
}

// Completes a parked or forwarded request (it carries an ingest or a status callback).
template <typename Request>
void FailRequest(Request& request, const absl::Status& status) {
  if (request.ingest_done) request.ingest_done(status);
  if (request.status_done) request.status_done(status);
}

}  // namespace

void ReplicatedEngine::Ingest(uint32_t partition, std::vector<metering::Event> events,
                              IngestMode mode, IngestDone done) {
  UM_CHECK_LT(partition, kPartitionCount);
  Parked request;
  request.events = std::move(events);
  request.mode = mode;
  request.ingest_done = std::move(done);
  request.deadline_ns = env_.MonotonicNowNs() + options_.request_timeout_ns;
  Dispatch(partition, std::move(request));
  ScheduleFlush();
}

void ReplicatedEngine::PutMetric(metering::MetricSchema schema, StatusDone done) {
  absl::StatusOr<metering::SchemaRef> compiled =
      metering::CompiledSchema::Create(std::move(schema));
  if (!compiled.ok()) {
    done(compiled.status());
    return;
  }
  absl::StatusOr<metering::RegistryVersion> version = NextRegistryVersion();
  if (!version.ok()) {
    done(version.status());
    return;
  }
  ProposeRegistryChange(
      std::make_shared<const metering::LogEntry>(metering::LogEntry::Put(*compiled, *version)),
      *version, std::move(done));
}

void ReplicatedEngine::DeleteMetric(std::string code, StatusDone done) {
  absl::StatusOr<metering::RegistryVersion> version = NextRegistryVersion();
  if (!version.ok()) {
    done(version.status());
    return;
  }
  ProposeRegistryChange(std::make_shared<const metering::LogEntry>(
                            metering::LogEntry::Delete(std::move(code), *version)),
                        *version, std::move(done));
}

void ReplicatedEngine::ProposeRegistryChange(std::shared_ptr<const metering::LogEntry> entry,
                                             metering::RegistryVersion version, StatusDone done) {
  registry_proposing_.insert(version);
  Propose(std::move(entry), true,
          [this, version, done = std::move(done)](absl::Status status) mutable {
            registry_proposing_.erase(version);
            done(std::move(status));
          });
}

absl::StatusOr<metering::RegistryVersion> ReplicatedEngine::NextRegistryVersion() {
  // The registry leader is the node serving partition 0: the epochs of partition 0 order
  // its successive leaders, and a leader orders its own changes. Its entry for partition 0
  // is appended here, in that epoch (Dispatch runs it locally while serving), so a change
  // is acknowledged only if partition 0 committed it before any newer epoch began.
  if (serving(kRegistryPartition)) {
    const uint64_t epoch = parts_[kRegistryPartition].epoch;
    if (epoch != registry_epoch_) {
      registry_epoch_ = epoch;
      registry_sequence_ = 0;
    }
    UM_CHECK_LT(registry_sequence_, UINT32_MAX);
    return metering::RegistryVersion{epoch, ++registry_sequence_};
  }
  const NodeId leader = map_.owner[kRegistryPartition];
  if (leader != kNoOwner && leader != env_.node_id()) {
    return RedirectStatus(leader, "registry changes run on the owner of partition 0");
  }
  return absl::UnavailableError(
      "no node serves partition 0 (the metric registry's leader) yet; retry");
}

void ReplicatedEngine::SyncRegistry() {
  // Anti-entropy, on the registry leader: every partition must end with the newest change
  // of every code. A change reaches each partition through its own forward; one that some
  // partitions never got (its proposer lost partition 0 midway, or failed on a timeout) is
  // proposed again to them here, from this node's replicas of all partitions. Proposing
  // twice is harmless: a partition ignores a change not newer than its own.
  const int64_t now_ns = env_.MonotonicNowNs();
  if (!serving(kRegistryPartition) || now_ns - registry_synced_ns_ < kRegistrySyncIntervalNs) {
    return;
  }
  registry_synced_ns_ = now_ns;
  struct Newest {
    metering::RegistryVersion version;
    metering::SchemaRef schema;
  };
  absl::btree_map<std::string, Newest> newest;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    store_->state(partition).ForEachRegistryEntry([&](const std::string& code,
                                                      const metering::SchemaRef& schema,
                                                      const metering::RegistryVersion& version) {
      Newest& known = newest[code];
      if (known.version < version) known = Newest{version, schema};
    });
  }
  uint32_t resent = 0;
  std::string example;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    if (registry_syncs_in_flight_.contains(partition)) continue;
    absl::btree_map<std::string, metering::RegistryVersion> held;
    store_->state(partition).ForEachRegistryEntry(
        [&](const std::string& code, const metering::SchemaRef&,
            const metering::RegistryVersion& version) { held[code] = version; });
    for (const auto& [code, change] : newest) {
      if (change.version.is_zero() || !(held[code] < change.version)) continue;
      // A change still on its way (proposed here and not done, or seen only lately: this
      // node's replicas apply a commit a little after the owners) is left to its forward.
      const int64_t seen_ns = registry_seen_ns_.try_emplace(change.version, now_ns).first->second;
      if (registry_proposing_.contains(change.version) ||
          now_ns - seen_ns < 2 * kRegistrySyncIntervalNs) {
        continue;
      }
      Parked request;
      request.entry = std::make_shared<const metering::LogEntry>(
          change.schema != nullptr ? metering::LogEntry::Put(change.schema, change.version)
                                   : metering::LogEntry::Delete(code, change.version));
      request.schema_change = true;
      request.deadline_ns = now_ns + options_.request_timeout_ns;
      request.status_done = [this, partition](absl::Status) {
        registry_syncs_in_flight_.erase(partition);
      };
      registry_syncs_in_flight_.insert(partition);
      ++counters_.registry_changes_resent;
      ++resent;
      example = absl::StrCat("'", code, "' at version ", change.version.epoch, ".",
                             change.version.sequence, " to partition ", partition);
      Dispatch(partition, std::move(request));
      break;  // One change per partition in flight; the next pass sends the rest.
    }
  }
  if (resent > 0) {
    env_.Log(absl::StrCat("replication: proposing ", resent,
                          " registry changes again to partitions that lack them (", example,
                          ", ...)"));
  }
}

void ReplicatedEngine::SweepRetention(int64_t cutoff_ns, StatusDone done) {
  Propose(std::make_shared<const metering::LogEntry>(metering::LogEntry::Retention(cutoff_ns)),
          false, std::move(done));
}

void ReplicatedEngine::Propose(std::shared_ptr<const metering::LogEntry> entry, bool schema_change,
                               StatusDone done) {
  // Every partition log carries the entry; the change is done when all 256 committed.
  struct Progress {
    uint32_t remaining = kPartitionCount;
    absl::Status first_error;
    StatusDone done;
  };
  auto progress = std::make_shared<Progress>();
  progress->done = std::move(done);
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    Parked request;
    request.entry = entry;
    request.schema_change = schema_change;
    request.deadline_ns = env_.MonotonicNowNs() + options_.request_timeout_ns;
    request.status_done = [progress](absl::Status status) {
      if (!status.ok() && progress->first_error.ok()) {
        // Some partitions may have it: the change's outcome is unknown (retry is safe:
        // a schema put or delete is idempotent).
        progress->first_error = absl::UnknownError(
            absl::StrCat("the change reached only some partitions: ", status.message()));
      }
      if (--progress->remaining == 0) progress->done(progress->first_error);
    };
    Dispatch(partition, std::move(request));
  }
  ScheduleFlush();
}

void ReplicatedEngine::Dispatch(uint32_t partition, Parked request) {
  Part& part = parts_[partition];
  if (serving(partition)) {
    if (writes_blocked_) {  // The leader moves the partition away meanwhile.
      FailRequest(request, absl::ResourceExhaustedError("free disk space below the threshold"));
      return;
    }
    if (request.entry != nullptr) {
      AcceptEntry(partition, std::move(request));
    } else {
      AcceptIngest(partition, std::move(request));
    }
    return;
  }
  const NodeId owner = map_.owner[partition];
  if (owner != kNoOwner && owner != env_.node_id() && !request.forwarded && ready() &&
      Reachable(owner)) {
    const uint64_t id = next_request_id_++;
    ForwardItem forward;
    forward.request_id = id;
    forward.partition = partition;
    forward.sync = request.mode == IngestMode::kSync;
    if (request.entry != nullptr) {
      forward.kind = ForwardKind::kEntry;
      forward.entry = request.entry;
    } else {
      forward.kind = ForwardKind::kIngest;
      forward.events = std::move(request.events);
    }
    Remote remote;
    remote.partition = partition;
    remote.target = owner;
    remote.ingest_done = std::move(request.ingest_done);
    remote.status_done = std::move(request.status_done);
    remote.deadline_ns = request.deadline_ns;
    remote_.emplace(id, std::move(remote));
    ++counters_.forwarded;
    AddForward(owner, std::move(forward));
    return;
  }
  if (request.forwarded && owner != env_.node_id()) {
    FailRequest(request, absl::UnavailableError(absl::StrCat(
                             "node ", env_.node_id(), " does not own partition ", partition)));
    return;
  }
  if (writes_blocked_) {  // Forwarded above when an owner is reachable: it stores them.
    FailRequest(request, absl::ResourceExhaustedError("free disk space below the threshold"));
    return;
  }
  part.parked.push_back(std::move(request));  // Until an owner serves the partition.
}

void ReplicatedEngine::AcceptIngest(uint32_t partition, Parked request) {
  Part& part = parts_[partition];
  const size_t count = request.events.size();
  // Staged parts do not count: they are not accepted yet, and counting them would refuse a
  // part larger than the bound forever while smaller ones arrive every turn.
  if (PendingBoundExceeded(pending_events_, count, options_.local.pending_events_max)) {
    request.ingest_done(absl::ResourceExhaustedError("too many events waiting for commit"));
    return;
  }
  if (part.schema_changes_in_flight > 0) {
    part.parked.push_back(std::move(request));  // Accepted under the new schema once applied.
    return;
  }
  if (part.staged.empty()) staged_partitions_.push_back(partition);
  part.staged.push_back(std::move(request));
  ScheduleAccept();
}

void ReplicatedEngine::AcceptStaged() {
  // Parts answered below may stage new ones (a callback sending the next request): those
  // wait for the next accept timer, which staging starts.
  std::vector<uint32_t> partitions = std::exchange(staged_partitions_, {});
  for (const uint32_t partition : partitions) {
    Part& part = parts_[partition];
    std::vector<Parked> requests = std::exchange(part.staged, {});
    if (!serving(partition) || part.schema_changes_in_flight > 0 || writes_blocked_) {
      // The partition moved, a schema change began or the disk filled since staging: route
      // the parts again, in their order.
      for (Parked& request : requests) Dispatch(partition, std::move(request));
      continue;
    }
    for (size_t begin = 0; begin < requests.size();) {
      const size_t end = EntryPartsEnd(
          begin,
          requests.size(), [&requests](size_t i) -> const auto& { return requests[i].events; });
      AcceptTogether(partition, requests, begin, end);
      begin = end;
    }
  }
}

void ReplicatedEngine::AcceptTogether(uint32_t partition, std::vector<Parked>& requests,
                                      size_t begin, size_t end) {
  Part& part = parts_[partition];
  std::vector<absl::Span<const metering::Event>> spans;
  spans.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) spans.emplace_back(requests[i].events);
  AppendedParts appended = AcceptAndAppend(*store_, pending_dedup_[partition], partition,
                                           part.epoch, spans, env_.WallNowNs());
  if (end - begin > 1) counters_.ingest_parts_combined += end - begin;
  const uint64_t index = appended.index;
  if (index != 0 && metrics_.wal_writes != nullptr) metrics_.wal_writes->Increment();
  const uint64_t last = store_->last_index(partition);
  for (size_t i = begin; i < end; ++i) {
    Parked& request = requests[i];
    absl::StatusOr<metering::IngestResult>& result = appended.results[i - begin];
    if (!result.ok()) {
      request.ingest_done(result.status());
      continue;
    }
    Waiter waiter;
    waiter.partition = partition;
    waiter.epoch = part.epoch;
    if (result->n_stored == 0) {
      // Nothing new to store. A duplicate verdict may rest on entries not committed yet
      // (this turn's entry among them): answer once everything appended so far has
      // committed (if they are lost instead, the waiter fails with an unknown outcome and
      // the client resends).
      if (last == store_->commit_index(partition) || request.mode == IngestMode::kAsync ||
          BugPlanted(PlantedBug::kEarlyDuplicateVerdict)) {
        request.ingest_done(*std::move(result));
        continue;
      }
      waiter.index = last;
      waiter.result = *std::move(result);
      waiter.ingest_done = std::move(request.ingest_done);
      waiters_[partition].push_back(std::move(waiter));
      continue;
    }
    waiter.index = index;
    waiter.mode = request.mode;
    waiter.events = request.events.size();
    pending_events_ += waiter.events;
    if (request.mode == IngestMode::kAsync) {
      request.ingest_done(*result);  // The ASYNC acknowledgement point.
    } else {
      waiter.result = *std::move(result);
      waiter.ingest_done = std::move(request.ingest_done);
    }
    waiters_[partition].push_back(std::move(waiter));
  }
  if (index != 0) RequestSync();
}

void ReplicatedEngine::AcceptEntry(uint32_t partition, Parked request) {
  Part& part = parts_[partition];
  const uint64_t index = store_->last_index(partition) + 1;
  const absl::Status appended = store_->Append(partition, index, part.epoch, request.entry);
  if (!appended.ok()) {
    request.status_done(
        absl::ResourceExhaustedError(absl::StrCat("log full: ", appended.message())));
    return;
  }
  Waiter waiter;
  waiter.partition = partition;
  waiter.index = index;
  waiter.epoch = part.epoch;
  waiter.status_done = std::move(request.status_done);
  waiter.schema_change = request.schema_change;
  if (request.schema_change) ++part.schema_changes_in_flight;
  waiters_[partition].push_back(std::move(waiter));
  RequestSync();
}

void ReplicatedEngine::RunParked(uint32_t partition) {
  Part& part = parts_[partition];
  std::deque<Parked> parked = std::move(part.parked);
  part.parked.clear();
  for (Parked& request : parked) Dispatch(partition, std::move(request));
  std::deque<std::pair<ReadFunction, int64_t>> reads = std::move(part.unrouted_reads);
  part.unrouted_reads.clear();
  for (auto& [read, deadline_ns] : reads) RouteRead(partition, std::move(read), deadline_ns);
}

void ReplicatedEngine::AddForward(NodeId target, ForwardItem item) {
  Outbox& box = outboxes_[Position(target)];
  box.forward_bytes += 64;
  for (const metering::Event& event : item.events) {
    box.forward_bytes += 64 + event.metric_code.size() + 2 * 64 * event.properties.size();
  }
  box.forward.items.push_back(std::move(item));
  if (box.forward_bytes >= options_.message_bytes_max) {
    Send(target, std::exchange(box.forward, {}));
    box.forward_bytes = 0;
  }
  ScheduleFlush();
}

void ReplicatedEngine::HandleForward(NodeId source, const Forward& forward) {
  const int position = Position(source);
  for (const ForwardItem& item : forward.items) {
    if (!forwards_seen_[position].Accept(item.request_id) &&
        !BugPlanted(PlantedBug::kForwardHandledTwice)) {
      ++counters_.forwards_replayed;
      continue;  // The first copy's answer is the one that counts.
    }
    Parked request;
    request.forwarded = true;
    request.mode = item.sync ? IngestMode::kSync : IngestMode::kAsync;
    request.deadline_ns = env_.MonotonicNowNs() + options_.request_timeout_ns;
    const uint64_t id = item.request_id;
    if (item.kind == ForwardKind::kEntry) {
      request.entry = item.entry;
      request.schema_change = IsSchemaChange(*item.entry);
      request.status_done = [this, position, id](absl::Status status) {
        outboxes_[position].forward_reply.items.push_back(
            ForwardReplyItem{id, std::move(status), {}});
        ScheduleFlush();
      };
    } else {
      request.events = item.events;
      request.ingest_done = [this, position, id](absl::StatusOr<metering::IngestResult> result) {
        ForwardReplyItem reply;
        reply.request_id = id;
        if (result.ok()) {
          reply.result = *std::move(result);
        } else {
          reply.status = result.status();
        }
        outboxes_[position].forward_reply.items.push_back(std::move(reply));
        ScheduleFlush();
      };
    }
    Dispatch(item.partition, std::move(request));
  }
}

void ReplicatedEngine::HandleForwardReply(const ForwardReply& reply) {
  for (const ForwardReplyItem& item : reply.items) {
    auto it = remote_.find(item.request_id);
    if (it == remote_.end()) continue;  // Timed out already.
    Remote remote = std::move(it->second);
    remote_.erase(it);
    if (remote.ingest_done) {
      if (item.status.ok()) {
        remote.ingest_done(item.result);
      } else {
        remote.ingest_done(item.status);
      }
    } else if (remote.status_done) {
      remote.status_done(item.status);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Reads.

void ReplicatedEngine::Read(uint32_t partition, ReadFunction read) {
  UM_CHECK_LT(partition, kPartitionCount);
  RouteRead(partition, std::move(read), env_.MonotonicNowNs() + options_.request_timeout_ns);
  ScheduleFlush();
}

void ReplicatedEngine::RouteRead(uint32_t partition, ReadFunction read, int64_t deadline_ns) {
  if (serving(partition)) {
    ReadWait wait;
    wait.read = std::move(read);
    wait.deadline_ns = deadline_ns;
    ConfirmAsOwner(partition, std::move(wait));
    return;
  }
  const NodeId owner = map_.owner[partition];
  if (owner != kNoOwner && owner != env_.node_id() && ready() && Reachable(owner)) {
    // Ask the owner for its confirmed commit index, then answer from this replica once it
    // has applied that far.
    const uint64_t id = next_request_id_++;
    Remote remote;
    remote.partition = partition;
    remote.target = owner;
    remote.read = std::move(read);
    remote.deadline_ns = deadline_ns;
    remote_.emplace(id, std::move(remote));
    outboxes_[Position(owner)].read_index.items.push_back(ReadIndexItem{id, partition});
    ScheduleFlush();
    return;
  }
  parts_[partition].unrouted_reads.emplace_back(std::move(read), deadline_ns);
}

void ReplicatedEngine::HandleReadIndex(NodeId source, const ReadIndex& request) {
  const int position = Position(source);
  for (const ReadIndexItem& item : request.items) {
    const uint64_t id = item.request_id;
    if (!serving(item.partition)) {
      outboxes_[position].read_index_reply.items.push_back(
          ReadIndexReplyItem{id, absl::UnavailableError("not the serving owner"), 0});
      continue;
    }
    ReadWait wait;
    wait.deadline_ns = env_.MonotonicNowNs() + options_.request_timeout_ns;
    wait.confirm = [this, position, id](absl::StatusOr<uint64_t> commit) {
      outboxes_[position].read_index_reply.items.push_back(
          ReadIndexReplyItem{id, commit.status(), commit.ok() ? *commit : 0});
      ScheduleFlush();
    };
    ConfirmAsOwner(item.partition, std::move(wait));
  }
}

void ReplicatedEngine::HandleReadIndexReply(const ReadIndexReply& reply) {
  for (const ReadIndexReplyItem& item : reply.items) {
    auto it = remote_.find(item.request_id);
    if (it == remote_.end() || !it->second.read) continue;
    Remote remote = std::move(it->second);
    remote_.erase(it);
    if (!item.status.ok()) {
      remote.read(item.status);
      continue;
    }
    ReadWait wait;
    wait.index = BugPlanted(PlantedBug::kReplicaReadsOwnState) ? 0 : item.commit_index;
    wait.read = std::move(remote.read);
    wait.deadline_ns = remote.deadline_ns;
    parts_[remote.partition].replica_reads.push_back(std::move(wait));
    CheckReads(remote.partition);
  }
}

// ---------------------------------------------------------------------------------------
// Housekeeping.

bool ReplicatedEngine::Reachable(NodeId node) const {
  const int position = Position(node);
  return position >= 0 &&
         env_.MonotonicNowNs() - last_heard_ns_[position] < options_.election_timeout_ns;
}

uint32_t ReplicatedEngine::SyncingMembers() const {
  uint32_t syncing = state_ == NodeState::kSyncing ? 1 : 0;
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] != env_.node_id() && Reachable(members_[position]) &&
        peer_header_[position].state == NodeState::kSyncing) {
      ++syncing;
    }
  }
  return syncing;
}

std::vector<ReplicatedEngine::Remote> ReplicatedEngine::TakeRemotes(
    absl::FunctionRef<bool(const Remote&)> selected) {
  std::vector<Remote> taken;
  for (auto it = remote_.begin(); it != remote_.end();) {
    if (!selected(it->second)) {
      ++it;
      continue;
    }
    taken.push_back(std::move(it->second));
    it = remote_.erase(it);
  }
  return taken;
}

void ReplicatedEngine::FailRemotes(absl::FunctionRef<bool(const Remote&)> selected,
                                   const absl::Status& unknown) {
  std::vector<Remote> lost = TakeRemotes(selected);
  for (Remote& remote : lost) {
    FailRequest(remote, unknown);
    if (remote.read) RouteRead(remote.partition, std::move(remote.read), remote.deadline_ns);
  }
}

void ReplicatedEngine::ScheduleFlush() {
  if (flush_timer_ != kNoTimer) return;
  flush_timer_ = env_.StartTimer(0, [this] {
    flush_timer_ = kNoTimer;
    FlushOutboxes();
    FlushPeers();
  });
}

void ReplicatedEngine::ScheduleAccept() {
  if (accept_timer_ != kNoTimer) return;
  accept_timer_ = env_.StartTimer(options_.accept_delay_ns, [this] {
    accept_timer_ = kNoTimer;
    AcceptStaged();
    FlushOutboxes();  // Answers to forwarded parts refused at once.
    FlushPeers();
  });
}

void ReplicatedEngine::SweepTimeouts() {
  sweep_timer_ = kNoTimer;
  const int64_t now_ns = env_.MonotonicNowNs();
  const absl::Status unknown = absl::DeadlineExceededError(
      "the owner did not answer in time; the outcome is unknown: retry with the same ids");
  std::vector<Remote> expired =
      TakeRemotes([now_ns](const Remote& remote) { return remote.deadline_ns <= now_ns; });
  for (Remote& remote : expired) {
    FailRequest(remote, unknown);
    if (remote.read) remote.read(absl::DeadlineExceededError("the owner did not answer"));
  }
  std::string problem;  // Why nobody serves a partition: computed once, when needed.
  uint32_t refused_partitions = 0;
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    Part& part = parts_[partition];
    const bool expired =
        (!part.parked.empty() && part.parked.front().deadline_ns <= now_ns) ||
        (!part.unrouted_reads.empty() && part.unrouted_reads.front().second <= now_ns);
    if (expired && problem.empty()) problem = status().problem;
    refused_partitions += expired ? 1 : 0;
    const absl::Status no_owner = absl::UnavailableError(
        expired ? absl::StrCat("no owner serves partition ", partition, " (", problem, ")") : "");
    while (!part.parked.empty() && part.parked.front().deadline_ns <= now_ns) {
      Parked request = std::move(part.parked.front());
      part.parked.pop_front();
      FailRequest(request, no_owner);
    }
    while (!part.unrouted_reads.empty() && part.unrouted_reads.front().second <= now_ns) {
      ReadFunction read = std::move(part.unrouted_reads.front().first);
      part.unrouted_reads.pop_front();
      read(no_owner);
    }
    for (std::deque<ReadWait>* reads : {&part.owner_reads, &part.replica_reads}) {
      while (!reads->empty() && reads->front().deadline_ns <= now_ns) {
        ReadWait wait = std::move(reads->front());
        reads->pop_front();
        const absl::Status late = absl::DeadlineExceededError("read not confirmed in time");
        if (wait.read) wait.read(late);
        if (wait.confirm) wait.confirm(late);
      }
    }
    if ((part.role == PartRole::kStarting || part.role == PartRole::kFetching) &&
        now_ns >= part.start_deadline_ns && map_.owner[partition] == env_.node_id()) {
      BeginEpoch(partition, part.epoch);  // Retry: promises again, maybe another source.
    }
  }
  if (refused_partitions > 0 && now_ns - refusal_logged_ns_ >= kRefusalLogIntervalNs) {
    refusal_logged_ns_ = now_ns;  // At most one line per interval while refusing.
    env_.Log(absl::StrCat("replication: refusing requests of ", refused_partitions,
                          " partitions that no owner serves: ", problem));
  }
  {
    // Announce ourselves every tick: new members bootstrap from it, leaders see us, and
    // every node knows which owners are reachable even when no data flows.
    for (NodeId member : members_) {
      if (member != env_.node_id()) Send(member, CommitReport(/*hello=*/true, member));
    }
    MaybeBootstrap();
  }
  SyncRegistry();
  CopyAlerts();     // Again after a failed copy, or once this node serves a partition.
  MaybeActivate();  // A resync waiting for a checkpoint to end, or for a commit.
  FlushOutboxes();
  FlushPeers();
  sweep_timer_ = env_.StartTimer(options_.heartbeat_interval_ns, [this] { SweepTimeouts(); });
}

}  // namespace unimeter::replication
