#include "tests/chaos/raw_connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace unimeter::chaos {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<sockaddr_in> ParseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  if (colon == std::string::npos ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &peer.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad address ", address));
  }
  peer.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  return peer;
}

// A connected blocking socket, or -1.
int ConnectSocket(const std::string& address, int64_t timeout_ms) {
  absl::StatusOr<sockaddr_in> peer = ParseAddress(address);
  if (!peer.ok()) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int result = connect(fd, reinterpret_cast<const sockaddr*>(&*peer), sizeof(*peer));
  if (result != 0 && errno == EINPROGRESS) {
    pollfd waiting{fd, POLLOUT, 0};
    int error = 0;
    socklen_t length = sizeof(error);
    result = poll(&waiting, 1, static_cast<int>(timeout_ms)) == 1 &&
                     getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0
                 ? 0
                 : -1;
  }
  if (result != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Reads what is available within timeout_ms: bytes read, 0 on timeout, -1 on close/error.
ssize_t ReadSome(int fd, uint8_t* buffer, size_t size, int64_t timeout_ms) {
  pollfd waiting{fd, POLLIN, 0};
  const int ready = poll(&waiting, 1, static_cast<int>(std::max<int64_t>(timeout_ms, 0)));
  if (ready == 0) return 0;
  const ssize_t got = ready < 0 ? -1 : read(fd, buffer, size);
  return got <= 0 ? -1 : got;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RawConnection>> RawConnection::Connect(const std::string& address,
                                                                      int64_t timeout_ms) {
  const int fd = ConnectSocket(address, timeout_ms);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect to ", address));
  return std::unique_ptr<RawConnection>(new RawConnection(fd));
}

RawConnection::~RawConnection() { close(fd_); }

absl::Status RawConnection::Send(const std::string& frame) {
  size_t written = 0;
  while (written < frame.size()) {
    const ssize_t wrote = send(fd_, frame.data() + written, frame.size() - written, MSG_NOSIGNAL);
    if (wrote <= 0) return absl::UnavailableError("connection broke while writing");
    written += static_cast<size_t>(wrote);
  }
  return absl::OkStatus();
}

absl::StatusOr<protocol::ResponseFrame> RawConnection::Receive(int64_t timeout_ms) {
  const int64_t deadline_ms = NowMs() + timeout_ms;
  protocol::ResponseFrame frame;
  uint8_t buffer[65536];
  while (true) {
    switch (reader_.Next(&frame)) {
      case protocol::ResponseReader::Result::kFrame:
        if (frame.header.request_id != protocol::kPushRequestId) return frame;
        continue;
      case protocol::ResponseReader::Result::kCorrupt:
        return absl::DataLossError("corrupt reply stream");
      case protocol::ResponseReader::Result::kNeedMore:
        break;
    }
    const int64_t left_ms = deadline_ms - NowMs();
    if (left_ms <= 0) return absl::DeadlineExceededError("no reply in time");
    const ssize_t got = ReadSome(fd_, buffer, sizeof(buffer), left_ms);
    if (got < 0) return absl::UnavailableError("connection closed");
    reader_.Append(std::span<const uint8_t>(buffer, static_cast<size_t>(got)));
  }
}

std::vector<absl::StatusOr<unsigned __int128>> QuerySums(const std::string& address,
                                                         const std::string& metric_code,
                                                         const std::vector<uint64_t>& accounts,
                                                         int64_t timeout_ms) {
  std::vector<absl::StatusOr<unsigned __int128>> sums(accounts.size(),
                                                      absl::UnavailableError("not answered"));
  absl::StatusOr<std::unique_ptr<RawConnection>> connection =
      RawConnection::Connect(address, timeout_ms);
  if (!connection.ok()) return sums;
  std::string frames;
  for (size_t i = 0; i < accounts.size(); ++i) {
    protocol::UsageQueryRequest request;
    request.account_id = accounts[i];
    request.period_start_ns = 0;
    request.period_end_ns = INT64_MAX;
    request.metric_code = metric_code;
    if (absl::Status encoded =
            protocol::AppendUsageQueryRequest(static_cast<uint32_t>(i + 1), request, &frames);
        !encoded.ok()) {
      sums[i] = encoded;
    }
  }
  if (!(*connection)->Send(frames).ok()) return sums;
  for (size_t answered = 0; answered < accounts.size(); ++answered) {
    absl::StatusOr<protocol::ResponseFrame> reply = (*connection)->Receive(timeout_ms);
    if (!reply.ok()) break;
    const size_t index = reply->header.request_id - 1;
    if (index >= sums.size()) break;
    if (reply->header.status != static_cast<uint8_t>(protocol::Status::kOk) ||
        reply->payload.size() < protocol::kAggValueSizeBytes) {
      sums[index] = absl::UnavailableError(absl::StrCat("status ", int{reply->header.status}));
      continue;
    }
    sums[index] =
        protocol::DecodeAggValue(reinterpret_cast<const uint8_t*>(reply->payload.data())).sum;
  }
  return sums;
}

absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path,
                                    int64_t timeout_ms) {
  const int fd = ConnectSocket(address, timeout_ms);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect to ", address));
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", address, "\r\nConnection: close\r\n\r\n");
  std::string reply;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    const int64_t deadline_ms = NowMs() + timeout_ms;
    uint8_t buffer[16384];
    ssize_t got = 0;
    while ((got = ReadSome(fd, buffer, sizeof(buffer), deadline_ms - NowMs())) > 0) {
      reply.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(got));
    }
  }
  close(fd);
  if (reply.empty()) return absl::UnavailableError(absl::StrCat("no HTTP reply from ", address));
  return reply;
}

}  // namespace unimeter::chaos
