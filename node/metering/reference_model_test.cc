// Goal: invariants S2 and S8 (simulation.md section 6): aggregates, alert crossings and
// dedup decisions are exactly a function of the log, as an obviously correct model computes
// them.
//
// Method: a seeded generator (node/base/random.h, fixed seeds) produces long random logs --
// schema puts and deletes, event batches with random accounts, metrics, dimensions,
// operations, timestamps (server-stamped, late, negative, repeated), idempotency keys and
// corrections, retention sweeps, clock jumps backwards -- and drives them through
// PartitionState (owner + a replica fed through the entry encoding + periodic snapshot
// round trips) and through the Model below. The Model shares NO code with the state
// machine: its own calendar walk (month by month from 1970), slices keyed by the exact set
// of (key, value) pairs instead of hashes, std::map everywhere, linear scans. After every
// step every kind of query is compared. A failure names the seed and the step.
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "node/base/random.h"
#include "node/metering/partition_state.h"

namespace unimeter::metering {
namespace {

using u128 = unsigned __int128;
constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kDay = 86'400 * kSec;
constexpr uint32_t kPartition = 5;
const std::vector<uint64_t> kAccounts = {5, 261, 517};
const std::vector<std::string> kCodes = {"m0", "m1", "m2", "unk"};
const std::vector<std::string> kKeys = {"k0", "k1", "k2"};
const std::vector<std::string> kValues = {"a", "b", "c"};  // Shared by every key on purpose.

// ---- The model's own calendar: walk months from 1970. ----

bool ModelLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
int64_t ModelMonthDays(int64_t y, int m) {
  const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && ModelLeap(y) ? 29 : days[m - 1];
}
// Nanoseconds at 00:00 UTC of (y, m, d); y >= 1969.
int64_t ModelMidnight(int64_t y, int m, int64_t d) {
  int64_t days = 0;
  if (y < 1970) {
    for (int mm = 12; mm >= m; --mm) days -= ModelMonthDays(1969, mm);
  } else {
    for (int64_t yy = 1970; yy < y; ++yy) days += ModelLeap(yy) ? 366 : 365;
    for (int mm = 1; mm < m; ++mm) days += ModelMonthDays(y, mm);
  }
  return (days + d - 1) * kDay;
}

std::pair<int64_t, int64_t> ModelBucket(uint8_t period, uint8_t cycle_day, int64_t t) {
  if (t < 0) t = 0;
  if (period == 2) return {t / kDay * kDay, t / kDay * kDay + kDay};
  if (period != 1) {
    const int64_t p = 30 * kDay;
    return {t / p * p, t / p * p + p};
  }
  // Find the calendar month containing t, then step back to the cycle day.
  int64_t y = 1970;
  int m = 1;
  while (ModelMidnight(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) <= t) {
    if (++m == 13) m = 1, ++y;
  }
  if (ModelMidnight(y, m, cycle_day) > t) {
    if (--m == 0) m = 12, --y;
  }
  const int64_t ny = m == 12 ? y + 1 : y;
  const int nm = m == 12 ? 1 : m + 1;
  return {ModelMidnight(y, m, cycle_day), ModelMidnight(ny, nm, cycle_day)};
}

// ---- The model. ----

using Pairs = std::set<std::pair<std::string, std::string>>;

struct ModelAgg {
  u128 sum = 0;
  uint64_t count = 0, max = 0, last_value = 0, flags = 0;
  int64_t last_ts = 0;
  bool has_last = false;
  std::set<uint64_t> members;
};

struct ModelBucketState {
  std::map<Pairs, ModelAgg> slices;  // The empty set is the unfiltered total.
};

struct Model {
  int64_t dedup_window = 0, idem_window = 0;
  std::map<std::string, MetricSchema> schemas;
  // (account, code, start, end) -> bucket; map order = (start, end) within a series.
  std::map<std::tuple<uint64_t, std::string, int64_t, int64_t>, ModelBucketState> buckets;
  int64_t accepted_log_time = INT64_MIN;
  std::map<std::tuple<std::string, uint64_t, int64_t, uint64_t, bool>, int64_t> content;
  std::map<std::pair<uint64_t, uint64_t>, std::pair<int64_t, std::string>> idem;
  std::vector<AlertCrossing> crossings;

  static std::string Payload(const Event& e) {
    std::ostringstream out;
    out << e.metric_code << '|' << e.account_id << '|' << e.timestamp_ns << '|' << e.value << '|'
        << int(e.operation) << '|' << e.negative_correction;
    for (const auto& p : e.properties) out << '|' << p.key << '=' << p.value;
    return out.str();
  }

  // The owner's decisions for one part.
  std::vector<EventOutcome> Decide(const std::vector<Event>& events, int64_t now) {
    const int64_t t = std::max(accepted_log_time, now);
    std::vector<EventOutcome> outcomes;
    bool stored = false;
    for (const Event& e : events) {
      EventOutcome outcome = EventOutcome::kStored;
      if (e.idempotency_key) {
        auto key = std::make_pair(e.idempotency_key->high, e.idempotency_key->low);
        auto it = idem.find(key);
        if (it != idem.end() && t - it->second.first < idem_window) {
          outcome =
              it->second.second == Payload(e) ? EventOutcome::kDuplicate : EventOutcome::kConflict;
        } else {
          idem[key] = {t, Payload(e)};
        }
      } else if (e.timestamp_ns != 0) {
        auto key = std::make_tuple(e.metric_code, e.account_id, e.timestamp_ns, e.value,
                                   e.negative_correction);
        auto it = content.find(key);
        if (it != content.end() && t - it->second < dedup_window) {
          outcome = EventOutcome::kDuplicate;
        } else {
          content[key] = t;
        }
      }
      stored |= outcome == EventOutcome::kStored;
      outcomes.push_back(outcome);
    }
    if (stored) accepted_log_time = t;
    return outcomes;
  }

  static uint64_t Current(AggregationType type, const ModelAgg& a) {
    if (type == AggregationType::kSum) return a.sum > UINT64_MAX ? UINT64_MAX : uint64_t(a.sum);
    if (type == AggregationType::kMax) return a.max;
    if (type == AggregationType::kLatest) return a.last_value;
    return a.count;
  }

  static void Update(AggregationType type, const BatchEvent& e, ModelAgg& a) {
    if (e.negative_correction && type != AggregationType::kSum) return;
    switch (type) {
      case AggregationType::kCount:
        a.count++;
        break;
      case AggregationType::kSum:
        if (e.negative_correction) {
          a.sum = a.sum >= e.value ? a.sum - e.value : 0;
        } else {
          a.sum = a.sum + e.value < a.sum ? ~u128{0} : a.sum + e.value;
        }
        break;
      case AggregationType::kMax:
        a.max = std::max(a.max, e.value);
        break;
      case AggregationType::kLatest:
        if (!a.has_last || e.timestamp_ns > a.last_ts) {
          a.has_last = true, a.last_ts = e.timestamp_ns, a.last_value = e.value;
        }
        break;
      case AggregationType::kCountUnique:
        if (e.operation == OperationType::kRemove) {
          a.members.erase(e.value);
        } else {
          a.members.insert(e.value);
        }
        a.count = a.members.size();
        break;
    }
  }

  void ApplyEvent(const BatchEvent& e, uint64_t offset) {
    auto schema_it = schemas.find(e.metric_code);
    if (!e.registered || schema_it == schemas.end()) return;
    const MetricSchema& s = schema_it->second;
    const auto [start, end] = ModelBucket(s.period_type, s.billing_cycle_day, e.timestamp_ns);
    ModelBucketState& bucket = buckets[{e.account_id, e.metric_code, start, end}];
    std::vector<std::pair<std::string, std::string>> matched;
    for (const Dimension& d : s.dimensions) {
      for (const Property& p : e.properties) {
        if (p.key != d.key) continue;
        if (std::find(d.values.begin(), d.values.end(), p.value) != d.values.end()) {
          matched.push_back({p.key, p.value});
        }
        break;
      }
    }
    for (size_t mask = 0; mask < (size_t{1} << matched.size()); ++mask) {
      Pairs pairs;
      for (size_t i = 0; i < matched.size(); ++i) {
        if (mask >> i & 1) pairs.insert(matched[i]);
      }
      Update(s.agg_type, e, bucket.slices[pairs]);
    }
    ModelAgg& total = bucket.slices[{}];
    const uint64_t current = Current(s.agg_type, total);
    uint64_t flags = 0;
    for (size_t i = 0; i < s.thresholds.size(); ++i) {
      const bool was_set = (total.flags >> i) & 1;
      if (current < s.thresholds[i].value) continue;
      flags |= uint64_t{1} << i;
      if (!was_set || s.thresholds[i].recurring) {
        crossings.push_back({e.account_id, s.code, uint32_t(i), s.thresholds[i].code, current,
                             e.timestamp_ns, offset});
      }
    }
    total.flags = flags;
  }

  void Apply(const LogEntry& entry) {
    switch (entry.kind()) {
      case LogEntryKind::kEventBatch:
        for (size_t i = 0; i < entry.batch()->events.size(); ++i) {
          ApplyEvent(entry.batch()->events[i], entry.batch()->first_offset + i);
        }
        break;
      case LogEntryKind::kMetricPut:
        schemas[entry.put().schema->code()] = entry.put().schema->schema();
        break;
      case LogEntryKind::kMetricDelete:
        schemas.erase(entry.del().code);
        break;
      case LogEntryKind::kRetentionSweep:
        for (auto it = buckets.begin(); it != buckets.end();) {
          it = std::get<3>(it->first) <= entry.retention().cutoff_ns ? buckets.erase(it)
                                                                     : std::next(it);
        }
        break;
      case LogEntryKind::kEpochStart:
      case LogEntryKind::kAlertsRecorded:
      case LogEntryKind::kAlertCopies:
        break;  // Ownership and alert bookkeeping only.
    }
  }

  static void Merge(const ModelAgg& from, AggValue& into, bool with_flags) {
    into.sum = into.sum + from.sum < into.sum ? ~u128{0} : into.sum + from.sum;
    into.count += from.count;
    into.max = std::max(into.max, from.max);
    if (from.has_last && (!into.has_last || from.last_ts > into.last_timestamp_ns)) {
      into.has_last = true, into.last_timestamp_ns = from.last_ts;
      into.last_value = from.last_value;
    }
    if (with_flags) into.alert_flags |= from.flags;
  }

  // Merges slice `pairs` over overlapping buckets; returns whether any bucket had it.
  bool MergeRange(uint64_t account, const std::string& code, int64_t start, int64_t end,
                  const Pairs& pairs, AggValue& out) const {
    const int64_t low = std::max<int64_t>(start, 0), high = std::max<int64_t>(end - 1, 0);
    bool found = false;
    for (const auto& [key, bucket] : buckets) {
      const auto& [a, c, s, e] = key;
      if (a != account || c != code || s > high || e <= low) continue;
      auto it = bucket.slices.find(pairs);
      if (it == bucket.slices.end()) continue;
      Merge(it->second, out, pairs.empty());
      found = true;
    }
    return found;
  }

  std::optional<AggValue> Usage(uint64_t account, const std::string& code, int64_t start,
                                int64_t end, const std::vector<Filter>& filters) const {
    std::set<std::string> keys;
    for (const Filter& f : filters) keys.insert(f.key);
    if (filters.size() > 4 || keys.size() != filters.size()) return std::nullopt;
    AggValue out;
    auto it = schemas.find(code);
    if (end <= start || it == schemas.end()) return out;
    Pairs pairs;
    for (const Filter& f : filters) {
      bool declared = false;
      for (const Dimension& d : it->second.dimensions) {
        declared |= d.key == f.key &&
                    std::find(d.values.begin(), d.values.end(), f.value) != d.values.end();
      }
      if (!declared) return out;
      pairs.insert({f.key, f.value});
    }
    MergeRange(account, code, start, end, pairs, out);
    return out;
  }

  AggValue Realtime(uint64_t account, const std::string& code, int64_t now) const {
    AggValue out;
    auto it = schemas.find(code);
    if (it == schemas.end()) return out;
    const auto [s, e] = ModelBucket(it->second.period_type, it->second.billing_cycle_day, now);
    auto b = buckets.find({account, code, s, e});
    if (b != buckets.end() && b->second.slices.count({})) Merge(b->second.slices.at({}), out, true);
    return out;
  }

  std::optional<std::vector<BreakdownCell>> Breakdown(uint64_t account, const std::string& code,
                                                      int64_t start, int64_t end,
                                                      const std::vector<std::string>& keys) const {
    auto it = schemas.find(code);
    if (keys.empty() || keys.size() > 4 || it == schemas.end()) return std::nullopt;
    std::vector<const Dimension*> dims;
    for (const std::string& k : keys) {
      const Dimension* found = nullptr;
      for (const Dimension& d : it->second.dimensions) {
        if (d.key == k) found = &d;
      }
      for (const Dimension* d : dims) {
        if (d->key == k) return std::nullopt;
      }
      if (found == nullptr) return std::nullopt;
      dims.push_back(found);
    }
    std::vector<BreakdownCell> cells;
    if (end <= start) return cells;
    // Enumerate by counting through mixed-radix numbers, last key fastest.
    size_t total = 1;
    for (const Dimension* d : dims) total *= d->values.size();
    for (size_t n = 0; n < total && cells.size() < 614; ++n) {
      BreakdownCell cell;
      Pairs pairs;
      size_t rest = n;
      std::vector<Filter> reversed;
      for (size_t k = dims.size(); k-- > 0;) {
        const std::string& v = dims[k]->values[rest % dims[k]->values.size()];
        rest /= dims[k]->values.size();
        reversed.push_back({dims[k]->key, v});
        pairs.insert({dims[k]->key, v});
      }
      cell.pairs.assign(reversed.rbegin(), reversed.rend());
      if (MergeRange(account, code, start, end, pairs, cell.value)) cells.push_back(cell);
    }
    return cells;
  }
};

std::string Describe(const AggValue& v) {
  std::ostringstream out;
  out << "{sum_hi=" << v.sum_high() << " sum_lo=" << v.sum_low() << " count=" << v.count
      << " max=" << v.max << " last=" << v.last_value << "@" << v.last_timestamp_ns
      << (v.has_last ? "" : "(none)") << " flags=" << v.alert_flags << "}";
  return out.str();
}

std::string Describe(const std::vector<BreakdownCell>& cells) {
  std::ostringstream out;
  for (const BreakdownCell& c : cells) {
    for (const Filter& f : c.pairs) out << f.key << "=" << f.value << ",";
    out << Describe(c.value) << "; ";
  }
  return out.str();
}

// ---- The generator and the driver. ----

class Driver {
 public:
  explicit Driver(uint64_t seed)
      : seed_(seed),
        prng_(seed),
        options_{kPartition, int64_t(prng_.UniformRange(1, 600)) * kSec,
                 int64_t(prng_.UniformRange(600, 7200)) * kSec},
        owner_(options_),
        replica_(std::make_unique<PartitionState>(options_)) {
    model_.dedup_window = options_.dedup_window_ns;
    model_.idem_window = options_.idempotency_window_ns;
    now_ = ModelMidnight(2024, 1, 20) + int64_t(prng_.UniformBelow(40 * kDay));
  }

  void Run(int steps) {
    for (step_ = 0; step_ < steps && !::testing::Test::HasFailure(); ++step_) {
      Step();
      CheckQueries();
    }
  }

 private:
  std::string Where() const {
    std::ostringstream out;
    out << "seed=" << seed_ << " step=" << step_ << " now=" << now_;
    return out.str();
  }

  void Append(LogEntry entry) { queue_.push_back(std::move(entry)); }

  void ApplyQueued(size_t count) {
    for (size_t i = 0; i < count && !queue_.empty(); ++i) {
      const LogEntry entry = queue_.front();
      queue_.erase(queue_.begin());
      ++index_;
      const size_t crossings_before = model_.crossings.size();
      ApplyOutput owner_output;
      owner_.Apply(index_, entry, &owner_output);
      model_.Apply(entry);
      absl::StatusOr<LogEntry> decoded = DecodeLogEntry(EncodeLogEntry(entry));
      ASSERT_TRUE(decoded.ok()) << Where();
      ApplyOutput replica_output;
      replica_->Apply(index_, *decoded, &replica_output);
      const std::vector<AlertCrossing> expected(model_.crossings.begin() + crossings_before,
                                                model_.crossings.end());
      ASSERT_EQ(owner_output.crossings.size(), expected.size()) << Where();
      for (size_t c = 0; c < expected.size(); ++c) {
        ASSERT_EQ(owner_output.crossings[c], expected[c]) << Where() << " crossing " << c;
      }
      ASSERT_EQ(replica_output.crossings, owner_output.crossings) << Where();
      ASSERT_EQ(replica_->Digest(), owner_.Digest()) << Where();
    }
  }

  MetricSchema RandomSchema(const std::string& code) {
    MetricSchema s;
    s.code = code;
    s.agg_type = static_cast<AggregationType>(prng_.UniformBelow(5));
    const uint8_t periods[] = {0, 1, 1, 2, 2, 3, 7};
    s.period_type = periods[prng_.UniformBelow(7)];
    s.billing_cycle_day = static_cast<uint8_t>(prng_.UniformBelow(32));
    for (const std::string& key : kKeys) {
      if (!prng_.Chance(1, 2)) continue;
      Dimension d{key, {}};
      for (const std::string& v : kValues) {
        if (prng_.Chance(2, 3)) d.values.push_back(v);
      }
      s.dimensions.push_back(d);
    }
    for (uint64_t i = prng_.UniformBelow(4); i > 0; --i) {
      s.thresholds.push_back({"t" + std::to_string(i), prng_.UniformBelow(30), prng_.Chance(1, 3)});
    }
    return s;
  }

  Event RandomEvent(size_t position) {
    if (!recent_.empty() && prng_.Chance(1, 5)) {  // A retry of an earlier event.
      Event e = recent_[prng_.UniformBelow(recent_.size())];
      if (prng_.Chance(1, 4) && e.idempotency_key) e.value += 1;  // Key reuse, new payload.
      auto schema = model_.schemas.find(e.metric_code);
      if (schema == model_.schemas.end() || schema->second.agg_type != AggregationType::kSum) {
        e.negative_correction = false;  // Only valid for registered SUM metrics.
      }
      return e;
    }
    Event e;
    e.account_id = kAccounts[prng_.UniformBelow(kAccounts.size())];
    e.metric_code = kCodes[prng_.UniformBelow(kCodes.size())];
    e.value = prng_.Chance(1, 50) ? UINT64_MAX - prng_.UniformBelow(3) : prng_.UniformBelow(12);
    e.operation = static_cast<OperationType>(prng_.UniformBelow(3));
    const uint64_t kind = prng_.UniformBelow(20);
    if (kind < 4) {
      e.timestamp_ns = 0;
    } else if (kind == 4) {
      e.timestamp_ns = -int64_t(prng_.UniformRange(1, 1000));
    } else if (kind < 8) {
      e.timestamp_ns = now_ - int64_t(prng_.UniformBelow(90)) * kDay;  // Late, whole days.
    } else if (kind < 11) {  // A few hot timestamps: ties for LATEST, content collisions.
      e.timestamp_ns =
          now_ / (3600 * kSec) * (3600 * kSec) - int64_t(prng_.UniformBelow(3)) * 3600 * kSec;
    } else {
      e.timestamp_ns = now_ - int64_t(prng_.UniformBelow(3 * 3600)) * kSec + int64_t(position);
    }
    for (uint64_t p = prng_.UniformBelow(4); p > 0; --p) {
      e.properties.push_back({kKeys[prng_.UniformBelow(kKeys.size())],
                              prng_.Chance(1, 8) ? "zz" : kValues[prng_.UniformBelow(3)]});
    }
    if (prng_.Chance(1, 8)) e.idempotency_key = IdempotencyKey{prng_.UniformBelow(6), 42};
    auto schema = model_.schemas.find(e.metric_code);
    if (schema != model_.schemas.end() && schema->second.agg_type == AggregationType::kSum &&
        prng_.Chance(1, 6)) {
      e.negative_correction = true;
    }
    return e;
  }

  void AcceptBatch() {
    std::vector<Event> events;
    for (uint64_t n = prng_.UniformBelow(12); n > 0; --n) events.push_back(RandomEvent(n));
    const std::vector<EventOutcome> expected = model_.Decide(events, now_);
    absl::StatusOr<Acceptance> acceptance = owner_.AcceptEvents(events, now_, pending_);
    ASSERT_TRUE(acceptance.ok()) << Where() << " " << acceptance.status();
    ASSERT_EQ(acceptance->result.outcomes, expected) << Where();
    size_t stored = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      if (expected[i] != EventOutcome::kStored) continue;
      const BatchEvent& accepted = acceptance->entry->batch()->events[stored++];
      const int64_t timestamp =
          events[i].timestamp_ns == 0 ? now_ + int64_t(i) : events[i].timestamp_ns;
      ASSERT_EQ(accepted.timestamp_ns, timestamp) << Where();
      ASSERT_EQ(accepted.registered, model_.schemas.count(events[i].metric_code) == 1) << Where();
      ASSERT_EQ(acceptance->entry->batch()->first_offset + stored, next_offset_ + stored)
          << Where();
    }
    ASSERT_EQ(acceptance->result.n_stored, stored) << Where();
    ASSERT_EQ(acceptance->result.last_offset, stored == 0 ? 0 : next_offset_ + stored - 1);
    next_offset_ += stored;
    for (const Event& e : events) {
      if (recent_.size() < 64) {
        recent_.push_back(e);
      } else {
        recent_[prng_.UniformBelow(64)] = e;
      }
    }
    if (acceptance->entry) Append(*acceptance->entry);
  }

  void Step() {
    const uint64_t clock = prng_.UniformBelow(20);
    if (clock < 12) {
      now_ += int64_t(prng_.UniformBelow(20)) * kSec;
    } else if (clock < 17) {
      now_ += int64_t(prng_.UniformBelow(900)) * kSec;
    } else if (clock < 19) {
      now_ += int64_t(prng_.UniformBelow(40)) * kDay;
    } else {
      now_ -= int64_t(prng_.UniformBelow(600)) * kSec;  // A slower clock after failover.
    }
    const uint64_t action = prng_.UniformBelow(100);
    if (action < 7 || action < 9) {
      const std::string& code = kCodes[prng_.UniformBelow(3)];
      if (action < 7) {
        Append(LogEntry::Put(*CompiledSchema::Create(RandomSchema(code))));
      } else {
        Append(LogEntry::Delete(code));
      }
      ApplyQueued(queue_.size());  // The owner waits for schema changes to apply.
    } else if (action < 11) {
      Append(LogEntry::Retention(now_ - int64_t(prng_.UniformBelow(100)) * kDay));
    } else {
      AcceptBatch();
    }
    if (::testing::Test::HasFatalFailure()) return;
    ApplyQueued(prng_.UniformBelow(3));  // Keep some batches in flight.
    if (step_ % 97 == 96) RoundTripReplica();
  }

  void RoundTripReplica() {
    const std::vector<uint8_t> snapshot = replica_->EncodeSnapshot();
    absl::StatusOr<std::unique_ptr<PartitionState>> decoded =
        PartitionState::DecodeSnapshot(options_, snapshot);
    ASSERT_TRUE(decoded.ok()) << Where() << " " << decoded.status();
    ASSERT_EQ((*decoded)->Digest(), owner_.Digest()) << Where();
    replica_ = *std::move(decoded);
  }

  std::vector<Filter> RandomFilters() {
    std::vector<Filter> filters;
    for (uint64_t n = prng_.UniformBelow(4); n > 0; --n) {
      filters.push_back({kKeys[prng_.UniformBelow(3)], kValues[prng_.UniformBelow(3)]});
    }
    if (prng_.Chance(1, 20)) filters.assign(5, Filter{"k9", "a"});
    return filters;
  }

  void CheckQueries() {
    if (::testing::Test::HasFatalFailure()) return;
    for (uint64_t account : kAccounts) {
      for (const std::string& code : kCodes) {
        for (int q = 0; q < 3; ++q) {
          const int64_t start = q == 0 ? INT64_MIN : now_ - int64_t(prng_.UniformBelow(120)) * kDay;
          const int64_t end = q == 0 ? INT64_MAX : start + int64_t(prng_.UniformBelow(45)) * kDay;
          const std::vector<Filter> filters = q == 0 ? std::vector<Filter>{} : RandomFilters();
          const std::optional<AggValue> expected = model_.Usage(account, code, start, end, filters);
          const absl::StatusOr<AggValue> actual =
              owner_.QueryUsage(account, code, start, end, filters);
          ASSERT_EQ(actual.ok(), expected.has_value()) << Where();
          if (expected) {
            ASSERT_EQ(Describe(*actual), Describe(*expected))
                << Where() << " usage " << account << " " << code << " [" << start << "," << end
                << ") filters " << filters.size();
          }
          std::vector<std::string> keys;
          for (uint64_t n = prng_.UniformRange(q == 2 ? 0 : 1, 3); n > 0; --n) {
            keys.push_back(kKeys[prng_.UniformBelow(3)]);
          }
          const auto expected_cells = model_.Breakdown(account, code, start, end, keys);
          const auto cells = owner_.QueryBreakdown(account, code, start, end, keys);
          ASSERT_EQ(cells.ok(), expected_cells.has_value()) << Where() << " " << cells.status();
          if (expected_cells) {
            ASSERT_EQ(Describe(*cells), Describe(*expected_cells)) << Where() << " breakdown";
          }
        }
        ASSERT_EQ(Describe(owner_.QueryRealtime(account, code, now_)),
                  Describe(model_.Realtime(account, code, now_)))
            << Where() << " realtime " << account << " " << code;
      }
    }
    std::vector<std::string> listed;
    for (const SchemaRef& s : owner_.ListMetrics()) listed.push_back(s->code());
    std::vector<std::string> expected;
    for (const auto& [code, schema] : model_.schemas) expected.push_back(code);
    ASSERT_EQ(listed, expected) << Where();
  }

  uint64_t seed_;
  Prng prng_;
  PartitionOptions options_;
  PartitionState owner_;
  std::unique_ptr<PartitionState> replica_;
  PendingDedup pending_;
  Model model_;
  std::vector<LogEntry> queue_;  // Appended, not yet applied.
  std::vector<Event> recent_;
  int64_t now_ = 0;
  uint64_t index_ = 0;
  uint64_t next_offset_ = 0;
  int step_ = 0;
};

TEST(ReferenceModelTest, CalendarModelAgreesOnWorkedExamples) {
  EXPECT_EQ(ModelBucket(1, 15, ModelMidnight(2026, 1, 5)),
            std::make_pair(ModelMidnight(2025, 12, 15), ModelMidnight(2026, 1, 15)));
  EXPECT_EQ(ModelBucket(0, 1, 1'767'225'600 * kSec).first, 681 * 30 * kDay);
  EXPECT_EQ(ModelBucket(1, 15, -1),
            std::make_pair(ModelMidnight(1969, 12, 15), ModelMidnight(1970, 1, 15)));
}

TEST(ReferenceModelTest, RandomLogsMatchTheModel) {
  for (uint64_t seed : {1, 2, 3, 4, 5, 6}) {
    Driver driver(seed);
    driver.Run(700);
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace unimeter::metering
