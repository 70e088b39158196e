// node/env/posix/posix_env.h
//
// PosixEnv is the real node's Env (node/env/env.h), composed of:
//   EventLoop      one epoll loop; timers, fds, cross-thread posts; runs the fibers;
//   IoThread       two IO helper threads (IoExecutor): one for WAL writes and fdatasync,
//                  one for LMDB commits, so a checkpoint never delays the hot path;
//   TcpTransport   node-to-node frames over TCP on the replication port;
//   PosixStream    client streams (Listen/Connect);
//   PosixDiskFile  files in the data directory with group-committed fdatasync.
//
// The owner drives the loop (loop().Run(), or RunOnce/RunFor/RunUntil in tests) on one
// thread; every Env method is for that thread only. Several PosixEnvs may live in one
// process (tests drive their loops alternately).
//
// Shutdown (the destructor): live fibers are destroyed first (fibers().ShutdownAll()),
// then the transport and pending connects, then the IO thread finishes its submitted
// jobs and is joined, then the loop closes its fds. Streams, listeners and disk files
// handed out must be destroyed before the Env.
#ifndef UNIMETER_NODE_ENV_POSIX_POSIX_ENV_H_
#define UNIMETER_NODE_ENV_POSIX_POSIX_ENV_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/base/random.h"
#include "node/env/env.h"
#include "node/env/fiber.h"
#include "node/env/posix/event_loop.h"
#include "node/env/posix/io_thread.h"
#include "node/env/posix/posix_stream.h"
#include "node/env/posix/tcp_transport.h"
#include "storage/io_executor.h"
#include "storage/lmdb_state_store.h"

namespace unimeter {

struct PosixEnvOptions {
  struct Peer {
    NodeId id = 0;
    std::string host;
    uint16_t port = 0;
  };

  NodeId node_id = 0;
  std::string data_dir;           // Created (one level) if missing.
  uint16_t replication_port = 0;  // 0 = ephemeral (tests); see replication_port().
  std::vector<Peer> peers;        // Other nodes; the listener opens only if non-empty.
};

class PosixEnv final : public Env {
 public:
  // Creates the data directory if needed and opens the replication listener when peers
  // are configured. Logs the PRNG seed.
  static absl::StatusOr<std::unique_ptr<PosixEnv>> Create(PosixEnvOptions options);
  ~PosixEnv() override;

  PosixEnv(const PosixEnv&) = delete;
  PosixEnv& operator=(const PosixEnv&) = delete;

  NodeId node_id() const override { return options_.node_id; }
  int64_t MonotonicNowNs() override { return EventLoop::MonotonicNowNs(); }
  int64_t WallNowNs() override { return EventLoop::WallNowNs(); }
  TimerId StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback) override;
  void CancelTimer(TimerId timer) override;
  Prng& prng() override { return prng_; }
  Transport& transport() override { return *transport_; }
  absl::StatusOr<std::unique_ptr<Listener>> Listen(uint16_t port,
                                                   AcceptFunction on_accept) override;
  void Connect(std::string_view address, ConnectFunction done) override;
  absl::StatusOr<std::unique_ptr<DiskFile>> OpenDiskFile(std::string_view name) override;
  absl::Status RemoveDiskFile(std::string_view name) override;
  // The LMDB store in <data_dir>/state, opened on first use and owned by the Env.
  absl::StatusOr<StateStore*> OpenStateStore() override;
  absl::StatusOr<uint64_t> FreeDiskBytes() override;
  FiberScheduler& fibers() override { return fibers_; }
  // One line to stderr: "<ISO-8601 UTC time> n<id> <line>".
  void Log(std::string_view line) override;
  [[noreturn]] void FailStop(const absl::Status& cause) override;

  // For tests and for wiring the state store.
  EventLoop& loop() { return *loop_; }
  IoExecutor& io() { return *io_thread_; }
  TcpTransport& tcp_transport() { return *transport_; }
  // The actual replication port (0 when no peers are configured).
  uint16_t replication_port() const { return transport_->listen_port(); }
  const std::string& data_dir() const { return options_.data_dir; }

 private:
  PosixEnv(PosixEnvOptions options, uint64_t seed);

  const PosixEnvOptions options_;
  Prng prng_;
  FiberScheduler fibers_;  // FIFO: the real node does not explore interleavings.
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<IoThread> io_thread_;  // WAL writes and fdatasync: the hot path.
  // LMDB commits (checkpoints): a large checkpoint must never delay a WAL sync queued
  // behind it, so the state store has its own thread.
  std::unique_ptr<IoThread> state_io_thread_;
  StreamIdSource stream_ids_;
  std::unique_ptr<StreamConnector> connector_;
  std::unique_ptr<TcpTransport> transport_;
  std::unique_ptr<LmdbStateStore> state_store_;
};

// True for a valid disk file name: [a-z0-9_.-]+ and not "." or "..".
bool IsValidDiskFileName(std::string_view name);

// Seeds from the OS (getrandom). Aborts if the kernel refuses.
uint64_t RandomSeedFromOs();

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_POSIX_ENV_H_
