// Goal: PosixEnv's state store is the real LMDB store under <data_dir>/state: a committed
// batch completes on the loop, survives destroying and recreating the Env, and the data
// directory's disk files and free-space report work.
#include "node/env/posix/posix_env.h"

#include <gtest/gtest.h>

#include "node/env/posix/test_util.h"
#include "storage/state_store.h"

namespace unimeter {
namespace {

using posix_test::kPatienceNs;
using posix_test::TempDir;

PosixEnvOptions OptionsFor(const std::string& data_dir) {
  PosixEnvOptions options;
  options.data_dir = data_dir;
  return options;
}

TEST(PosixEnv, StateStorePersistsAcrossEnvLifetimes) {
  TempDir dir;
  {
    auto env = *PosixEnv::Create(OptionsFor(dir.path()));
    StateStore* store = *env->OpenStateStore();
    EXPECT_EQ(*env->OpenStateStore(), store);  // Opened once, owned by the Env.
    WriteBatch batch;
    batch.Put("applied_index", "42");
    bool done = false;
    store->Commit(std::move(batch), [&](absl::Status status) {
      EXPECT_TRUE(status.ok()) << status;
      done = true;
    });
    ASSERT_TRUE(env->loop().RunUntil([&] { return done; }, kPatienceNs));
  }
  auto env = *PosixEnv::Create(OptionsFor(dir.path()));
  StateStore* store = *env->OpenStateStore();
  EXPECT_EQ(store->Get("applied_index")->value_or(""), "42");
  EXPECT_GT(*env->FreeDiskBytes(), 0u);
  EXPECT_TRUE(absl::IsNotFound(env->RemoveDiskFile("absent")));
  EXPECT_FALSE(env->OpenDiskFile("../escape").ok());
}

}  // namespace
}  // namespace unimeter
