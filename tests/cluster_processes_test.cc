// Three real `unimeter` processes on loopback, clustered with --peers, under continuous
// synchronous ingest through the C++ client library. The owner of busy partitions is
// killed with SIGKILL, restarted, killed again, its data directory wiped and restarted
// again. Afterwards every acknowledged event is counted exactly once, and every node
// answers the same totals (each node is asked directly over its own connection).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "protocol/response_reader.h"
#include "protocol/wire.h"

namespace unimeter {
namespace {

constexpr int kNodes = 3;
constexpr uint64_t kAccounts = 32;
constexpr int64_t kBaseTimestampNs = 1'767'225'600'000'000'000;  // 2026-01-01.

// A port p such that p and p + 1000 are free now (application and replication port).
uint16_t FreePortPair(uint16_t not_below) {
  for (uint16_t port = not_below; port < 40000; ++port) {
    bool free = true;
    for (uint16_t candidate : {port, static_cast<uint16_t>(port + 1000)}) {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(candidate);
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      free = free && bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
      close(fd);
    }
    if (free) return port;
  }
  return 0;
}

class Node {
 public:
  Node(int id, std::string binary, std::string dir, uint16_t port, std::string peers)
      : id_(id),
        binary_(std::move(binary)),
        dir_(std::move(dir)),
        port_(port),
        peers_(std::move(peers)) {}
  ~Node() { Kill(); }

  void Start() {
    const std::string log = absl::StrCat(dir_, ".log");
    pid_ = fork();
    if (pid_ == 0) {
      freopen(log.c_str(), "a", stdout);
      freopen(log.c_str(), "a", stderr);
      const std::string a1 = absl::StrCat("--node-id=", id_);
      const std::string a2 = absl::StrCat("--port=", port_);
      const std::string a3 = "--http-port=0";
      const std::string a4 = absl::StrCat("--data-dir=", dir_);
      const std::string a5 = absl::StrCat("--peers=", peers_);
      execl(binary_.c_str(), binary_.c_str(), a1.c_str(), a2.c_str(), a3.c_str(), a4.c_str(),
            a5.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void Wipe() { std::filesystem::remove_all(dir_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  const int id_;
  const std::string binary_;
  const std::string dir_;
  const uint16_t port_;
  const std::string peers_;
  pid_t pid_ = -1;
};

// One USAGE_QUERY sent to `address` itself (not routed): that node's answer.
absl::StatusOr<uint64_t> SumAt(const std::string& address, uint64_t account) {
  const size_t colon = address.rfind(':');
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) != 0) {
    close(fd);
    return absl::UnavailableError("connect failed");
  }
  protocol::UsageQueryRequest request;
  request.account_id = account;
  request.period_start_ns = 0;
  request.period_end_ns = INT64_MAX;
  request.metric_code = "m";
  std::string frame;
  absl::Status encoded = protocol::AppendUsageQueryRequest(7, request, &frame);
  if (!encoded.ok()) return encoded;
  if (write(fd, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size())) {
    close(fd);
    return absl::UnavailableError("write failed");
  }
  protocol::ResponseReader reader;
  protocol::ResponseFrame reply;
  uint8_t buffer[4096];
  while (true) {
    const ssize_t got = read(fd, buffer, sizeof(buffer));
    if (got <= 0) {
      close(fd);
      return absl::UnavailableError("no reply");
    }
    reader.Append(std::span<const uint8_t>(buffer, static_cast<size_t>(got)));
    if (reader.Next(&reply) == protocol::ResponseReader::Result::kFrame) break;
  }
  close(fd);
  if (reply.header.status != static_cast<uint8_t>(protocol::Status::kOk)) {
    return absl::UnavailableError(absl::StrCat("status ", int{reply.header.status}));
  }
  return static_cast<uint64_t>(
      protocol::DecodeAggValue(reinterpret_cast<const uint8_t*>(reply.payload.data())).sum);
}

// A plain connection to one node that waits for a PARTITION_MAP_UPDATE push (WP 8.2).
class MapPushWatcher {
 public:
  explicit MapPushWatcher(const std::string& address) {
    const size_t colon = address.rfind(':');
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)) == 0;
  }
  ~MapPushWatcher() { close(fd_); }

  // True once a map push arrived within `seconds`.
  bool WaitForPush(int seconds) {
    protocol::ResponseReader reader;
    protocol::ResponseFrame frame;
    uint8_t buffer[65536];
    for (int tick = 0; connected_ && tick < seconds; ++tick) {
      const ssize_t got = read(fd_, buffer, sizeof(buffer));
      if (got == 0) return false;
      if (got < 0) continue;  // Timeout: read again.
      reader.Append(std::span<const uint8_t>(buffer, static_cast<size_t>(got)));
      while (reader.Next(&frame) == protocol::ResponseReader::Result::kFrame) {
        if (frame.header.request_id == 0 && frame.header.status == 0x11 &&
            frame.payload.size() == protocol::kPartitionMapSizeBytes) {
          return true;
        }
      }
    }
    return false;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Continuous synchronous ingest: batches of distinct events (client timestamps, so a resent
// batch is deduplicated), each resent until acknowledged.
class Ingester {
 public:
  explicit Ingester(std::vector<std::string> seeds) : seeds_(std::move(seeds)) {}
  ~Ingester() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t acked_total() const { return acked_total_; }
  uint64_t failed_attempts() const { return failed_attempts_; }
  std::vector<uint64_t> acked() {
    std::lock_guard<std::mutex> lock(mutex_);
    return acked_;
  }

 private:
  void Run() {
    client::ClientOptions options;
    options.seeds = seeds_;
    options.request_timeout_ms = 5'000;
    auto connected = client::Client::Connect(options);
    ASSERT_TRUE(connected.ok()) << connected.status();
    client::Client& c = **connected;
    uint64_t next = 0;
    while (!stop_) {
      std::vector<client::Event> batch;
      for (int i = 0; i < 20; ++i, ++next) {
        batch.push_back(
            client::Event{next % kAccounts, "m", 1, kBaseTimestampNs + static_cast<int64_t>(next)});
      }
      while (true) {  // The same batch until it is acknowledged (even after Stop()).
        absl::StatusOr<client::IngestResult> result = c.IngestSync(batch);
        if (result.ok()) break;
        ++failed_attempts_;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      std::lock_guard<std::mutex> lock(mutex_);
      for (const client::Event& event : batch) ++acked_[event.account_id];
      acked_total_ += batch.size();
    }
  }

  const std::vector<std::string> seeds_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> acked_total_{0};
  std::atomic<uint64_t> failed_attempts_{0};
  std::mutex mutex_;
  std::vector<uint64_t> acked_ = std::vector<uint64_t>(kAccounts, 0);
};

void WaitFor(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(ClusterProcessesTest, OwnerKilledRestartedAndWipedLosesNothing) {
  const char* binary = std::getenv("UNIMETER");
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(binary, nullptr);
  ASSERT_NE(tmp, nullptr);
  std::vector<uint16_t> ports;
  for (int i = 0; i < kNodes; ++i) {
    ports.push_back(FreePortPair(ports.empty() ? 21000 + getpid() % 5000 : ports.back() + 1));
    ASSERT_NE(ports.back(), 0);
  }
  std::string peers;
  for (int i = 0; i < kNodes; ++i) {
    absl::StrAppend(&peers, i == 0 ? "" : ",", i, ":127.0.0.1:", ports[i] + 1000);
  }
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<std::string> seeds;
  for (int i = 0; i < kNodes; ++i) {
    nodes.push_back(
        std::make_unique<Node>(i, binary, absl::StrCat(tmp, "/node", i), ports[i], peers));
    nodes.back()->Start();
    seeds.push_back(nodes.back()->address());
  }
  // Register the metric once the cluster has formed.
  {
    client::ClientOptions options;
    options.seeds = seeds;
    auto admin = client::Client::Connect(options);
    ASSERT_TRUE(admin.ok()) << admin.status();
    client::MetricSchema schema;
    schema.code = "m";
    schema.agg_type = 1;  // SUM
    absl::Status put = absl::UnknownError("not tried");
    for (int attempt = 0; attempt < 100 && !put.ok(); ++attempt) {
      put = (*admin)->PutMetric(schema);
      if (!put.ok()) WaitFor(200);
    }
    ASSERT_TRUE(put.ok()) << put;
  }
  Ingester ingester(seeds);
  ingester.Start();
  WaitFor(3'000);
  ASSERT_GT(ingester.acked_total(), 0u) << "no progress before any fault";

  // The owner of partition 0 (account 0 is busy) as the cluster reports it.
  int victim = 1;
  {
    client::ClientOptions options;
    options.seeds = seeds;
    auto admin = client::Client::Connect(options);
    ASSERT_TRUE(admin.ok());
    auto status = (*admin)->GetClusterStatus(seeds[0]);
    ASSERT_TRUE(status.ok()) << status.status();
    victim = status->partitions[0].leader;
    ASSERT_LT(victim, kNodes);
  }
  uint64_t before = ingester.acked_total();
  MapPushWatcher watcher(nodes[(victim + 1) % kNodes]->address());
  nodes[victim]->Kill();
  EXPECT_TRUE(watcher.WaitForPush(10)) << "no partition map push after the owner died";
  WaitFor(3'000);
  EXPECT_GT(ingester.acked_total(), before) << "no progress while node " << victim << " is dead";
  nodes[victim]->Start();
  WaitFor(5'000);
  before = ingester.acked_total();
  nodes[victim]->Kill();
  nodes[victim]->Wipe();
  nodes[victim]->Start();
  WaitFor(8'000);
  EXPECT_GT(ingester.acked_total(), before) << "no progress after the disk was replaced";
  ingester.Stop();
  const std::vector<uint64_t> acked = ingester.acked();

  // Every node answers every account's total itself: equal to what was acknowledged.
  for (int i = 0; i < kNodes; ++i) {
    for (uint64_t account = 0; account < kAccounts; ++account) {
      absl::StatusOr<uint64_t> sum = absl::UnavailableError("not asked");
      for (int attempt = 0; attempt < 50; ++attempt) {
        sum = SumAt(nodes[i]->address(), account);
        if (sum.ok() && *sum == acked[account]) break;
        WaitFor(200);
      }
      ASSERT_TRUE(sum.ok()) << "node " << i << ": " << sum.status();
      EXPECT_EQ(*sum, acked[account]) << "node " << i << " account " << account;
    }
  }
  std::printf("acknowledged %llu events, %llu failed attempts retried\n",
              static_cast<unsigned long long>(ingester.acked_total()),
              static_cast<unsigned long long>(ingester.failed_attempts()));
}

}  // namespace
}  // namespace unimeter
