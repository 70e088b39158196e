// Three real `unimeter` processes on loopback (tests/chaos RealCluster), clustered with --peers,
// under continuous synchronous ingest through the C++ client library. The owner of busy partitions
// is killed with SIGKILL, restarted, killed again, its data directory wiped and restarted again.
// Afterwards every acknowledged event is counted exactly once, every node answers the same
// totals (each node is asked directly over its own connection), and the wiped node's alert
// log is back with the same offsets.
// Second: two of the three data directories wiped at once halt the cluster with "data loss"
// on every node's /health. Third: REDIRECT on the wire (WP 7.1 step 2, 9.3) for an ingest
// naming a partition the node does not own and for a registry change sent to a node that
// is not the registry leader.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "protocol/response_reader.h"
#include "protocol/wire.h"
#include "tests/chaos/raw_connection.h"
#include "tests/chaos/real_cluster.h"

namespace unimeter {
namespace {

constexpr int kNodes = 3;
constexpr uint64_t kAccounts = 32;
constexpr int64_t kBaseTimestampNs = 1'767'225'600'000'000'000;  // 2026-01-01.

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
  // Stops without waiting for the batch in flight to be acknowledged (its outcome stays
  // unknown): for a cluster that cannot commit any more.
  void Abandon() {
    abandon_ = true;
    Stop();
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
        if (abandon_) return;
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
  std::atomic<bool> abandon_{false};
  std::atomic<uint64_t> acked_total_{0};
  std::atomic<uint64_t> failed_attempts_{0};
  std::mutex mutex_;
  std::vector<uint64_t> acked_ = std::vector<uint64_t>(kAccounts, 0);
};

void WaitFor(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Starts kNodes real processes (work directory TEST_TMPDIR/`name`) and registers the SUM
// metric "m" (threshold "ten" at 10: one alert record per account) once the cluster has
// formed.
void StartClusterWithSumMetric(const std::string& name,
                               std::unique_ptr<chaos::RealCluster>* cluster) {
  const char* binary = std::getenv("UNIMETER");
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(binary, nullptr);
  ASSERT_NE(tmp, nullptr);
  chaos::RealClusterOptions cluster_options;
  cluster_options.nodes = kNodes;
  cluster_options.binary = binary;
  cluster_options.work_dir = absl::StrCat(tmp, "/", name);
  absl::StatusOr<std::unique_ptr<chaos::RealCluster>> created =
      chaos::RealCluster::Create(cluster_options);
  ASSERT_TRUE(created.ok()) << created.status();
  *cluster = *std::move(created);
  for (int i = 0; i < kNodes; ++i) ASSERT_TRUE((*cluster)->Start(i).ok());
  client::ClientOptions options;
  options.seeds = (*cluster)->seeds();
  auto admin = client::Client::Connect(options);
  ASSERT_TRUE(admin.ok()) << admin.status();
  client::MetricSchema schema;
  schema.code = "m";
  schema.agg_type = 1;  // SUM
  schema.thresholds.push_back(protocol::ThresholdSpec{"ten", 10, false});
  absl::Status put = absl::UnknownError("not tried");
  for (int attempt = 0; attempt < 100 && !put.ok(); ++attempt) {
    put = (*admin)->PutMetric(schema);
    if (!put.ok()) WaitFor(200);
  }
  ASSERT_TRUE(put.ok()) << put;
}

// Every record of `node`'s alert log for accounts 0..kAccounts-1 (ALERTS_LIST, WP 7.9).
std::vector<client::AlertRecord> NodeAlerts(client::Client& client, const std::string& node) {
  std::vector<client::AlertRecord> all;
  for (uint64_t account = 0; account < kAccounts; ++account) {
    absl::StatusOr<std::vector<client::AlertRecord>> records =
        client.AlertsList(node, account, /*since_offset=*/0);
    EXPECT_TRUE(records.ok()) << node << " account " << account << ": " << records.status();
    if (records.ok()) all.insert(all.end(), records->begin(), records->end());
  }
  std::sort(all.begin(), all.end(), [](const client::AlertRecord& a, const client::AlertRecord& b) {
    return a.offset < b.offset;
  });
  return all;
}

// Every node answers every account's total itself: equal to what was acknowledged.
void ExpectEveryNodeAnswersTheAcknowledgedTotals(const chaos::RealCluster& cluster,
                                                 const std::vector<uint64_t>& acked) {
  std::vector<uint64_t> accounts;
  for (uint64_t account = 0; account < kAccounts; ++account) accounts.push_back(account);
  for (int i = 0; i < kNodes; ++i) {
    std::vector<absl::StatusOr<unsigned __int128>> sums;
    for (int attempt = 0; attempt < 50; ++attempt) {
      sums = chaos::QuerySums(cluster.app_address(i), "m", accounts, 10'000);
      bool all_equal = true;
      for (uint64_t account = 0; account < kAccounts; ++account) {
        all_equal = all_equal && sums[account].ok() && *sums[account] == acked[account];
      }
      if (all_equal) break;
      WaitFor(200);
    }
    for (uint64_t account = 0; account < kAccounts; ++account) {
      ASSERT_TRUE(sums[account].ok()) << "node " << i << ": " << sums[account].status();
      EXPECT_EQ(static_cast<uint64_t>(*sums[account]), acked[account])
          << "node " << i << " account " << account;
    }
  }
}

TEST(ClusterProcessesTest, OwnerKilledRestartedAndWipedLosesNothing) {
  std::unique_ptr<chaos::RealCluster> owned_cluster;
  ASSERT_NO_FATAL_FAILURE(StartClusterWithSumMetric("cluster", &owned_cluster));
  chaos::RealCluster& cluster = *owned_cluster;
  const std::vector<std::string> seeds = cluster.seeds();
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
  MapPushWatcher watcher(cluster.app_address((victim + 1) % kNodes));
  cluster.Kill(victim);
  EXPECT_TRUE(watcher.WaitForPush(10)) << "no partition map push after the owner died";
  WaitFor(3'000);
  EXPECT_GT(ingester.acked_total(), before) << "no progress while node " << victim << " is dead";
  ASSERT_TRUE(cluster.Start(victim).ok());
  WaitFor(5'000);
  before = ingester.acked_total();
  // The victim's alert log (its crossings of "ten" while it owned partitions), to be
  // restored from its peers' copies with the same offsets after its disk is replaced.
  client::ClientOptions admin_options;
  admin_options.seeds = seeds;
  auto admin = client::Client::Connect(admin_options);
  ASSERT_TRUE(admin.ok()) << admin.status();
  const std::vector<client::AlertRecord> alerts_before =
      NodeAlerts(**admin, cluster.app_address(victim));
  ASSERT_FALSE(alerts_before.empty()) << "node " << victim << " recorded no crossing";
  cluster.Kill(victim);
  ASSERT_TRUE(cluster.Wipe(victim).ok());
  ASSERT_TRUE(cluster.Start(victim).ok());
  WaitFor(8'000);
  EXPECT_GT(ingester.acked_total(), before) << "no progress after the disk was replaced";
  ingester.Stop();
  const std::vector<uint64_t> acked = ingester.acked();

  ExpectEveryNodeAnswersTheAcknowledgedTotals(cluster, acked);
  // The replaced disk's alert log is back, every record at its offset.
  std::vector<client::AlertRecord> alerts_after;
  for (int attempt = 0; attempt < 100 && alerts_after.size() < alerts_before.size(); ++attempt) {
    if (attempt > 0) WaitFor(200);  // Restored when its resync completes.
    alerts_after = NodeAlerts(**admin, cluster.app_address(victim));
  }
  ASSERT_GE(alerts_after.size(), alerts_before.size());
  for (size_t i = 0; i < alerts_before.size(); ++i) {
    const client::AlertRecord& was = alerts_before[i];
    const client::AlertRecord& is = alerts_after[i];
    EXPECT_EQ(is.offset, was.offset) << "record " << i;
    EXPECT_EQ(is.account_id, was.account_id) << "record " << i;
    EXPECT_EQ(is.threshold_code, was.threshold_code) << "record " << i;
    EXPECT_EQ(is.value_at_cross, was.value_at_cross) << "record " << i;
    EXPECT_EQ(is.event_timestamp_ns, was.event_timestamp_ns) << "record " << i;
  }
  std::printf(
      "acknowledged %llu events, %llu failed attempts retried, %zu alert records "
      "restored\n",
      static_cast<unsigned long long>(ingester.acked_total()),
      static_cast<unsigned long long>(ingester.failed_attempts()), alerts_before.size());
}

// The value of a counter in `node`'s /metrics, or -1 if it cannot be read.
int64_t MetricValue(const chaos::RealCluster& cluster, int node, const std::string& name) {
  absl::StatusOr<std::string> reply = chaos::HttpGet(cluster.http_address(node), "/metrics", 2'000);
  if (!reply.ok()) return -1;
  const size_t at = reply->find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::atoll(reply->c_str() + at + name.size() + 2);
}

// A node started on an old copy of its own data directory (taken while it was stopped, as
// an operator's backup would be), after it ran on for seconds under load and took its
// partitions back: its peers heard of newer replica.meta writes and WAL syncs, so it finds
// its directory went back, resyncs from them as a new incarnation, and afterwards every
// node answers every acknowledged total.
// With `peers_restarted`, the other two are restarted (SIGTERM, start) while the victim is
// down, before it starts on the backup: what they heard it announce comes back from the
// state store they wrote at shutdown (a whole-cluster restart, as an upgrade does).
void ExpectAnOldBackupFound(const std::string& name, bool peers_restarted) {
  std::unique_ptr<chaos::RealCluster> owned_cluster;
  ASSERT_NO_FATAL_FAILURE(StartClusterWithSumMetric(name, &owned_cluster));
  chaos::RealCluster& cluster = *owned_cluster;
  Ingester ingester(cluster.seeds());
  ingester.Start();
  WaitFor(3'000);
  ASSERT_GT(ingester.acked_total(), 0u) << "no progress before any fault";
  const int victim = 2;
  ASSERT_TRUE(cluster.Stop(victim).ok());
  const std::string backup = cluster.data_dir(victim) + ".backup";
  std::filesystem::copy(cluster.data_dir(victim), backup, std::filesystem::copy_options::recursive);
  ASSERT_TRUE(cluster.Start(victim).ok());
  WaitFor(6'000);  // It takes its partitions back (new epochs) and acknowledges entries.
  const uint64_t before = ingester.acked_total();
  cluster.Kill(victim);
  if (peers_restarted) {
    for (int peer = 0; peer < victim; ++peer) {
      ASSERT_TRUE(cluster.Stop(peer).ok());
      ASSERT_TRUE(cluster.Start(peer).ok());
    }
  }
  ASSERT_TRUE(cluster.Wipe(victim).ok());
  std::filesystem::copy(backup, cluster.data_dir(victim), std::filesystem::copy_options::recursive);
  ASSERT_TRUE(cluster.Start(victim).ok());
  int64_t found = -1;
  for (int attempt = 0; attempt < 100 && found < 1; ++attempt) {
    WaitFor(100);
    found = MetricValue(cluster, victim, "billing_replication_directories_went_back");
  }
  EXPECT_EQ(found, 1) << "node " << victim << " ran on its old directory";
  EXPECT_TRUE(cluster.WaitHealthy(30'000).ok()) << "node " << victim << " never resynced";
  WaitFor(2'000);
  EXPECT_GT(ingester.acked_total(), before) << "no progress after the restore";
  ingester.Stop();
  ExpectEveryNodeAnswersTheAcknowledgedTotals(cluster, ingester.acked());
  std::printf("old backup%s: found (billing_replication_directories_went_back %lld), %llu events\n",
              peers_restarted ? " after its peers restarted" : "", static_cast<long long>(found),
              static_cast<unsigned long long>(ingester.acked_total()));
}

TEST(ClusterProcessesTest, ANodeStartedOnAnOldBackupOfItsDirectoryResyncs) {
  ExpectAnOldBackupFound("old_backup", /*peers_restarted=*/false);
}

TEST(ClusterProcessesTest, AnOldBackupIsFoundAfterItsPeersRestarted) {
  ExpectAnOldBackupFound("old_backup_restarts", /*peers_restarted=*/true);
}

// Two of three data directories lost at once: the survivor may lack events the lost disks
// committed, so the cluster must halt. Every node's /health says "data loss" (not 200),
// reads through every node fail instead of answering, and nothing new is acknowledged.
TEST(ClusterProcessesTest, MajorityOfDisksLostHaltsAndReportsDataLoss) {
  std::unique_ptr<chaos::RealCluster> owned_cluster;
  ASSERT_NO_FATAL_FAILURE(StartClusterWithSumMetric("majority-lost", &owned_cluster));
  chaos::RealCluster& cluster = *owned_cluster;
  const std::vector<std::string> seeds = cluster.seeds();
  Ingester ingester(seeds);
  ingester.Start();
  WaitFor(2'000);
  ASSERT_GT(ingester.acked_total(), 0u);
  for (int i = 1; i < kNodes; ++i) {
    cluster.Kill(i);
    ASSERT_TRUE(cluster.Wipe(i).ok());
  }
  for (int i = 1; i < kNodes; ++i) ASSERT_TRUE(cluster.Start(i).ok());
  WaitFor(2'000);  // Answers already in flight arrive.
  const uint64_t acknowledged = ingester.acked_total();

  std::vector<std::string> problems(kNodes);
  for (int attempt = 0; attempt < 100; ++attempt) {
    bool all_report = true;
    for (int i = 0; i < kNodes; ++i) {
      absl::StatusOr<std::pair<int, std::string>> health = cluster.Health(i);
      problems[i] = health.ok() ? absl::StrCat(health->first, " ", health->second)
                                : health.status().ToString();
      all_report = all_report && health.ok() && health->first != 200 &&
                   health->second.find("data loss") != std::string::npos;
    }
    if (all_report) break;
    WaitFor(200);
  }
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_NE(problems[i].find("data loss"), std::string::npos)
        << "node " << i << ": " << problems[i];
    EXPECT_EQ(problems[i].rfind("200 ", 0), std::string::npos) << "node " << i << " healthy";
    // The survivor still owns its partitions but can commit nothing: it serves none.
    EXPECT_NE(problems[i].find("\"partitions_serving\":0,"), std::string::npos)
        << "node " << i << ": " << problems[i];
  }
  std::vector<uint64_t> accounts;
  for (uint64_t account = 0; account < kAccounts; ++account) accounts.push_back(account);
  for (int i = 0; i < kNodes; ++i) {
    const std::vector<absl::StatusOr<unsigned __int128>> sums =
        chaos::QuerySums(cluster.app_address(i), "m", accounts, 10'000);
    for (uint64_t account = 0; account < kAccounts; ++account) {
      EXPECT_FALSE(sums[account].ok())
          << "node " << i << " answered account " << account << " with a possibly stale total";
    }
  }
  EXPECT_EQ(ingester.acked_total(), acknowledged) << "acknowledged without a quorum of disks";
  EXPECT_GT(ingester.failed_attempts(), 0u);
  ingester.Abandon();
}

// The reply to `frame` from `address`, over a new raw connection.
absl::StatusOr<protocol::ResponseFrame> Ask(const std::string& address, const std::string& frame) {
  absl::StatusOr<std::unique_ptr<chaos::RawConnection>> connection =
      chaos::RawConnection::Connect(address, 5'000);
  if (!connection.ok()) return connection.status();
  if (absl::Status sent = (*connection)->Send(frame); !sent.ok()) return sent;
  return (*connection)->Receive(10'000);
}

std::string RedirectAddress(const protocol::ResponseFrame& reply) {
  if (reply.payload.size() != protocol::kAddressSizeBytes) return "<bad payload>";
  return std::string(
      protocol::DecodeAddress(reinterpret_cast<const uint8_t*>(reply.payload.data())));
}

// Sends `frame` to a node other than the one at `target`: it must answer REDIRECT naming
// `target`; sent there, it must be answered OK. `*redirecting` is the node that redirected.
void ExpectRedirectedTo(const chaos::RealCluster& cluster, const std::string& target,
                        const std::string& frame, int* redirecting) {
  *redirecting = -1;
  for (int i = 0; i < kNodes && *redirecting < 0; ++i) {
    if (cluster.app_address(i) != target) *redirecting = i;
  }
  ASSERT_GE(*redirecting, 0) << target;
  absl::StatusOr<protocol::ResponseFrame> redirected =
      Ask(cluster.app_address(*redirecting), frame);
  ASSERT_TRUE(redirected.ok()) << redirected.status();
  EXPECT_EQ(redirected->header.status, static_cast<uint8_t>(protocol::Status::kRedirect));
  EXPECT_EQ(RedirectAddress(*redirected), target);
  absl::StatusOr<protocol::ResponseFrame> served = Ask(target, frame);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->header.status, static_cast<uint8_t>(protocol::Status::kOk));
}

TEST(ClusterProcessesTest, ExplicitPartitionsAndRegistryChangesAreRedirected) {
  std::unique_ptr<chaos::RealCluster> owned_cluster;
  ASSERT_NO_FATAL_FAILURE(StartClusterWithSumMetric("redirects", &owned_cluster));
  chaos::RealCluster& cluster = *owned_cluster;
  std::string map_frame;
  protocol::AppendEmptyRequest(static_cast<uint8_t>(protocol::Opcode::kGetPartitionMap), 1,
                               &map_frame);
  absl::StatusOr<protocol::ResponseFrame> map_reply = Ask(cluster.app_address(0), map_frame);
  ASSERT_TRUE(map_reply.ok()) << map_reply.status();
  ASSERT_EQ(map_reply->payload.size(), protocol::kPartitionMapSizeBytes);
  const protocol::PartitionMap map =
      protocol::DecodePartitionMap(reinterpret_cast<const uint8_t*>(map_reply->payload.data()));

  // An ingest naming partition 7 sent to a node that does not own it: REDIRECT to the
  // owner the map names, nothing stored; sent to that owner: stored.
  const uint32_t partition = 7;
  const protocol::IngestEvent event{"m", partition, kBaseTimestampNs + 1, 5, 0, {}};
  std::string ingest;
  ASSERT_TRUE(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync, partition, 2,
                                            std::span(&event, 1), &ingest)
                  .ok());
  int other = -1;
  ASSERT_NO_FATAL_FAILURE(
      ExpectRedirectedTo(cluster, std::string(map[partition].leader), ingest, &other));
  const std::vector<absl::StatusOr<unsigned __int128>> sums =
      chaos::QuerySums(cluster.app_address(other), "m", {partition}, 10'000);
  ASSERT_TRUE(sums[0].ok()) << sums[0].status();
  EXPECT_EQ(static_cast<uint64_t>(*sums[0]), 5u) << "the redirected request stored something";

  // A registry change sent to a node that is not the registry leader (the owner of
  // partition 0): REDIRECT to it; there it is applied.
  protocol::MetricSchemaRecord schema;
  schema.code = "redirected";
  schema.agg_type = 1;
  std::string put;
  ASSERT_TRUE(protocol::AppendMetricPutRequest(3, schema, &put).ok());
  int follower = -1;
  ASSERT_NO_FATAL_FAILURE(ExpectRedirectedTo(cluster, std::string(map[0].leader), put, &follower));
  // Listed at once through the node that redirected: METRIC_LIST is read as partition 0 is.
  std::string list;
  protocol::AppendEmptyRequest(static_cast<uint8_t>(protocol::Opcode::kMetricList), 4, &list);
  absl::StatusOr<protocol::ResponseFrame> listed = Ask(cluster.app_address(follower), list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->header.status, static_cast<uint8_t>(protocol::Status::kOk));
  EXPECT_NE(listed->payload.find("redirected"), std::string::npos);
}

}  // namespace
}  // namespace unimeter
