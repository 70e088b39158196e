// sim/sim_disk.h
//
// SimDisk is one simulated node's storage medium; it outlives node incarnations (a crash
// keeps it, WipeAll models a replaced disk). It holds the durable bytes of every disk
// file and the durable state-store contents (storage/memory_state_store.h).
//
// SimDiskFile is one incarnation's handle on a file: writes are queued, visible to reads
// at once (like a page cache), and become durable only when a Sync completes, after a
// seeded latency. A crash (the handle destroyed with its incarnation) loses every write
// whose Sync has not completed. A Sync whose writes would exceed the disk's capacity
// fails with ResourceExhausted and makes none of them durable.
#ifndef UNIMETER_SIM_SIM_DISK_H_
#define UNIMETER_SIM_SIM_DISK_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/strings/string_view.h"
#include "node/base/random.h"
#include "node/env/env.h"
#include "sim/sim_file_bytes.h"
#include "sim/simulator.h"
#include "storage/memory_state_store.h"

namespace unimeter::sim {

struct DiskOptions {
  int64_t sync_latency_min_ns = 20'000;
  int64_t sync_latency_mean_ns = 200'000;
  uint64_t capacity_bytes = uint64_t{1} << 40;
  // What a crash does to writes whose sync has not completed (F10/F11). With probability
  // crash_keeps_unsynced_ppm, a prefix of them (in write order) reaches the disk anyway and
  // the first write past the prefix is torn with probability crash_torn_ppm (a random
  // prefix of its bytes lands, followed by up to 512 bytes of garbage). Otherwise all are
  // lost. The model keeps write order (as an ordered-data file system does).
  uint32_t crash_keeps_unsynced_ppm = 0;
  uint32_t crash_torn_ppm = 0;
};

struct DiskStats {
  uint64_t writes = 0;
  uint64_t syncs = 0;
  uint64_t sync_failures = 0;
  uint64_t bytes_durable = 0;
  uint64_t wipes = 0;
};

class SimDisk {
 public:
  SimDisk(uint64_t seed, const DiskOptions& options) : prng_(seed), options_(options) {}

  // Loses everything (a replaced disk). REQUIRES: no live incarnation uses it.
  void WipeAll();
  // F21, a wrong disk: this disk now holds a copy of what `other` holds durably (another
  // node's data directory). REQUIRES: no file of this disk is open.
  void CopyDurableFrom(const SimDisk& other);

  // While set, the writes of an incarnation that goes away all reach the disk: a process
  // that exits (not a crash of the machine) leaves them in the page cache. SimCluster::Exit
  // sets it around the teardown.
  void set_exit_keeps_writes(bool keep) { exit_keeps_writes_ = keep; }
  bool exit_keeps_writes() const { return exit_keeps_writes_; }

  // Durable contents by file name. Mutate only through SimDiskFile, RemoveFile and
  // SetFileBytes, which keep used_bytes() right; tests may read freely.
  absl::btree_map<std::string, SimFileBytes>& durable_files() { return durable_files_; }
  const absl::btree_map<std::string, SimFileBytes>& durable_files() const { return durable_files_; }
  // The durable bytes of `name` (empty if there is no such file).
  std::string FileBytes(const std::string& name) const;
  // Replaces the durable bytes of `name` (tests: damage a file while its node is down).
  void SetFileBytes(const std::string& name, absl::string_view bytes);
  MemoryStateMedium& state_medium() { return state_medium_; }
  DiskOptions& options() { return options_; }
  DiskStats& stats() { return stats_; }
  uint64_t torn_writes() const { return torn_writes_; }
  // Syncs issued and not yet completed, over every handle (fault schedules aim crashes
  // inside these windows).
  uint64_t syncs_in_flight() const { return syncs_in_flight_; }
  // The same, for the handles of one file (scenarios crash a node while its replica.meta
  // write is in flight).
  uint64_t syncs_in_flight(const std::string& name) const {
    const auto found = file_syncs_in_flight_.find(name);
    return found == file_syncs_in_flight_.end() ? 0 : found->second;
  }
  void AddSyncsInFlight(const std::string& name, int64_t delta) {
    syncs_in_flight_ += delta;
    file_syncs_in_flight_[name] += delta;
  }
  void CountTornWrite() { ++torn_writes_; }
  // The next sync to complete on this disk fails with an I/O error and makes none of its
  // writes durable (Linux may drop the dirty pages of a failed fsync).
  void FailNextSync() { fail_next_sync_ = true; }
  bool TakeSyncFailure() { return std::exchange(fail_next_sync_, false); }
  // F14, a latent sector error: the next read of any file of this disk fails with EIO
  // (once; a later read of the same bytes succeeds, as after the drive remapped them).
  void FailNextRead() { fail_next_read_ = true; }
  bool TakeReadFailure() { return std::exchange(fail_next_read_, false); }
  // F12, corruption returned on read: the next read of `file` that covers `offset` returns
  // that byte XOR `mask` (once; the bytes at rest stay intact, so a later read is right).
  void CorruptNextReadAt(const std::string& file, uint64_t offset, uint8_t mask) {
    read_corruption_ = ReadCorruption{file, offset, mask};
  }
  // F16, a misdirected read: the next read of `file` that covers `offset` returns, for the
  // 4 KiB sector holding `offset`, the bytes of the sector at `source` (of the same file;
  // zeros past its end) instead, once.
  void MisdirectNextReadAt(const std::string& file, uint64_t offset, uint64_t source) {
    read_corruption_ = ReadCorruption{file, offset, 0, source};
  }
  // Applies an armed read fault to `out`, the bytes read from `file` (whose content is
  // `bytes`) at `offset`; true if it did.
  bool CorruptRead(const std::string& file, const SimFileBytes& bytes, uint64_t offset,
                   absl::Span<uint8_t> out);
  // Disarms a read corruption that no read met; true if one was armed.
  bool DisarmReadCorruption() { return std::exchange(read_corruption_, std::nullopt).has_value(); }
  Prng& prng() { return prng_; }
  // Bytes held by durable files; maintained incrementally.
  uint64_t used_bytes() const { return used_bytes_; }
  void AddUsedBytes(int64_t delta);
  void RemoveFile(const std::string& name);

  int64_t DrawSyncLatencyNs();

 private:
  Prng prng_;
  DiskOptions options_;
  DiskStats stats_;
  bool exit_keeps_writes_ = false;
  absl::btree_map<std::string, SimFileBytes> durable_files_;
  uint64_t used_bytes_ = 0;
  uint64_t torn_writes_ = 0;
  uint64_t syncs_in_flight_ = 0;
  absl::btree_map<std::string, uint64_t> file_syncs_in_flight_;
  bool fail_next_sync_ = false;
  bool fail_next_read_ = false;
  static constexpr uint64_t kNoSource = ~uint64_t{0};
  struct ReadCorruption {
    std::string file;
    uint64_t offset;
    uint8_t mask;                 // F12: the byte at `offset` reads XOR this.
    uint64_t source = kNoSource;  // F16: its sector reads as the one at `source`.
  };
  std::optional<ReadCorruption> read_corruption_;
  MemoryStateMedium state_medium_;
};

class SimDiskFile final : public DiskFile {
 public:
  SimDiskFile(Simulator& simulator, EventOwner owner, SimDisk& disk, std::string name,
              absl::AnyInvocable<void(absl::AnyInvocable<void()>)> run_callback);
  ~SimDiskFile() override;

  absl::StatusOr<size_t> Read(uint64_t offset, absl::Span<uint8_t> out) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> bytes) override;
  void Sync(SyncDone done) override;
  void Truncate(uint64_t size_bytes) override;
  uint64_t size_bytes() const override { return visible_.size(); }

 private:
  struct Operation {
    bool is_truncate;
    uint64_t offset;  // Or the new size for a truncate.
    std::string bytes;
    // Zero bytes that follow `bytes` (a WAL group's sector padding): kept as a count, not
    // copied around. The write covers [offset, offset + bytes.size() + zeros).
    uint64_t zeros = 0;
    uint64_t end() const { return offset + bytes.size() + zeros; }
  };
  static void Apply(const Operation& operation, SimFileBytes& file);
  void CompleteSync(std::vector<Operation> operations, SyncDone done);
  // A crash: settles every write not yet durable per the disk's crash model.
  void SettleUnsyncedOnCrash();

  Simulator& simulator_;
  const EventOwner owner_;
  SimDisk& disk_;
  const std::string name_;
  absl::AnyInvocable<void(absl::AnyInvocable<void()>)> run_callback_;
  SimFileBytes visible_;                        // Durable bytes plus every queued operation.
  std::vector<Operation> unsynced_;             // Queued since the last Sync call.
  std::deque<std::vector<Operation>> syncing_;  // Handed to syncs not yet completed.
  int64_t last_sync_completion_ns_ = 0;         // Syncs complete in order.
  std::shared_ptr<bool> alive_;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SIM_DISK_H_
