// Goal: flags parse in the documented --name=value form, unknown flags warn and are
// ignored, bad values are errors naming the flag, and ranges are enforced.
#include "node/base/flags.h"

#include <gtest/gtest.h>

namespace unimeter {
namespace {

TEST(FlagParser, ParsesKnownWarnsUnknownRejectsBad) {
  FlagParser flags("prog", "summary");
  int64_t port = 7001;
  std::string dir = "data";
  bool verbose = false;
  flags.AddInt("port", &port, "port", 1, 65535);
  flags.AddString("data-dir", &dir, "dir");
  flags.AddBool("verbose", &verbose, "verbose");
  const char* argv[] = {"prog", "--port=7101", "--data-dir=/tmp/x", "--verbose", "--bogus=1"};
  ASSERT_TRUE(flags.Parse(5, argv).ok());
  EXPECT_EQ(port, 7101);
  EXPECT_EQ(dir, "/tmp/x");
  EXPECT_TRUE(verbose);
  EXPECT_TRUE(flags.WasSet("port"));
  ASSERT_EQ(flags.warnings().size(), 1u);
  EXPECT_NE(flags.warnings()[0].find("--bogus=1"), std::string::npos);

  const char* bad_range[] = {"prog", "--port=70000"};
  absl::Status status = flags.Parse(2, bad_range);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_NE(status.message().find("--port"), absl::string_view::npos);
  const char* not_number[] = {"prog", "--port=7x"};
  EXPECT_FALSE(flags.Parse(2, not_number).ok());
  const char* positional[] = {"prog", "oops"};
  EXPECT_FALSE(flags.Parse(2, positional).ok());
  const char* missing_value[] = {"prog", "--port"};
  EXPECT_FALSE(flags.Parse(2, missing_value).ok());
  const char* help[] = {"prog", "--help"};
  EXPECT_TRUE(flags.Parse(2, help).ok());
  EXPECT_TRUE(flags.help_requested());
  EXPECT_NE(flags.Help().find("--data-dir"), std::string::npos);
}

TEST(ParsePeerList, ParsesAndRejects) {
  auto peers = ParsePeerList("1:10.0.0.2:8001,2:node2.internal:8003");
  ASSERT_TRUE(peers.ok()) << peers.status();
  ASSERT_EQ(peers->size(), 2u);
  EXPECT_EQ((*peers)[1].id, 2u);
  EXPECT_EQ((*peers)[1].host, "node2.internal");
  EXPECT_EQ((*peers)[1].port, 8003);
  EXPECT_TRUE(ParsePeerList("")->empty());
  EXPECT_FALSE(ParsePeerList("1:host").ok());
  EXPECT_FALSE(ParsePeerList("255:h:1").ok());
  EXPECT_FALSE(ParsePeerList("1::80").ok());
  EXPECT_FALSE(ParsePeerList("1:h:0").ok());
  EXPECT_FALSE(ParsePeerList("1:h:1,1:g:2").ok());
}

}  // namespace
}  // namespace unimeter
