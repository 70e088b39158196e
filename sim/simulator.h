// sim/simulator.h
//
// Simulator is the deterministic heart of unimeter-sim: one thread, one event heap keyed
// by (virtual time, sequence number), where the sequence number is a global counter
// assigned on insertion, so ties have one defined order. When nothing is runnable,
// virtual time jumps to the next event; idle periods cost nothing.
//
// Every event belongs to an owner: the world (network, fault schedule, clients) or one
// incarnation of a node. Events of an incarnation that has died are dropped when popped.
// Every executed event is folded into the trace digest (time, owner, kind, detail), so two
// runs of one seed can be compared with a single number.
//
// Determinism: nothing here reads a real clock, a real random source or an address.
#ifndef UNIMETER_SIM_SIMULATOR_H_
#define UNIMETER_SIM_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "node/base/checksum.h"

namespace unimeter::sim {

// Who an event belongs to. node == kWorldNode for world events.
struct EventOwner {
  static constexpr uint32_t kWorldNode = UINT32_MAX;
  uint32_t node = kWorldNode;
  uint64_t incarnation = 0;
};

// Event kinds, folded into the digest (values are part of the digest: append only).
enum class EventKind : uint32_t {
  kTimer = 1,
  kMessage = 2,
  kStreamData = 3,
  kStreamClose = 4,
  kStreamConnect = 5,
  kDiskSync = 6,
  kStoreCommit = 7,
  kFault = 8,
  kClient = 9,
  kLifecycle = 10,
};

class Simulator {
 public:
  // Installs the UM_CHECK context hook: a failing check inside an event names the seed,
  // the virtual time and the node incarnation whose event was running.
  explicit Simulator(uint64_t seed);
  ~Simulator();

  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  uint64_t seed() const { return seed_; }
  int64_t now_ns() const { return now_ns_; }

  // Schedules `action` at now + delay_ns (delay >= 0) for `owner`. `detail` is folded
  // into the digest with the event (for example a message checksum or a disk offset).
  void Schedule(int64_t delay_ns, EventOwner owner, EventKind kind, uint64_t detail,
                absl::AnyInvocable<void()> action);

  // Marks node incarnations alive or dead; events of dead ones are dropped when popped.
  void SetAlive(uint32_t node, uint64_t incarnation, bool alive);
  bool IsAlive(const EventOwner& owner) const;

  // Pauses `node` like SIGSTOP: events of its incarnations (timers, disk completions,
  // stream data) are held in order instead of run, and Resume() runs them at the resume
  // time, in the order they were due. World events that act on the node go through
  // RunForNode. Pausing a paused node does nothing.
  void Pause(uint32_t node);
  void Resume(uint32_t node);
  bool IsPaused(uint32_t node) const { return held_.contains(node); }
  // Runs `action` now if `node` is not paused, else holds it until Resume (a message the
  // kernel buffered for a stopped process).
  void RunForNode(uint32_t node, absl::AnyInvocable<void()> action);

  // Runs the next event. Returns false if the heap is empty.
  bool Step();

  // Runs every event with time <= end_ns, then sets the time to end_ns.
  void RunUntil(int64_t end_ns);

  // Runs until `done()` is true (checked after each event) or time passes end_ns.
  // Returns done().
  bool RunUntil(const std::function<bool()>& done, int64_t end_ns);

  // Destroys every pending event without running it (teardown). Destroying an event's
  // action may schedule new events; those are dropped too.
  void DropAll();

  // Folds extra data into the digest (checkers and faults record their decisions).
  void Fold(uint64_t value) { digest_.Add(value); }
  uint64_t digest() const { return digest_.value(); }

  // "[simulator seed=S t=T s nN.I]" for the event running now (world events: "world").
  std::string DescribeRunningEvent() const;

  uint64_t events_executed() const { return events_executed_; }
  uint64_t events_dropped() const { return events_dropped_; }
  size_t events_pending() const { return heap_.size(); }

 private:
  struct Event {
    int64_t time_ns;
    uint64_t sequence;
    EventOwner owner;
    EventKind kind;
    uint64_t detail;
    // Shared so the heap can copy entries; executed at most once.
    std::shared_ptr<absl::AnyInvocable<void()>> action;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      if (a.time_ns != b.time_ns) {
        return a.time_ns > b.time_ns;
      }
      return a.sequence > b.sequence;
    }
  };

  uint64_t seed_;
  int64_t now_ns_ = 0;
  EventOwner running_;  // Of the event being executed (world between events).
  uint64_t next_sequence_ = 0;
  uint64_t events_executed_ = 0;
  uint64_t events_dropped_ = 0;
  Digest digest_;
  std::priority_queue<Event, std::vector<Event>, Later> heap_;
  // (node) -> live incarnation; absent = no live incarnation.
  absl::btree_map<uint32_t, uint64_t> alive_incarnation_;
  // Paused nodes and the events held for each, in the order they came due.
  absl::btree_map<uint32_t, std::vector<Event>> held_;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SIMULATOR_H_
