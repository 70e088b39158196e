// Round-trip latency over loopback of the posix Env: a node-to-node message between two
// PosixEnvs (driven alternately from this thread, busy-polling), and a client stream
// echo within one PosixEnv.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "node/env/posix/posix_env.h"
#include "node/env/posix/test_util.h"

namespace unimeter {
namespace {

using posix_test::kPatienceNs;
using posix_test::PickFreePort;
using posix_test::RunAllUntil;
using posix_test::TempDir;

std::unique_ptr<PosixEnv> MakeEnv(NodeId id, const std::string& dir, uint16_t port,
                                  std::vector<PosixEnvOptions::Peer> peers) {
  PosixEnvOptions options;
  options.node_id = id;
  options.data_dir = dir;
  options.replication_port = port;
  options.peers = std::move(peers);
  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(std::move(options));
  UM_CHECK_OK(env.status());
  return *std::move(env);
}

// Baseline, the physical floor: a blocking TCP ping-pong of the same payload between two
// sockets of this thread (write, read on the other end, write back, read), no framing,
// no event loop.
void BM_RawTcpRoundTripBaseline(benchmark::State& state) {
  const size_t size_bytes = static_cast<size_t>(state.range(0));
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  UM_CHECK_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  UM_CHECK_EQ(listen(listener, 1), 0);
  UM_CHECK_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  UM_CHECK_EQ(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const int server = accept(listener, nullptr, nullptr);
  const int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::vector<uint8_t> buffer(size_bytes, 7);
  auto transfer = [&](int from, int to) {
    size_t sent = 0;
    size_t received = 0;
    while (received < size_bytes) {
      if (sent < size_bytes) {
        const ssize_t n = send(from, buffer.data() + sent, size_bytes - sent, MSG_DONTWAIT);
        sent += n > 0 ? static_cast<size_t>(n) : 0;
      }
      const ssize_t n = recv(to, buffer.data(), size_bytes - received, MSG_DONTWAIT);
      received += n > 0 ? static_cast<size_t>(n) : 0;
    }
  };
  for (auto _ : state) {
    transfer(client, server);
    transfer(server, client);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size_bytes * 2));
  close(client);
  close(server);
  close(listener);
}
BENCHMARK(BM_RawTcpRoundTripBaseline)->Arg(64)->Arg(4096)->Arg(256 * 1024);

void BM_TransportRoundTrip(benchmark::State& state) {
  const size_t size_bytes = static_cast<size_t>(state.range(0));
  TempDir dir_a;
  TempDir dir_b;
  const uint16_t port_a = PickFreePort();
  const uint16_t port_b = PickFreePort();
  auto a = MakeEnv(1, dir_a.path(), port_a, {{2, "127.0.0.1", port_b}});
  auto b = MakeEnv(2, dir_b.path(), port_b, {{1, "127.0.0.1", port_a}});
  uint64_t replies = 0;
  b->transport().SetReceiver([&](NodeId source, absl::Span<const uint8_t> message) {
    b->transport().Send(source, message);  // Echo.
  });
  a->transport().SetReceiver([&](NodeId, absl::Span<const uint8_t>) { ++replies; });
  const std::vector<uint8_t> message(size_bytes, 7);
  // Warm up: both connections established.
  a->transport().Send(2, message);
  UM_CHECK(RunAllUntil(
      {a.get(), b.get()}, [&] { return replies == 1; }, kPatienceNs));
  for (auto _ : state) {
    const uint64_t expected = replies + 1;
    a->transport().Send(2, message);
    while (replies != expected) {
      a->loop().RunOnce(0);
      b->loop().RunOnce(0);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size_bytes * 2));
}
BENCHMARK(BM_TransportRoundTrip)->Arg(64)->Arg(4096)->Arg(256 * 1024);

void BM_StreamRoundTrip(benchmark::State& state) {
  const size_t size_bytes = static_cast<size_t>(state.range(0));
  TempDir dir;
  auto env = MakeEnv(1, dir.path(), 0, {});
  std::unique_ptr<Stream> server;
  absl::StatusOr<std::unique_ptr<Listener>> listener =
      env->Listen(0, [&](std::unique_ptr<Stream> stream) {
        server = std::move(stream);
        Stream* raw = server.get();
        raw->SetHandler({[raw](absl::Span<const uint8_t> bytes) { UM_CHECK_OK(raw->Write(bytes)); },
                         [](absl::Status) {}});
      });
  UM_CHECK_OK(listener.status());
  std::unique_ptr<Stream> client;
  size_t received = 0;
  env->Connect(
      "127.0.0.1:" + std::to_string((*listener)->port()),
      [&](absl::StatusOr<std::unique_ptr<Stream>> stream) {
        UM_CHECK_OK(stream.status());
        client = *std::move(stream);
        client->SetHandler({[&](absl::Span<const uint8_t> bytes) { received += bytes.size(); },
                            [](absl::Status) {}});
      });
  UM_CHECK(
      env->loop().RunUntil([&] { return client != nullptr && server != nullptr; }, kPatienceNs));
  const std::vector<uint8_t> message(size_bytes, 9);
  for (auto _ : state) {
    const size_t expected = received + size_bytes;
    UM_CHECK_OK(client->Write(message));
    while (received < expected) {
      env->loop().RunOnce(0);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * size_bytes * 2));
  client.reset();
  server.reset();
}
BENCHMARK(BM_StreamRoundTrip)->Arg(64)->Arg(4096)->Arg(256 * 1024);

}  // namespace
}  // namespace unimeter
