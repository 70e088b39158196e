#include "client/fake_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "node/base/check.h"
#include "protocol/frame_reader.h"

namespace unimeter::client::testing {

namespace wire = ::unimeter::protocol;

// ---- Reply helpers ----------------------------------------------------------------------------

std::string EmptyReply(wire::Status status, uint32_t request_id) {
  std::string out;
  wire::AppendEmptyReply(status, request_id, &out);
  return out;
}

std::string IngestOkReply(uint32_t request_id, uint32_t n_stored, uint64_t last_offset) {
  std::string out;
  wire::AppendIngestReply(wire::Status::kOk, request_id,
                          {.n_stored = n_stored, .n_duplicates = 0, .last_offset = last_offset},
                          &out);
  return out;
}

std::string RedirectReply(uint32_t request_id, const std::string& address) {
  std::string out;
  UM_CHECK(wire::AppendRedirectReply(request_id, address, &out).ok());
  return out;
}

std::string AggReply(uint32_t request_id, uint64_t sum) {
  std::string out;
  wire::AppendAggValueReply(request_id, {.sum = sum, .count = 1}, &out);
  return out;
}

// ---- FakeConnection ---------------------------------------------------------------------------

void FakeConnection::Send(const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t offset = 0;
  while (!closed_ && offset < bytes.size()) {
    const ssize_t written = send(fd_, bytes.data() + offset, bytes.size() - offset, MSG_NOSIGNAL);
    if (written <= 0) {
      return;  // The client went away; the reader thread notices.
    }
    offset += static_cast<size_t>(written);
  }
}

void FakeConnection::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!closed_) {
    closed_ = true;
    shutdown(fd_, SHUT_RDWR);
  }
}

// ---- FakeServer -------------------------------------------------------------------------------

FakeServer::FakeServer() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  UM_CHECK_GE(listen_fd_, 0);
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bound.sin_port = 0;
  UM_CHECK_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&bound), sizeof(bound)), 0);
  UM_CHECK_EQ(listen(listen_fd_, 64), 0);
  socklen_t length = sizeof(bound);
  UM_CHECK_EQ(getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length), 0);
  address_ = "127.0.0.1:" + std::to_string(ntohs(bound.sin_port));
  leaders_.fill(address_);
  UM_CHECK_EQ(pipe2(stop_pipe_, O_CLOEXEC), 0);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

FakeServer::~FakeServer() {
  stopping_ = true;
  const char byte = 1;
  UM_CHECK_EQ(write(stop_pipe_[1], &byte, 1), 1);
  accept_thread_.join();
  std::vector<std::shared_ptr<FakeConnection>> connections;
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections = connections_;
    threads.swap(threads_);
  }
  for (auto& connection : connections) {
    connection->Close();
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  for (auto& connection : connections) {
    close(connection->fd());
  }
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
}

void FakeServer::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

void FakeServer::SetLeaders(const std::array<std::string, wire::kPartitionCount>& leaders) {
  std::lock_guard<std::mutex> lock(mu_);
  leaders_ = leaders;
}

std::string FakeServer::MapFrame(uint32_t request_id, bool push) const {
  std::array<std::string, wire::kPartitionCount> leaders;
  {
    std::lock_guard<std::mutex> lock(mu_);
    leaders = leaders_;
  }
  wire::PartitionMap map;
  for (size_t p = 0; p < wire::kPartitionCount; ++p) {
    map[p].leader = leaders[p];
  }
  std::string frame;
  if (push) {
    UM_CHECK(wire::AppendPartitionMapPushFrame(map, &frame).ok());
  } else {
    UM_CHECK(wire::AppendPartitionMapReply(request_id, map, &frame).ok());
  }
  return frame;
}

void FakeServer::PushToAll(const std::string& frame) {
  std::vector<std::shared_ptr<FakeConnection>> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections = connections_;
  }
  for (auto& connection : connections) {
    connection->Send(frame);
  }
}

std::vector<FakeRequest> FakeServer::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t FakeServer::Count(wire::Opcode opcode) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t count = 0;
  for (const FakeRequest& request : requests_) {
    count += request.header.packet_type == static_cast<uint8_t>(opcode) ? 1 : 0;
  }
  return count;
}

bool FakeServer::WaitForCount(wire::Opcode opcode, size_t count, int64_t timeout_ms) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (Count(opcode) < count) {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      lock.unlock();
      return Count(opcode) >= count;
    }
  }
  return true;
}

void FakeServer::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{.fd = listen_fd_, .events = POLLIN, .revents = 0},
                     {.fd = stop_pipe_[0], .events = POLLIN, .revents = 0}};
    if (poll(fds, 2, -1) < 0 || fds[1].revents != 0) {
      return;
    }
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto connection = std::make_shared<FakeConnection>(fd, next_connection_id_++);
    connections_.push_back(connection);
    threads_.emplace_back([this, connection] { Serve(connection); });
  }
}

void FakeServer::Serve(std::shared_ptr<FakeConnection> connection) {
  wire::FrameReader reader;
  uint8_t buffer[64 * 1024];
  while (true) {
    const ssize_t got = recv(connection->fd(), buffer, sizeof(buffer), 0);
    if (got <= 0) {
      return;
    }
    std::span<const uint8_t> input(buffer, static_cast<size_t>(got));
    while (!input.empty()) {
      wire::FrameEvent event;
      input = input.subspan(reader.Consume(input, &event));
      if (event.kind == wire::FrameEventKind::kNeedMore) {
        continue;
      }
      if (event.kind != wire::FrameEventKind::kFrame) {
        connection->Send(EmptyReply(wire::Status::kErr, event.header.request_id));
        continue;
      }
      FakeRequest request{
          .header = event.header,
          .payload = std::string(reinterpret_cast<const char*>(event.payload.data()),
                                 event.payload.size()),
          .connection = connection->id()};
      Handler handler;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
        handler = handler_;
      }
      cv_.notify_all();
      if (!handler || !handler(*connection, request)) {
        DefaultReply(*connection, request);
      }
    }
  }
}

void FakeServer::DefaultReply(FakeConnection& connection, const FakeRequest& request) {
  const uint32_t id = request.header.request_id;
  const std::span<const uint8_t> payload(reinterpret_cast<const uint8_t*>(request.payload.data()),
                                         request.payload.size());
  std::string out;
  switch (static_cast<wire::Opcode>(request.header.packet_type)) {
    case wire::Opcode::kGetPartitionMap:
      connection.Send(MapFrame(id, /*push=*/false));
      return;
    case wire::Opcode::kIngestAsync:
    case wire::Opcode::kIngestSync: {
      absl::StatusOr<wire::IngestRequestView> view =
          wire::IngestRequestView::Decode(request.header.partition, payload);
      if (!view.ok()) {
        connection.Send(EmptyReply(wire::Status::kErr, id));
        return;
      }
      connection.Send(IngestOkReply(id, view->event_count(), view->event_count()));
      return;
    }
    case wire::Opcode::kUsageQuery:
    case wire::Opcode::kUsageRealtime:
      connection.Send(AggReply(id, 0));
      return;
    case wire::Opcode::kMetricList:
      UM_CHECK(wire::AppendMetricListReply(id, {}, &out).ok());
      connection.Send(out);
      return;
    case wire::Opcode::kEventsList:
      UM_CHECK(wire::AppendEventListReply(id, {}, &out).ok());
      connection.Send(out);
      return;
    case wire::Opcode::kAlertsList:
      UM_CHECK(wire::AppendAlertListReply(id, {}, &out).ok());
      connection.Send(out);
      return;
    case wire::Opcode::kUsageQueryBreakdown:
      UM_CHECK(wire::AppendBreakdownReply(id, {}, &out).ok());
      connection.Send(out);
      return;
    case wire::Opcode::kClusterStatus:
      wire::AppendClusterStatusReply(id, {.node_id = 0, .n_nodes = 1}, &out);
      connection.Send(out);
      return;
    default:
      connection.Send(EmptyReply(wire::Status::kOk, id));
      return;
  }
}

}  // namespace unimeter::client::testing
