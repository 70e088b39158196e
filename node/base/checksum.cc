#include "node/base/checksum.h"

#include <array>
#include <cstring>

namespace unimeter {
namespace {

constexpr uint32_t kCrc32cPolynomialReversed = 0x82F63B78u;

constexpr std::array<std::array<uint32_t, 256>, 8> MakeCrc32cTables() {
  std::array<std::array<uint32_t, 256>, 8> tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ ((crc & 1u) ? kCrc32cPolynomialReversed : 0u);
    }
    tables[0][byte] = crc;
  }
  for (uint32_t byte = 0; byte < 256; ++byte) {
    for (int table = 1; table < 8; ++table) {
      const uint32_t previous = tables[table - 1][byte];
      tables[table][byte] = (previous >> 8) ^ tables[0][previous & 0xFFu];
    }
  }
  return tables;
}

constexpr auto kCrc32cTables = MakeCrc32cTables();

uint64_t LoadLittleEndian64(const uint8_t* bytes) {
  uint64_t value;
  std::memcpy(&value, bytes, sizeof(value));
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host assumed");
  return value;
}

uint32_t Crc32cSoftware(const uint8_t* bytes, size_t size, uint32_t crc) {
  while (size >= 8) {
    const uint64_t word = LoadLittleEndian64(bytes) ^ crc;
    crc = kCrc32cTables[7][word & 0xFF] ^ kCrc32cTables[6][(word >> 8) & 0xFF] ^
          kCrc32cTables[5][(word >> 16) & 0xFF] ^ kCrc32cTables[4][(word >> 24) & 0xFF] ^
          kCrc32cTables[3][(word >> 32) & 0xFF] ^ kCrc32cTables[2][(word >> 40) & 0xFF] ^
          kCrc32cTables[1][(word >> 48) & 0xFF] ^ kCrc32cTables[0][word >> 56];
    bytes += 8;
    size -= 8;
  }
  while (size > 0) {
    crc = (crc >> 8) ^ kCrc32cTables[0][(crc ^ *bytes) & 0xFFu];
    ++bytes;
    --size;
  }
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(const uint8_t* bytes, size_t size,
                                                          uint32_t crc) {
  uint64_t crc64 = crc;
  while (size >= 8) {
    crc64 = __builtin_ia32_crc32di(crc64, LoadLittleEndian64(bytes));
    bytes += 8;
    size -= 8;
  }
  uint32_t crc32 = static_cast<uint32_t>(crc64);
  while (size > 0) {
    crc32 = __builtin_ia32_crc32qi(crc32, *bytes);
    ++bytes;
    --size;
  }
  return crc32;
}

bool HasSse42() {
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  return has_sse42;
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t size, uint32_t crc) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (HasSse42()) {
    return ~Crc32cHardware(bytes, size, crc);
  }
#endif
  return ~Crc32cSoftware(bytes, size, crc);
}

uint64_t Mix64(uint64_t value) {
  value ^= value >> 32;
  value *= 0xD6E8FEB86659FD93ULL;
  value ^= value >> 32;
  value *= 0xD6E8FEB86659FD93ULL;
  value ^= value >> 32;
  return value;
}

uint64_t Hash64(const void* data, size_t size, uint64_t seed) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  uint64_t state = Mix64(seed ^ 0x8CB92BA72F3D8DD7ULL) ^ size;
  while (size >= 8) {
    state = Mix64(state ^ LoadLittleEndian64(bytes)) * 0x9FB21C651E98DF25ULL;
    bytes += 8;
    size -= 8;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < size; ++i) {
    tail |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  }
  return Mix64(state ^ tail ^ (static_cast<uint64_t>(size) << 56));
}

}  // namespace unimeter
