// Benchmarks of the two StateStores:
//   BM_MemoryCommit100Puts   simulator store: Commit of 100 puts plus its completion.
//   BM_LmdbCommit1000Puts    LMDB: one synced write transaction of 1000 puts per batch
//                            (batches_per_second is the figure of interest).
//   BM_LmdbGet               LMDB point Get of a durable key (read txn + checksum + copy).
//   BM_LmdbCommitEventPuts   LMDB: a flush of stored events as the node writes them, one
//                            batch per partition of ~1,000 events in log order, keyed by
//                            (partition, account, offset) over 40 accounts per partition,
//                            into a store already holding ~1 M of them; items are events
//                            and the time is CPU time (the transaction's puts, not its
//                            fdatasync).
// The LMDB store writes under $TEST_TMPDIR (or /tmp); run with
//   bazel run -c opt //storage:state_store_benchmark
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "node/base/check.h"
#include "storage/io_executor.h"
#include "storage/lmdb_state_store.h"
#include "storage/memory_state_store.h"

namespace unimeter {
namespace {

// Runs io_work inline (the benchmark thread is the IO thread) and queues on_loop.
class InlineIoExecutor final : public IoExecutor {
 public:
  void Submit(absl::AnyInvocable<void()> io_work, absl::AnyInvocable<void()> on_loop) override {
    if (io_work != nullptr) {
      io_work();
    }
    completions_.push_back(std::move(on_loop));
  }
  void Drain() {
    while (!completions_.empty()) {
      absl::AnyInvocable<void()> on_loop = std::move(completions_.front());
      completions_.pop_front();
      if (on_loop != nullptr) {
        on_loop();
      }
    }
  }

 private:
  std::deque<absl::AnyInvocable<void()>> completions_;
};

std::string Key(uint64_t number) {
  char key[32];
  snprintf(key, sizeof(key), "account/%010llu", static_cast<unsigned long long>(number));
  return key;
}

// A temporary LMDB directory, removed at the end of the benchmark.
class TempDirectory {
 public:
  TempDirectory() {
    const char* root = getenv("TEST_TMPDIR");
    path_ = std::string(root != nullptr ? root : "/tmp") + "/state_store_benchmark_XXXXXX";
    UM_CHECK(mkdtemp(path_.data()) != nullptr);
  }
  ~TempDirectory() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<LmdbStateStore> OpenLmdb(const std::string& directory, IoExecutor& io) {
  LmdbStateStoreOptions options;
  options.map_size_bytes = uint64_t{4} << 30;
  absl::StatusOr<std::unique_ptr<LmdbStateStore>> store =
      LmdbStateStore::Open(directory, options, io);
  UM_CHECK_OK(store.status());
  return std::move(*store);
}

void CommitAndCheck(StateStore& store, WriteBatch batch) {
  store.Commit(std::move(batch), [](absl::Status status) { UM_CHECK_OK(status); });
}

void BM_MemoryCommit100Puts(benchmark::State& state) {
  MemoryStateMedium medium;
  std::vector<absl::AnyInvocable<void()>> completions;
  MemoryStateStore store(medium, [&completions](absl::AnyInvocable<void()> complete) {
    completions.push_back(std::move(complete));
  });
  const std::string value(64, 'v');
  uint64_t number = 0;
  for (auto _ : state) {
    WriteBatch batch;
    for (int i = 0; i < 100; ++i) {
      batch.Put(Key(number++ % 100000), value);
    }
    CommitAndCheck(store, std::move(batch));
    for (absl::AnyInvocable<void()>& complete : completions) {
      complete();
    }
    completions.clear();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 100);
}
BENCHMARK(BM_MemoryCommit100Puts);

void BM_LmdbCommit1000Puts(benchmark::State& state) {
  TempDirectory directory;
  InlineIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenLmdb(directory.path(), io);
  const std::string value(64, 'v');
  uint64_t number = 0;
  for (auto _ : state) {
    WriteBatch batch;
    for (int i = 0; i < 1000; ++i) {
      batch.Put(Key(number++ % 1000000), value);
    }
    CommitAndCheck(*store, std::move(batch));
    io.Drain();
  }
  state.counters["batches_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 1000);
  store.reset();
}
BENCHMARK(BM_LmdbCommit1000Puts)->UseRealTime();

std::string EventKey(uint32_t partition, uint64_t account, uint64_t offset) {
  std::string key(18, '\0');
  key[0] = 'e';
  key[1] = static_cast<char>(partition);
  for (int i = 0; i < 8; ++i) {
    key[2 + i] = static_cast<char>(account >> (56 - 8 * i));
    key[10 + i] = static_cast<char>(offset >> (56 - 8 * i));
  }
  return key;
}

void BM_LmdbCommitEventPuts(benchmark::State& state) {
  constexpr uint32_t kPartitions = 256;
  constexpr uint64_t kAccountsPerPartition = 40;
  constexpr int kEventsPerBatch = 1000;
  constexpr int kBatchesPerCommit = 16;
  TempDirectory directory;
  InlineIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenLmdb(directory.path(), io);
  const std::string value(60, 'v');
  std::vector<uint64_t> next_offset(kPartitions, 0);
  uint64_t random = 88172645463325252ULL;
  uint32_t partition = 0;
  // One commit of kBatchesPerCommit partitions' batches, as one IO job.
  auto flush = [&] {
    for (int b = 0; b < kBatchesPerCommit; ++b) {
      WriteBatch batch;
      for (int i = 0; i < kEventsPerBatch; ++i) {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        const uint64_t account = (random % kAccountsPerPartition) * kPartitions + partition;
        batch.Put(EventKey(partition, account, next_offset[partition]++), value);
      }
      store->Commit(std::move(batch), [](absl::Status status) { UM_CHECK_OK(status); });
      partition = (partition + 1) % kPartitions;
    }
    io.Drain();
  };
  for (int i = 0; i < 64; ++i) flush();  // ~1 M events stored before timing.
  for (auto _ : state) flush();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kEventsPerBatch *
                          kBatchesPerCommit);
  store.reset();
}
BENCHMARK(BM_LmdbCommitEventPuts)->Iterations(60)->Unit(benchmark::kMillisecond);

void BM_LmdbGet(benchmark::State& state) {
  constexpr uint64_t kKeyCount = 100000;
  TempDirectory directory;
  InlineIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenLmdb(directory.path(), io);
  for (uint64_t first = 0; first < kKeyCount; first += 10000) {
    WriteBatch batch;
    for (uint64_t number = first; number < first + 10000; ++number) {
      batch.Put(Key(number), std::string(64, static_cast<char>('a' + number % 26)));
    }
    CommitAndCheck(*store, std::move(batch));
    io.Drain();
  }
  uint64_t number = 0;
  for (auto _ : state) {
    number = (number + 7919) % kKeyCount;  // A prime stride visits every key.
    absl::StatusOr<std::optional<std::string>> value = store->Get(Key(number));
    UM_CHECK(value.ok());
    UM_CHECK(value->has_value());
    benchmark::DoNotOptimize(value);
  }
  store.reset();
}
BENCHMARK(BM_LmdbGet);

}  // namespace
}  // namespace unimeter
