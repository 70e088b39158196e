// storage/memory_state_store.cc
#include "storage/memory_state_store.h"

#include <utility>

#include "node/base/check.h"
#include "storage/checked_value.h"

namespace unimeter {
namespace {

using StoredMap = absl::btree_map<std::string, std::string, std::less<>>;

// Walks the medium's durable map, verifying each value's checksum as it is read.
class MemoryDurableCursor final : public DurableCursor {
 public:
  explicit MemoryDurableCursor(const StoredMap& stored)
      : stored_(stored), position_(stored.end()) {}

  absl::Status Seek(std::string_view key) override {
    position_ = stored_.lower_bound(key);
    return absl::OkStatus();
  }
  bool Valid() const override { return position_ != stored_.end(); }
  std::string_view key() const override {
    UM_CHECK(Valid());
    return position_->first;
  }
  absl::StatusOr<std::string_view> value() const override {
    UM_CHECK(Valid());
    return DecodeCheckedValue(position_->first, position_->second);
  }
  absl::Status Next() override {
    UM_CHECK(Valid());
    ++position_;
    return absl::OkStatus();
  }

 private:
  const StoredMap& stored_;
  StoredMap::const_iterator position_;
};

}  // namespace

MemoryStateMedium::~MemoryStateMedium() { UM_CHECK(!store_open_); }

void MemoryStateMedium::Wipe() {
  UM_CHECK(!store_open_);
  stored_.clear();
  size_bytes_ = 0;
}

void MemoryStateMedium::CopyFrom(const MemoryStateMedium& other) {
  UM_CHECK(!store_open_);
  stored_ = other.stored_;
  size_bytes_ = other.size_bytes_;
}

const std::string& MemoryStateMedium::KeyAt(size_t rank) const {
  UM_CHECK_LT(rank, stored_.size());
  return std::next(stored_.begin(), static_cast<std::ptrdiff_t>(rank))->first;
}

bool MemoryStateMedium::CorruptValueAtRest(std::string_view key) {
  const auto it = stored_.find(key);
  if (it == stored_.end()) {
    return false;
  }
  std::string& stored = it->second;
  UM_CHECK(!stored.empty());  // Every stored value has at least its checksum header.
  stored.back() = static_cast<char>(stored.back() ^ 0x01);
  return true;
}

absl::Status MemoryStateMedium::WriteDurably(const WriteBatch& batch) {
  if (fail_next_commits_ > 0) {
    --fail_next_commits_;
    return absl::ResourceExhaustedError("disk full");
  }
  for (const WriteBatch::Operation& operation : batch.operations()) {
    if (operation.is_delete) {
      EraseStored(std::string(operation.key));
    } else {
      PutStored(std::string(operation.key), EncodeCheckedValue(operation.key, operation.value));
    }
  }
  return absl::OkStatus();
}

void MemoryStateMedium::PutStored(const std::string& key, std::string stored) {
  UM_CHECK_GE(stored.size(), kCheckedValueHeaderSizeBytes);
  EraseStored(key);
  size_bytes_ += key.size() + stored.size();
  const bool inserted = stored_.emplace(key, std::move(stored)).second;
  UM_CHECK(inserted);
}

void MemoryStateMedium::EraseStored(const std::string& key) {
  const auto it = stored_.find(key);
  if (it == stored_.end()) {
    return;
  }
  const uint64_t entry_size_bytes = it->first.size() + it->second.size();
  UM_CHECK_GE(size_bytes_, entry_size_bytes);
  size_bytes_ -= entry_size_bytes;
  stored_.erase(it);
}

MemoryStateStore::MemoryStateStore(MemoryStateMedium& medium,
                                   ScheduleCompletion schedule_completion)
    : medium_(medium),
      schedule_completion_(std::move(schedule_completion)),
      self_(std::make_shared<MemoryStateStore*>(this)) {
  UM_CHECK(schedule_completion_ != nullptr);
  UM_CHECK(!medium_.store_open_);
  medium_.store_open_ = true;
}

MemoryStateStore::~MemoryStateStore() {
  UM_CHECK(medium_.store_open_);
  UM_CHECK(!scanning_);
  medium_.store_open_ = false;
}

absl::StatusOr<std::optional<std::string>> MemoryStateStore::Get(std::string_view key) {
  UM_CHECK_GE(key.size(), size_t{1});
  UM_CHECK_LE(key.size(), kKeySizeBytesMax);
  if (const PendingOverlay::Entry* entry = overlay_.Find(key); entry != nullptr) {
    return entry->value;
  }
  const auto it = medium_.stored_.find(key);
  if (it == medium_.stored_.end()) {
    return std::nullopt;
  }
  const absl::StatusOr<std::string_view> value = DecodeCheckedValue(key, it->second);
  if (!value.ok()) {
    return value.status();
  }
  return std::string(*value);
}

absl::Status MemoryStateStore::ScanMerged(std::string_view begin, std::string_view end,
                                          ScanVisitor visitor, const DamageVisitor* on_damaged) {
  UM_CHECK(!scanning_);
  MemoryDurableCursor durable(medium_.stored_);
  scanning_ = true;
  const absl::Status status = MergeScan(overlay_, begin, end, durable, visitor, on_damaged);
  scanning_ = false;
  return status;
}

void MemoryStateStore::Commit(WriteBatch batch, CommitDone done) {
  CheckKeySizes(batch);
  UM_CHECK(!scanning_);  // The overlay's iterators would be invalidated.
  UM_CHECK(!in_commit_);
  const uint64_t sequence = ++sequence_last_;
  if (!batch.write_behind()) {
    overlay_.Apply(batch, sequence);
  }
  pending_.push_back(PendingCommit{sequence, std::move(batch), std::move(done)});
  in_commit_ = true;
  schedule_completion_([self = std::weak_ptr<MemoryStateStore*>(self_)] {
    if (const std::shared_ptr<MemoryStateStore*> store = self.lock()) {
      (*store)->CompleteOldest();
    }
  });
  in_commit_ = false;
}

void MemoryStateStore::CompleteOldest() {
  UM_CHECK(!in_commit_);  // schedule_completion must not complete inline.
  UM_CHECK(!scanning_);
  UM_CHECK(!pending_.empty());  // One completion per Commit, so one batch per call.
  PendingCommit commit = std::move(pending_.front());
  pending_.pop_front();
  if (failure_.ok()) {
    failure_ = medium_.WriteDurably(commit.batch);
  }
  if (failure_.ok() && !commit.batch.write_behind()) {
    overlay_.Retire(commit.batch, commit.sequence);
  }
  // Last: `done` may commit again or destroy this store.
  if (commit.done != nullptr) {
    std::move(commit.done)(failure_);
  }
}

}  // namespace unimeter
