#include "sim/sim_env.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/base/check.h"

namespace unimeter::sim {

class SimEnv::SimListener final : public Listener {
 public:
  SimListener(SimEnv& env, uint16_t port, AcceptFunction on_accept)
      : env_(env), port_(port), on_accept_(std::move(on_accept)) {
    env_.listeners_[port_] = &on_accept_;
  }
  ~SimListener() override { env_.listeners_.erase(port_); }
  uint16_t port() const override { return port_; }

 private:
  SimEnv& env_;
  const uint16_t port_;
  AcceptFunction on_accept_;
};

SimEnv::SimEnv(Simulator& simulator, SimNetwork& network, NodeId node_id, uint64_t incarnation,
               SimDisk* disk, uint64_t seed, const ClockOptions& clock, LogSink* log_sink)
    : simulator_(simulator),
      network_(network),
      node_id_(node_id),
      incarnation_(incarnation),
      disk_(disk),
      clock_(clock),
      log_sink_(log_sink),
      prng_(SubSeed(seed, 1)),
      scheduler_prng_(SubSeed(seed, 2)),
      clock_noise_prng_(SubSeed(seed, 3)),
      fibers_(&scheduler_prng_),
      transport_(*this) {
  simulator_.SetAlive(node_id_, incarnation_, true);
  network_.Attach(node_id_, this);
}

SimEnv::~SimEnv() {
  // From here on, every pending event of this incarnation is dropped unrun.
  simulator_.SetAlive(node_id_, incarnation_, false);
  fibers_.ShutdownAll();
  state_store_.reset();
  network_.Detach(node_id_, this);
}

int64_t SimEnv::MonotonicNowNs() {
  const int64_t now_ns = simulator_.now_ns();
  const int64_t drift_ns =
      static_cast<int64_t>(static_cast<__int128>(now_ns) * clock_.drift_ppm / 1'000'000);
  return clock_.monotonic_origin_ns + now_ns + drift_ns;
}

int64_t SimEnv::WallNowNs() {
  const int64_t now_ns = simulator_.now_ns();
  const int64_t drift_ns =
      static_cast<int64_t>(static_cast<__int128>(now_ns) * clock_.drift_ppm / 1'000'000);
  int64_t noise_ns = 0;
  if (clock_.wall_noise_ns > 0) {
    noise_ns = static_cast<int64_t>(clock_noise_prng_.UniformBelow(
                   static_cast<uint64_t>(2 * clock_.wall_noise_ns + 1))) -
               clock_.wall_noise_ns;
  }
  return clock_.wall_base_ns + now_ns + clock_.wall_offset_ns + drift_ns + noise_ns;
}

TimerId SimEnv::StartTimer(int64_t delay_ns, absl::AnyInvocable<void()> callback) {
  UM_CHECK_GE(delay_ns, 0);
  const TimerId timer = next_timer_++;
  timers_.emplace(timer, std::move(callback));
  // `delay_ns` is on this node's drifting clock: in true time that is delay / (1 + drift),
  // rounded up (plus 2 ns for the clock's own rounding) so that the timer never fires
  // before the node's monotonic clock has advanced by `delay_ns`.
  const int64_t true_delay_ns =
      clock_.drift_ppm == 0 || delay_ns == 0
          ? delay_ns
          : static_cast<int64_t>(
                (static_cast<__int128>(delay_ns) * 1'000'000 + (1'000'000 + clock_.drift_ppm) - 1) /
                (1'000'000 + clock_.drift_ppm)) +
                2;
  simulator_.Schedule(true_delay_ns, owner(), EventKind::kTimer, timer,
                      [this, timer] { FireTimer(timer); });
  return timer;
}

void SimEnv::CancelTimer(TimerId timer) { timers_.erase(timer); }

void SimEnv::FireTimer(TimerId timer) {
  auto it = timers_.find(timer);
  if (it == timers_.end()) {
    return;  // Cancelled.
  }
  auto callback = std::move(it->second);
  timers_.erase(it);
  RunCallback(std::move(callback));
}

void SimEnv::RunCallback(absl::AnyInvocable<void()> action) {
  UM_CHECK(!fibers_.in_fiber());
  action();
  fibers_.RunReady();
}

void SimEnv::SimTransport::Send(NodeId target, absl::Span<const uint8_t> message) {
  if (env_.failed_stop_) return;  // The process is gone.
  env_.network_.Send(env_.node_id_, target, message);
}

void SimEnv::FailStop(const absl::Status& cause) {
  if (failed_stop_) return;
  Log(absl::StrCat("fail-stop: ", cause.ToString()));
  failed_stop_ = true;
  simulator_.SetAlive(node_id_, incarnation_, false);
  if (fail_stop_handler_) {
    simulator_.Schedule(0, EventOwner{}, EventKind::kLifecycle, node_id_,
                        std::move(fail_stop_handler_));
  }
}

void SimEnv::DeliverMessage(NodeId source, absl::Span<const uint8_t> message) {
  if (!transport_.receiver()) {
    return;  // Not listening yet: the message is lost, as on a real node still starting.
  }
  RunCallback([&] { transport_.receiver()(source, message); });
}

absl::StatusOr<std::unique_ptr<Listener>> SimEnv::Listen(uint16_t port, AcceptFunction on_accept) {
  if (port == 0) {
    while (listeners_.contains(next_ephemeral_port_)) {
      ++next_ephemeral_port_;
    }
    port = next_ephemeral_port_++;
  }
  if (listeners_.contains(port)) {
    return absl::AlreadyExistsError(absl::StrCat("port ", port, " already in use"));
  }
  return std::unique_ptr<Listener>(new SimListener(*this, port, std::move(on_accept)));
}

bool SimEnv::AcceptStream(uint16_t port, std::unique_ptr<Stream>& stream) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) {
    return false;
  }
  AcceptFunction* on_accept = it->second;
  RunCallback([&] { (*on_accept)(std::move(stream)); });
  return true;
}

void SimEnv::Connect(std::string_view address, ConnectFunction done) {
  network_.Connect(node_id_, address, std::move(done));
}

absl::StatusOr<std::unique_ptr<DiskFile>> SimEnv::OpenDiskFile(std::string_view name) {
  if (disk_ == nullptr) {
    return absl::FailedPreconditionError("this simulated process has no disk");
  }
  if (name.empty() || name.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad disk file name '", std::string(name), "'"));
  }
  return std::unique_ptr<DiskFile>(new SimDiskFile(
      simulator_, owner(), *disk_, std::string(name),
      [this](absl::AnyInvocable<void()> action) { RunCallback(std::move(action)); }));
}

absl::Status SimEnv::RemoveDiskFile(std::string_view name) {
  if (disk_ == nullptr) {
    return absl::FailedPreconditionError("this simulated process has no disk");
  }
  if (!disk_->durable_files().contains(std::string(name))) {
    return absl::NotFoundError(absl::StrCat("no disk file '", std::string(name), "'"));
  }
  disk_->RemoveFile(std::string(name));
  return absl::OkStatus();
}

absl::StatusOr<StateStore*> SimEnv::OpenStateStore() {
  if (disk_ == nullptr) {
    return absl::FailedPreconditionError("this simulated process has no disk");
  }
  if (state_store_ == nullptr) {
    state_store_ = std::make_unique<MemoryStateStore>(
        disk_->state_medium(), [this](absl::AnyInvocable<void()> complete) {
          simulator_.Schedule(disk_->DrawSyncLatencyNs(), owner(), EventKind::kStoreCommit, 0,
                              [this, complete = std::move(complete)]() mutable {
                                RunCallback(std::move(complete));
                              });
        });
  }
  return state_store_.get();
}

absl::StatusOr<uint64_t> SimEnv::FreeDiskBytes() {
  if (disk_ == nullptr) {
    return absl::FailedPreconditionError("this simulated process has no disk");
  }
  const uint64_t used = disk_->used_bytes();
  const uint64_t capacity = disk_->options().capacity_bytes;
  return used >= capacity ? 0 : capacity - used;
}

void SimEnv::Log(std::string_view line) {
  if (log_sink_ != nullptr && *log_sink_) {
    (*log_sink_)(simulator_.now_ns(), node_id_, incarnation_, line);
  }
}

}  // namespace unimeter::sim
