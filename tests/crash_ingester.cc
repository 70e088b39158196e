// crash_ingester: a single-node ingest loop over NodeStore on real files, for the SIGKILL
// crash test (tests/ingest_crash_test.cc). It is the owner of every partition with a
// quorum of one: an entry is committed once it is durable here.
//
//   crash_ingester --data-dir=D --first=K --count=N --batch=B
//
// On start it recovers (committing the recovered uncommitted suffix, as a single node
// does), prints "total <sum over the accounts>", then ingests events K .. K+N-1: event k is
// account k % 8, metric "m" (SUM), value 1, client timestamp kBase + k (so a resent event
// is a duplicate). Before each request it prints "sending <last k>"; after the request is
// durable and committed it prints "acked <last k>". Every line is flushed at once.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/flags.h"
#include "node/env/posix/posix_env.h"
#include "node/store/node_store.h"

namespace unimeter {
namespace {

constexpr int64_t kBaseTimestampNs = 1'767'225'600'000'000'000;  // 2026-01-01.
constexpr uint64_t kAccounts = 8;
constexpr int64_t kPatienceNs = 30'000'000'000;

class Ingester {
 public:
  explicit Ingester(PosixEnv& env) : env_(env) {}

  void Open() {
    auto store = NodeStore::Open(env_, NodeStoreOptions{});
    UM_CHECK_OK(store.status());
    store_ = std::move(*store);
    for (uint32_t partition = 0; partition < kAccounts; ++partition) {
      if (store_->last_index(partition) > store_->commit_index(partition)) {
        store_->Commit(partition, store_->last_index(partition), true);  // Quorum of one.
      }
      if (store_->state(partition).FindSchema("m") == nullptr) {
        metering::MetricSchema schema;
        schema.code = "m";
        schema.agg_type = metering::AggregationType::kSum;
        auto compiled = metering::CompiledSchema::Create(schema);
        UM_CHECK_OK(compiled.status());
        const uint64_t index = store_->last_index(partition) + 1;
        UM_CHECK_OK(store_->Append(
            partition, index, 1,
            std::make_shared<metering::LogEntry>(metering::LogEntry::Put(*compiled))));
        SyncOrDie();
        store_->Commit(partition, index, true);
      }
    }
    SyncOrDie();
  }

  uint64_t Total() const {
    uint64_t total = 0;
    for (uint64_t account = 0; account < kAccounts; ++account) {
      auto value =
          store_->state(static_cast<uint32_t>(account)).QueryUsage(account, "m", 0, INT64_MAX, {});
      UM_CHECK_OK(value.status());
      total += static_cast<uint64_t>(value->sum);
    }
    return total;
  }

  // Ingests events [first, first + count) synchronously.
  void IngestRequest(uint64_t first, uint64_t count) {
    std::vector<std::vector<metering::Event>> parts(kAccounts);
    for (uint64_t k = first; k < first + count; ++k) {
      metering::Event event;
      event.account_id = k % kAccounts;
      event.metric_code = "m";
      event.value = 1;
      event.timestamp_ns = kBaseTimestampNs + static_cast<int64_t>(k);
      parts[event.account_id].push_back(event);
    }
    std::vector<std::pair<uint32_t, uint64_t>> to_commit;
    for (uint32_t partition = 0; partition < kAccounts; ++partition) {
      if (parts[partition].empty()) {
        continue;
      }
      auto acceptance = store_->state(partition).AcceptEvents(parts[partition], env_.WallNowNs(),
                                                              pending_[partition]);
      UM_CHECK_OK(acceptance.status());
      if (!acceptance->entry.has_value()) {
        continue;  // All duplicates.
      }
      const uint64_t index = store_->last_index(partition) + 1;
      UM_CHECK_OK(store_->Append(partition, index, 1,
                                 std::make_shared<metering::LogEntry>(*acceptance->entry)));
      to_commit.push_back({partition, index});
    }
    SyncOrDie();
    for (const auto& [partition, index] : to_commit) {
      store_->Commit(partition, index, true);
      pending_[partition].RetireApplied(store_->state(partition).next_offset());
    }
  }

 private:
  void SyncOrDie() {
    bool done = false;
    absl::Status result;
    store_->Sync([&](absl::Status status) {
      result = status;
      done = true;
    });
    UM_CHECK(env_.loop().RunUntil([&] { return done; }, kPatienceNs));
    UM_CHECK_OK(result);  // An fsync error crashes the node.
  }

  PosixEnv& env_;
  std::unique_ptr<NodeStore> store_;
  metering::PendingDedup pending_[kAccounts];
};

int Run(int argc, char** argv) {
  std::string data_dir;
  int64_t first = 0;
  int64_t count = 0;
  int64_t batch = 16;
  FlagParser flags("crash_ingester", "single-node ingest loop for the SIGKILL crash test");
  flags.AddString("data-dir", &data_dir, "data directory");
  flags.AddInt("first", &first, "first event number", 0, INT64_MAX / 2);
  flags.AddInt("count", &count, "events to ingest", 0, INT64_MAX / 2);
  flags.AddInt("batch", &batch, "events per request", 1, 1024);
  UM_CHECK_OK(flags.Parse(argc, argv));
  PosixEnvOptions options;
  options.data_dir = data_dir;
  auto env = PosixEnv::Create(options);
  UM_CHECK_OK(env.status());
  {
    Ingester ingester(**env);
    ingester.Open();
    std::printf("total %llu\n", static_cast<unsigned long long>(ingester.Total()));
    std::fflush(stdout);
    for (int64_t k = first; k < first + count; k += batch) {
      const int64_t n = std::min(batch, first + count - k);
      std::printf("sending %lld\n", static_cast<long long>(k + n - 1));
      std::fflush(stdout);
      ingester.IngestRequest(static_cast<uint64_t>(k), static_cast<uint64_t>(n));
      std::printf("acked %lld\n", static_cast<long long>(k + n - 1));
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace unimeter

int main(int argc, char** argv) { return unimeter::Run(argc, argv); }
