// node/metering/hashes.h
//
// The hashes of wire-protocol-v1.md section 10 [compat]: FNV-1a 64, the metric code hash,
// the dimension pair hash and the AND-combination hash. They define metric identity and
// dimension-slice identity. Every string is hashed up to its first NUL byte.
// Test vectors: hashes_test.cc.
#ifndef UNIMETER_NODE_METERING_HASHES_H_
#define UNIMETER_NODE_METERING_HASHES_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace unimeter::metering {

inline constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
inline constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

// FNV-1a 64 over every byte of `bytes` (NULs included).
inline uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t hash = kFnvOffsetBasis;
  for (const char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  return hash;
}

// The bytes of `text` up to its first NUL (all of it if it has none).
inline absl::string_view UpToNul(absl::string_view text) {
  const size_t nul = text.find('\0');
  return nul == absl::string_view::npos ? text : text.substr(0, nul);
}

// Metric identity: FNV-1a over the code up to the first NUL.
inline uint64_t MetricCodeHash(absl::string_view code) { return Fnv1a64(UpToNul(code)); }

// Dimension (pair) hash: FNV-1a(key) XOR FNV-1a(value).
inline uint64_t PairHash(absl::string_view key, absl::string_view value) {
  return Fnv1a64(UpToNul(key)) ^ Fnv1a64(UpToNul(value));
}

// AND-combination hash: XOR of the pair hashes (0 for the empty set = unfiltered total).
inline uint64_t AndHash(absl::Span<const uint64_t> pair_hashes) {
  uint64_t hash = 0;
  for (const uint64_t pair_hash : pair_hashes) hash ^= pair_hash;
  return hash;
}

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_HASHES_H_
