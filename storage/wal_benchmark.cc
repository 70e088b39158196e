// WAL speed on the real disk through PosixEnv:
//   BM_Replay              Wal::Open over a log of records of 500 events x ~100 bytes
//                          (50,000-byte bodies); reports records/s, events/s and MB/s.
//                          The files are in the page cache (recovery right after a crash
//                          of the process, not of the machine); hashing dominates.
//   BM_AppendSync          append `range(1)` records of `range(0)` bytes, then one Sync
//                          (one fdatasync): the group commit cost per record.
//   BM_RawFdatasync        the disk's floor: one 4 KiB write + DiskFile::Sync, timed one
//                          by one; reports p50 and p99 in microseconds.
// Run: bazel run -c opt //storage:wal_benchmark (or bazel-bin/storage/wal_benchmark).
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "node/base/check.h"
#include "node/env/posix/posix_env.h"
#include "node/env/posix/test_util.h"
#include "storage/wal.h"

namespace unimeter {
namespace {

using posix_test::kPatienceNs;
using posix_test::TempDir;

constexpr size_t kEventsPerRecord = 500;
constexpr size_t kEventSizeBytes = 100;

std::unique_ptr<PosixEnv> MakeEnv(const std::string& dir) {
  PosixEnvOptions options;
  options.data_dir = dir;
  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(std::move(options));
  UM_CHECK_OK(env.status());
  return *std::move(env);
}

std::unique_ptr<Wal> OpenWal(PosixEnv& env, uint64_t* replayed = nullptr) {
  absl::StatusOr<std::unique_ptr<Wal>> wal =
      Wal::Open(env, WalOptions{}, [replayed](const WalRecordView& record) {
        if (replayed != nullptr) {
          ++*replayed;
        }
        benchmark::DoNotOptimize(record.body.data());
      });
  UM_CHECK_OK(wal.status());
  return *std::move(wal);
}

void SyncAndRun(PosixEnv& env, Wal& wal) {
  bool done = false;
  wal.Sync([&](absl::Status status) {
    UM_CHECK_OK(status);
    done = true;
  });
  UM_CHECK(env.loop().RunUntil([&] { return done; }, kPatienceNs));
}

std::vector<uint8_t> Body(size_t size_bytes) {
  std::vector<uint8_t> body(size_bytes);
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  return body;
}

void BM_Replay(benchmark::State& state) {
  const size_t record_count = static_cast<size_t>(state.range(0));
  TempDir dir;
  const std::vector<uint8_t> body = Body(kEventsPerRecord * kEventSizeBytes);
  {
    std::unique_ptr<PosixEnv> env = MakeEnv(dir.path());
    std::unique_ptr<Wal> wal = OpenWal(*env);
    for (size_t i = 0; i < record_count; ++i) {
      UM_CHECK_OK(wal->Append(1, static_cast<uint32_t>(i % 256), i, 1, body).status());
      if (i % 64 == 63) {
        SyncAndRun(*env, *wal);
      }
    }
    SyncAndRun(*env, *wal);
  }
  uint64_t bytes = 0;
  for (auto _ : state) {
    std::unique_ptr<PosixEnv> env = MakeEnv(dir.path());
    uint64_t replayed = 0;
    std::unique_ptr<Wal> wal = OpenWal(*env, &replayed);
    UM_CHECK_EQ(replayed, record_count);
    bytes += wal->stats().bytes_replayed;
  }
  const double records = static_cast<double>(state.iterations() * record_count);
  state.counters["records/s"] = benchmark::Counter(records, benchmark::Counter::kIsRate);
  state.counters["events/s"] =
      benchmark::Counter(records * kEventsPerRecord, benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Replay)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Baseline for BM_Replay: read the same log's bytes (every segment, sequentially, page cache
// warm) and do nothing else: the floor a recovery cannot beat.
void BM_ReplayReadBaseline(benchmark::State& state) {
  const size_t record_count = static_cast<size_t>(state.range(0));
  TempDir dir;
  const std::vector<uint8_t> body = Body(kEventsPerRecord * kEventSizeBytes);
  std::vector<uint64_t> segments;
  {
    std::unique_ptr<PosixEnv> env = MakeEnv(dir.path());
    std::unique_ptr<Wal> wal = OpenWal(*env);
    for (size_t i = 0; i < record_count; ++i) {
      UM_CHECK_OK(wal->Append(1, static_cast<uint32_t>(i % 256), i, 1, body).status());
      if (i % 64 == 63) {
        SyncAndRun(*env, *wal);
      }
    }
    SyncAndRun(*env, *wal);
    segments = wal->segment_bases();
  }
  std::vector<uint8_t> buffer(4 * 1024 * 1024);
  uint64_t bytes = 0;
  for (auto _ : state) {
    std::unique_ptr<PosixEnv> env = MakeEnv(dir.path());
    for (uint64_t base : segments) {
      absl::StatusOr<std::unique_ptr<DiskFile>> file = env->OpenDiskFile(WalSegmentFileName(base));
      UM_CHECK_OK(file.status());
      for (uint64_t offset = 0; offset < (*file)->size_bytes();) {
        absl::StatusOr<size_t> read = (*file)->Read(offset, absl::MakeSpan(buffer));
        UM_CHECK_OK(read.status());
        UM_CHECK_GT(*read, 0u);
        offset += *read;
        bytes += *read;
      }
    }
  }
  const double records = static_cast<double>(state.iterations() * record_count);
  state.counters["records/s"] = benchmark::Counter(records, benchmark::Counter::kIsRate);
  state.counters["events/s"] =
      benchmark::Counter(records * kEventsPerRecord, benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ReplayReadBaseline)->Arg(1000)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_AppendSync(benchmark::State& state) {
  const size_t body_size = static_cast<size_t>(state.range(0));
  const size_t group_records = static_cast<size_t>(state.range(1));
  TempDir dir;
  std::unique_ptr<PosixEnv> env = MakeEnv(dir.path());
  std::unique_ptr<Wal> wal = OpenWal(*env);
  const std::vector<uint8_t> body = Body(body_size);
  uint64_t index = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < group_records; ++i) {
      UM_CHECK_OK(wal->Append(1, static_cast<uint32_t>(index % 256), index, 1, body).status());
      ++index;
    }
    SyncAndRun(*env, *wal);
  }
  state.counters["records/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * group_records), benchmark::Counter::kIsRate);
  state.counters["syncs"] = static_cast<double>(wal->stats().disk_syncs);
  state.SetBytesProcessed(static_cast<int64_t>(wal->stats().bytes_appended));
  wal.reset();
}
BENCHMARK(BM_AppendSync)
    ->Args({200, 1})
    ->Args({200, 256})
    ->Args({50'000, 1})
    ->Args({50'000, 16})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

void BM_RawFdatasync(benchmark::State& state) {
  TempDir dir;
  std::unique_ptr<PosixEnv> env = MakeEnv(dir.path());
  absl::StatusOr<std::unique_ptr<DiskFile>> file = env->OpenDiskFile("raw.log");
  UM_CHECK_OK(file.status());
  const std::vector<uint8_t> block = Body(4096);
  std::vector<int64_t> latencies_ns;
  uint64_t offset = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    (*file)->Write(offset, block);
    offset += block.size();
    bool done = false;
    (*file)->Sync([&](absl::Status status) {
      UM_CHECK_OK(status);
      done = true;
    });
    UM_CHECK(env->loop().RunUntil([&] { return done; }, kPatienceNs));
    latencies_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - start)
                               .count());
  }
  std::sort(latencies_ns.begin(), latencies_ns.end());
  state.counters["p50_us"] = static_cast<double>(latencies_ns[latencies_ns.size() / 2]) / 1000;
  state.counters["p99_us"] =
      static_cast<double>(latencies_ns[latencies_ns.size() * 99 / 100]) / 1000;
  file->reset();
}
BENCHMARK(BM_RawFdatasync)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace unimeter
