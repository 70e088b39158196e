#include "node/env/env.h"

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter {

bool FailStopOnError(Env& env, const absl::Status& status, absl::string_view what) {
  if (status.ok()) return false;
  env.FailStop(absl::Status(status.code(), absl::StrCat(what, ": ", status.message())));
  return true;
}

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
