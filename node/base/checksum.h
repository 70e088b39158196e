// node/base/checksum.h
//
// Checksums and hashes with fixed, documented definitions. They are persisted, sent
// between nodes and folded into trace digests, so their values must never depend on the
// process, the machine or the build (unlike absl::Hash).
//
//   Crc32c   CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2.
//   Hash64   our own 64-bit multiply-xorshift hash over 8-byte little-endian words.
//   Digest   an order-sensitive running fold of 64-bit values (trace and state digests).
#ifndef UNIMETER_NODE_BASE_CHECKSUM_H_
#define UNIMETER_NODE_BASE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace unimeter {

// CRC-32C of `size` bytes, continuing from `crc` (0 for a fresh checksum).
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);
inline uint32_t Crc32c(absl::Span<const uint8_t> bytes, uint32_t crc = 0) {
  return Crc32c(bytes.data(), bytes.size(), crc);
}

// Mixes one 64-bit value (a strong finaliser; bijective).
uint64_t Mix64(uint64_t value);

// 64-bit hash of `size` bytes with a seed.
uint64_t Hash64(const void* data, size_t size, uint64_t seed = 0);
inline uint64_t Hash64(absl::Span<const uint8_t> bytes, uint64_t seed = 0) {
  return Hash64(bytes.data(), bytes.size(), seed);
}

// Order-sensitive running digest: Add(a); Add(b) differs from Add(b); Add(a).
class Digest {
 public:
  void Add(uint64_t value) { state_ = Mix64(state_ ^ Mix64(value + kIncrement)) + kIncrement; }
  void AddBytes(const void* data, size_t size) { Add(Hash64(data, size, size)); }
  uint64_t value() const { return state_; }

 private:
  static constexpr uint64_t kIncrement = 0x9E3779B97F4A7C15ULL;
  uint64_t state_ = 0x243F6A8885A308D3ULL;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_BASE_CHECKSUM_H_
