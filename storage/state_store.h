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

namespace unimeter {

// An ordered list of puts and deletes, applied atomically by Commit.
class WriteBatch {
 public:
  struct Operation {
    bool is_delete;
    std::string key;
    std::string value;  // Empty for deletes.
  };

  void Put(std::string_view key, std::string_view value) {
    operations_.push_back({false, std::string(key), std::string(value)});
  }
  void Delete(std::string_view key) { operations_.push_back({true, std::string(key), {}}); }

  const std::vector<Operation>& operations() const { return operations_; }
  bool empty() const { return operations_.empty(); }
  size_t size() const { return operations_.size(); }

  // A write-behind batch is not visible to Get/Scan until its Commit completed: the store
  // skips indexing it for reads, which costs much for bulk data. For callers that keep the
  // data readable themselves until it is durable (checkpoints). Reads may see it as soon
  // as it is durable, shortly before `done` runs.
  void set_write_behind(bool write_behind) { write_behind_ = write_behind; }
  bool write_behind() const { return write_behind_; }

 private:
  std::vector<Operation> operations_;
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
