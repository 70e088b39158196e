#include "node/env/fiber.h"

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <boost/context/fixedsize_stack.hpp>
#include <utility>

#include "node/base/check.h"

namespace unimeter {

namespace context = boost::context;

struct FiberScheduler::Fiber {
  std::string name;
  context::fiber context;     // The fiber's own continuation while it is suspended.
  context::fiber return_to;   // The loop's continuation while the fiber runs.
  bool wake_pending = false;  // Wake() arrived while the fiber was running.
  bool suspended = false;     // In Suspend(), waiting for Wake().
  bool finished = false;
};

FiberScheduler::FiberScheduler(Prng* pick_prng) : pick_prng_(pick_prng) {}

FiberScheduler::~FiberScheduler() { ShutdownAll(); }

FiberId FiberScheduler::Spawn(std::string_view name, absl::AnyInvocable<void()> body) {
  const FiberId id = next_id_++;
  auto fiber = std::make_unique<Fiber>();
  fiber->name = std::string(name);
  Fiber* raw = fiber.get();
  fiber->context = context::fiber(std::allocator_arg, context::fixedsize_stack(kStackSizeBytes),
                                  [raw, body = std::move(body)](context::fiber&& caller) mutable {
                                    raw->return_to = std::move(caller);
                                    body();
                                    raw->finished = true;
                                    return std::move(raw->return_to);
                                  });
  fibers_.emplace(id, std::move(fiber));
  ready_.push_back(id);
  return id;
}

FiberId FiberScheduler::PickReady() {
  UM_CHECK(!ready_.empty());
  size_t index = 0;
  if (pick_prng_ != nullptr && ready_.size() > 1) {
    index = pick_prng_->UniformBelow(ready_.size());
  }
  const FiberId id = ready_[index];
  ready_.erase(ready_.begin() + static_cast<ptrdiff_t>(index));
  return id;
}

void FiberScheduler::RunReady() {
  UM_CHECK_EQ(current_, kNoFiber);
  while (!ready_.empty()) {
    Resume(PickReady());
  }
}

void FiberScheduler::Resume(FiberId id) {
  auto it = fibers_.find(id);
  if (it == fibers_.end()) {
    return;  // Finished or destroyed after it was made ready.
  }
  Fiber* fiber = it->second.get();
  UM_CHECK(!fiber->finished);
  fiber->suspended = false;
  current_ = id;
  ++switch_count_;
  fiber->context = std::move(fiber->context).resume();
  current_ = kNoFiber;
  if (fiber->finished) {
    fibers_.erase(id);
  }
}

void FiberScheduler::Suspend() {
  UM_CHECK_NE(current_, kNoFiber);
  Fiber* fiber = fibers_.at(current_).get();
  if (fiber->wake_pending) {
    fiber->wake_pending = false;
    return;
  }
  fiber->suspended = true;
  fiber->return_to = std::move(fiber->return_to).resume();
  // Resumed by Resume(): current_ is this fiber again.
  UM_CHECK(!fiber->suspended);
}

void FiberScheduler::Wake(FiberId id) {
  auto it = fibers_.find(id);
  if (it == fibers_.end()) {
    return;
  }
  Fiber* fiber = it->second.get();
  if (fiber->suspended) {
    if (std::find(ready_.begin(), ready_.end(), id) == ready_.end()) {
      ready_.push_back(id);
    }
  } else if (id == current_) {
    fiber->wake_pending = true;
  }
  // A fiber that is ready but not yet started needs nothing.
}

void FiberScheduler::ShutdownAll() {
  UM_CHECK_EQ(current_, kNoFiber);
  ready_.clear();
  // Destroy in id order. A fiber's destructor unwinds its stack, which may (through RAII)
  // wake or spawn other fibers; those are dropped too.
  while (!fibers_.empty()) {
    auto node = fibers_.extract(fibers_.begin());
    node.mapped().reset();
    ready_.clear();
  }
}

}  // namespace unimeter
