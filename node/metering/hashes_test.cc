// Goal: pin the hashes of WP section 10 to the spec's test vectors [compat].
#include "node/metering/hashes.h"

#include <string>

#include "gtest/gtest.h"

namespace unimeter::metering {
namespace {

TEST(HashesTest, Fnv1aVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("api_calls"), 0xa3b3c525bb81dc81ULL);
  EXPECT_EQ(Fnv1a64("provider"), 0xd02b4c8c65fb54dcULL);
  EXPECT_EQ(Fnv1a64("aws"), 0xe74ca21905684536ULL);
  EXPECT_EQ(Fnv1a64("region"), 0xc755a623f50a24ddULL);
  EXPECT_EQ(Fnv1a64("us-east"), 0x0b29abf7f289fbc9ULL);
}

TEST(HashesTest, PairAndAndVectors) {
  const uint64_t provider_aws = PairHash("provider", "aws");
  const uint64_t region_us_east = PairHash("region", "us-east");
  EXPECT_EQ(provider_aws, 0x3767ee95609311eaULL);
  EXPECT_EQ(region_us_east, 0xcc7c0dd40783df14ULL);
  const uint64_t both[] = {provider_aws, region_us_east};
  EXPECT_EQ(AndHash(both), 0xfb1be3416710cefeULL);
  EXPECT_EQ(AndHash({}), 0u);  // The unfiltered total is slice key 0.
}

TEST(HashesTest, StringsEndAtFirstNul) {
  const std::string padded("api_calls\0\0junk", 16);
  EXPECT_EQ(MetricCodeHash(padded), 0xa3b3c525bb81dc81ULL);
  EXPECT_EQ(MetricCodeHash("api_calls"), 0xa3b3c525bb81dc81ULL);
  EXPECT_EQ(PairHash(std::string("provider\0x", 10), std::string("aws\0", 4)),
            0x3767ee95609311eaULL);
}

}  // namespace
}  // namespace unimeter::metering
