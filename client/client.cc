// client/client.cc
//
// The I/O loop (one thread, poll(2), non-blocking sockets) and the Client facade.
//
// A Call is one wire request with its routing, retry state and deadline. Callers build the
// request frame (with a placeholder request id) on their own thread, hand the Call to the loop
// through a mutex-protected queue and an eventfd, and get the reply through a callback that
// the loop runs. The loop owns every socket, the partition map it routes with, the per-node
// connections and every retry decision; nothing else touches them.
#include "client/client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/internal.h"
#include "node/base/check.h"

namespace unimeter::client {

namespace wire = ::unimeter::protocol;
using Clock = std::chrono::steady_clock;

namespace {

std::string Str(std::string_view view) { return std::string(view); }

Clock::time_point DeadlineAfter(int64_t timeout_ms) {
  return Clock::now() + std::chrono::milliseconds(timeout_ms);
}

}  // namespace

// ---- Calls ------------------------------------------------------------------------------------

enum class Route : uint8_t {
  kPartition,  // The leader of `partition`, failing over to any node.
  kAnyNode,    // Any node: map nodes, then seeds (GET_PARTITION_MAP, metric admin fallback).
  kNode,       // Exactly `node` (ALERTS_LIST, CLUSTER_STATUS, ALERT_PUSH_ENABLE): no failover.
};

// What the loop hands back: the transport/retry verdict, and on success the wire status and
// payload of the final reply (OK, DUPLICATE or UNKNOWN_METRIC).
struct Reply {
  absl::Status status{};
  uint8_t wire_status = 0;
  std::string payload{};
};
using ReplyCallback = std::function<void(Reply)>;

struct CallSpec {
  wire::Opcode opcode = wire::Opcode::kGetPartitionMap;
  std::string frame{};  // A complete request frame; its request id is rewritten per attempt.
  Route route = Route::kAnyNode;
  uint16_t partition = 0;
  std::string node{};
  bool is_ingest = false;
  bool all_timestamped = false;
  int redirects_max = 0;
  Clock::time_point deadline{};
  ReplyCallback done{};
  bool internal = false;  // Issued by the loop itself: not counted against pending_calls_max.
};

enum class CallState : uint8_t { kReady, kBackoff, kWaitingConnect, kOnWire };

struct Call {
  uint64_t id = 0;
  CallSpec spec{};
  CallState state = CallState::kReady;
  int backoff_attempts = 0;
  int failovers = 0;
  int err_resends = 0;
  int redirects = 0;
  std::string redirect_target{};
  // Some earlier attempt of this ingest request may have been applied (ERR, or a connection
  // lost after bytes were written). Final failures then report UnknownError.
  bool outcome_unknown = false;
  std::string last_problem{};
  // The status code when the deadline expires while not on the wire: what the last retry was
  // waiting out (BACKPRESSURE => ResourceExhausted, no connection => Unavailable).
  absl::StatusCode code_at_deadline = absl::StatusCode::kDeadlineExceeded;
  // kWaitingConnect / kOnWire:
  std::string address{};
  uint32_t request_id = 0;
  uint64_t frame_begin = 0;  // Offset of the frame's first byte in the connection's stream.
};

struct Connection {
  std::string address{};
  int fd = -1;
  bool connected = false;
  Clock::time_point connect_deadline{};
  std::string out{};  // Queued bytes not yet written, from out_offset on.
  size_t out_offset = 0;
  uint64_t bytes_queued = 0;  // Stream offsets: total bytes ever queued / written.
  uint64_t bytes_written = 0;
  internal::ResponseReader reader{};
  std::map<uint32_t, uint64_t> on_wire{};  // request id -> call id (0 = fire-and-forget).
  std::vector<uint64_t> waiting{};         // Call ids waiting for the connect to finish.
  uint32_t last_request_id = 0;
};

// ---- IoLoop -----------------------------------------------------------------------------------

class IoLoop {
 public:
  explicit IoLoop(ClientOptions options);
  ~IoLoop();
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  void Start();
  // Hands `spec` to the loop. Always calls spec.done exactly once: on the loop thread, or on
  // this thread when the call cannot be queued (deadline while the pending bound is reached,
  // or shutdown).
  void Submit(CallSpec spec);

  std::shared_ptr<const PartitionMap> map() const;
  const ClientOptions& options() const { return options_; }
  void SetAlertCallback(AlertCallback callback);
  void SetAlertPushWanted();
  void RequestMapRefresh();

  // Installs the map from a GET_PARTITION_MAP reply (loop thread).
  absl::Status InstallMap(std::span<const uint8_t> payload);

 private:
  void Run();
  void TakeSubmissions();
  void PollOnce();
  int PollTimeoutMs(Clock::time_point now) const;
  void HandleConnectionEvents(const std::vector<pollfd>& fds,
                              const std::vector<std::string>& addresses);

  void Dispatch(uint64_t call_id);
  std::vector<std::string> Candidates(const Call& call) const;
  Connection* GetOrOpen(const std::string& address, std::string* error);
  void PutOnWire(Connection& connection, Call& call);
  void OnConnected(Connection& connection);
  void FlushWrites(Connection& connection);
  void ReadFrom(Connection& connection);
  void CloseConnection(const std::string& address, const std::string& reason);

  void OnFrame(Connection& connection, internal::ResponseFrame& frame);
  void OnPush(Connection& connection, const internal::ResponseFrame& frame);
  void OnReply(Call& call, internal::ResponseFrame& frame);
  void OnConnectionLost(Call& call, bool bytes_sent, const std::string& reason);
  void Retry(Call& call, absl::StatusCode code_at_deadline);
  void Fail(Call& call, absl::StatusCode code, const std::string& message);
  void Complete(uint64_t call_id, Reply reply);
  void DetachFromConnection(Call& call);

  void CheckDeadlines(Clock::time_point now);
  // Schedules a map download soon (at most one per 100 ms, one at a time).
  void AskForMapRefresh();
  void MaybeRefreshMap(Clock::time_point now);
  void FailEverything();

  const ClientOptions options_;
  int wake_fd_ = -1;
  std::thread thread_;

  // Shared with callers.
  mutable std::mutex mu_;
  std::condition_variable space_cv_;
  std::deque<CallSpec> submissions_;
  size_t pending_calls_ = 0;
  bool stopping_ = false;
  bool push_wanted_ = false;
  bool refresh_requested_ = false;
  std::shared_ptr<const PartitionMap> map_;
  // map_'s distinct leaders in partition order (Candidates' fallbacks); set with map_.
  std::shared_ptr<const std::vector<std::string>> map_leaders_;
  AlertCallback alert_callback_;

  // Loop thread only.
  uint64_t next_call_id_ = 1;
  std::map<uint64_t, Call> calls_;
  std::deque<uint64_t> ready_;
  std::multimap<Clock::time_point, uint64_t> timers_;
  std::map<std::string, Connection> connections_;
  std::map<std::string, Clock::time_point> down_until_;
  Clock::time_point next_map_refresh_{};
  Clock::time_point last_map_refresh_{};
  Clock::time_point next_deadline_check_{};
  bool map_refresh_in_flight_ = false;
  bool loop_push_wanted_ = false;
  std::mt19937_64 random_{std::random_device{}()};
};

IoLoop::IoLoop(ClientOptions options) : options_(std::move(options)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  UM_CHECK_GE(wake_fd_, 0);
}

IoLoop::~IoLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  const uint64_t one = 1;
  UM_CHECK_EQ(write(wake_fd_, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  if (thread_.joinable()) {
    thread_.join();
  }
  close(wake_fd_);
}

void IoLoop::Start() {
  next_map_refresh_ = Clock::now() + std::chrono::milliseconds(options_.map_refresh_interval_ms);
  thread_ = std::thread([this] { Run(); });
}

void IoLoop::Submit(CallSpec spec) {
  bool wake = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!spec.internal) {
      const bool has_space = space_cv_.wait_until(lock, spec.deadline, [&] {
        return stopping_ || pending_calls_ < options_.pending_calls_max;
      });
      if (!has_space || stopping_) {
        lock.unlock();
        spec.done({.status = stopping_ ? absl::CancelledError("client is shutting down")
                                       : absl::ResourceExhaustedError(
                                             "client queue full until the deadline; not sent")});
        return;
      }
      ++pending_calls_;
    }
    // Only the first submission since the loop last took them wakes it: the loop takes
    // every queued one at once, so later ones would cost a system call and a wake-up each.
    wake = submissions_.empty();
    submissions_.push_back(std::move(spec));
  }
  if (wake) {
    const uint64_t one = 1;
    UM_CHECK_EQ(write(wake_fd_, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  }
}

std::shared_ptr<const PartitionMap> IoLoop::map() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_;
}

void IoLoop::SetAlertCallback(AlertCallback callback) {
  std::lock_guard<std::mutex> lock(mu_);
  alert_callback_ = std::move(callback);
}

void IoLoop::SetAlertPushWanted() {
  std::lock_guard<std::mutex> lock(mu_);
  push_wanted_ = true;
}

void IoLoop::RequestMapRefresh() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_requested_ = true;
  }
  const uint64_t one = 1;
  UM_CHECK_EQ(write(wake_fd_, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
}

absl::Status IoLoop::InstallMap(std::span<const uint8_t> payload) {
  absl::StatusOr<PartitionMap> decoded = internal::DecodePartitionMapReply(payload);
  if (!decoded.ok()) {
    return decoded.status();
  }
  auto map = std::make_shared<const PartitionMap>(*std::move(decoded));
  auto leaders = std::make_shared<std::vector<std::string>>();
  for (const PartitionMapEntry& entry : *map) {
    if (!entry.leader.empty() &&
        std::find(leaders->begin(), leaders->end(), entry.leader) == leaders->end()) {
      leaders->push_back(entry.leader);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  map_ = std::move(map);
  map_leaders_ = std::move(leaders);
  return absl::OkStatus();
}

void IoLoop::Run() {
  while (true) {
    TakeSubmissions();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        break;
      }
    }
    const Clock::time_point now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      const uint64_t call_id = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto it = calls_.find(call_id);
      if (it != calls_.end() && it->second.state == CallState::kBackoff) {
        it->second.state = CallState::kReady;
        ready_.push_back(call_id);
      }
    }
    while (!ready_.empty()) {
      const uint64_t call_id = ready_.front();
      ready_.pop_front();
      Dispatch(call_id);
    }
    CheckDeadlines(now);
    MaybeRefreshMap(now);
    PollOnce();
  }
  FailEverything();
}

void IoLoop::TakeSubmissions() {
  std::deque<CallSpec> taken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    taken.swap(submissions_);
    if (push_wanted_) {
      loop_push_wanted_ = true;
    }
    if (refresh_requested_) {
      refresh_requested_ = false;
      next_map_refresh_ = Clock::time_point{};  // Now: asked for by the application.
    }
  }
  for (CallSpec& spec : taken) {
    const uint64_t call_id = next_call_id_++;
    Call& call = calls_[call_id];
    call.id = call_id;
    call.spec = std::move(spec);
    if (call.spec.opcode == wire::Opcode::kGetPartitionMap) {
      map_refresh_in_flight_ = true;
    }
    ready_.push_back(call_id);
  }
}

int IoLoop::PollTimeoutMs(Clock::time_point now) const {
  Clock::time_point wake = now + std::chrono::milliseconds(1000);
  if (!map_refresh_in_flight_) {
    wake = std::min(wake, next_map_refresh_);
  }
  if (!timers_.empty()) {
    wake = std::min(wake, timers_.begin()->first);
  }
  if (!calls_.empty()) {
    wake = std::min(wake, next_deadline_check_);
  }
  for (const auto& [address, connection] : connections_) {
    if (!connection.connected) {
      wake = std::min(wake, connection.connect_deadline);
    }
  }
  if (wake <= now) {
    return 0;
  }
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;
  return static_cast<int>(std::min<int64_t>(ms, 1000));
}

void IoLoop::PollOnce() {
  std::vector<pollfd> fds;
  std::vector<std::string> addresses;
  fds.push_back({.fd = wake_fd_, .events = POLLIN, .revents = 0});
  addresses.emplace_back();
  for (const auto& [address, connection] : connections_) {
    short events = POLLIN;
    if (!connection.connected || connection.out_offset < connection.out.size()) {
      events |= POLLOUT;
    }
    fds.push_back({.fd = connection.fd, .events = events, .revents = 0});
    addresses.push_back(address);
  }
  const int ready = poll(fds.data(), fds.size(), PollTimeoutMs(Clock::now()));
  if (ready < 0) {
    UM_CHECK_EQ(errno, EINTR);
    return;
  }
  if (fds[0].revents != 0) {
    uint64_t value = 0;  // One read takes the whole count and resets it.
    const ssize_t taken = read(wake_fd_, &value, sizeof(value));
    UM_CHECK(taken == static_cast<ssize_t>(sizeof(value)) || errno == EAGAIN);
  }
  HandleConnectionEvents(fds, addresses);
}

void IoLoop::HandleConnectionEvents(const std::vector<pollfd>& fds,
                                    const std::vector<std::string>& addresses) {
  const Clock::time_point now = Clock::now();
  for (size_t i = 1; i < fds.size(); ++i) {
    auto it = connections_.find(addresses[i]);
    if (it == connections_.end() || it->second.fd != fds[i].fd) {
      continue;  // Closed (and maybe reopened) while handling an earlier descriptor.
    }
    Connection& connection = it->second;
    if (!connection.connected) {
      if (fds[i].revents == 0) {
        if (now >= connection.connect_deadline) {
          CloseConnection(addresses[i], "connect timed out");
        }
        continue;
      }
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(connection.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        CloseConnection(addresses[i], absl::StrCat("connect failed: ", std::strerror(error)));
        continue;
      }
      OnConnected(connection);
    }
    if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      ReadFrom(connection);  // May close the connection.
    }
    it = connections_.find(addresses[i]);
    if (it != connections_.end() && it->second.fd == fds[i].fd) {
      FlushWrites(it->second);
    }
  }
}

// ---- Routing and connections ------------------------------------------------------------------

std::vector<std::string> IoLoop::Candidates(const Call& call) const {
  std::vector<std::string> list;
  auto add = [&list](const std::string& address) {
    if (!address.empty() && std::find(list.begin(), list.end(), address) == list.end()) {
      list.push_back(address);
    }
  };
  add(call.redirect_target);
  if (call.spec.route == Route::kNode && !call.spec.node.empty()) {
    add(call.spec.node);
    return list;
  }
  std::shared_ptr<const PartitionMap> current;
  std::shared_ptr<const std::vector<std::string>> leaders;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current = map_;
    leaders = map_leaders_;
  }
  if (current != nullptr) {
    if (call.spec.route == Route::kPartition) {
      const PartitionMapEntry& entry = (*current)[call.spec.partition % wire::kPartitionCount];
      add(entry.leader);
      add(entry.replica0);
      add(entry.replica1);
    }
    for (const std::string& leader : *leaders) {
      add(leader);
    }
  }
  for (const std::string& seed : options_.seeds) {
    add(seed);
  }
  return list;
}

void IoLoop::Dispatch(uint64_t call_id) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) {
    return;
  }
  Call& call = it->second;
  UM_CHECK(call.state == CallState::kReady);
  if (Clock::now() >= call.spec.deadline) {
    Fail(call, call.code_at_deadline,
         absl::StrCat("deadline exceeded before sending", call.last_problem.empty() ? "" : "; ",
                      call.last_problem));
    return;
  }
  const std::vector<std::string> all = Candidates(call);
  if (all.empty()) {
    Fail(call, absl::StatusCode::kUnavailable, "no node to send to");
    return;
  }
  std::vector<std::string> live;
  const Clock::time_point now = Clock::now();
  for (const std::string& address : all) {
    auto down = down_until_.find(address);
    if (down == down_until_.end() || down->second <= now) {
      live.push_back(address);
    }
  }
  const std::vector<std::string>& choices = live.empty() ? all : live;
  const std::string address = choices[static_cast<size_t>(call.failovers) % choices.size()];
  std::string error;
  Connection* connection = GetOrOpen(address, &error);
  if (connection == nullptr) {
    down_until_[address] = now + std::chrono::milliseconds(options_.node_down_ms);
    OnConnectionLost(call, /*bytes_sent=*/false, absl::StrCat(address, ": ", error));
    return;
  }
  call.address = address;
  if (connection->connected) {
    PutOnWire(*connection, call);
    FlushWrites(*connection);  // May close it: `connection` is not used after this.
  } else {
    call.state = CallState::kWaitingConnect;
    connection->waiting.push_back(call.id);
  }
}

Connection* IoLoop::GetOrOpen(const std::string& address, std::string* error) {
  auto it = connections_.find(address);
  if (it != connections_.end()) {
    return &it->second;
  }
  absl::StatusOr<internal::HostPort> host_port = internal::SplitAddress(address);
  if (!host_port.ok()) {
    *error = std::string(host_port.status().message());
    return nullptr;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* resolved = nullptr;
  const std::string port = std::to_string(host_port->port);
  const int gai = getaddrinfo(host_port->host.c_str(), port.c_str(), &hints, &resolved);
  if (gai != 0 || resolved == nullptr) {
    *error = absl::StrCat("cannot resolve: ", gai_strerror(gai));
    return nullptr;
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  UM_CHECK_GE(fd, 0);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const int rc = connect(fd, resolved->ai_addr, resolved->ai_addrlen);
  const int connect_errno = errno;
  freeaddrinfo(resolved);
  if (rc != 0 && connect_errno != EINPROGRESS) {
    close(fd);
    *error = absl::StrCat("connect failed: ", std::strerror(connect_errno));
    return nullptr;
  }
  Connection& connection = connections_[address];
  connection.address = address;
  connection.fd = fd;
  connection.connect_deadline = DeadlineAfter(options_.connect_timeout_ms);
  if (rc == 0) {
    OnConnected(connection);
  }
  return &connection;
}

void IoLoop::OnConnected(Connection& connection) {
  connection.connected = true;
  down_until_.erase(connection.address);
  if (loop_push_wanted_) {
    // Re-subscribe every (re)opened connection; the reply is ignored (call id 0).
    connection.last_request_id = internal::NextRequestId(connection.last_request_id);
    wire::AppendEmptyRequest(static_cast<uint8_t>(wire::Opcode::kAlertPushEnable),
                             connection.last_request_id, &connection.out);
    connection.bytes_queued += wire::kRequestHeaderSizeBytes;
    connection.on_wire[connection.last_request_id] = 0;
  }
  std::vector<uint64_t> waiting;
  waiting.swap(connection.waiting);
  for (uint64_t call_id : waiting) {
    auto it = calls_.find(call_id);
    if (it != calls_.end() && it->second.state == CallState::kWaitingConnect) {
      PutOnWire(connection, it->second);
    }
  }
  // Not flushed here: the callers flush once the connection is no longer referenced.
}

void IoLoop::PutOnWire(Connection& connection, Call& call) {
  uint32_t request_id = connection.last_request_id;
  do {  // Skip ids still in flight after a wrap (WP 2.5 allows reuse; we avoid it).
    request_id = internal::NextRequestId(request_id);
  } while (connection.on_wire.count(request_id) != 0);
  connection.last_request_id = request_id;
  internal::SetRequestId(request_id, &call.spec.frame);
  call.state = CallState::kOnWire;
  call.request_id = request_id;
  call.frame_begin = connection.bytes_queued;
  connection.out.append(call.spec.frame);
  connection.bytes_queued += call.spec.frame.size();
  connection.on_wire[request_id] = call.id;
}

void IoLoop::FlushWrites(Connection& connection) {
  if (!connection.connected) {
    return;
  }
  while (connection.out_offset < connection.out.size()) {
    const ssize_t written = send(connection.fd, connection.out.data() + connection.out_offset,
                                 connection.out.size() - connection.out_offset, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
      }
      CloseConnection(connection.address, absl::StrCat("write failed: ", std::strerror(errno)));
      return;
    }
    connection.out_offset += static_cast<size_t>(written);
    connection.bytes_written += static_cast<uint64_t>(written);
  }
  connection.out.clear();
  connection.out_offset = 0;
}

void IoLoop::ReadFrom(Connection& connection) {
  const std::string address = connection.address;
  uint8_t buffer[64 * 1024];
  while (true) {
    const ssize_t got = recv(connection.fd, buffer, sizeof(buffer), 0);
    if (got == 0) {
      CloseConnection(address, "connection closed by the server");
      return;
    }
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        break;
      }
      CloseConnection(address, absl::StrCat("read failed: ", std::strerror(errno)));
      return;
    }
    connection.reader.Append(std::span<const uint8_t>(buffer, static_cast<size_t>(got)));
    if (static_cast<size_t>(got) < sizeof(buffer)) {
      break;
    }
  }
  internal::ResponseFrame frame;
  while (true) {
    auto it = connections_.find(address);
    if (it == connections_.end()) {
      return;  // Closed by a callback's consequence.
    }
    const internal::ResponseReader::Result result = it->second.reader.Next(&frame);
    if (result == internal::ResponseReader::Result::kNeedMore) {
      return;
    }
    if (result == internal::ResponseReader::Result::kCorrupt) {
      CloseConnection(address, "corrupt reply frame");
      return;
    }
    OnFrame(it->second, frame);
  }
}

void IoLoop::CloseConnection(const std::string& address, const std::string& reason) {
  auto it = connections_.find(address);
  if (it == connections_.end()) {
    return;
  }
  Connection connection = std::move(it->second);
  connections_.erase(it);
  close(connection.fd);
  down_until_[address] = Clock::now() + std::chrono::milliseconds(options_.node_down_ms);
  AskForMapRefresh();
  const std::string message = absl::StrCat(address, ": ", reason);
  for (uint64_t call_id : connection.waiting) {
    auto call = calls_.find(call_id);
    if (call != calls_.end() && call->second.state == CallState::kWaitingConnect) {
      OnConnectionLost(call->second, /*bytes_sent=*/false, message);
    }
  }
  for (const auto& [request_id, call_id] : connection.on_wire) {
    auto call = calls_.find(call_id);
    if (call != calls_.end() && call->second.state == CallState::kOnWire &&
        call->second.request_id == request_id && call->second.address == address) {
      const bool bytes_sent = connection.bytes_written > call->second.frame_begin;
      OnConnectionLost(call->second, bytes_sent, message);
    }
  }
}

// ---- Replies ----------------------------------------------------------------------------------

void IoLoop::OnFrame(Connection& connection, internal::ResponseFrame& frame) {
  if (frame.header.request_id == wire::kPushRequestId) {
    OnPush(connection, frame);
    return;
  }
  auto wire_it = connection.on_wire.find(frame.header.request_id);
  if (wire_it == connection.on_wire.end()) {
    return;  // A reply to a call that already ended (deadline): dropped.
  }
  const uint64_t call_id = wire_it->second;
  connection.on_wire.erase(wire_it);
  auto call = calls_.find(call_id);
  if (call == calls_.end()) {
    return;  // Fire-and-forget (id 0) or already completed.
  }
  call->second.state = CallState::kReady;  // Off the wire; OnReply decides what comes next.
  call->second.address.clear();
  OnReply(call->second, frame);
}

void IoLoop::OnPush(Connection& connection, const internal::ResponseFrame& frame) {
  const std::span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(frame.payload.data()),
                                         frame.payload.size());
  if (frame.header.status == static_cast<uint8_t>(wire::PushType::kPartitionMapUpdate)) {
    absl::Status installed = InstallMap(payload);
    if (installed.ok()) {
      next_map_refresh_ =
          Clock::now() + std::chrono::milliseconds(options_.map_refresh_interval_ms);
    }
    return;  // A malformed push is ignored; the periodic refresh repairs the map.
  }
  if (frame.header.status == static_cast<uint8_t>(wire::PushType::kAlertPush) &&
      payload.size() >= wire::kAlertPushSizeBytes) {
    const wire::AlertPush decoded = wire::DecodeAlertPush(payload.data());
    AlertPush push{.record = internal::ToAlertRecord(decoded.record),
                   .node_id = decoded.node_id,
                   .node_address = connection.address};
    AlertCallback callback;
    {
      std::lock_guard<std::mutex> lock(mu_);
      callback = alert_callback_;
    }
    if (callback) {
      callback(push);
    }
  }
  // Unknown push types are skipped (WP 2.3).
}

void IoLoop::OnReply(Call& call, internal::ResponseFrame& frame) {
  const auto status = static_cast<wire::Status>(frame.header.status);
  const std::string op = Str(wire::OpcodeName(static_cast<uint8_t>(call.spec.opcode)));
  switch (status) {
    case wire::Status::kOk:
    case wire::Status::kDuplicate:
    case wire::Status::kUnknownMetric:
      Complete(call.id, {.status = absl::OkStatus(),
                         .wire_status = frame.header.status,
                         .payload = std::move(frame.payload)});
      return;
    case wire::Status::kBackpressure:
      call.last_problem = absl::StrCat("BACKPRESSURE from the server (nothing accepted)");
      Retry(call, absl::StatusCode::kResourceExhausted);
      return;
    case wire::Status::kNotLeader:  // Never sent by our server; treat like a stale route.
      call.last_problem = "NOT_LEADER from the server";
      AskForMapRefresh();
      Retry(call, absl::StatusCode::kUnavailable);
      return;
    case wire::Status::kRedirect: {
      const std::string target =
          frame.payload.size() >= wire::kAddressSizeBytes
              ? Str(wire::DecodeAddress(reinterpret_cast<const uint8_t*>(frame.payload.data())))
              : std::string();
      if (target.empty() || !internal::SplitAddress(target).ok()) {
        Fail(call, absl::StatusCode::kInternal, absl::StrCat(op, ": malformed REDIRECT reply"));
      } else if (call.redirects >= call.spec.redirects_max) {
        Fail(call, absl::StatusCode::kUnavailable,
             absl::StrCat(op, ": REDIRECT to ", target, " not followed (", call.redirects,
                          " already followed)"));
      } else {
        ++call.redirects;
        call.redirect_target = target;
        AskForMapRefresh();
        ready_.push_back(call.id);  // Nothing was applied: resend now.
      }
      return;
    }
    case wire::Status::kErr:
    default:
      break;
  }
  if (!call.spec.is_ingest) {
    Fail(call, absl::StatusCode::kInternal,
         absl::StrCat("server replied ERR to ", op,
                      " (rejected request, or a failure on the server)"));
    return;
  }
  call.outcome_unknown = true;
  call.last_problem = absl::StrCat("server replied ERR to ", op);
  if (call.spec.all_timestamped && call.err_resends < options_.ingest_err_resends_max) {
    ++call.err_resends;
    Retry(call, absl::StatusCode::kUnknown);
    return;
  }
  Fail(call, absl::StatusCode::kUnknown,
       absl::StrCat(call.last_problem,
                    call.spec.all_timestamped
                        ? ""
                        : "; not resent because not every event carries a client timestamp"));
}

void IoLoop::OnConnectionLost(Call& call, bool bytes_sent, const std::string& reason) {
  call.state = CallState::kReady;
  call.address.clear();
  call.redirect_target.clear();  // It may be the node that failed.
  ++call.failovers;
  call.last_problem = reason;
  if (bytes_sent && call.spec.is_ingest) {
    call.outcome_unknown = true;
    if (!call.spec.all_timestamped) {
      Fail(call, absl::StatusCode::kUnknown,
           absl::StrCat("connection lost after the request was sent (", reason,
                        "); not resent because not every event carries a client timestamp"));
      return;
    }
  }
  Retry(call, absl::StatusCode::kUnavailable);
}

void IoLoop::Retry(Call& call, absl::StatusCode code_at_deadline) {
  ++call.backoff_attempts;
  call.code_at_deadline = code_at_deadline;
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  double fraction = jitter(random_);
  if (fraction >= 1.0) {
    fraction = 0.0;
  }
  const int64_t delay_ms = internal::BackoffDelayMs(
      call.backoff_attempts, options_.backoff_initial_ms, options_.backoff_max_ms, fraction);
  const Clock::time_point when = Clock::now() + std::chrono::milliseconds(delay_ms);
  if (when >= call.spec.deadline) {
    Fail(call, code_at_deadline,
         absl::StrCat("gave up at the deadline after ", call.backoff_attempts,
                      " attempts; last: ", call.last_problem));
    return;
  }
  call.state = CallState::kBackoff;
  timers_.emplace(when, call.id);
}

void IoLoop::Fail(Call& call, absl::StatusCode code, const std::string& message) {
  absl::Status status(code, message);
  if (call.spec.is_ingest && call.outcome_unknown && code != absl::StatusCode::kUnknown) {
    status = absl::UnknownError(
        absl::StrCat("outcome unknown (an earlier attempt may have been applied): ", message));
  }
  Complete(call.id, {.status = status});
}

void IoLoop::DetachFromConnection(Call& call) {
  auto it = connections_.find(call.address);
  if (it == connections_.end()) {
    return;
  }
  Connection& connection = it->second;
  if (call.state == CallState::kOnWire) {
    connection.on_wire.erase(call.request_id);
  } else if (call.state == CallState::kWaitingConnect) {
    auto& waiting = connection.waiting;
    waiting.erase(std::remove(waiting.begin(), waiting.end(), call.id), waiting.end());
  }
}

void IoLoop::Complete(uint64_t call_id, Reply reply) {
  auto it = calls_.find(call_id);
  UM_CHECK(it != calls_.end());
  DetachFromConnection(it->second);
  CallSpec spec = std::move(it->second.spec);
  calls_.erase(it);
  if (spec.opcode == wire::Opcode::kGetPartitionMap) {
    map_refresh_in_flight_ = false;
  }
  spec.done(std::move(reply));
  if (!spec.internal) {
    std::lock_guard<std::mutex> lock(mu_);
    UM_CHECK_GT(pending_calls_, size_t{0});
    --pending_calls_;
  }
  space_cv_.notify_one();
}

void IoLoop::CheckDeadlines(Clock::time_point now) {
  if (now < next_deadline_check_) {
    return;
  }
  next_deadline_check_ = now + std::chrono::milliseconds(5);
  std::vector<uint64_t> expired;
  for (const auto& [call_id, call] : calls_) {
    if (call.spec.deadline <= now) {
      expired.push_back(call_id);
    }
  }
  for (uint64_t call_id : expired) {
    auto it = calls_.find(call_id);
    if (it == calls_.end()) {
      continue;
    }
    Call& call = it->second;
    if (call.state == CallState::kOnWire && call.spec.is_ingest) {
      // Its bytes are written or queued on a live socket: they may still be applied.
      call.outcome_unknown = true;
    }
    Fail(call,
         call.state == CallState::kOnWire ? absl::StatusCode::kDeadlineExceeded
                                          : call.code_at_deadline,
         absl::StrCat("deadline exceeded",
                      call.state == CallState::kOnWire ? " waiting for the reply" : "",
                      call.last_problem.empty() ? "" : "; last: ", call.last_problem));
  }
}

void IoLoop::AskForMapRefresh() {
  next_map_refresh_ =
      std::min(next_map_refresh_, last_map_refresh_ + std::chrono::milliseconds(100));
}

void IoLoop::MaybeRefreshMap(Clock::time_point now) {
  if (now < next_map_refresh_ || map_refresh_in_flight_) {
    return;
  }
  last_map_refresh_ = now;
  next_map_refresh_ = now + std::chrono::milliseconds(options_.map_refresh_interval_ms);
  CallSpec spec;
  spec.opcode = wire::Opcode::kGetPartitionMap;
  wire::AppendEmptyRequest(static_cast<uint8_t>(spec.opcode), 1, &spec.frame);
  spec.route = Route::kAnyNode;
  spec.deadline = DeadlineAfter(std::max<int64_t>(options_.request_timeout_ms, 1000));
  spec.internal = true;
  spec.done = [this](Reply reply) {
    if (reply.status.ok()) {
      // A malformed map is ignored: the previous one stays until the next refresh.
      (void)InstallMap(std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(reply.payload.data()), reply.payload.size()));
    }
  };
  const uint64_t call_id = next_call_id_++;
  Call& call = calls_[call_id];
  call.id = call_id;
  call.spec = std::move(spec);
  map_refresh_in_flight_ = true;
  ready_.push_back(call_id);
}

void IoLoop::FailEverything() {
  std::deque<CallSpec> taken;
  {
    std::lock_guard<std::mutex> lock(mu_);
    taken.swap(submissions_);
  }
  for (CallSpec& spec : taken) {
    const bool internal_call = spec.internal;
    spec.done({.status = absl::CancelledError("client is shutting down; not sent")});
    if (!internal_call) {
      std::lock_guard<std::mutex> lock(mu_);
      --pending_calls_;
    }
  }
  std::vector<uint64_t> ids;
  for (const auto& [call_id, call] : calls_) {
    ids.push_back(call_id);
  }
  for (uint64_t call_id : ids) {
    Call& call = calls_.at(call_id);
    if (call.state == CallState::kOnWire && call.spec.is_ingest) {
      call.outcome_unknown = true;
    }
    Fail(call, absl::StatusCode::kCancelled, "client is shutting down");
  }
  for (auto& [address, connection] : connections_) {
    close(connection.fd);
  }
  connections_.clear();
  space_cv_.notify_all();
}

// ---- Client -----------------------------------------------------------------------------------

namespace {

Reply CallAndWait(IoLoop& loop, CallSpec spec) {
  auto promise = std::make_shared<std::promise<Reply>>();
  std::future<Reply> future = promise->get_future();
  spec.done = [promise](Reply reply) { promise->set_value(std::move(reply)); };
  loop.Submit(std::move(spec));
  return future.get();
}

std::span<const uint8_t> Bytes(const std::string& payload) {
  return {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
}

CallSpec MakeSpec(const IoLoop& loop, wire::Opcode opcode, Route route, CallOptions call_options) {
  CallSpec spec;
  spec.opcode = opcode;
  spec.route = route;
  spec.redirects_max = loop.options().redirects_max;
  spec.deadline = DeadlineAfter(call_options.timeout_ms > 0 ? call_options.timeout_ms
                                                            : loop.options().request_timeout_ms);
  return spec;
}

absl::Status CheckCode(const std::string& code) {
  if (code.empty() || code.size() >= wire::kMetricCodeFieldBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric code must be 1..63 bytes, got ", code.size()));
  }
  return absl::OkStatus();
}

// Combines the replies of the requests of one ingest call. Completions arrive on the loop
// thread, failures to submit on the caller's thread: hence the mutex.
struct IngestJoin {
  std::mutex mu;
  size_t remaining = 0;
  size_t total = 0;
  IngestResult result{};
  absl::Status first_error{};
  absl::Status first_unknown{};
  size_t failed = 0;
  IngestCallback done;

  void Add(const Reply& reply) {
    IngestCallback to_call;
    absl::StatusOr<IngestResult> outcome;
    {
      std::lock_guard<std::mutex> lock(mu);
      Merge(reply);
      UM_CHECK_GT(remaining, size_t{0});
      if (--remaining > 0) {
        return;
      }
      to_call = std::move(done);
      outcome = Outcome();
    }
    to_call(std::move(outcome));
  }

  void Merge(const Reply& reply) {
    absl::StatusOr<wire::IngestResult> decoded =
        reply.status.ok() ? internal::DecodeIngestReply(Bytes(reply.payload))
                          : absl::StatusOr<wire::IngestResult>(reply.status);
    if (!decoded.ok()) {
      ++failed;
      const bool unknown = decoded.status().code() == absl::StatusCode::kUnknown;
      absl::Status& slot = unknown ? first_unknown : first_error;
      if (slot.ok()) {
        slot = decoded.status();
      }
      return;
    }
    ++result.requests;
    result.n_stored += decoded->n_stored;
    result.n_duplicates += decoded->n_duplicates;
    result.last_offset = std::max(result.last_offset, decoded->last_offset);
    if (reply.wire_status == static_cast<uint8_t>(wire::Status::kUnknownMetric)) {
      ++result.unknown_metric_replies;
    }
    if (reply.wire_status == static_cast<uint8_t>(wire::Status::kDuplicate)) {
      ++result.duplicate_replies;
    }
  }

  absl::StatusOr<IngestResult> Outcome() const {
    if (failed == 0) {
      return result;
    }
    // UnknownError wins: the caller must know that something may have been stored.
    const absl::Status& status = first_unknown.ok() ? first_error : first_unknown;
    if (total == 1) {
      return status;
    }
    return absl::Status(status.code(),
                        absl::StrCat(std::string(status.message()), " [", failed, " of ", total,
                                     " requests failed; the others were acknowledged with ",
                                     result.n_stored, " events stored]"));
  }
};

}  // namespace

Client::Client(std::unique_ptr<IoLoop> loop) : loop_(std::move(loop)) {}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.seeds.empty()) {
    return absl::InvalidArgumentError("no seeds given");
  }
  for (const std::string& seed : options.seeds) {
    absl::StatusOr<internal::HostPort> parsed = internal::SplitAddress(seed);
    if (!parsed.ok()) {
      return parsed.status();
    }
  }
  auto loop = std::make_unique<IoLoop>(options);
  loop->Start();
  std::unique_ptr<Client> client(new Client(std::move(loop)));
  CallSpec spec = MakeSpec(*client->loop_, wire::Opcode::kGetPartitionMap, Route::kAnyNode,
                           {.timeout_ms = options.initial_map_timeout_ms});
  wire::AppendEmptyRequest(static_cast<uint8_t>(spec.opcode), 1, &spec.frame);
  Reply reply = CallAndWait(*client->loop_, std::move(spec));
  if (!reply.status.ok()) {
    return absl::Status(reply.status.code(), absl::StrCat("no seed served the partition map: ",
                                                          std::string(reply.status.message())));
  }
  absl::Status installed = client->loop_->InstallMap(Bytes(reply.payload));
  if (!installed.ok()) {
    return installed;
  }
  return client;
}

absl::Status Client::SubmitIngest(std::span<const Event> events, DeliveryMode mode,
                                  IngestCallback done, CallOptions call_options) {
  for (size_t i = 0; i < events.size(); ++i) {
    absl::Status valid = internal::ValidateEvent(events[i], i);
    if (!valid.ok()) {
      return valid;
    }
  }
  std::shared_ptr<const PartitionMap> map = loop_->map();
  std::vector<internal::IngestBatch> batches =
      internal::PlanIngestBatches(events, [&map](uint32_t partition) {
        return map == nullptr ? std::string() : (*map)[partition].leader;
      });
  const wire::Opcode opcode =
      mode == DeliveryMode::kSync ? wire::Opcode::kIngestSync : wire::Opcode::kIngestAsync;
  std::vector<CallSpec> specs;
  specs.reserve(batches.size());
  for (const internal::IngestBatch& batch : batches) {
    CallSpec& spec = specs.emplace_back(MakeSpec(*loop_, opcode, Route::kPartition, call_options));
    spec.partition = batch.first_partition;
    spec.is_ingest = true;
    spec.all_timestamped = batch.all_timestamped;
    absl::Status encoded = internal::AppendIngestBatch(opcode, 1, events, batch, &spec.frame);
    if (!encoded.ok()) {
      return encoded;
    }
  }
  if (specs.empty()) {
    done(IngestResult{});
    return absl::OkStatus();
  }
  auto join = std::make_shared<IngestJoin>();
  join->remaining = specs.size();
  join->total = specs.size();
  join->done = std::move(done);
  for (CallSpec& spec : specs) {
    spec.done = [join](Reply reply) { join->Add(reply); };
    loop_->Submit(std::move(spec));
  }
  return absl::OkStatus();
}

absl::StatusOr<IngestResult> Client::Ingest(std::span<const Event> events, DeliveryMode mode,
                                            CallOptions call_options) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<IngestResult>>>();
  std::future<absl::StatusOr<IngestResult>> future = promise->get_future();
  absl::Status submitted = SubmitIngest(
      events, mode,
      [promise](absl::StatusOr<IngestResult> result) { promise->set_value(std::move(result)); },
      call_options);
  if (!submitted.ok()) {
    return submitted;
  }
  return future.get();
}

absl::StatusOr<AggValue> Client::Usage(uint64_t account_id, const std::string& metric_code,
                                       int64_t start_ns, int64_t end_ns,
                                       std::span<const Filter> filters, CallOptions call_options) {
  if (absl::Status valid = CheckCode(metric_code); !valid.ok()) {
    return valid;
  }
  if (filters.size() > wire::kQueryFiltersMax) {
    return absl::InvalidArgumentError("at most 4 filters");
  }
  wire::UsageQueryRequest request{.account_id = account_id,
                                  .period_start_ns = start_ns,
                                  .period_end_ns = end_ns,
                                  .metric_code = metric_code,
                                  .filters_count = static_cast<uint8_t>(filters.size())};
  for (size_t i = 0; i < filters.size(); ++i) {
    request.filters[i] = {.key = filters[i].key, .value = filters[i].value};
  }
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kUsageQuery, Route::kPartition, call_options);
  spec.partition = static_cast<uint16_t>(account_id % wire::kPartitionCount);
  if (absl::Status encoded = wire::AppendUsageQueryRequest(1, request, &spec.frame);
      !encoded.ok()) {
    return encoded;
  }
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return internal::DecodeAggValueReply(Bytes(reply.payload));
}

absl::StatusOr<AggValue> Client::Realtime(uint64_t account_id, const std::string& metric_code,
                                          CallOptions call_options) {
  if (absl::Status valid = CheckCode(metric_code); !valid.ok()) {
    return valid;
  }
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kUsageRealtime, Route::kPartition, call_options);
  spec.partition = static_cast<uint16_t>(account_id % wire::kPartitionCount);
  if (absl::Status encoded = wire::AppendUsageRealtimeRequest(
          1, {.account_id = account_id, .metric_code = metric_code}, &spec.frame);
      !encoded.ok()) {
    return encoded;
  }
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return internal::DecodeAggValueReply(Bytes(reply.payload));
}

absl::StatusOr<std::vector<BreakdownCell>> Client::Breakdown(uint64_t account_id,
                                                             const std::string& metric_code,
                                                             int64_t start_ns, int64_t end_ns,
                                                             std::span<const std::string> group_by,
                                                             CallOptions call_options) {
  if (absl::Status valid = CheckCode(metric_code); !valid.ok()) {
    return valid;
  }
  if (group_by.size() < wire::kGroupByKeysMin || group_by.size() > wire::kGroupByKeysMax) {
    return absl::InvalidArgumentError("breakdown needs 1 to 4 group-by keys");
  }
  wire::BreakdownRequest request{.account_id = account_id,
                                 .period_start_ns = start_ns,
                                 .period_end_ns = end_ns,
                                 .metric_code = metric_code,
                                 .group_by_count = static_cast<uint8_t>(group_by.size())};
  for (size_t i = 0; i < group_by.size(); ++i) {
    request.group_by_keys[i] = group_by[i];
  }
  CallSpec spec =
      MakeSpec(*loop_, wire::Opcode::kUsageQueryBreakdown, Route::kPartition, call_options);
  spec.partition = static_cast<uint16_t>(account_id % wire::kPartitionCount);
  if (absl::Status encoded = wire::AppendBreakdownRequest(1, request, &spec.frame); !encoded.ok()) {
    return encoded;
  }
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return internal::DecodeBreakdownReply(Bytes(reply.payload));
}

absl::StatusOr<std::vector<EventRecord>> Client::EventsList(uint64_t account_id, int64_t since_ns,
                                                            int64_t until_ns,
                                                            CallOptions call_options) {
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kEventsList, Route::kPartition, call_options);
  spec.partition = static_cast<uint16_t>(account_id % wire::kPartitionCount);
  wire::AppendEventsListRequest(
      1, {.account_id = account_id, .since_ns = since_ns, .until_ns = until_ns}, &spec.frame);
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return internal::DecodeEventListReply(Bytes(reply.payload));
}

absl::StatusOr<std::vector<AlertRecord>> Client::AlertsList(const std::string& node,
                                                            uint64_t account_id,
                                                            uint64_t since_offset,
                                                            CallOptions call_options) {
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kAlertsList, Route::kNode, call_options);
  spec.node = node;
  spec.redirects_max = 0;
  wire::AppendAlertsListRequest(1, {.account_id = account_id, .since_offset = since_offset},
                                &spec.frame);
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return internal::DecodeAlertListReply(Bytes(reply.payload));
}

void Client::SetAlertCallback(AlertCallback callback) {
  loop_->SetAlertCallback(std::move(callback));
}

absl::Status Client::EnableAlertPush(CallOptions call_options) {
  loop_->SetAlertPushWanted();
  for (const std::string& node : Nodes()) {
    CallSpec spec = MakeSpec(*loop_, wire::Opcode::kAlertPushEnable, Route::kNode, call_options);
    spec.node = node;
    spec.redirects_max = 0;
    wire::AppendEmptyRequest(static_cast<uint8_t>(spec.opcode), 1, &spec.frame);
    Reply reply = CallAndWait(*loop_, std::move(spec));
    if (!reply.status.ok()) {
      return absl::Status(reply.status.code(),
                          absl::StrCat(node, ": ", std::string(reply.status.message())));
    }
  }
  return absl::OkStatus();
}

absl::Status Client::PutMetric(const MetricSchema& schema, CallOptions call_options) {
  if (absl::Status valid = CheckCode(schema.code); !valid.ok()) {
    return valid;
  }
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kMetricPut, Route::kPartition, call_options);
  spec.partition = 0;
  spec.redirects_max = 1;
  if (absl::Status encoded = wire::AppendMetricPutRequest(1, schema, &spec.frame); !encoded.ok()) {
    return encoded;
  }
  return CallAndWait(*loop_, std::move(spec)).status;
}

absl::Status Client::DeleteMetric(const std::string& metric_code, CallOptions call_options) {
  if (absl::Status valid = CheckCode(metric_code); !valid.ok()) {
    return valid;
  }
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kMetricDelete, Route::kPartition, call_options);
  spec.partition = 0;
  spec.redirects_max = 1;
  if (absl::Status encoded = wire::AppendMetricDeleteRequest(1, metric_code, &spec.frame);
      !encoded.ok()) {
    return encoded;
  }
  return CallAndWait(*loop_, std::move(spec)).status;
}

absl::StatusOr<std::vector<MetricSchema>> Client::ListMetrics(CallOptions call_options) {
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kMetricList, Route::kPartition, call_options);
  spec.partition = 0;
  spec.redirects_max = 1;
  wire::AppendEmptyRequest(static_cast<uint8_t>(spec.opcode), 1, &spec.frame);
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return wire::DecodeMetricListReply(Bytes(reply.payload));
}

absl::StatusOr<ClusterStatus> Client::GetClusterStatus(const std::string& node,
                                                       CallOptions call_options) {
  CallSpec spec = MakeSpec(*loop_, wire::Opcode::kClusterStatus,
                           node.empty() ? Route::kAnyNode : Route::kNode, call_options);
  spec.node = node;
  spec.redirects_max = 0;
  wire::AppendEmptyRequest(static_cast<uint8_t>(spec.opcode), 1, &spec.frame);
  Reply reply = CallAndWait(*loop_, std::move(spec));
  if (!reply.status.ok()) {
    return reply.status;
  }
  return internal::DecodeClusterStatusReply(Bytes(reply.payload));
}

PartitionMap Client::GetPartitionMap() const {
  std::shared_ptr<const PartitionMap> map = loop_->map();
  return map == nullptr ? PartitionMap{} : *map;
}

std::vector<std::string> Client::Nodes() const {
  std::shared_ptr<const PartitionMap> map = loop_->map();
  std::set<std::string> nodes;
  if (map != nullptr) {
    for (const PartitionMapEntry& entry : *map) {
      for (const std::string* address : {&entry.leader, &entry.replica0, &entry.replica1}) {
        if (!address->empty()) {
          nodes.insert(*address);
        }
      }
    }
  }
  if (nodes.empty()) {
    nodes.insert(loop_->options().seeds.begin(), loop_->options().seeds.end());
  }
  return {nodes.begin(), nodes.end()};
}

void Client::RefreshPartitionMap() { loop_->RequestMapRefresh(); }

}  // namespace unimeter::client
