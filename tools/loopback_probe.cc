// loopback-probe: the network floor of a one-machine cluster. Sends a 64-byte message over
// TCP on 127.0.0.1 to an echo thread and waits for it to come back, N times (TCP_NODELAY,
// blocking sockets), and prints p50/p90/p99 round-trip latency in microseconds (text, or
// JSON with --json). Benchmarks read request latencies as ratios to this and to fsync-probe.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "node/base/flags.h"
#include "tools/histogram.h"

namespace {

constexpr size_t kMessageBytes = 64;

bool ReadFull(int fd, char* buffer, size_t size) {
  for (size_t got = 0; got < size;) {
    const ssize_t n = read(fd, buffer + got, size - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

void NoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Accepts one connection and echoes fixed-size messages until it closes.
void Echo(int listen_fd) {
  const int fd = accept(listen_fd, nullptr, nullptr);
  if (fd < 0) return;
  NoDelay(fd);
  char buffer[kMessageBytes];
  while (ReadFull(fd, buffer, sizeof(buffer)) && write(fd, buffer, sizeof(buffer)) > 0) {
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t count = 2000;
  bool json = false;
  unimeter::FlagParser flags("loopback-probe", "loopback-probe [--count=N] [--json]");
  flags.AddInt("count", &count, "round trips", 10, 10'000'000);
  flags.AddBool("json", &json, "print JSON");
  if (!flags.Parse(argc, argv).ok() || flags.help_requested()) {
    std::fprintf(stderr, "%s", flags.Help().c_str());
    return 2;
  }
  const int listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listen_fd, 1) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("loopback-probe: listen");
    return 1;
  }
  std::thread echo(Echo, listen_fd);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::perror("loopback-probe: connect");
    return 1;
  }
  NoDelay(fd);
  char message[kMessageBytes] = {};
  std::vector<double> latencies_us;
  for (int64_t i = 0; i < count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (write(fd, message, sizeof(message)) != static_cast<ssize_t>(sizeof(message)) ||
        !ReadFull(fd, message, sizeof(message))) {
      std::perror("loopback-probe: round trip");
      return 1;
    }
    latencies_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  close(fd);
  echo.join();
  close(listen_fd);
  std::sort(latencies_us.begin(), latencies_us.end());
  auto at = [&](double q) { return unimeter::tools::NearestRankQuantile(latencies_us, q); };
  if (json) {
    std::printf(
        "{\"loopback_rtt_us_p50\":%.1f,\"loopback_rtt_us_p90\":%.1f,"
        "\"loopback_rtt_us_p99\":%.1f}\n",
        at(0.5), at(0.9), at(0.99));
  } else {
    std::printf("loopback TCP round trip of 64 B (%lld): p50 %.1f us, p90 %.1f us, p99 %.1f us\n",
                static_cast<long long>(count), at(0.5), at(0.9), at(0.99));
  }
  return 0;
}
