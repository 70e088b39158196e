// Goal: the fiber scheduler runs bodies sequentially with explicit suspension points,
// wakes exactly the fiber asked for, honours a wake that arrives before the suspend, picks
// deterministically from a PRNG, and unwinds suspended stacks (RAII runs) on shutdown.
#include "node/env/fiber.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace unimeter {
namespace {

TEST(FiberScheduler, RunsToCompletionAndInterleavesAtSuspendPoints) {
  FiberScheduler scheduler;
  std::vector<std::string> trace;
  const FiberId a = scheduler.Spawn("a", [&] {
    trace.push_back("a1");
    scheduler.Suspend();
    trace.push_back("a2");
  });
  scheduler.Spawn("b", [&] { trace.push_back("b1"); });
  scheduler.RunReady();
  EXPECT_EQ(trace, (std::vector<std::string>{"a1", "b1"}));
  EXPECT_EQ(scheduler.live_fiber_count(), 1u);
  scheduler.Wake(a);
  scheduler.RunReady();
  EXPECT_EQ(trace, (std::vector<std::string>{"a1", "b1", "a2"}));
  EXPECT_EQ(scheduler.live_fiber_count(), 0u);
}

TEST(FiberScheduler, WakeBeforeSuspendIsNotLost) {
  FiberScheduler scheduler;
  int steps = 0;
  scheduler.Spawn("self-wake", [&] {
    scheduler.Wake(scheduler.current());
    scheduler.Suspend();  // Returns at once.
    ++steps;
  });
  scheduler.RunReady();
  EXPECT_EQ(steps, 1);
}

TEST(FiberScheduler, AwaitReturnsValueFromLaterCallback) {
  FiberScheduler scheduler;
  absl::AnyInvocable<void(int)> pending;
  int result = 0;
  scheduler.Spawn("await", [&] {
    result = Await<int>(scheduler,
                        [&](absl::AnyInvocable<void(int)> done) { pending = std::move(done); });
  });
  scheduler.RunReady();
  EXPECT_EQ(result, 0);
  pending(41 + 1);
  scheduler.RunReady();
  EXPECT_EQ(result, 42);
}

TEST(FiberScheduler, ShutdownUnwindsSuspendedStacks) {
  int destructors = 0;
  struct Guard {
    int* counter;
    ~Guard() { ++*counter; }
  };
  {
    FiberScheduler scheduler;
    for (int i = 0; i < 3; ++i) {
      scheduler.Spawn("stuck", [&] {
        Guard guard{&destructors};
        scheduler.Suspend();
        ADD_FAILURE() << "a stuck fiber must never resume";
      });
    }
    scheduler.RunReady();
    EXPECT_EQ(scheduler.live_fiber_count(), 3u);
  }
  EXPECT_EQ(destructors, 3);
}

TEST(FiberScheduler, PrngPickIsDeterministicPerSeed) {
  auto run = [](uint64_t seed) {
    Prng prng(seed);
    FiberScheduler scheduler(&prng);
    std::string order;
    for (char name = 'a'; name <= 'h'; ++name) {
      scheduler.Spawn(std::string(1, name), [&order, name] { order.push_back(name); });
    }
    scheduler.RunReady();
    return order;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
  EXPECT_EQ(run(3).size(), 8u);
}

}  // namespace
}  // namespace unimeter
