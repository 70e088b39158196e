#include "node/env/fiber.h"

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <boost/context/fixedsize_stack.hpp>
#include <utility>

#if defined(UM_SANITIZER_ADDRESS)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(UM_SANITIZER_THREAD)
#include <sanitizer/tsan_interface.h>
#endif

#include "node/base/check.h"

namespace unimeter {

namespace context = boost::context;

namespace {

// Thrown inside a fiber by Suspend() when the scheduler shuts it down; caught only by the
// fiber's entry function, after RAII destructors on the fiber stack have run.
struct FiberCancelled {};

// Stack bounds for the AddressSanitizer fiber-switch annotations. Boost.Context 1.74
// annotates only its ucontext variant, so every switch here says where it goes.
struct StackBounds {
  const void* bottom = nullptr;
  size_t size = 0;
};

void StartSwitch([[maybe_unused]] void** fake_stack_save,
                 [[maybe_unused]] const StackBounds& target) {
#if defined(UM_SANITIZER_ADDRESS)
  __sanitizer_start_switch_fiber(fake_stack_save, target.bottom, target.size);
#endif
}

void FinishSwitch([[maybe_unused]] void* fake_stack_save, [[maybe_unused]] StackBounds* previous) {
#if defined(UM_SANITIZER_ADDRESS)
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(fake_stack_save, &bottom, &size);
  if (previous != nullptr) {
    previous->bottom = bottom;
    previous->size = size;
  }
#endif
}

// ThreadSanitizer fiber annotations: each fiber has a TSan fiber context, and every switch
// says where it goes, right before it happens.
void* TsanCreateFiber() {
#if defined(UM_SANITIZER_THREAD)
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}
void* TsanCurrentFiber() {
#if defined(UM_SANITIZER_THREAD)
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}
void TsanSwitchTo([[maybe_unused]] void* fiber) {
#if defined(UM_SANITIZER_THREAD)
  __tsan_switch_to_fiber(fiber, 0);
#endif
}
void TsanDestroyFiber([[maybe_unused]] void* fiber) {
#if defined(UM_SANITIZER_THREAD)
  if (fiber != nullptr) {
    __tsan_destroy_fiber(fiber);
  }
#endif
}

// fixedsize_stack that remembers the bounds of the stack it hands out.
class RecordingStack {
 public:
  RecordingStack(size_t size_bytes, StackBounds* bounds) : stack_(size_bytes), bounds_(bounds) {}
  context::stack_context allocate() {
    context::stack_context stack = stack_.allocate();
    bounds_->bottom = static_cast<const char*>(stack.sp) - stack.size;
    bounds_->size = stack.size;
    return stack;
  }
  void deallocate(context::stack_context& stack) noexcept { stack_.deallocate(stack); }

 private:
  context::fixedsize_stack stack_;
  StackBounds* bounds_;
};

}  // namespace

struct FiberScheduler::Fiber {
  std::string name;
  context::fiber context;     // The fiber's own continuation while it is suspended.
  context::fiber return_to;   // The loop's continuation while the fiber runs.
  bool wake_pending = false;  // Wake() arrived while the fiber was running.
  bool suspended = false;     // In Suspend(), waiting for Wake().
  bool finished = false;
  bool cancelled = false;                // ShutdownAll: unwind at the next (or first) resume.
  StackBounds stack;                     // This fiber's stack.
  StackBounds loop_stack;                // The stack that resumed it.
  void* fake_stack = nullptr;            // ASan's fake stack of this fiber while switched out.
  void* tsan_fiber = TsanCreateFiber();  // TSan's context of this fiber (null without TSan).
  void* tsan_loop = nullptr;             // TSan's context of the loop that resumed it.
  ~Fiber() { TsanDestroyFiber(tsan_fiber); }
};

FiberScheduler::FiberScheduler(Prng* pick_prng) : pick_prng_(pick_prng) {}

FiberScheduler::~FiberScheduler() { ShutdownAll(); }

FiberId FiberScheduler::Spawn(std::string_view name, absl::AnyInvocable<void()> body) {
  const FiberId id = next_id_++;
  auto fiber = std::make_unique<Fiber>();
  fiber->name = std::string(name);
  Fiber* raw = fiber.get();
  fiber->context =
      context::fiber(std::allocator_arg, RecordingStack(kStackSizeBytes, &raw->stack),
                     [raw, body = std::move(body)](context::fiber&& caller) mutable {
                       FinishSwitch(nullptr, &raw->loop_stack);
                       raw->return_to = std::move(caller);
                       if (!raw->cancelled) {
                         try {
                           body();
                         } catch (const FiberCancelled&) {
                           // Unwound by ShutdownAll; destructors on this stack have run.
                         }
                       }
                       raw->finished = true;
                       StartSwitch(nullptr, raw->loop_stack);  // This stack is about to be freed.
                       TsanSwitchTo(raw->tsan_loop);
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
  void* loop_fake_stack = nullptr;
  fiber->tsan_loop = TsanCurrentFiber();
  StartSwitch(&loop_fake_stack, fiber->stack);
  TsanSwitchTo(fiber->tsan_fiber);
  fiber->context = std::move(fiber->context).resume();
  FinishSwitch(loop_fake_stack, nullptr);
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
  StartSwitch(&fiber->fake_stack, fiber->loop_stack);
  TsanSwitchTo(fiber->tsan_loop);
  fiber->return_to = std::move(fiber->return_to).resume();
  FinishSwitch(fiber->fake_stack, &fiber->loop_stack);
  // Resumed by Resume(): current_ is this fiber again.
  UM_CHECK(!fiber->suspended);
  if (fiber->cancelled) {
    throw FiberCancelled{};
  }
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
  // In id order, resume each live fiber once with `cancelled` set: a suspended one throws
  // FiberCancelled out of Suspend() and unwinds its stack (RAII runs); one that never ran
  // skips its body. Unwinding may wake or spawn fibers; later rounds take those too.
  while (!fibers_.empty()) {
    const FiberId id = fibers_.begin()->first;
    Fiber* fiber = fibers_.begin()->second.get();
    fiber->cancelled = true;
    Resume(id);
    UM_CHECK(fibers_.find(id) == fibers_.end());  // Resume erased the finished fiber.
    ready_.clear();
  }
}

}  // namespace unimeter
