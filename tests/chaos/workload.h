// tests/chaos/workload.h
//
// Workload: the clients of the fault tests. While a nemesis abuses the cluster it runs
//   - synchronous and asynchronous writers, each with its own client::Client (routing,
//     retries and failover are the library's), each request holding the events of one
//     partition, every event recorded in the History before it is sent and resolved after;
//   - routed readers (client::Client::Usage: the owner answers) and direct readers (a raw
//     USAGE_QUERY to one node, which answers itself or refuses), every answer checked;
//   - on demand, a minority probe: synchronous writes sent straight to one node that is cut
//     off from the majority; any OK it returns before the network heals is an anomaly.
// Keys: metric codes chaos_0..chaos_{metrics-1} (SUM) for the writers, chaos_probe for the
// probe; accounts p + 256 * j (j < accounts_per_partition) belong to partition p. Writers
// own disjoint partitions; a partition moves to the next metric after 63 rounds and stops
// when every metric is used (the run is then longer than the key space; raise `metrics`).
// Thread-safe for one controlling thread calling Start/Stop/probe methods.
#ifndef UNIMETER_TESTS_CHAOS_WORKLOAD_H_
#define UNIMETER_TESTS_CHAOS_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "client/client.h"
#include "protocol/wire.h"
#include "tests/chaos/history.h"
#include "tests/chaos/raw_connection.h"

namespace unimeter::chaos {

struct WorkloadOptions {
  std::vector<std::string> seeds{};
  int sync_writers = 3;
  int async_writers = 1;
  int routed_readers = 1;
  int direct_readers = 1;
  int accounts_per_partition = 16;  // Events per request.
  int metrics = 24;
  int64_t request_timeout_ms = 5'000;
  // Pace of each asynchronous writer (synchronous ones are paced by their round trips). The
  // faults are the point, not overload: unpaced, one async writer alone saturates a 2-core
  // machine and every recovery then competes with a flood of writes.
  int64_t async_requests_per_second = 100;
  uint64_t random_seed = 1;
};

class Workload {
 public:
  static constexpr int kPartitions = 256;

  explicit Workload(WorkloadOptions options);
  ~Workload();

  History& history() { return history_; }
  uint64_t accounts() const { return uint64_t{kPartitions} * options_.accounts_per_partition; }
  int probe_metric() const { return options_.metrics; }
  static std::string MetricCode(int metric, int metrics);

  // Registers every metric (retrying while the cluster forms), within timeout_ms.
  absl::Status RegisterMetrics(int64_t timeout_ms);
  void Start();
  void Stop();  // Joins every thread; outstanding calls end as their deadlines expire.

  // Sends synchronous writes straight to `address` until EndProbe().
  void BeginProbe(const std::string& address);
  // Call right BEFORE healing: from now on an OK is legitimate and no new request is sent.
  void ProbeHealing();
  // Call after healing: waits (up to 10 s) for the outstanding reply and joins the probe.
  void JoinProbe();

  // Counters by name ("sync ok", "sync unknown", "read ok", ...).
  std::map<std::string, uint64_t> Counters() const;
  // Total acknowledged (OK) write requests so far; for progress checks.
  uint64_t acked_requests() const { return acked_requests_; }

 private:
  struct PartitionCursor {
    std::atomic<int> metric{0};  // Readers pick keys from the metrics used so far.
    int round = 0;
  };

  void RunWriter(int writer, bool sync);
  void RunReader(uint64_t seed, bool routed);
  std::unique_ptr<client::Client> ConnectClient(const std::string& who);
  struct ProbeRequest {  // The events of one partition at one round of the probe metric.
    std::vector<uint64_t> accounts;
    int round = 0;
  };
  void RunProbe(std::string address);
  ProbeRequest NextProbeRequest(int* partition);
  bool SendProbe(RawConnection& connection, uint32_t request_id, const ProbeRequest& request);
  void ResolveProbe(const std::string& address, const ProbeRequest& request,
                    protocol::Status status);
  std::vector<uint64_t> PartitionAccounts(int partition) const;
  bool PickWrittenKey(uint64_t* random_state, int* metric, uint64_t* account);
  void Count(const std::string& name, uint64_t delta = 1);

  const WorkloadOptions options_;
  History history_;
  const int64_t base_timestamp_ns_;
  std::atomic<int64_t> next_timestamp_ns_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::vector<PartitionCursor> cursors_;  // Each writer touches only its own partitions.
  std::vector<int> probe_rounds_;         // Per partition, probe thread only.
  std::atomic<bool> probe_stop_{false};
  std::atomic<bool> probe_healed_{false};
  std::thread probe_;
  std::atomic<uint64_t> acked_requests_{0};
  mutable std::mutex counters_mutex_;
  std::map<std::string, uint64_t> counters_;
};

}  // namespace unimeter::chaos

#endif  // UNIMETER_TESTS_CHAOS_WORKLOAD_H_
