// storage/lmdb_state_store.cc
#include "storage/lmdb_state_store.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "storage/checked_value.h"

namespace unimeter {
namespace {

// Maps an LMDB return code (an MDB_* code or an errno value) to our error taxonomy.
absl::Status LmdbError(int code, const std::string& context) {
  UM_CHECK_NE(code, MDB_SUCCESS);
  const std::string message = absl::StrCat(context, ": ", mdb_strerror(code));
  if (code == MDB_MAP_FULL || code == ENOSPC) {
    return absl::ResourceExhaustedError(message);
  }
  if (code == MDB_INVALID || code == MDB_CORRUPTED || code == MDB_PAGE_NOTFOUND) {
    return absl::DataLossError(message);
  }
  return absl::InternalError(message);
}

MDB_val ToVal(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view FromVal(const MDB_val& val) {
  return std::string_view(static_cast<const char*>(val.mv_data), val.mv_size);
}

// Adds one operation to write transaction `txn`; the value is encoded in place.
int ApplyOperation(MDB_txn* txn, MDB_dbi dbi, const WriteBatch::Operation& operation) {
  MDB_val key = ToVal(operation.key);
  if (operation.is_delete) {
    const int code = mdb_del(txn, dbi, &key, nullptr);
    return code == MDB_NOTFOUND ? MDB_SUCCESS : code;
  }
  MDB_val stored{kCheckedValueHeaderSizeBytes + operation.value.size(), nullptr};
  const int code = mdb_put(txn, dbi, &key, &stored, MDB_RESERVE);
  if (code != MDB_SUCCESS) {
    return code;
  }
  UM_CHECK(stored.mv_data != nullptr);
  UM_CHECK_EQ(stored.mv_size, kCheckedValueHeaderSizeBytes + operation.value.size());
  EncodeCheckedValueInto(operation.key, operation.value,
                         absl::MakeSpan(static_cast<char*>(stored.mv_data), stored.mv_size));
  return MDB_SUCCESS;
}

// Reads the stored values of a read-only transaction in key order, verifying each.
class LmdbDurableCursor final : public DurableCursor {
 public:
  explicit LmdbDurableCursor(MDB_cursor* cursor) : cursor_(cursor) { UM_CHECK(cursor_); }
  ~LmdbDurableCursor() override { mdb_cursor_close(cursor_); }

  absl::Status Seek(std::string_view key) override {
    // MDB_SET_RANGE rejects an empty key, and every key sorts after the empty one.
    key_ = ToVal(key);
    return Move(key.empty() ? MDB_FIRST : MDB_SET_RANGE);
  }
  bool Valid() const override { return valid_; }
  std::string_view key() const override {
    UM_CHECK(valid_);
    return FromVal(key_);
  }
  absl::StatusOr<std::string_view> value() const override {
    UM_CHECK(valid_);
    return DecodeCheckedValue(FromVal(key_), FromVal(value_));
  }
  absl::Status Next() override {
    UM_CHECK(valid_);
    return Move(MDB_NEXT);
  }

 private:
  absl::Status Move(MDB_cursor_op op) {
    const int code = mdb_cursor_get(cursor_, &key_, &value_, op);
    valid_ = code == MDB_SUCCESS;
    if (code == MDB_SUCCESS || code == MDB_NOTFOUND) {
      return absl::OkStatus();
    }
    return LmdbError(code, "mdb_cursor_get");
  }

  MDB_cursor* const cursor_;
  MDB_val key_{0, nullptr};
  MDB_val value_{0, nullptr};
  bool valid_ = false;
};

absl::Status CreateDirectory(const std::string& directory) {
  if (mkdir(directory.c_str(), 0755) == 0 || errno == EEXIST) {
    return absl::OkStatus();
  }
  return absl::InternalError(
      absl::StrCat("cannot create state store directory ", directory, ": ", strerror(errno)));
}

}  // namespace

struct LmdbStateStore::Environment {
  Environment() = default;
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment() {
    if (env != nullptr) {
      mdb_env_close(env);
    }
  }

  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
};

struct LmdbStateStore::IoJob {
  // Runs on the IO thread: writes every batch in one synced write transaction.
  absl::Status WriteDurably() const;

  std::shared_ptr<Environment> environment;
  std::vector<WriteBatch> batches;
  absl::Status status;  // Written on the IO thread, read on the loop after completion.
};

absl::Status LmdbStateStore::IoJob::WriteDurably() const {
  MDB_txn* txn = nullptr;
  int code = mdb_txn_begin(environment->env, nullptr, 0, &txn);
  if (code != MDB_SUCCESS) {
    return LmdbError(code, "mdb_txn_begin (write)");
  }
  UM_CHECK(txn != nullptr);
  for (const WriteBatch& batch : batches) {
    for (const WriteBatch::Operation& operation : batch.operations()) {
      code = ApplyOperation(txn, environment->dbi, operation);
      if (code != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        return LmdbError(code, operation.is_delete ? "mdb_del" : "mdb_put");
      }
    }
  }
  // Without MDB_NOSYNC / MDB_NOMETASYNC this writes the data pages, fdatasyncs, writes
  // the meta page and fdatasyncs again: the batches are durable when it returns OK.
  code = mdb_txn_commit(txn);
  if (code != MDB_SUCCESS) {
    return LmdbError(code, "mdb_txn_commit");
  }
  return absl::OkStatus();
}

namespace {

// Opens the environment with explicit limits and flags. On failure the caller's
// `environment` closes the half-opened MDB_env.
absl::Status OpenEnvironment(const std::string& directory, const LmdbStateStoreOptions& options,
                             MDB_env* env) {
  UM_CHECK(env != nullptr);
  UM_CHECK_GT(options.readers_max, 0u);
  int code = mdb_env_set_mapsize(env, options.map_size_bytes);
  if (code == MDB_SUCCESS) {
    code = mdb_env_set_maxreaders(env, options.readers_max);
  }
  if (code != MDB_SUCCESS) {
    return LmdbError(code, absl::StrCat("configuring LMDB environment ", directory));
  }
  // Durability flags, each named on purpose (simulation.md, "Storage rules"):
  //   MDB_NOSYNC     left out: every write transaction commit must fdatasync the data.
  //   MDB_NOMETASYNC left out: the meta page must be synced too, or the last commit
  //                  could be lost on a crash after its `done` ran.
  //   MDB_MAPASYNC   left out: meaningful only with MDB_WRITEMAP, which we do not use.
  //   MDB_WRITEMAP   left out: writes go through write(2), so a stray pointer into the
  //                  read-only map cannot corrupt the database, and no sparse file of
  //                  the full map size is created.
  //   MDB_NOTLS      passed: read transactions are not tied to threads; we use them
  //                  only on the loop thread and reuse one with reset/renew.
  //   MDB_NOSUBDIR   left out: `directory` is a directory holding data.mdb and lock.mdb.
  // Also left out: MDB_RDONLY, MDB_NOLOCK (keep the reader table and writer lock),
  // MDB_NORDAHEAD and MDB_NOMEMINIT (defaults), MDB_FIXEDMAP.
  const unsigned int flags = MDB_NOTLS;
  code = mdb_env_open(env, directory.c_str(), flags, 0644);
  if (code != MDB_SUCCESS) {
    return LmdbError(code, absl::StrCat("opening LMDB environment ", directory));
  }
  UM_CHECK_GE(static_cast<size_t>(mdb_env_get_maxkeysize(env)), StateStore::kKeySizeBytesMax);
  return absl::OkStatus();
}

// Reads the first key's stored bytes: LMDB checks the page types on the path from the
// root to the first leaf, so a damaged root is refused at open. Deeper damage surfaces
// on the read that reaches it (damaged values: as DataLoss through our checksum).
int ProbeFirstKey(MDB_txn* txn, MDB_dbi dbi) {
  MDB_cursor* cursor = nullptr;
  int code = mdb_cursor_open(txn, dbi, &cursor);
  if (code != MDB_SUCCESS) {
    return code;
  }
  MDB_val key{0, nullptr};
  MDB_val value{0, nullptr};
  code = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
  mdb_cursor_close(cursor);
  return code == MDB_NOTFOUND ? MDB_SUCCESS : code;
}

// Opens the main database in a read-only transaction (no write transaction outside the
// IO thread) and probes it.
absl::StatusOr<MDB_dbi> OpenMainDatabase(MDB_env* env, const std::string& directory) {
  MDB_txn* txn = nullptr;
  int code = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  if (code != MDB_SUCCESS) {
    return LmdbError(code, absl::StrCat("mdb_txn_begin (read) in ", directory));
  }
  UM_CHECK(txn != nullptr);
  MDB_dbi dbi = 0;
  code = mdb_dbi_open(txn, nullptr, 0, &dbi);
  if (code == MDB_SUCCESS) {
    code = ProbeFirstKey(txn, dbi);
  }
  if (code != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return LmdbError(code, absl::StrCat("opening the main database in ", directory));
  }
  code = mdb_txn_commit(txn);  // Keeps the database handle open.
  if (code != MDB_SUCCESS) {
    return LmdbError(code, absl::StrCat("mdb_txn_commit (read) in ", directory));
  }
  return dbi;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LmdbStateStore>> LmdbStateStore::Open(
    const std::string& directory, const LmdbStateStoreOptions& options, IoExecutor& io) {
  if (absl::Status status = CreateDirectory(directory); !status.ok()) {
    return status;
  }
  auto environment = std::make_shared<Environment>();
  const int code = mdb_env_create(&environment->env);
  if (code != MDB_SUCCESS) {
    return LmdbError(code, "mdb_env_create");
  }
  if (absl::Status status = OpenEnvironment(directory, options, environment->env); !status.ok()) {
    return status;
  }
  absl::StatusOr<MDB_dbi> dbi = OpenMainDatabase(environment->env, directory);
  if (!dbi.ok()) {
    return dbi.status();
  }
  environment->dbi = *dbi;
  return std::unique_ptr<LmdbStateStore>(new LmdbStateStore(std::move(environment), io));
}

LmdbStateStore::LmdbStateStore(std::shared_ptr<Environment> environment, IoExecutor& io)
    : environment_(std::move(environment)),
      io_(io),
      self_(std::make_shared<LmdbStateStore*>(this)) {
  UM_CHECK(environment_ != nullptr);
  UM_CHECK(environment_->env != nullptr);
}

LmdbStateStore::~LmdbStateStore() {
  UM_CHECK(!reading_);
  UM_CHECK(!scanning_);
  // The read transaction must end before the environment closes (here, or on the IO
  // thread when a running job drops the last reference).
  if (read_transaction_ != nullptr) {
    mdb_txn_abort(read_transaction_);
  }
}

absl::StatusOr<MDB_txn*> LmdbStateStore::BeginRead() {
  UM_CHECK(!reading_);
  const int code = read_transaction_ == nullptr
                       ? mdb_txn_begin(environment_->env, nullptr, MDB_RDONLY, &read_transaction_)
                       : mdb_txn_renew(read_transaction_);
  if (code != MDB_SUCCESS) {
    return LmdbError(code, "beginning a read transaction");
  }
  UM_CHECK(read_transaction_ != nullptr);
  reading_ = true;
  return read_transaction_;
}

void LmdbStateStore::EndRead() {
  UM_CHECK(reading_);
  UM_CHECK(read_transaction_ != nullptr);
  mdb_txn_reset(read_transaction_);  // Releases the snapshot; keeps the reader slot.
  reading_ = false;
}

absl::StatusOr<std::optional<std::string>> LmdbStateStore::Get(std::string_view key) {
  UM_CHECK_GE(key.size(), size_t{1});
  UM_CHECK_LE(key.size(), kKeySizeBytesMax);
  if (const PendingOverlay::Entry* entry = overlay_.Find(key); entry != nullptr) {
    return entry->value;
  }
  absl::StatusOr<MDB_txn*> txn = BeginRead();
  if (!txn.ok()) {
    return txn.status();
  }
  MDB_val key_val = ToVal(key);
  MDB_val stored{0, nullptr};
  const int code = mdb_get(*txn, environment_->dbi, &key_val, &stored);
  absl::StatusOr<std::optional<std::string>> result = std::nullopt;
  if (code == MDB_SUCCESS) {
    // Copy out before EndRead releases the snapshot the bytes live in.
    const absl::StatusOr<std::string_view> value = DecodeCheckedValue(key, FromVal(stored));
    result = value.ok() ? decltype(result)(std::string(*value)) : value.status();
  } else if (code != MDB_NOTFOUND) {
    result = LmdbError(code, "mdb_get");
  }
  EndRead();
  return result;
}

absl::Status LmdbStateStore::ScanMerged(std::string_view begin, std::string_view end,
                                        ScanVisitor visitor, const DamageVisitor* on_damaged) {
  UM_CHECK(!scanning_);
  absl::StatusOr<MDB_txn*> txn = BeginRead();
  if (!txn.ok()) {
    return txn.status();
  }
  MDB_cursor* cursor = nullptr;
  absl::Status status;
  if (const int code = mdb_cursor_open(*txn, environment_->dbi, &cursor); code != MDB_SUCCESS) {
    status = LmdbError(code, "mdb_cursor_open");
  } else {
    LmdbDurableCursor durable(cursor);  // Closes the cursor before EndRead.
    scanning_ = true;
    status = MergeScan(overlay_, begin, end, durable, visitor, on_damaged);
    scanning_ = false;
  }
  EndRead();
  return status;
}

void LmdbStateStore::Commit(WriteBatch batch, CommitDone done) {
  CheckKeySizes(batch);
  UM_CHECK(!scanning_);  // The overlay's iterators would be invalidated.
  const uint64_t sequence = ++sequence_last_;
  if (!batch.write_behind()) {
    overlay_.Apply(batch, sequence);
  }
  queued_.push_back(PendingCommit{sequence, std::move(batch), std::move(done)});
  if (!job_in_flight_) {
    SubmitJob();
  }
}

void LmdbStateStore::SubmitJob() {
  UM_CHECK(!job_in_flight_);
  UM_CHECK(!queued_.empty());
  UM_CHECK(in_flight_.empty());
  auto job = std::make_shared<IoJob>();
  job->environment = environment_;
  job->batches.reserve(queued_.size());
  for (PendingCommit& commit : queued_) {
    job->batches.push_back(std::move(commit.batch));
  }
  in_flight_ = std::move(queued_);
  queued_.clear();
  job_in_flight_ = true;
  ++write_transaction_count_;
  absl::AnyInvocable<void()> io_work;
  if (failure_.ok()) {
    io_work = [job] { job->status = job->WriteDurably(); };
  } else {
    job->status = failure_;  // A failed store writes nothing more.
  }
  io_.Submit(std::move(io_work), [self = std::weak_ptr<LmdbStateStore*>(self_), job] {
    if (const std::shared_ptr<LmdbStateStore*> store = self.lock()) {
      (*store)->FinishJob(*job);
    }
  });
}

void LmdbStateStore::FinishJob(IoJob& job) {
  UM_CHECK(job_in_flight_);
  UM_CHECK_EQ(in_flight_.size(), job.batches.size());
  if (failure_.ok()) {
    failure_ = job.status;
  }
  if (job.status.ok()) {
    for (size_t i = 0; i < job.batches.size(); ++i) {
      if (!job.batches[i].write_behind()) {
        overlay_.Retire(job.batches[i], in_flight_[i].sequence);
      }
    }
  }
  std::deque<PendingCommit> completed = std::move(in_flight_);
  in_flight_.clear();
  job_in_flight_ = false;
  if (!queued_.empty()) {
    SubmitJob();
  }
  // Last: a `done` may commit again or destroy this store (then the rest are dropped).
  const std::weak_ptr<LmdbStateStore*> self = self_;
  for (PendingCommit& commit : completed) {
    if (self.expired()) {
      return;
    }
    if (commit.done != nullptr) {
      std::move(commit.done)(job.status);
    }
  }
}

uint64_t LmdbStateStore::size_bytes() const {
  mdb_filehandle_t fd = -1;
  const int code = mdb_env_get_fd(environment_->env, &fd);
  UM_CHECK_EQ(code, MDB_SUCCESS);
  struct stat file_stat;
  UM_CHECK_EQ(fstat(fd, &file_stat), 0);
  return static_cast<uint64_t>(file_stat.st_size);
}

}  // namespace unimeter
