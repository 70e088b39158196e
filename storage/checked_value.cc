// storage/checked_value.cc
#include "storage/checked_value.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "node/base/check.h"
#include "node/base/checksum.h"

namespace unimeter {
namespace {

static_assert(kCheckedValueHeaderSizeBytes == sizeof(uint32_t));

void StoreLittleEndian32(uint32_t word, char* out) {
  for (size_t i = 0; i < sizeof(word); ++i) {
    out[i] = static_cast<char>(static_cast<uint8_t>(word >> (8 * i)));
  }
}

uint32_t LoadLittleEndian32(const char* in) {
  uint32_t word = 0;
  for (size_t i = 0; i < sizeof(word); ++i) {
    word |= static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  }
  return word;
}

// Keys may be binary; Debian's Abseil has its own string_view type.
std::string EscapedKey(std::string_view key) {
  return absl::CHexEscape(absl::string_view(key.data(), key.size()));
}

}  // namespace

uint32_t CheckedValueChecksum(std::string_view key, std::string_view value) {
  const uint32_t key_crc = Crc32c(key.data(), key.size());
  return Crc32c(value.data(), value.size(), key_crc);
}

void EncodeCheckedValueInto(std::string_view key, std::string_view value, absl::Span<char> out) {
  UM_CHECK_EQ(out.size(), kCheckedValueHeaderSizeBytes + value.size());
  char* const value_begin = out.data() + kCheckedValueHeaderSizeBytes;
  // Overlap would make the copy below read bytes it has already overwritten.
  UM_CHECK(value.empty() || value.data() + value.size() <= out.data() ||
           value.data() >= out.data() + out.size());
  StoreLittleEndian32(CheckedValueChecksum(key, value), out.data());
  if (!value.empty()) {
    value.copy(value_begin, value.size());
  }
}

std::string EncodeCheckedValue(std::string_view key, std::string_view value) {
  std::string stored(kCheckedValueHeaderSizeBytes + value.size(), '\0');
  EncodeCheckedValueInto(key, value, absl::MakeSpan(stored));
  UM_CHECK_EQ(stored.size(), kCheckedValueHeaderSizeBytes + value.size());
  return stored;
}

absl::StatusOr<std::string_view> DecodeCheckedValue(std::string_view key, std::string_view stored) {
  if (stored.size() < kCheckedValueHeaderSizeBytes) {
    return absl::DataLossError(absl::StrCat("stored value of key \"", EscapedKey(key), "\" is ",
                                            stored.size(),
                                            " bytes, shorter than its checksum header"));
  }
  const std::string_view value = stored.substr(kCheckedValueHeaderSizeBytes);
  const uint32_t checksum_stored = LoadLittleEndian32(stored.data());
  const uint32_t checksum_computed = CheckedValueChecksum(key, value);
  if (checksum_stored != checksum_computed) {
    return absl::DataLossError(absl::StrCat("checksum mismatch in stored value of key \"",
                                            EscapedKey(key), "\" (", value.size(),
                                            " value bytes)"));
  }
  UM_CHECK_EQ(value.size() + kCheckedValueHeaderSizeBytes, stored.size());
  return value;
}

}  // namespace unimeter
