#include "sim/simulator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/base/check.h"

namespace unimeter::sim {
namespace {

// The simulator whose event is running, for the report of a failing UM_CHECK.
const Simulator* g_running = nullptr;

std::string RunningEventContext() {
  if (g_running == nullptr) return std::string();
  return g_running->DescribeRunningEvent();
}

}  // namespace

Simulator::Simulator(uint64_t seed) : seed_(seed) {
  digest_.Add(seed);
  SetCheckContextHook(&RunningEventContext);
}

Simulator::~Simulator() {
  if (g_running == this) g_running = nullptr;
}

std::string Simulator::DescribeRunningEvent() const {
  const std::string who = running_.node == EventOwner::kWorldNode
                              ? std::string("world")
                              : absl::StrCat("n", running_.node, ".", running_.incarnation);
  return absl::StrFormat("[simulator seed=%d t=%.6fs %s]", seed_,
                         static_cast<double>(now_ns_) / 1e9, who);
}

void Simulator::Schedule(int64_t delay_ns, EventOwner owner, EventKind kind, uint64_t detail,
                         absl::AnyInvocable<void()> action) {
  UM_CHECK_GE(delay_ns, 0);
  UM_CHECK(action != nullptr);
  heap_.push(Event{now_ns_ + delay_ns, next_sequence_++, owner, kind, detail,
                   std::make_shared<absl::AnyInvocable<void()>>(std::move(action))});
}

void Simulator::SetAlive(uint32_t node, uint64_t incarnation, bool alive) {
  if (alive) {
    alive_incarnation_[node] = incarnation;
  } else {
    auto it = alive_incarnation_.find(node);
    if (it != alive_incarnation_.end() && it->second == incarnation) {
      alive_incarnation_.erase(it);
    }
  }
}

bool Simulator::IsAlive(const EventOwner& owner) const {
  if (owner.node == EventOwner::kWorldNode) {
    return true;
  }
  auto it = alive_incarnation_.find(owner.node);
  return it != alive_incarnation_.end() && it->second == owner.incarnation;
}

void Simulator::Pause(uint32_t node) {
  UM_CHECK_NE(node, EventOwner::kWorldNode);
  held_.try_emplace(node);
}

void Simulator::Resume(uint32_t node) {
  auto it = held_.find(node);
  if (it == held_.end()) return;
  std::vector<Event> held = std::move(it->second);
  held_.erase(it);
  for (Event& event : held) {
    event.time_ns = now_ns_;
    event.sequence = next_sequence_++;
    heap_.push(std::move(event));
  }
}

void Simulator::RunForNode(uint32_t node, absl::AnyInvocable<void()> action) {
  auto it = held_.find(node);
  if (it == held_.end()) {
    action();
    return;
  }
  it->second.push_back(Event{now_ns_, 0, EventOwner{}, EventKind::kMessage, 0,
                             std::make_shared<absl::AnyInvocable<void()>>(std::move(action))});
}

bool Simulator::Step() {
  if (heap_.empty()) {
    return false;
  }
  Event event = heap_.top();
  heap_.pop();
  UM_CHECK_GE(event.time_ns, now_ns_);
  now_ns_ = event.time_ns;
  if (!IsAlive(event.owner)) {
    ++events_dropped_;
    return true;
  }
  if (auto held = held_.find(event.owner.node); held != held_.end()) {
    held->second.push_back(std::move(event));
    return true;
  }
  ++events_executed_;
  digest_.Add(static_cast<uint64_t>(event.time_ns));
  digest_.Add((static_cast<uint64_t>(event.owner.node) << 32) ^ event.owner.incarnation);
  digest_.Add(static_cast<uint64_t>(event.kind));
  digest_.Add(event.detail);
  auto action = std::move(*event.action);
  g_running = this;
  running_ = event.owner;
  action();
  running_ = EventOwner{};
  return true;
}

void Simulator::DropAll() {
  while (!heap_.empty()) {
    Event event = heap_.top();
    heap_.pop();
    event.action.reset();
  }
}

void Simulator::RunUntil(int64_t end_ns) {
  while (!heap_.empty() && heap_.top().time_ns <= end_ns) {
    Step();
  }
  if (end_ns > now_ns_) {
    now_ns_ = end_ns;
  }
}

bool Simulator::RunUntil(const std::function<bool()>& done, int64_t end_ns) {
  while (!done()) {
    if (heap_.empty() || heap_.top().time_ns > end_ns) {
      if (end_ns > now_ns_) {
        now_ns_ = end_ns;
      }
      return done();
    }
    Step();
  }
  return true;
}

}  // namespace unimeter::sim
