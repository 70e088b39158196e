// Goal: pin checksum and hash definitions (they are persisted and sent between nodes),
// and check that hardware and software CRC paths agree on every length and alignment.
#include "node/base/checksum.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace unimeter {
namespace {

TEST(Crc32c, StandardCheckValue) {
  const std::string text = "123456789";
  EXPECT_EQ(Crc32c(text.data(), text.size()), 0xE3069283u);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, IncrementalEqualsOneShot) {
  std::vector<uint8_t> bytes(1000);
  for (size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  }
  for (size_t split = 0; split <= bytes.size(); split += 37) {
    const uint32_t first = Crc32c(bytes.data(), split);
    EXPECT_EQ(Crc32c(bytes.data() + split, bytes.size() - split, first),
              Crc32c(bytes.data(), bytes.size()));
  }
}

TEST(Hash64, GoldenAndSensitive) {
  const std::string text = "unimeter";
  EXPECT_EQ(Hash64(text.data(), text.size()), 5407095847805086696ULL);
  EXPECT_NE(Hash64(text.data(), text.size(), 1), Hash64(text.data(), text.size(), 2));
  EXPECT_NE(Hash64("a", 1), Hash64("a\0", 2));
}

TEST(Digest, OrderSensitive) {
  Digest ab, ba, ab2;
  ab.Add(1);
  ab.Add(2);
  ba.Add(2);
  ba.Add(1);
  ab2.Add(1);
  ab2.Add(2);
  EXPECT_NE(ab.value(), ba.value());
  EXPECT_EQ(ab.value(), ab2.value());
}

}  // namespace
}  // namespace unimeter
