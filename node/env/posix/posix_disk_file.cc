#include "node/env/posix/posix_disk_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter {
namespace {

// One queued Write or Truncate.
struct Operation {
  bool is_truncate;
  uint64_t offset;  // Where a write starts, or the new size of a truncate.
  std::vector<uint8_t> bytes;
};
using Batch = std::vector<Operation>;

struct JobResult {
  absl::Status status;
  bool synced = false;  // fdatasync was called.
};

absl::Status PwriteAll(int fd, const std::string& path, uint64_t offset,
                       absl::Span<const uint8_t> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t written =
        pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (written < 0) {
      if (errno == EINTR) {
        continue;
      }
      return ErrnoToStatus(errno, "pwrite", path);
    }
    UM_CHECK_GT(written, 0);  // pwrite of a non-empty buffer never returns 0 on a file.
    done += static_cast<size_t>(written);
  }
  return absl::OkStatus();
}

// IO thread: applies `batch` in order. Stops at the first error.
absl::Status ApplyBatch(int fd, const std::string& path, const Batch& batch) {
  for (const Operation& operation : batch) {
    if (operation.is_truncate) {
      if (ftruncate(fd, static_cast<off_t>(operation.offset)) != 0) {
        return ErrnoToStatus(errno, "ftruncate", path);
      }
    } else {
      absl::Status status = PwriteAll(fd, path, operation.offset, operation.bytes);
      if (!status.ok()) {
        return status;
      }
    }
  }
  return absl::OkStatus();
}

// Zeroes the part of [begin, end) (file offsets) that falls into `window`.
void ZeroRange(uint64_t begin, uint64_t end, uint64_t window_offset, absl::Span<uint8_t> window) {
  const uint64_t low = std::max(begin, window_offset);
  const uint64_t high = std::min(end, window_offset + window.size());
  if (low < high) {
    std::memset(window.data() + (low - window_offset), 0, high - low);
  }
}

// Applies one not-yet-written operation to `window` (the file's bytes at `window_offset`)
// and to the file `length`. Bytes past `length` in the window are garbage until a later
// extension zero-fills them, exactly like the file itself.
void OverlayOperation(const Operation& operation, uint64_t window_offset,
                      absl::Span<uint8_t> window, uint64_t& length) {
  if (operation.is_truncate) {
    if (operation.offset > length) {
      ZeroRange(length, operation.offset, window_offset, window);
    }
    length = operation.offset;
    return;
  }
  const uint64_t begin = operation.offset;
  const uint64_t end = begin + operation.bytes.size();
  if (begin > length) {
    ZeroRange(length, begin, window_offset, window);  // The hole reads as zeros.
  }
  const uint64_t low = std::max(begin, window_offset);
  const uint64_t high = std::min(end, window_offset + window.size());
  if (low < high) {
    std::memcpy(window.data() + (low - window_offset), operation.bytes.data() + (low - begin),
                high - low);
  }
  length = std::max(length, end);
}

}  // namespace

absl::Status ErrnoToStatus(int error, std::string_view what, std::string_view path) {
  std::string message =
      absl::StrCat(std::string(what), " ", std::string(path), ": ", strerror(error));
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(message);
  }
  if (error == ENOENT) {
    return absl::NotFoundError(message);
  }
  return absl::InternalError(message);
}

absl::Status FsyncDirectory(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoToStatus(errno, "open directory", path);
  }
  absl::Status status;
  if (fsync(fd) != 0) {
    status = ErrnoToStatus(errno, "fsync directory", path);
  }
  close(fd);
  return status;
}

struct PosixDiskFile::Core : std::enable_shared_from_this<Core> {
  Core(IoExecutor& io_executor, std::string file_path, int file_fd, uint64_t file_size_bytes)
      : io(io_executor), path(std::move(file_path)), fd(file_fd), size_bytes(file_size_bytes) {}
  ~Core() { close(fd); }

  void StartJob(std::vector<SyncDone> dones);
  void OnJobDone(const JobResult& result);

  IoExecutor& io;
  const std::string path;
  const int fd;

  // Loop thread only.
  uint64_t size_bytes;
  Batch pending;                     // Not yet handed to a job.
  std::shared_ptr<Batch> in_flight;  // The running job's batch, or null.
  // Write buffers of finished jobs, reused by later writes (a WAL group is tens of KiB:
  // allocating it anew per group costs a large malloc and fresh pages every time).
  std::vector<std::vector<uint8_t>> spare_buffers;
  static constexpr size_t kSpareBuffersMax = 4;
  std::vector<SyncDone> in_flight_dones;
  std::vector<SyncDone> waiting_dones;  // Sync() calls made while a job runs.
  absl::Status sticky_error;
  uint64_t sync_count = 0;
  bool closed = false;

  // Shared with the IO thread.
  std::mutex mutex;                // Held by the IO thread while applying a batch.
  bool in_flight_applied = false;  // Guarded by mutex.
  bool apply_failed = false;       // Guarded by mutex: the file content is now unknown.
};

void PosixDiskFile::Core::StartJob(std::vector<SyncDone> dones) {
  UM_CHECK(in_flight == nullptr);
  UM_CHECK(in_flight_dones.empty());
  in_flight_dones = std::move(dones);
  auto result = std::make_shared<JobResult>();
  std::shared_ptr<Core> self = shared_from_this();
  if (!sticky_error.ok()) {
    result->status = sticky_error;
    io.Submit(nullptr, [self, result] { self->OnJobDone(*result); });
    return;
  }
  auto batch = std::make_shared<Batch>(std::move(pending));
  pending.clear();
  {
    std::lock_guard<std::mutex> lock(mutex);
    in_flight_applied = false;
  }
  in_flight = batch;
  io.Submit(
      [self, batch = std::shared_ptr<const Batch>(batch), result] {
        if (batch->empty()) {
          return;  // Every earlier job ended with its own fdatasync: nothing to make durable.
        }
        {
          std::lock_guard<std::mutex> lock(self->mutex);
          result->status = ApplyBatch(self->fd, self->path, *batch);
          self->in_flight_applied = true;
          self->apply_failed = self->apply_failed || !result->status.ok();
        }
        if (result->status.ok()) {
          result->synced = true;
          if (fdatasync(self->fd) != 0) {
            result->status = ErrnoToStatus(errno, "fdatasync", self->path);
          }
        }
      },
      [self, result] { self->OnJobDone(*result); });
}

void PosixDiskFile::Core::OnJobDone(const JobResult& result) {
  // The IO thread destroys its closure (and reference) before posting this completion;
  // should an executor not, the buffers are simply not reused.
  if (in_flight != nullptr && in_flight.use_count() == 1) {
    for (Operation& operation : *in_flight) {
      if (spare_buffers.size() >= kSpareBuffersMax) break;
      if (operation.bytes.capacity() == 0) continue;
      operation.bytes.clear();
      spare_buffers.push_back(std::move(operation.bytes));
    }
  }
  in_flight = nullptr;
  if (result.synced) {
    ++sync_count;
  }
  if (!result.status.ok() && sticky_error.ok()) {
    sticky_error = result.status;
  }
  std::vector<SyncDone> dones = std::move(in_flight_dones);
  in_flight_dones.clear();
  if (closed) {
    return;  // The handle is gone: its completions are dropped (see the header).
  }
  // Start the next group before running callbacks, so the disk is busy meanwhile.
  if (!waiting_dones.empty()) {
    std::vector<SyncDone> next = std::move(waiting_dones);
    waiting_dones.clear();
    StartJob(std::move(next));
  }
  for (SyncDone& done : dones) {
    done(result.status);
  }
}

absl::StatusOr<std::unique_ptr<PosixDiskFile>> PosixDiskFile::Open(IoExecutor& io,
                                                                   const std::string& directory,
                                                                   std::string_view name) {
  const std::string path = absl::StrCat(directory, "/", std::string(name));
  bool created = true;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  if (fd < 0) {
    return ErrnoToStatus(errno, "open", path);
  }
  struct stat file_stat;
  if (fstat(fd, &file_stat) != 0) {
    absl::Status status = ErrnoToStatus(errno, "fstat", path);
    close(fd);
    return status;
  }
  if (created) {
    absl::Status status = FsyncDirectory(directory);
    if (!status.ok()) {
      close(fd);
      return status;
    }
  }
  auto core = std::make_shared<Core>(io, path, fd, static_cast<uint64_t>(file_stat.st_size));
  return std::unique_ptr<PosixDiskFile>(new PosixDiskFile(std::move(core)));
}

PosixDiskFile::PosixDiskFile(std::shared_ptr<Core> core) : core_(std::move(core)) {}

PosixDiskFile::~PosixDiskFile() {
  core_->closed = true;
  core_->pending.clear();
  core_->waiting_dones.clear();
  core_->in_flight_dones.clear();
}

absl::StatusOr<size_t> PosixDiskFile::Read(uint64_t offset, absl::Span<uint8_t> out) {
  Core& core = *core_;
  std::lock_guard<std::mutex> lock(core.mutex);
  if (core.apply_failed) {
    // A write or truncate failed part-way: the overlay can no longer be exact.
    return absl::InternalError(absl::StrCat("read ", core.path, ": an earlier write failed"));
  }
  struct stat file_stat;
  if (fstat(core.fd, &file_stat) != 0) {
    return ErrnoToStatus(errno, "fstat", core.path);
  }
  uint64_t length = static_cast<uint64_t>(file_stat.st_size);
  size_t read_size = offset < length ? std::min<uint64_t>(out.size(), length - offset) : 0;
  size_t done = 0;
  while (done < read_size) {
    const ssize_t got =
        pread(core.fd, out.data() + done, read_size - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0) {
      return ErrnoToStatus(errno, "pread", core.path);
    }
    if (got == 0) {
      length = offset + done;  // Cannot happen under the lock; be exact anyway.
      break;
    }
    done += static_cast<size_t>(got);
  }
  // Operations the file does not have yet: the in-flight batch (unless the IO thread has
  // applied it, which it does atomically under the lock), then the queued ones.
  if (core.in_flight != nullptr && !core.in_flight_applied) {
    for (const Operation& operation : *core.in_flight) {
      OverlayOperation(operation, offset, out, length);
    }
  }
  for (const Operation& operation : core.pending) {
    OverlayOperation(operation, offset, out, length);
  }
  UM_CHECK_EQ(length, core.size_bytes);
  return offset < length ? static_cast<size_t>(std::min<uint64_t>(out.size(), length - offset)) : 0;
}

void PosixDiskFile::Write(uint64_t offset, absl::Span<const uint8_t> bytes) {
  Core& core = *core_;
  if (bytes.empty()) {
    return;
  }
  core.size_bytes = std::max<uint64_t>(core.size_bytes, offset + bytes.size());
  if (!core.pending.empty()) {
    Operation& last = core.pending.back();
    if (!last.is_truncate && last.offset + last.bytes.size() == offset) {
      last.bytes.insert(last.bytes.end(), bytes.begin(), bytes.end());  // Appends coalesce.
      return;
    }
  }
  std::vector<uint8_t> buffer;
  if (!core.spare_buffers.empty()) {
    buffer = std::move(core.spare_buffers.back());
    core.spare_buffers.pop_back();
  }
  buffer.assign(bytes.begin(), bytes.end());
  core.pending.push_back(Operation{false, offset, std::move(buffer)});
}

void PosixDiskFile::Truncate(uint64_t size_bytes) {
  core_->size_bytes = size_bytes;
  core_->pending.push_back(Operation{true, size_bytes, {}});
}

void PosixDiskFile::Sync(SyncDone done) {
  Core& core = *core_;
  if (core.in_flight != nullptr || !core.in_flight_dones.empty()) {
    core.waiting_dones.push_back(std::move(done));
    return;
  }
  std::vector<SyncDone> dones;
  dones.push_back(std::move(done));
  core.StartJob(std::move(dones));
}

uint64_t PosixDiskFile::size_bytes() const { return core_->size_bytes; }

uint64_t PosixDiskFile::sync_count() const { return core_->sync_count; }

const std::string& PosixDiskFile::path() const { return core_->path; }

}  // namespace unimeter
