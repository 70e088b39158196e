// sim/sim_file_bytes.h
//
// SimFileBytes is the contents of one simulated file: fixed-size chunks shared
// copy-on-write, where a chunk never written (or wholly zeroed) is a hole that reads as
// zeros and takes no memory. Copying a SimFileBytes (a new incarnation opening a file, the
// durable image beside the visible one) copies chunk pointers, not bytes; a write copies
// only the chunks it touches that are still shared. A whole-file std::string made every
// reopen copy the file and every growth copy and zero-fill it again: half of a loaded
// simulation's time (docs/simulation.md, "Speed").
//
// Contract: bytes at or past size() are never visible; growing the file reveals zeros.
#ifndef UNIMETER_SIM_SIM_FILE_BYTES_H_
#define UNIMETER_SIM_SIM_FILE_BYTES_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace unimeter::sim {

class SimFileBytes {
 public:
  static constexpr uint64_t kChunkBytes = 64 * 1024;

  SimFileBytes() = default;
  explicit SimFileBytes(absl::string_view bytes) { Write(0, bytes); }

  uint64_t size() const { return size_bytes_; }
  // Grows with zeros or drops every byte at or past `size_bytes`.
  void Resize(uint64_t size_bytes);
  // Writes `bytes` at `offset`, growing the file (with zeros before `offset`) as needed.
  void Write(uint64_t offset, absl::string_view bytes);
  // Makes [offset, offset + count) zeros, growing the file as needed.
  void Zero(uint64_t offset, uint64_t count);
  // Copies [offset, offset + out.size()) into `out`. REQUIRES: within size().
  void Read(uint64_t offset, absl::Span<char> out) const;
  std::string ToString() const;

 private:
  using Chunk = std::array<char, kChunkBytes>;
  // The chunk, allocated (zeroed) if it was a hole and copied if it is shared.
  Chunk& MutableChunk(uint64_t index);

  std::vector<std::shared_ptr<Chunk>> chunks_;  // nullptr: a hole (zeros).
  uint64_t size_bytes_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_SIM_FILE_BYTES_H_
