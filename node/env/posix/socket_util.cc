#include "node/env/posix/socket_util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace unimeter {

absl::StatusOr<HostPort> ParseHostPort(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("not host:port: ", std::string(address)));
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(std::string(address.substr(colon + 1)), &port) || port == 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in: ", std::string(address)));
  }
  return HostPort{std::string(address.substr(0, colon)), static_cast<uint16_t>(port)};
}

absl::StatusOr<sockaddr_in> ResolveIpv4(const std::string& host, uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) == 1) {
    return address;
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* results = nullptr;
  const int error = getaddrinfo(host.c_str(), nullptr, &hints, &results);
  if (error != 0 || results == nullptr) {
    return absl::NotFoundError(absl::StrCat("resolve ", host, ": ", gai_strerror(error)));
  }
  address.sin_addr = reinterpret_cast<const sockaddr_in*>(results->ai_addr)->sin_addr;
  freeaddrinfo(results);
  return address;
}

absl::StatusOr<int> ListenTcp(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return SocketErrorStatus(errno, "socket");
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 128) != 0) {
    const int error = errno;
    close(fd);
    return SocketErrorStatus(error, absl::StrCat("listen on port ", port));
  }
  return fd;
}

absl::StatusOr<uint16_t> LocalPort(int fd) {
  sockaddr_in address{};
  socklen_t size = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    return SocketErrorStatus(errno, "getsockname");
  }
  return ntohs(address.sin_port);
}

absl::StatusOr<int> StartConnect(const sockaddr_in& address) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return SocketErrorStatus(errno, "socket");
  }
  SetNoDelay(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 &&
      errno != EINPROGRESS) {
    const int error = errno;
    close(fd);
    return SocketErrorStatus(error, "connect");
  }
  return fd;
}

int TakeSocketError(int fd) {
  int error = 0;
  socklen_t size = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
    return errno;
  }
  return error;
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

namespace {

std::string AddressText(int fd, bool peer) {
  sockaddr_in address{};
  socklen_t size = sizeof(address);
  const int result = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&address), &size)
                          : getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  if (result != 0 || address.sin_family != AF_INET) {
    return "?";
  }
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &address.sin_addr, text, sizeof(text));
  return absl::StrCat(text, ":", ntohs(address.sin_port));
}

}  // namespace

std::string PeerAddressText(int fd) { return AddressText(fd, true); }

std::string LocalAddressText(int fd) { return AddressText(fd, false); }

absl::Status SocketErrorStatus(int error, std::string_view what) {
  return absl::UnavailableError(absl::StrCat(std::string(what), ": ", strerror(error)));
}

}  // namespace unimeter
