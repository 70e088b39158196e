// node/env/posix/socket_util.h
//
// Small helpers over BSD sockets for the posix Env: address parsing and resolution,
// non-blocking listening and connecting sockets (IPv4 only), and errno -> Status.
// Every socket created here is SOCK_NONBLOCK | SOCK_CLOEXEC.
#ifndef UNIMETER_NODE_ENV_POSIX_SOCKET_UTIL_H_
#define UNIMETER_NODE_ENV_POSIX_SOCKET_UTIL_H_

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace unimeter {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// Splits "host:port" (port 1..65535). InvalidArgument otherwise.
absl::StatusOr<HostPort> ParseHostPort(std::string_view address);

// A numeric IPv4 address, or a host name resolved with getaddrinfo (blocking; the first
// IPv4 result). NotFound if the name does not resolve.
absl::StatusOr<sockaddr_in> ResolveIpv4(const std::string& host, uint16_t port);

// A listening TCP socket on 0.0.0.0:`port` (0 = ephemeral) with SO_REUSEADDR.
absl::StatusOr<int> ListenTcp(uint16_t port);

// The local port of a bound socket.
absl::StatusOr<uint16_t> LocalPort(int fd);

// A socket whose connect to `address` has started (or finished); the caller waits for
// writability and then checks TakeSocketError. TCP_NODELAY is set.
absl::StatusOr<int> StartConnect(const sockaddr_in& address);

// Returns and clears the socket's pending error (SO_ERROR), 0 if none.
int TakeSocketError(int fd);

// Sets TCP_NODELAY (best effort).
void SetNoDelay(int fd);

// "a.b.c.d:port" of the socket's peer, or "?" if unknown.
std::string PeerAddressText(int fd);
// "ip:port" of the local end of `fd`, or "?".
std::string LocalAddressText(int fd);

// Unavailable("<what>: <strerror>") for network errors.
absl::Status SocketErrorStatus(int error, std::string_view what);

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_SOCKET_UTIL_H_
