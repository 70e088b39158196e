#include "sim/sim_file_bytes.h"

#include <algorithm>
#include <cstring>

#include "node/base/check.h"

namespace unimeter::sim {

SimFileBytes::Chunk& SimFileBytes::MutableChunk(uint64_t index) {
  std::shared_ptr<Chunk>& chunk = chunks_[index];
  if (chunk == nullptr) {
    chunk = std::make_shared<Chunk>();  // Value-initialised: zeros.
  } else if (chunk.use_count() > 1) {
    chunk = std::make_shared<Chunk>(*chunk);
  }
  return *chunk;
}

void SimFileBytes::Resize(uint64_t size_bytes) {
  const uint64_t chunk_count = (size_bytes + kChunkBytes - 1) / kChunkBytes;
  if (size_bytes < size_bytes_) {
    chunks_.resize(chunk_count);
    // Keep the invariant: bytes past the end of the last chunk are zeros.
    const uint64_t tail = size_bytes % kChunkBytes;
    if (tail != 0 && chunks_.back() != nullptr) {
      Chunk& last = MutableChunk(chunk_count - 1);
      std::memset(last.data() + tail, 0, kChunkBytes - tail);
    }
  } else {
    chunks_.resize(chunk_count);  // New chunks are holes; the old tail is zeros already.
  }
  size_bytes_ = size_bytes;
}

void SimFileBytes::Write(uint64_t offset, absl::string_view bytes) {
  if (offset + bytes.size() > size_bytes_) Resize(offset + bytes.size());
  uint64_t done = 0;
  while (done < bytes.size()) {
    const uint64_t at = offset + done;
    const uint64_t within = at % kChunkBytes;
    const uint64_t count = std::min<uint64_t>(kChunkBytes - within, bytes.size() - done);
    std::memcpy(MutableChunk(at / kChunkBytes).data() + within, bytes.data() + done, count);
    done += count;
  }
}

void SimFileBytes::Zero(uint64_t offset, uint64_t count) {
  const uint64_t old_size = size_bytes_;
  if (offset + count > size_bytes_) Resize(offset + count);
  // Bytes at or past the old size are zeros already (a WAL group's padding, mostly).
  count = offset >= old_size ? 0 : std::min(count, old_size - offset);
  uint64_t done = 0;
  while (done < count) {
    const uint64_t at = offset + done;
    const uint64_t within = at % kChunkBytes;
    const uint64_t piece = std::min<uint64_t>(kChunkBytes - within, count - done);
    std::shared_ptr<Chunk>& chunk = chunks_[at / kChunkBytes];
    if (piece == kChunkBytes) {
      chunk = nullptr;  // A whole chunk of zeros is a hole.
    } else if (chunk != nullptr) {
      std::memset(MutableChunk(at / kChunkBytes).data() + within, 0, piece);
    }
    done += piece;
  }
}

void SimFileBytes::Read(uint64_t offset, absl::Span<char> out) const {
  UM_CHECK_LE(offset + out.size(), size_bytes_);
  uint64_t done = 0;
  while (done < out.size()) {
    const uint64_t at = offset + done;
    const uint64_t within = at % kChunkBytes;
    const uint64_t count = std::min<uint64_t>(kChunkBytes - within, out.size() - done);
    const std::shared_ptr<Chunk>& chunk = chunks_[at / kChunkBytes];
    if (chunk == nullptr) {
      std::memset(out.data() + done, 0, count);
    } else {
      std::memcpy(out.data() + done, chunk->data() + within, count);
    }
    done += count;
  }
}

std::string SimFileBytes::ToString() const {
  std::string bytes(size_bytes_, '\0');
  Read(0, absl::MakeSpan(bytes.data(), bytes.size()));
  return bytes;
}

}  // namespace unimeter::sim
