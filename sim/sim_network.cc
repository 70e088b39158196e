#include "sim/sim_network.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"

namespace unimeter::sim {
namespace {
constexpr size_t kStreamBufferBytesMax = 16 * 1024 * 1024;
class SimStream;
}  // namespace

// Both ends of one simulated byte stream share a SimPipe. Direction i carries bytes from
// side i to side 1 - i; arrivals per direction never overtake each other (TCP order).
struct SimPipe {
  SimStream* side[2] = {nullptr, nullptr};
  EventOwner owner[2];
  int64_t last_arrival_ns[2] = {0, 0};
};

namespace {

class SimStream final : public Stream {
 public:
  SimStream(SimNetwork& network, std::shared_ptr<SimPipe> pipe, int index,
            NetworkEndpoint* endpoint, uint64_t id, std::string peer_address)
      : network_(network),
        pipe_(std::move(pipe)),
        index_(index),
        endpoint_(endpoint),
        id_(id),
        peer_address_(std::move(peer_address)) {
    pipe_->side[index_] = this;
    local_address_ = SimAddress(pipe_->owner[index_].node, 0);
  }

  ~SimStream() override {
    pipe_->side[index_] = nullptr;
    if (!closed_) {
      SendCloseToPeer();  // A reset: the peer sees the stream close.
    }
  }

  void SetHandler(Handler handler) override {
    handler_ = std::move(handler);
    if (!buffered_.empty() || (peer_closed_ && !close_reported_)) {
      ScheduleOwn([this] { DrainBuffered(); });
    }
  }

  absl::Status Write(absl::Span<const uint8_t> bytes) override {
    if (closed_ || peer_closed_) {
      return absl::FailedPreconditionError("stream closed");
    }
    if (!network_.simulator().IsAlive(pipe_->owner[index_])) {
      return absl::OkStatus();  // The writer's process died (fail-stop): nothing leaves it.
    }
    if (in_flight_bytes_ + bytes.size() > kStreamBufferBytesMax) {
      return absl::ResourceExhaustedError("stream output buffer full");
    }
    if (bytes.empty()) {
      return absl::OkStatus();
    }
    in_flight_bytes_ += bytes.size();
    auto data = std::make_shared<std::vector<uint8_t>>(bytes.begin(), bytes.end());
    const int64_t arrival_ns = NextArrival();
    std::shared_ptr<SimPipe> pipe = pipe_;
    const int target = 1 - index_;
    const uint64_t checksum = Hash64(data->data(), data->size());
    network_.simulator().Schedule(arrival_ns - network_.simulator().now_ns(), pipe->owner[target],
                                  EventKind::kStreamData, checksum, [pipe, target, data] {
                                    if (pipe->side[1 - target] != nullptr) {
                                      pipe->side[1 - target]->in_flight_bytes_ -= data->size();
                                    }
                                    if (pipe->side[target] != nullptr) {
                                      pipe->side[target]->Arrive(*data);
                                    }
                                  });
    return absl::OkStatus();
  }

  size_t pending_write_bytes() const override { return in_flight_bytes_; }

  void Close() override {
    if (closed_) {
      return;
    }
    closed_ = true;
    SendCloseToPeer();
    ScheduleOwn([this] { ReportClose(absl::OkStatus()); });
  }

  // A connection reset (F39): this end closes at once with an error, and bytes still in
  // flight towards it are dropped.
  void Reset() {
    if (close_reported_) {
      return;
    }
    closed_ = true;
    peer_closed_ = true;
    buffered_.clear();
    if (handler_.on_close) {
      ScheduleOwn([this] { ReportClose(absl::UnavailableError("connection reset")); });
    }
  }

  uint64_t id() const override { return id_; }
  std::string peer_address() const override { return peer_address_; }
  std::string local_address() const override { return local_address_; }

 private:
  int64_t NextArrival() {
    const int64_t arrival_ns = std::max(network_.simulator().now_ns() + network_.DrawDelayNs(),
                                        pipe_->last_arrival_ns[index_]);
    pipe_->last_arrival_ns[index_] = arrival_ns;
    return arrival_ns;
  }

  void SendCloseToPeer() {
    std::shared_ptr<SimPipe> pipe = pipe_;
    const int target = 1 - index_;
    const int64_t arrival_ns = NextArrival();
    network_.simulator().Schedule(arrival_ns - network_.simulator().now_ns(), pipe->owner[target],
                                  EventKind::kStreamClose, id_, [pipe, target] {
                                    if (pipe->side[target] != nullptr) {
                                      pipe->side[target]->PeerClosed();
                                    }
                                  });
  }

  void ScheduleOwn(absl::AnyInvocable<void()> action) {
    std::shared_ptr<SimPipe> pipe = pipe_;
    const int index = index_;
    network_.simulator().Schedule(0, pipe->owner[index], EventKind::kStreamData, id_,
                                  [pipe, index, action = std::move(action)]() mutable {
                                    if (pipe->side[index] != nullptr) {
                                      pipe->side[index]->endpoint_->RunCallback(std::move(action));
                                    }
                                  });
  }

  void Arrive(const std::vector<uint8_t>& data) {
    if (closed_) {
      return;
    }
    if (!handler_.on_data) {
      buffered_.insert(buffered_.end(), data.begin(), data.end());
      return;
    }
    endpoint_->RunCallback([this, &data] { handler_.on_data(absl::MakeConstSpan(data)); });
  }

  void PeerClosed() {
    peer_closed_ = true;
    if (handler_.on_close) {
      endpoint_->RunCallback([this] { ReportClose(absl::UnavailableError("closed by peer")); });
    }
  }

  void DrainBuffered() {
    if (!buffered_.empty() && handler_.on_data && !closed_) {
      std::vector<uint8_t> data;
      data.swap(buffered_);
      handler_.on_data(absl::MakeConstSpan(data));
    }
    if (peer_closed_ && handler_.on_close) {
      ReportClose(absl::UnavailableError("closed by peer"));
    }
  }

  void ReportClose(absl::Status reason) {
    if (close_reported_) {
      return;
    }
    close_reported_ = true;
    closed_ = true;
    if (handler_.on_close) {
      auto on_close = std::move(handler_.on_close);
      on_close(std::move(reason));
    }
  }

  SimNetwork& network_;
  std::shared_ptr<SimPipe> pipe_;
  const int index_;
  NetworkEndpoint* endpoint_;
  const uint64_t id_;
  const std::string peer_address_;
  std::string local_address_;
  Handler handler_;
  std::vector<uint8_t> buffered_;
  size_t in_flight_bytes_ = 0;
  bool closed_ = false;
  bool peer_closed_ = false;
  bool close_reported_ = false;
};

}  // namespace

SimNetwork::SimNetwork(Simulator& simulator, uint64_t seed, const NetworkOptions& options)
    : simulator_(simulator), prng_(seed), options_(options) {}

void SimNetwork::Attach(NodeId node, NetworkEndpoint* endpoint) {
  UM_CHECK(endpoint != nullptr);
  UM_CHECK(endpoints_.find(node) == endpoints_.end());
  endpoints_[node] = endpoint;
}

void SimNetwork::Detach(NodeId node, NetworkEndpoint* endpoint) {
  auto it = endpoints_.find(node);
  UM_CHECK(it != endpoints_.end());
  UM_CHECK(it->second == endpoint);
  endpoints_.erase(it);
}

NetworkEndpoint* SimNetwork::endpoint(NodeId node) const {
  auto it = endpoints_.find(node);
  return it == endpoints_.end() ? nullptr : it->second;
}

int64_t SimNetwork::DrawDelayNs() {
  return options_.delay_min_ns +
         static_cast<int64_t>(prng_.Exponential(static_cast<uint64_t>(options_.delay_mean_ns)));
}

void SimNetwork::SetRewrite(NodeId node, Rewrite rewrite) {
  if (rewrite) {
    rewrites_[node] = std::move(rewrite);
  } else {
    rewrites_.erase(node);
  }
}

void SimNetwork::Send(NodeId source, NodeId target, absl::Span<const uint8_t> message) {
  UM_CHECK_NE(source, target);
  UM_CHECK_LE(message.size(), kMessageSizeBytesMax);
  ++stats_.messages_sent;
  stats_.message_bytes_sent += message.size();
  if (IsBlocked(source, target)) {
    ++stats_.messages_blocked;
    return;
  }
  if (prng_.Chance(options_.loss_ppm, 1'000'000)) {
    ++stats_.messages_lost;
    return;
  }
  if (prng_.Chance(options_.corrupt_ppm, 1'000'000)) {
    ++stats_.messages_corrupted;  // The receiver's frame checksum rejects it.
    return;
  }
  uint32_t& in_flight = in_flight_[{source, target}];
  if (in_flight >= options_.path_capacity_messages) {
    ++stats_.messages_overflowed;
    return;
  }
  auto bytes = std::make_shared<std::vector<uint8_t>>(message.begin(), message.end());
  for (NodeId end : {source, target}) {
    if (auto rewrite = rewrites_.find(end); rewrite != rewrites_.end()) rewrite->second(*bytes);
  }
  const uint64_t checksum = Hash64(bytes->data(), bytes->size());
  ScheduleDelivery(source, target, bytes, checksum);
  if (prng_.Chance(options_.duplicate_ppm, 1'000'000) &&
      in_flight < options_.path_capacity_messages) {
    ++stats_.messages_duplicated;
    ScheduleDelivery(source, target, bytes, checksum);
  }
}

void SimNetwork::ScheduleDelivery(NodeId source, NodeId target,
                                  std::shared_ptr<std::vector<uint8_t>> bytes, uint64_t checksum) {
  ++in_flight_[{source, target}];
  int64_t delay_ns = DrawDelayNs();
  if (auto reconnect = reconnected_ns_.find({source, target}); reconnect != reconnected_ns_.end()) {
    if (reconnect->second > simulator_.now_ns()) {
      delay_ns += reconnect->second - simulator_.now_ns();  // Queued until the connection is back.
    } else {
      reconnected_ns_.erase(reconnect);
    }
  }
  const uint64_t reset_generation = ResetGeneration(source, target);
  uint64_t clog_generation = UINT64_MAX;  // Not clogged.
  if (auto clog = clogged_.find({source, target}); clog != clogged_.end()) {
    ++stats_.messages_clogged;
    delay_ns += static_cast<int64_t>(prng_.Exponential(static_cast<uint64_t>(clog->second)));
    clog_generation = clog_generations_[{source, target}];
  }
  simulator_.Schedule(delay_ns, EventOwner{}, EventKind::kMessage,
                      checksum ^ (static_cast<uint64_t>(source) << 48) ^ target,
                      [this, source, target, bytes, clog_generation, reset_generation] {
                        uint32_t& in_flight = in_flight_[{source, target}];
                        UM_CHECK_GT(in_flight, 0u);
                        --in_flight;
                        // In flight when its connection was reset.
                        if (reset_generation != ResetGeneration(source, target)) {
                          ++stats_.messages_reset;
                          return;
                        }
                        // Still queued when the clog ended: the connection reset with it.
                        if (clog_generation != UINT64_MAX &&
                            clog_generations_[{source, target}] != clog_generation) {
                          ++stats_.messages_lost;
                          return;
                        }
                        // A partition that formed while the message was in flight drops it.
                        if (IsBlocked(source, target)) {
                          ++stats_.messages_blocked;
                          return;
                        }
                        // A paused node gets it when it resumes (kernel-buffered).
                        simulator_.RunForNode(target, [this, source, target, bytes] {
                          NetworkEndpoint* endpoint = this->endpoint(target);
                          if (endpoint == nullptr) {
                            ++stats_.messages_lost;
                            return;
                          }
                          ++stats_.messages_delivered;
                          endpoint->DeliverMessage(source, absl::MakeConstSpan(*bytes));
                        });
                      });
}

void SimNetwork::SetBlocked(NodeId source, NodeId target, bool blocked) {
  if (blocked) {
    blocked_.insert({source, target});
  } else {
    blocked_.erase({source, target});
  }
}

bool SimNetwork::IsBlocked(NodeId source, NodeId target) const {
  return blocked_.contains({source, target});
}

void SimNetwork::Isolate(const std::vector<NodeId>& group, const std::vector<NodeId>& nodes) {
  for (NodeId inside : group) {
    for (NodeId other : nodes) {
      if (std::find(group.begin(), group.end(), other) == group.end()) {
        SetBlocked(inside, other, true);
        SetBlocked(other, inside, true);
      }
    }
  }
}

void SimNetwork::ResetStreams(NodeId node) {
  std::vector<std::weak_ptr<SimPipe>> live;
  for (const std::weak_ptr<SimPipe>& weak : pipes_) {
    std::shared_ptr<SimPipe> pipe = weak.lock();
    if (pipe == nullptr) continue;
    live.push_back(pipe);
    if (pipe->owner[0].node != node && pipe->owner[1].node != node) continue;
    for (SimStream* side : pipe->side) {
      if (side != nullptr) side->Reset();
    }
    ++stats_.streams_reset;
  }
  pipes_ = std::move(live);
}

void SimNetwork::ResetConnections(NodeId node, const std::vector<NodeId>& peers,
                                  int64_t reconnect_ns) {
  for (NodeId other : peers) {
    if (other == node) continue;
    for (const std::pair<NodeId, NodeId>& path : {std::pair{node, other}, std::pair{other, node}}) {
      ++reset_generations_[path];
      reconnected_ns_[path] = simulator_.now_ns() + reconnect_ns;
      ++stats_.connections_reset;
    }
  }
}

uint64_t SimNetwork::ResetGeneration(NodeId source, NodeId target) const {
  const auto reset = reset_generations_.find({source, target});
  return reset == reset_generations_.end() ? 0 : reset->second;
}

void SimNetwork::SetClogged(NodeId source, NodeId target, int64_t extra_delay_mean_ns) {
  if (extra_delay_mean_ns > 0) {
    clogged_[{source, target}] = extra_delay_mean_ns;
  } else if (clogged_.erase({source, target}) > 0) {
    ++clog_generations_[{source, target}];
  }
}

void SimNetwork::HealAll() {
  blocked_.clear();
  for (const auto& [path, mean_ns] : clogged_) ++clog_generations_[path];
  clogged_.clear();
}

void SimNetwork::Connect(NodeId client, std::string_view address, ConnectFunction done) {
  NetworkEndpoint* client_endpoint = endpoint(client);
  UM_CHECK(client_endpoint != nullptr);
  NodeId server = 0;
  uint16_t port = 0;
  auto fail = [this, client_endpoint](ConnectFunction done_fn, absl::Status status) {
    simulator_.Schedule(
        DrawDelayNs(), client_endpoint->owner(), EventKind::kStreamConnect, 0,
        [client_endpoint, done_fn = std::move(done_fn), status = std::move(status)]() mutable {
          client_endpoint->RunCallback(
              [&] { done_fn(absl::StatusOr<std::unique_ptr<Stream>>(status)); });
        });
  };
  if (!ParseSimAddress(address, &server, &port)) {
    fail(std::move(done),
         absl::InvalidArgumentError(absl::StrCat("bad address ", std::string(address))));
    return;
  }
  const std::string address_text(address);
  const EventOwner client_owner = client_endpoint->owner();
  simulator_.Schedule(
      DrawDelayNs(), EventOwner{}, EventKind::kStreamConnect, (uint64_t{server} << 16) | port,
      [this, client, client_owner, server, port, address_text, fail,
       done = std::move(done)]() mutable {
        NetworkEndpoint* client_side = endpoint(client);
        NetworkEndpoint* server_side = endpoint(server);
        if (client_side == nullptr || !simulator_.IsAlive(client_owner)) {
          return;  // The client is gone.
        }
        if (server_side == nullptr || IsBlocked(client, server)) {
          fail(std::move(done),
               absl::UnavailableError(absl::StrCat("connection to ", address_text, " refused")));
          return;
        }
        auto pipe = std::make_shared<SimPipe>();
        if (pipes_.size() % 256 == 255) {
          std::erase_if(pipes_, [](const std::weak_ptr<SimPipe>& weak) { return weak.expired(); });
        }
        pipes_.push_back(pipe);
        pipe->owner[0] = client_side->owner();
        pipe->owner[1] = server_side->owner();
        const uint64_t id = ++stats_.streams_opened;
        std::unique_ptr<Stream> server_stream =
            std::make_unique<SimStream>(*this, pipe, 1, server_side, id, SimAddress(client, 0));
        if (!server_side->AcceptStream(port, server_stream)) {
          fail(std::move(done),
               absl::UnavailableError(absl::StrCat("connection to ", address_text, " refused")));
          return;
        }
        auto client_stream =
            std::make_unique<SimStream>(*this, pipe, 0, client_side, id, address_text);
        auto holder = std::make_shared<std::unique_ptr<Stream>>(std::move(client_stream));
        simulator_.Schedule(DrawDelayNs(), client_owner, EventKind::kStreamConnect, id,
                            [client_side, holder, done = std::move(done)]() mutable {
                              client_side->RunCallback([&] {
                                done(absl::StatusOr<std::unique_ptr<Stream>>(std::move(*holder)));
                              });
                            });
      });
}

bool ParseSimAddress(std::string_view address, NodeId* node, uint16_t* port) {
  if (address.size() < 4 || address[0] != 'n') {
    return false;
  }
  const size_t colon = address.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  const char* begin = address.data();
  auto node_result = std::from_chars(begin + 1, begin + colon, *node);
  auto port_result = std::from_chars(begin + colon + 1, begin + address.size(), *port);
  return node_result.ec == std::errc() && node_result.ptr == begin + colon &&
         port_result.ec == std::errc() && port_result.ptr == begin + address.size();
}

std::string SimAddress(NodeId node, uint16_t port) { return absl::StrCat("n", node, ":", port); }

}  // namespace unimeter::sim
