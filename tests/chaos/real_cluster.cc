#include "tests/chaos/real_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/chaos/raw_connection.h"

namespace unimeter::chaos {
namespace {

constexpr uint16_t kNamespacePort = 7001;
constexpr uint16_t kNamespaceHttpPort = 9090;

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

bool PortFree(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return free;
}

// A port p with p (application), p + 1000 (replication) and p + 2000 (HTTP) free now.
uint16_t FreePortTriple(uint16_t not_below) {
  for (uint32_t port = not_below; port + 2000 < 65000; ++port) {
    const auto p = static_cast<uint16_t>(port);
    if (PortFree(p) && PortFree(p + 1000) && PortFree(p + 2000)) return p;
  }
  return 0;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

}  // namespace

absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv) {
  for (const std::string& word : argv) {
    if (word.empty() || word.find_first_of(" '\"\\$`;&|<>") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("unsafe command word: ", word));
    }
  }
  const std::string command = absl::StrCat(absl::StrJoin(argv, " "), " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("popen failed: ", command));
  std::string output;
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, got);
  const int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (", DescribeWaitStatus(status), "): ", output));
  }
  return output;
}

absl::StatusOr<std::unique_ptr<RealCluster>> RealCluster::Create(RealClusterOptions options) {
  if (options.nodes < 1 || options.nodes > 7) {
    return absl::InvalidArgumentError("RealCluster: 1 to 7 nodes");
  }
  const bool needs_root = options.layout == NetworkLayout::kNamespaces || options.disk_image_mb > 0;
  if (needs_root && geteuid() != 0) {
    return absl::FailedPreconditionError(
        "RealCluster: network namespaces and disk images need root");
  }
  std::unique_ptr<RealCluster> cluster(new RealCluster(std::move(options)));
  std::filesystem::create_directories(cluster->options_.work_dir);
  cluster->nodes_.resize(cluster->options_.nodes);
  absl::Status status = cluster->options_.layout == NetworkLayout::kNamespaces
                            ? cluster->SetUpNetwork()
                            : cluster->SetUpLoopback();
  for (int node = 0; status.ok() && node < cluster->size(); ++node) {
    status = cluster->SetUpDisk(node);
  }
  if (!status.ok()) return status;  // The destructor removes what was made.
  return cluster;
}

RealCluster::~RealCluster() { TearDown(); }

absl::Status RealCluster::SetUpLoopback() {
  uint16_t port = options_.loopback_base_port != 0
                      ? options_.loopback_base_port
                      : static_cast<uint16_t>(20000 + (getpid() % 400) * 20);
  for (Node& node : nodes_) {
    port = FreePortTriple(port);
    if (port == 0) return absl::ResourceExhaustedError("no free loopback ports");
    node.ip = "127.0.0.1";
    node.port = port;
    node.http_port = static_cast<uint16_t>(port + 2000);
    node.app_address = absl::StrCat(node.ip, ":", node.port);
    node.http_address = absl::StrCat(node.ip, ":", node.http_port);
    ++port;
  }
  return absl::OkStatus();
}

absl::Status RealCluster::SetUpNetwork() {
  const int tag = getpid() % 100000;
  const std::string subnet = absl::StrCat("10.213.", tag % 250, ".");
  bridge_ = absl::StrCat("um", tag, "b");
  std::vector<std::vector<std::string>> commands = {
      {"ip", "link", "add", bridge_, "type", "bridge"},
      {"ip", "addr", "add", absl::StrCat(subnet, "254/24"), "dev", bridge_},
      {"ip", "link", "set", bridge_, "up"}};
  for (int i = 0; i < size(); ++i) {
    Node& node = nodes_[i];
    node.netns = absl::StrCat("um", tag, "n", i);
    node.ip = absl::StrCat(subnet, i + 1);
    node.port = kNamespacePort;
    node.http_port = kNamespaceHttpPort;
    node.app_address = absl::StrCat(node.ip, ":", node.port);
    node.http_address = absl::StrCat(node.ip, ":", node.http_port);
    const std::string veth = absl::StrCat("um", tag, "v", i);
    commands.push_back({"ip", "netns", "add", node.netns});
    commands.push_back(
        {"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns});
    commands.push_back({"ip", "link", "set", veth, "master", bridge_});
    commands.push_back({"ip", "link", "set", veth, "up"});
    commands.push_back(
        {"ip", "-n", node.netns, "addr", "add", absl::StrCat(node.ip, "/24"), "dev", "eth0"});
    commands.push_back({"ip", "-n", node.netns, "link", "set", "eth0", "up"});
    commands.push_back({"ip", "-n", node.netns, "link", "set", "lo", "up"});
  }
  for (const std::vector<std::string>& command : commands) {
    if (absl::StatusOr<std::string> done = RunCommand(command); !done.ok()) return done.status();
  }
  return absl::OkStatus();
}

absl::Status RealCluster::SetUpDisk(int index) {
  Node& node = nodes_[index];
  const std::string base = absl::StrCat(options_.work_dir, "/node", index);
  node.log_path = absl::StrCat(base, ".log");
  if (options_.disk_image_mb <= 0) {
    node.data_dir = base;
    return absl::OkStatus();
  }
  node.image_path = absl::StrCat(base, ".img");
  node.mount_dir = absl::StrCat(base, ".disk");
  node.data_dir = absl::StrCat(node.mount_dir, "/data");
  std::filesystem::create_directories(node.mount_dir);
  const std::vector<std::vector<std::string>> commands = {
      {"truncate", "-s", absl::StrCat(options_.disk_image_mb, "M"), node.image_path},
      {"mkfs.ext4", "-q", "-F", node.image_path},
      {"mount", "-o", "loop", node.image_path, node.mount_dir}};
  for (const std::vector<std::string>& command : commands) {
    if (absl::StatusOr<std::string> done = RunCommand(command); !done.ok()) {
      if (command[0] == "mount") node.mount_dir.clear();  // Nothing to unmount.
      return done.status();
    }
  }
  return absl::OkStatus();
}

void RealCluster::TearDown() {
  for (int i = 0; i < size(); ++i) Kill(i);
  for (Node& node : nodes_) {
    if (!node.mount_dir.empty()) (void)RunCommand({"umount", "-l", node.mount_dir});
    if (!node.image_path.empty()) std::filesystem::remove(node.image_path);
    if (!node.netns.empty()) (void)RunCommand({"ip", "netns", "del", node.netns});
  }
  if (!bridge_.empty()) (void)RunCommand({"ip", "link", "del", bridge_});
}

std::vector<std::string> RealCluster::seeds() const {
  std::vector<std::string> seeds;
  for (const Node& node : nodes_) seeds.push_back(node.app_address);
  return seeds;
}

std::string RealCluster::Peers() const {
  std::vector<std::string> peers;
  for (int i = 0; i < size(); ++i) {
    peers.push_back(absl::StrCat(i, ":", nodes_[i].ip, ":", nodes_[i].port + 1000));
  }
  return absl::StrJoin(peers, ",");
}

std::vector<std::string> RealCluster::NodeArguments(int index) const {
  const Node& node = nodes_[index];
  std::vector<std::string> arguments = {
      options_.binary,
      absl::StrCat("--node-id=", index),
      absl::StrCat("--port=", node.port),
      absl::StrCat("--http-port=", node.http_port),
      absl::StrCat("--data-dir=", node.data_dir),
      absl::StrCat("--bind=", node.app_address),
      absl::StrCat("--min-free-disk-mb=", options_.min_free_disk_mb)};
  if (size() > 1) arguments.push_back(absl::StrCat("--peers=", Peers()));
  return arguments;
}

absl::Status RealCluster::Start(int index) {
  Node& node = nodes_[index];
  if (node.pid > 0) return absl::FailedPreconditionError("node already running");
  // Everything the child needs is prepared before fork (a threaded parent).
  const std::vector<std::string> arguments = NodeArguments(index);
  std::vector<char*> argv;
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  const std::string netns_path = node.netns.empty() ? "" : absl::StrCat("/run/netns/", node.netns);
  const int log_fd = open(node.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", node.log_path));
  const int netns_fd = netns_path.empty() ? -1 : open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (!netns_path.empty() && netns_fd < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("cannot open ", netns_path));
  }
  const pid_t pid = fork();
  if (pid == 0) {
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) _exit(126);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  if (netns_fd >= 0) close(netns_fd);
  if (pid < 0) return absl::InternalError("fork failed");
  node.pid = pid;
  node.paused = false;
  return absl::OkStatus();
}

void RealCluster::Kill(int index) {
  Node& node = nodes_[index];
  if (node.pid <= 0) return;
  kill(node.pid, SIGKILL);
  if (node.paused) kill(node.pid, SIGCONT);
  int status = 0;
  waitpid(node.pid, &status, 0);
  node.pid = -1;
  node.paused = false;
}

absl::Status RealCluster::Stop(int index) {
  Node& node = nodes_[index];
  if (node.pid <= 0) return absl::OkStatus();
  if (node.paused) Resume(index);
  kill(node.pid, SIGTERM);
  for (int waited_ms = 0; waited_ms < 30'000; waited_ms += 20) {
    int status = 0;
    if (waitpid(node.pid, &status, WNOHANG) == node.pid) {
      node.pid = -1;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
      return absl::InternalError(
          absl::StrCat("node ", index, " stopped with ", DescribeWaitStatus(status)));
    }
    SleepMs(20);
  }
  Kill(index);
  return absl::DeadlineExceededError(absl::StrCat("node ", index, " ignored SIGTERM for 30 s"));
}

void RealCluster::Pause(int index) {
  Node& node = nodes_[index];
  if (node.pid <= 0 || node.paused) return;
  kill(node.pid, SIGSTOP);
  node.paused = true;
}

void RealCluster::Resume(int index) {
  Node& node = nodes_[index];
  if (node.pid <= 0 || !node.paused) return;
  kill(node.pid, SIGCONT);
  node.paused = false;
}

std::string RealCluster::ReapIfExited(int index) {
  Node& node = nodes_[index];
  if (node.pid <= 0) return "";
  int status = 0;
  if (waitpid(node.pid, &status, WNOHANG) != node.pid) return "";
  node.pid = -1;
  node.paused = false;
  return DescribeWaitStatus(status);
}

absl::Status RealCluster::Wipe(int index) {
  Node& node = nodes_[index];
  if (node.pid > 0) return absl::FailedPreconditionError("wipe of a running node");
  std::error_code error;
  std::filesystem::remove_all(node.data_dir, error);
  if (error) return absl::InternalError(absl::StrCat("wipe: ", error.message()));
  return absl::OkStatus();
}

absl::Status RealCluster::FillDisk(int index, int64_t leave_mb) {
  const Node& node = nodes_[index];
  if (node.mount_dir.empty()) return absl::FailedPreconditionError("no disk image");
  struct statvfs stats {};
  if (statvfs(node.mount_dir.c_str(), &stats) != 0) return absl::InternalError("statvfs");
  const int64_t free_bytes = static_cast<int64_t>(stats.f_bavail) * stats.f_frsize;
  const int64_t fill_bytes = free_bytes - leave_mb * 1024 * 1024;
  if (fill_bytes <= 0) return absl::OkStatus();
  const std::string filler = absl::StrCat(node.mount_dir, "/filler");
  const int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError("cannot create the filler file");
  struct stat existing {};
  fstat(fd, &existing);
  const int result = posix_fallocate(fd, existing.st_size, fill_bytes);
  close(fd);
  if (result != 0 && result != ENOSPC) return absl::InternalError("fallocate failed");
  return absl::OkStatus();
}

absl::Status RealCluster::FreeDisk(int index) {
  const Node& node = nodes_[index];
  if (node.mount_dir.empty()) return absl::FailedPreconditionError("no disk image");
  std::error_code error;
  std::filesystem::remove(absl::StrCat(node.mount_dir, "/filler"), error);
  return absl::OkStatus();
}

absl::Status RealCluster::Cut(int from, int to, bool both_ways) {
  if (!has_network_faults()) return absl::UnimplementedError("loopback layout: no cuts");
  for (const auto& [in, blocked] : both_ways
                                       ? std::vector<std::pair<int, int>>{{from, to}, {to, from}}
                                       : std::vector<std::pair<int, int>>{{from, to}}) {
    const std::string target = absl::StrCat(nodes_[blocked].ip, "/32");
    absl::StatusOr<std::string> done =
        RunCommand({"ip", "-n", nodes_[in].netns, "route", "add", "blackhole", target});
    if (!done.ok()) return done.status();
    cuts_.emplace_back(in, blocked);
  }
  return absl::OkStatus();
}

absl::Status RealCluster::Split(const std::set<int>& side_a, const std::set<int>& side_b) {
  for (int a : side_a) {
    for (int b : side_b) {
      if (absl::Status status = Cut(a, b, true); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

absl::Status RealCluster::HealNetwork() {
  absl::Status result = absl::OkStatus();
  for (const auto& [in, blocked] : cuts_) {
    const std::string target = absl::StrCat(nodes_[blocked].ip, "/32");
    absl::StatusOr<std::string> done =
        RunCommand({"ip", "-n", nodes_[in].netns, "route", "del", "blackhole", target});
    if (!done.ok()) result = done.status();
  }
  cuts_.clear();
  return result;
}

absl::StatusOr<std::pair<int, std::string>> RealCluster::Health(int index) const {
  absl::StatusOr<std::string> reply = HttpGet(nodes_[index].http_address, "/health", 2'000);
  if (!reply.ok()) return reply.status();
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  const size_t space = reply->find(' ');
  const size_t body = reply->find("\r\n\r\n");
  if (space == std::string::npos || body == std::string::npos) {
    return absl::DataLossError("malformed HTTP reply");
  }
  return std::make_pair(std::atoi(reply->c_str() + space + 1), reply->substr(body + 4));
}

absl::Status RealCluster::WaitHealthy(int64_t timeout_ms) const {
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (int i = 0; i < size() && all; ++i) {
      if (!running(i) || paused(i)) continue;
      absl::StatusOr<std::pair<int, std::string>> health = Health(i);
      all = health.ok() && health->first == 200;
      if (!all) {
        last = absl::StrCat("node ", i, ": ",
                            health.ok() ? health->second : health.status().ToString());
      }
    }
    if (all) return absl::OkStatus();
    SleepMs(200);
  }
  return absl::DeadlineExceededError(absl::StrCat("cluster not healthy: ", last));
}

}  // namespace unimeter::chaos
