// node/metering/byte_io.h
//
// ByteWriter and ByteReader: field-by-field little-endian encoding for the metering log
// entries and snapshots (docs/formats/metering_entries.md). The reader never reads past
// its input: every Read* returns false (and the reader stays failed) on a short input.
#ifndef UNIMETER_NODE_METERING_BYTE_IO_H_
#define UNIMETER_NODE_METERING_BYTE_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "node/base/check.h"
#include "node/base/checksum.h"
#include "node/base/endian.h"

namespace unimeter::metering {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>* out) : out_(out) {}

  void U8(uint8_t value) { out_->push_back(value); }
  void U16(uint16_t value) { StoreU16(Grow(2), value); }
  void U32(uint32_t value) { StoreU32(Grow(4), value); }
  void U64(uint64_t value) { StoreU64(Grow(8), value); }
  void I64(int64_t value) { U64(static_cast<uint64_t>(value)); }
  void U128(unsigned __int128 value) {
    U64(static_cast<uint64_t>(value));
    U64(static_cast<uint64_t>(value >> 64));
  }
  // A string of at most 255 bytes: u8 length, then the bytes.
  void String8(const std::string& text) {
    U8(static_cast<uint8_t>(text.size()));
    Raw(text.data(), text.size());
  }
  void Raw(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    out_->insert(out_->end(), bytes, bytes + size);
  }

  // Bytes in the buffer so far, and the buffer itself (for encoders that append to it).
  size_t size() const { return out_->size(); }
  std::vector<uint8_t>* buffer() const { return out_; }
  // Overwrites 4 bytes written before at `offset` (a length known only afterwards).
  void PatchU32(size_t offset, uint32_t value) {
    UM_CHECK_LE(offset + 4, out_->size());
    StoreU32(out_->data() + offset, value);
  }

 private:
  uint8_t* Grow(size_t size) {
    out_->resize(out_->size() + size);
    return out_->data() + out_->size() - size;
  }
  std::vector<uint8_t>* out_;
};

// DigestWriter has ByteWriter's interface but folds the byte stream into a Digest in
// 4 KiB chunks instead of keeping it, so a state digest is a function of exactly the bytes
// its snapshot encoding would hold, without materialising them.
class DigestWriter {
 public:
  DigestWriter() : writer_(&buffer_) { buffer_.reserve(kChunkBytes + 64); }

  void U8(uint8_t value) { writer_.U8(value), Flush(false); }
  void U16(uint16_t value) { writer_.U16(value), Flush(false); }
  void U32(uint32_t value) { writer_.U32(value), Flush(false); }
  void U64(uint64_t value) { writer_.U64(value), Flush(false); }
  void I64(int64_t value) { writer_.I64(value), Flush(false); }
  void U128(unsigned __int128 value) { writer_.U128(value), Flush(false); }
  void String8(const std::string& text) { writer_.String8(text), Flush(false); }
  void Raw(const void* data, size_t size) { writer_.Raw(data, size), Flush(false); }

  uint64_t Finish() {
    Flush(true);
    return digest_.value();
  }

 private:
  static constexpr size_t kChunkBytes = 4096;
  void Flush(bool force) {
    if (buffer_.size() < kChunkBytes && !(force && !buffer_.empty())) return;
    digest_.AddBytes(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

  std::vector<uint8_t> buffer_;
  ByteWriter writer_;
  Digest digest_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), left_(size) {}

  bool U8(uint8_t* value) {
    if (!Take(1)) return false;
    *value = data_[-1];
    return true;
  }
  bool U16(uint16_t* value) {
    if (!Take(2)) return false;
    *value = LoadU16(data_ - 2);
    return true;
  }
  bool U32(uint32_t* value) {
    if (!Take(4)) return false;
    *value = LoadU32(data_ - 4);
    return true;
  }
  bool U64(uint64_t* value) {
    if (!Take(8)) return false;
    *value = LoadU64(data_ - 8);
    return true;
  }
  bool I64(int64_t* value) {
    uint64_t raw = 0;
    if (!U64(&raw)) return false;
    *value = static_cast<int64_t>(raw);
    return true;
  }
  bool U128(unsigned __int128* value) {
    uint64_t low = 0;
    uint64_t high = 0;
    if (!U64(&low) || !U64(&high)) return false;
    *value = (static_cast<unsigned __int128>(high) << 64) | low;
    return true;
  }
  // A u8-length-prefixed string of at most `bytes_max` bytes.
  bool String8(size_t bytes_max, std::string* text) {
    uint8_t size = 0;
    if (!U8(&size) || size > bytes_max || !Take(size)) return Fail();
    text->assign(reinterpret_cast<const char*>(data_ - size), size);
    return true;
  }
  bool Bool(bool* value) {
    uint8_t raw = 0;
    if (!U8(&raw) || raw > 1) return Fail();
    *value = raw == 1;
    return true;
  }

  // The next `size` bytes (skipped); nullptr if fewer are left.
  const uint8_t* Skip(size_t size) {
    if (!Take(size)) return nullptr;
    return data_ - size;
  }

  bool ok() const { return ok_; }
  size_t left() const { return left_; }
  bool Fail() {
    ok_ = false;
    left_ = 0;
    return false;
  }

 private:
  bool Take(size_t size) {
    if (!ok_ || size > left_) return Fail();
    data_ += size;
    left_ -= size;
    return true;
  }

  const uint8_t* data_;
  size_t left_;
  bool ok_ = true;
};

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_BYTE_IO_H_
