// Goal: show that MemoryStateStore has the StateStore contract and LMDB's crash
// semantics: reads see every Commit at once, the medium holds exactly the completed
// batches (oldest first, however the simulator orders completions), a crash loses the
// rest, injected disk-full and corruption faults surface as the documented errors.
// Method: a test-owned completion queue stands in for the simulator; a randomized test
// compares the store and its medium with a simple model across commits, completions and
// crashes, for many seeds of our deterministic PRNG.
#include "storage/memory_state_store.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "node/base/random.h"

namespace unimeter {
namespace {

using Contents = std::map<std::string, std::string>;

// Stands in for the simulator: holds completions until the test runs them.
class CompletionQueue {
 public:
  MemoryStateStore::ScheduleCompletion Scheduler() {
    return [this](absl::AnyInvocable<void()> complete) {
      completions_.push_back(std::move(complete));
    };
  }
  // Runs the completion at `index` (any order is allowed).
  void Run(size_t index) {
    absl::AnyInvocable<void()> complete = std::move(completions_.at(index));
    completions_.erase(completions_.begin() + static_cast<ptrdiff_t>(index));
    complete();
  }
  void RunAll() {
    while (!completions_.empty()) {
      Run(0);
    }
  }
  size_t size() const { return completions_.size(); }

 private:
  std::vector<absl::AnyInvocable<void()>> completions_;
};

Contents ScanAll(StateStore& store, std::string_view begin = "", std::string_view end = "") {
  Contents contents;
  const absl::Status status =
      store.Scan(begin, end, [&](std::string_view key, std::string_view value) {
        contents.emplace(std::string(key), std::string(value));
        return true;
      });
  EXPECT_TRUE(status.ok()) << status;
  return contents;
}

std::optional<std::string> GetOk(StateStore& store, std::string_view key) {
  absl::StatusOr<std::optional<std::string>> value = store.Get(key);
  EXPECT_TRUE(value.ok()) << value.status();
  return value.ok() ? *value : std::nullopt;
}

WriteBatch Puts(std::vector<std::pair<std::string, std::string>> puts) {
  WriteBatch batch;
  for (const auto& [key, value] : puts) {
    batch.Put(key, value);
  }
  return batch;
}

// Records the statuses completions deliver, in order.
struct DoneLog {
  StateStore::CommitDone Done(int id) {
    return [this, id](absl::Status status) { entries.emplace_back(id, std::move(status)); };
  }
  std::vector<std::pair<int, absl::Status>> entries;
};

TEST(WriteBatch, KeepsOperationsInOrderWithTheirBytes) {
  WriteBatch batch;
  EXPECT_TRUE(batch.empty());
  const std::string long_value(70000, 'v');  // Forces the shared buffer to grow.
  batch.Put("a", "1");
  batch.Delete("b");
  batch.Put("c", long_value);
  batch.Put("d", "");
  ASSERT_EQ(batch.size(), 4u);
  EXPECT_EQ(batch.byte_size(), 1u + 1u + 1u + 1u + long_value.size() + 1u);
  std::vector<std::tuple<bool, std::string, std::string>> seen;
  for (const WriteBatch::Operation& operation : batch.operations()) {
    seen.emplace_back(operation.is_delete, std::string(operation.key),
                      std::string(operation.value));
  }
  const std::vector<std::tuple<bool, std::string, std::string>> expected = {
      {false, "a", "1"}, {true, "b", ""}, {false, "c", long_value}, {false, "d", ""}};
  EXPECT_EQ(seen, expected);
  // Moving a batch (as Commit does) keeps every operation readable.
  WriteBatch moved = std::move(batch);
  EXPECT_EQ(moved.operation(2).value, long_value);
  EXPECT_EQ(moved.operation(3).key, "d");
}

TEST(WriteBatch, ManySmallOperationsSpanBlocksIntact) {
  WriteBatch batch;
  batch.Reserve(10);  // Less than needed: later operations still land.
  const int count = 5 * static_cast<int>(WriteBatch::kBlockBytes) / 48;
  for (int i = 0; i < count; ++i) {
    batch.Put("key" + std::to_string(i), std::string(40, static_cast<char>('a' + i % 26)));
  }
  ASSERT_EQ(batch.size(), static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const WriteBatch::Operation operation = batch.operation(i);
    ASSERT_EQ(operation.key, "key" + std::to_string(i));
    ASSERT_EQ(operation.value, std::string(40, static_cast<char>('a' + i % 26)));
  }
}

TEST(MemoryStateStore, VisibleAtOnceDurableOnlyAfterCompletion) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  DoneLog log;
  {
    MemoryStateStore store(medium, queue.Scheduler());
    store.Commit(Puts({{"a", "1"}, {"b", "2"}}), log.Done(1));
    store.Commit(Puts({{"c", "3"}}), log.Done(2));
    EXPECT_EQ(GetOk(store, "a"), "1");
    EXPECT_EQ(ScanAll(store), (Contents{{"a", "1"}, {"b", "2"}, {"c", "3"}}));
    EXPECT_EQ(medium.key_count(), 0u);
    ASSERT_EQ(queue.size(), 2u);
    queue.Run(0);
    EXPECT_EQ(medium.key_count(), 2u);
    ASSERT_EQ(log.entries.size(), 1u);
    EXPECT_TRUE(log.entries[0].second.ok());
    EXPECT_EQ(store.pending_commit_count(), 1u);
  }                // Crash with batch 2 pending.
  queue.RunAll();  // Completions held past the crash do nothing.
  EXPECT_EQ(log.entries.size(), 1u);
  MemoryStateStore reopened(medium, queue.Scheduler());
  EXPECT_EQ(ScanAll(reopened), (Contents{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(GetOk(reopened, "c"), std::nullopt);
}

TEST(MemoryStateStore, WriteBehindBatchesAreInvisibleUntilDurable) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  DoneLog log;
  MemoryStateStore store(medium, queue.Scheduler());
  WriteBatch bulk = Puts({{"e1", "x"}, {"e2", "y"}});
  bulk.set_write_behind(true);
  store.Commit(std::move(bulk), log.Done(1));
  store.Commit(Puts({{"m", "1"}}), log.Done(2));
  EXPECT_EQ(GetOk(store, "e1"), std::nullopt);  // Not readable before it is durable.
  EXPECT_EQ(ScanAll(store), (Contents{{"m", "1"}}));
  queue.RunAll();
  EXPECT_EQ(log.entries.size(), 2u);
  EXPECT_EQ(ScanAll(store), (Contents{{"e1", "x"}, {"e2", "y"}, {"m", "1"}}));
}

TEST(MemoryStateStore, CompletionsRunOldestFirstWhateverOrder) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  DoneLog log;
  MemoryStateStore store(medium, queue.Scheduler());
  for (int id = 1; id <= 3; ++id) {
    store.Commit(Puts({{"k", std::to_string(id)}}), log.Done(id));
  }
  queue.Run(2);
  queue.Run(1);
  ASSERT_EQ(log.entries.size(), 2u);
  EXPECT_EQ(log.entries[0].first, 1);
  EXPECT_EQ(log.entries[1].first, 2);
  EXPECT_EQ(GetOk(store, "k"), "3");  // Batch 3 is still pending and visible.
  queue.Run(0);
  EXPECT_EQ(log.entries.back().first, 3);
  EXPECT_EQ(medium.key_count(), 1u);
}

TEST(MemoryStateStore, LatestWinsAndDeletesShadow) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  MemoryStateStore store(medium, queue.Scheduler());
  store.Commit(Puts({{"a", "1"}, {"b", "1"}, {"c", "1"}}), nullptr);
  queue.RunAll();
  WriteBatch batch;
  batch.Put("a", "2");
  batch.Delete("b");
  batch.Put("d", "x");
  batch.Delete("d");
  store.Commit(std::move(batch), nullptr);
  WriteBatch again;
  again.Put("a", "3");
  again.Put("b", "back");
  again.Delete("c");
  store.Commit(std::move(again), nullptr);
  EXPECT_EQ(ScanAll(store), (Contents{{"a", "3"}, {"b", "back"}}));
  queue.Run(0);  // The middle batch becomes durable; the last one still shadows it.
  EXPECT_EQ(ScanAll(store), (Contents{{"a", "3"}, {"b", "back"}}));
  EXPECT_EQ(GetOk(store, "c"), std::nullopt);
  EXPECT_EQ(GetOk(store, "d"), std::nullopt);
  queue.RunAll();
  EXPECT_EQ(ScanAll(store), (Contents{{"a", "3"}, {"b", "back"}}));
  EXPECT_EQ(medium.key_count(), 2u);
}

TEST(MemoryStateStore, ScanHonoursRangeAndEarlyStop) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  MemoryStateStore store(medium, queue.Scheduler());
  store.Commit(Puts({{"a", "1"}, {"c", "3"}, {"e", "5"}}), nullptr);
  queue.RunAll();
  store.Commit(Puts({{"b", "2"}, {"d", "4"}}), nullptr);
  EXPECT_EQ(ScanAll(store, "b", "e"), (Contents{{"b", "2"}, {"c", "3"}, {"d", "4"}}));
  EXPECT_EQ(ScanAll(store, "bb", ""), (Contents{{"c", "3"}, {"d", "4"}, {"e", "5"}}));
  EXPECT_EQ(ScanAll(store, "f", ""), Contents{});
  std::vector<std::string> seen;
  const absl::Status status = store.Scan("", "", [&](std::string_view key, std::string_view) {
    seen.emplace_back(key);
    return seen.size() < 3;
  });
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(MemoryStateStore, DiskFullFailsWithoutWritingAndStoreStaysFailed) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  DoneLog log;
  {
    MemoryStateStore store(medium, queue.Scheduler());
    store.Commit(Puts({{"a", "1"}}), log.Done(1));
    queue.RunAll();
    medium.set_fail_next_commits(1);
    store.Commit(Puts({{"b", "2"}}), log.Done(2));
    store.Commit(Puts({{"c", "3"}}), log.Done(3));
    queue.RunAll();
    ASSERT_EQ(log.entries.size(), 3u);
    EXPECT_TRUE(log.entries[0].second.ok());
    EXPECT_EQ(log.entries[1].second, absl::ResourceExhaustedError("disk full"));
    EXPECT_EQ(log.entries[2].second, absl::ResourceExhaustedError("disk full"));
    EXPECT_EQ(medium.fail_next_commits(), 0u);
    EXPECT_EQ(GetOk(store, "c"), "3");  // Visible state is ahead of durable state.
  }
  MemoryStateStore reopened(medium, queue.Scheduler());
  EXPECT_EQ(ScanAll(reopened), (Contents{{"a", "1"}}));
  reopened.Commit(Puts({{"d", "4"}}), log.Done(4));
  queue.RunAll();
  EXPECT_TRUE(log.entries.back().second.ok());
}

TEST(MemoryStateStore, CorruptValueAtRestIsDataLoss) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  MemoryStateStore store(medium, queue.Scheduler());
  store.Commit(Puts({{"a", "1"}, {"bad", "value"}, {"c", ""}}), nullptr);
  queue.RunAll();
  EXPECT_FALSE(medium.CorruptValueAtRest("missing"));
  ASSERT_TRUE(medium.CorruptValueAtRest("bad"));
  ASSERT_TRUE(medium.CorruptValueAtRest("c"));  // Empty value: the checksum is hit.
  const absl::StatusOr<std::optional<std::string>> value = store.Get("bad");
  EXPECT_EQ(value.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(value.status().message().find("bad"), absl::string_view::npos);
  EXPECT_EQ(store.Get("c").status().code(), absl::StatusCode::kDataLoss);
  std::vector<std::string> seen;
  const absl::Status status = store.Scan("", "", [&](std::string_view key, std::string_view) {
    seen.emplace_back(key);
    return true;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(seen, std::vector<std::string>{"a"});  // Stops at the damaged value.
  // Past the damage for a reader that can answer from another copy.
  seen.clear();
  std::vector<std::string> damaged;
  EXPECT_TRUE(store
                  .ScanPastDamage(
                      "", "",
                      [&](std::string_view key, std::string_view) {
                        seen.emplace_back(key);
                        return true;
                      },
                      [&](std::string_view key, const absl::Status&) {
                        damaged.emplace_back(key);
                        return true;
                      })
                  .ok());
  EXPECT_EQ(seen, std::vector<std::string>{"a"});  // "bad" and "c" are both damaged.
  EXPECT_EQ(damaged, (std::vector<std::string>{"bad", "c"}));
  // A newer write replaces the damaged value.
  store.Commit(Puts({{"bad", "fixed"}}), nullptr);
  EXPECT_EQ(GetOk(store, "bad"), "fixed");
  queue.RunAll();
  EXPECT_EQ(GetOk(store, "bad"), "fixed");
}

TEST(MemoryStateStore, DoneMayCommitAgain) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  MemoryStateStore store(medium, queue.Scheduler());
  int completed = 0;
  store.Commit(Puts({{"a", "1"}}), [&](absl::Status status) {
    EXPECT_TRUE(status.ok());
    ++completed;
    store.Commit(Puts({{"b", "2"}}), [&](absl::Status) { ++completed; });
  });
  queue.RunAll();
  EXPECT_EQ(completed, 2);
  EXPECT_EQ(medium.key_count(), 2u);
  EXPECT_EQ(store.size_bytes(), medium.size_bytes());
  EXPECT_EQ(store.size_bytes(), 2 * (1 + 4 + 1));  // key + checksum + value, twice.
}

TEST(MemoryStateStore, WipeErasesDurableState) {
  MemoryStateMedium medium;
  CompletionQueue queue;
  {
    MemoryStateStore store(medium, queue.Scheduler());
    store.Commit(Puts({{"a", "1"}}), nullptr);
    queue.RunAll();
  }
  medium.Wipe();
  EXPECT_EQ(medium.size_bytes(), 0u);
  MemoryStateStore store(medium, queue.Scheduler());
  EXPECT_EQ(ScanAll(store), Contents{});
}

TEST(MemoryStateStoreDeathTest, ProgrammerErrorsCrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MemoryStateMedium medium;
  CompletionQueue queue;
  auto store = std::make_unique<MemoryStateStore>(medium, queue.Scheduler());
  EXPECT_DEATH(store->Commit(Puts({{"", "empty key"}}), nullptr), "key.size");
  EXPECT_DEATH(
      store->Commit(Puts({{std::string(StateStore::kKeySizeBytesMax + 1, 'k'), "v"}}), nullptr),
      "kKeySizeBytesMax");
  EXPECT_DEATH(medium.Wipe(), "store_open");
  EXPECT_DEATH(MemoryStateStore second(medium, queue.Scheduler()), "store_open");
  store->Commit(Puts({{std::string(StateStore::kKeySizeBytesMax, 'k'), "v"}}), nullptr);
  queue.RunAll();
  EXPECT_EQ(medium.key_count(), 1u);
  store.reset();
}

// The model: durable contents plus the pending batches, oldest first.
struct Model {
  Contents durable;
  std::vector<WriteBatch> pending;

  static void Apply(const WriteBatch& batch, Contents& contents) {
    for (const WriteBatch::Operation& operation : batch.operations()) {
      if (operation.is_delete) {
        contents.erase(std::string(operation.key));
      } else {
        contents[std::string(operation.key)] = std::string(operation.value);
      }
    }
  }
  Contents Visible() const {
    Contents visible = durable;
    for (const WriteBatch& batch : pending) {
      Apply(batch, visible);
    }
    return visible;
  }
};

WriteBatch RandomBatch(Prng& prng) {
  WriteBatch batch;
  const uint64_t size = prng.UniformRange(0, 5);
  for (uint64_t i = 0; i < size; ++i) {
    const std::string key = "k" + std::to_string(prng.UniformBelow(12));
    if (prng.Chance(1, 3)) {
      batch.Delete(key);
    } else {
      batch.Put(key, std::string(prng.UniformBelow(4), static_cast<char>('a' + i)));
    }
  }
  return batch;
}

void CheckAgainstModel(MemoryStateStore& store, const Model& model) {
  const Contents visible = model.Visible();
  ASSERT_EQ(ScanAll(store), visible);
  for (int key = 0; key < 12; ++key) {
    const std::string name = "k" + std::to_string(key);
    const auto it = visible.find(name);
    const std::optional<std::string> expected =
        it == visible.end() ? std::nullopt : std::optional<std::string>(it->second);
    ASSERT_EQ(GetOk(store, name), expected) << name;
  }
}

TEST(MemoryStateStore, RandomizedAgainstModelWithCrashes) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    Prng prng(seed);
    MemoryStateMedium medium;
    CompletionQueue queue;
    Model model;
    auto store = std::make_unique<MemoryStateStore>(medium, queue.Scheduler());
    uint64_t completions_expected = 0;
    uint64_t completions_seen = 0;
    for (int step = 0; step < 300; ++step) {
      const uint64_t action = prng.UniformBelow(10);
      if (action < 5) {
        WriteBatch batch = RandomBatch(prng);
        model.pending.push_back(batch);
        store->Commit(std::move(batch), [&](absl::Status status) {
          EXPECT_TRUE(status.ok());
          ++completions_seen;
        });
      } else if (action < 9 && queue.size() > 0) {
        queue.Run(prng.UniformBelow(queue.size()));
        Model::Apply(model.pending.front(), model.durable);
        model.pending.erase(model.pending.begin());
        ++completions_expected;
      } else if (action == 9) {
        store.reset();  // Crash: completions still queued must do nothing.
        model.pending.clear();
        queue.RunAll();
        ASSERT_EQ(medium.key_count(), model.durable.size());
        store = std::make_unique<MemoryStateStore>(medium, queue.Scheduler());
      }
      ASSERT_EQ(completions_seen, completions_expected);
      ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(*store, model));
    }
    store.reset();
    MemoryStateStore reopened(medium, [](absl::AnyInvocable<void()>) {});
    ASSERT_EQ(ScanAll(reopened), model.durable);
  }
}

}  // namespace
}  // namespace unimeter
