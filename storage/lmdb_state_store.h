// storage/lmdb_state_store.h
//
// The real node's StateStore, kept in an LMDB environment (one directory holding
// data.mdb and lock.mdb, the unnamed main database only).
//
// Writes: Commit applies a batch to an in-memory overlay of pending batches at once (so
// Get and Scan see it) and queues it. Write transactions run only on the IO thread,
// through IoExecutor::Submit, one job at a time: a job takes every batch queued when it
// is submitted and writes them in ONE fully synced write transaction (group commit);
// when it completes on the loop, each batch's `done` runs in commit order. Batches
// committed while a job runs form the next job. After a crash the environment holds a
// prefix of the committed batches that includes every batch whose `done` saw OK.
//
// Errors: MDB_MAP_FULL and ENOSPC become ResourceExhausted; MDB_INVALID, MDB_CORRUPTED
// and MDB_PAGE_NOTFOUND become DataLoss; any other LMDB or system error becomes
// Internal with mdb_strerror's text. After a failed write transaction the store is
// failed: every batch of that job and every later batch completes with the same error
// without being written, and the visible state stays ahead of the durable state until
// the node crashes and reopens the store.
//
// Reads: Get and Scan run on the loop thread in short read-only transactions, merged
// with the overlay (latest pending write wins, pending deletes hide durable keys), and
// verify every stored value's checksum (storage/checked_value.h).
//
// Threading: event-loop only, except the write transactions the store itself submits
// to the IoExecutor. Destroying the store with commits pending or in flight is a crash:
// their `done` callbacks are dropped uncalled; a write transaction already running
// finishes on the IO thread, which keeps the environment open until then, so reopen the
// directory in the same process only after the IoExecutor has drained.
#ifndef UNIMETER_STORAGE_LMDB_STATE_STORE_H_
#define UNIMETER_STORAGE_LMDB_STATE_STORE_H_

#include <lmdb.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/io_executor.h"
#include "storage/pending_overlay.h"
#include "storage/state_store.h"

namespace unimeter {

struct LmdbStateStoreOptions {
  // The largest the data file may grow; LMDB reserves this much address space. A commit
  // that would grow past it fails with ResourceExhausted.
  uint64_t map_size_bytes = uint64_t{64} << 30;  // 64 GiB.
  // Concurrent read transactions (the store itself uses one, on the loop thread).
  uint32_t readers_max = 126;
};

class LmdbStateStore final : public StateStore {
 public:
  // Opens (creating if needed) the environment in `directory`, itself created if
  // missing (one level). `io` must outlive the store. Returns DataLoss for a file that is
  // not an LMDB environment or is corrupted, Internal for other failures.
  static absl::StatusOr<std::unique_ptr<LmdbStateStore>> Open(const std::string& directory,
                                                              const LmdbStateStoreOptions& options,
                                                              IoExecutor& io);

  LmdbStateStore(const LmdbStateStore&) = delete;
  LmdbStateStore& operator=(const LmdbStateStore&) = delete;
  ~LmdbStateStore() override;

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override;
  void Commit(WriteBatch batch, CommitDone done) override;
  // The size of data.mdb.
  uint64_t size_bytes() const override;

  // Batches committed whose `done` has not run yet (queued or in the running job).
  size_t pending_commit_count() const { return queued_.size() + in_flight_.size(); }
  // Write transactions submitted so far (each covers one or more batches).
  uint64_t write_transaction_count() const { return write_transaction_count_; }

 private:
  // REQUIRES: `visitor` does not call Commit on this store.
  absl::Status ScanMerged(std::string_view begin, std::string_view end, ScanVisitor visitor,
                          const DamageVisitor* on_damaged) override;
  struct Environment;  // The MDB_env and its database, shared with running IO jobs.
  struct IoJob;        // The batches of one write transaction and its result.
  struct PendingCommit {
    uint64_t sequence;
    WriteBatch batch;  // Moved into the IoJob when submitted.
    CommitDone done;
  };

  LmdbStateStore(std::shared_ptr<Environment> environment, IoExecutor& io);

  void SubmitJob();
  void FinishJob(IoJob& job);
  // A renewed read-only transaction; EndRead must follow.
  absl::StatusOr<MDB_txn*> BeginRead();
  void EndRead();

  std::shared_ptr<Environment> environment_;
  IoExecutor& io_;
  MDB_txn* read_transaction_ = nullptr;  // Reset between reads, renewed by BeginRead.
  bool reading_ = false;
  bool scanning_ = false;
  PendingOverlay overlay_;
  std::deque<PendingCommit> queued_;     // Not yet submitted.
  std::deque<PendingCommit> in_flight_;  // In the running job (batches moved out).
  bool job_in_flight_ = false;
  uint64_t sequence_last_ = 0;
  uint64_t write_transaction_count_ = 0;
  absl::Status failure_;  // Sticky: the first failed write transaction's error.
  // IO jobs complete through a weak reference, so those finishing after the store is
  // destroyed do nothing.
  std::shared_ptr<LmdbStateStore*> self_;
};

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_LMDB_STATE_STORE_H_
