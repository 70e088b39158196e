#include "sim/ownership_tracker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter::sim {

using replication::OwnershipEvent;

OwnershipTracker::OwnershipTracker(uint32_t nodes) : nodes_(nodes) {
  for (NodeState& state : nodes_) {
    state.promised.assign(kPartitionCount, 0);
    state.accepted.assign(kPartitionCount, 0);
  }
}

void OwnershipTracker::OnStart(NodeId node) {
  UM_CHECK_LT(node, nodes_.size());
  NodeState& state = nodes_[node];
  ++state.process;
  state.last_map = {0, 0};
  state.accepted.assign(kPartitionCount, 0);
}

void OwnershipTracker::OnWipe(NodeId node) {
  UM_CHECK_LT(node, nodes_.size());
  NodeState& state = nodes_[node];
  ++state.disk;
  state.incarnation = 0;
  state.promised.assign(kPartitionCount, 0);
  state.vote = {0, replication::kNoVote};
}

void OwnershipTracker::OnRestoredFromBackup(NodeId node) {
  UM_CHECK_LT(node, nodes_.size());
  nodes_[node].went_back = true;
}

void OwnershipTracker::Fail(std::string failure) {
  if (failure_.empty()) failure_ = std::move(failure);
}

void OwnershipTracker::OnEvent(NodeId node, const OwnershipEvent& event) {
  UM_CHECK_LT(node, nodes_.size());
  ++events_checked_;
  switch (event.kind) {
    case OwnershipEvent::Kind::kVoted:
      OnVoted(node, event);
      return;
    case OwnershipEvent::Kind::kLeader:
      OnLeader(node, event);
      return;
    case OwnershipEvent::Kind::kPromised:
      OnPromised(node, event);
      return;
    case OwnershipEvent::Kind::kAccepted:
      OnAccepted(node, event);
      return;
    case OwnershipEvent::Kind::kOwner:
      OnOwner(node, event);
      return;
    case OwnershipEvent::Kind::kMap:
      OnMap(node, event);
      return;
    case OwnershipEvent::Kind::kRestoredVote:
      OnRestoredVote(node, event);
      return;
    case OwnershipEvent::Kind::kRestoredPromise:
      OnRestoredPromise(node, event);
      return;
    case OwnershipEvent::Kind::kIncarnation:
      OnIncarnation(node, event);
      return;
  }
  UM_CHECK(false);  // An event kind this tracker does not know.
}

void OwnershipTracker::OnIncarnation(NodeId node, const OwnershipEvent& event) {
  NodeState& state = nodes_[node];
  const auto seen = incarnations_.find(event.incarnation);
  const bool fresh = seen == incarnations_.end();
  if (!fresh && seen->second != std::make_pair(node, state.disk)) {
    const auto [slot, disk] = seen->second;
    if (state.went_back && slot == node) {
      // A copy of one of this slot's earlier disks (a backup from before a replacement):
      // held to what the slot's current disk told, like any restored disk.
      seen->second = std::make_pair(node, state.disk);
      state.incarnation = event.incarnation;
      return;
    }
    Fail(absl::StrCat(
        "S13 (one disk incarnation per node slot): n", node, " runs incarnation ",
        event.incarnation,
        slot == node ? " of its own replaced disk" : absl::StrCat(" of n", slot, "'s disk")));
    return;
  }
  if (state.went_back && fresh && state.incarnation != 0) {
    // The node found its restored disk older than what it told and starts over on it as a
    // new member that promised nothing, as on a replaced disk.
    ++state.disk;
    state.promised.assign(kPartitionCount, 0);
    state.vote = {0, replication::kNoVote};
    state.went_back = false;
  } else if (state.incarnation != 0 && state.incarnation != event.incarnation) {
    Fail(absl::StrCat("S13 (one disk incarnation per node slot): n", node,
                      " restarted with incarnation ", event.incarnation, " on the disk of ",
                      state.incarnation, " that was never replaced"));
    return;
  }
  incarnations_[event.incarnation] = std::make_pair(node, state.disk);
  state.incarnation = event.incarnation;
}

void OwnershipTracker::OnVoted(NodeId node, const OwnershipEvent& event) {
  const auto [vote, inserted] =
      votes_.try_emplace({node, nodes_[node].disk, event.term}, event.candidate);
  if (!inserted && vote->second != event.candidate) {
    Fail(absl::StrCat("S11 (promises survive restarts): n", node, " voted for n", vote->second,
                      " and then for n", event.candidate, " in term ", event.term));
  }
  std::pair<uint64_t, NodeId>& last = nodes_[node].vote;
  if (event.term >= last.first) last = {event.term, event.candidate};
}

void OwnershipTracker::OnRestoredVote(NodeId node, const OwnershipEvent& event) {
  if (nodes_[node].went_back) return;  // Older than what it told: expected (OnRestoredFromBackup).
  const std::pair<uint64_t, NodeId>& last = nodes_[node].vote;
  if (event.term < last.first || (event.term == last.first && event.candidate != last.second)) {
    Fail(absl::StrCat("S11 (promises survive restarts): n", node, " restarted in term ", event.term,
                      " having voted for ", event.candidate, ", but it had told n", last.second,
                      " of its vote in term ", last.first));
  }
}

void OwnershipTracker::OnRestoredPromise(NodeId node, const OwnershipEvent& event) {
  UM_CHECK_LT(event.partition, kPartitionCount);
  if (nodes_[node].went_back) return;  // As in OnRestoredVote.
  const uint64_t promised = nodes_[node].promised[event.partition];
  if (event.epoch < promised) {
    Fail(absl::StrCat("S11 (promises survive restarts): n", node, " restarted with epoch ",
                      event.epoch, " promised for partition ", event.partition, ", below epoch ",
                      promised, " it had promised"));
  }
}

void OwnershipTracker::OnLeader(NodeId node, const OwnershipEvent& event) {
  const auto [leader, inserted] = leaders_.try_emplace(event.term, node);
  if (!inserted && leader->second != node) {
    Fail(absl::StrCat("S5 (one owner per epoch): two leaders in term ", event.term, ": n",
                      leader->second, " and n", node));
  }
}

void OwnershipTracker::OnPromised(NodeId node, const OwnershipEvent& event) {
  UM_CHECK_LT(event.partition, kPartitionCount);
  uint64_t& promised = nodes_[node].promised[event.partition];
  if (event.epoch < promised) {
    Fail(absl::StrCat("S11 (promises survive restarts): n", node, " promised epoch ", event.epoch,
                      " of partition ", event.partition, " after promising epoch ", promised));
    return;
  }
  promised = event.epoch;
}

void OwnershipTracker::OnAccepted(NodeId node, const OwnershipEvent& event) {
  UM_CHECK_LT(event.partition, kPartitionCount);
  const NodeState& state = nodes_[node];
  const uint64_t floor = std::max(state.promised[event.partition], state.accepted[event.partition]);
  if (event.epoch < floor) {
    Fail(absl::StrCat("S5 (one owner per epoch): n", node, " accepted appends of epoch ",
                      event.epoch, " of partition ", event.partition, " after ",
                      state.promised[event.partition] == floor ? "promising" : "accepting",
                      " epoch ", floor));
    return;
  }
  nodes_[node].accepted[event.partition] = event.epoch;
}

void OwnershipTracker::OnOwner(NodeId node, const OwnershipEvent& event) {
  const uint32_t process = nodes_[node].process;
  const auto [owner, inserted] =
      owners_.try_emplace({event.partition, event.epoch}, Establisher{node, process});
  if (!inserted && (owner->second.node != node || owner->second.process != process)) {
    Fail(absl::StrCat("S5 (one owner per epoch): partition ", event.partition, " epoch ",
                      event.epoch, " established by n", owner->second.node, " (process ",
                      owner->second.process, ") and by n", node, " (process ", process, ")"));
  }
  if (event.epoch < nodes_[node].promised[event.partition]) {
    Fail(absl::StrCat("S5 (one owner per epoch): n", node, " established epoch ", event.epoch,
                      " of partition ", event.partition, " after promising epoch ",
                      nodes_[node].promised[event.partition]));
  }
}

void OwnershipTracker::OnMap(NodeId node, const OwnershipEvent& event) {
  const std::pair<uint64_t, uint64_t> version{event.term, event.map_version};
  const auto [map, inserted] = maps_.try_emplace(version, event.map_digest, node);
  if (!inserted && map->second.first != event.map_digest) {
    Fail(absl::StrCat("S13 (partition map sanity): map version ", event.map_version, " of term ",
                      event.term, " differs between n", map->second.second, " and n", node));
  }
  std::pair<uint64_t, uint64_t>& last = nodes_[node].last_map;
  if (version < last) {
    Fail(absl::StrCat("S13 (partition map sanity): n", node, " acted on map version ",
                      event.map_version, " of term ", event.term, " after version ", last.second,
                      " of term ", last.first));
    return;
  }
  last = version;
}

}  // namespace unimeter::sim
