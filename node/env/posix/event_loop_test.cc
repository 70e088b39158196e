// Goal: the loop fires timers in deadline order, honours cancellation, wakes for posts
// from other threads, dispatches fd readiness, runs fibers after callbacks, and the IO
// thread completes jobs in order on the loop.
#include "node/env/posix/event_loop.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "node/env/posix/io_thread.h"
#include "node/env/posix/test_util.h"

namespace unimeter {
namespace {

using posix_test::kMillisecondNs;
using posix_test::kPatienceNs;

TEST(EventLoopTest, TimersFireInDeadlineOrder) {
  EventLoop loop(nullptr);
  std::vector<int> fired;
  loop.StartTimer(30 * kMillisecondNs, [&] { fired.push_back(3); });
  loop.StartTimer(10 * kMillisecondNs, [&] { fired.push_back(1); });
  loop.StartTimer(20 * kMillisecondNs, [&] { fired.push_back(2); });
  loop.StartTimer(0, [&] { fired.push_back(0); });
  EXPECT_TRUE(fired.empty());  // Never inline.
  ASSERT_TRUE(loop.RunUntil([&] { return fired.size() == 4; }, kPatienceNs));
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(loop.pending_timer_count(), 0u);
}

TEST(EventLoopTest, EqualDeadlinesFireInStartOrderAndNotReentrantly) {
  EventLoop loop(nullptr);
  std::vector<int> fired;
  for (int i = 0; i < 5; ++i) {
    loop.StartTimer(0, [&, i] {
      fired.push_back(i);
      if (i == 0) {
        // A zero-delay timer started by a timer runs in a later pass, after the others.
        loop.StartTimer(0, [&] { fired.push_back(100); });
      }
    });
  }
  ASSERT_TRUE(loop.RunUntil([&] { return fired.size() == 6; }, kPatienceNs));
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4, 100}));
}

TEST(EventLoopTest, CancelledTimersDoNotFire) {
  EventLoop loop(nullptr);
  int fired = 0;
  std::vector<TimerId> timers;
  for (int i = 0; i < 200; ++i) {
    timers.push_back(loop.StartTimer(5 * kMillisecondNs, [&] { ++fired; }));
  }
  for (int i = 0; i < 200; i += 2) {
    loop.CancelTimer(timers[i]);
  }
  loop.CancelTimer(timers[0]);  // Twice: a no-op.
  loop.CancelTimer(kNoTimer);
  EXPECT_EQ(loop.pending_timer_count(), 100u);
  ASSERT_TRUE(loop.RunUntil([&] { return loop.pending_timer_count() == 0; }, kPatienceNs));
  loop.RunFor(10 * kMillisecondNs);
  EXPECT_EQ(fired, 100);
  loop.CancelTimer(timers[1]);  // Already fired: a no-op.
}

TEST(EventLoopTest, PostFromAnotherThreadWakesTheLoop) {
  EventLoop loop(nullptr);
  std::atomic<int> posted{0};
  int ran = 0;
  std::thread poster([&] {
    for (int i = 0; i < 1000; ++i) {
      loop.Post([&] { ++ran; });
      posted.fetch_add(1);
    }
  });
  // The loop would wait up to kWaitNsMax per iteration if the eventfd did not wake it.
  ASSERT_TRUE(loop.RunUntil([&] { return ran == 1000; }, kPatienceNs));
  poster.join();
  EXPECT_EQ(posted.load(), 1000);
}

TEST(EventLoopTest, RunStopsWhenStopIsPosted) {
  EventLoop loop(nullptr);
  std::thread stopper([&] { loop.Post([&] { loop.Stop(); }); });
  loop.Run();  // Returns only because of the posted Stop().
  stopper.join();
}

TEST(EventLoopTest, WatchesReportReadinessAndMayUnwatchThemselves) {
  EventLoop loop(nullptr);
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  int readable = 0;
  WatchId watch = kNoWatch;
  absl::StatusOr<WatchId> result = loop.Watch(fds[0], true, false, [&](uint32_t events) {
    EXPECT_NE(events & EPOLLIN, 0u);
    char byte;
    ASSERT_EQ(read(fds[0], &byte, 1), 1);
    ++readable;
    loop.Unwatch(watch);
  });
  ASSERT_TRUE(result.ok());
  watch = *result;
  loop.RunFor(2 * kMillisecondNs);
  EXPECT_EQ(readable, 0);
  ASSERT_EQ(write(fds[1], "xy", 2), 2);
  ASSERT_TRUE(loop.RunUntil([&] { return readable == 1; }, kPatienceNs));
  loop.RunFor(5 * kMillisecondNs);
  EXPECT_EQ(readable, 1);  // Unwatched although a byte is still readable.
  EXPECT_EQ(loop.watch_count(), 0u);
  EXPECT_FALSE(loop.Watch(-1, true, false, [](uint32_t) {}).ok());
  close(fds[0]);
  close(fds[1]);
}

TEST(EventLoopTest, FibersResumeAfterCallbacks) {
  FiberScheduler fibers;
  EventLoop loop(&fibers);
  std::vector<int> steps;
  fibers.Spawn("sleeper", [&] {
    steps.push_back(1);
    const FiberId self = fibers.current();
    loop.StartTimer(kMillisecondNs, [&, self] {
      steps.push_back(2);
      fibers.Wake(self);
    });
    fibers.Suspend();
    steps.push_back(3);
  });
  ASSERT_TRUE(loop.RunUntil([&] { return fibers.live_fiber_count() == 0; }, kPatienceNs));
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3}));
}

TEST(IoThreadTest, JobsRunInOrderAndCompleteOnTheLoop) {
  EventLoop loop(nullptr);
  std::vector<int> io_order;  // Written by the IO thread only.
  std::vector<int> loop_order;
  const std::thread::id loop_thread = std::this_thread::get_id();
  {
    IoThread io(loop);
    for (int i = 0; i < 50; ++i) {
      io.Submit([&, i] { io_order.push_back(i); },
                [&, i] {
                  EXPECT_EQ(std::this_thread::get_id(), loop_thread);
                  loop_order.push_back(i);
                });
    }
    io.Submit([] {}, nullptr);  // Either part may be empty.
    io.Submit(nullptr, [&] { loop_order.push_back(50); });
    EXPECT_TRUE(loop_order.empty());  // Never inline.
    ASSERT_TRUE(loop.RunUntil([&] { return loop_order.size() == 51; }, kPatienceNs));
    EXPECT_EQ(io.completed_job_count(), 52u);
  }
  ASSERT_EQ(io_order.size(), 50u);
  for (int i = 0; i <= 50; ++i) {
    EXPECT_EQ(loop_order[i], i);
    if (i < 50) {
      EXPECT_EQ(io_order[i], i);
    }
  }
}

}  // namespace
}  // namespace unimeter
