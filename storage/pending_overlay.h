// storage/pending_overlay.h
//
// Shared machinery of the two StateStore implementations (not a public API).
//
// PendingOverlay holds the effect of every batch that was committed but is not yet
// durable, so Get and Scan see "every Commit call so far": for each key it keeps the
// latest pending put (or a tombstone for a delete) and the sequence number of the batch
// that wrote it. When a batch becomes durable, Retire drops the entries that batch still
// owns; an entry overwritten by a later pending batch stays.
//
// MergeScan walks the durable contents (through a DurableCursor) and the overlay in key
// order, letting the overlay win on equal keys and tombstones hide durable keys.
//
// Single-threaded (event loop); no clocks, randomness or hash-map iteration.
#ifndef UNIMETER_STORAGE_PENDING_OVERLAY_H_
#define UNIMETER_STORAGE_PENDING_OVERLAY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/state_store.h"

namespace unimeter {

class PendingOverlay {
 public:
  struct Entry {
    std::optional<std::string> value;  // nullopt: deleted by a pending batch.
    uint64_t sequence;                 // The pending batch that last wrote this key.
  };
  // std::less<> allows lookups by std::string_view (Debian's Abseil string_view is not
  // std::string_view, so the default comparator would not accept it).
  using Map = absl::btree_map<std::string, Entry, std::less<>>;

  // Records every operation of `batch` (later operations win).
  // REQUIRES: sequence is greater than that of every batch applied before.
  void Apply(const WriteBatch& batch, uint64_t sequence);

  // Forgets the entries still owned by `batch`, which has become durable.
  // REQUIRES: `batch` and `sequence` were passed to Apply, and every older batch was
  // retired already.
  void Retire(const WriteBatch& batch, uint64_t sequence);

  // The pending entry for `key`, or nullptr if no pending batch touched it.
  const Entry* Find(std::string_view key) const;

  Map::const_iterator LowerBound(std::string_view key) const { return entries_.lower_bound(key); }
  Map::const_iterator end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  Map entries_;
  uint64_t sequence_applied_last_ = 0;
  uint64_t sequence_retired_last_ = 0;
};

// A forward cursor over a store's durable contents, used by MergeScan.
class DurableCursor {
 public:
  virtual ~DurableCursor() = default;

  // Positions the cursor at the first key >= `key`. Errors are read errors.
  virtual absl::Status Seek(std::string_view key) = 0;
  virtual bool Valid() const = 0;
  // REQUIRES: Valid(). The views stay valid until the next Seek or Next.
  virtual std::string_view key() const = 0;
  // The verified value (DataLoss on a checksum mismatch). REQUIRES: Valid().
  virtual absl::StatusOr<std::string_view> value() const = 0;
  // REQUIRES: Valid().
  virtual absl::Status Next() = 0;
};

// Visits the merged view of `durable` and `overlay` in [begin, end) (end empty = no
// upper bound), in ascending byte order. Stops early when `visitor` returns false, and at
// the first error (returned), except a damaged value that `on_damaged` (if given) says to
// pass. Durable values hidden by the overlay are not read.
absl::Status MergeScan(const PendingOverlay& overlay, std::string_view begin, std::string_view end,
                       DurableCursor& durable, StateStore::ScanVisitor visitor,
                       const StateStore::DamageVisitor* on_damaged = nullptr);

// Crashes unless every key of `batch` has a size in 1..StateStore::kKeySizeBytesMax
// (a bad key size is a programmer error).
void CheckKeySizes(const WriteBatch& batch);

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_PENDING_OVERLAY_H_
