// ReplicatedEngine: data directories that went back in time (meta_history.h).

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/replication/replicated_engine.h"

namespace unimeter::replication {

bool ReplicatedEngine::HeldUntilConfirmed(const Message& message) const {
  return std::visit(
      [](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        return std::is_same_v<T, StartEpoch> || std::is_same_v<T, Append> ||
               std::is_same_v<T, SnapshotChunk>;
      },
      message);
}

void ReplicatedEngine::Hold(NodeId source, absl::Span<const uint8_t> bytes) {
  ++counters_.messages_held_back;
  if (held_.size() >= kHeldMessagesMax || held_bytes_ + bytes.size() > kHeldBytesMax) return;
  held_bytes_ += bytes.size();
  held_.emplace_back(source, std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

void ReplicatedEngine::HandleHeld() {
  held_timer_ = kNoTimer;
  std::deque<std::pair<NodeId, std::vector<uint8_t>>> held = std::move(held_);
  held_.clear();
  held_bytes_ = 0;
  for (const auto& [source, bytes] : held) OnMessage(source, bytes);
}

std::string ReplicatedEngine::EncodedPeerRecords() const {
  std::vector<std::pair<uint32_t, PeerMetaRecord>> records;
  for (size_t position = 0; position < members_.size(); ++position) {
    if (members_[position] != env_.node_id()) {
      records.emplace_back(members_[position], peer_meta_[position]);
    }
  }
  return EncodePeerRecords(records);
}

void ReplicatedEngine::LoadPeerRecords() {
  store_->set_peer_records_source([this] { return EncodedPeerRecords(); });
  const std::string& bytes = store_->loaded_peer_records();
  if (bytes.empty()) return;
  std::vector<std::pair<uint32_t, PeerMetaRecord>> records;
  if (!DecodePeerRecords(bytes, &records)) {
    env_.Log(
        "replication: the checkpointed records of what peers announced are malformed: "
        "starting without them");
    return;
  }
  for (const auto& [node, record] : records) {
    const int position = Position(node);
    if (position >= 0 && node != env_.node_id()) peer_meta_[position] = record;
  }
}

void ReplicatedEngine::NoteMetaHistory(size_t position, const HeartbeatAck& ack) {
  const Header& header = peer_header_[position];  // This message's.
  peer_meta_[position].Note(header.incarnation, header.boot_id, ack.meta_start, ack.meta_durable,
                            ack.wal_durable);
  if (state_ != NodeState::kActive) return;
  // A member of an older minor version records nothing: it confirms every process.
  const EchoVerdict verdict =
      header.minor < kMetaEchoMinor
          ? EchoVerdict::kConfirmed
          : JudgeEcho(ack.echo, meta_->meta().incarnation, meta_start_, wal_start_);
  if (verdict == EchoVerdict::kWentBack) {
    DirectoryWentBack(members_[position], ack.echo);
    return;
  }
  if (verdict != EchoVerdict::kConfirmed || confirmed_) return;
  confirmed_by_.insert(members_[position]);
  if (confirmed_by_.size() + 1 < quorum_) return;
  confirmed_ = true;
  // Handled after this message, from the loop: never inside another message's handler.
  if (!held_.empty()) held_timer_ = env_.StartTimer(0, [this] { HandleHeld(); });
  env_.Log(absl::StrCat("replication: data directory confirmed current (replica.meta write ",
                        meta_start_, ") by ", confirmed_by_.size(), " of ", members_.size() - 1,
                        " peers"));
}

void ReplicatedEngine::DirectoryWentBack(NodeId peer, const MetaEcho& echo) {
  ReplicaMeta& meta = meta_->mutable_meta();
  ++counters_.directories_went_back;
  const std::string heard =
      echo.start == kSuperseded
          ? absl::StrCat(
                "saw this directory's incarnation replaced by a newer one (a replaced "
                "disk), so this is a copy from before that")
          : absl::StrCat("heard this node announce replica.meta write ",
                         std::max(echo.start, echo.earlier), " and WAL position ", echo.wal_earlier,
                         ", but this process opened write ", meta_start_, " and WAL position ",
                         wal_start_);
  env_.Log(absl::StrCat(
      "replication: this data directory went back in time: node ", peer, " ", heard,
      " (restored from an old backup? a disk that lost synced writes?). Its votes, promises "
      "and log may be older than what peers were told: resyncing from peers as a new "
      "incarnation. Check that disk (docs/operations.md)"));
  if (role_ == Role::kLeader) BecomeFollower(meta.term, kNoVote);
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    Part& part = parts_[partition];
    if (part.role != PartRole::kReplica) {
      StepDown(partition, "this node's data directory went back in time");
    }
    part.synced = false;
    part.sync_target = UINT64_MAX;
    part.owner_epoch = 0;
  }
  // Counts toward no quorum from now on (the header says syncing); peers see the new
  // incarnation, and forget what the old one acknowledged, once it is durable: a crash
  // before then restarts on the old one, which its peers' records still find.
  state_ = NodeState::kSyncing;
  confirmed_ = true;
  held_.clear();  // Asked of the old incarnation: the senders resend to the new one.
  held_bytes_ = 0;
  meta.incarnation = env_.prng().NextU64() | 1;
  meta.active = false;
  meta.formed = true;
  meta_->Save([this, incarnation = meta.incarnation](absl::Status status) {
    if (FailStopOnError(env_, status, "replica.meta write")) return;
    header_incarnation_ = incarnation;
    Observe(OwnershipEvent{.kind = OwnershipEvent::Kind::kIncarnation, .incarnation = incarnation});
  });
}

}  // namespace unimeter::replication
