#include "node/env/env.h"

#include "node/base/check.h"

namespace unimeter {

void SleepFor(Env& env, int64_t delay_ns) {
  UM_CHECK(env.fibers().in_fiber());
  UM_CHECK_GE(delay_ns, 0);
  Await<bool>(env.fibers(), [&](absl::AnyInvocable<void(bool)> done) {
    env.StartTimer(delay_ns, [done = std::move(done)]() mutable { done(true); });
  });
}

absl::Status SyncAndWait(Env& env, DiskFile& disk) {
  UM_CHECK(env.fibers().in_fiber());
  return Await<absl::Status>(env.fibers(), [&](absl::AnyInvocable<void(absl::Status)> done) {
    disk.Sync(std::move(done));
  });
}

}  // namespace unimeter
