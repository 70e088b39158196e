// node/base/endian.h
//
// Little-endian fixed-width encoding, field by field (never memcpy a struct: padding
// would leak into checksums). All our persisted and node-to-node formats use these.
#ifndef UNIMETER_NODE_BASE_ENDIAN_H_
#define UNIMETER_NODE_BASE_ENDIAN_H_

#include <cstdint>
#include <cstring>

namespace unimeter {

inline void StoreU16(uint8_t* out, uint16_t value) {
  out[0] = static_cast<uint8_t>(value);
  out[1] = static_cast<uint8_t>(value >> 8);
}
inline void StoreU32(uint8_t* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<uint8_t>(value >> (8 * i));
  }
}
inline void StoreU64(uint8_t* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<uint8_t>(value >> (8 * i));
  }
}
inline uint16_t LoadU16(const uint8_t* in) {
  return static_cast<uint16_t>(in[0] | (static_cast<uint16_t>(in[1]) << 8));
}
inline uint32_t LoadU32(const uint8_t* in) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) {
    value = (value << 8) | in[i];
  }
  return value;
}
inline uint64_t LoadU64(const uint8_t* in) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) {
    value = (value << 8) | in[i];
  }
  return value;
}

}  // namespace unimeter

#endif  // UNIMETER_NODE_BASE_ENDIAN_H_
