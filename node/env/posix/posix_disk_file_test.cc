// Goal: PosixDiskFile round-trips bytes, group-commits concurrent Sync() calls into fewer
// fdatasyncs, truncates in order, keeps synced bytes across reopen, reads queued writes,
// and reports a full disk as ResourceExhausted. Method: a PosixEnv without peers on a
// temporary directory (and a 1 MiB tmpfs for the full-disk case).
#include "node/env/posix/posix_disk_file.h"

#include <sys/mount.h>

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/env/posix/posix_env.h"
#include "node/env/posix/test_util.h"

namespace unimeter {
namespace {

using posix_test::kPatienceNs;
using posix_test::TempDir;

std::unique_ptr<PosixEnv> MakeEnv(const std::string& data_dir) {
  PosixEnvOptions options;
  options.node_id = 1;
  options.data_dir = data_dir;
  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(options);
  UM_CHECK_OK(env.status());
  return *std::move(env);
}

std::unique_ptr<PosixDiskFile> OpenFile(PosixEnv& env, const std::string& name) {
  absl::StatusOr<std::unique_ptr<DiskFile>> file = env.OpenDiskFile(name);
  UM_CHECK_OK(file.status());
  return std::unique_ptr<PosixDiskFile>(static_cast<PosixDiskFile*>(file->release()));
}

absl::Status SyncAndRun(PosixEnv& env, DiskFile& file) {
  std::optional<absl::Status> result;
  file.Sync([&](absl::Status status) { result = status; });
  EXPECT_FALSE(result.has_value());  // Never inline.
  EXPECT_TRUE(env.loop().RunUntil([&] { return result.has_value(); }, kPatienceNs));
  return result.value_or(absl::DeadlineExceededError("sync did not complete"));
}

absl::Span<const uint8_t> Bytes(const std::string& text) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

std::string ReadAll(DiskFile& file, uint64_t offset, size_t size) {
  std::string out(size, '\0');
  absl::StatusOr<size_t> got =
      file.Read(offset, absl::MakeSpan(reinterpret_cast<uint8_t*>(out.data()), out.size()));
  UM_CHECK_OK(got.status());
  out.resize(*got);
  return out;
}

TEST(PosixDiskFileTest, WriteSyncReadBackAndReopen) {
  TempDir dir;
  auto env = MakeEnv(dir.path() + "/data");  // Created by Create().
  {
    auto file = OpenFile(*env, "wal-0001.log");
    EXPECT_EQ(file->size_bytes(), 0u);
    file->Write(0, Bytes("hello "));
    file->Write(6, Bytes("world"));
    EXPECT_EQ(file->size_bytes(), 11u);
    EXPECT_EQ(ReadAll(*file, 0, 100), "hello world");  // Queued writes are visible.
    ASSERT_TRUE(SyncAndRun(*env, *file).ok());
    EXPECT_EQ(file->sync_count(), 1u);
    EXPECT_EQ(ReadAll(*file, 6, 3), "wor");
    EXPECT_EQ(ReadAll(*file, 20, 3), "");
    file->Write(0, Bytes("HELLO"));  // Never synced: lost at close.
  }
  auto file = OpenFile(*env, "wal-0001.log");
  EXPECT_EQ(file->size_bytes(), 11u);
  EXPECT_EQ(ReadAll(*file, 0, 100), "hello world");
}

TEST(PosixDiskFileTest, ManySyncsAreGroupCommitted) {
  TempDir dir;
  auto env = MakeEnv(dir.path());
  auto file = OpenFile(*env, "group");
  constexpr int kSyncs = 100;
  std::vector<int> completed;
  for (int i = 0; i < kSyncs; ++i) {
    file->Write(static_cast<uint64_t>(i) * 4, Bytes("abcd"));
    file->Sync([&, i](absl::Status status) {
      EXPECT_TRUE(status.ok()) << status;
      completed.push_back(i);
    });
  }
  ASSERT_TRUE(env->loop().RunUntil([&] { return completed.size() == kSyncs; }, kPatienceNs));
  for (int i = 0; i < kSyncs; ++i) {
    EXPECT_EQ(completed[i], i);  // Completions in call order.
  }
  // The first Sync starts a job; all later ones join the next single fdatasync.
  EXPECT_EQ(file->sync_count(), 2u);
  EXPECT_EQ(ReadAll(*file, 396, 10), "abcd");
  // A Sync with nothing new to make durable needs no fdatasync.
  ASSERT_TRUE(SyncAndRun(*env, *file).ok());
  EXPECT_EQ(file->sync_count(), 2u);
}

TEST(PosixDiskFileTest, TruncateIsOrderedWithWrites) {
  TempDir dir;
  auto env = MakeEnv(dir.path());
  auto file = OpenFile(*env, "trunc");
  file->Write(0, Bytes("0123456789"));
  ASSERT_TRUE(SyncAndRun(*env, *file).ok());
  file->Truncate(4);
  file->Write(6, Bytes("xy"));  // Leaves a hole at [4, 6).
  EXPECT_EQ(file->size_bytes(), 8u);
  EXPECT_EQ(ReadAll(*file, 0, 100), std::string("0123\0\0xy", 8));  // Before the sync.
  ASSERT_TRUE(SyncAndRun(*env, *file).ok());
  EXPECT_EQ(ReadAll(*file, 0, 100), std::string("0123\0\0xy", 8));
  file->Truncate(2);
  ASSERT_TRUE(SyncAndRun(*env, *file).ok());
  file.reset();
  file = OpenFile(*env, "trunc");
  EXPECT_EQ(file->size_bytes(), 2u);
  EXPECT_EQ(ReadAll(*file, 0, 100), "01");
}

TEST(PosixDiskFileTest, ReadsSeeWritesQueuedDuringAnInFlightSync) {
  TempDir dir;
  auto env = MakeEnv(dir.path());
  auto file = OpenFile(*env, "overlay");
  std::string expected(64 * 1024, 'a');
  file->Write(0, Bytes(expected));
  int done = 0;
  file->Sync([&](absl::Status status) { done += status.ok() ? 1 : 100; });
  // While the job may be running on the IO thread, keep writing and reading.
  for (int i = 0; i < 64; ++i) {
    const std::string patch(100, static_cast<char>('b' + i % 20));
    file->Write(static_cast<uint64_t>(i) * 1000, Bytes(patch));
    expected.replace(static_cast<size_t>(i) * 1000, 100, patch);
    ASSERT_EQ(ReadAll(*file, 0, expected.size()), expected);
  }
  file->Sync([&](absl::Status status) { done += status.ok() ? 1 : 100; });
  ASSERT_TRUE(env->loop().RunUntil([&] { return done == 2; }, kPatienceNs));
  EXPECT_EQ(ReadAll(*file, 0, expected.size()), expected);
}

TEST(PosixDiskFileTest, NamesAreValidatedAndRemoved) {
  TempDir dir;
  auto env = MakeEnv(dir.path());
  for (const char* bad : {"", ".", "..", "a/b", "UPPER", "sp ace", "../x"}) {
    EXPECT_EQ(env->OpenDiskFile(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(env->RemoveDiskFile("absent").code(), absl::StatusCode::kNotFound);
  OpenFile(*env, "x-1_2.log").reset();
  EXPECT_TRUE(env->RemoveDiskFile("x-1_2.log").ok());
  EXPECT_EQ(env->RemoveDiskFile("x-1_2.log").code(), absl::StatusCode::kNotFound);
  absl::StatusOr<uint64_t> free_bytes = env->FreeDiskBytes();
  ASSERT_TRUE(free_bytes.ok());
  EXPECT_GT(*free_bytes, 0u);
}

// Mounts a 1 MiB tmpfs (needs root / CAP_SYS_ADMIN; skipped otherwise).
class TmpfsMount {
 public:
  explicit TmpfsMount(const std::string& path) : path_(path) {
    mounted_ = mount("tmpfs", path.c_str(), "tmpfs", 0, "size=1m") == 0;
  }
  ~TmpfsMount() {
    if (mounted_) {
      umount2(path_.c_str(), MNT_DETACH);
    }
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST(PosixDiskFileTest, FullDiskIsResourceExhaustedAndSticky) {
  TempDir dir;
  TmpfsMount tmpfs(dir.path());
  if (!tmpfs.mounted()) {
    GTEST_SKIP() << "cannot mount tmpfs here";
  }
  {
    auto env = MakeEnv(dir.path());
    auto file = OpenFile(*env, "full");
    const std::string chunk(256 * 1024, 'z');
    for (uint64_t offset = 0; offset < 2 * 1024 * 1024; offset += chunk.size()) {
      file->Write(offset, Bytes(chunk));
    }
    absl::Status status = SyncAndRun(*env, *file);
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_NE(status.message().find("full"), std::string::npos) << status;  // The path.
    // Sticky: a later sync cannot claim durability for the lost writes.
    file->Write(0, Bytes("x"));
    EXPECT_EQ(SyncAndRun(*env, *file).code(), absl::StatusCode::kResourceExhausted);
    EXPECT_FALSE(file->Read(0, absl::Span<uint8_t>()).ok());
  }
}

}  // namespace
}  // namespace unimeter
