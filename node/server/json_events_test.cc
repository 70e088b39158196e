// Goal: POST /v1/events bodies parse exactly per wire-protocol-v1.md §11.1, and every kind
// of bad body is rejected (never crashes), including seeded random mutations.
#include "node/server/json_events.h"

#include <gtest/gtest.h>

#include "node/base/random.h"

namespace unimeter {
namespace {

TEST(ParseJsonEvents, ParsesValidBodies) {
  auto request = ParseJsonEvents(
      R"( [ {"account_id": 42, "metric_code": "api_calls", "value": 1},
            {"metric_code":"gb\u00e9","value":18446744073709551615,"account_id":0,
             "delivery_mode":"sync","extra":{"nested":[1,2.5e3,-3,true,null,"x"]}} ] )");
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->events.size(), 2u);
  EXPECT_EQ(request->events[0].account_id, 42u);
  EXPECT_EQ(request->events[0].metric_code, "api_calls");
  EXPECT_EQ(request->events[1].value, UINT64_MAX);
  EXPECT_EQ(request->events[1].metric_code, "gb\xC3\xA9");
  EXPECT_TRUE(request->sync);
  auto empty = ParseJsonEvents("[]");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->events.empty());
  EXPECT_FALSE(empty->sync);
  auto async =
      ParseJsonEvents(R"([{"account_id":1,"metric_code":"m","value":2,"delivery_mode":"async"}])");
  ASSERT_TRUE(async.ok());
  EXPECT_FALSE(async->sync);
}

TEST(ParseJsonEvents, TruncatesLongCodesTo63Bytes) {
  const std::string code(100, 'c');
  auto request = ParseJsonEvents(R"([{"account_id":1,"value":1,"metric_code":")" + code + "\"}]");
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->events[0].metric_code, std::string(63, 'c'));
}

TEST(ParseJsonEvents, RejectsBadBodies) {
  for (const char* body : {
           "",
           "{}",
           "[1]",
           "[{}]",
           R"([{"account_id":1,"metric_code":"m"}])",
           R"([{"account_id":-1,"metric_code":"m","value":1}])",
           R"([{"account_id":1.5,"metric_code":"m","value":1}])",
           R"([{"account_id":1e3,"metric_code":"m","value":1}])",
           R"([{"account_id":18446744073709551616,"metric_code":"m","value":1}])",
           R"([{"account_id":"1","metric_code":"m","value":1}])",
           R"([{"account_id":1,"metric_code":7,"value":1}])",
           R"([{"account_id":1,"account_id":2,"metric_code":"m","value":1}])",
           R"([{"account_id":01,"metric_code":"m","value":1}])",
           R"([{"account_id":1,"metric_code":"m","value":1}] x)",
           R"([{"account_id":1,"metric_code":"m","value":1},])",
           R"([{"account_id":1,"metric_code":"m\x","value":1}])",
           R"([{"account_id":1,"metric_code":"m","value":1,"z":[[[[)",
           "[{\"account_id\":1,\"metric_code\":\"a\nb\",\"value\":1}]",
       }) {
    EXPECT_FALSE(ParseJsonEvents(body).ok()) << body;
  }
  std::string deep = R"([{"account_id":1,"metric_code":"m","value":1,"z":)";
  deep += std::string(100, '[') + std::string(100, ']') + "}]";
  EXPECT_FALSE(ParseJsonEvents(deep).ok());
  std::string many = "[";
  for (int i = 0; i < 1025; ++i) {
    many += std::string(i ? "," : "") + R"({"account_id":1,"metric_code":"m","value":1})";
  }
  EXPECT_FALSE(ParseJsonEvents(many + "]").ok());
}

TEST(ParseJsonEvents, SurvivesRandomMutations) {
  const std::string seed =
      R"([{"account_id":42,"metric_code":"api_calls","value":1,"x":{"y":[1,"\u0041",null]}}])";
  Prng prng(99);
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string body = seed;
    const int edits = static_cast<int>(prng.UniformRange(1, 4));
    for (int e = 0; e < edits; ++e) {
      const size_t at = prng.UniformBelow(body.size());
      switch (prng.UniformBelow(3)) {
        case 0:
          body[at] = static_cast<char>(prng.UniformBelow(256));
          break;
        case 1:
          body.erase(at, 1);
          break;
        default:
          body.insert(at, 1, "[]{}\",:0\\"[prng.UniformBelow(10)]);
          break;
      }
    }
    accepted += ParseJsonEvents(body).ok() ? 1 : 0;
  }
  EXPECT_LT(accepted, 20000);
}

}  // namespace
}  // namespace unimeter
