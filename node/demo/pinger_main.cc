// pinger: the demonstration service (node/demo/pinger.h) as a real process over PosixEnv.
//
//   pinger --node-id=0 --port=7101 --data-dir=/tmp/p0 --peers=1:127.0.0.1:8102
//
// Clients send "STATUS\n" to --port; peers talk on --port + 1000. SIGTERM or SIGINT stops
// the loop and exits 0; SIGKILL at any moment loses nothing that was reported committed.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "node/base/flags.h"
#include "node/demo/pinger.h"
#include "node/env/posix/posix_env.h"

namespace unimeter {
namespace {

int Run(int argc, char** argv) {
  int64_t node_id = 0;
  int64_t port = 7101;
  std::string data_dir = "pinger-data";
  std::string peers_text;
  FlagParser flags("pinger", "pinger: Env demonstration service (see node/demo/pinger.h)");
  flags.AddInt("node-id", &node_id, "this node's id, 0-254", 0, 254);
  flags.AddInt("port", &port, "client port; the replication port is port + 1000", 1, 64535);
  flags.AddString("data-dir", &data_dir, "data directory");
  flags.AddString("peers", &peers_text, "other nodes: id:host:replication_port,...");
  if (absl::Status status = flags.Parse(argc, argv); !status.ok()) {
    std::fprintf(stderr, "pinger: %s\n", std::string(status.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  for (const std::string& warning : flags.warnings()) {
    std::fprintf(stderr, "pinger: warning: %s\n", warning.c_str());
  }
  absl::StatusOr<std::vector<PeerAddress>> peers = ParsePeerList(peers_text);
  if (!peers.ok()) {
    std::fprintf(stderr, "pinger: --peers: %s\n", std::string(peers.status().message()).c_str());
    return 2;
  }
  PosixEnvOptions env_options;
  env_options.node_id = static_cast<NodeId>(node_id);
  env_options.data_dir = data_dir;
  env_options.replication_port = static_cast<uint16_t>(port + 1000);
  demo::PingerOptions pinger_options;
  pinger_options.client_port = static_cast<uint16_t>(port);
  for (const PeerAddress& peer : *peers) {
    env_options.peers.push_back({peer.id, peer.host, peer.port});
    pinger_options.peers.push_back(peer.id);
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int signal_fd = signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::perror("pinger: signalfd");
    return 1;
  }

  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(env_options);
  if (!env.ok()) {
    std::fprintf(stderr, "pinger: %s\n", env.status().ToString().c_str());
    return 1;
  }
  auto watch = (*env)->loop().Watch(signal_fd, true, false, [&](uint32_t) {
    (*env)->Log("signal received: stopping");
    (*env)->loop().Stop();
  });
  if (!watch.ok()) {
    std::fprintf(stderr, "pinger: %s\n", watch.status().ToString().c_str());
    return 1;
  }
  int exit_code = 0;
  {
    demo::Pinger pinger(**env, pinger_options);
    absl::Status status = pinger.Start();
    if (!status.ok()) {
      (*env)->Log(absl::StrCat("start failed: ", status.ToString()));
      exit_code = 1;
    } else {
      (*env)->loop().Run();
    }
    (*env)->loop().Unwatch(*watch);
    (*env)->fibers().ShutdownAll();
  }
  env->reset();
  close(signal_fd);
  return exit_code;
}

}  // namespace
}  // namespace unimeter

int main(int argc, char** argv) { return unimeter::Run(argc, argv); }
