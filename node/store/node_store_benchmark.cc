// Restart time of a node holding many events: ingest N SUM events (batches of 500 over
// 10,000 accounts, client timestamps) through NodeStore on real files, checkpoint after
// 90 % of them, ingest the rest (the WAL tail a restart must replay), then measure a full
// restart: PosixEnv::Create + NodeStore::Open (load the checkpoint, replay the WAL tail) +
// committing the recovered suffix, i.e. until the node could serve again.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "node/base/check.h"
#include "node/env/posix/posix_env.h"
#include "node/store/node_store.h"

namespace unimeter {
namespace {

constexpr int64_t kBaseTimestampNs = 1'767'225'600'000'000'000;
constexpr uint64_t kAccounts = 10'000;
constexpr size_t kBatchEvents = 500;
constexpr int64_t kPatienceNs = 600'000'000'000;

std::unique_ptr<PosixEnv> MakeEnv(const std::string& dir) {
  PosixEnvOptions options;
  options.data_dir = dir;
  auto env = PosixEnv::Create(options);
  UM_CHECK_OK(env.status());
  return *std::move(env);
}

void Await(PosixEnv& env, absl::AnyInvocable<void(absl::AnyInvocable<void(absl::Status)>)> start) {
  bool done = false;
  absl::Status result;
  start([&](absl::Status status) {
    result = status;
    done = true;
  });
  UM_CHECK(env.loop().RunUntil([&] { return done; }, kPatienceNs));
  UM_CHECK_OK(result);
}

void RegisterEverywhere(PosixEnv& env, NodeStore& store) {
  metering::MetricSchema schema;
  schema.code = "m";
  schema.agg_type = metering::AggregationType::kSum;
  auto compiled = metering::CompiledSchema::Create(schema);
  UM_CHECK_OK(compiled.status());
  auto entry = std::make_shared<metering::LogEntry>(metering::LogEntry::Put(*compiled));
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    UM_CHECK_OK(store.Append(partition, store.last_index(partition) + 1, 1, entry));
  }
  Await(env, [&](auto done) { store.Sync(std::move(done)); });
  for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
    store.Commit(partition, store.last_index(partition), false);
  }
}

// Ingests events [first, end) in batches of 500 events of one partition each.
void Ingest(PosixEnv& env, NodeStore& store, std::vector<metering::PendingDedup>& pending,
            uint64_t first, uint64_t end) {
  std::vector<metering::Event> events(kBatchEvents);
  uint64_t batches_since_sync = 0;
  for (uint64_t k = first; k < end; k += kBatchEvents) {
    const uint32_t partition = static_cast<uint32_t>((k / kBatchEvents) % kPartitionCount);
    for (size_t i = 0; i < kBatchEvents; ++i) {
      const uint64_t account_slot = (k + i) % (kAccounts / kPartitionCount + 1);
      events[i].account_id = account_slot * kPartitionCount + partition;
      events[i].metric_code = "m";
      events[i].value = 1;
      events[i].timestamp_ns = kBaseTimestampNs + static_cast<int64_t>(k + i);
    }
    auto acceptance =
        store.state(partition).AcceptEvents(events, kBaseTimestampNs + k * 10, pending[partition]);
    UM_CHECK_OK(acceptance.status());
    UM_CHECK_OK(store.Append(partition, store.last_index(partition) + 1, 1,
                             std::make_shared<metering::LogEntry>(*acceptance->entry)));
    store.Commit(partition, store.last_index(partition), false);
    pending[partition].RetireApplied(store.state(partition).next_offset());
    if (++batches_since_sync == 256) {
      Await(env, [&](auto done) { store.Sync(std::move(done)); });
      batches_since_sync = 0;
    }
  }
  Await(env, [&](auto done) { store.Sync(std::move(done)); });
}

void BM_RestartAfterEvents(benchmark::State& state) {
  const uint64_t total_events = static_cast<uint64_t>(state.range(0));
  const std::string dir = std::filesystem::temp_directory_path().string() + "/um_restart_bench";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  uint64_t digest = 0;
  {
    auto env = MakeEnv(dir);
    auto store = NodeStore::Open(*env, NodeStoreOptions{});
    UM_CHECK_OK(store.status());
    RegisterEverywhere(*env, **store);
    std::vector<metering::PendingDedup> pending(kPartitionCount);
    const uint64_t checkpoint_at = total_events / 10 * 9;
    Ingest(*env, **store, pending, 0, checkpoint_at);
    Await(*env, [&](auto done) { (*store)->Checkpoint(std::move(done)); });
    Ingest(*env, **store, pending, checkpoint_at, total_events);
    digest = (*store)->Digest();
  }
  uint64_t replayed = 0;
  for (auto _ : state) {
    auto env = MakeEnv(dir);
    auto store = NodeStore::Open(*env, NodeStoreOptions{});
    UM_CHECK_OK(store.status());
    for (uint32_t partition = 0; partition < kPartitionCount; ++partition) {
      (*store)->Commit(partition, (*store)->last_index(partition), false);
    }
    state.PauseTiming();
    UM_CHECK_EQ((*store)->Digest(), digest);
    replayed = (*store)->stats().entries_replayed;
    store->reset();
    env.reset();
    state.ResumeTiming();
  }
  state.counters["events"] = static_cast<double>(total_events);
  state.counters["entries_replayed"] = static_cast<double>(replayed);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RestartAfterEvents)
    ->Arg(1'000'000)
    ->Arg(10'000'000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace unimeter
