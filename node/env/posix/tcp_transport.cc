#include "node/env/posix/tcp_transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/env/posix/socket_util.h"

namespace unimeter {
namespace {

void PutU32(uint8_t* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<uint8_t>(value >> (8 * i));
  }
}

uint32_t GetU32(const uint8_t* in) {
  return static_cast<uint32_t>(in[0]) | static_cast<uint32_t>(in[1]) << 8 |
         static_cast<uint32_t>(in[2]) << 16 | static_cast<uint32_t>(in[3]) << 24;
}

constexpr size_t kReadChunkBytes = 64 * 1024;
constexpr size_t kReadBudgetBytes = 4 * 1024 * 1024;  // Per event: be fair to other fds.
constexpr int kIovecsMax = 64;

}  // namespace

std::vector<uint8_t> EncodeFrame(absl::Span<const uint8_t> payload) {
  UM_CHECK_LE(payload.size(), kMessageSizeBytesMax);
  std::vector<uint8_t> frame(kFrameHeaderSizeBytes + payload.size());
  PutU32(frame.data(), static_cast<uint32_t>(payload.size()));
  PutU32(frame.data() + 4, Crc32c(payload));
  if (!payload.empty()) {
    std::memcpy(frame.data() + kFrameHeaderSizeBytes, payload.data(), payload.size());
  }
  return frame;
}

std::vector<uint8_t> EncodeHelloFrame(NodeId source) {
  uint8_t payload[kHelloPayloadSizeBytes];
  PutU32(payload, kHelloMagic);
  PutU32(payload + 4, source);
  return EncodeFrame(absl::MakeConstSpan(payload, sizeof(payload)));
}

// ---------------------------------------------------------------------------------------
// One configured peer: the send queue and the outbound connection.
class TcpTransport::OutboundPeer {
 public:
  OutboundPeer(TcpTransport& transport, TransportPeer peer)
      : transport_(transport),
        loop_(transport.loop_),
        peer_(std::move(peer)),
        backoff_ns_(transport.options_.backoff_ns_min) {}

  ~OutboundPeer() {
    loop_.CancelTimer(reconnect_timer_);
    CloseSocket();
  }

  bool connected() const { return state_ == State::kConnected; }

  void Enqueue(absl::Span<const uint8_t> message) {
    const TcpTransportOptions& options = transport_.options_;
    const size_t frame_size_bytes = kFrameHeaderSizeBytes + message.size();
    if (queue_.size() >= options.queue_messages_max ||
        queue_bytes_ + frame_size_bytes > options.queue_bytes_max) {
      ++transport_.counters_.messages_dropped;
      return;
    }
    queue_.push_back(EncodeFrame(message));
    queue_bytes_ += frame_size_bytes;
    ScheduleFlush();
  }

  // Starts one connection attempt; on failure schedules the next one.
  void Connect() {
    UM_CHECK(state_ == State::kWaiting);
    UM_CHECK_EQ(fd_, -1);
    reconnect_timer_ = kNoTimer;
    absl::StatusOr<sockaddr_in> address = ResolveIpv4(peer_.host, peer_.port);
    absl::StatusOr<int> fd =
        address.ok() ? StartConnect(*address) : absl::StatusOr<int>(address.status());
    if (!fd.ok()) {
      ScheduleReconnect();
      return;
    }
    fd_ = *fd;
    const unsigned int user_timeout_ms =
        static_cast<unsigned int>(transport_.options_.unacknowledged_timeout_ms);
    setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
    absl::StatusOr<WatchId> watch =
        loop_.Watch(fd_, false, true, [this](uint32_t events) { OnEvents(events); });
    if (!watch.ok()) {
      CloseSocket();
      ScheduleReconnect();
      return;
    }
    watch_ = *watch;
    state_ = State::kConnecting;
  }

 private:
  enum class State { kWaiting, kConnecting, kConnected };

  void OnEvents(uint32_t events) {
    if (state_ == State::kConnecting) {
      const int error = TakeSocketError(fd_);
      if (error != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
        Reset();
        return;
      }
      OnConnected();
      return;
    }
    UM_CHECK(state_ == State::kConnected);
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0 && !DrainInput()) {
      Reset();
      return;
    }
    if ((events & EPOLLOUT) != 0) {
      Flush();
    }
  }

  void OnConnected() {
    state_ = State::kConnected;
    ++transport_.counters_.connects;
    backoff_ns_ = transport_.options_.backoff_ns_min;
    hello_ = EncodeHelloFrame(transport_.options_.node_id);
    hello_sent_bytes_ = 0;
    front_sent_bytes_ = 0;
    want_write_ = false;
    loop_.UpdateWatch(watch_, true, false);
    Flush();
  }

  // The peer never sends on this connection: reading only detects EOF and errors.
  // Returns false when the connection is gone.
  bool DrainInput() {
    std::array<uint8_t, 512> scratch;
    for (;;) {
      const ssize_t got = recv(fd_, scratch.data(), scratch.size(), MSG_DONTWAIT);
      if (got > 0) {
        continue;
      }
      return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
  }

  void ScheduleFlush() {
    if (state_ != State::kConnected || flush_scheduled_ || want_write_) {
      return;  // Not connected, already due, or waiting for EPOLLOUT.
    }
    flush_scheduled_ = true;
    std::weak_ptr<char> alive = alive_;
    loop_.Defer([this, alive] {
      if (alive.expired()) {
        return;
      }
      flush_scheduled_ = false;
      if (state_ == State::kConnected) {
        Flush();
      }
    });
  }

  // Fills `iovecs` with the unsent bytes (hello first); returns how many.
  int GatherOutput(std::array<iovec, kIovecsMax>& iovecs) {
    int count = 0;
    if (hello_sent_bytes_ < hello_.size()) {
      iovecs[count++] = {hello_.data() + hello_sent_bytes_, hello_.size() - hello_sent_bytes_};
    }
    size_t skip = front_sent_bytes_;
    for (auto it = queue_.begin(); it != queue_.end() && count < kIovecsMax; ++it) {
      iovecs[count++] = {it->data() + skip, it->size() - skip};
      skip = 0;
    }
    return count;
  }

  void ConsumeOutput(size_t sent_bytes) {
    const size_t hello_part = std::min(sent_bytes, hello_.size() - hello_sent_bytes_);
    hello_sent_bytes_ += hello_part;
    sent_bytes -= hello_part;
    while (sent_bytes > 0) {
      UM_CHECK(!queue_.empty());
      const size_t front_left = queue_.front().size() - front_sent_bytes_;
      if (sent_bytes < front_left) {
        front_sent_bytes_ += sent_bytes;
        return;
      }
      sent_bytes -= front_left;
      queue_bytes_ -= queue_.front().size();
      queue_.pop_front();
      front_sent_bytes_ = 0;
      ++transport_.counters_.messages_sent;
    }
  }

  void Flush() {
    UM_CHECK(state_ == State::kConnected);
    std::array<iovec, kIovecsMax> iovecs;
    for (;;) {
      const int count = GatherOutput(iovecs);
      if (count == 0) {
        SetWantWrite(false);
        return;
      }
      msghdr message{};
      message.msg_iov = iovecs.data();
      message.msg_iovlen = static_cast<size_t>(count);
      const ssize_t sent = sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent < 0 && errno == EINTR) {
        continue;
      }
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        SetWantWrite(true);
        return;
      }
      if (sent < 0) {
        Reset();
        return;
      }
      ConsumeOutput(static_cast<size_t>(sent));
    }
  }

  void SetWantWrite(bool want_write) {
    if (want_write_ != want_write) {
      want_write_ = want_write;
      loop_.UpdateWatch(watch_, true, want_write);
    }
  }

  // Drops the connection (counting a message cut mid-write as lost) and schedules the
  // next attempt.
  void Reset() {
    if (state_ == State::kConnected) {
      ++transport_.counters_.disconnects;
      if (front_sent_bytes_ > 0) {
        queue_bytes_ -= queue_.front().size();
        queue_.pop_front();
        front_sent_bytes_ = 0;
        ++transport_.counters_.messages_dropped;
      }
    }
    CloseSocket();
    ScheduleReconnect();
  }

  void CloseSocket() {
    loop_.Unwatch(watch_);
    watch_ = kNoWatch;
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    state_ = State::kWaiting;
    want_write_ = false;
    hello_.clear();
    hello_sent_bytes_ = 0;
  }

  void ScheduleReconnect() {
    UM_CHECK(state_ == State::kWaiting);
    UM_CHECK_EQ(reconnect_timer_, kNoTimer);
    reconnect_timer_ = loop_.StartTimer(backoff_ns_, [this] { Connect(); });
    backoff_ns_ = std::min(backoff_ns_ * 2, transport_.options_.backoff_ns_max);
  }

  TcpTransport& transport_;
  EventLoop& loop_;
  const TransportPeer peer_;
  State state_ = State::kWaiting;
  int fd_ = -1;
  WatchId watch_ = kNoWatch;
  TimerId reconnect_timer_ = kNoTimer;
  int64_t backoff_ns_;
  std::deque<std::vector<uint8_t>> queue_;  // Encoded frames, oldest first.
  size_t queue_bytes_ = 0;
  size_t front_sent_bytes_ = 0;  // Of queue_.front() on this connection.
  std::vector<uint8_t> hello_;   // Sent first on each connection.
  size_t hello_sent_bytes_ = 0;
  bool flush_scheduled_ = false;
  bool want_write_ = false;                                  // Waiting for EPOLLOUT.
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);  // Guards deferred flushes.
};

// ---------------------------------------------------------------------------------------
// One accepted connection: reads and checks frames, delivers messages.
class TcpTransport::InboundConnection {
 public:
  InboundConnection(TcpTransport& transport, uint64_t id, int fd)
      : transport_(transport), id_(id), fd_(fd) {}

  ~InboundConnection() {
    transport_.loop_.Unwatch(watch_);
    close(fd_);
  }

  absl::Status Start() {
    absl::StatusOr<WatchId> watch =
        transport_.loop_.Watch(fd_, true, false, [this](uint32_t events) { OnEvents(events); });
    if (!watch.ok()) {
      return watch.status();
    }
    watch_ = *watch;
    return absl::OkStatus();
  }

 private:
  enum class ParseResult { kNeedMore, kBadFrame };

  void OnEvents(uint32_t /*events*/) {
    size_t budget_bytes = kReadBudgetBytes;
    while (budget_bytes > 0) {
      const size_t old_size = input_.size();
      input_.resize(old_size + kReadChunkBytes);
      const ssize_t got = recv(fd_, input_.data() + old_size, kReadChunkBytes, MSG_DONTWAIT);
      input_.resize(old_size + static_cast<size_t>(std::max<ssize_t>(got, 0)));
      if (got < 0 && errno == EINTR) {
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      }
      if (got <= 0) {
        transport_.CloseInbound(id_);  // EOF or error. Destroys this.
        return;
      }
      budget_bytes -= std::min(budget_bytes, static_cast<size_t>(got));
      if (ParseFrames() == ParseResult::kBadFrame) {
        ++transport_.counters_.bad_frames;
        transport_.CloseInbound(id_);  // Destroys this.
        return;
      }
    }
  }

  // Delivers every complete frame in input_.
  ParseResult ParseFrames() {
    for (;;) {
      const size_t available = input_.size() - parse_offset_;
      if (available < kFrameHeaderSizeBytes) {
        break;
      }
      const uint8_t* header = input_.data() + parse_offset_;
      const uint32_t payload_size = GetU32(header);
      if (payload_size > kMessageSizeBytesMax) {
        return ParseResult::kBadFrame;
      }
      if (available < kFrameHeaderSizeBytes + payload_size) {
        break;
      }
      const auto payload = absl::MakeConstSpan(header + kFrameHeaderSizeBytes, payload_size);
      if (Crc32c(payload) != GetU32(header + 4)) {
        return ParseResult::kBadFrame;
      }
      parse_offset_ += kFrameHeaderSizeBytes + payload_size;
      if (!source_.has_value()) {
        if (!AcceptHello(payload)) {
          return ParseResult::kBadFrame;
        }
        continue;
      }
      transport_.Deliver(*source_, payload);
    }
    // Keep only the unparsed tail.
    if (parse_offset_ == input_.size()) {
      input_.clear();
      parse_offset_ = 0;
    } else if (parse_offset_ >= kReadChunkBytes) {
      input_.erase(input_.begin(), input_.begin() + static_cast<ptrdiff_t>(parse_offset_));
      parse_offset_ = 0;
    }
    return ParseResult::kNeedMore;
  }

  bool AcceptHello(absl::Span<const uint8_t> payload) {
    if (payload.size() != kHelloPayloadSizeBytes || GetU32(payload.data()) != kHelloMagic) {
      return false;
    }
    const NodeId source = GetU32(payload.data() + 4);
    if (!transport_.peers_.contains(source)) {
      return false;  // Not a configured peer (or ourselves).
    }
    source_ = source;
    transport_.CloseSupersededInbound(source, id_);
    return true;
  }

 public:
  std::optional<NodeId> source() const { return source_; }

 private:
  TcpTransport& transport_;
  const uint64_t id_;
  const int fd_;
  WatchId watch_ = kNoWatch;
  std::vector<uint8_t> input_;
  size_t parse_offset_ = 0;
  std::optional<NodeId> source_;  // From the hello.
};

// ---------------------------------------------------------------------------------------
TcpTransport::TcpTransport(EventLoop& loop, TcpTransportOptions options)
    : loop_(loop), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<TcpTransport>> TcpTransport::Create(EventLoop& loop,
                                                                   TcpTransportOptions options) {
  std::unique_ptr<TcpTransport> transport(new TcpTransport(loop, std::move(options)));
  for (const TransportPeer& peer : transport->options_.peers) {
    UM_CHECK_NE(peer.id, transport->options_.node_id);
    UM_CHECK(!transport->peers_.contains(peer.id));
    transport->peers_.emplace(peer.id, std::make_unique<OutboundPeer>(*transport, peer));
  }
  if (!transport->peers_.empty()) {
    absl::Status status = transport->StartListening();
    if (!status.ok()) {
      return status;
    }
  }
  for (auto& [id, peer] : transport->peers_) {
    peer->Connect();
  }
  return transport;
}

void TcpTransport::PauseAccepting() {
  if (accept_resume_timer_ != kNoTimer) {
    return;
  }
  loop_.UpdateWatch(listen_watch_, false, false);
  accept_resume_timer_ = loop_.StartTimer(kAcceptPauseNs, [this] {
    accept_resume_timer_ = kNoTimer;
    loop_.UpdateWatch(listen_watch_, true, false);
  });
}

TcpTransport::~TcpTransport() {
  loop_.CancelTimer(accept_resume_timer_);
  peers_.clear();
  inbound_.clear();
  loop_.Unwatch(listen_watch_);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
  }
}

absl::Status TcpTransport::StartListening() {
  absl::StatusOr<int> fd = ListenTcp(options_.listen_port);
  if (!fd.ok()) {
    return fd.status();
  }
  listen_fd_ = *fd;
  absl::StatusOr<uint16_t> port = LocalPort(listen_fd_);
  if (!port.ok()) {
    return port.status();
  }
  listen_port_ = *port;
  absl::StatusOr<WatchId> watch =
      loop_.Watch(listen_fd_, true, false, [this](uint32_t) { AcceptAll(); });
  if (!watch.ok()) {
    return watch.status();
  }
  listen_watch_ = *watch;
  return absl::OkStatus();
}

void TcpTransport::AcceptAll() {
  for (int accepted = 0; accepted < 64; ++accepted) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: the level-triggered watch would fire again at once.
        PauseAccepting();
      }
      return;  // EAGAIN, or a transient error (ECONNABORTED): retried when ready.
    }
    const uint64_t id = next_inbound_id_++;
    auto connection = std::make_unique<InboundConnection>(*this, id, fd);
    if (connection->Start().ok()) {
      inbound_.emplace(id, std::move(connection));
    }
  }
}

void TcpTransport::CloseInbound(uint64_t connection_id) {
  UM_CHECK_EQ(inbound_.erase(connection_id), 1u);
}

void TcpTransport::CloseSupersededInbound(NodeId source, uint64_t newest_connection_id) {
  std::vector<uint64_t> superseded;
  for (const auto& [id, connection] : inbound_) {
    if (id != newest_connection_id && connection->source() == source) superseded.push_back(id);
  }
  for (uint64_t id : superseded) CloseInbound(id);
}

void TcpTransport::Deliver(NodeId source, absl::Span<const uint8_t> message) {
  ++counters_.messages_received;
  if (receiver_ != nullptr) {
    std::shared_ptr<Receiver> receiver = receiver_;
    (*receiver)(source, message);
  }
}

void TcpTransport::Send(NodeId target, absl::Span<const uint8_t> message) {
  UM_CHECK_LE(message.size(), kMessageSizeBytesMax);
  UM_CHECK_NE(target, options_.node_id);
  auto it = peers_.find(target);
  UM_CHECK(it != peers_.end());
  it->second->Enqueue(message);
}

void TcpTransport::SetReceiver(Receiver receiver) {
  receiver_ = std::make_shared<Receiver>(std::move(receiver));
}

bool TcpTransport::connected(NodeId peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second->connected();
}

}  // namespace unimeter
