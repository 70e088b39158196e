// sim/sim_env.h
//
// SimEnv is the simulator's Env: one per node incarnation (or per simulated client).
// Clocks are virtual time seen through a per-node model (boot offset for the monotonic
// clock; base, offset and linear drift for the wall clock); timers, disk syncs, state
// store commits, messages and stream bytes are events on the shared Simulator heap,
// owned by this incarnation, so they vanish when it crashes. After every callback the
// node's ready fibers run, their pick order drawn from the scheduler sub-seed.
#ifndef UNIMETER_SIM_SIM_ENV_H_
#define UNIMETER_SIM_SIM_ENV_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "node/env/env.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"
#include "sim/simulator.h"
#include "storage/memory_state_store.h"

namespace unimeter::sim {

struct ClockOptions {
  int64_t wall_base_ns = 1'767'225'600'000'000'000;  // 2026-01-01T00:00:00Z
  int64_t wall_offset_ns = 0;                        // Constant error of this node's clock.
  // Rate error of this node's oscillator, parts per million: both its wall clock and its
  // monotonic clock (and so its timers) run this much fast (> 0) or slow (< 0).
  int64_t drift_ppm = 0;
  int64_t monotonic_origin_ns = 0;  // This node's boot-time clock origin.
  // Noisy readings (NTP jitter, a virtualised clock): each wall-clock reading is off by a
  // fresh draw in [-wall_noise_ns, +wall_noise_ns], so consecutive readings may go
  // backwards. The monotonic clock stays exact (it never goes backwards on Linux).
  int64_t wall_noise_ns = 0;
};

// Receives every log line of every simulated node and client.
using LogSink =
    std::function<void(int64_t time_ns, NodeId node, uint64_t incarnation, std::string_view line)>;

class SimEnv final : public Env, public NetworkEndpoint {
 public:
  // `disk` may be null (clients have no disk). `seed` seeds this incarnation's PRNGs.
  SimEnv(Simulator& simulator, SimNetwork& network, NodeId node_id, uint64_t incarnation,
         SimDisk* disk, uint64_t seed, const ClockOptions& clock, LogSink* log_sink);
  ~SimEnv() override;

  // Env
  NodeId node_id() const override { return node_id_; }
  int64_t MonotonicNowNs() override;
  int64_t WallNowNs() override;
  TimerId StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback) override;
  void CancelTimer(TimerId timer) override;
  Prng& prng() override { return prng_; }
  Transport& transport() override { return transport_; }
  absl::StatusOr<std::unique_ptr<Listener>> Listen(uint16_t port,
                                                   AcceptFunction on_accept) override;
  void Connect(std::string_view address, ConnectFunction done) override;
  absl::StatusOr<std::unique_ptr<DiskFile>> OpenDiskFile(std::string_view name) override;
  absl::Status RemoveDiskFile(std::string_view name) override;
  absl::StatusOr<StateStore*> OpenStateStore() override;
  absl::StatusOr<uint64_t> FreeDiskBytes() override;
  FiberScheduler& fibers() override { return fibers_; }
  void Log(std::string_view line) override;
  void FailStop(const absl::Status& cause) override;

  // Called (once, from a world event) after FailStop marked this incarnation dead; the
  // owner (SimCluster) crashes the node there.
  void SetFailStopHandler(absl::AnyInvocable<void()> handler) {
    fail_stop_handler_ = std::move(handler);
  }
  bool failed_stop() const { return failed_stop_; }

  // NetworkEndpoint
  EventOwner owner() const override { return EventOwner{node_id_, incarnation_}; }
  void DeliverMessage(NodeId source, absl::Span<const uint8_t> message) override;
  bool AcceptStream(uint16_t port, std::unique_ptr<Stream>& stream) override;
  void RunCallback(absl::AnyInvocable<void()> action) override;

  uint64_t incarnation() const { return incarnation_; }
  ClockOptions& clock() { return clock_; }

 private:
  class SimTransport final : public Transport {
   public:
    explicit SimTransport(SimEnv& env) : env_(env) {}
    void Send(NodeId target, absl::Span<const uint8_t> message) override;
    void SetReceiver(Receiver receiver) override { receiver_ = std::move(receiver); }
    Receiver& receiver() { return receiver_; }

   private:
    SimEnv& env_;
    Receiver receiver_;
  };
  class SimListener;

  void FireTimer(TimerId timer);

  Simulator& simulator_;
  SimNetwork& network_;
  const NodeId node_id_;
  const uint64_t incarnation_;
  SimDisk* disk_;
  ClockOptions clock_;
  LogSink* log_sink_;
  Prng prng_;
  Prng scheduler_prng_;
  Prng clock_noise_prng_;
  FiberScheduler fibers_;
  SimTransport transport_;
  TimerId next_timer_ = 1;
  absl::btree_map<TimerId, absl::AnyInvocable<void()>> timers_;
  absl::btree_map<uint16_t, AcceptFunction*> listeners_;
  bool failed_stop_ = false;
  absl::AnyInvocable<void()> fail_stop_handler_;
  uint16_t next_ephemeral_port_ = 40000;
  std::unique_ptr<MemoryStateStore> state_store_;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SIM_ENV_H_
