// storage/checked_value.h
//
// The checked-value envelope: every value a StateStore keeps on disk is stored as
//
//   [CRC32C over key bytes then value bytes, 4 bytes little-endian][value bytes]
//
// (docs/formats/checked_value.md). The checksum covers the key as well as the value, so a
// value that a faulty disk or a bug moved under another key is detected like a flipped
// bit. The envelope does not record the value length: the store records it.
//
// Pure functions with no state; safe on any thread.
#ifndef UNIMETER_STORAGE_CHECKED_VALUE_H_
#define UNIMETER_STORAGE_CHECKED_VALUE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace unimeter {

// Size of the checksum header in front of every stored value.
inline constexpr size_t kCheckedValueHeaderSizeBytes = 4;

// The checksum that the header carries for `value` stored under `key`.
uint32_t CheckedValueChecksum(std::string_view key, std::string_view value);

// Returns the stored form of `value` under `key`: header, then the value bytes.
std::string EncodeCheckedValue(std::string_view key, std::string_view value);

// Writes the stored form into `out` without allocating (for stores that reserve space
// in place, such as LMDB's MDB_RESERVE).
// REQUIRES: out.size() == kCheckedValueHeaderSizeBytes + value.size(), and `out` does
// not overlap `value`.
void EncodeCheckedValueInto(std::string_view key, std::string_view value, absl::Span<char> out);

// Verifies `stored` (as read back under `key`) and returns a view of its value bytes,
// pointing into `stored`. Returns DataLoss naming the key (C-hex-escaped) if `stored` is
// shorter than the header or its checksum does not match. Stored bytes are disk input,
// so a mismatch is an error, never a crash.
absl::StatusOr<std::string_view> DecodeCheckedValue(std::string_view key, std::string_view stored);

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_CHECKED_VALUE_H_
