// sim/reference_model.h
//
// ReferenceModel is the simulator's independent metering state machine (simulation.md,
// oracle part 5, invariant S8): fed every partition's canonical log in index order (the
// entries HistoryChecker defines), it keeps per (account, metric, bucket, slice) the value
// product-semantics 3-5 prescribe, with its own bucketing (Abseil civil time), its own
// dimension matching and its own aggregation rules. It shares no code with the production
// apply logic (node/metering): it only reads the log entries' fields.
//
// At quiescence it checks
//   S8   every node's answer to a query of each stored bucket and of every filter
//        combination of the declared dimensions, and of the whole range, equals the model,
//        alert flags included (product-semantics 7.1: evaluated on the unfiltered total
//        after every event, in threshold order); and the nodes' alert logs hold only
//        crossings the model made, none twice on one node, every one on some node;
//   S1, S2, S3 by event key over every metric (the set checks of oracle part 6): each
//        acknowledged event is in the canonical log exactly once, each event whose outcome
//        the client never learned at most once, an event refused with BACKPRESSURE and
//        abandoned never, and the log holds no event that no client sent.
// Deterministic; O(events) memory.
#ifndef UNIMETER_SIM_REFERENCE_MODEL_H_
#define UNIMETER_SIM_REFERENCE_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/status/statusor.h"
#include "node/metering/log_entry.h"
#include "sim/workload_client.h"

namespace unimeter::sim {

// One aggregate as a query answers it (product-semantics 4.1), in the model's own terms.
struct RefValue {
  unsigned __int128 sum = 0;
  uint64_t count = 0;
  uint64_t max = 0;
  uint64_t last_value = 0;
  int64_t last_timestamp_ns = 0;
  uint8_t alert_flags = 0;  // Unfiltered answers only; filtered ones report 0.
  bool operator==(const RefValue&) const = default;
};

// One threshold crossing as an alert record states it (product-semantics 7.2).
struct RefCrossing {
  uint64_t account = 0;
  std::string code;
  uint32_t threshold_index = 0;
  std::string threshold_code;
  uint64_t value = 0;  // SUM clamped to 2^64 - 1.
  int64_t timestamp_ns = 0;
  auto operator<=>(const RefCrossing&) const = default;
};

struct RefFilter {
  std::string key;
  std::string value;
};

// A node's answer to "usage of `code` for `account` over [start_ns, end_ns) matching
// `filters`" (its PartitionState::QueryUsage, adapted by the caller).
using UsageQuery = std::function<absl::StatusOr<RefValue>(uint64_t account, const std::string& code,
                                                          int64_t start_ns, int64_t end_ns,
                                                          const std::vector<RefFilter>& filters)>;

class ReferenceModel {
 public:
  ReferenceModel() = default;

  // Applies the canonical entry at `index` of `partition`. Entries of a partition must come
  // in index order without gaps after the first one seen (a node restored from a snapshot
  // never defines earlier indexes: someone applied them before); a violation is recorded.
  void Apply(uint32_t partition, uint64_t index, const metering::LogEntry& entry);

  // S8 on one node; empty if it holds, else the first difference.
  std::string CheckNode(const UsageQuery& query) const;
  // S1, S2, S3 by key against what clients sent; empty if they hold.
  std::string CheckEventSets(const Ledger& ledger) const;
  // S14 when a client takes `status` for `event` as an acknowledgement: a SYNC ingest is
  // answered after its commit, so the event is in the canonical log by then (a DUPLICATE
  // verdict included: the original was committed). Empty if it is.
  std::string CheckAcknowledged(const Ledger& ledger, const SentEvent& event,
                                protocol::Status status) const;
  // S14 online: from now on every answer a client of `ledger` takes as an acknowledgement
  // is checked (CheckAcknowledged); the first violation is kept. REQUIRES: `ledger`
  // outlives its clients' use of it and this model.
  void WatchAcknowledgements(Ledger& ledger);
  // Empty unless an answer taken as an acknowledgement broke S14.
  const std::string& acknowledged_failure() const { return acknowledged_failure_; }
  // The alert logs of nodes (`logs[i]`: node i's records): each record is a crossing of
  // the model and no node records one crossing more often than the model made it; with
  // `complete` (logs of all nodes given), every crossing is recorded somewhere (at least
  // once: one applied around an owner change may be recorded by two nodes). Empty if so.
  // Callers do not require it after a disk was lost: a replaced disk's alert log is not
  // restored from peers yet (docs/simulation.md).
  std::string CheckAlerts(const std::vector<std::vector<RefCrossing>>& logs, bool complete) const;
  uint64_t crossings() const { return crossings_count_; }

  // Empty unless the canonical log broke the model's assumptions.
  const std::string& failure() const { return failure_; }
  uint64_t events_applied() const { return events_applied_; }

 private:
  struct Schema {
    uint8_t agg_type = 0;
    uint8_t period_type = 0;  // Raw; unknown values behave as FIXED.
    uint8_t billing_cycle_day = 1;
    std::vector<std::pair<std::string, std::vector<std::string>>> dimensions;
    std::vector<metering::Threshold> thresholds;
  };
  struct Aggregate {
    RefValue value;
    bool has_reading = false;           // LATEST: a reading was taken in this bucket.
    absl::btree_set<uint64_t> members;  // COUNT_UNIQUE.
  };
  // (account, code, bucket start, bucket end, slice as "k=v&k=v" in declaration order).
  using AggregateKey = std::tuple<uint64_t, std::string, int64_t, int64_t, std::string>;
  using EventKey = std::tuple<std::string, uint64_t, int64_t, uint64_t>;

  void ApplyEvent(uint32_t partition, const metering::BatchEvent& event);
  // True (and noted) if a registry change of `code` at `version` is not older than the last
  // one the partition applied; zero versions (ordered by the log alone) always are.
  bool NewestRegistryChange(uint32_t partition, const std::string& code,
                            const metering::RegistryVersion& version);
  static void Update(const Schema& schema, const metering::BatchEvent& event, Aggregate& agg);
  // Product-semantics 7.1 on an unfiltered total just updated by `event`.
  void Evaluate(const Schema& schema, const metering::BatchEvent& event, Aggregate& total);

  absl::btree_map<uint32_t, uint64_t> last_index_;  // Per partition.
  // Per partition: code -> schema in force.
  absl::btree_map<uint32_t, absl::btree_map<std::string, Schema>> schemas_;
  // Per partition and code, the (epoch, sequence) of the newest registry change applied:
  // an older one arriving later is ignored (product-semantics 9: one registry).
  absl::btree_map<uint32_t, absl::btree_map<std::string, std::pair<uint64_t, uint32_t>>>
      registry_versions_;
  absl::btree_map<AggregateKey, Aggregate> aggregates_;
  absl::btree_map<EventKey, uint32_t> logged_;        // Event key -> times in the log.
  absl::btree_map<RefCrossing, uint32_t> crossings_;  // Crossing -> times made.
  uint64_t crossings_count_ = 0;
  std::string failure_;
  std::string acknowledged_failure_;
  uint64_t events_applied_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_REFERENCE_MODEL_H_
