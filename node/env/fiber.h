// node/env/fiber.h
//
// Fibers (Boost.Context) let core code read sequentially: a fiber runs until it calls
// an operation that may suspend (Await, SleepFor, SyncAndWait, ...), and the event loop
// resumes it when the operation completes. Suspension points are explicit, so there are
// no locks in core code; after any call that may suspend, re-check what may have changed.
//
// One FiberScheduler per node, owned by its Env. The loop calls RunReady() after each
// batch of callbacks; a ready fiber runs until it suspends or finishes. The order in
// which ready fibers resume is FIFO, or drawn from a PRNG (the simulator's scheduler
// sub-seed) to explore interleavings.
//
// Destroying the scheduler (or ShutdownAll) ends live fibers in id order: each suspended
// fiber is resumed once and its Suspend() throws an internal exception that unwinds its
// stack (RAII destructors run) up to the fiber's entry. Hence: destructors in core code
// must not do I/O or touch the Env, and fiber code must never swallow exceptions with
// `catch (...)` without rethrowing. Every stack switch is annotated for AddressSanitizer and
// ThreadSanitizer.
#ifndef UNIMETER_NODE_ENV_FIBER_H_
#define UNIMETER_NODE_ENV_FIBER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "node/base/random.h"

namespace unimeter {

using FiberId = uint64_t;
inline constexpr FiberId kNoFiber = 0;

class FiberScheduler {
 public:
  static constexpr size_t kStackSizeBytes = 256 * 1024;

  // With `pick_prng` null, ready fibers resume in FIFO order; otherwise each pick is
  // drawn from it. The PRNG must outlive the scheduler.
  explicit FiberScheduler(Prng* pick_prng = nullptr);
  ~FiberScheduler();

  FiberScheduler(const FiberScheduler&) = delete;
  FiberScheduler& operator=(const FiberScheduler&) = delete;

  // Creates a fiber that will run `body` at the next RunReady(). Returns its id.
  FiberId Spawn(std::string_view name, absl::AnyInvocable<void()> body);

  // Resumes ready fibers until none is ready. REQUIRES: not called from a fiber.
  void RunReady();

  // Suspends the calling fiber until Wake(its id). If Wake came first (while the fiber
  // was running), returns at once. REQUIRES: called from a fiber of this scheduler.
  void Suspend();

  // Makes fiber `id` ready if it is suspended, or makes its next Suspend return at once
  // if it is running. A no-op for finished or unknown fibers. Safe from any callback.
  void Wake(FiberId id);

  // The running fiber's id, or kNoFiber on the loop.
  FiberId current() const { return current_; }
  bool in_fiber() const { return current_ != kNoFiber; }

  size_t live_fiber_count() const { return fibers_.size(); }
  size_t ready_fiber_count() const { return ready_.size(); }
  uint64_t switch_count() const { return switch_count_; }

  // Destroys every live fiber in id order, unwinding suspended stacks (crash, shutdown).
  // REQUIRES: not called from a fiber.
  void ShutdownAll();

 private:
  struct Fiber;

  void Resume(FiberId id);
  FiberId PickReady();

  Prng* pick_prng_;
  FiberId next_id_ = 1;
  FiberId current_ = kNoFiber;
  uint64_t switch_count_ = 0;
  absl::btree_map<FiberId, std::unique_ptr<Fiber>> fibers_;
  std::vector<FiberId> ready_;
};

// Runs `start(done)` and suspends the calling fiber until `done(value)` is called, then
// returns the value. `done` may be called later from any loop callback; if the fiber is
// gone by then (crash or shutdown) the value is dropped. May suspend.
// REQUIRES: called from a fiber of `scheduler`.
template <typename T>
T Await(FiberScheduler& scheduler,
        absl::FunctionRef<void(absl::AnyInvocable<void(T)> done)> start) {
  struct Slot {
    std::optional<T> value;
  };
  auto slot = std::make_shared<Slot>();
  const FiberId self = scheduler.current();
  FiberScheduler* scheduler_pointer = &scheduler;
  start([slot, self, scheduler_pointer](T value) mutable {
    slot->value.emplace(std::move(value));
    scheduler_pointer->Wake(self);
  });
  while (!slot->value.has_value()) {
    scheduler.Suspend();
  }
  return std::move(*slot->value);
}

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_FIBER_H_
