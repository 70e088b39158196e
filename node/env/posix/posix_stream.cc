#include "node/env/posix/posix_stream.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/env/posix/socket_util.h"

namespace unimeter {
namespace {

constexpr size_t kReadChunkBytes = 16 * 1024;
constexpr size_t kReadBudgetBytes = 1024 * 1024;  // Per event: be fair to other fds.
constexpr uint32_t kInputEvents = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;

}  // namespace

// ---------------------------------------------------------------------------------------
PosixStream::PosixStream(EventLoop& loop, int fd, uint64_t id)
    : loop_(loop),
      fd_(fd),
      id_(id),
      peer_address_(PeerAddressText(fd)),
      local_address_(LocalAddressText(fd)) {}

absl::StatusOr<std::unique_ptr<PosixStream>> PosixStream::Create(EventLoop& loop, int fd,
                                                                 uint64_t id) {
  std::unique_ptr<PosixStream> stream(new PosixStream(loop, fd, id));
  PosixStream* raw = stream.get();
  absl::StatusOr<WatchId> watch =
      loop.Watch(fd, true, false, [raw](uint32_t events) { raw->OnEvents(events); });
  if (!watch.ok()) {
    return watch.status();  // The destructor closes fd.
  }
  stream->watch_ = *watch;
  stream->interest_reading_ = true;
  return stream;
}

PosixStream::~PosixStream() {
  loop_.CancelTimer(linger_timer_);
  if (fd_ >= 0) {
    loop_.Unwatch(watch_);
    close(fd_);
  }
}

bool PosixStream::reading() const {
  return state_ == State::kOpen && input_.size() < kInputBufferedBytesMax;
}

void PosixStream::UpdateInterest() {
  if (state_ == State::kClosed) {
    return;
  }
  const bool reading_now = reading();
  if (reading_now != interest_reading_ || want_write_ != interest_writing_) {
    interest_reading_ = reading_now;
    interest_writing_ = want_write_;
    loop_.UpdateWatch(watch_, interest_reading_, interest_writing_);
  }
}

void PosixStream::OnEvents(uint32_t events) {
  std::weak_ptr<char> alive = alive_;
  const bool hangup = (events & (EPOLLHUP | EPOLLERR)) != 0;
  if (state_ == State::kOpen && (events & kInputEvents) != 0) {
    ReadAvailable(/*drain=*/hangup);
    if (alive.expired() || state_ == State::kClosed) {
      return;
    }
  }
  if ((events & EPOLLOUT) != 0) {
    Flush();
    if (state_ == State::kClosed) {
      return;
    }
  }
  if (hangup) {
    const int error = TakeSocketError(fd_);
    CloseNow(SocketErrorStatus(error != 0 ? error : ECONNRESET, "stream"));
  }
}

void PosixStream::ReadAvailable(bool drain) {
  std::weak_ptr<char> alive = alive_;
  std::array<uint8_t, kReadChunkBytes> chunk;
  size_t budget_bytes = drain ? std::numeric_limits<size_t>::max() : kReadBudgetBytes;
  while (reading() && budget_bytes > 0) {
    const ssize_t got = recv(fd_, chunk.data(), chunk.size(), MSG_DONTWAIT);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    }
    if (got < 0) {
      CloseNow(SocketErrorStatus(errno, "recv"));
      return;
    }
    if (got == 0) {
      CloseNow(absl::OkStatus());  // EOF from the peer.
      return;
    }
    budget_bytes -= std::min(budget_bytes, static_cast<size_t>(got));
    const auto bytes = absl::MakeConstSpan(chunk.data(), static_cast<size_t>(got));
    if (handler_ != nullptr && input_.empty() && !delivery_scheduled_) {
      std::shared_ptr<Handler> handler = handler_;
      handler->on_data(bytes);
      if (alive.expired()) {
        return;
      }
    } else {
      input_.insert(input_.end(), bytes.begin(), bytes.end());  // Keeps the order.
    }
  }
  UpdateInterest();  // Pauses reading when the unclaimed input is full.
}

void PosixStream::SetHandler(Handler handler) {
  handler_ = std::make_shared<Handler>(std::move(handler));
  if (!input_.empty() || close_pending_) {
    ScheduleDelivery();
  }
}

void PosixStream::ScheduleDelivery() {
  if (handler_ == nullptr || delivery_scheduled_) {
    return;
  }
  delivery_scheduled_ = true;
  std::weak_ptr<char> alive = alive_;
  loop_.Defer([this, alive] {
    if (!alive.expired()) {
      delivery_scheduled_ = false;
      DeliverBuffered();
    }
  });
}

void PosixStream::DeliverBuffered() {
  std::weak_ptr<char> alive = alive_;
  std::shared_ptr<Handler> handler = handler_;
  if (!input_.empty()) {
    std::vector<uint8_t> bytes = std::move(input_);
    input_.clear();
    handler->on_data(bytes);
    if (alive.expired()) {
      return;
    }
    UpdateInterest();  // Reading may resume.
  }
  if (close_pending_ && state_ == State::kClosed) {
    close_pending_ = false;
    handler->on_close(close_reason_);  // May destroy this.
  }
}

absl::Status PosixStream::Write(absl::Span<const uint8_t> bytes) {
  if (state_ != State::kOpen) {
    return absl::FailedPreconditionError(absl::StrCat("stream ", id_, " is closed"));
  }
  if (pending_write_bytes() + bytes.size() > kOutputBytesMax) {
    return absl::ResourceExhaustedError(
        absl::StrCat("stream ", id_, " output buffer full (", pending_write_bytes(), " bytes)"));
  }
  if (output_offset_ > 0 && output_offset_ >= output_.size() / 2) {
    output_.erase(output_.begin(), output_.begin() + static_cast<ptrdiff_t>(output_offset_));
    output_offset_ = 0;
  }
  output_.insert(output_.end(), bytes.begin(), bytes.end());
  ScheduleFlush();
  return absl::OkStatus();
}

void PosixStream::ScheduleFlush() {
  if (flush_scheduled_ || want_write_) {
    return;  // Already due, or waiting for EPOLLOUT.
  }
  flush_scheduled_ = true;
  std::weak_ptr<char> alive = alive_;
  loop_.Defer([this, alive] {
    if (!alive.expired()) {
      flush_scheduled_ = false;
      if (state_ != State::kClosed) {
        Flush();
      }
    }
  });
}

void PosixStream::Flush() {
  UM_CHECK(state_ != State::kClosed);
  while (output_offset_ < output_.size()) {
    const ssize_t sent = send(fd_, output_.data() + output_offset_, output_.size() - output_offset_,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) {
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want_write_ = true;
      UpdateInterest();
      return;
    }
    if (sent < 0) {
      CloseNow(SocketErrorStatus(errno, "send"));
      return;
    }
    output_offset_ += static_cast<size_t>(sent);
  }
  output_.clear();
  output_offset_ = 0;
  want_write_ = false;
  UpdateInterest();
  if (state_ == State::kClosing) {
    shutdown(fd_, SHUT_WR);
    CloseNow(absl::OkStatus());
  }
}

void PosixStream::Close() {
  if (state_ != State::kOpen) {
    return;
  }
  state_ = State::kClosing;
  input_.clear();  // Nothing more arrives after Close().
  if (pending_write_bytes() == 0) {
    CloseNow(absl::OkStatus());
    return;
  }
  linger_timer_ = loop_.StartTimer(kCloseLingerNs, [this] {
    linger_timer_ = kNoTimer;
    CloseNow(absl::DeadlineExceededError("close: output not flushed in time"));
  });
  UpdateInterest();
  ScheduleFlush();
}

void PosixStream::CloseNow(absl::Status reason) {
  if (state_ == State::kClosed) {
    return;
  }
  state_ = State::kClosed;
  loop_.CancelTimer(linger_timer_);
  linger_timer_ = kNoTimer;
  loop_.Unwatch(watch_);
  watch_ = kNoWatch;
  close(fd_);
  fd_ = -1;
  output_.clear();
  output_offset_ = 0;
  close_reason_ = std::move(reason);
  close_pending_ = true;
  ScheduleDelivery();  // on_close always runs from the loop, after buffered input.
}

// ---------------------------------------------------------------------------------------
PosixListener::PosixListener(EventLoop& loop, StreamIdSource& ids, int fd, uint16_t port,
                             AcceptFunction on_accept)
    : loop_(loop), ids_(ids), fd_(fd), port_(port), on_accept_(std::move(on_accept)) {}

absl::StatusOr<std::unique_ptr<PosixListener>> PosixListener::Create(EventLoop& loop,
                                                                     StreamIdSource& ids,
                                                                     uint16_t port,
                                                                     AcceptFunction on_accept) {
  absl::StatusOr<int> fd = ListenTcp(port);
  if (!fd.ok()) {
    return fd.status();
  }
  absl::StatusOr<uint16_t> actual_port = LocalPort(*fd);
  if (!actual_port.ok()) {
    close(*fd);
    return actual_port.status();
  }
  std::unique_ptr<PosixListener> listener(
      new PosixListener(loop, ids, *fd, *actual_port, std::move(on_accept)));
  PosixListener* raw = listener.get();
  absl::StatusOr<WatchId> watch =
      loop.Watch(*fd, true, false, [raw](uint32_t) { raw->AcceptAll(); });
  if (!watch.ok()) {
    return watch.status();  // The destructor closes fd.
  }
  listener->watch_ = *watch;
  return listener;
}

void PosixListener::PauseAccepting() {
  if (resume_timer_ != kNoTimer) {
    return;
  }
  loop_.UpdateWatch(watch_, false, false);
  resume_timer_ = loop_.StartTimer(kAcceptPauseNs, [this] {
    resume_timer_ = kNoTimer;
    loop_.UpdateWatch(watch_, true, false);
  });
}

PosixListener::~PosixListener() {
  loop_.CancelTimer(resume_timer_);
  loop_.Unwatch(watch_);
  close(fd_);
}

void PosixListener::AcceptAll() {
  std::weak_ptr<char> alive = alive_;
  for (int accepted = 0; accepted < 64; ++accepted) {
    const int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the pending connection stays queued and the
        // level-triggered watch would fire again at once. Stop watching for a while.
        PauseAccepting();
      }
      return;  // EAGAIN, or a transient error (ECONNABORTED): retried when ready.
    }
    SetNoDelay(fd);
    absl::StatusOr<std::unique_ptr<PosixStream>> stream =
        PosixStream::Create(loop_, fd, ids_.Next());
    if (!stream.ok()) {
      continue;
    }
    on_accept_(*std::move(stream));
    if (alive.expired()) {
      return;  // on_accept destroyed the listener.
    }
  }
}

// ---------------------------------------------------------------------------------------
StreamConnector::~StreamConnector() {
  for (auto& [id, attempt] : attempts_) {
    loop_.CancelTimer(attempt.timer);
    loop_.Unwatch(attempt.watch);
    close(attempt.fd);
  }
}

void StreamConnector::FailLater(ConnectFunction done, absl::Status status) {
  loop_.Defer(
      [done = std::move(done), status = std::move(status)]() mutable { done(std::move(status)); });
}

void StreamConnector::Connect(std::string_view address, ConnectFunction done) {
  absl::StatusOr<HostPort> host_port = ParseHostPort(address);
  if (!host_port.ok()) {
    FailLater(std::move(done), host_port.status());
    return;
  }
  absl::StatusOr<sockaddr_in> socket_address = ResolveIpv4(host_port->host, host_port->port);
  absl::StatusOr<int> fd = socket_address.ok() ? StartConnect(*socket_address)
                                               : absl::StatusOr<int>(socket_address.status());
  if (!fd.ok()) {
    FailLater(std::move(done), fd.status());
    return;
  }
  const uint64_t attempt_id = next_attempt_id_++;
  const std::string what = absl::StrCat("connect ", std::string(address));
  absl::StatusOr<WatchId> watch =
      loop_.Watch(*fd, false, true, [this, attempt_id, what, fd = *fd](uint32_t events) {
        int error = TakeSocketError(fd);
        if (error == 0 && (events & EPOLLERR) != 0) {
          error = ECONNREFUSED;
        }
        Finish(attempt_id, error == 0 ? absl::OkStatus() : SocketErrorStatus(error, what));
      });
  if (!watch.ok()) {
    close(*fd);
    FailLater(std::move(done), watch.status());
    return;
  }
  Attempt& attempt = attempts_[attempt_id];
  attempt.fd = *fd;
  attempt.watch = *watch;
  attempt.done = std::move(done);
  attempt.timer = loop_.StartTimer(kConnectTimeoutNs, [this, attempt_id, what] {
    attempts_.at(attempt_id).timer = kNoTimer;
    Finish(attempt_id, absl::DeadlineExceededError(what));
  });
}

void StreamConnector::Finish(uint64_t attempt_id, absl::Status status) {
  auto node = attempts_.extract(attempt_id);
  UM_CHECK(!node.empty());
  Attempt attempt = std::move(node.mapped());
  loop_.CancelTimer(attempt.timer);
  loop_.Unwatch(attempt.watch);
  if (!status.ok()) {
    close(attempt.fd);
    attempt.done(std::move(status));
    return;
  }
  attempt.done(PosixStream::Create(loop_, attempt.fd, ids_.Next()));
}

}  // namespace unimeter
