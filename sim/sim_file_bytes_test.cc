#include "sim/sim_file_bytes.h"

#include <gtest/gtest.h>

#include <string>

#include "node/base/random.h"

namespace unimeter::sim {
namespace {

constexpr uint64_t kChunk = SimFileBytes::kChunkBytes;

TEST(SimFileBytes, GrowsWithZerosAndShrinksForGood) {
  SimFileBytes file;
  file.Write(kChunk + 10, "abc");  // A hole before it reads as zeros.
  EXPECT_EQ(file.size(), kChunk + 13);
  EXPECT_EQ(file.ToString(), std::string(kChunk + 10, '\0') + "abc");
  file.Resize(kChunk + 11);  // Drop "bc"...
  file.Resize(kChunk + 13);  // ...and growing again must not bring them back.
  EXPECT_EQ(file.ToString(), std::string(kChunk + 10, '\0') + "a" + std::string(2, '\0'));
}

TEST(SimFileBytes, CopiesShareUntilWritten) {
  SimFileBytes original(std::string(3 * kChunk, 'x'));
  SimFileBytes copy = original;
  copy.Write(kChunk + 5, "yy");
  copy.Zero(0, kChunk);  // A whole chunk becomes a hole.
  EXPECT_EQ(original.ToString(), std::string(3 * kChunk, 'x'));
  std::string expected = std::string(kChunk, '\0') + std::string(2 * kChunk, 'x');
  expected.replace(kChunk + 5, 2, "yy");
  EXPECT_EQ(copy.ToString(), expected);
}

// Random writes, zero runs, truncations and copies against a std::string model.
TEST(SimFileBytes, MatchesAStringUnderRandomOperations) {
  Prng prng(7);
  SimFileBytes file;
  std::string model;
  for (int step = 0; step < 3000; ++step) {
    const uint64_t offset = prng.UniformBelow(4 * kChunk);
    const uint64_t count = prng.UniformBelow(prng.Chance(1, 10) ? 2 * kChunk : 300);
    switch (prng.UniformBelow(4)) {
      case 0: {
        std::string bytes(count, '\0');
        for (char& byte : bytes) byte = static_cast<char>('a' + prng.UniformBelow(26));
        file.Write(offset, bytes);
        if (model.size() < offset + count) model.resize(offset + count, '\0');
        model.replace(offset, count, bytes);
        break;
      }
      case 1:
        file.Zero(offset, count);
        if (model.size() < offset + count) model.resize(offset + count, '\0');
        model.replace(offset, count, std::string(count, '\0'));
        break;
      case 2:
        file.Resize(offset);
        model.resize(offset, '\0');
        break;
      default: {
        SimFileBytes copy = file;  // Writes to the copy must not reach the original.
        copy.Write(offset, "zz");
        break;
      }
    }
    ASSERT_EQ(file.size(), model.size()) << "step " << step;
    if (step % 50 == 0 || model.size() < 2 * kChunk) {
      ASSERT_EQ(file.ToString(), model) << "step " << step;
    }
  }
  EXPECT_EQ(file.ToString(), model);
}

}  // namespace
}  // namespace unimeter::sim
