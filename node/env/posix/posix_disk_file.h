// node/env/posix/posix_disk_file.h
//
// PosixDiskFile is a DiskFile (node/env/env.h) backed by a real file in the node's data
// directory. Durability choices, stated explicitly:
//   - opened O_RDWR | O_CREAT | O_CLOEXEC, mode 0644; NO O_DIRECT: writes go through the
//     page cache and become durable only through fdatasync;
//   - durability is fdatasync (file data and the metadata needed to read it back, i.e.
//     the size), never fsync of the file; creating or removing a file also fsyncs the
//     directory so the name itself is durable.
//
// Write() and Truncate() only queue operations (bytes are copied). Sync() hands every
// queued operation to the IO thread as ONE job that performs them in order (pwrite,
// ftruncate) and then ONE fdatasync, and completes `done` on the loop. Group commit:
// Sync() calls made while a sync job is in flight wait and are all served by the next
// single job (one fdatasync), which also covers every operation queued until it starts.
//
// Read() is a synchronous pread on the loop that overlays the operations not yet applied
// to the file (queued ones and those of an in-flight job), so it always sees every
// Write/Truncate made so far, durable or not. A small per-file mutex makes the IO thread's
// batch of pwrites atomic with respect to Read (never held across fdatasync).
//
// Errors: ENOSPC/EDQUOT -> ResourceExhausted, any other -> Internal, with errno text and
// the path. A failed sync is sticky: every later Sync() of this handle completes with the
// same error (the queued writes of the failed job were lost, so a later success would be
// a lie); the node is expected to crash, and reopening the file starts afresh.
//
// Destroying the handle drops operations never handed to a Sync() and the completions of
// syncs still in flight (their `done` is never called); an in-flight job still runs to
// the end on the IO thread, and the fd is closed after it. Loop thread only.
#ifndef UNIMETER_NODE_ENV_POSIX_POSIX_DISK_FILE_H_
#define UNIMETER_NODE_ENV_POSIX_POSIX_DISK_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "node/env/env.h"
#include "storage/io_executor.h"

namespace unimeter {

// fsyncs the directory `path` (makes created, renamed and removed names durable).
absl::Status FsyncDirectory(const std::string& path);

// Maps an errno of operation `what` on `path` to a Status (see the banner).
absl::Status ErrnoToStatus(int error, std::string_view what, std::string_view path);

class PosixDiskFile final : public DiskFile {
 public:
  // Opens (creating if absent) `directory`/`name`. When the file is created, the
  // directory is fsynced before returning. `io` must outlive the handle's jobs.
  static absl::StatusOr<std::unique_ptr<PosixDiskFile>> Open(IoExecutor& io,
                                                             const std::string& directory,
                                                             std::string_view name);
  ~PosixDiskFile() override;

  PosixDiskFile(const PosixDiskFile&) = delete;
  PosixDiskFile& operator=(const PosixDiskFile&) = delete;

  absl::StatusOr<size_t> Read(uint64_t offset, absl::Span<uint8_t> out) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> bytes) override;
  void Sync(SyncDone done) override;
  void Truncate(uint64_t size_bytes) override;
  uint64_t size_bytes() const override;

  // fdatasync calls completed so far (successful or not); group commit keeps it below the
  // number of Sync() calls.
  uint64_t sync_count() const;
  const std::string& path() const;

 private:
  struct Core;

  explicit PosixDiskFile(std::shared_ptr<Core> core);

  std::shared_ptr<Core> core_;  // Shared with in-flight IO jobs.
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_POSIX_DISK_FILE_H_
