// node/env/env.h
//
// Env is everything a Unimeter node may use from the outside world: clocks, timers,
// node-to-node messages, client byte streams, disks, the state store, randomness and
// fibers. Core code (metering, replication, ownership, server) reaches the world only
// through the Env it was handed, so the same code runs in two worlds:
//
//   node/env/posix   the real node: one epoll loop, TCP, files with fdatasync, LMDB;
//   sim/             the deterministic simulator: many nodes in one thread, virtual time,
//                    seeded faults; a run is a pure function of its seed.
//
// Threading: one Env per node; every callback runs on that node's event loop, never
// concurrently with another callback or fiber of the same node, and never re-entrantly
// inside the call that registered it (callbacks always run from the loop, later).
// There are no globals: pass `Env&` explicitly.
//
// Failure model: operations report operating errors through absl::Status; a disk sync
// error is reported (the caller crashes the node, see docs/architecture.md). Messages and
// streams may fail or lose data at any time and core code must tolerate it.
#ifndef UNIMETER_NODE_ENV_ENV_H_
#define UNIMETER_NODE_ENV_ENV_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "node/base/random.h"
#include "node/env/fiber.h"

namespace unimeter {

class StateStore;  // storage/state_store.h

using NodeId = uint32_t;
inline constexpr NodeId kNodeIdMax = 254;
// Largest node-to-node message (one batch of many partitions' entries).
inline constexpr size_t kMessageSizeBytesMax = 4 * 1024 * 1024;

using TimerId = uint64_t;
inline constexpr TimerId kNoTimer = 0;

// ---------------------------------------------------------------------------------------
// Node-to-node messages. Delivery is best effort: a message may be lost, delayed,
// duplicated or reordered (the real transport loses messages only around reconnects;
// the simulator does all of it). Each delivered message is intact: corrupted frames are
// detected by checksum and dropped by the transport. Core protocols retry.
class Transport {
 public:
  using Receiver = absl::AnyInvocable<void(NodeId source, absl::Span<const uint8_t> message)>;

  virtual ~Transport() = default;

  // Queues `message` for `target`. Never blocks; if the per-peer queue is full the
  // message is dropped and counted. REQUIRES: message.size() <= kMessageSizeBytesMax,
  // target != this node, target is a configured peer.
  virtual void Send(NodeId target, absl::Span<const uint8_t> message) = 0;

  // Installs the function called for every message received (replaces any earlier one).
  virtual void SetReceiver(Receiver receiver) = 0;
};

// ---------------------------------------------------------------------------------------
// Client byte streams (the application port, HTTP, and clients inside the simulator).
// Bytes arrive in order and intact until the stream closes; then nothing more arrives.
class Stream {
 public:
  struct Handler {
    // Bytes received, in order. The span is valid only during the call.
    absl::AnyInvocable<void(absl::Span<const uint8_t> bytes)> on_data;
    // The stream closed (by the peer, a reset or Close()); called exactly once.
    absl::AnyInvocable<void(absl::Status reason)> on_close;
  };

  virtual ~Stream() = default;

  // Installs the handler; data that arrived before is delivered after this call returns.
  virtual void SetHandler(Handler handler) = 0;

  // Queues bytes for sending. Returns ResourceExhausted (and sends nothing) when the
  // stream's output buffer would exceed its bound; FailedPrecondition once closed.
  virtual absl::Status Write(absl::Span<const uint8_t> bytes) = 0;

  // Bytes queued and not yet handed to the network.
  virtual size_t pending_write_bytes() const = 0;

  // Closes the stream after queued bytes are flushed (best effort). on_close follows.
  virtual void Close() = 0;

  // A unique id for logs and maps, stable for the stream's life.
  virtual uint64_t id() const = 0;

  // The peer's address as text ("host:port"), for logs only.
  virtual std::string peer_address() const = 0;

  // This end's address as text ("host:port"): the address the peer reached us at.
  virtual std::string local_address() const = 0;
};

// Called for every accepted stream. The callee takes ownership.
using AcceptFunction = absl::AnyInvocable<void(std::unique_ptr<Stream> stream)>;
// Called once with the connected stream or an error.
using ConnectFunction = absl::AnyInvocable<void(absl::StatusOr<std::unique_ptr<Stream>> stream)>;

// A listening socket; destroying it stops accepting.
class Listener {
 public:
  virtual ~Listener() = default;
  virtual uint16_t port() const = 0;
};

// ---------------------------------------------------------------------------------------
// A disk file for our own logs (the WAL). Writes are queued in order and become durable
// only when a later Sync() completes; a crash may lose or tear any write not yet synced.
class DiskFile {
 public:
  using SyncDone = absl::AnyInvocable<void(absl::Status status)>;

  virtual ~DiskFile() = default;

  // Reads up to out.size() bytes at `offset` (synchronously; recovery and catch-up).
  // Returns the number of bytes read (short at end of file) or an IO error.
  virtual absl::StatusOr<size_t> Read(uint64_t offset, absl::Span<uint8_t> out) = 0;

  // Queues a write of `bytes` (copied) at `offset`. Errors surface in the next Sync.
  virtual void Write(uint64_t offset, absl::Span<const uint8_t> bytes) = 0;

  // Calls `done` once every write queued before this call is durable, or with the error
  // that prevented it: ResourceExhausted for a full disk (nothing in the failed write is
  // durable), Internal/DataLoss for an IO or fsync error (the node must crash).
  virtual void Sync(SyncDone done) = 0;

  // Drops every byte at or after `size_bytes` (queued in order like a write).
  virtual void Truncate(uint64_t size_bytes) = 0;

  // Size including queued writes.
  virtual uint64_t size_bytes() const = 0;
};

// ---------------------------------------------------------------------------------------
class Env {
 public:
  virtual ~Env() = default;

  // The node this Env belongs to (simulated clients have ids above kNodeIdMax).
  virtual NodeId node_id() const = 0;

  // Monotonic time in ns since an arbitrary origin; never goes backwards, keeps counting
  // across suspend. Use for timeouts and intervals.
  virtual int64_t MonotonicNowNs() = 0;

  // Wall-clock time in ns since the Unix epoch; may jump, drift or go backwards. Use only
  // for timestamps that become data (the owner stamps events), never for timeouts.
  virtual int64_t WallNowNs() = 0;

  // Calls `callback` on the loop after `delay_ns` (>= 0) of monotonic time. Returns an id
  // for CancelTimer (never kNoTimer).
  virtual TimerId StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback) = 0;

  // Cancels a pending timer; a no-op if it already fired or was cancelled.
  virtual void CancelTimer(TimerId timer) = 0;

  // This node's PRNG: the simulator seeds it from the run seed, the real node from OS
  // entropy (the seed is logged).
  virtual Prng& prng() = 0;

  // Node-to-node messages to the configured peers.
  virtual Transport& transport() = 0;

  // Starts listening for client streams on `port` (0 = any free port).
  virtual absl::StatusOr<std::unique_ptr<Listener>> Listen(uint16_t port,
                                                           AcceptFunction on_accept) = 0;

  // Connects to "host:port"; `done` runs on the loop with the stream or an error.
  virtual void Connect(std::string_view address, ConnectFunction done) = 0;

  // Opens (creating if absent) the disk file `name` in the node's data directory.
  // Names are plain ([a-z0-9_.-]+). At most one open handle per name.
  virtual absl::StatusOr<std::unique_ptr<DiskFile>> OpenDiskFile(std::string_view name) = 0;

  // Removes the disk file `name` (NotFound if absent). REQUIRES: no open handle.
  virtual absl::Status RemoveDiskFile(std::string_view name) = 0;

  // The node's state store (storage/state_store.h), opened once, owned by the Env.
  virtual absl::StatusOr<StateStore*> OpenStateStore() = 0;

  // Free space on the node's data volume, for backpressure.
  virtual absl::StatusOr<uint64_t> FreeDiskBytes() = 0;

  // Fibers of this node; see node/env/fiber.h.
  virtual FiberScheduler& fibers() = 0;

  // Writes one structured log line (the simulator prefixes virtual time and node).
  virtual void Log(std::string_view line) = 0;

  // Crashes this process on purpose after an error that leaves its memory out of step with
  // its disk (an fsync error, a log write that failed under replicated writes): it logs
  // `cause` and stops. The real node aborts (the supervisor restarts it from its disk).
  // The simulator marks the incarnation dead at once, so none of its events, messages or
  // stream writes happen any more, and crashes it like a SIGKILL; the call returns there,
  // and the caller must return without further effects.
  virtual void FailStop(const absl::Status& cause) = 0;
};

// If a durable write failed (`status` not OK), crashes the node on purpose through
// env.FailStop with `what` prefixed to the cause and returns true: the caller returns at
// once. False if `status` is OK.
bool FailStopOnError(Env& env, const absl::Status& status, absl::string_view what);

// Suspends the current fiber for `delay_ns`. May suspend. REQUIRES: called in a fiber.
void SleepFor(Env& env, int64_t delay_ns);

// Suspends the current fiber until `disk.Sync` completes and returns its status.
absl::Status SyncAndWait(Env& env, DiskFile& disk);

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_ENV_H_
