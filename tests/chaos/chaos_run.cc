#include "tests/chaos/chaos_run.h"

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "tests/chaos/raw_connection.h"

namespace unimeter::chaos {
namespace {

constexpr int64_t kHealthyWithinMs = 40'000;
constexpr int64_t kProgressWithinMs = 20'000;
constexpr int kFinalAttempts = 30;

void SleepMs(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string Counts(const std::map<std::string, uint64_t>& counts) {
  std::vector<std::string> parts;
  for (const auto& [name, count] : counts) parts.push_back(absl::StrCat(name, " ", count));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

std::string FaultName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKill:
      return "kill";
    case FaultKind::kPause:
      return "pause";
    case FaultKind::kWipe:
      return "wipe";
    case FaultKind::kGracefulRestart:
      return "graceful-restart";
    case FaultKind::kIsolate:
      return "isolate";
    case FaultKind::kBridge:
      return "bridge";
    case FaultKind::kOneWay:
      return "one-way";
    case FaultKind::kHalves:
      return "halves";
    case FaultKind::kFillDisk:
      return "fill-disk";
    case FaultKind::kKillMajority:
      return "kill-majority";
  }
  return "?";
}

std::vector<FaultStep> FixedSchedule(const Capabilities& capabilities) {
  std::vector<FaultStep> steps = {
      {FaultKind::kKill, -1, -1, 6'000, 6'000},
      {FaultKind::kPause, -1, -1, 8'000, 6'000},
      {FaultKind::kWipe, 1, -1, 1'000, 10'000},
      {FaultKind::kGracefulRestart, 2, -1, 1'000, 6'000},
  };
  if (capabilities.network_faults) {
    steps.push_back({FaultKind::kIsolate, -1, -1, 8'000, 6'000});
    steps.push_back({FaultKind::kBridge, 0, 1, 6'000, 5'000});
    steps.push_back({FaultKind::kOneWay, -1, -1, 6'000, 5'000});
    if (capabilities.nodes % 2 == 0) steps.push_back({FaultKind::kHalves, 0, -1, 6'000, 6'000});
  }
  if (capabilities.disk_images) steps.push_back({FaultKind::kFillDisk, 0, -1, 8'000, 5'000});
  steps.push_back({FaultKind::kKillMajority, -1, -1, 4'000, 10'000});
  return steps;
}

FaultStep RandomStep(const Capabilities& capabilities, std::mt19937_64* random) {
  std::vector<FaultKind> kinds = {FaultKind::kKill, FaultKind::kPause, FaultKind::kWipe,
                                  FaultKind::kGracefulRestart, FaultKind::kKillMajority};
  if (capabilities.network_faults) {
    kinds.insert(kinds.end(), {FaultKind::kIsolate, FaultKind::kBridge, FaultKind::kOneWay});
    if (capabilities.nodes % 2 == 0) kinds.push_back(FaultKind::kHalves);
  }
  if (capabilities.disk_images) kinds.push_back(FaultKind::kFillDisk);
  FaultStep step;
  step.kind = kinds[(*random)() % kinds.size()];
  step.node = static_cast<int>((*random)() % (capabilities.nodes + 1)) - 1;  // -1: an owner.
  step.other = static_cast<int>((*random)() % capabilities.nodes);
  step.hold_ms = 1'000 + static_cast<int64_t>((*random)() % 10'000);
  step.settle_ms = 3'000 + static_cast<int64_t>((*random)() % 7'000);
  return step;
}

std::string ChaosSummary::ToString() const {
  std::string text = absl::StrCat("faults: ", Counts(faults), "\noperations: ", Counts(operations),
                                  "\nevents: ", Counts(events), "\nreads checked: ", reads_checked,
                                  ", keys checked on every node: ", keys_checked, "\n");
  absl::StrAppend(&text, "anomalies: ", anomalies.size(), "\n");
  for (const std::string& anomaly : anomalies) absl::StrAppend(&text, "  ANOMALY ", anomaly, "\n");
  return text;
}

ChaosRun::ChaosRun(ChaosOptions options)
    : options_(std::move(options)), started_(std::chrono::steady_clock::now()) {}

ChaosRun::~ChaosRun() {
  workload_.reset();  // Clients first, then the processes.
  cluster_.reset();
}

double ChaosRun::ElapsedS() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

void ChaosRun::Log(const std::string& line) const {
  std::printf("[chaos %7.1fs] %s\n", ElapsedS(), line.c_str());
  std::fflush(stdout);
}

Capabilities ChaosRun::capabilities() const {
  return Capabilities{options_.cluster.nodes, cluster_->has_network_faults(),
                      cluster_->has_disk_images()};
}

absl::Status ChaosRun::SetUp() {
  absl::StatusOr<std::unique_ptr<RealCluster>> cluster = RealCluster::Create(options_.cluster);
  if (!cluster.ok()) return cluster.status();
  cluster_ = std::move(*cluster);
  for (int node = 0; node < cluster_->size(); ++node) {
    if (absl::Status started = cluster_->Start(node); !started.ok()) return started;
  }
  Log(absl::StrCat("started ", cluster_->size(), " nodes: ", absl::StrJoin(cluster_->seeds(), " "),
                   cluster_->has_network_faults() ? " (one network namespace each)" : " (loopback)",
                   cluster_->has_disk_images() ? ", own disk images" : ""));
  if (absl::Status healthy = cluster_->WaitHealthy(60'000); !healthy.ok()) return healthy;
  options_.workload.seeds = cluster_->seeds();
  workload_ = std::make_unique<Workload>(options_.workload);
  if (absl::Status registered = workload_->RegisterMetrics(60'000); !registered.ok()) {
    return registered;
  }
  workload_->Start();
  Log("cluster healthy, metrics registered, workload started");
  return absl::OkStatus();
}

namespace {
// A numeric field of a /health body; -1 if absent.
int64_t HealthField(const std::string& body, const std::string& name) {
  const size_t at = body.find(absl::StrCat("\"", name, "\":"));
  return at == std::string::npos ? -1 : std::atoll(body.c_str() + at + name.size() + 3);
}
}  // namespace

// /health of a member that is ready, owns about 1/N of the partitions and serves them all.
bool ChaosRun::ServesItsShare(int node) const {
  absl::StatusOr<std::pair<int, std::string>> health = cluster_->Health(node);
  if (!health.ok() || health->first != 200) return false;
  const int64_t owned = HealthField(health->second, "partitions_owned");
  return owned >= 256 / cluster_->size() - 2 &&
         HealthField(health->second, "partitions_serving") == owned;
}

int64_t ChaosRun::WaitOwnsNothing(int node, int64_t within_ms) const {
  for (int64_t waited_ms = 0; waited_ms <= within_ms; waited_ms += 200) {
    absl::StatusOr<std::pair<int, std::string>> health = cluster_->Health(node);
    if (health.ok() && HealthField(health->second, "partitions_owned") == 0) return waited_ms;
    SleepMs(200);
  }
  return -1;
}

void ChaosRun::RollingRestart(int64_t timeout_ms) {
  for (int node = 0; node < cluster_->size(); ++node) {
    ++faults_["rolling-restart"];
    Log(absl::StrCat("rolling restart: stopping node ", node));
    if (absl::Status stopped = cluster_->Stop(node); !stopped.ok()) {
      workload_->history().AddAnomaly(absl::StrCat("rolling restart: ", stopped.ToString()));
    }
    if (absl::Status started = cluster_->Start(node); !started.ok()) {
      workload_->history().AddAnomaly(absl::StrCat("rolling restart: ", started.ToString()));
      return;
    }
    int64_t waited_ms = 0;
    for (; waited_ms < timeout_ms && !ServesItsShare(node); waited_ms += 200) SleepMs(200);
    if (waited_ms >= timeout_ms) {
      workload_->history().AddAnomaly(absl::StrCat("rolling restart: node ", node,
                                                   " did not serve its share again within ",
                                                   timeout_ms, " ms"));
    }
    Log(absl::StrCat("rolling restart: node ", node, " serves its share again after ", waited_ms,
                     " ms"));
    ReapCrashes();
  }
}

void ChaosRun::Run(int64_t ms) {
  SleepMs(ms);
  ReapCrashes();
}

int ChaosRun::ResolveNode(int node) {
  if (node >= 0) return node % cluster_->size();
  client::ClientOptions client_options;
  client_options.seeds = cluster_->seeds();
  client_options.initial_map_timeout_ms = 5'000;
  absl::StatusOr<std::unique_ptr<client::Client>> admin = client::Client::Connect(client_options);
  for (int i = 0; admin.ok() && i < cluster_->size(); ++i) {
    absl::StatusOr<client::ClusterStatus> status =
        (*admin)->GetClusterStatus(cluster_->app_address(i));
    if (status.ok() && status->partitions[0].leader < cluster_->size()) {
      return status->partitions[0].leader;
    }
  }
  return 0;
}

void ChaosRun::Apply(const FaultStep& step) {
  const int node = ResolveNode(step.node);
  const int other = step.other >= 0 && step.other % cluster_->size() != node
                        ? step.other % cluster_->size()
                        : (node + 1) % cluster_->size();
  ++faults_[FaultName(step.kind)];
  Log(absl::StrCat("fault ", FaultName(step.kind), " node ", node,
                   step.kind == FaultKind::kBridge || step.kind == FaultKind::kOneWay
                       ? absl::StrCat(" / ", other)
                       : "",
                   ", hold ", step.hold_ms, " ms"));
  Inject(step, node, other);
  if (step.kind == FaultKind::kFillDisk) {
    // Found by the node's disk check (every second), told to the leader, handed over.
    constexpr int64_t kHandoverWithinMs = 5'000;
    const int64_t hold_ms = std::max(step.hold_ms, kHandoverWithinMs);
    const int64_t took_ms = WaitOwnsNothing(node, kHandoverWithinMs);
    if (took_ms < 0) {
      workload_->history().AddAnomaly(absl::StrCat("fill-disk: node ", node,
                                                   " still owns partitions ", kHandoverWithinMs,
                                                   " ms after its disk filled"));
    } else {
      Log(absl::StrCat("fill-disk: node ", node, " handed its partitions over in ", took_ms,
                       " ms"));
    }
    const int64_t waited_ms = took_ms < 0 ? kHandoverWithinMs : took_ms;
    SleepMs(std::max<int64_t>(hold_ms - waited_ms, 0));
  } else {
    SleepMs(step.hold_ms);
  }
  ReapCrashes();
  Recover(step, node, other);
  Log(absl::StrCat("recovered from ", FaultName(step.kind)));
  CheckProgress(absl::StrCat("after ", FaultName(step.kind)), kProgressWithinMs);
  SleepMs(step.settle_ms);
  ReapCrashes();
}

void ChaosRun::Inject(const FaultStep& step, int node, int other) {
  const int n = cluster_->size();
  absl::Status status = absl::OkStatus();
  switch (step.kind) {
    case FaultKind::kKill:
      cluster_->Kill(node);
      break;
    case FaultKind::kPause:
      cluster_->Pause(node);
      break;
    case FaultKind::kWipe:
      cluster_->Kill(node);
      status = cluster_->Wipe(node);
      break;
    case FaultKind::kGracefulRestart:
      status = cluster_->Stop(node);
      break;
    case FaultKind::kIsolate: {
      std::set<int> rest;
      for (int i = 0; i < n; ++i) {
        if (i != node) rest.insert(i);
      }
      status = cluster_->Split({node}, rest);
      workload_->BeginProbe(cluster_->app_address(node));
      break;
    }
    case FaultKind::kBridge:
      status = cluster_->Cut(node, other, true);
      break;
    case FaultKind::kOneWay:
      status = cluster_->Cut(node, other, false);
      break;
    case FaultKind::kHalves: {
      std::set<int> a, b;
      for (int i = 0; i < n; ++i) (i < n / 2 ? a : b).insert(i);
      status = cluster_->Split(a, b);
      break;
    }
    case FaultKind::kFillDisk:
      status = cluster_->FillDisk(node, options_.cluster.min_free_disk_mb / 2);
      break;
    case FaultKind::kKillMajority:
      for (int i = 0; i < n / 2 + 1; ++i) cluster_->Kill((node + i) % n);
      break;
  }
  if (!status.ok()) {
    workload_->history().AddAnomaly(
        absl::StrCat("nemesis: ", FaultName(step.kind), " failed: ", status.ToString()));
  }
}

void ChaosRun::Recover(const FaultStep& step, int node, int /*other*/) {
  absl::Status status = absl::OkStatus();
  switch (step.kind) {
    case FaultKind::kPause:
      cluster_->Resume(node);
      break;
    case FaultKind::kIsolate:
      workload_->ProbeHealing();
      status = cluster_->HealNetwork();
      workload_->JoinProbe();
      break;
    case FaultKind::kBridge:
    case FaultKind::kOneWay:
    case FaultKind::kHalves:
      status = cluster_->HealNetwork();
      break;
    case FaultKind::kFillDisk:
      status = cluster_->FreeDisk(node);
      break;
    case FaultKind::kKill:
    case FaultKind::kWipe:
    case FaultKind::kGracefulRestart:
    case FaultKind::kKillMajority:
      break;
  }
  for (int i = 0; i < cluster_->size() && status.ok(); ++i) {
    if (!cluster_->running(i)) status = cluster_->Start(i);
  }
  if (!status.ok()) {
    workload_->history().AddAnomaly(absl::StrCat("nemesis: recovery from ", FaultName(step.kind),
                                                 " failed: ", status.ToString()));
  }
}

void ChaosRun::CheckProgress(const std::string& when, int64_t within_ms) {
  const auto started = std::chrono::steady_clock::now();
  if (absl::Status healthy = cluster_->WaitHealthy(kHealthyWithinMs); !healthy.ok()) {
    workload_->history().AddAnomaly(absl::StrCat("liveness ", when, ": not healthy within ",
                                                 kHealthyWithinMs, " ms: ", healthy.message()));
    return;
  }
  const uint64_t before = workload_->acked_requests();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(within_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (workload_->acked_requests() > before + 10) {
      Log(absl::StrCat("healthy and making progress ",
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count(),
                       " ms ", when));
      return;
    }
    SleepMs(100);
  }
  workload_->history().AddAnomaly(absl::StrCat(
      "liveness ", when, ": fewer than 10 writes acked in ", within_ms, " ms after healthy"));
}

void ChaosRun::ReapCrashes() {
  for (int i = 0; i < cluster_->size(); ++i) {
    const std::string how = cluster_->ReapIfExited(i);
    if (how.empty()) continue;
    const std::string line =
        absl::StrCat("node ", i, " exited by itself (", how, "); see ", cluster_->log_path(i));
    Log(line);
    workload_->history().AddAnomaly(line);  // A crash is a defect, whatever the fault.
  }
}

ChaosSummary ChaosRun::Finish() {
  Log("stopping the workload");
  workload_->Stop();
  ReapCrashes();
  absl::Status healed = cluster_->HealNetwork();
  for (int i = 0; i < cluster_->size(); ++i) {
    if (cluster_->has_disk_images()) (void)cluster_->FreeDisk(i);
    cluster_->Resume(i);
    if (!cluster_->running(i) && healed.ok()) healed = cluster_->Start(i);
  }
  if (healed.ok()) healed = cluster_->WaitHealthy(kHealthyWithinMs);
  if (!healed.ok()) {
    workload_->history().AddAnomaly(absl::StrCat("final heal failed: ", healed.ToString()));
  }
  FinalCheck();
  ChaosSummary summary;
  summary.faults = faults_;
  summary.operations = workload_->Counters();
  summary.events = workload_->history().EventCounts();
  summary.reads_checked = workload_->history().reads_checked();
  summary.keys_checked = workload_->history().keys_checked();
  summary.anomalies = workload_->history().anomalies();
  return summary;
}

// Every written key on every node, retried until all nodes answer alike (replicas catch up
// after healing) or the attempts run out; the last attempt's answers are checked.
void ChaosRun::FinalCheck() {
  History& history = workload_->history();
  for (int metric = 0; metric <= workload_->probe_metric(); ++metric) {
    const std::vector<uint64_t> accounts = history.WrittenAccounts(metric);
    if (accounts.empty()) continue;
    const std::string code = Workload::MetricCode(metric, workload_->probe_metric());
    std::vector<std::vector<absl::StatusOr<unsigned __int128>>> answers;
    for (int attempt = 1; attempt <= kFinalAttempts; ++attempt) {
      answers.clear();
      bool settled = true;
      for (int node = 0; node < cluster_->size(); ++node) {
        answers.push_back(QuerySums(cluster_->app_address(node), code, accounts, 10'000));
        for (size_t k = 0; k < accounts.size(); ++k) {
          settled = settled && answers[node][k].ok() && *answers[node][k] == *answers[0][k];
        }
      }
      if (settled) break;
      SleepMs(1'000);
    }
    for (size_t k = 0; k < accounts.size(); ++k) {
      std::vector<unsigned __int128> totals;
      for (int node = 0; node < cluster_->size(); ++node) {
        if (!answers[node][k].ok()) {
          history.AddAnomaly(absl::StrCat("final: node ", node, " does not answer ", code,
                                          " account ", accounts[k], ": ",
                                          answers[node][k].status().ToString()));
          totals.push_back(answers[0][k].ok() ? *answers[0][k] : 0);
          continue;
        }
        totals.push_back(*answers[node][k]);
      }
      history.CheckFinal(metric, accounts[k], totals);
    }
  }
  Log(absl::StrCat("final check done: ", history.keys_checked(), " keys on ", cluster_->size(),
                   " nodes, ", history.anomaly_count(), " anomalies"));
}

}  // namespace unimeter::chaos
