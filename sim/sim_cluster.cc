#include "sim/sim_cluster.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter::sim {
namespace {

// Sub-seed tags. Append only: changing one reshuffles that subsystem in every seed.
constexpr uint64_t kTagNetwork = 1;
constexpr uint64_t kTagClocks = 2;
constexpr uint64_t kTagClockNoise = 3;
constexpr uint64_t kTagDiskBase = 0x100;
constexpr uint64_t kTagNodeBase = 0x10000;
constexpr uint64_t kTagClientBase = 0x20000;

int64_t DrawSigned(Prng& prng, int64_t magnitude_max) {
  if (magnitude_max <= 0) {
    return 0;
  }
  const uint64_t span = static_cast<uint64_t>(magnitude_max) * 2 + 1;
  return static_cast<int64_t>(prng.UniformBelow(span)) - magnitude_max;
}

}  // namespace

SimCluster::SimCluster(uint64_t seed, ClusterOptions options, NodeServiceFactory factory)
    : seed_(seed),
      options_(std::move(options)),
      factory_(std::move(factory)),
      simulator_(seed),
      network_(simulator_, SubSeed(seed, kTagNetwork), options_.network) {
  UM_CHECK_GE(options_.node_count, 1u);
  UM_CHECK_LE(options_.node_count, kNodeIdMax + 1);
  Prng clock_prng(SubSeed(seed, kTagClocks));
  Prng noise_prng(SubSeed(seed, kTagClockNoise));
  nodes_.resize(options_.node_count);
  for (NodeId node = 0; node < options_.node_count; ++node) {
    NodeSlot& slot = nodes_[node];
    slot.disk = std::make_unique<SimDisk>(SubSeed(seed, kTagDiskBase + node), options_.disk);
    slot.clock.wall_offset_ns = DrawSigned(clock_prng, options_.clock_offset_ns_max);
    slot.clock.drift_ppm = DrawSigned(clock_prng, options_.drift_ppm_max);
    slot.clock.monotonic_origin_ns =
        static_cast<int64_t>(clock_prng.UniformBelow(1'000'000'000'000));
    if (options_.wall_noise_ns_max > 0) {
      slot.clock.wall_noise_ns = static_cast<int64_t>(
          noise_prng.UniformBelow(static_cast<uint64_t>(options_.wall_noise_ns_max) + 1));
    }
  }
}

SimCluster::~SimCluster() {
  for (NodeId node = 0; node < nodes_.size(); ++node) {
    if (is_up(node)) {
      Crash(node);
    }
  }
  clients_.clear();
  simulator_.DropAll();
}

absl::Status SimCluster::StartAll() {
  absl::Status first_error = absl::OkStatus();
  for (NodeId node = 0; node < nodes_.size(); ++node) {
    if (!is_up(node)) {
      absl::Status status = Restart(node);
      if (first_error.ok()) {
        first_error = std::move(status);
      }
    }
  }
  return first_error;
}

void SimCluster::Crash(NodeId node) {
  UM_CHECK(nodes_.at(node).env != nullptr);
  ++crashes_;
  nodes_.at(node).env->Log("crash");
  TearDown(node);
}

void SimCluster::Exit(NodeId node) {
  NodeSlot& slot = nodes_.at(node);
  UM_CHECK(slot.env != nullptr);
  UM_CHECK(!simulator_.IsPaused(node));
  ++exits_;
  slot.env->Log("exit");
  slot.disk->set_exit_keeps_writes(true);
  TearDown(node);
  slot.disk->set_exit_keeps_writes(false);
}

void SimCluster::TearDown(NodeId node) {
  NodeSlot& slot = nodes_.at(node);
  // Unwind fibers first: their RAII destructors may reference the service.
  slot.env->fibers().ShutdownAll();
  slot.service.reset();
  slot.env.reset();         // Marks the incarnation dead: its pending events are dropped.
  simulator_.Resume(node);  // A paused process can be killed too; what it held is lost.
}

void SimCluster::Pause(NodeId node) {
  UM_CHECK(is_up(node));
  nodes_.at(node).env->Log("paused (SIGSTOP)");
  simulator_.Pause(node);
}

void SimCluster::Resume(NodeId node) {
  if (!simulator_.IsPaused(node)) return;
  simulator_.Resume(node);
  if (is_up(node)) nodes_.at(node).env->Log("resumed (SIGCONT)");
}

void SimCluster::StepWallClock(NodeId node, int64_t delta_ns) {
  NodeSlot& slot = nodes_.at(node);
  slot.clock.wall_offset_ns += delta_ns;
  if (slot.env != nullptr) {
    slot.env->clock().wall_offset_ns += delta_ns;
    slot.env->Log(absl::StrCat("wall clock stepped by ", delta_ns / 1'000'000, " ms"));
  }
}

absl::Status SimCluster::Restart(NodeId node) {
  NodeSlot& slot = nodes_.at(node);
  UM_CHECK(slot.env == nullptr);
  ++slot.incarnation;
  ++restarts_;
  const uint64_t env_seed = SubSeed(seed_, kTagNodeBase + node * 0x1000 + slot.incarnation);
  slot.env = std::make_unique<SimEnv>(simulator_, network_, node, slot.incarnation, slot.disk.get(),
                                      env_seed, slot.clock,
                                      options_.log_sink ? &options_.log_sink : nullptr);
  const uint64_t incarnation = slot.incarnation;
  slot.env->SetFailStopHandler([this, node, incarnation] {
    if (is_up(node) && nodes_[node].incarnation == incarnation) {
      ++fail_stops_;
      Crash(node);
    }
  });
  slot.service = factory_(*slot.env);
  UM_CHECK(slot.service != nullptr);
  absl::Status status = absl::OkStatus();
  slot.env->RunCallback([&] { status = slot.service->Start(); });
  if (!status.ok()) {
    slot.env->Log(absl::StrCat("start failed: ", status.ToString()));
    slot.env->fibers().ShutdownAll();
    slot.service.reset();
    slot.env.reset();
  }
  return status;
}

void SimCluster::WipeDisk(NodeId node) {
  UM_CHECK(!is_up(node));
  nodes_.at(node).disk->WipeAll();
}

void SimCluster::CopyDisk(NodeId node, NodeId other) {
  UM_CHECK(!is_up(node));
  UM_CHECK_NE(node, other);
  nodes_.at(node).disk->CopyDurableFrom(*nodes_.at(other).disk);
}

SimEnv& SimCluster::AddClient() {
  const NodeId id = kClientIdBase + static_cast<NodeId>(clients_.size());
  ClockOptions clock;
  clients_.push_back(std::make_unique<SimEnv>(simulator_, network_, id, 1, nullptr,
                                              SubSeed(seed_, kTagClientBase + id), clock,
                                              options_.log_sink ? &options_.log_sink : nullptr));
  return *clients_.back();
}

}  // namespace unimeter::sim
