// Goal: pin the checked-value envelope (docs/formats/checked_value.md): its header size,
// golden bytes, and that every kind of damage (flipped bit, truncation, a value moved
// under another key) is reported as DataLoss naming the key.
#include "storage/checked_value.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"

namespace unimeter {
namespace {

using namespace std::string_literals;

TEST(CheckedValue, DocumentedHeaderSize) {
  static_assert(kCheckedValueHeaderSizeBytes == 4);
  EXPECT_EQ(EncodeCheckedValue("k", "").size(), 4u);
  EXPECT_EQ(EncodeCheckedValue("k", "abc").size(), 7u);
}

// The example from docs/formats/checked_value.md.
TEST(CheckedValue, GoldenBytes) {
  const std::string key = "aggregate/7";
  const std::string value = "\x01\x02hi"s;
  EXPECT_EQ(CheckedValueChecksum(key, value), 0xF0E2D23Fu);
  EXPECT_EQ(EncodeCheckedValue(key, value), "\x3f\xd2\xe2\xf0\x01\x02hi"s);
  EXPECT_EQ(EncodeCheckedValue(key, ""), "\xea\xfb\x99\x4c"s);
}

TEST(CheckedValue, RoundTrip) {
  for (const std::string& value : {""s, "x"s, "\0\0\0\0"s, std::string(10000, '\xff')}) {
    const std::string stored = EncodeCheckedValue("key", value);
    const absl::StatusOr<std::string_view> decoded = DecodeCheckedValue("key", stored);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, value);
    EXPECT_EQ(decoded->data(), stored.data() + kCheckedValueHeaderSizeBytes);
  }
}

TEST(CheckedValue, EncodeIntoMatchesEncode) {
  std::string out(4 + 5, '?');
  EncodeCheckedValueInto("key", "value", absl::MakeSpan(out));
  EXPECT_EQ(out, EncodeCheckedValue("key", "value"));
}

TEST(CheckedValue, EveryFlippedBitIsDataLoss) {
  const std::string stored = EncodeCheckedValue("account/1", "some value");
  for (size_t byte = 0; byte < stored.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = stored;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      const absl::StatusOr<std::string_view> decoded = DecodeCheckedValue("account/1", damaged);
      ASSERT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << byte << ":" << bit;
      EXPECT_NE(decoded.status().message().find("account/1"), std::string::npos);
    }
  }
}

TEST(CheckedValue, ValueUnderWrongKeyIsDataLoss) {
  const std::string stored = EncodeCheckedValue("a", "same value");
  EXPECT_EQ(DecodeCheckedValue("b", stored).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeCheckedValue("aa", stored).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(DecodeCheckedValue("a", stored).ok());
}

TEST(CheckedValue, ShortInputIsDataLoss) {
  for (size_t size = 0; size < kCheckedValueHeaderSizeBytes; ++size) {
    const absl::StatusOr<std::string_view> decoded =
        DecodeCheckedValue("key", std::string(size, '\0'));
    ASSERT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(decoded.status().message().find("shorter"), std::string::npos);
  }
}

TEST(CheckedValue, BinaryKeyIsEscapedInError) {
  const std::string key = "\x00\x01\xfez"s;
  const absl::StatusOr<std::string_view> decoded = DecodeCheckedValue(key, "\0\0\0\0"s);
  ASSERT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(decoded.status().message().find(R"(\x00\x01\xfez)"), std::string::npos)
      << decoded.status();
}

}  // namespace
}  // namespace unimeter
