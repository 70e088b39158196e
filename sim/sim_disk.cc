#include "sim/sim_disk.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter::sim {
namespace {

// The length of `bytes` without its trailing zeros, eight bytes at a time: a WAL writes
// megabytes of zeros ahead of its records (preallocation), kept as a count, not as bytes.
size_t LengthWithoutTrailingZeros(absl::Span<const uint8_t> bytes) {
  size_t kept = bytes.size();
  while (kept >= sizeof(uint64_t)) {
    uint64_t word = 0;
    std::memcpy(&word, bytes.data() + kept - sizeof(word), sizeof(word));
    if (word != 0) break;
    kept -= sizeof(word);
  }
  while (kept > 0 && bytes[kept - 1] == 0) --kept;
  return kept;
}

}  // namespace

void SimDisk::WipeAll() {
  durable_files_.clear();
  used_bytes_ = 0;
  state_medium_.Wipe();
  ++stats_.wipes;
}

void SimDisk::CopyDurableFrom(const SimDisk& other) {
  durable_files_ = other.durable_files_;
  used_bytes_ = other.used_bytes_;
  state_medium_.CopyFrom(other.state_medium_);
}

void SimDisk::AddUsedBytes(int64_t delta) {
  UM_CHECK_GE(static_cast<int64_t>(used_bytes_) + delta, 0);
  used_bytes_ = static_cast<uint64_t>(static_cast<int64_t>(used_bytes_) + delta);
}

std::string SimDisk::FileBytes(const std::string& name) const {
  auto it = durable_files_.find(name);
  return it == durable_files_.end() ? std::string() : it->second.ToString();
}

void SimDisk::SetFileBytes(const std::string& name, absl::string_view bytes) {
  SimFileBytes& file = durable_files_[name];
  AddUsedBytes(static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(file.size()));
  file = SimFileBytes(bytes);
}

void SimDisk::RemoveFile(const std::string& name) {
  auto it = durable_files_.find(name);
  if (it != durable_files_.end()) {
    AddUsedBytes(-static_cast<int64_t>(it->second.size()));
    durable_files_.erase(it);
  }
}

int64_t SimDisk::DrawSyncLatencyNs() {
  return options_.sync_latency_min_ns + static_cast<int64_t>(prng_.Exponential(
                                            static_cast<uint64_t>(options_.sync_latency_mean_ns)));
}

SimDiskFile::SimDiskFile(Simulator& simulator, EventOwner owner, SimDisk& disk, std::string name,
                         absl::AnyInvocable<void(absl::AnyInvocable<void()>)> run_callback)
    : simulator_(simulator),
      owner_(owner),
      disk_(disk),
      name_(std::move(name)),
      run_callback_(std::move(run_callback)),
      visible_(disk.durable_files()[name_]),
      alive_(std::make_shared<bool>(true)) {}

SimDiskFile::~SimDiskFile() {
  *alive_ = false;
  disk_.AddSyncsInFlight(name_, -static_cast<int64_t>(syncing_.size()));
  SettleUnsyncedOnCrash();
}

void SimDiskFile::SettleUnsyncedOnCrash() {
  std::vector<Operation> pending;
  for (std::vector<Operation>& group : syncing_) {
    pending.insert(pending.end(), group.begin(), group.end());
  }
  pending.insert(pending.end(), unsynced_.begin(), unsynced_.end());
  const DiskOptions& options = disk_.options();
  const bool exit_keeps_all = disk_.exit_keeps_writes();
  if (pending.empty() ||
      (!exit_keeps_all && !disk_.prng().Chance(options.crash_keeps_unsynced_ppm, 1'000'000))) {
    return;  // Everything unsynced is lost.
  }
  SimFileBytes& durable = disk_.durable_files()[name_];
  const uint64_t size_before = durable.size();
  const size_t kept =
      exit_keeps_all ? pending.size() : disk_.prng().UniformBelow(pending.size() + 1);
  for (size_t i = 0; i < kept; ++i) {
    Apply(pending[i], durable);
  }
  if (kept < pending.size() && !pending[kept].is_truncate &&
      disk_.prng().Chance(options.crash_torn_ppm, 1'000'000)) {
    Operation torn = pending[kept];
    torn.bytes.append(torn.zeros, '\0');
    torn.zeros = 0;
    torn.bytes.resize(disk_.prng().UniformBelow(torn.bytes.size() + 1));
    const size_t garbage = disk_.prng().UniformBelow(513);
    for (size_t i = 0; i < garbage; ++i) {
      torn.bytes.push_back(static_cast<char>(disk_.prng().UniformBelow(256)));
    }
    Apply(torn, durable);
    disk_.CountTornWrite();
  }
  disk_.AddUsedBytes(static_cast<int64_t>(durable.size()) - static_cast<int64_t>(size_before));
}

absl::StatusOr<size_t> SimDiskFile::Read(uint64_t offset, absl::Span<uint8_t> out) {
  if (disk_.TakeReadFailure()) {
    return absl::InternalError(
        absl::StrCat("EIO reading ", name_, " at offset ", offset, " (latent sector error)"));
  }
  if (offset >= visible_.size()) {
    return 0;
  }
  const size_t count = std::min<uint64_t>(out.size(), visible_.size() - offset);
  visible_.Read(offset, absl::MakeSpan(reinterpret_cast<char*>(out.data()), count));
  disk_.CorruptRead(name_, visible_, offset, out.first(count));
  return count;
}

bool SimDisk::CorruptRead(const std::string& file, const SimFileBytes& bytes, uint64_t offset,
                          absl::Span<uint8_t> out) {
  if (!read_corruption_.has_value() || read_corruption_->file != file ||
      read_corruption_->offset < offset || read_corruption_->offset - offset >= out.size()) {
    return false;
  }
  const ReadCorruption fault = *std::exchange(read_corruption_, std::nullopt);
  if (fault.source == kNoSource) {
    out[fault.offset - offset] ^= fault.mask;
    return true;
  }
  constexpr uint64_t kSectorBytes = 4096;
  const uint64_t sector = fault.offset / kSectorBytes * kSectorBytes;
  const uint64_t source_sector = fault.source / kSectorBytes * kSectorBytes;
  const uint64_t begin = std::max(sector, offset);
  const uint64_t end = std::min(sector + kSectorBytes, offset + out.size());
  for (uint64_t at = begin; at < end; ++at) out[at - offset] = 0;
  const uint64_t from = source_sector + (begin - sector);
  if (from < bytes.size()) {
    const uint64_t count = std::min(end - begin, bytes.size() - from);
    bytes.Read(from, absl::MakeSpan(reinterpret_cast<char*>(out.data() + (begin - offset)), count));
  }
  return true;
}

void SimDiskFile::Apply(const Operation& operation, SimFileBytes& file) {
  if (operation.is_truncate) {
    file.Resize(std::min<uint64_t>(file.size(), operation.offset));
    return;
  }
  file.Write(operation.offset, operation.bytes);
  if (operation.zeros > 0) file.Zero(operation.offset + operation.bytes.size(), operation.zeros);
}

void SimDiskFile::Write(uint64_t offset, absl::Span<const uint8_t> bytes) {
  // A process that fail-stopped is gone (the real Env aborts at once): what its code does
  // before the crash is torn down reaches no disk.
  if (!simulator_.IsAlive(owner_)) return;
  ++disk_.stats().writes;
  const size_t kept = LengthWithoutTrailingZeros(bytes);
  Operation operation{false, offset, std::string(bytes.begin(), bytes.begin() + kept),
                      bytes.size() - kept};
  Apply(operation, visible_);
  unsynced_.push_back(std::move(operation));
}

void SimDiskFile::Truncate(uint64_t size_bytes) {
  if (!simulator_.IsAlive(owner_)) return;  // Fail-stopped: see Write.
  Operation operation{true, size_bytes, {}};
  Apply(operation, visible_);
  unsynced_.push_back(std::move(operation));
}

void SimDiskFile::Sync(SyncDone done) {
  if (!simulator_.IsAlive(owner_)) return;  // Fail-stopped: never completes.
  uint64_t bytes = 0;
  for (const Operation& operation : unsynced_) {
    bytes += operation.bytes.size() + operation.zeros;
  }
  const uint64_t count = unsynced_.size();
  // Until completion a crash settles them per the model. Syncs complete in issue order
  // (completion times never decrease), so the completing sync's group is the front one.
  syncing_.push_back(std::move(unsynced_));
  unsynced_.clear();
  disk_.AddSyncsInFlight(name_, 1);
  const int64_t completion_ns =
      std::max(simulator_.now_ns() + disk_.DrawSyncLatencyNs(), last_sync_completion_ns_);
  last_sync_completion_ns_ = completion_ns;
  std::shared_ptr<bool> alive = alive_;
  simulator_.Schedule(completion_ns - simulator_.now_ns(), owner_, EventKind::kDiskSync,
                      bytes ^ (count << 40), [this, alive, done = std::move(done)]() mutable {
                        if (!*alive) {
                          return;  // The handle was closed: nothing more becomes durable.
                        }
                        UM_CHECK(!syncing_.empty());
                        std::vector<Operation> operations = std::move(syncing_.front());
                        syncing_.pop_front();
                        disk_.AddSyncsInFlight(name_, -1);
                        CompleteSync(std::move(operations), std::move(done));
                      });
}

void SimDiskFile::CompleteSync(std::vector<Operation> operations, SyncDone done) {
  SimFileBytes& durable = disk_.durable_files()[name_];
  // Size after the operations, computed first so a full disk fails with nothing applied.
  uint64_t size_after = durable.size();
  for (const Operation& operation : operations) {
    size_after = operation.is_truncate ? std::min<uint64_t>(size_after, operation.offset)
                                       : std::max<uint64_t>(size_after, operation.end());
  }
  absl::Status status = absl::OkStatus();
  const uint64_t used_after = disk_.used_bytes() - durable.size() + size_after;
  if (disk_.TakeSyncFailure()) {
    ++disk_.stats().sync_failures;
    status = absl::DataLossError("simulated fsync error (EIO)");
  } else if (size_after > durable.size() && used_after > disk_.options().capacity_bytes) {
    ++disk_.stats().sync_failures;
    status = absl::ResourceExhaustedError("simulated disk full");
  } else {
    const uint64_t size_before = durable.size();
    for (const Operation& operation : operations) {
      Apply(operation, durable);
    }
    UM_CHECK_EQ(durable.size(), size_after);
    disk_.AddUsedBytes(static_cast<int64_t>(size_after) - static_cast<int64_t>(size_before));
    disk_.stats().bytes_durable += size_after > size_before ? size_after - size_before : 0;
  }
  ++disk_.stats().syncs;
  run_callback_([&] { done(std::move(status)); });
}

}  // namespace unimeter::sim
