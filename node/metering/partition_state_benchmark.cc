// Benchmarks of PartitionState (one core). Targets: Apply >= 3 M SUM events/s for batches of
// 500 over 10,000 accounts with dedup on (client timestamps); a point usage query <= 200 ns;
// <= 200 bytes of memory per live aggregate key (measured with mallinfo2 deltas).
//
//   bazel run -c opt //node/metering:partition_state_benchmark
#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "benchmark/benchmark.h"
#include "node/base/random.h"
#include "node/metering/partition_state.h"

namespace unimeter::metering {
namespace {

constexpr uint64_t kAccounts = 10'000;
constexpr size_t kBatchEvents = 500;
constexpr int64_t kT0 = 1'767'225'600LL * kNanosPerSecond;

MetricSchema SumSchema(bool with_dimensions) {
  MetricSchema schema;
  schema.code = "api_calls";
  schema.agg_type = AggregationType::kSum;
  schema.thresholds = {{"soft", 1'000'000'000, false}};
  if (with_dimensions) {
    schema.dimensions = {{"provider", {"aws", "gcp", "azure"}}, {"region", {"us", "eu"}}};
  }
  return schema;
}

// Batches as the owner would emit them: client timestamps (content dedup keys), accept
// times 1 s apart, so the default 300 s window holds 300 batches (150,000 keys) in steady
// state: every applied batch inserts 500 keys and expires 500.
std::vector<LogEntry> MakeBatches(size_t count, bool client_timestamps, bool with_properties,
                                  uint64_t seed) {
  Prng prng(seed);
  std::vector<LogEntry> entries;
  uint64_t offset = 1;
  int64_t ts = kT0;
  for (size_t b = 0; b < count; ++b) {
    auto batch = std::make_shared<EventBatch>();
    batch->accept_time_ns = kT0 + static_cast<int64_t>(b) * kNanosPerSecond;
    batch->first_offset = offset;
    batch->events.resize(kBatchEvents);
    for (BatchEvent& event : batch->events) {
      event.account_id = prng.UniformBelow(kAccounts) * kPartitionCount;
      event.metric_code = "api_calls";
      event.value = 1 + prng.UniformBelow(1000);
      event.timestamp_ns = ++ts;
      event.registered = true;
      event.server_stamped = !client_timestamps;
      event.dedup_class = client_timestamps ? DedupClass::kContent : DedupClass::kNone;
      if (with_properties) {
        event.properties = {{"provider", prng.Chance(1, 2) ? "aws" : "gcp"},
                            {"region", prng.Chance(1, 2) ? "us" : "eu"}};
      }
    }
    offset += kBatchEvents;
    entries.push_back(LogEntry::Events(std::move(batch)));
  }
  return entries;
}

std::unique_ptr<PartitionState> NewState(bool with_dimensions, uint64_t* index) {
  auto state = std::make_unique<PartitionState>(PartitionOptions{});
  ApplyOutput output;
  state->Apply(++*index, LogEntry::Put(*CompiledSchema::Create(SumSchema(with_dimensions))),
               &output);
  return state;
}

void BM_ApplySumBatches(benchmark::State& bench) {
  const bool with_dimensions = bench.range(0) != 0;
  constexpr size_t kWarmupBatches = 600;  // Fill the dedup window before timing.
  const std::vector<LogEntry> entries = MakeBatches(
      kWarmupBatches + static_cast<size_t>(bench.max_iterations), true, with_dimensions, 1);
  uint64_t index = 0;
  std::unique_ptr<PartitionState> state = NewState(with_dimensions, &index);
  ApplyOutput output;
  size_t next = 0;
  while (next < kWarmupBatches) {
    output.Clear();
    state->Apply(++index, entries[next++], &output);
  }
  for (auto _ : bench) {
    output.Clear();
    state->Apply(++index, entries[next++], &output);
  }
  bench.SetItemsProcessed(static_cast<int64_t>((next - kWarmupBatches) * kBatchEvents));
  bench.counters["dedup_keys"] = static_cast<double>(state->content_dedup_key_count());
  bench.counters["agg_keys"] = static_cast<double>(state->aggregate_key_count());
}
BENCHMARK(BM_ApplySumBatches)->Arg(0)->Arg(1)->Iterations(2000)->Unit(benchmark::kMicrosecond);

// Baseline for BM_ApplySumBatches/0: the same events folded into a bare hash map keyed by
// account (a 128-bit sum each) and a hash set of dedup keys, with no buckets, schemas,
// thresholds, window expiry or ordered index: the floor of "add a number to a total".
void BM_BaselineHashMapSum(benchmark::State& bench) {
  constexpr size_t kWarmupBatches = 600;
  const std::vector<LogEntry> entries =
      MakeBatches(kWarmupBatches + static_cast<size_t>(bench.max_iterations), true, false, 1);
  absl::flat_hash_map<uint64_t, unsigned __int128> sums;  // determinism-ok: benchmark only
  absl::flat_hash_set<uint64_t> seen;                     // determinism-ok: benchmark only
  auto fold = [&](const LogEntry& entry) {
    for (const BatchEvent& event : entry.batch()->events) {
      const uint64_t key = event.account_id * 0x9E3779B97F4A7C15ULL ^
                           static_cast<uint64_t>(event.timestamp_ns) ^ event.value;
      if (seen.insert(key).second) {
        sums[event.account_id] += event.value;
      }
    }
  };
  size_t next = 0;
  while (next < kWarmupBatches) {
    fold(entries[next++]);
  }
  for (auto _ : bench) {
    fold(entries[next++]);
  }
  benchmark::DoNotOptimize(sums.size());
  bench.SetItemsProcessed(static_cast<int64_t>((next - kWarmupBatches) * kBatchEvents));
}
BENCHMARK(BM_BaselineHashMapSum)->Iterations(2000)->Unit(benchmark::kMicrosecond);

std::unique_ptr<PartitionState> LoadedState(bool with_dimensions) {
  uint64_t index = 0;
  std::unique_ptr<PartitionState> state = NewState(with_dimensions, &index);
  ApplyOutput output;
  for (const LogEntry& entry : MakeBatches(200, false, with_dimensions, 2)) {
    state->Apply(++index, entry, &output);
    output.Clear();
  }
  return state;
}

void BM_PointUsageQuery(benchmark::State& bench) {
  const bool filtered = bench.range(0) != 0;
  std::unique_ptr<PartitionState> state = LoadedState(true);
  const std::vector<Filter> filters =
      filtered ? std::vector<Filter>{{"provider", "aws"}, {"region", "eu"}} : std::vector<Filter>{};
  const std::string code = "api_calls";
  Prng prng(3);
  std::vector<uint64_t> accounts(4096);
  for (uint64_t& account : accounts) account = prng.UniformBelow(kAccounts) * kPartitionCount;
  size_t i = 0;
  for (auto _ : bench) {
    absl::StatusOr<AggValue> value =
        state->QueryUsage(accounts[i++ & 4095], code, kT0, kT0 + kNanosPerDay, filters);
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_PointUsageQuery)->Arg(0)->Arg(1);

// Bytes allocated per live aggregate key: heap growth (mallinfo2) while applying
// server-stamped events (no dedup keys), divided by the number of keys created. Arg 0:
// unfiltered totals only (one key per account); arg 1: two dimensions (each event also
// updates 3 slices).
void BM_MemoryPerAggregateKey(benchmark::State& bench) {
  const bool with_dimensions = bench.range(0) != 0;
  const std::vector<LogEntry> entries = MakeBatches(400, false, with_dimensions, 4);
  double bytes_per_key = 0;
  uint64_t keys = 0;
  for (auto _ : bench) {
    uint64_t index = 0;
    const size_t before = mallinfo2().uordblks;
    std::unique_ptr<PartitionState> state = NewState(with_dimensions, &index);
    ApplyOutput output;
    for (const LogEntry& entry : entries) {
      state->Apply(++index, entry, &output);
      output.Clear();
    }
    output.stored_batches.shrink_to_fit();
    const size_t after = mallinfo2().uordblks;
    keys = state->aggregate_key_count();
    bytes_per_key = static_cast<double>(after - before) / static_cast<double>(keys);
  }
  bench.counters["bytes_per_key"] = bytes_per_key;
  bench.counters["keys"] = static_cast<double>(keys);
}
BENCHMARK(BM_MemoryPerAggregateKey)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

// Bytes allocated per live content dedup key: heap growth (mallinfo2) while applying
// client-timestamped events (each a new key, all inside the window) to an index of
// bench.range(0) keys, less the same growth for server-stamped events (no keys), divided
// by the number of keys.
void BM_MemoryPerDedupKey(benchmark::State& bench) {
  const size_t batches = static_cast<size_t>(bench.range(0)) / kBatchEvents;
  const std::vector<LogEntry> with_keys = MakeBatches(batches, true, false, 6);
  const std::vector<LogEntry> without_keys = MakeBatches(batches, false, false, 6);
  double bytes_per_key = 0;
  size_t keys = 0;
  for (auto _ : bench) {
    size_t growth[2] = {0, 0};
    for (int run = 0; run < 2; ++run) {
      uint64_t index = 0;
      const size_t before = mallinfo2().uordblks;
      std::unique_ptr<PartitionState> state = NewState(false, &index);
      ApplyOutput output;
      for (const LogEntry& entry : run == 0 ? with_keys : without_keys) {
        state->Apply(++index, entry, &output);
        output.Clear();
      }
      output.stored_batches.shrink_to_fit();
      growth[run] = mallinfo2().uordblks - before;
      if (run == 0) keys = state->content_dedup_key_count();
    }
    bytes_per_key = (static_cast<double>(growth[0]) - static_cast<double>(growth[1])) /
                    static_cast<double>(keys);
  }
  bench.counters["bytes_per_key"] = bytes_per_key;
  bench.counters["keys"] = static_cast<double>(keys);
}
BENCHMARK(BM_MemoryPerDedupKey)
    ->Arg(100'000)
    ->Arg(150'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

void BM_AcceptEvents(benchmark::State& bench) {
  uint64_t index = 0;
  std::unique_ptr<PartitionState> state = NewState(false, &index);
  Prng prng(5);
  std::vector<Event> events(kBatchEvents);
  int64_t ts = kT0;
  PendingDedup pending;
  for (auto _ : bench) {
    for (Event& event : events) {
      event.account_id = prng.UniformBelow(kAccounts) * kPartitionCount;
      event.metric_code = "api_calls";
      event.value = 1;
      event.timestamp_ns = ++ts;
    }
    absl::StatusOr<Acceptance> acceptance = state->AcceptEvents(events, ts, pending);
    benchmark::DoNotOptimize(acceptance);
    pending.Clear();
  }
  bench.SetItemsProcessed(bench.iterations() * static_cast<int64_t>(kBatchEvents));
}
BENCHMARK(BM_AcceptEvents)->Unit(benchmark::kMicrosecond);

// Content dedup keys as a loaded node records them: 256 partitions' indexes filled from
// empty by runs of 3 keys to a random partition (a 500-event request spreads over ~200
// partitions), so every insert finds its index cold and each index grows through its
// rehashes; then, with bench.range(0) = 1, a full window is expired and refilled (steady
// state: every insert also evicts a key). Items: keys inserted.
void BM_ContentKeysAcrossPartitions(benchmark::State& bench) {
  constexpr size_t kIndexes = kPartitionCount;
  constexpr size_t kKeysPerIndex = 6'000;
  const bool steady = bench.range(0) != 0;
  Prng prng(12);
  int64_t inserted = 0;
  for (auto _ : bench) {
    bench.PauseTiming();
    auto indexes = std::make_unique<ExpiringIndex<ContentKey, int64_t>[]>(kIndexes);
    int64_t log_time = 0;
    int64_t ts = kT0;
    auto fill = [&](size_t keys) {
      for (size_t done = 0; done < keys; done += 3) {
        ExpiringIndex<ContentKey, int64_t>& index = indexes[prng.UniformBelow(kIndexes)];
        ++log_time;
        index.Expire(log_time, static_cast<int64_t>(kIndexes * kKeysPerIndex / 3));
        for (int k = 0; k < 3; ++k) {
          const ContentKey key{prng.UniformBelow(kAccounts), ++ts, 1 + prng.UniformBelow(1000), 0,
                               0};
          index.Insert(key, log_time, log_time);
        }
      }
    };
    if (steady) fill(kIndexes * kKeysPerIndex);
    bench.ResumeTiming();
    fill(kIndexes * kKeysPerIndex);
    inserted += static_cast<int64_t>(kIndexes * kKeysPerIndex);
    bench.PauseTiming();
    indexes.reset();
    bench.ResumeTiming();
  }
  bench.SetItemsProcessed(inserted);
}
BENCHMARK(BM_ContentKeysAcrossPartitions)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// Applying as a loaded node does: 256 partitions, each entry holding the events one loop
// turn accepted for one partition (about 20: eight 500-event requests over 10,000 accounts
// spread over ~250 partitions), five SUM metrics, client timestamps (content dedup keys).
// Every entry goes to a random partition, so each finds its series, buckets and dedup index
// cold, as on the node (where the working set is far larger than the caches). The
// partitions first hold 2 M keys; the timed entries continue the stream. Arg 0: the
// entries are applied; arg 1: the owner accepts their events as one part each (new keys,
// looked up in the filled dedup tables; nothing applied). Items: events.
void BM_ApplyAcrossPartitions(benchmark::State& bench) {
  const bool accept = bench.range(0) != 0;
  constexpr size_t kEntryEvents = 20;
  constexpr size_t kWarmupEntries = 100'000;
  constexpr size_t kTimedEntries = 20'000;
  static constexpr const char* kCodes[] = {"m0", "m1", "m2", "m3", "m4"};
  Prng prng(21);
  std::vector<std::unique_ptr<PartitionState>> states;
  std::vector<uint64_t> indexes(kPartitionCount, 0);
  std::vector<uint64_t> offsets(kPartitionCount, 1);
  for (uint32_t p = 0; p < kPartitionCount; ++p) {
    PartitionOptions options;
    options.partition_id = p;
    states.push_back(std::make_unique<PartitionState>(options));
    ApplyOutput output;
    for (const char* code : kCodes) {
      MetricSchema schema = SumSchema(false);
      schema.code = code;
      states[p]->Apply(++indexes[p], LogEntry::Put(*CompiledSchema::Create(schema)), &output);
    }
  }
  int64_t ts = kT0;
  int64_t accept_ns = kT0;
  auto make_entry = [&](uint32_t* partition) {
    *partition = static_cast<uint32_t>(prng.UniformBelow(kPartitionCount));
    auto batch = std::make_shared<EventBatch>();
    accept_ns += 50'000;  // 20 events per 50 us: 400,000 events/s.
    batch->accept_time_ns = accept_ns;
    batch->first_offset = offsets[*partition];
    batch->events.resize(kEntryEvents);
    for (BatchEvent& event : batch->events) {
      event.account_id = *partition + kPartitionCount * prng.UniformBelow(kAccounts / 256);
      event.metric_code = kCodes[prng.UniformBelow(5)];
      event.value = 1 + prng.UniformBelow(1000);
      event.timestamp_ns = ++ts;
      event.registered = true;
      event.dedup_class = DedupClass::kContent;
    }
    offsets[*partition] += kEntryEvents;
    return LogEntry::Events(std::move(batch));
  };
  ApplyOutput output;
  for (size_t e = 0; e < kWarmupEntries; ++e) {
    uint32_t partition = 0;
    const LogEntry entry = make_entry(&partition);
    output.Clear();
    states[partition]->Apply(++indexes[partition], entry, &output);
  }
  std::vector<std::pair<uint32_t, LogEntry>> timed;
  timed.reserve(kTimedEntries);
  for (size_t e = 0; e < kTimedEntries; ++e) {
    uint32_t partition = 0;
    LogEntry entry = make_entry(&partition);
    timed.emplace_back(partition, std::move(entry));
  }
  std::vector<std::vector<Event>> parts;
  if (accept) {
    // The owner's lookup tables are built as it accepts: one accept each builds them.
    PendingDedup warm;
    for (uint32_t p = 0; p < kPartitionCount; ++p) {
      Event event;
      event.account_id = p;
      event.metric_code = kCodes[0];
      event.value = 1;
      event.timestamp_ns = kT0 - 1;
      benchmark::DoNotOptimize(states[p]->AcceptEvents({&event, 1}, accept_ns, warm));
      warm.Clear();
    }
    for (const auto& [partition, entry] : timed) {
      std::vector<Event>& events = parts.emplace_back();
      for (const BatchEvent& batch_event : entry.batch()->events) {
        Event& event = events.emplace_back();
        event.account_id = batch_event.account_id;
        event.metric_code = batch_event.metric_code;
        event.value = batch_event.value;
        event.timestamp_ns = batch_event.timestamp_ns;
      }
    }
  }
  PendingDedup pending;
  for (auto _ : bench) {
    for (size_t e = 0; e < timed.size(); ++e) {
      const auto& [partition, entry] = timed[e];
      if (accept) {
        absl::StatusOr<Acceptance> acceptance =
            states[partition]->AcceptEvents(parts[e], accept_ns, pending);
        if (!acceptance.ok() || acceptance->result.n_duplicates != 0) {
          bench.SkipWithError("events refused or taken for duplicates");
          return;
        }
        pending.Clear();
        continue;
      }
      output.Clear();
      states[partition]->Apply(++indexes[partition], entry, &output);
    }
  }
  bench.SetItemsProcessed(bench.iterations() * static_cast<int64_t>(kTimedEntries * kEntryEvents));
}
BENCHMARK(BM_ApplyAcrossPartitions)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->Repetitions(5)
    ->Unit(benchmark::kMillisecond);

// The canonical encoding of one 500-event batch (done once per entry for the WAL, and for
// every replication message that carries it). Arg: 1 = two properties per event.
void BM_EncodeEventBatch(benchmark::State& bench) {
  const std::vector<LogEntry> batches = MakeBatches(16, true, bench.range(0) == 1, 11);
  size_t next = 0;
  size_t bytes = 0;
  for (auto _ : bench) {
    std::vector<uint8_t> encoded = EncodeLogEntry(batches[next++ % batches.size()]);
    bytes += encoded.size();
    benchmark::DoNotOptimize(encoded);
  }
  bench.SetItemsProcessed(bench.iterations() * static_cast<int64_t>(kBatchEvents));
  bench.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_EncodeEventBatch)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace unimeter::metering
