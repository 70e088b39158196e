// tests/chaos/real_cluster.h
//
// RealCluster starts and abuses a cluster of real `unimeter` processes on this machine, for
// the fault tests over real processes (issue 7) and tools/chaos.
//
// Two network layouts:
//   - kNamespaces (needs root): one network namespace per node, each joined to a bridge in
//     this process's namespace by a veth pair, addresses 10.213.K.(i+1)/24 (K from the pid),
//     every node on ports 7001 (application), 8001 (replication), 9090 (HTTP). Network
//     faults are blackhole routes inside the namespaces, so a cut between two nodes leaves
//     both reachable from the test process (clients keep talking to a minority node).
//   - kLoopback: distinct ports on 127.0.0.1; no network faults (Cut() is Unimplemented).
// Optionally (root) each node's data directory lives on its own small loop-mounted ext4
// image, so FillDisk() makes that node's disk really full.
//
// Every object created (namespaces, bridge, mounts, images, processes) is removed by the
// destructor, also after a failed test. Not thread-safe: one controlling thread (the
// nemesis) calls everything; the accessors for addresses are immutable after Create().
#ifndef UNIMETER_TESTS_CHAOS_REAL_CLUSTER_H_
#define UNIMETER_TESTS_CHAOS_REAL_CLUSTER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace unimeter::chaos {

enum class NetworkLayout { kLoopback, kNamespaces };

struct RealClusterOptions {
  int nodes = 3;
  std::string binary{};    // Path of the unimeter binary.
  std::string work_dir{};  // Created if missing; everything of the cluster lives below it.
  NetworkLayout layout = NetworkLayout::kLoopback;
  // > 0: each data directory on its own loop-mounted ext4 image of this size (root only).
  int64_t disk_image_mb = 0;
  int64_t min_free_disk_mb = 32;    // Passed to every node (--min-free-disk-mb).
  uint16_t loopback_base_port = 0;  // kLoopback: first port to try (0: derived from the pid).
};

class RealCluster {
 public:
  // Builds the network and disks, but starts no process. FailedPrecondition when the layout
  // or disk images need root and this process is not root.
  static absl::StatusOr<std::unique_ptr<RealCluster>> Create(RealClusterOptions options);
  ~RealCluster();
  RealCluster(const RealCluster&) = delete;
  RealCluster& operator=(const RealCluster&) = delete;

  int size() const { return options_.nodes; }
  bool has_network_faults() const { return options_.layout == NetworkLayout::kNamespaces; }
  bool has_disk_images() const { return options_.disk_image_mb > 0; }
  const std::string& app_address(int node) const { return nodes_[node].app_address; }
  const std::string& http_address(int node) const { return nodes_[node].http_address; }
  const std::string& data_dir(int node) const { return nodes_[node].data_dir; }
  std::vector<std::string> seeds() const;
  const std::string& log_path(int node) const { return nodes_[node].log_path; }

  // ---- Processes. Start forks the node (into its namespace); the others signal it.
  absl::Status Start(int node);
  void Kill(int node);          // SIGKILL (SIGCONT first if paused) and reap.
  absl::Status Stop(int node);  // SIGTERM, wait up to 30 s for exit 0; SIGKILL after that.
  void Pause(int node);         // SIGSTOP.
  void Resume(int node);        // SIGCONT.
  bool running(int node) const { return nodes_[node].pid > 0; }
  bool paused(int node) const { return nodes_[node].paused; }
  // Reaps a node that exited by itself; returns a description ("exit 1", "signal 6") or "".
  std::string ReapIfExited(int node);

  // ---- Disks. REQUIRES: the node is not running (Wipe).
  absl::Status Wipe(int node);
  // Fills the node's disk image until `leave_mb` MiB remain free. REQUIRES: disk images.
  absl::Status FillDisk(int node, int64_t leave_mb);
  absl::Status FreeDisk(int node);

  // ---- Network (kNamespaces only). Cut drops traffic from `from` to `to` (both ways when
  // `both_ways`); HealNetwork removes every cut.
  absl::Status Cut(int from, int to, bool both_ways);
  // Cuts every pair across the two sides.
  absl::Status Split(const std::set<int>& side_a, const std::set<int>& side_b);
  absl::Status HealNetwork();

  // ---- Observation over HTTP and the binary protocol.
  // GET /health: (status code, body). Unavailable if no answer within 2 s.
  absl::StatusOr<std::pair<int, std::string>> Health(int node) const;
  // Waits until every running, unpaused node answers /health with 200.
  absl::Status WaitHealthy(int64_t timeout_ms) const;

 private:
  struct Node {
    std::string ip{};
    uint16_t port = 0;
    uint16_t http_port = 0;
    std::string app_address{};
    std::string http_address{};
    std::string netns{};       // Empty in kLoopback.
    std::string mount_dir{};   // The image's mount point (disk images) or empty.
    std::string image_path{};  // Empty without disk images.
    std::string data_dir{};
    std::string log_path{};
    pid_t pid = -1;
    bool paused = false;
  };

  explicit RealCluster(RealClusterOptions options) : options_(std::move(options)) {}
  absl::Status SetUpNetwork();
  absl::Status SetUpLoopback();
  absl::Status SetUpDisk(int node);
  void TearDown();
  std::string Peers() const;
  std::vector<std::string> NodeArguments(int node) const;

  const RealClusterOptions options_;
  std::vector<Node> nodes_;
  std::string bridge_{};
  std::vector<std::pair<int, int>> cuts_{};  // (in namespace of, blackholed node).
};

// Runs a command (argv[0] looked up in PATH), waits, and returns its combined output;
// Internal with that output when it exits non-zero.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv);

}  // namespace unimeter::chaos

#endif  // UNIMETER_TESTS_CHAOS_REAL_CLUSTER_H_
