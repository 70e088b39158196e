#include "tests/chaos/workload.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "tests/chaos/raw_connection.h"

namespace unimeter::chaos {
namespace {

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

uint64_t NextRandom(uint64_t* state) {  // splitmix64
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t WallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The outcome of an ingest call by the client library's contract (client/client.h).
Outcome ClassifyIngest(const absl::StatusOr<client::IngestResult>& result, bool sync) {
  if (result.ok()) {
    if (result->unknown_metric_replies > 0) return Outcome::kFailed;
    return sync ? Outcome::kAcked : Outcome::kMaybe;
  }
  return result.status().code() == absl::StatusCode::kUnknown ? Outcome::kMaybe : Outcome::kFailed;
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAcked:
      return "ok";
    case Outcome::kMaybe:
      return "unknown";
    case Outcome::kFailed:
      return "failed";
  }
  return "?";
}

}  // namespace

std::string Workload::MetricCode(int metric, int metrics) {
  return metric == metrics ? "chaos_probe" : absl::StrCat("chaos_", metric);
}

Workload::Workload(WorkloadOptions options)
    : options_(std::move(options)),
      history_(options_.metrics + 1, uint64_t{kPartitions} * options_.accounts_per_partition),
      base_timestamp_ns_(WallNowNs()),
      cursors_(kPartitions),
      probe_rounds_(kPartitions, 0) {}

Workload::~Workload() {
  Stop();
  probe_healed_ = true;
  probe_stop_ = true;
  if (probe_.joinable()) probe_.join();
}

absl::Status Workload::RegisterMetrics(int64_t timeout_ms) {
  client::ClientOptions client_options;
  client_options.seeds = options_.seeds;
  client_options.initial_map_timeout_ms = timeout_ms;
  absl::StatusOr<std::unique_ptr<client::Client>> admin = client::Client::Connect(client_options);
  if (!admin.ok()) return admin.status();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (int metric = 0; metric <= options_.metrics; ++metric) {
    client::MetricSchema schema;
    schema.code = MetricCode(metric, options_.metrics);
    schema.agg_type = 1;  // SUM
    absl::Status put = (*admin)->PutMetric(schema);
    while (!put.ok() && std::chrono::steady_clock::now() < deadline) {
      SleepMs(200);
      put = (*admin)->PutMetric(schema);
    }
    if (!put.ok()) return put;
  }
  return absl::OkStatus();
}

void Workload::Start() {
  stop_ = false;
  const int writers = options_.sync_writers + options_.async_writers;
  for (int writer = 0; writer < writers; ++writer) {
    threads_.emplace_back([this, writer] { RunWriter(writer, writer < options_.sync_writers); });
  }
  for (int i = 0; i < options_.routed_readers; ++i) {
    threads_.emplace_back([this, i] { RunReader(options_.random_seed * 1000 + i, true); });
  }
  for (int i = 0; i < options_.direct_readers; ++i) {
    threads_.emplace_back([this, i] { RunReader(options_.random_seed * 2000 + i, false); });
  }
}

void Workload::Stop() {
  stop_ = true;
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

std::vector<uint64_t> Workload::PartitionAccounts(int partition) const {
  std::vector<uint64_t> accounts;
  for (int j = 0; j < options_.accounts_per_partition; ++j) {
    accounts.push_back(static_cast<uint64_t>(partition) + uint64_t{kPartitions} * j);
  }
  return accounts;
}

void Workload::Count(const std::string& name, uint64_t delta) {
  std::lock_guard<std::mutex> lock(counters_mutex_);
  counters_[name] += delta;
}

std::map<std::string, uint64_t> Workload::Counters() const {
  std::lock_guard<std::mutex> lock(counters_mutex_);
  return counters_;
}

void Workload::RunWriter(int writer, bool sync) {
  std::unique_ptr<client::Client> client = ConnectClient(absl::StrCat("writer ", writer));
  if (client == nullptr) return;
  const int writers = options_.sync_writers + options_.async_writers;
  const std::string kind = sync ? "sync" : "async";
  const int owned = (kPartitions - writer + writers - 1) / writers;  // writer, writer + W, ...
  for (int k = 0; !stop_; k = (k + 1) % owned) {
    const int this_partition = writer + k * writers;
    PartitionCursor& cursor = cursors_[this_partition];
    if (cursor.metric >= options_.metrics) {
      Count("writes skipped: key space used up");
      SleepMs(10);
      continue;
    }
    const std::vector<uint64_t> accounts = PartitionAccounts(this_partition);
    std::vector<client::Event> events;
    for (uint64_t account : accounts) {
      events.push_back(client::Event{account, MetricCode(cursor.metric, options_.metrics),
                                     uint64_t{1} << cursor.round,
                                     base_timestamp_ns_ + next_timestamp_ns_++});
    }
    history_.Sent(cursor.metric, accounts, cursor.round);
    const absl::StatusOr<client::IngestResult> result =
        client->Ingest(events, sync ? client::DeliveryMode::kSync : client::DeliveryMode::kAsync);
    const Outcome outcome = ClassifyIngest(result, sync);
    history_.Resolved(cursor.metric, accounts, cursor.round, outcome);
    Count(absl::StrCat(kind, " ", result.ok() ? "ok" : OutcomeName(outcome)));
    if (!result.ok()) Count(absl::StrCat(kind, " error ", result.status().code()));
    if (result.ok()) ++acked_requests_;
    if (!sync && options_.async_requests_per_second > 0) {
      SleepMs(1'000 / options_.async_requests_per_second);
    }
    if (++cursor.round == kRoundsPerKey) {
      cursor.round = 0;
      ++cursor.metric;
    }
  }
}

bool Workload::PickWrittenKey(uint64_t* random_state, int* metric, uint64_t* account) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int partition = static_cast<int>(NextRandom(random_state) % kPartitions);
    const int used = cursors_[partition].metric;  // Racy read: only a hint.
    *metric =
        static_cast<int>(NextRandom(random_state) % (std::min(used, options_.metrics - 1) + 1));
    *account = partition +
               uint64_t{kPartitions} * (NextRandom(random_state) % options_.accounts_per_partition);
    if (history_.Bits(*metric, *account).sent != 0) return true;
  }
  return false;
}

// Reads a random written key, through the client library (routed to the owner) or straight
// from a random node, and checks every answer against what was acknowledged before it.
void Workload::RunReader(uint64_t seed, bool routed) {
  std::unique_ptr<client::Client> client = routed ? ConnectClient("routed reader") : nullptr;
  if (routed && client == nullptr) return;
  const std::string kind = routed ? "routed read" : "direct read";
  uint64_t random_state = seed;
  while (!stop_) {
    int metric = 0;
    uint64_t account = 0;
    if (!PickWrittenKey(&random_state, &metric, &account)) {
      SleepMs(5);
      continue;
    }
    const size_t node = NextRandom(&random_state) % options_.seeds.size();
    const std::string code = MetricCode(metric, options_.metrics);
    const uint64_t acked_before = history_.Bits(metric, account).acked;
    absl::StatusOr<unsigned __int128> sum = absl::UnavailableError("");
    if (routed) {
      absl::StatusOr<client::AggValue> value = client->Usage(account, code, 0, INT64_MAX);
      sum = value.ok() ? absl::StatusOr<unsigned __int128>(value->sum) : value.status();
    } else {
      sum = QuerySums(options_.seeds[node], code, {account}, 3'000)[0];
    }
    if (!sum.ok()) {
      Count(absl::StrCat(kind, " failed"));
      SleepMs(20);
      continue;
    }
    Count(absl::StrCat(kind, " ok"));
    history_.CheckRead(metric, account, acked_before, *sum,
                       routed ? kind : absl::StrCat("read at node ", node));
  }
}

std::unique_ptr<client::Client> Workload::ConnectClient(const std::string& who) {
  client::ClientOptions client_options;
  client_options.seeds = options_.seeds;
  client_options.request_timeout_ms = options_.request_timeout_ms;
  client_options.initial_map_timeout_ms = 60'000;
  absl::StatusOr<std::unique_ptr<client::Client>> connected =
      client::Client::Connect(client_options);
  if (!connected.ok()) {
    history_.AddAnomaly(absl::StrCat(who, " cannot connect: ", connected.status().ToString()));
    return nullptr;
  }
  return *std::move(connected);
}

void Workload::BeginProbe(const std::string& address) {
  probe_stop_ = false;
  probe_healed_ = false;
  probe_ = std::thread([this, address] { RunProbe(address); });
}

void Workload::ProbeHealing() {
  probe_healed_ = true;
  probe_stop_ = true;
}

void Workload::JoinProbe() {
  if (probe_.joinable()) probe_.join();
}

void Workload::RunProbe(std::string address) {
  absl::StatusOr<std::unique_ptr<RawConnection>> connection =
      RawConnection::Connect(address, 2'000);
  if (!connection.ok()) {
    Count("probe cannot connect");
    return;
  }
  std::map<uint32_t, ProbeRequest> outstanding;  // By request id.
  uint32_t request_id = 0;
  int partition = 0;
  auto last_sent = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto drain_until = std::chrono::steady_clock::time_point::max();
  bool connected = true;
  while (connected && (!probe_stop_ || !outstanding.empty())) {
    if (probe_stop_ && drain_until == std::chrono::steady_clock::time_point::max()) {
      drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(10);  // Healed.
    }
    if (std::chrono::steady_clock::now() > drain_until) break;
    if (!probe_stop_ && outstanding.size() < 32 &&
        std::chrono::steady_clock::now() - last_sent >= std::chrono::milliseconds(200)) {
      last_sent = std::chrono::steady_clock::now();
      ProbeRequest request = NextProbeRequest(&partition);
      connected = SendProbe(**connection, ++request_id, request);
      outstanding.emplace(request_id, std::move(request));
      continue;
    }
    absl::StatusOr<protocol::ResponseFrame> reply = (*connection)->Receive(50);
    if (!reply.ok()) {
      connected = absl::IsDeadlineExceeded(reply.status());
      continue;
    }
    auto it = outstanding.find(reply->header.request_id);
    if (it == outstanding.end()) continue;
    ResolveProbe(address, it->second, static_cast<protocol::Status>(reply->header.status));
    outstanding.erase(it);
  }
  for (const auto& [id, request] : outstanding) {
    history_.Resolved(probe_metric(), request.accounts, request.round, Outcome::kMaybe);
    Count("probe no reply");
  }
}

Workload::ProbeRequest Workload::NextProbeRequest(int* partition) {
  while (probe_rounds_[*partition] >= kRoundsPerKey) *partition = (*partition + 1) % kPartitions;
  ProbeRequest request{PartitionAccounts(*partition), probe_rounds_[*partition]++};
  *partition = (*partition + 1) % kPartitions;
  return request;
}

bool Workload::SendProbe(RawConnection& connection, uint32_t request_id,
                         const ProbeRequest& request) {
  const std::string code = MetricCode(probe_metric(), options_.metrics);
  std::vector<protocol::IngestEvent> events;
  for (uint64_t account : request.accounts) {
    events.push_back(protocol::IngestEvent{code, account, base_timestamp_ns_ + next_timestamp_ns_++,
                                           uint64_t{1} << request.round});
  }
  std::string frame;
  if (!protocol::AppendIngestRequest(protocol::Opcode::kIngestSync, protocol::kPartitionAuto,
                                     request_id, events, &frame)
           .ok()) {
    std::abort();  // Our own well-formed request.
  }
  history_.Sent(probe_metric(), request.accounts, request.round);
  Count("probe sent");
  return connection.Send(frame).ok();
}

// OK before healing is the anomaly this probe exists for; BACKPRESSURE means nothing was
// accepted; anything else (ERR) leaves the outcome unknown.
void Workload::ResolveProbe(const std::string& address, const ProbeRequest& request,
                            protocol::Status status) {
  const bool ok = status == protocol::Status::kOk;
  if (ok && !probe_healed_) {
    history_.AddAnomaly(absl::StrCat("node ", address, " acknowledged a synchronous write (",
                                     request.accounts.size(), " events, round ", request.round,
                                     ") while cut off from the majority"));
  }
  const Outcome outcome =
      ok ? Outcome::kAcked
         : (status == protocol::Status::kBackpressure ? Outcome::kFailed : Outcome::kMaybe);
  history_.Resolved(probe_metric(), request.accounts, request.round, outcome);
  Count(ok ? "probe ok" : absl::StrCat("probe status ", static_cast<int>(status)));
}

}  // namespace unimeter::chaos
