// storage/state_store.h
//
// StateStore is a node's ordered key-value store for materialised state (aggregates,
// dedup index, metric registry, partition metadata, applied index). Two implementations:
// LmdbStateStore (storage/lmdb_state_store.h, the real node) and MemoryStateStore
// (storage/memory_state_store.h, the simulator), with the same crash semantics: after a
// crash exactly the batches whose Commit completed with OK survive, each atomically.
//
// Every stored value carries our own checksum (storage/checked_value.h); a read whose
// checksum does not match returns DataLoss naming the key, never the damaged bytes.
//
// Threading: event-loop only. Commit completions run later on the loop, in commit order.
#ifndef UNIMETER_STORAGE_STATE_STORE_H_
#define UNIMETER_STORAGE_STATE_STORE_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "node/base/check.h"

namespace unimeter {

// An ordered list of puts and deletes, applied atomically by Commit. Keys and values are
// copied into blocks of kBlockBytes (a larger value gets a block of its own), so a
// checkpoint of millions of small records costs one allocation per block, not two
// strings per record, and no block is large enough to make the allocator consolidate its
// free lists when it is allocated or freed. Operations are read back as string views
// into the blocks: valid while the batch lives (moving it keeps them valid).
class WriteBatch {
 public:
  static constexpr size_t kBlockBytes = 32 * 1024;

  struct Operation {
    bool is_delete;
    std::string_view key;
    std::string_view value;  // Empty for deletes.
  };

  // Forward iteration over the operations in the order they were added.
  class Iterator {
   public:
    Iterator(const WriteBatch* batch, size_t index) : batch_(batch), index_(index) {}
    Operation operator*() const { return batch_->operation(index_); }
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    bool operator!=(const Iterator& other) const { return index_ != other.index_; }

   private:
    const WriteBatch* batch_;
    size_t index_;
  };
  struct Range {
    const WriteBatch* batch;
    Iterator begin() const { return Iterator(batch, 0); }
    Iterator end() const { return Iterator(batch, batch->size()); }
  };

  void Put(std::string_view key, std::string_view value) { Add(false, key, value); }
  void Delete(std::string_view key) { Add(true, key, {}); }

  // Preallocates room for `operations` more operation records.
  void Reserve(size_t operations) { records_.reserve(records_.size() + operations); }

  Range operations() const { return Range{this}; }
  Operation operation(size_t index) const {
    const Record& record = records_[index];
    const char* key = blocks_[record.block].data() + record.offset;
    return Operation{record.is_delete, std::string_view(key, record.key_size),
                     std::string_view(key + record.key_size, record.value_size)};
  }
  bool empty() const { return records_.empty(); }
  size_t size() const { return records_.size(); }
  // Key and value bytes of every operation.
  size_t byte_size() const { return byte_size_; }

  // A write-behind batch is not visible to Get/Scan until its Commit completed: the store
  // skips indexing it for reads, which costs much for bulk data. For callers that keep the
  // data readable themselves until it is durable (checkpoints). Reads may see it as soon
  // as it is durable, shortly before `done` runs.
  void set_write_behind(bool write_behind) { write_behind_ = write_behind; }
  bool write_behind() const { return write_behind_; }

 private:
  struct Record {
    uint32_t block;
    uint32_t offset;  // Of the key in its block; the value follows it.
    uint32_t value_size;
    uint16_t key_size;
    bool is_delete;
  };

  void Add(bool is_delete, std::string_view key, std::string_view value) {
    UM_CHECK_LE(key.size(), size_t{UINT16_MAX});
    UM_CHECK_LE(value.size(), size_t{UINT32_MAX} - key.size());
    const size_t size = key.size() + value.size();
    if (blocks_.empty() || blocks_.back().capacity() - blocks_.back().size() < size) {
      blocks_.emplace_back().reserve(std::max(kBlockBytes, size));
    }
    std::vector<char>& block = blocks_.back();  // Never grows past its reserve: no moves.
    records_.push_back(
        Record{static_cast<uint32_t>(blocks_.size() - 1), static_cast<uint32_t>(block.size()),
               static_cast<uint32_t>(value.size()), static_cast<uint16_t>(key.size()), is_delete});
    block.insert(block.end(), key.begin(), key.end());
    block.insert(block.end(), value.begin(), value.end());
    byte_size_ += size;
  }

  std::vector<Record> records_;
  std::vector<std::vector<char>> blocks_;
  size_t byte_size_ = 0;
  bool write_behind_ = false;
};

class StateStore {
 public:
  using CommitDone = absl::AnyInvocable<void(absl::Status status)>;
  // Return false to stop a scan early.
  using ScanVisitor = absl::FunctionRef<bool(std::string_view key, std::string_view value)>;
  // A stored value whose checksum does not match (`damage` says so): true to go on past it.
  using DamageVisitor = absl::FunctionRef<bool(std::string_view key, const absl::Status& damage)>;

  static constexpr size_t kKeySizeBytesMax = 511;  // LMDB's default key limit.

  virtual ~StateStore() = default;

  // The value of `key` as of every Commit call so far (durable or not), or nullopt.
  // DataLoss if the stored checksum does not match.
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;

  // Visits keys in [begin, end) in ascending byte order (end empty = no upper bound),
  // as of every Commit call so far. Stops at the first checksum error (DataLoss).
  absl::Status Scan(std::string_view begin, std::string_view end, ScanVisitor visitor) {
    return ScanMerged(begin, end, visitor, nullptr);
  }
  // The same, but a damaged value goes to `on_damaged`, and the scan stops there (with its
  // DataLoss) only if that returns false. For readers that can answer from another copy.
  absl::Status ScanPastDamage(std::string_view begin, std::string_view end, ScanVisitor visitor,
                              DamageVisitor on_damaged) {
    return ScanMerged(begin, end, visitor, &on_damaged);
  }

  // Applies `batch` atomically: visible to Get/Scan at once (unless write-behind: then once
  // durable), durable when `done` runs
  // with OK. Completions run in commit order. Any error (ResourceExhausted for a full
  // disk or map, Internal for an IO error) leaves the visible state ahead of the durable
  // state: the caller must crash the node, and recovery reopens the store at its last
  // durable commit. Callers avoid the full-disk case with backpressure on free space.
  // After an error the store is failed: every later batch also completes with an error
  // and is not written, so the durable state stays a prefix of the commits.
  // REQUIRES: every key size in 1..kKeySizeBytesMax.
  virtual void Commit(WriteBatch batch, CommitDone done) = 0;

  // Size of the store's files in bytes (for metrics and capacity planning).
  virtual uint64_t size_bytes() const = 0;

 protected:
  // Scan's implementation: `on_damaged` null stops at the first damaged value.
  virtual absl::Status ScanMerged(std::string_view begin, std::string_view end, ScanVisitor visitor,
                                  const DamageVisitor* on_damaged) = 0;
};

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_STATE_STORE_H_
