// node/replication/replicated_engine.h
//
// ReplicatedEngine is the Engine of a cluster node (docs/replication.md): every partition
// is replicated to every member, one owner per partition appends entries in its epoch and
// commits them once a quorum of active members holds them durably.
//
// Three layers, all on the node's Env:
//   - the configuration group: Raft-style election of a leader among active members
//     (PreVote, CheckQuorum, term and vote persisted before they are told). The leader's
//     heartbeats carry the partition map (owner and epoch per partition). Epochs are
//     (term << 32 | sequence), so a new leader's epochs exceed every earlier one, and it
//     issues new epochs for every partition when it takes office.
//   - partition epochs: an owner collects durable promises from a quorum, adopts the most
//     advanced log among them (fetching what it lacks), appends an EpochStart entry and
//     serves once that entry commits (which commits everything before it).
//   - the data path: appends batched per peer (one message per node pair carrying many
//     partitions, the next one sent as soon as the previous is acknowledged), one fsync per
//     group commit, catch-up by log streaming or a snapshot when the log was recycled.
//
// Incarnations: a node whose data directory is new is "fresh". Fresh members of a cluster
// whose members are all fresh bootstrap it together; a fresh node that hears of a formed
// cluster resyncs every partition and only then becomes active: before that it votes in
// nothing, its promises and acknowledgements count toward no quorum and it owns nothing.
//
// Requests for partitions this node does not own are forwarded to the owner; reads run
// on the owner after a quorum round confirms its epoch (or at once while a quorum's read
// leases from such a round last), or on a replica once it has applied the owner's confirmed
// commit index (reads never go back in time).
//
// Event-loop only; every callback runs later on the loop.
#ifndef UNIMETER_NODE_REPLICATION_REPLICATED_ENGINE_H_
#define UNIMETER_NODE_REPLICATION_REPLICATED_ENGINE_H_

#include <algorithm>
#include <array>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "node/env/env.h"
#include "node/replication/messages.h"
#include "node/replication/meta_history.h"
#include "node/replication/replay_window.h"
#include "node/replication/replica_meta.h"
#include "node/server/engine.h"
#include "node/server/engine_support.h"
#include "node/server/local_engine.h"
#include "node/store/node_store.h"

namespace unimeter::replication {

// "Long ago" for monotonic timestamps: far enough back that `now - kLongAgoNs` exceeds
// every timeout, near enough that the subtraction cannot overflow.
inline constexpr int64_t kLongAgoNs = INT64_MIN / 4;

// One step of this node's part in elections and ownership, as the simulator's ownership
// tracker sees it (docs/simulation.md: S5, S11, S13). Reported when the step is taken
// towards other nodes: votes and promises once their replica.meta write is durable (just
// before the candidate or owner hears of them).
struct OwnershipEvent {
  enum class Kind : uint8_t {
    kVoted,     // `term`: voted for `candidate` (this node included).
    kLeader,    // `term`: became the configuration group's leader.
    kPromised,  // `partition`, `epoch`: promised the epoch (to itself or another owner).
    kOwner,     // `partition`, `epoch`: appended the epoch's start entry as its owner.
    kAccepted,  // `partition`, `epoch`: stored and acknowledged appends of the epoch's owner.
    kMap,       // `term`, `map_version`, `map_digest`: acted on this partition map.
    // At start-up, what replica.meta restored: the term and vote (`term`, `candidate`) ...
    kRestoredVote,
    // ... and, once per partition, the promised epoch (`partition`, `epoch`).
    kRestoredPromise,
    // At start-up, once replica.meta's first write is durable: the data directory's
    // incarnation (`incarnation`; a fresh directory's is drawn at its first start).
    kIncarnation,
  };
  Kind kind = Kind::kVoted;
  uint64_t term = 0;
  NodeId candidate = kNoVote;
  uint32_t partition = 0;
  uint64_t epoch = 0;
  uint64_t map_version = 0;
  uint64_t map_digest = 0;  // Over every partition's owner and epoch.
  uint64_t incarnation = 0;
};

struct ReplicatedEngineOptions {
  LocalEngineOptions local;     // Store, pending bound and checkpoint policy.
  std::vector<NodeId> members;  // Every member's id, this node included.
  int64_t heartbeat_interval_ns = 100'000'000;
  int64_t election_timeout_ns = 1'000'000'000;  // Randomised in [1x, 2x).
  int64_t retransmit_ns = 200'000'000;
  int64_t epoch_start_timeout_ns = 1'000'000'000;
  int64_t rebalance_settle_ns = 3'000'000'000;
  int64_t request_timeout_ns = 5'000'000'000;
  size_t message_bytes_max = 2 * 1024 * 1024;
  size_t entries_per_item_max = 1024;
  size_t snapshot_chunk_bytes = 1024 * 1024;
  size_t rebalance_moves_per_tick = 16;
  // Read leases (docs/replication.md, "Read leases"): a replica that confirms an owner's
  // epoch in a confirm round grants it a lease this long, by the replica's clock from when
  // it answered, during which it tells no promise of another epoch of that partition. The
  // owner answers reads at once while a quorum's leases last, counted from when it sent the
  // round and shortened by 1/kLeaseClockMarginDivisor for clock-rate error. A process tells
  // no promise for this long after it starts (its previous process may have granted
  // leases). Every member must use the same value; 0: no leases (every read waits for a
  // round).
  int64_t read_lease_ns = 500'000'000;
  // How long an owner stages ingest parts before it accepts them together as one entry per
  // partition. 0 (production): the end of the loop turn, which is long enough on a busy
  // node. The simulator draws longer ones, where one request arrives per turn.
  int64_t accept_delay_ns = 0;
  // For checkers only (the simulator's ownership tracker); empty otherwise.
  std::function<void(const OwnershipEvent&)> ownership_observer;
};

// What /health, CLUSTER_STATUS and /metrics report.
struct ReplicationStatus {
  NodeState incarnation = NodeState::kFresh;
  // False while a restarted active node waits for its peers to confirm its data directory
  // is not older than what they heard from it (meta_history.h); it then acts on nothing.
  bool directory_confirmed = true;
  uint64_t term = 0;
  NodeId leader = kNoVote;
  bool is_leader = false;
  uint64_t map_version = 0;
  uint32_t owned_partitions = 0;
  uint32_t serving_partitions = 0;  // Owned, epoch committed, and a quorum reachable.
  uint32_t reachable_members = 0;   // Members heard from within the election timeout.
  uint64_t epoch_changes = 0;
  uint64_t term_changes = 0;
  uint64_t snapshots_sent = 0;
  // Paced transfers: chunks sent again (silence past the resend time, or a gap reported).
  uint64_t snapshot_chunks_resent = 0;
  uint64_t snapshots_installed = 0;
  uint64_t appends_refused_low_disk = 0;  // Items with entries not stored: free disk low.
  uint64_t forwarded = 0;
  uint64_t messages_dropped = 0;       // Undecodable or from another major version.
  uint64_t forwards_replayed = 0;      // Forward items dropped as later copies (replay_window.h).
  uint64_t reads_leased = 0;           // Owner reads answered under a read lease, without a round.
  uint64_t ingest_parts_combined = 0;  // Ingest parts accepted as owner into an entry with others.
  // Partitions in which a peer came back holding fewer entries than it had acknowledged as
  // durable (its disk lost synced writes: an old backup, a disk that ignores syncs).
  uint64_t peers_lost_acknowledged = 0;
  // Times this node found its data directory older than what its peers heard from it
  // (meta_history.h) and resynced as a new incarnation.
  uint64_t directories_went_back = 0;
  // Messages held while this process waited for its directory to be confirmed current
  // (promises asked, appends, snapshot chunks): handled once it is, or dropped beyond
  // the bound or when it went back (their senders send them again).
  uint64_t messages_held_back = 0;
  uint64_t reads_confirmed = 0;  // Owner reads answered after a confirm round or acks.
  // Registry changes proposed again to partitions that lacked them (SyncRegistry).
  uint64_t registry_changes_resent = 0;
  // Alert records whose copies committed (LogEntry AlertCopies), and records of this
  // node's alert log restored from its peers' copies after its disk was replaced.
  uint64_t alerts_copied = 0;
  uint64_t alerts_restored = 0;
  // Damaged stored alert records a listing answered from their copies instead.
  uint64_t alert_records_repaired = 0;
  std::string problem;  // Empty when healthy; else why this node cannot serve.
};

class ReplicatedEngine final : public Engine {
 public:
  static absl::StatusOr<std::unique_ptr<ReplicatedEngine>> Open(Env& env,
                                                                ReplicatedEngineOptions options,
                                                                EngineMetrics metrics);
  ~ReplicatedEngine() override;

  void Ingest(uint32_t partition, std::vector<metering::Event> events, IngestMode mode,
              IngestDone done) override;
  void Read(uint32_t partition, ReadFunction read) override;
  void PutMetric(metering::MetricSchema schema, StatusDone done) override;
  void DeleteMetric(std::string code, StatusDone done) override;
  absl::StatusOr<std::vector<StoredEvent>> ListEvents(uint64_t account_id, int64_t since_ns,
                                                      int64_t until_ns, size_t limit,
                                                      uint64_t first_offset) const override;
  absl::StatusOr<std::vector<AlertRecord>> ListAlerts(uint64_t account_id, uint64_t since_offset,
                                                      size_t limit) const override;
  size_t alerts_unreleased() const override { return alerts_.unreleased(); }
  void SetAlertsDurable(AlertsDurable on_durable) override {
    on_alerts_durable_ = std::move(on_durable);
  }
  void SweepRetention(int64_t cutoff_ns, StatusDone done) override;
  // While set, also refuses replicated entries and tells the leader (HeartbeatAck), which
  // moves this node's partitions to members that take writes; requests for partitions it
  // does not own are still forwarded to their owners.
  void SetWritesBlocked(bool blocked) override;
  uint32_t node_count() const override { return static_cast<uint32_t>(members_.size()); }
  NodeId owner(uint32_t partition) const override;
  bool ready() const override;
  const NodeStore& store() const override { return *store_; }

  void Checkpoint(StatusDone done) override { store_->Checkpoint(std::move(done)); }
  ReplicationStatus status() const;
  uint64_t epoch(uint32_t partition) const { return map_.epoch[partition]; }
  // Changes whenever this node adopts a new partition map (ownership may have moved).
  uint64_t map_version() const { return map_.map_version * 1'000'003 + map_.term; }
  // True if this node owns `partition` and its epoch has committed (it serves it).
  bool serving(uint32_t partition) const;

 private:
  enum class Role : uint8_t { kFollower, kCandidate, kLeader };
  enum class PartRole : uint8_t { kReplica, kStarting, kFetching, kOwner };

  struct PeerProgress {
    uint64_t next_index = 1;
    uint64_t match_index = 0;
    uint64_t sent_commit = 0;
    uint64_t acked_sequence = 0;            // Newest message whose item was accepted in this epoch.
    int64_t snapshot_sent_ns = kLongAgoNs;  // At most one per kSnapshotPeriods retransmits,
    uint64_t snapshot_sent_bytes = 0;       // unless the last one was small (SnapshotDue).
    int64_t entries_sent_ns = kLongAgoNs;   // Last send of entries not yet acknowledged.
    bool acked = false;                     // Has answered an item of this epoch.
    bool probe = false;            // The next message carries an item (a read confirmation round).
    uint64_t confirmed_round = 0;  // Newest confirm round the peer answered "still promised".
    int64_t lease_until_ns = kLongAgoNs;  // The peer's read lease on this epoch ends (our clock).
    // Where a resend starts while entries are unacknowledged: the epoch's first index, or the
    // index a mismatch answer pointed at. Resending from match_index + 1 alone would go back to
    // index 1 in a new epoch (nothing acknowledged yet), below a compacted log, and turn
    // every timeout into a snapshot transfer.
    uint64_t resend_index = 1;
    uint64_t ResendIndex() const { return std::max(match_index + 1, resend_index); }
    // The peer process (boot id) that acknowledged match_index: a later process that holds
    // less lost entries it had made durable (NoteLostAcknowledged).
    uint64_t match_boot_id = 0;
  };
  struct Waiter {
    uint32_t partition = 0;
    uint64_t index = 0;
    uint64_t epoch = 0;
    IngestMode mode = IngestMode::kSync;
    metering::IngestResult result;
    IngestDone ingest_done;
    StatusDone status_done;
    size_t events = 0;
    bool schema_change = false;
  };
  struct Parked {  // A request waiting for an owner to serve.
    std::vector<metering::Event> events;
    std::shared_ptr<const metering::LogEntry> entry;  // Set for entries.
    bool schema_change = false;
    IngestMode mode = IngestMode::kSync;
    bool forwarded = false;  // Came from another node: never forwarded again.
    IngestDone ingest_done;
    StatusDone status_done;
    int64_t deadline_ns = 0;
  };
  struct ReadWait {
    uint64_t sequence = 0;  // Owner: confirmed by acks of messages at or after this,
    uint64_t round = 0;     // or by answers to confirm rounds at or after this.
    uint64_t index = 0;     // Replica: answer once applied up to here.
    bool confirmed = false;
    ReadFunction read;
    absl::AnyInvocable<void(absl::StatusOr<uint64_t>)> confirm;  // Owner side of ReadIndex.
    int64_t deadline_ns = 0;
  };
  // A snapshot being sent to a peer of minor version 3 or later: the encoded state stays
  // fixed until the receiver holds all of it, so a lost chunk costs one chunk, not a new
  // transfer of a state that has meanwhile moved on.
  struct SnapshotOut {
    std::shared_ptr<const std::vector<uint8_t>> bytes;
    uint64_t epoch = 0;
    uint64_t index = 0;
    uint64_t entry_epoch = 0;
    bool fetch_reply = false;
    uint64_t acked_bytes = 0;  // The receiver holds this prefix.
    uint64_t sent_bytes = 0;   // Sent up to here (since the last resend from acked_bytes).
    uint64_t resent_at_bytes = UINT64_MAX;  // Last resend on a repeated acknowledgement.
    int64_t resend_after_ns = 0;  // Silence before a resend: doubles per resend, reset by progress.
    int64_t progress_ns = 0;      // Started, or acked_bytes last grew.
    int64_t sent_ns = 0;          // Last chunk sent.
  };
  struct SnapshotIn {
    uint64_t epoch = 0;
    uint64_t index = 0;
    uint64_t entry_epoch = 0;
    bool fetch_reply = false;
    NodeId source = 0;
    std::vector<uint8_t> bytes;
    uint64_t total_bytes = 0;
  };
  struct Part {
    PartRole role = PartRole::kReplica;
    uint64_t epoch = 0;        // The epoch this node runs as owner (role != kReplica).
    uint64_t begun_epoch = 0;  // The highest epoch begun by this process.
    bool self_promised = false;
    absl::btree_map<NodeId, PromiseItem> promises;
    int64_t start_deadline_ns = 0;
    NodeId fetch_from = 0;
    uint64_t fetch_target = 0;
    uint64_t start_index = 0;
    bool serving = false;
    std::vector<PeerProgress> peers;  // By member position.
    bool read_probe = false;
    std::deque<ReadWait> owner_reads;
    std::deque<ReadWait> replica_reads;
    std::deque<Parked> parked;
    // Ingest parts this owner accepts together at the end of the loop turn (AcceptStaged).
    std::vector<Parked> staged;
    std::deque<std::pair<ReadFunction, int64_t>> unrouted_reads;  // (read, deadline).
    int schema_changes_in_flight = 0;
    bool installing = false;
    std::unique_ptr<SnapshotIn> snapshot_in;
    uint64_t durable_index = 0;
    uint64_t sync_floor = UINT64_MAX;   // Lowest truncation since the running sync began.
    bool synced = false;                // Syncing node: caught up with the owner.
    uint64_t sync_target = UINT64_MAX;  // Owner's commit index to reach for `synced`.
    uint64_t owner_epoch = 0;           // Syncing node: the highest epoch appended to it.
  };
  struct Outbox {  // Small messages to one peer, sent together once per loop turn.
    StartEpoch start_epoch;
    Promise promise;
    AppendAck acks;
    Fetch fetch;
    Forward forward;
    size_t forward_bytes = 0;
    ForwardReply forward_reply;
    ReadIndex read_index;
    ReadIndexReply read_index_reply;
    SnapshotAck snapshot_acks;
  };
  struct PendingAck {
    NodeId target = 0;
    uint64_t sequence = 0;  // Of the Append it answers.
    AckItem item;
  };
  // Read leases this node granted as a replica, for one partition: the newest epoch granted
  // and until when (own clock), and until when grants of older epochs (and those the
  // previous process may have made) last.
  struct LeaseGrant {
    uint64_t epoch = 0;
    int64_t until_ns = kLongAgoNs;
    int64_t older_until_ns = kLongAgoNs;
  };
  // A durable promise not told yet: a lease of another epoch still holds it back.
  struct HeldPromise {
    NodeId owner = 0;  // This node: its own promise as a starting owner.
    uint32_t partition = 0;
    uint64_t epoch = 0;
  };
  struct Remote {  // A request forwarded to another node.
    uint32_t partition = 0;
    NodeId target = 0;
    IngestDone ingest_done;
    StatusDone status_done;
    ReadFunction read;
    int64_t deadline_ns = 0;
  };

  ReplicatedEngine(Env& env, ReplicatedEngineOptions options, EngineMetrics metrics,
                   std::unique_ptr<NodeStore> store, std::unique_ptr<MetaFile> meta, bool fresh);
  void Start();

  // ---- Messages ----
  void OnMessage(NodeId source, absl::Span<const uint8_t> bytes);
  // Sends `message` to `target`. Callers move message bodies in: a body passed as an
  // lvalue is copied into the Message variant first (a whole Append with its entries).
  void Send(NodeId target, const Message& message);
  void FlushOutboxes();
  int Position(NodeId node) const;  // -1 if not a member.
  bool CountsForQuorum(NodeId node) const;
  // The number of members that make a majority (quorum_; a planted bug may change it).
  size_t QuorumSize() const;

  // ---- Configuration group (replicated_engine_config.cc) ----
  void ResetElectionTimer();
  void OnElectionTimeout();
  void StartElection(bool pre_vote);
  void BecomeFollower(uint64_t term, NodeId leader);
  void BecomeLeader();
  void LeaderTick();
  void AssignOwners(bool new_term);
  void HandleHeartbeat(NodeId source, const Heartbeat& heartbeat);
  void HandleHeartbeatAck(NodeId source, const HeartbeatAck& ack);
  // This node's term, commit indexes and replica.meta sequences, as a heartbeat answer or
  // (`hello`) an announcement to `target`, with what this node recorded of its processes.
  HeartbeatAck CommitReport(bool hello, NodeId target) const;
  // Records the meta sequences a member announced and judges its echo of this process's:
  // confirms the directory once a quorum (this node included) echoed it, or resyncs.
  void NoteMetaHistory(size_t position, const HeartbeatAck& ack);
  // At start: the records of peers' announcements the last checkpoint kept, and from
  // now on every checkpoint keeps them (EncodedPeerRecords).
  void LoadPeerRecords();
  std::string EncodedPeerRecords() const;
  // A peer heard of replica.meta writes of this directory that it lacks: the directory went
  // back in time. Gives up every role and resyncs from peers as a new incarnation.
  void DirectoryWentBack(NodeId peer, const MetaEcho& echo);
  // Until a quorum confirmed this process's directory current (meta_history.h), an active
  // node votes in nothing, promises nothing and takes no entries: these messages wait in
  // held_ (up to kHeldMessagesMax / kHeldBytesMax; later ones are dropped) and are handled
  // once it is confirmed, as if the network had delayed them.
  bool HeldUntilConfirmed(const Message& message) const;
  void Hold(NodeId source, absl::Span<const uint8_t> bytes);
  void HandleHeld();
  // Leader: the member at `position` answered a heartbeat sent within the election timeout.
  bool Answering(size_t position, int64_t now_ns) const;
  void HandleVoteRequest(NodeId source, const VoteRequest& request);
  void HandleVoteReply(NodeId source, const VoteReply& reply);
  void ApplyMap(const Heartbeat& map);
  void MaybeBootstrap();
  void MaybeActivate();

  // ---- Partition epochs and the data path (replicated_engine_partition.cc) ----
  void BeginEpoch(uint32_t partition, uint64_t epoch);
  void StepDown(uint32_t partition, absl::string_view reason);
  void HandleStartEpoch(NodeId source, const StartEpoch& request);
  void HandlePromise(NodeId source, const Promise& promise);
  void MaybeFinishPromises(uint32_t partition);
  void EstablishEpoch(uint32_t partition);
  // A starting owner's log reached `reached` of the most advanced log: fetch the rest from
  // the same source, or (all there) drop our own suffix beyond it and establish the epoch.
  void ContinueFetch(uint32_t partition, int source_position, uint64_t reached);
  void HandleFetch(NodeId source, const Fetch& fetch);
  void HandleAppend(NodeId source, const Append& append);
  // Applies an item's entries to the local log; returns the ack to send.
  AckItem ApplyItem(const AppendItem& item);
  void HandleAppendAck(NodeId source, const AppendAck& ack);
  void HandleSnapshotChunk(NodeId source, const SnapshotChunk& chunk);
  // Tells the sender of `chunk` (minor version 3 or later) that the snapshot it belongs to is
  // held up to `received_bytes`.
  void AckSnapshotChunk(NodeId source, const SnapshotChunk& chunk, uint64_t received_bytes);
  void HandleSnapshotAck(NodeId source, const SnapshotAck& ack);
  // Sends the partition's state at its commit index and records when and how big in `peer`
  // (the pacing SnapshotDue reads). To a peer of minor version 3 or later, a transfer paced
  // by its acknowledgements (SnapshotOut); to an older one, every chunk at once. False if
  // the peer already has kSnapshotTransfersMax transfers running (nothing sent).
  bool SendSnapshot(uint32_t partition, NodeId target, uint64_t epoch, bool fetch_reply,
                    PeerProgress& peer, int64_t now_ns);
  // Sends a running transfer's chunks past what was sent, up to kSnapshotWindowChunks
  // beyond what the receiver acknowledged.
  // Returns how many chunks it sent.
  size_t SendSnapshotChunks(size_t position, uint32_t partition, SnapshotOut& out, int64_t now_ns);
  // Sends the chunk of `out` that starts at `offset`; returns where the next one starts.
  uint64_t SendSnapshotChunk(NodeId target, uint32_t partition, const SnapshotOut& out,
                             uint64_t offset);
  // Whether a paced transfer of this kind runs to `position` (callers then start none).
  bool SnapshotRunning(size_t position, uint32_t partition, uint64_t epoch, bool fetch_reply) const;
  // Resends chunks of `position`'s transfers that went unacknowledged for a retransmit
  // period, from the acknowledged prefix, and drops transfers that made no progress for
  // kSnapshotPeriods or whose epoch ended.
  void PumpSnapshots(size_t position, int64_t now_ns);
  bool SnapshotTransferValid(uint32_t partition, const SnapshotOut& out) const;
  // A snapshot is complete at its receiver: acknowledge it (a replica) or go on fetching
  // (a starting owner).
  void FinishSnapshot(uint32_t partition, NodeId source, uint64_t index, uint64_t epoch,
                      bool fetch_reply);
  // Whether `peer` may be sent this partition's snapshot again (see kSnapshotPeriods).
  bool SnapshotDue(const PeerProgress& peer, int64_t now_ns) const;
  void FlushPeers();
  void AdvanceCommit(uint32_t partition);
  // A restarted peer answered that it holds `partition` only up to `held_index`, below what
  // its previous process acknowledged as durable in this epoch: counts it, tells the
  // operator, and sends the entries again from where it is.
  void NoteLostAcknowledged(NodeId peer_id, uint32_t partition, uint64_t held_index);
  // A new owner's duty once serving: records the partition's unconfirmed crossings that
  // this node's alert log lacks and notes them for confirmation.
  void RecordUnconfirmedAlerts(uint32_t partition);
  // Appends AlertsRecorded for each served partition whose recorded crossings are released.
  void ConfirmRecordedAlerts();
  // Appends the next copy of durable alert records (LogEntry AlertCopies) to a partition
  // this node serves, if none is in flight; its commit releases them. While some peer
  // is of a minor version before kAlertCopiesMinor, records are released uncopied.
  void CopyAlerts();
  // A syncing node: once every partition committed an entry of its present owner's epoch
  // (then no entry of this directory's previous incarnation is still undecided), restores
  // the alert log from the copies in all partitions, then activates.
  bool AlertCopiesSettled() const;
  // At start: this node's records that no committed copy known here holds (a crash may
  // have come between their sync and their copy's commit) are copied before they are
  // listed again; copying one twice is harmless.
  void ResetAlertCopies();
  // Over this node's replicas of all partitions: the offset after its highest copied
  // record (0 if none), and the copy of its record at `offset`.
  uint64_t AlertCopyEnd() const;
  std::optional<metering::AlertCrossing> FindAlertCopy(uint64_t offset) const;
  void RestoreAlertLog();
  void Activate();  // Syncing -> active, persisted.
  // The partition is known committed up to `index`: applied slice by slice (RunCommitSlice)
  // so that the commits one message brings do not hold the event loop for milliseconds.
  void CommitUpTo(uint32_t partition, uint64_t index);
  // Known committed: the applied commit index or the pending target, whichever is higher
  // (capped at the log's end: a snapshot install may have dropped the entries after it).
  uint64_t Committed(uint32_t partition) const;
  void QueueCommit(uint32_t partition);
  void ScheduleCommitSlice();  // A zero-delay timer for RunCommitSlice, unless one is set.
  // Applies queued commits until about options_.local.commit_events_per_slice entries and
  // events are applied (more when behind: kCommitBehindNs), then yields to the loop (a
  // zero-delay timer) if any remain.
  void RunCommitSlice();
  // Applies up to `index` and does what follows a commit: serving, waiters, reads.
  void ApplyCommitted(uint32_t partition, uint64_t index);
  void CheckReads(uint32_t partition);
  void Truncate(uint32_t partition, uint64_t index);

  // ---- Requests (replicated_engine_requests.cc) ----
  void Dispatch(uint32_t partition, Parked request);
  // Stages an ingest part for AcceptStaged, or refuses it at once (BACKPRESSURE).
  void AcceptIngest(uint32_t partition, Parked request);
  // Accepts every staged part: the parts one partition got in a loop turn become one log
  // entry (AcceptParts; up to an entry's bounds), so a busy owner pays the per-entry costs
  // of the log, replication and apply once for many requests. Runs from accept_timer_
  // (the end of the turn, or options.accept_delay_ns later), before a flush to the peers.
  void AcceptStaged();
  // Accepts parts [begin, end) of `requests` of a served partition as one entry.
  void AcceptTogether(uint32_t partition, std::vector<Parked>& requests, size_t begin, size_t end);
  void AcceptEntry(uint32_t partition, Parked request);
  // The version of the next registry change if this node is the registry leader (serves
  // partition 0); else a RedirectStatus naming partition 0's owner, or Unavailable.
  absl::StatusOr<metering::RegistryVersion> NextRegistryVersion();
  // The registry leader's anti-entropy pass (at most every kRegistrySyncIntervalNs).
  void SyncRegistry();
  // Propose for a registry change at `version`: SyncRegistry leaves it alone until done.
  void ProposeRegistryChange(std::shared_ptr<const metering::LogEntry> entry,
                             metering::RegistryVersion version, StatusDone done);
  void Propose(std::shared_ptr<const metering::LogEntry> entry, bool schema_change,
               StatusDone done);
  void RunParked(uint32_t partition);
  void HandleForward(NodeId source, const Forward& forward);
  void HandleForwardReply(const ForwardReply& reply);
  void HandleReadIndex(NodeId source, const ReadIndex& request);
  void HandleReadIndexReply(const ReadIndexReply& reply);
  void AddForward(NodeId target, ForwardItem item);
  // Fails, with the outcome-unknown status `unknown`, every forwarded request `selected`
  // picks (its owner lost the partition or restarted: it may have accepted the request);
  // the caller resends, deduplicated by client timestamps or idempotency keys. Reads among
  // them are routed again.
  void FailRemotes(absl::FunctionRef<bool(const Remote&)> selected, const absl::Status& unknown);
  // Removes every forwarded request `selected` picks and returns them, so their callbacks run
  // after the walk (a callback may forward a new request, which inserts into remote_).
  std::vector<Remote> TakeRemotes(absl::FunctionRef<bool(const Remote&)> selected);
  bool Reachable(NodeId node) const;
  // Tells the ownership observer, if any, of `event`.
  void Observe(const OwnershipEvent& event) const {
    if (options_.ownership_observer) options_.ownership_observer(event);
  }
  // Members (this node included) known to be resyncing after a disk replacement: this node
  // by its state, peers by the newest header heard within the election timeout.
  uint32_t SyncingMembers() const;
  void ConfirmAsOwner(uint32_t partition, ReadWait wait);
  // Answers an owner read the proof (a lease or a confirmation) allows: the state for a
  // read, the commit index for a ReadIndex.
  void AnswerOwnerRead(uint32_t partition, ReadWait& wait);
  // Sends the current confirm round to every peer that has none in flight and has not been
  // sent a round as new as the newest read needs.
  void SendConfirmRounds();
  void HandleConfirmEpoch(NodeId source, const ConfirmEpoch& request);
  void HandleConfirmEpochReply(NodeId source, const ConfirmEpochReply& reply);

  // ---- Read leases (replicated_engine_partition.cc) ----
  // Owner: until when a quorum's read leases on the partition's epoch last (own clock);
  // kLongAgoNs when they do not or the partition is not served.
  int64_t LeaseEnd(const Part& part) const;
  // Replica: records a lease granted to `epoch`'s owner until `until_ns`.
  void GrantLease(uint32_t partition, uint64_t epoch, int64_t until_ns);
  // When a promise of `epoch` may be told: once every lease granted to another epoch of the
  // partition has ended (at or before now: at once).
  int64_t PromiseHeldUntil(uint32_t partition, uint64_t epoch) const;
  // Tells `promise` once PromiseHeldUntil allows (at once if it does now).
  void TellWhenFree(HeldPromise promise);
  // Makes hold_timer_ fire at `release_ns` unless it fires earlier already.
  void ArmHoldTimer(int64_t release_ns, int64_t now_ns);
  void ReleaseHeldPromises();
  // A durable promise of this node to its own starting epoch counts from now.
  void OnSelfPromised(uint32_t partition, uint64_t epoch);
  void SweepTimeouts();
  void ScheduleFlush();
  // Starts accept_timer_ (AcceptStaged, then the flushes) unless it runs already.
  void ScheduleAccept();
  void RouteRead(uint32_t partition, ReadFunction read, int64_t deadline_ns);
  void FailWaiters(uint32_t partition, const absl::Status& status);

  // ---- Group commit ----
  void RequestSync();
  void StartSync();
  void OnSynced(absl::Status status, std::array<uint64_t, kPartitionCount> covered,
                std::vector<PendingAck> acks, size_t alerts_covered);
  void CompleteWaiters(uint32_t partition);

  Env& env_;
  const ReplicatedEngineOptions options_;
  EngineMetrics metrics_;
  std::unique_ptr<NodeStore> store_;
  std::unique_ptr<MetaFile> meta_;
  std::vector<NodeId> members_;  // Sorted.
  size_t quorum_ = 1;
  NodeState state_ = NodeState::kFresh;
  uint64_t boot_id_ = 0;
  // The incarnation in this node's message headers: the meta's, except while the write of
  // a new one (DirectoryWentBack) is in flight, so that peers never see an incarnation a
  // crash could take back.
  uint64_t header_incarnation_ = 0;
  // replica.meta history (meta_history.h): the sequence this process opened, whether a
  // quorum confirmed it current, who did, and what each member announced (by position).
  uint64_t meta_start_ = 0;
  uint64_t wal_start_ = 0;  // The WAL's durable position when this process opened it.
  bool confirmed_ = true;
  absl::btree_set<NodeId> confirmed_by_;
  std::vector<PeerMetaRecord> peer_meta_;
  static constexpr size_t kHeldMessagesMax = 4096;
  static constexpr size_t kHeldBytesMax = 64 << 20;
  std::deque<std::pair<NodeId, std::vector<uint8_t>>> held_;
  size_t held_bytes_ = 0;
  TimerId held_timer_ = kNoTimer;

  // Configuration group.
  Role role_ = Role::kFollower;
  NodeId leader_ = kNoVote;
  int64_t leader_contact_ns_ = kLongAgoNs;
  static constexpr int64_t kRefusalLogIntervalNs = 5'000'000'000;
  int64_t refusal_logged_ns_ = kLongAgoNs;
  int64_t lost_acknowledged_logged_ns_ = kLongAgoNs;  // NoteLostAcknowledged: a line per 5 s.
  // Registry leadership (NextRegistryVersion, SyncRegistry).
  static constexpr uint32_t kRegistryPartition = 0;
  static constexpr int64_t kRegistrySyncIntervalNs = 1'000'000'000;
  uint64_t registry_epoch_ = 0;
  uint32_t registry_sequence_ = 0;
  int64_t registry_synced_ns_ = kLongAgoNs;
  absl::btree_set<uint32_t> registry_syncs_in_flight_;
  absl::btree_set<metering::RegistryVersion> registry_proposing_;  // This node's, in flight.
  // When SyncRegistry first saw each version as a partition's newest (one entry per
  // registry change this process saw: a handful).
  absl::btree_map<metering::RegistryVersion, int64_t> registry_seen_ns_;
  TimerId election_timer_ = kNoTimer;
  TimerId tick_timer_ = kNoTimer;
  absl::btree_map<NodeId, bool> votes_;
  bool pre_voting_ = false;
  Heartbeat map_;
  uint32_t epoch_sequence_ = 0;
  std::vector<int64_t> last_heard_ns_;  // By member position (any message).
  // Leader: heartbeat acks without a gap, and (for settling) since the member last said its
  // writes are blocked.
  std::vector<int64_t> live_since_ns_;
  // The member's last HeartbeatAck said its free disk is below its threshold (by position;
  // kept whatever this node's role, so a new leader knows at once).
  std::vector<bool> peer_writes_blocked_;
  // Leader: the last answer to its own heartbeats, by position. A member is live for
  // ownership only while it answers (it hears us too): one that can send but not receive
  // is heard (last_heard_ns_) but must lose its partitions.
  std::vector<int64_t> answered_ns_;
  std::vector<Header> peer_header_;  // The newest header heard, by position.
  // Forward request ids handled, by position, for the peer's current process: a duplicated
  // or replayed forward is dropped, never handled twice (replay_window.h).
  std::vector<ReplayWindow> forwards_seen_;
  std::vector<bool> restarted_;  // Leader: the member restarted, its epochs must change.
  std::vector<std::array<uint64_t, kPartitionCount>> peer_commit_;

  // Partitions.
  std::array<Part, kPartitionCount> parts_;
  std::array<metering::PendingDedup, kPartitionCount> pending_dedup_;
  std::array<std::deque<Waiter>, kPartitionCount> waiters_;
  // Commits known but not applied yet (CommitUpTo), in the order they became known.
  std::array<uint64_t, kPartitionCount> commit_target_{};
  std::array<bool, kPartitionCount> commit_queued_{};
  std::array<int64_t, kPartitionCount> commit_queued_ns_{};  // When it was queued.
  // Slices stay small (a read waits for at most one) unless the oldest queued commit has
  // waited this long: then they are this many times larger, so that under a burst the
  // apply backlog (and with it the tail latency of SYNC writes) does not grow (measured:
  // small slices only doubled sync-b500's p99, 140 -> 300 ms; 2 ms cost read latency).
  static constexpr int64_t kCommitBehindNs = 5'000'000;
  static constexpr uint64_t kCommitCatchUpFactor = 8;
  std::deque<uint32_t> commit_queue_;
  TimerId commit_timer_ = kNoTimer;
  size_t pending_events_ = 0;
  std::vector<uint32_t> staged_partitions_;  // Partitions with staged parts, first staged first.
  std::vector<Outbox> outboxes_;             // By member position.
  std::vector<LogRecord> flush_records_;     // FlushPeers' scratch list of entries to send.
  std::vector<bool> append_in_flight_;
  std::vector<int64_t> append_deadline_ns_;
  std::vector<uint64_t> append_sequence_sent_;
  std::vector<uint32_t> flush_start_;  // By position: the partition the next append walk starts at.
  static constexpr size_t kSnapshotsPerWindow = 8;
  // A partition's snapshot goes to one peer at most once per this many retransmit periods
  // (2 s): a peer that is slow to install one (decode + durable write under load) must not
  // be sent the same state again and again.
  static constexpr int64_t kSnapshotPeriods = 10;
  // Snapshots up to this size cost little to resend: one retransmit period apart, and not
  // counted in the window's budget (a new owner fetching many small partitions must not
  // wait seconds for each).
  static constexpr uint64_t kSmallSnapshotBytes = 64 * 1024;
  // Chunks a paced transfer has in flight beyond the acknowledged prefix, and transfers
  // running to one peer at once (each holds its encoded state: memory is bounded by this).
  static constexpr uint64_t kSnapshotWindowChunks = 2;
  static constexpr size_t kSnapshotTransfersMax = 4;
  // Running transfers by (position, partition); at most one per pair.
  absl::btree_map<std::pair<size_t, uint32_t>, SnapshotOut> snapshots_out_;
  std::vector<int64_t> snapshot_window_ns_;  // By position: start of the pacing window.
  std::vector<size_t> snapshot_budget_;      // Snapshots left in the window.
  uint64_t sequence_ = 0;
  // Read confirmation rounds: a read that arrives gets round confirm_round_ + 1, so only
  // answers to messages sent after it count. One round in flight per peer.
  uint64_t confirm_round_ = 0;                // The newest round started.
  uint64_t confirm_wanted_ = 0;               // The newest round a waiting read needs.
  std::vector<uint64_t> confirm_sent_round_;  // By position: round of the last send.
  std::vector<bool> confirm_in_flight_;
  std::vector<int64_t> confirm_deadline_ns_;
  // By position: the round of the last send and when that round was first sent to the peer
  // (a read lease it grants counts from then: a resend of the same round is later).
  std::vector<uint64_t> confirm_lease_round_;
  std::vector<int64_t> confirm_lease_sent_ns_;
  // The owner's usable lease is the granted one less this fraction: clock rates differ by
  // far less than 1/8 (hundreds of ppm at worst), so the grantor's lease outlasts ours.
  static constexpr int64_t kLeaseClockMarginDivisor = 8;
  bool lease_renew_ = false;  // A read found its lease half gone: the next round renews.
  std::array<LeaseGrant, kPartitionCount> lease_grants_;
  absl::btree_multimap<int64_t, HeldPromise> held_promises_;  // By release time.
  TimerId hold_timer_ = kNoTimer;
  int64_t hold_timer_ns_ = 0;  // When hold_timer_ fires.

  // Forwarded requests.
  uint64_t next_request_id_ = 1;  // Drawn at random at each start.
  absl::btree_map<uint64_t, Remote> remote_;

  // Group commit.
  bool sync_in_flight_ = false;
  bool sync_requested_ = false;
  std::vector<PendingAck> acks_awaiting_sync_;
  DurableAlerts alerts_;
  AlertsDurable on_alerts_durable_;
  bool alerts_restoring_ = false;  // RestoreAlertLog's write is in flight.
  bool writes_blocked_ = false;
  // Monotonic time writes_blocked_ last cleared (settling, as live_since_ns_ for peers).
  int64_t writes_unblocked_ns_ = kLongAgoNs;
  std::unique_ptr<CheckpointTimer> checkpoint_timer_;
  TimerId sweep_timer_ = kNoTimer;
  mutable ReplicationStatus counters_;
  TimerId flush_timer_ = kNoTimer;
  TimerId accept_timer_ = kNoTimer;
};

}  // namespace unimeter::replication

#endif  // UNIMETER_NODE_REPLICATION_REPLICATED_ENGINE_H_
