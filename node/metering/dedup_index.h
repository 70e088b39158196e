// node/metering/dedup_index.h
//
// Deduplication state (product-semantics 8.4, simulation.md invariant S2).
//
// The dedup window is measured on *log time*: log_time = the maximum accept_time_ns of
// every event batch applied so far, so a failover to an owner with a slower clock never
// shortens the window. A key recorded by an entry carries that entry's log time L (the
// log time right after the entry is applied). A later event whose own log time T satisfies
// T - L < window is a duplicate (or, for an idempotency key with a different payload, a
// conflict). Keys with L + window <= log_time are evicted when an entry is applied; any
// later event would find them expired anyway, so eviction never changes a decision and
// keys are never forgotten early.
//
//   ExpiringIndex   an insertion-ordered FIFO of (L, keys) segments plus a lookup table of
//                   FIFO entry numbers, so expiry is amortised O(1), each key is stored
//                   once, and iteration (digest, snapshot) is in log order.
//   DedupIndex      the replicated index: content keys and idempotency keys, each with its
//                   own window.
//   PendingDedup    the owner's overlay of keys accepted but not yet applied, plus the next
//                   offset and log time those batches imply. Its content keys name codes by
//                   its own ids (CodeId), so no key holds a string.
#ifndef UNIMETER_NODE_METERING_DEDUP_INDEX_H_
#define UNIMETER_NODE_METERING_DEDUP_INDEX_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/metering/byte_io.h"
#include "node/metering/lookup_map.h"
#include "node/metering/types.h"

namespace unimeter::metering {

// The v1 content key (metric code bytes via the partition's interned code id, account,
// timestamp, value), plus the correction sign so that +v and -v corrections never collide.
struct ContentKey {
  uint64_t account_id = 0;
  int64_t timestamp_ns = 0;
  uint64_t value = 0;
  uint32_t metric_id = 0;
  uint32_t negative = 0;
  bool operator==(const ContentKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H state, const ContentKey& key) {
    // Two words instead of five fields (equality still compares every field).
    return H::combine(
        std::move(state),
        key.account_id * 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(key.timestamp_ns),
        key.value * 0xC2B2AE3D27D4EB4FULL ^ (uint64_t{key.metric_id} << 1) ^ key.negative);
  }
};

struct IdempotencyRecord {
  int64_t log_time_ns = 0;
  uint64_t fingerprint = 0;
  bool operator==(const IdempotencyRecord&) const = default;
};

// True if an event at log time `event_log_time_ns` is still inside the window of a key
// recorded at `recorded_log_time_ns`.
inline bool WithinWindow(int64_t recorded_log_time_ns, int64_t event_log_time_ns,
                         int64_t window_ns) {
  return static_cast<__int128>(event_log_time_ns) - recorded_log_time_ns < window_ns;
}

// Keys with a value, expiring in insertion order.
//
// Memory is the product's limit here (every key of the window on every replica), so each
// key is stored once: entries live in an insertion-ordered FIFO, and the lookup table holds
// only 8-byte slots (entry number, key hash), compared through the FIFO (a transparent
// hasher), about 55 bytes per content key instead of a map slot plus a FIFO copy.
//
// The table is built lazily: Insert only appends to the FIFO, and the first lookup after
// insertions indexes the entries appended since (in order, so the newest of a key wins).
// Only an owner looks keys up (when it accepts events); a replica applies the same entries
// and keeps the FIFO (for its digest, its snapshots and a later ownership), but never pays
// for the table until it becomes an owner and accepts.
template <typename Key, typename Value>
class ExpiringIndex {
 public:
  ExpiringIndex() : table_(0, EntryHash{}, EntryEq{this}) {}
  // The table's key comparison points at this object.
  ExpiringIndex(const ExpiringIndex&) = delete;
  ExpiringIndex& operator=(const ExpiringIndex&) = delete;

  const Value* Find(const Key& key) const {
    IndexNewEntries();
    auto it = table_.find(key);
    return it == table_.end() ? nullptr : &EntryAt(it->number).value;
  }

  // Starts loading the table memory Find(key) reads (a hint; indexes the table first).
  void Prefetch(const Key& key) const {
    IndexNewEntries();
    table_.prefetch(key);
  }

  // Records `key` with `value`, whose log time is >= every earlier insertion's.
  void Insert(const Key& key, const Value& value, int64_t log_time_ns) {
    UM_CHECK(segments_.empty() || segments_.back().log_time_ns <= log_time_ns);
    UM_CHECK_LT(fifo_.size(), size_t{UINT32_MAX});
    fifo_.push_back(Entry{key, value});
    ++unindexed_;
    if (segments_.empty() || segments_.back().log_time_ns != log_time_ns) {
      segments_.push_back(Segment{log_time_ns, 0});
    }
    ++segments_.back().count;
  }

  // Evicts keys recorded at L with L + window_ns <= log_time_ns.
  void Expire(int64_t log_time_ns, int64_t window_ns) {
    while (!segments_.empty() &&
           !WithinWindow(segments_.front().log_time_ns, log_time_ns, window_ns)) {
      const Segment segment = segments_.front();
      segments_.pop_front();
      for (uint64_t i = 0; i < segment.count; ++i) {
        if (fifo_.size() > unindexed_) {  // The front entry is in the table.
          // Erase only if no later insertion of the same key replaced it.
          auto it = table_.find(fifo_.front().key);
          if (it != table_.end() && it->number == front_number_) table_.erase(it);
        } else {
          --unindexed_;
        }
        fifo_.pop_front();
        ++front_number_;
      }
    }
  }

  // Distinct keys (indexes the table first).
  size_t size() const {
    IndexNewEntries();
    return table_.size();
  }
  // Entries inside the window: a key recorded again after its window counts twice until
  // its older entry is evicted.
  size_t fifo_size() const { return fifo_.size(); }

  // Visits (log_time, count) segments and their keys in insertion order. A key recorded
  // twice is visited twice; Find gives the value a lookup sees (the newest).
  template <typename SegmentVisitor, typename KeyVisitor>
  void Visit(SegmentVisitor on_segment, KeyVisitor on_key) const {
    size_t next = 0;
    for (const Segment& segment : segments_) {
      on_segment(segment.log_time_ns, segment.count);
      for (uint64_t i = 0; i < segment.count; ++i) {
        on_key(fifo_[next++].key);
      }
    }
  }

 private:
  struct Segment {
    int64_t log_time_ns;
    uint64_t count;
  };
  struct Entry {
    Key key;
    Value value;
  };
  // Entry numbers count insertions modulo 2^32; fifo_[0] is entry front_number_.
  const Entry& EntryAt(uint32_t number) const { return fifo_[number - front_number_]; }

  // Adds the FIFO's last unindexed_ entries to the table, oldest first.
  void IndexNewEntries() const {
    for (size_t i = fifo_.size() - unindexed_; i < fifo_.size(); ++i) {
      const Slot slot{front_number_ + static_cast<uint32_t>(i), KeyHash32(fifo_[i].key)};
      auto [it, inserted] = table_.insert(slot);
      if (!inserted) {  // An expired key accepted again: the newest wins.
        table_.erase(it);
        table_.insert(slot);
      }
    }
    unindexed_ = 0;
  }

  // A table slot: the entry number and a 32-bit hash of its key, so that growing the table
  // rehashes without reading the FIFO (a random access per key) and a probe compares keys
  // only when the hashes match.
  struct Slot {
    uint32_t number;
    uint32_t hash;
  };
  static uint32_t KeyHash32(const Key& key) {
    const uint64_t hash = absl::Hash<Key>{}(key);
    return static_cast<uint32_t>(hash ^ (hash >> 32));
  }
  // Spreads a 32-bit hash over the word the table splits into probe position and tag.
  static size_t Spread(uint32_t hash) { return hash * 0x9E3779B97F4A7C15ULL; }

  struct EntryHash {
    using is_transparent = void;
    size_t operator()(const Slot& slot) const { return Spread(slot.hash); }
    size_t operator()(const Key& key) const { return Spread(KeyHash32(key)); }
  };
  struct EntryEq {
    using is_transparent = void;
    const ExpiringIndex* index;
    bool operator()(const Slot& a, const Slot& b) const {
      return a.number == b.number ||
             (a.hash == b.hash && index->EntryAt(a.number).key == index->EntryAt(b.number).key);
    }
    bool operator()(const Slot& a, const Key& b) const { return index->EntryAt(a.number).key == b; }
    bool operator()(const Key& a, const Slot& b) const { return a == index->EntryAt(b.number).key; }
  };

  // Lookup only: never iterated, so its layout never reaches a decision or a digest.
  // Built by lookups (a cache of the FIFO, hence mutable): entries before the last
  // unindexed_ ones are in it.
  mutable absl::flat_hash_set<Slot, EntryHash, EntryEq> table_;  // determinism-ok: lookup only
  mutable size_t unindexed_ = 0;
  std::deque<Entry> fifo_;
  uint32_t front_number_ = 0;
  std::deque<Segment> segments_;
};

class DedupIndex {
 public:
  // Content keys: the value is the recorded log time.
  ExpiringIndex<ContentKey, int64_t>& content() { return content_; }
  const ExpiringIndex<ContentKey, int64_t>& content() const { return content_; }
  ExpiringIndex<IdempotencyKey, IdempotencyRecord>& idempotency() { return idempotency_; }
  const ExpiringIndex<IdempotencyKey, IdempotencyRecord>& idempotency() const {
    return idempotency_;
  }

  void Expire(int64_t log_time_ns, int64_t content_window_ns, int64_t idempotency_window_ns) {
    content_.Expire(log_time_ns, content_window_ns);
    idempotency_.Expire(log_time_ns, idempotency_window_ns);
  }

  // Writes the canonical encoding (docs/formats/metering_entries.md, "Snapshot") to any
  // writer with the ByteWriter interface (ByteWriter, DigestWriter).
  template <typename Writer>
  void Encode(Writer& writer) const;
  // DataLoss on malformed bytes.
  bool Decode(ByteReader& reader);

 private:
  ExpiringIndex<ContentKey, int64_t> content_;
  ExpiringIndex<IdempotencyKey, IdempotencyRecord> idempotency_;
};

// The owner's view of batches it has accepted (appended to the log) but not yet applied.
// REQUIRES (of the owner): Clear() whenever it loses ownership or its pending batches are
// discarded, since offsets of lost batches may be reused by another owner.
class PendingDedup {
 public:
  struct PendingContent {
    int64_t log_time_ns;
    uint64_t batch_first_offset;
  };
  struct PendingIdempotency {
    IdempotencyRecord record;
    uint64_t batch_first_offset;
  };

  // The id content keys of pending batches use for `metric_code` (the partition may not
  // have interned a code of a batch not yet applied). Stable while any batch is pending.
  uint32_t CodeId(const std::string& metric_code);

  // `key.metric_id` is a CodeId().
  const PendingContent* FindContent(const ContentKey& key) const { return content_.Find(key); }
  const PendingIdempotency* FindIdempotency(const IdempotencyKey& key) const {
    return idempotency_.Find(key);
  }

  // Records a batch accepted with offsets [first_offset, end_offset) at log time
  // log_time_ns. REQUIRES: first_offset >= next_offset() when not empty.
  void AddBatch(uint64_t first_offset, uint64_t end_offset, int64_t log_time_ns,
                std::vector<ContentKey> content_keys,
                std::vector<std::pair<IdempotencyKey, uint64_t>> idempotency_keys);

  // Forgets every batch whose events all have offsets < applied_next_offset (applied).
  void RetireApplied(uint64_t applied_next_offset);
  // Forgets the newest batch: its entry could not be appended to the log, so nothing of it
  // was accepted. A key it had taken over from an older pending batch is forgotten too;
  // that only happens once the older key's window has passed.
  void DropNewestBatch();
  void Clear();

  bool empty() const { return batches_.empty(); }
  size_t batch_count() const { return batches_.size(); }
  // 0 when empty.
  uint64_t next_offset() const { return batches_.empty() ? 0 : batches_.back().end_offset; }
  // INT64_MIN when empty.
  int64_t log_time_ns() const { return batches_.empty() ? INT64_MIN : batches_.back().log_time_ns; }

 private:
  struct Batch {
    uint64_t first_offset;
    uint64_t end_offset;
    int64_t log_time_ns;
    std::vector<ContentKey> content_keys;
    std::vector<IdempotencyKey> idempotency_keys;
  };
  // Erases the keys `batch` still owns.
  void ForgetKeysOf(const Batch& batch);

  std::deque<Batch> batches_;
  // Codes of the pending batches' content keys; forgotten whenever no batch is pending.
  LookupMap<std::string, uint32_t> code_ids_;
  LookupMap<ContentKey, PendingContent> content_;
  LookupMap<IdempotencyKey, PendingIdempotency> idempotency_;
};

template <typename Writer>
void DedupIndex::Encode(Writer& writer) const {
  uint64_t segments = 0;
  content_.Visit([&](int64_t, uint64_t) { ++segments; }, [](const ContentKey&) {});
  writer.U64(segments);
  content_.Visit(
      [&](int64_t log_time_ns, uint64_t count) {
        writer.I64(log_time_ns);
        writer.U64(count);
      },
      [&](const ContentKey& key) {
        writer.U64(key.account_id);
        writer.I64(key.timestamp_ns);
        writer.U64(key.value);
        writer.U32(key.metric_id);
        writer.U32(key.negative);
      });
  segments = 0;
  idempotency_.Visit([&](int64_t, uint64_t) { ++segments; }, [](const IdempotencyKey&) {});
  writer.U64(segments);
  idempotency_.Visit(
      [&](int64_t log_time_ns, uint64_t count) {
        writer.I64(log_time_ns);
        writer.U64(count);
      },
      [&](const IdempotencyKey& key) {
        const IdempotencyRecord* record = idempotency_.Find(key);
        writer.U64(key.high);
        writer.U64(key.low);
        // A replaced key persists the replacing record, which is what any lookup sees.
        writer.U64(record == nullptr ? 0 : record->fingerprint);
      });
}

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_DEDUP_INDEX_H_
