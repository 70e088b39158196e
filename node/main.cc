// unimeter: the metering server.
//
//   unimeter --node-id=0 --port=7001 --http-port=9090 --data-dir=data [--bind=host:port]
//            [--peers=id:host:repl_port,...] [--retention-days=90]
//            [--dedup-window-seconds=300] [--min-free-disk-mb=256]
//
// Flags and environment follow product-semantics §14: flags win over MY_ADDR,
// METRICS_PORT and RETENTION_DAYS; unknown flags warn and are ignored. SIGTERM or SIGINT
// stops accepting, finishes in-flight requests, checkpoints and exits 0.
#include <malloc.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "node/base/flags.h"
#include "node/env/posix/posix_env.h"
#include "node/server/node_server.h"

namespace unimeter {
namespace {

constexpr char kUsage[] =
    "unimeter: self-hosted usage-metering server\n\n"
    "  unimeter --node-id=0 --port=7001 --http-port=9090 --data-dir=data";

struct Config {
  int64_t node_id = 0;
  int64_t port = 7001;
  int64_t http_port = 9090;
  std::string data_dir = "data";
  std::string peers;
  std::vector<PeerAddress> peer_list;  // --peers without this node.
  std::string bind;
  int64_t retention_days = 90;
  int64_t dedup_window_seconds = 300;
  int64_t min_free_disk_mb = 256;
};

void Fail(const std::string& message) { std::fprintf(stderr, "unimeter: %s\n", message.c_str()); }

// Parses flags, then fills unset ones from the environment. Returns false (after printing
// why) if the node must not start; sets *exit_code.
bool ParseConfig(int argc, char** argv, Config* config, int* exit_code) {
  FlagParser flags("unimeter", kUsage);
  flags.AddInt("node-id", &config->node_id, "this node's id, 0-254, unique in the cluster", 0, 254);
  flags.AddInt("port", &config->port, "binary protocol port (replication: port + 1000)", 1, 64535);
  flags.AddInt("http-port", &config->http_port,
               "HTTP port for /health /metrics /v1/events; 0 disables", 0, 65535);
  flags.AddString("data-dir", &config->data_dir, "data directory");
  flags.AddString("peers", &config->peers, "the other members: id:host:repl_port,...");
  flags.AddString("bind", &config->bind, "advertised address host[:port] (<= 23 bytes)");
  flags.AddInt("retention-days", &config->retention_days, "days of data kept", 1, 36500);
  flags.AddInt("dedup-window-seconds", &config->dedup_window_seconds,
               "window for deduplicating client-timestamped events", 1, 30 * 86400);
  flags.AddInt("min-free-disk-mb", &config->min_free_disk_mb,
               "writes get BACKPRESSURE below this much free disk", 0, 1 << 30);
  if (absl::Status status = flags.Parse(argc, argv); !status.ok()) {
    Fail(std::string(status.message()));
    *exit_code = 2;
    return false;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    *exit_code = 0;
    return false;
  }
  for (const std::string& warning : flags.warnings()) {
    Fail("warning: " + warning);
  }
  const std::pair<const char*, const char*> environment[] = {
      {"MY_ADDR", "bind"}, {"METRICS_PORT", "http-port"}, {"RETENTION_DAYS", "retention-days"}};
  for (const auto& [variable, flag] : environment) {
    const char* value = std::getenv(variable);
    if (value != nullptr && !flags.WasSet(flag)) {
      if (absl::Status status = flags.Set(flag, value); !status.ok()) {
        Fail(absl::StrCat(variable, ": ", status.message()));
        *exit_code = 2;
        return false;
      }
    }
  }
  for (const char* ignored : {"WAL_SEGMENT_SIZE_MB", "SYNC_GROUP_DELAY_US"}) {
    if (std::getenv(ignored) != nullptr) {
      Fail(absl::StrCat("warning: ", ignored, " is accepted and ignored"));
    }
  }
  if (!config->bind.empty() && config->bind.find(':') == std::string::npos) {
    config->bind = absl::StrCat(config->bind, ":", config->port);
  }
  if (config->bind.size() > 23) {
    Fail(absl::StrCat("--bind=", config->bind, " is longer than 23 bytes"));
    *exit_code = 2;
    return false;
  }
  absl::StatusOr<std::vector<PeerAddress>> peers = ParsePeerList(config->peers);
  if (!peers.ok()) {
    Fail(absl::StrCat("--peers: ", peers.status().message()));
    *exit_code = 2;
    return false;
  }
  // A member list naming this node too is accepted: the entry for ourselves is dropped.
  for (const PeerAddress& peer : *peers) {
    if (peer.id == static_cast<uint32_t>(config->node_id)) continue;
    if (peer.port <= 1000) {
      Fail(absl::StrCat("--peers: node ", peer.id, " has replication port ", peer.port,
                        "; it must be its application port + 1000"));
      *exit_code = 2;
      return false;
    }
    config->peer_list.push_back(peer);
  }
  if (!config->peer_list.empty() && config->port + 1000 > 65535) {
    Fail("--port: the replication port (--port + 1000) must be below 65536");
    *exit_code = 2;
    return false;
  }
  return true;
}

int Run(int argc, char** argv) {
  // No glibc fast bins: every allocation of 1 KiB or more (a request's buffers) made glibc
  // consolidate them, 6-10 % of a loaded node's samples; small blocks still go through
  // the per-thread cache. Measured: 2-8 % more events/s, no more memory
  // (docs/benchmarks.md, 2026-11-27 third session).
  mallopt(M_MXFAST, 0);
  Config config;
  int exit_code = 0;
  if (!ParseConfig(argc, argv, &config, &exit_code)) {
    return exit_code;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("unimeter: signalfd");
    return 1;
  }
  PosixEnvOptions env_options;
  env_options.node_id = static_cast<NodeId>(config.node_id);
  env_options.data_dir = config.data_dir;
  if (!config.peer_list.empty()) {
    env_options.replication_port = static_cast<uint16_t>(config.port + 1000);
    for (const PeerAddress& peer : config.peer_list) {
      env_options.peers.push_back(PosixEnvOptions::Peer{peer.id, peer.host, peer.port});
    }
  }
  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(env_options);
  if (!env.ok()) {
    Fail(env.status().ToString());
    return 1;
  }
  NodeServerOptions options;
  options.port = static_cast<uint16_t>(config.port);
  options.http_port = static_cast<uint16_t>(config.http_port);
  options.advertised_address = config.bind;
  options.retention_days = config.retention_days;
  options.min_free_disk_mb = config.min_free_disk_mb;
  options.engine.store.dedup_window_ns = config.dedup_window_seconds * 1'000'000'000;
  options.peers = config.peer_list;
  {
    NodeServer server(**env, options);
    if (absl::Status status = server.Start(); !status.ok()) {
      (*env)->Log(absl::StrCat("start failed: ", status.ToString()));
      return 1;
    }
    bool stopping = false;
    auto watch = (*env)->loop().Watch(signal_fd, true, false, [&](uint32_t) {
      signalfd_siginfo info;
      while (read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
      }
      if (stopping) {
        return;
      }
      stopping = true;
      (*env)->Log("signal received: graceful shutdown");
      server.Shutdown([&] { (*env)->loop().Stop(); });
    });
    if (!watch.ok()) {
      Fail(watch.status().ToString());
      return 1;
    }
    (*env)->loop().Run();
    (*env)->loop().Unwatch(*watch);
    (*env)->fibers().ShutdownAll();
    (*env)->Log("stopped");
  }
  env->reset();
  close(signal_fd);
  return 0;
}

}  // namespace
}  // namespace unimeter

int main(int argc, char** argv) { return unimeter::Run(argc, argv); }
