// node/env/posix/event_loop.h
//
// EventLoop is the one epoll loop of a real node. Everything of a node (timers, sockets,
// IO completions, fibers) runs on the thread that drives the loop; only Post() may be
// called from other threads.
//
// One iteration (RunOnce) waits in epoll_wait until the earliest of: an fd event, a
// Post() (through an eventfd), the earliest timer deadline, or `max_wait_ns`. It then runs,
// in this order: fd callbacks, posted tasks, due timers, deferred tasks, and finally
// `fibers->RunReady()` so fibers woken by any of those callbacks resume in the same
// iteration. Timers are a min-heap keyed by (deadline_ns, id); ids grow, so timers with
// the same deadline fire in start order. Callbacks never run inside the call that
// registered them: a timer, a post or a deferred task started by a callback runs in a
// later pass at the earliest.
//
// Clocks: MonotonicNowNs() is CLOCK_BOOTTIME (keeps counting across suspend) and
// WallNowNs() is CLOCK_REALTIME.
//
// Fd watches are level-triggered. The callback receives the raw epoll event mask
// (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP). A callback may unwatch (and close)
// its own fd or any other; events already collected for an unwatched fd are discarded.
// REQUIRES: Unwatch(id) before closing the fd.
#ifndef UNIMETER_NODE_ENV_POSIX_EVENT_LOOP_H_
#define UNIMETER_NODE_ENV_POSIX_EVENT_LOOP_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "node/env/env.h"
#include "node/env/fiber.h"

namespace unimeter {

using WatchId = uint64_t;
inline constexpr WatchId kNoWatch = 0;

class EventLoop {
 public:
  using FdCallback = absl::AnyInvocable<void(uint32_t epoll_events)>;

  // Longest single epoll_wait when nothing is due (Run() re-checks Stop() this often).
  static constexpr int64_t kWaitNsMax = 1'000'000'000;

  // `fibers` (may be null, for tests) must outlive the loop; its RunReady() runs after
  // each batch of callbacks. Aborts if epoll or eventfd cannot be created.
  explicit EventLoop(FiberScheduler* fibers);
  ~EventLoop();

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  static int64_t MonotonicNowNs();  // CLOCK_BOOTTIME.
  static int64_t WallNowNs();       // CLOCK_REALTIME.

  // Timers (loop thread only). `delay_ns` >= 0. Never returns kNoTimer.
  TimerId StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback);
  // A no-op if the timer already fired or was cancelled.
  void CancelTimer(TimerId timer);
  size_t pending_timer_count() const { return timer_callbacks_.size(); }

  // Queues `task` to run on the loop and wakes it. The ONLY thread-safe method.
  void Post(absl::AnyInvocable<void()> task);

  // Queues `task` to run at the end of the current iteration (or the next one when called
  // outside an iteration). Loop thread only; cheaper than Post (no lock, no syscall).
  void Defer(absl::AnyInvocable<void()> task);

  // Registers `fd` for readable and/or writable readiness (EPOLLERR/EPOLLHUP always).
  // Returns an error if epoll_ctl refuses (e.g. the fd is invalid).
  absl::StatusOr<WatchId> Watch(int fd, bool readable, bool writable, FdCallback callback);
  // Changes the interest of a watch. REQUIRES: `watch` is registered.
  void UpdateWatch(WatchId watch, bool readable, bool writable);
  // Removes a watch; a no-op for kNoWatch. Call before closing the fd.
  void Unwatch(WatchId watch);
  size_t watch_count() const { return watches_.size(); }

  // Runs one iteration, waiting at most `max_wait_ns` (< 0: until the next timer or at
  // most kWaitNsMax) for something to do. REQUIRES: not called from a loop callback.
  void RunOnce(int64_t max_wait_ns);

  // Runs iterations until Stop() is called (from a loop callback, or through Post from
  // another thread). Stop() before Run() makes the next Run() return after one iteration.
  void Run();
  void Stop() { stop_requested_ = true; }

  // Runs iterations for `duration_ns` of monotonic time.
  void RunFor(int64_t duration_ns);

  // Runs iterations until `predicate()` is true (checked before each iteration) or
  // `timeout_ns` passes. Returns the predicate's final value.
  bool RunUntil(absl::FunctionRef<bool()> predicate, int64_t timeout_ns);

  uint64_t iteration_count() const { return iteration_count_; }

 private:
  struct TimerEntry {
    int64_t deadline_ns;
    TimerId id;
  };
  struct FdWatch {
    int fd;
    FdCallback callback;
  };

  int ComputeWaitMs(int64_t max_wait_ns) const;
  void WaitAndDispatchFdEvents(int wait_ms);
  void DrainWakeFd();
  void RunPostedTasks();
  void RunDueTimers();
  void RunDeferredTasks();
  void CompactTimerHeap();

  FiberScheduler* fibers_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Post() writes, the loop reads.
  bool stop_requested_ = false;
  bool in_iteration_ = false;
  uint64_t iteration_count_ = 0;

  // Timers: a min-heap of (deadline, id); cancelled entries stay in the heap until popped
  // (or compacted) and are recognised by their missing callback.
  std::vector<TimerEntry> timer_heap_;
  absl::flat_hash_map<TimerId, absl::AnyInvocable<void()>> timer_callbacks_;
  TimerId next_timer_id_ = 1;

  // Watches are shared so a callback that unwatches itself stays alive while it runs.
  absl::flat_hash_map<WatchId, std::shared_ptr<FdWatch>> watches_;
  WatchId next_watch_id_ = 1;

  std::vector<absl::AnyInvocable<void()>> deferred_tasks_;

  std::mutex posted_mutex_;
  std::vector<absl::AnyInvocable<void()>> posted_tasks_;  // Guarded by posted_mutex_.
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_EVENT_LOOP_H_
