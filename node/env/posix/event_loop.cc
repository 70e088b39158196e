#include "node/env/posix/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter {
namespace {

// Min-heap order on (deadline, id): std::*_heap keep the "largest" on top, so invert.
bool TimerAfter(int64_t deadline_a, TimerId id_a, int64_t deadline_b, TimerId id_b) {
  return deadline_a != deadline_b ? deadline_a > deadline_b : id_a > id_b;
}

int64_t ReadClockNs(clockid_t clock) {
  timespec now;
  UM_CHECK_EQ(clock_gettime(clock, &now), 0);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

uint32_t EpollInterest(bool readable, bool writable) {
  uint32_t events = 0;
  if (readable) {
    events |= EPOLLIN | EPOLLRDHUP;
  }
  if (writable) {
    events |= EPOLLOUT;
  }
  return events;
}

// The wake eventfd's epoll data; watch ids start at 1.
constexpr uint64_t kWakeData = 0;

}  // namespace

EventLoop::EventLoop(FiberScheduler* fibers) : fibers_(fibers) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  UM_CHECK_GE(epoll_fd_, 0);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  UM_CHECK_GE(wake_fd_, 0);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeData;
  UM_CHECK_EQ(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event), 0);
}

EventLoop::~EventLoop() {
  // Callbacks are destroyed (never run) with the loop; their owners are gone by now.
  watches_.clear();
  timer_callbacks_.clear();
  deferred_tasks_.clear();
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_tasks_.clear();
  }
  close(wake_fd_);
  close(epoll_fd_);
}

int64_t EventLoop::MonotonicNowNs() { return ReadClockNs(CLOCK_BOOTTIME); }

int64_t EventLoop::WallNowNs() { return ReadClockNs(CLOCK_REALTIME); }

TimerId EventLoop::StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback) {
  UM_CHECK_GE(delay_ns, 0);
  const TimerId id = next_timer_id_++;
  UM_CHECK_NE(id, kNoTimer);
  const int64_t deadline_ns = MonotonicNowNs() + delay_ns;
  timer_callbacks_.emplace(id, std::move(callback));
  timer_heap_.push_back({deadline_ns, id});
  std::push_heap(timer_heap_.begin(), timer_heap_.end(),
                 [](const TimerEntry& a, const TimerEntry& b) {
                   return TimerAfter(a.deadline_ns, a.id, b.deadline_ns, b.id);
                 });
  return id;
}

void EventLoop::CancelTimer(TimerId timer) {
  if (timer_callbacks_.erase(timer) > 0) {
    CompactTimerHeap();
  }
}

void EventLoop::CompactTimerHeap() {
  // Cancelled entries linger in the heap; rebuild once they dominate it.
  if (timer_heap_.size() < 64 || timer_heap_.size() < 2 * timer_callbacks_.size()) {
    return;
  }
  std::erase_if(timer_heap_,
                [this](const TimerEntry& entry) { return !timer_callbacks_.contains(entry.id); });
  std::make_heap(timer_heap_.begin(), timer_heap_.end(),
                 [](const TimerEntry& a, const TimerEntry& b) {
                   return TimerAfter(a.deadline_ns, a.id, b.deadline_ns, b.id);
                 });
  UM_CHECK_EQ(timer_heap_.size(), timer_callbacks_.size());
}

void EventLoop::Post(absl::AnyInvocable<void()> task) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    was_empty = posted_tasks_.empty();
    posted_tasks_.push_back(std::move(task));
  }
  if (was_empty) {
    // Only the first task of a batch needs to wake the loop: the loop takes the whole
    // queue after it drains the eventfd.
    const uint64_t one = 1;
    const ssize_t written = write(wake_fd_, &one, sizeof(one));
    UM_CHECK(written == sizeof(one) || errno == EAGAIN);  // EAGAIN: counter saturated.
  }
}

void EventLoop::Defer(absl::AnyInvocable<void()> task) {
  deferred_tasks_.push_back(std::move(task));
}

absl::StatusOr<WatchId> EventLoop::Watch(int fd, bool readable, bool writable,
                                         FdCallback callback) {
  const WatchId id = next_watch_id_++;
  epoll_event event{};
  event.events = EpollInterest(readable, writable);
  event.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl(ADD, fd ", fd, "): ", strerror(errno)));
  }
  watches_.emplace(id, std::make_shared<FdWatch>(FdWatch{fd, std::move(callback)}));
  return id;
}

void EventLoop::UpdateWatch(WatchId watch, bool readable, bool writable) {
  auto it = watches_.find(watch);
  UM_CHECK(it != watches_.end());
  epoll_event event{};
  event.events = EpollInterest(readable, writable);
  event.data.u64 = watch;
  UM_CHECK_EQ(epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, it->second->fd, &event), 0);
}

void EventLoop::Unwatch(WatchId watch) {
  if (watch == kNoWatch) {
    return;
  }
  auto it = watches_.find(watch);
  UM_CHECK(it != watches_.end());
  UM_CHECK_EQ(epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second->fd, nullptr), 0);
  watches_.erase(it);
}

int EventLoop::ComputeWaitMs(int64_t max_wait_ns) const {
  if (!deferred_tasks_.empty() || (fibers_ != nullptr && fibers_->ready_fiber_count() > 0)) {
    return 0;
  }
  int64_t wait_ns = max_wait_ns < 0 ? kWaitNsMax : std::min(max_wait_ns, kWaitNsMax);
  if (!timer_heap_.empty()) {
    wait_ns = std::min(wait_ns, timer_heap_.front().deadline_ns - MonotonicNowNs());
  }
  if (wait_ns <= 0) {
    return 0;
  }
  // Round up: waking a little late is fine, waking early would spin until the deadline.
  return static_cast<int>((wait_ns + 999'999) / 1'000'000);
}

void EventLoop::WaitAndDispatchFdEvents(int wait_ms) {
  std::array<epoll_event, 128> events;
  const int count = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), wait_ms);
  if (count < 0) {
    UM_CHECK_EQ(errno, EINTR);
    return;
  }
  for (int i = 0; i < count; ++i) {
    const WatchId id = events[i].data.u64;
    if (id == kWakeData) {
      DrainWakeFd();
      continue;
    }
    auto it = watches_.find(id);
    if (it == watches_.end()) {
      continue;  // Unwatched by an earlier callback of this batch.
    }
    std::shared_ptr<FdWatch> watch = it->second;  // Survives an Unwatch inside the call.
    watch->callback(events[i].events);
  }
}

void EventLoop::DrainWakeFd() {
  uint64_t count;
  const ssize_t got = read(wake_fd_, &count, sizeof(count));
  UM_CHECK(got == sizeof(count) || errno == EAGAIN);
}

void EventLoop::RunPostedTasks() {
  std::vector<absl::AnyInvocable<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    tasks.swap(posted_tasks_);
  }
  for (auto& task : tasks) {
    if (task) {
      task();
    }
  }
}

void EventLoop::RunDueTimers() {
  const auto after = [](const TimerEntry& a, const TimerEntry& b) {
    return TimerAfter(a.deadline_ns, a.id, b.deadline_ns, b.id);
  };
  const int64_t now_ns = MonotonicNowNs();
  // Timers started by the callbacks below wait for the next pass, even with delay 0. They
  // sort after every older due timer (deadline >= now_ns, larger id), so stopping at the
  // first one is exact.
  const TimerId first_new_id = next_timer_id_;
  while (!timer_heap_.empty() && timer_heap_.front().deadline_ns <= now_ns &&
         timer_heap_.front().id < first_new_id) {
    const TimerId id = timer_heap_.front().id;
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), after);
    timer_heap_.pop_back();
    auto it = timer_callbacks_.find(id);
    if (it == timer_callbacks_.end()) {
      continue;  // Cancelled.
    }
    absl::AnyInvocable<void()> callback = std::move(it->second);
    timer_callbacks_.erase(it);
    callback();
  }
}

void EventLoop::RunDeferredTasks() {
  std::vector<absl::AnyInvocable<void()>> tasks;
  tasks.swap(deferred_tasks_);
  for (auto& task : tasks) {
    task();
  }
}

void EventLoop::RunOnce(int64_t max_wait_ns) {
  UM_CHECK(!in_iteration_);
  in_iteration_ = true;
  ++iteration_count_;
  WaitAndDispatchFdEvents(ComputeWaitMs(max_wait_ns));
  RunPostedTasks();
  RunDueTimers();
  RunDeferredTasks();
  if (fibers_ != nullptr) {
    fibers_->RunReady();
  }
  in_iteration_ = false;
}

void EventLoop::Run() {
  do {
    RunOnce(-1);
  } while (!stop_requested_);
  stop_requested_ = false;
}

void EventLoop::RunFor(int64_t duration_ns) {
  UM_CHECK_GE(duration_ns, 0);
  const int64_t deadline_ns = MonotonicNowNs() + duration_ns;
  for (int64_t now_ns = MonotonicNowNs(); now_ns < deadline_ns; now_ns = MonotonicNowNs()) {
    RunOnce(deadline_ns - now_ns);
  }
}

bool EventLoop::RunUntil(absl::FunctionRef<bool()> predicate, int64_t timeout_ns) {
  UM_CHECK_GE(timeout_ns, 0);
  const int64_t deadline_ns = MonotonicNowNs() + timeout_ns;
  while (!predicate()) {
    const int64_t now_ns = MonotonicNowNs();
    if (now_ns >= deadline_ns) {
      return predicate();
    }
    RunOnce(deadline_ns - now_ns);
  }
  return true;
}

}  // namespace unimeter
