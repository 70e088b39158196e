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
// copied into one growing buffer (no allocation per operation once it has grown), so a
// checkpoint of millions of small records costs a few reallocations, not millions of
// strings. Operations are read back as string views into that buffer: valid while the
// batch lives and is not changed.
class WriteBatch {
 public:
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

  void Put(std::string_view key, std::string_view value) {
    Add(false, key, value.size()).append(value);
  }
  void Delete(std::string_view key) { Add(true, key, 0); }

  // Preallocates for about `operations` operations of `bytes` key and value bytes in all.
  void Reserve(size_t operations, size_t bytes) {
    records_.reserve(operations);
    bytes_.reserve(bytes);
  }

  Range operations() const { return Range{this}; }
  Operation operation(size_t index) const {
    const Record& record = records_[index];
    const std::string_view all(bytes_);
    return Operation{record.is_delete, all.substr(record.offset, record.key_size),
                     all.substr(record.offset + record.key_size, record.value_size)};
  }
  bool empty() const { return records_.empty(); }
  size_t size() const { return records_.size(); }
  // Key and value bytes of every operation.
  size_t byte_size() const { return bytes_.size(); }

  // A write-behind batch is not visible to Get/Scan until its Commit completed: the store
  // skips indexing it for reads, which costs much for bulk data. For callers that keep the
  // data readable themselves until it is durable (checkpoints). Reads may see it as soon
  // as it is durable, shortly before `done` runs.
  void set_write_behind(bool write_behind) { write_behind_ = write_behind; }
  bool write_behind() const { return write_behind_; }

 private:
  struct Record {
    size_t offset;  // Of the key in bytes_; the value follows it.
    uint32_t value_size;
    uint16_t key_size;
    bool is_delete;
  };

  std::string& Add(bool is_delete, std::string_view key, size_t value_size) {
    UM_CHECK_LE(key.size(), size_t{UINT16_MAX});
    UM_CHECK_LE(value_size, size_t{UINT32_MAX});
    records_.push_back(Record{bytes_.size(), static_cast<uint32_t>(value_size),
                              static_cast<uint16_t>(key.size()), is_delete});
    bytes_.append(key);
    return bytes_;
  }

  std::vector<Record> records_;
  std::string bytes_;
  bool write_behind_ = false;
};

class StateStore {
 public:
  using CommitDone = absl::AnyInvocable<void(absl::Status status)>;
  // Return false to stop a scan early.
  using ScanVisitor = absl::FunctionRef<bool(std::string_view key, std::string_view value)>;

  static constexpr size_t kKeySizeBytesMax = 511;  // LMDB's default key limit.

  virtual ~StateStore() = default;

  // The value of `key` as of every Commit call so far (durable or not), or nullopt.
  // DataLoss if the stored checksum does not match.
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;

  // Visits keys in [begin, end) in ascending byte order (end empty = no upper bound),
  // as of every Commit call so far. Stops at the first checksum error (DataLoss).
  virtual absl::Status Scan(std::string_view begin, std::string_view end, ScanVisitor visitor) = 0;

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
};

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_STATE_STORE_H_
