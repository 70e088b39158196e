// Goal: show that LmdbStateStore keeps the StateStore contract on a real file system:
// reads see pending batches, write transactions run only through the IoExecutor and
// coalesce queued batches while completing each in order, errors map to our taxonomy,
// our checksum catches damaged or misplaced values, a non-LMDB file is refused cleanly,
// and a SIGKILLed writer leaves a consistent prefix containing every batch it reported
// durable.
// Method: two test-only IoExecutors (a manual queue the test steps through, and a real
// thread with a completion queue the test drains); raw LMDB calls to damage stored
// values; fork() + SIGKILL loops with a seeded PRNG for the kill test.
#include "storage/lmdb_state_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "node/base/check.h"
#include "node/base/random.h"
#include "storage/checked_value.h"

namespace unimeter {
namespace {

using Contents = std::map<std::string, std::string>;

struct IoJob {
  absl::AnyInvocable<void()> io_work;
  absl::AnyInvocable<void()> on_loop;
};

// Runs nothing until the test says so; then io_work and on_loop run on the test thread.
class ManualIoExecutor final : public IoExecutor {
 public:
  void Submit(absl::AnyInvocable<void()> io_work, absl::AnyInvocable<void()> on_loop) override {
    jobs_.push_back(IoJob{std::move(io_work), std::move(on_loop)});
  }
  bool RunNext() {
    if (jobs_.empty()) {
      return false;
    }
    IoJob job = std::move(jobs_.front());
    jobs_.pop_front();
    if (job.io_work != nullptr) {
      job.io_work();
    }
    if (job.on_loop != nullptr) {
      job.on_loop();
    }
    return true;
  }
  void RunAll() {
    while (RunNext()) {
    }
  }
  // A crash before the IO thread got to these jobs.
  void DropAll() { jobs_.clear(); }
  size_t size() const { return jobs_.size(); }

 private:
  std::deque<IoJob> jobs_;
};

// One real IO thread; completions queue up until the loop (test) thread drains them.
class ThreadIoExecutor final : public IoExecutor {
 public:
  ThreadIoExecutor() : thread_([this] { Work(); }) {}
  ~ThreadIoExecutor() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  void Submit(absl::AnyInvocable<void()> io_work, absl::AnyInvocable<void()> on_loop) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(IoJob{std::move(io_work), std::move(on_loop)});
      ++submitted_count_;
    }
    changed_.notify_all();
  }

  // Waits for at least one completion (if any job is outstanding) and runs those ready.
  void RunCompletions() {
    std::deque<absl::AnyInvocable<void()>> ready;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (completed_count_ == submitted_count_) {
        return;
      }
      changed_.wait(lock, [this] { return !completions_.empty(); });
      ready.swap(completions_);
      completed_count_ += ready.size();
    }
    for (absl::AnyInvocable<void()>& on_loop : ready) {
      if (on_loop != nullptr) {
        on_loop();
      }
    }
  }
  // Runs completions until every job submitted so far (or by them) has completed.
  void Drain() {
    while (outstanding() > 0) {
      RunCompletions();
    }
  }
  uint64_t outstanding() {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_count_ - completed_count_;
  }

 private:
  void Work() {
    while (true) {
      IoJob job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) {
          return;
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (job.io_work != nullptr) {
        job.io_work();
      }
      job.io_work = nullptr;  // Release its references on this thread, before completing.
      {
        std::lock_guard<std::mutex> lock(mutex_);
        completions_.push_back(std::move(job.on_loop));
      }
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<IoJob> jobs_;
  std::deque<absl::AnyInvocable<void()>> completions_;
  uint64_t submitted_count_ = 0;
  uint64_t completed_count_ = 0;
  bool stopping_ = false;
  std::thread thread_;  // Last: starts after the members it uses exist.
};

// A fresh empty directory under the test's temporary directory.
std::string MakeTempDirectory() {
  const char* root = getenv("TEST_TMPDIR");
  std::string pattern = std::string(root != nullptr ? root : "/tmp") + "/lmdb_store_XXXXXX";
  UM_CHECK(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

LmdbStateStoreOptions SmallOptions() {
  LmdbStateStoreOptions options;
  options.map_size_bytes = uint64_t{64} << 20;
  options.readers_max = 8;
  return options;
}

std::unique_ptr<LmdbStateStore> OpenOrDie(const std::string& directory, IoExecutor& io,
                                          const LmdbStateStoreOptions& options = SmallOptions()) {
  absl::StatusOr<std::unique_ptr<LmdbStateStore>> store =
      LmdbStateStore::Open(directory, options, io);
  UM_CHECK_OK(store.status());
  return std::move(*store);
}

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

struct DoneLog {
  StateStore::CommitDone Done(int id) {
    return [this, id](absl::Status status) { entries.emplace_back(id, std::move(status)); };
  }
  std::vector<std::pair<int, absl::Status>> entries;
};

// Raw LMDB access to a closed store's environment, to damage stored bytes.
class RawEnvironment {
 public:
  explicit RawEnvironment(const std::string& directory) {
    UM_CHECK_EQ(mdb_env_create(&env_), 0);
    UM_CHECK_EQ(mdb_env_open(env_, directory.c_str(), 0, 0644), 0);
  }
  ~RawEnvironment() { mdb_env_close(env_); }

  std::string Get(const std::string& key) {
    MDB_txn* txn = nullptr;
    UM_CHECK_EQ(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), 0);
    MDB_dbi dbi = 0;
    UM_CHECK_EQ(mdb_dbi_open(txn, nullptr, 0, &dbi), 0);
    MDB_val key_val{key.size(), const_cast<char*>(key.data())};
    MDB_val value{0, nullptr};
    UM_CHECK_EQ(mdb_get(txn, dbi, &key_val, &value), 0);
    std::string stored(static_cast<const char*>(value.mv_data), value.mv_size);
    mdb_txn_abort(txn);
    return stored;
  }
  void Put(const std::string& key, const std::string& stored) {
    MDB_txn* txn = nullptr;
    UM_CHECK_EQ(mdb_txn_begin(env_, nullptr, 0, &txn), 0);
    MDB_dbi dbi = 0;
    UM_CHECK_EQ(mdb_dbi_open(txn, nullptr, 0, &dbi), 0);
    MDB_val key_val{key.size(), const_cast<char*>(key.data())};
    MDB_val value{stored.size(), const_cast<char*>(stored.data())};
    UM_CHECK_EQ(mdb_put(txn, dbi, &key_val, &value, 0), 0);
    UM_CHECK_EQ(mdb_txn_commit(txn), 0);
  }

 private:
  MDB_env* env_ = nullptr;
};

TEST(LmdbStateStore, CommitGetScanAndReopenWithIoThread) {
  const std::string directory = MakeTempDirectory();
  ThreadIoExecutor io;
  DoneLog log;
  {
    std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
    store->Commit(Puts({{"a", "1"}, {"b", ""}, {"c", std::string(5000, 'x')}}), log.Done(1));
    WriteBatch batch;
    batch.Delete("b");
    batch.Delete("never-existed");
    batch.Put("d", "4");
    store->Commit(std::move(batch), log.Done(2));
    EXPECT_EQ(GetOk(*store, "d"), "4");
    io.Drain();
    ASSERT_EQ(log.entries.size(), 2u);
    EXPECT_EQ(log.entries[0].first, 1);
    EXPECT_TRUE(log.entries[0].second.ok()) << log.entries[0].second;
    EXPECT_TRUE(log.entries[1].second.ok()) << log.entries[1].second;
    EXPECT_EQ(store->pending_commit_count(), 0u);
    EXPECT_GT(store->size_bytes(), 0u);
  }
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  EXPECT_EQ(ScanAll(*store), (Contents{{"a", "1"}, {"c", std::string(5000, 'x')}, {"d", "4"}}));
  EXPECT_EQ(GetOk(*store, "b"), std::nullopt);
  EXPECT_EQ(ScanAll(*store, "b", "d"), (Contents{{"c", std::string(5000, 'x')}}));
  EXPECT_EQ(RawEnvironment(directory).Get("a"), EncodeCheckedValue("a", "1"));  // Our envelope.
}

TEST(LmdbStateStore, PendingBatchesVisibleAndCoalescedInOrder) {
  const std::string directory = MakeTempDirectory();
  ManualIoExecutor io;
  DoneLog log;
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  store->Commit(Puts({{"a", "1"}, {"b", "1"}, {"c", "1"}}), log.Done(1));
  WriteBatch second;
  second.Put("a", "2");
  second.Delete("b");
  store->Commit(std::move(second), log.Done(2));
  WriteBatch third;
  third.Put("b", "3");
  third.Delete("c");
  store->Commit(std::move(third), log.Done(3));
  EXPECT_EQ(ScanAll(*store), (Contents{{"a", "2"}, {"b", "3"}}));
  EXPECT_EQ(io.size(), 1u);  // One job in flight; batches 2 and 3 wait for it.
  ASSERT_TRUE(io.RunNext());
  ASSERT_EQ(log.entries.size(), 1u);
  EXPECT_EQ(io.size(), 1u);  // Batches 2 and 3, coalesced into one transaction.
  EXPECT_EQ(ScanAll(*store), (Contents{{"a", "2"}, {"b", "3"}}));
  EXPECT_EQ(GetOk(*store, "c"), std::nullopt);
  io.RunAll();
  ASSERT_EQ(log.entries.size(), 3u);
  EXPECT_EQ(log.entries[1].first, 2);
  EXPECT_EQ(log.entries[2].first, 3);
  EXPECT_EQ(store->write_transaction_count(), 2u);
  EXPECT_EQ(ScanAll(*store), (Contents{{"a", "2"}, {"b", "3"}}));
}

TEST(LmdbStateStore, CrashLosesOnlyBatchesNotYetDurable) {
  const std::string directory = MakeTempDirectory();
  ManualIoExecutor io;
  DoneLog log;
  {
    std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
    store->Commit(Puts({{"a", "1"}}), log.Done(1));
    io.RunAll();
    store->Commit(Puts({{"b", "2"}}), log.Done(2));
    store->Commit(Puts({{"c", "3"}}), log.Done(3));
    EXPECT_EQ(store->pending_commit_count(), 2u);
  }
  io.DropAll();  // The crash came before the IO thread ran the job.
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  EXPECT_EQ(ScanAll(*store), (Contents{{"a", "1"}}));
  EXPECT_EQ(log.entries.size(), 1u);
}

TEST(LmdbStateStore, DoneMayCommitAgain) {
  const std::string directory = MakeTempDirectory();
  ManualIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  int completed = 0;
  store->Commit(Puts({{"a", "1"}}), [&](absl::Status status) {
    EXPECT_TRUE(status.ok());
    ++completed;
    store->Commit(Puts({{"b", "2"}}), [&](absl::Status) { ++completed; });
  });
  io.RunAll();
  EXPECT_EQ(completed, 2);
  EXPECT_EQ(ScanAll(*store), (Contents{{"a", "1"}, {"b", "2"}}));
}

TEST(LmdbStateStore, MapFullIsResourceExhaustedAndStoreStaysFailed) {
  const std::string directory = MakeTempDirectory();
  LmdbStateStoreOptions options = SmallOptions();
  options.map_size_bytes = 1 << 20;
  ManualIoExecutor io;
  DoneLog log;
  int committed = 0;
  {
    std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io, options);
    while (committed < 100) {
      ++committed;
      store->Commit(Puts({{"big" + std::to_string(committed), std::string(100000, 'v')}}),
                    log.Done(committed));
      io.RunAll();
      if (!log.entries.back().second.ok()) {
        break;
      }
    }
    ASSERT_LT(committed, 100);
    EXPECT_EQ(log.entries.back().second.code(), absl::StatusCode::kResourceExhausted)
        << log.entries.back().second;
    store->Commit(Puts({{"small", "1"}}), log.Done(-1));
    io.RunAll();
    EXPECT_EQ(log.entries.back().second, log.entries[committed - 1].second);
    EXPECT_EQ(GetOk(*store, "small"), "1");  // Visible, never durable.
  }
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io, options);
  const Contents contents = ScanAll(*store);
  EXPECT_EQ(contents.size(), static_cast<size_t>(committed - 1));
  EXPECT_EQ(contents.count("small"), 0u);
}

TEST(LmdbStateStore, FlippedByteIsDataLoss) {
  const std::string directory = MakeTempDirectory();
  ManualIoExecutor io;
  {
    std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
    store->Commit(Puts({{"a", "1"}, {"damaged", "some value"}, {"z", "26"}}), nullptr);
    io.RunAll();
  }
  {
    RawEnvironment raw(directory);
    std::string stored = raw.Get("damaged");
    stored[6] = static_cast<char>(stored[6] ^ 0x10);
    raw.Put("damaged", stored);
  }
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  const absl::StatusOr<std::optional<std::string>> value = store->Get("damaged");
  EXPECT_EQ(value.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(value.status().message().find("damaged"), absl::string_view::npos);
  std::vector<std::string> seen;
  const absl::Status status = store->Scan("", "", [&](std::string_view key, std::string_view) {
    seen.emplace_back(key);
    return true;
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(seen, std::vector<std::string>{"a"});
  EXPECT_EQ(GetOk(*store, "z"), "26");
  // A reader with another copy goes on past the damage; one without stops there.
  seen.clear();
  std::vector<std::string> damaged;
  auto visit = [&](std::string_view key, std::string_view) {
    seen.emplace_back(key);
    return true;
  };
  EXPECT_TRUE(store
                  ->ScanPastDamage("", "", visit,
                                   [&](std::string_view key, const absl::Status& damage) {
                                     EXPECT_TRUE(absl::IsDataLoss(damage)) << damage;
                                     damaged.emplace_back(key);
                                     return true;
                                   })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(damaged, std::vector<std::string>{"damaged"});
  seen.clear();
  EXPECT_EQ(store
                ->ScanPastDamage("", "", visit,
                                 [](std::string_view, const absl::Status&) { return false; })
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(seen, std::vector<std::string>{"a"});
}

TEST(LmdbStateStore, ValueMovedUnderAnotherKeyIsDataLoss) {
  const std::string directory = MakeTempDirectory();
  ManualIoExecutor io;
  {
    std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
    store->Commit(Puts({{"from", "value"}, {"to", "other"}}), nullptr);
    io.RunAll();
  }
  {
    RawEnvironment raw(directory);
    raw.Put("to", raw.Get("from"));
  }
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  EXPECT_EQ(GetOk(*store, "from"), "value");
  EXPECT_EQ(store->Get("to").status().code(), absl::StatusCode::kDataLoss);
}

TEST(LmdbStateStore, NonLmdbFileIsRefusedWithClearError) {
  const std::string directory = MakeTempDirectory();
  {
    std::ofstream garbage(directory + "/data.mdb", std::ios::binary);
    for (int i = 0; i < 4 * 4096; ++i) {
      garbage.put(static_cast<char>((i * 131) ^ 0x5a));
    }
  }
  ManualIoExecutor io;
  absl::StatusOr<std::unique_ptr<LmdbStateStore>> store =
      LmdbStateStore::Open(directory, SmallOptions(), io);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_NE(store.status().message().find(directory), absl::string_view::npos);

  const std::string truncated = MakeTempDirectory();
  { std::ofstream(truncated + "/data.mdb", std::ios::binary) << "not an LMDB file"; }
  store = LmdbStateStore::Open(truncated, SmallOptions(), io);
  EXPECT_FALSE(store.ok());

  const std::string file = directory + "/plain_file";
  { std::ofstream(file) << "x"; }
  store = LmdbStateStore::Open(file, SmallOptions(), io);
  EXPECT_FALSE(store.ok());
  EXPECT_EQ(io.size(), 0u);
}

// Damaged tree pages (not values) are LMDB's to detect; we only require a clear error
// rather than a crash or a silent wrong answer for the damage LMDB does check.
TEST(LmdbStateStore, DamagedTreePagesAreRefused) {
  const std::string directory = MakeTempDirectory();
  ManualIoExecutor io;
  {
    std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
    WriteBatch batch;
    for (int i = 0; i < 2000; ++i) {
      batch.Put("key" + std::to_string(i), std::string(40, 'v'));
    }
    store->Commit(std::move(batch), nullptr);
    io.RunAll();
  }
  {
    std::fstream data(directory + "/data.mdb", std::ios::in | std::ios::out | std::ios::binary);
    data.seekg(0, std::ios::end);
    const std::streamoff size = data.tellg();
    data.seekp(2 * 4096);  // Keep the two meta pages; overwrite every tree page.
    for (std::streamoff i = 2 * 4096; i < size; ++i) {
      data.put(static_cast<char>(0xA5));
    }
  }
  absl::StatusOr<std::unique_ptr<LmdbStateStore>> store =
      LmdbStateStore::Open(directory, SmallOptions(), io);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
}

TEST(LmdbStateStore, DefaultOptionsOpen) {
  const LmdbStateStoreOptions options;
  EXPECT_EQ(options.map_size_bytes, uint64_t{64} << 30);
  EXPECT_EQ(options.readers_max, 126u);
  ManualIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(MakeTempDirectory(), io, options);
  store->Commit(Puts({{"k", "v"}}), nullptr);
  io.RunAll();
  EXPECT_EQ(GetOk(*store, "k"), "v");
  EXPECT_LT(store->size_bytes(), uint64_t{1} << 20);  // The map size is not the file size.
}

TEST(LmdbStateStoreDeathTest, BadKeySizesCrash) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ManualIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(MakeTempDirectory(), io);
  EXPECT_DEATH(store->Commit(Puts({{"", "v"}}), nullptr), "key.size");
  EXPECT_DEATH(
      store->Commit(Puts({{std::string(StateStore::kKeySizeBytesMax + 1, 'k'), "v"}}), nullptr),
      "kKeySizeBytesMax");
  EXPECT_DEATH((void)store->Get(""), "key.size");
  store->Commit(Puts({{std::string(StateStore::kKeySizeBytesMax, 'k'), "v"}}), nullptr);
  io.RunAll();
  EXPECT_EQ(GetOk(*store, std::string(StateStore::kKeySizeBytesMax, 'k')), "v");
}

// ---- Kill test ----------------------------------------------------------------------

std::string BatchKey(uint64_t number) {
  char key[32];
  snprintf(key, sizeof(key), "b%08llu", static_cast<unsigned long long>(number));
  return key;
}

void WriteNumber(int fd, uint64_t number) {
  // 8 bytes < PIPE_BUF: written whole or not at all.
  if (write(fd, &number, sizeof(number)) != static_cast<ssize_t>(sizeof(number))) {
    _exit(3);
  }
}

// The child: commits numbered batches with a few in flight until it is killed, reporting
// each batch whose `done` saw OK. Never returns.
[[noreturn]] void RunKillChild(const std::string& directory, int report_fd) {
  ThreadIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  WriteNumber(report_fd, 0);  // Opened.
  for (uint64_t number = 1; number < 1000000; ++number) {
    WriteBatch batch;
    batch.Put("last", std::to_string(number));
    batch.Put(BatchKey(number), std::string(number % 300, static_cast<char>('a' + number % 26)));
    store->Commit(std::move(batch), [report_fd, number](absl::Status status) {
      UM_CHECK_OK(status);
      WriteNumber(report_fd, number);
    });
    while (io.outstanding() > 0 && store->pending_commit_count() >= 4) {
      io.RunCompletions();
    }
  }
  _exit(2);
}

void CheckConsistentPrefix(const std::string& directory, uint64_t reported_durable) {
  ManualIoExecutor io;
  std::unique_ptr<LmdbStateStore> store = OpenOrDie(directory, io);
  const std::optional<std::string> last_text = GetOk(*store, "last");
  const uint64_t last = last_text.has_value() ? std::stoull(*last_text) : 0;
  EXPECT_GE(last, reported_durable);
  uint64_t expected = 1;
  const absl::Status status =
      store->Scan("b", "c", [&](std::string_view key, std::string_view value) {
        EXPECT_EQ(key, BatchKey(expected));
        EXPECT_EQ(value.size(), expected % 300);
        ++expected;
        return true;
      });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(expected - 1, last);  // Every batch up to `last`, none after it.
}

TEST(LmdbStateStoreKillTest, SigkilledWriterLeavesDurablePrefix) {
  Prng prng(0x4b494c4c);
  uint64_t reported_total = 0;
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(round);
    const std::string directory = MakeTempDirectory();
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunKillChild(directory, fds[1]);
    }
    close(fds[1]);
    uint64_t opened = 1;
    ASSERT_EQ(read(fds[0], &opened, sizeof(opened)), static_cast<ssize_t>(sizeof(opened)));
    ASSERT_EQ(opened, 0u);
    usleep(static_cast<useconds_t>(prng.UniformRange(1000, 40000)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wait_status = 0;
    ASSERT_EQ(waitpid(pid, &wait_status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wait_status)) << "child exited with " << wait_status;
    // Every batch whose `done` saw OK, in commit order (8-byte writes never interleave).
    const uint64_t reported = [&] {
      uint64_t number = 0;
      uint64_t expected = 1;
      while (read(fds[0], &number, sizeof(number)) == static_cast<ssize_t>(sizeof(number))) {
        EXPECT_EQ(number, expected);
        ++expected;
      }
      return expected - 1;
    }();
    close(fds[0]);
    reported_total += reported;
    CheckConsistentPrefix(directory, reported);
  }
  RecordProperty("batches_reported_durable", std::to_string(reported_total));
}

}  // namespace
}  // namespace unimeter
