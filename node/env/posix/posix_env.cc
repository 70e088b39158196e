#include "node/env/posix/posix_env.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/base/check.h"
#include "node/env/posix/posix_disk_file.h"

namespace unimeter {
namespace {

TcpTransportOptions MakeTransportOptions(const PosixEnvOptions& options) {
  TcpTransportOptions transport_options;
  transport_options.node_id = options.node_id;
  transport_options.listen_port = options.replication_port;
  for (const PosixEnvOptions::Peer& peer : options.peers) {
    transport_options.peers.push_back(TransportPeer{peer.id, peer.host, peer.port});
  }
  return transport_options;
}

absl::Status EnsureDirectory(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("data_dir is empty");
  }
  if (mkdir(path.c_str(), 0755) == 0) {
    // Make the new directory's name durable in its parent.
    const size_t slash = path.find_last_of('/');
    const std::string parent =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    return FsyncDirectory(parent);
  }
  if (errno != EEXIST) {
    return ErrnoToStatus(errno, "mkdir", path);
  }
  struct stat directory_stat;
  if (stat(path.c_str(), &directory_stat) != 0) {
    return ErrnoToStatus(errno, "stat", path);
  }
  if (!S_ISDIR(directory_stat.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("not a directory: ", path));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidDiskFileName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") {
    return false;
  }
  for (const char c : name) {
    const bool valid =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!valid) {
      return false;
    }
  }
  return true;
}

uint64_t RandomSeedFromOs() {
  uint64_t seed = 0;
  auto* bytes = reinterpret_cast<uint8_t*>(&seed);
  size_t done = 0;
  while (done < sizeof(seed)) {
    const ssize_t got = getrandom(bytes + done, sizeof(seed) - done, 0);
    if (got < 0) {
      UM_CHECK_EQ(errno, EINTR);
      continue;
    }
    done += static_cast<size_t>(got);
  }
  return seed;
}

PosixEnv::PosixEnv(PosixEnvOptions options, uint64_t seed)
    : options_(std::move(options)),
      prng_(seed),
      fibers_(nullptr),
      loop_(std::make_unique<EventLoop>(&fibers_)),
      io_thread_(std::make_unique<IoThread>(*loop_)),
      state_io_thread_(std::make_unique<IoThread>(*loop_)),
      connector_(std::make_unique<StreamConnector>(*loop_, stream_ids_)) {}

absl::StatusOr<std::unique_ptr<PosixEnv>> PosixEnv::Create(PosixEnvOptions options) {
  UM_CHECK_LE(options.node_id, kNodeIdMax);
  absl::Status status = EnsureDirectory(options.data_dir);
  if (!status.ok()) {
    return status;
  }
  const uint64_t seed = RandomSeedFromOs();
  std::unique_ptr<PosixEnv> env(new PosixEnv(std::move(options), seed));
  absl::StatusOr<std::unique_ptr<TcpTransport>> transport =
      TcpTransport::Create(*env->loop_, MakeTransportOptions(env->options_));
  if (!transport.ok()) {
    return transport.status();
  }
  env->transport_ = *std::move(transport);
  env->Log(absl::StrCat("env started data_dir=", env->options_.data_dir,
                        " replication_port=", env->replication_port(),
                        " peers=", env->options_.peers.size(), " prng_seed=", seed));
  return env;
}

PosixEnv::~PosixEnv() {
  // Fibers first: their unwinding may still touch the transport, files or timers.
  fibers_.ShutdownAll();
  transport_.reset();
  connector_.reset();
  state_store_.reset();      // Its in-flight write transaction finishes on its thread.
  state_io_thread_.reset();  // Finishes submitted jobs, joins the thread.
  io_thread_.reset();
  loop_.reset();  // Drops posted completions, closes epoll and eventfd.
}

TimerId PosixEnv::StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback) {
  return loop_->StartTimer(delay_ns, std::move(callback));
}

void PosixEnv::CancelTimer(TimerId timer) { loop_->CancelTimer(timer); }

absl::StatusOr<std::unique_ptr<Listener>> PosixEnv::Listen(uint16_t port,
                                                           AcceptFunction on_accept) {
  absl::StatusOr<std::unique_ptr<PosixListener>> listener =
      PosixListener::Create(*loop_, stream_ids_, port, std::move(on_accept));
  if (!listener.ok()) {
    return listener.status();
  }
  return std::unique_ptr<Listener>(*std::move(listener));
}

void PosixEnv::Connect(std::string_view address, ConnectFunction done) {
  connector_->Connect(address, std::move(done));
}

absl::StatusOr<std::unique_ptr<DiskFile>> PosixEnv::OpenDiskFile(std::string_view name) {
  if (!IsValidDiskFileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad disk file name: '", std::string(name), "'"));
  }
  absl::StatusOr<std::unique_ptr<PosixDiskFile>> file =
      PosixDiskFile::Open(*io_thread_, options_.data_dir, name);
  if (!file.ok()) {
    return file.status();
  }
  return std::unique_ptr<DiskFile>(*std::move(file));
}

absl::Status PosixEnv::RemoveDiskFile(std::string_view name) {
  if (!IsValidDiskFileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad disk file name: '", std::string(name), "'"));
  }
  const std::string path = absl::StrCat(options_.data_dir, "/", std::string(name));
  if (unlink(path.c_str()) != 0) {
    return ErrnoToStatus(errno, "unlink", path);  // ENOENT -> NotFound.
  }
  return FsyncDirectory(options_.data_dir);
}

absl::StatusOr<StateStore*> PosixEnv::OpenStateStore() {
  if (state_store_ != nullptr) {
    return state_store_.get();
  }
  const std::string directory = options_.data_dir + "/state";
  if (mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, "mkdir", directory);
  }
  absl::StatusOr<std::unique_ptr<LmdbStateStore>> store =
      LmdbStateStore::Open(directory, LmdbStateStoreOptions{}, *state_io_thread_);
  if (!store.ok()) {
    return store.status();
  }
  state_store_ = std::move(*store);
  return state_store_.get();
}

absl::StatusOr<uint64_t> PosixEnv::FreeDiskBytes() {
  struct statvfs volume;
  if (statvfs(options_.data_dir.c_str(), &volume) != 0) {
    return ErrnoToStatus(errno, "statvfs", options_.data_dir);
  }
  return static_cast<uint64_t>(volume.f_bavail) * volume.f_frsize;
}

void PosixEnv::FailStop(const absl::Status& cause) {
  Log(absl::StrCat("fail-stop: ", cause.ToString(), "; aborting (restart recovers from disk)"));
  std::abort();
}

void PosixEnv::Log(std::string_view line) {
  const int64_t now_ns = WallNowNs();
  const time_t seconds = static_cast<time_t>(now_ns / 1'000'000'000);
  struct tm utc;
  gmtime_r(&seconds, &utc);
  // One write() per line so lines from several nodes in one process do not interleave.
  const std::string text = absl::StrFormat(
      "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ n%u %s\n", utc.tm_year + 1900, utc.tm_mon + 1,
      utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
      static_cast<int>((now_ns % 1'000'000'000) / 1000), options_.node_id, std::string(line));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t written = write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (written <= 0) {
      if (written < 0 && errno == EINTR) {
        continue;
      }
      return;  // Logging must never take the node down.
    }
    done += static_cast<size_t>(written);
  }
}

}  // namespace unimeter
