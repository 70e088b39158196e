// node/env/posix/posix_stream.h
//
// Client byte streams over TCP for the posix Env: PosixStream (a Stream), PosixListener
// (a Listener on 0.0.0.0) and StreamConnector (non-blocking connects).
//
// PosixStream semantics (see Stream in node/env/env.h):
//   - bytes read before SetHandler() are buffered (up to kInputBufferedBytesMax, then
//     reading pauses) and delivered from the loop after SetHandler() returns, before any
//     newer bytes;
//   - Write() appends to an output buffer of at most kOutputBytesMax bytes
//     (ResourceExhausted beyond it, FailedPrecondition after Close() or a close); writes
//     are sent at the end of the loop iteration, batched;
//   - Close() stops delivering input, flushes the output (giving up after kCloseLingerNs),
//     then closes the socket; on_close(OK) follows from the loop;
//   - the peer's EOF (even a half-close) closes the stream with OK, a reset or socket error
//     with Unavailable; unsent output is then dropped;
//   - on_close runs exactly once, from the loop, if a handler is installed (at any time);
//     destroying the stream closes the socket and never calls on_close.
// Handlers may destroy the stream (typically in on_close). Loop thread only.
#ifndef UNIMETER_NODE_ENV_POSIX_POSIX_STREAM_H_
#define UNIMETER_NODE_ENV_POSIX_POSIX_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/env/env.h"
#include "node/env/posix/event_loop.h"

namespace unimeter {

// Hands out stream ids, unique within one Env.
class StreamIdSource {
 public:
  uint64_t Next() { return next_id_++; }

 private:
  uint64_t next_id_ = 1;
};

class PosixStream final : public Stream {
 public:
  static constexpr size_t kOutputBytesMax = 16 * 1024 * 1024;
  static constexpr size_t kInputBufferedBytesMax = 16 * 1024 * 1024;
  static constexpr int64_t kCloseLingerNs = 10'000'000'000;

  // Takes ownership of the connected non-blocking socket `fd` (closed on failure).
  static absl::StatusOr<std::unique_ptr<PosixStream>> Create(EventLoop& loop, int fd, uint64_t id);
  ~PosixStream() override;

  PosixStream(const PosixStream&) = delete;
  PosixStream& operator=(const PosixStream&) = delete;

  void SetHandler(Handler handler) override;
  absl::Status Write(absl::Span<const uint8_t> bytes) override;
  size_t pending_write_bytes() const override { return output_.size() - output_offset_; }
  void Close() override;
  uint64_t id() const override { return id_; }
  std::string peer_address() const override { return peer_address_; }
  std::string local_address() const override { return local_address_; }

 private:
  enum class State { kOpen, kClosing, kClosed };

  PosixStream(EventLoop& loop, int fd, uint64_t id);

  void OnEvents(uint32_t events);
  void ReadAvailable(bool drain);
  void Flush();
  void ScheduleFlush();
  void ScheduleDelivery();
  void DeliverBuffered();
  void CloseNow(absl::Status reason);
  void UpdateInterest();
  bool reading() const;

  EventLoop& loop_;
  int fd_;
  const uint64_t id_;
  const std::string peer_address_;
  const std::string local_address_;
  WatchId watch_ = kNoWatch;
  State state_ = State::kOpen;
  std::shared_ptr<Handler> handler_;  // Shared: survives the stream's destruction in a call.
  std::vector<uint8_t> input_;        // Read before the handler could take it.
  std::vector<uint8_t> output_;
  size_t output_offset_ = 0;  // output_[0, offset) is already sent.
  bool want_write_ = false;   // Waiting for EPOLLOUT.
  bool interest_reading_ = false;
  bool interest_writing_ = false;
  bool flush_scheduled_ = false;
  bool delivery_scheduled_ = false;
  bool close_pending_ = false;  // Closed; on_close not yet called.
  absl::Status close_reason_;
  TimerId linger_timer_ = kNoTimer;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);  // Guards deferred work.
};

// Accepts connections on 0.0.0.0:port. Destroying it closes the listening socket.
class PosixListener final : public Listener {
 public:
  // REQUIRES: `loop` and `ids` outlive the listener.
  static absl::StatusOr<std::unique_ptr<PosixListener>> Create(EventLoop& loop, StreamIdSource& ids,
                                                               uint16_t port,
                                                               AcceptFunction on_accept);
  ~PosixListener() override;

  uint16_t port() const override { return port_; }

 private:
  PosixListener(EventLoop& loop, StreamIdSource& ids, int fd, uint16_t port,
                AcceptFunction on_accept);
  void AcceptAll();
  // Stops accepting for kAcceptPauseNs (out of descriptors: accepting would spin).
  void PauseAccepting();

  static constexpr int64_t kAcceptPauseNs = 100'000'000;

  EventLoop& loop_;
  StreamIdSource& ids_;
  const int fd_;
  const uint16_t port_;
  AcceptFunction on_accept_;
  WatchId watch_ = kNoWatch;
  TimerId resume_timer_ = kNoTimer;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
};

// Runs outbound connects. Destroying it abandons pending attempts (their `done` is
// never called).
class StreamConnector {
 public:
  static constexpr int64_t kConnectTimeoutNs = 10'000'000'000;

  StreamConnector(EventLoop& loop, StreamIdSource& ids) : loop_(loop), ids_(ids) {}
  ~StreamConnector();

  StreamConnector(const StreamConnector&) = delete;
  StreamConnector& operator=(const StreamConnector&) = delete;

  // See Env::Connect. `done` always runs later, from the loop. The host is resolved
  // (blocking, getaddrinfo) inside this call unless it is a numeric IPv4 address.
  void Connect(std::string_view address, ConnectFunction done);

  size_t pending_connect_count() const { return attempts_.size(); }

 private:
  struct Attempt {
    int fd = -1;
    WatchId watch = kNoWatch;
    TimerId timer = kNoTimer;
    ConnectFunction done;
  };

  void Finish(uint64_t attempt_id, absl::Status status);
  void FailLater(ConnectFunction done, absl::Status status);

  EventLoop& loop_;
  StreamIdSource& ids_;
  absl::flat_hash_map<uint64_t, Attempt> attempts_;
  uint64_t next_attempt_id_ = 1;
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_POSIX_STREAM_H_
