// node/metering/partition_state.h
//
// PartitionState is the deterministic metering state machine of ONE partition: a function
// from its ordered log of entries (log_entry.h) to state. No clocks (time arrives inside
// entries or as an argument), no randomness, no I/O, single-threaded.
//
// Owner side:  AcceptEvents() takes the decisions of product-semantics 8.1-8.4 for one part
//              of a request (timestamps, dedup, registered-or-unknown, offsets) and returns
//              the EventBatch entry to append plus the ingest result; AcceptParts() does
//              the same for several parts with one entry. Neither changes the state: the
//              entry takes effect when the log commits and Apply() runs.
// Every replica: Apply() folds one committed entry into the state (aggregates, COUNT_UNIQUE
//              sets, thresholds, dedup index, schemas, retention) and emits what the node
//              must persist or record (stored events, alert crossings, retention cut-offs).
// Queries:     usage, realtime, breakdown, metric list (const).
// Replication: Digest() is a canonical digest of the whole state; EncodeSnapshot() /
//              DecodeSnapshot() round-trip it (checkpoints, resync).
//
// Memory layout: one Series per (account, metric) in a slot arena, found through a
// lookup-only hash index; a Series keeps its buckets sorted by [start, end); a Bucket keeps
// its unfiltered total inline, its dimension slices in a vector sorted by slice id, and its
// COUNT_UNIQUE member sets (btree) behind a pointer. Anything iterated is ordered.
#ifndef UNIMETER_NODE_METERING_PARTITION_STATE_H_
#define UNIMETER_NODE_METERING_PARTITION_STATE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "node/metering/byte_io.h"
#include "node/metering/dedup_index.h"
#include "node/metering/log_entry.h"
#include "node/metering/lookup_map.h"
#include "node/metering/period.h"
#include "node/metering/schema.h"
#include "node/metering/types.h"

namespace unimeter::metering {

struct PartitionOptions {
  uint32_t partition_id = 0;  // 0-255.
  // Dedup windows on log time (must be equal on every replica). REQUIRES: > 0.
  int64_t dedup_window_ns = kDedupWindowNanosDefault;
  int64_t idempotency_window_ns = kIdempotencyWindowNanosDefault;
};

enum class IngestStatus : uint8_t { kOk, kDuplicate, kUnknownMetric };
enum class EventOutcome : uint8_t { kStored, kDuplicate, kConflict };

struct IngestResult {
  uint32_t n_stored = 0;
  uint32_t n_duplicates = 0;
  uint32_t n_conflicts = 0;  // Reused idempotency key with a different payload.
  uint64_t last_offset = 0;  // Offset of the last stored event; 0 if none.
  IngestStatus status = IngestStatus::kOk;
  std::vector<EventOutcome> outcomes;  // One per input event, in request order.
};

struct Acceptance {
  std::optional<LogEntry> entry;  // The EventBatch to append; nullopt if nothing stored.
  IngestResult result;
};

// Several parts decided together (PartitionState::AcceptParts): one entry, one result each.
struct PartsAcceptance {
  std::optional<LogEntry> entry;  // Every part's stored events, in part order; nullopt if none.
  std::vector<absl::StatusOr<IngestResult>> results;  // One per part, in part order.
};

// A crossing every replica keeps from the apply of its entry until a log entry confirms the
// owner's alert log durably holds it (LogEntry AlertsRecorded). A new owner records the
// crossings still unconfirmed, so a crossing lost with an owner that crashed before its
// alert log was synced is recorded again (product-semantics 7.2, at-least-once).
struct UnconfirmedCrossing {
  uint64_t index = 0;  // Log index of the entry whose apply made it.
  AlertCrossing crossing;
  bool operator==(const UnconfirmedCrossing&) const = default;
};

// What Apply() asks the node to do. The caller clears it between entries as it likes.
struct ApplyOutput {
  // Every applied batch, whole: event i has offset first_offset + i. Unknown-metric events
  // included (they are stored but never aggregated).
  std::vector<std::shared_ptr<const EventBatch>> stored_batches;
  std::vector<AlertCrossing> crossings;  // In apply order.
  // For each applied RetentionSweep: stored events with timestamp < cutoff and alert
  // records whose event timestamp < cutoff may be deleted.
  std::vector<int64_t> retention_cutoffs_ns;
  uint64_t buckets_evicted = 0;

  void Clear() {
    stored_batches.clear();
    crossings.clear();
    retention_cutoffs_ns.clear();
    buckets_evicted = 0;
  }
};

struct Filter {
  std::string key;
  std::string value;
  bool operator==(const Filter&) const = default;
};

struct BreakdownCell {
  std::vector<Filter> pairs;  // In group-by order.
  AggValue value;             // alert_flags always 0.
  bool operator==(const BreakdownCell&) const = default;
};

class PartitionState {
 public:
  explicit PartitionState(const PartitionOptions& options);
  PartitionState(const PartitionState&) = delete;
  PartitionState& operator=(const PartitionState&) = delete;

  // ---- Owner side ----

  // Decides the fate of one request part (the events of this partition, request order)
  // accepted at the owner's wall clock `now_ns`, and records the accepted keys, offsets and
  // log time in `pending` (batches accepted but not yet applied). InvalidArgument (nothing
  // accepted) if an event is malformed, belongs to another partition, the part exceeds the
  // request limits, or a negative correction names a metric that is not a registered SUM.
  // REQUIRES: every schema entry this owner appended has been applied (an owner does not
  // accept events while a schema change is in flight, product-semantics 9); `pending` holds
  // exactly this owner's batches that are appended but not applied.
  absl::StatusOr<Acceptance> AcceptEvents(absl::Span<const Event> events, int64_t now_ns,
                                          PendingDedup& pending) const;

  // AcceptEvents for several parts (of different requests) at once, with one EventBatch
  // entry for all of them: the per-entry costs of the log, replication and apply are paid
  // once. Each part is decided exactly as if AcceptEvents took the parts one after the
  // other at `now_ns` (an earlier part's keys make a later part's events duplicates; an
  // invalid part gets its InvalidArgument and takes no offsets), except that a part's
  // server-stamped events are stamped now_ns + (events in the parts before it) + position,
  // so that stamps of different requests differ as they would a few nanoseconds apart.
  // REQUIRES: as AcceptEvents; the parts hold at most kRequestEventsMax events and
  // kRequestPropertiesMax properties together (the bounds of one entry).
  PartsAcceptance AcceptParts(absl::Span<const absl::Span<const Event>> parts, int64_t now_ns,
                              PendingDedup& pending) const;

  // ---- Every replica ----

  // Applies the committed entry at log index `index`; appends its effects to `output`.
  // REQUIRES: index == applied_index() + 1; an EventBatch's first_offset >= next_offset().
  void Apply(uint64_t index, const LogEntry& entry, ApplyOutput* output);

  // ---- Queries ----

  // Usage over every stored bucket overlapping [start_ns, end_ns) (negative times read as
  // the epoch), restricted to events matching all filters. InvalidArgument for more than
  // 4 filters or a repeated key; zeros for end <= start, an unregistered metric, or an
  // undeclared key or value. alert_flags only without filters.
  absl::StatusOr<AggValue> QueryUsage(uint64_t account_id, absl::string_view metric_code,
                                      int64_t start_ns, int64_t end_ns,
                                      absl::Span<const Filter> filters) const;

  // The unfiltered total of the bucket that contains `now_ns` under the current schema.
  AggValue QueryRealtime(uint64_t account_id, absl::string_view metric_code, int64_t now_ns) const;

  // Non-empty cells of the cartesian product of the declared values of `group_by`, first
  // key slowest, at most kBreakdownEntriesMax. InvalidArgument (WP 7.11) for 0 or more
  // than 4 keys, a repeated key, an unregistered metric or an undeclared key.
  absl::StatusOr<std::vector<BreakdownCell>> QueryBreakdown(
      uint64_t account_id, absl::string_view metric_code, int64_t start_ns, int64_t end_ns,
      absl::Span<const std::string> group_by) const;

  // Registered schemas ordered by code bytes.
  std::vector<SchemaRef> ListMetrics() const;
  // Every code a registry change ever named, with its schema (null: deleted or never put)
  // and the version of the last change applied for it, in interned-id order.
  template <typename Visitor>
  void ForEachRegistryEntry(Visitor visit) const {
    for (const Metric& metric : metrics_) visit(metric.code, metric.schema, metric.version);
  }
  // The registered schema of `metric_code`, or null.
  SchemaRef FindSchema(absl::string_view metric_code) const;

  // ---- Replication ----

  // Canonical digest of the whole state (equal on replicas at the same applied index).
  uint64_t Digest() const;
  std::vector<uint8_t> EncodeSnapshot() const;
  // DataLoss on corrupt bytes; InvalidArgument if the snapshot is of another partition.
  static absl::StatusOr<std::unique_ptr<PartitionState>> DecodeSnapshot(
      const PartitionOptions& options, absl::Span<const uint8_t> bytes);

  uint64_t applied_index() const { return applied_index_; }
  uint64_t next_offset() const { return next_offset_; }
  int64_t log_time_ns() const { return log_time_ns_; }
  int64_t retention_cutoff_ns() const { return retention_cutoff_ns_; }
  // Live aggregate keys: one per (account, metric, bucket) total plus one per slice.
  uint64_t aggregate_key_count() const { return aggregate_key_count_; }
  // Dedup keys recorded inside their windows (a key recorded again after its window counts
  // twice until its older record is evicted). Builds no lookup table.
  size_t content_dedup_key_count() const { return dedup_.content().fifo_size(); }
  size_t idempotency_key_count() const { return dedup_.idempotency().fifo_size(); }
  // Crossings not yet confirmed as recorded, ascending by index (replicated state: in the
  // digest and the snapshot).
  const std::deque<UnconfirmedCrossing>& unconfirmed_crossings() const {
    return unconfirmed_crossings_;
  }
  // Copies of alert records (LogEntry AlertCopies) by (recorder node, offset), retention
  // applied (replicated state: in the digest and the snapshot).
  using AlertCopyKey = std::pair<uint32_t, uint64_t>;
  const absl::btree_map<AlertCopyKey, AlertCrossing>& alert_copies() const { return alert_copies_; }
  // For each recorder, the offset after its highest copied record, retention or not: a
  // restored alert log continues there, so no offset is ever given twice.
  const absl::btree_map<uint32_t, uint64_t>& alert_copy_ends() const { return alert_copy_ends_; }

 private:
  struct SliceAgg {
    uint64_t slice_id = 0;
    AggValue value;
  };
  // A bucket's dimension slices. Most metrics have no dimensions, so the list costs one
  // pointer until its first slice (memory per aggregate key is a product target).
  class SliceList {
   public:
    const std::vector<SliceAgg>& view() const { return items_ != nullptr ? *items_ : Empty(); }
    std::vector<SliceAgg>& mutable_view() {
      if (items_ == nullptr) items_ = std::make_unique<std::vector<SliceAgg>>();
      return *items_;
    }
    size_t size() const { return items_ != nullptr ? items_->size() : 0; }
    bool empty() const { return size() == 0; }

   private:
    static const std::vector<SliceAgg>& Empty() {
      static const std::vector<SliceAgg> empty;
      return empty;
    }
    std::unique_ptr<std::vector<SliceAgg>> items_;
  };
  struct UniqueSets {
    absl::btree_set<uint64_t> total;
    absl::btree_map<uint64_t, absl::btree_set<uint64_t>> slices;
  };
  struct Bucket {
    BucketRange range;
    AggValue total;
    SliceList slices;  // Sorted by slice_id; present = an event contributed.
    std::unique_ptr<UniqueSets> unique;
  };
  struct Series {
    uint64_t account_id = 0;
    uint32_t metric_id = 0;
    bool live = false;
    int64_t bucket_length_max_ns = 0;
    absl::InlinedVector<Bucket, 1> buckets;  // Sorted by range.
  };
  struct SeriesKey {
    uint64_t account_id;
    uint32_t metric_id;
    bool operator==(const SeriesKey&) const = default;
    template <typename H>
    friend H AbslHashValue(H state, const SeriesKey& key) {
      return H::combine(std::move(state), key.account_id, key.metric_id);
    }
  };
  struct Metric {
    std::string code;
    SchemaRef schema;         // Null while unregistered.
    RegistryVersion version;  // Of the last registry change applied for the code.
  };

  // Apply helpers.
  void ApplyBatch(const std::shared_ptr<const EventBatch>& batch, ApplyOutput* output);
  void ApplyRetention(int64_t cutoff_ns, ApplyOutput* output);
  void ConfirmCrossings(uint64_t through_index);
  void KeepAlertCopies(const AlertCopies& copies);
  void RecordDedupKey(const BatchEvent& event, uint32_t metric_id);
  // `series_slot`: the series' slot if known (ApplyBatch looked it up ahead), else kNoSlot.
  void Aggregate(const BatchEvent& event, uint32_t metric_id, uint32_t series_slot,
                 const CompiledSchema& schema, uint64_t offset, ApplyOutput* output);
  void UpdateValue(AggregationType type, const BatchEvent& event, Bucket& bucket, bool is_total,
                   uint64_t slice_id, AggValue& value);
  void EvaluateThresholds(const CompiledSchema& schema, const BatchEvent& event, uint64_t offset,
                          AggValue& total, ApplyOutput* output) const;
  uint32_t InternCode(const std::string& code);
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  Series& FindOrCreateSeries(uint64_t account_id, uint32_t metric_id);
  // Looks up the series of every event of `events` that will be aggregated (metric_ids[i]
  // is event i's) into slots[i] (kNoSlot if it does not exist yet), first prefetching the
  // index and then the series, so the lookups of one entry wait for memory together, not
  // one after another.
  void LookUpSeriesAhead(const std::vector<BatchEvent>& events,
                         absl::Span<const uint32_t> metric_ids, absl::Span<uint32_t> slots) const;
  Bucket& FindOrCreateBucket(Series& series, const BucketRange& range);
  AggValue& FindOrCreateSlice(Bucket& bucket, uint64_t slice_id);

  // Owner helpers.
  absl::Status ValidatePart(absl::Span<const Event> events) const;
  // Prefetches the applied dedup tables' memory that AcceptParts will read for the valid
  // `parts` (validity[i] is part i's ValidatePart), so its lookups of one entry wait for
  // memory together, not one after another.
  void PrefetchDedupLookups(absl::Span<const absl::Span<const Event>> parts,
                            absl::Span<const absl::Status> validity) const;
  std::optional<uint32_t> FindMetricId(absl::string_view code) const;

  // Query helpers.
  const Series* FindSeries(uint64_t account_id, uint32_t metric_id) const;
  static std::vector<const Bucket*> OverlappingBuckets(const Series& series, int64_t start_ns,
                                                       int64_t end_ns);
  static bool MergeSlice(const Bucket& bucket, uint64_t slice_id, AggValue* merged);

  // Canonical traversal shared by Digest() and EncodeSnapshot().
  template <typename Writer>
  void EncodeState(Writer& writer) const;
  std::vector<uint32_t> SortedLiveSeries() const;
  absl::Status DecodeState(ByteReader& reader, uint32_t version);

  PartitionOptions options_;
  uint64_t applied_index_ = 0;
  uint64_t next_offset_ = 0;  // Offsets start at 0, as in the wire spec's worked example.
  int64_t log_time_ns_ = INT64_MIN;
  int64_t retention_cutoff_ns_ = INT64_MIN;
  uint64_t aggregate_key_count_ = 0;

  std::vector<Metric> metrics_;  // Indexed by interned metric id (log order of first use).
  LookupMap<std::string, uint32_t> metric_ids_;

  std::deque<Series> series_;  // Slot arena; dead slots are on free_series_.
  std::vector<uint32_t> free_series_;
  LookupMap<SeriesKey, uint32_t> series_index_;

  DedupIndex dedup_;
  std::deque<UnconfirmedCrossing> unconfirmed_crossings_;
  absl::btree_map<AlertCopyKey, AlertCrossing> alert_copies_;
  absl::btree_map<uint32_t, uint64_t> alert_copy_ends_;
};

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_PARTITION_STATE_H_
