// End-to-end tests of the unimeter-cli binary against the in-process fake server
// (client/fake_server.h): exit codes (0 ok, 1 server error, 2 usage error), what reaches the
// wire for each command, and that output is produced. Runs the real binary with popen.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "client/fake_server.h"
#include "gtest/gtest.h"
#include "protocol/wire.h"

namespace unimeter::tools {
namespace {

namespace wire = ::unimeter::protocol;
using client::testing::EmptyReply;
using client::testing::FakeConnection;
using client::testing::FakeRequest;
using client::testing::FakeServer;

struct CliResult {
  int exit_code = -1;
  std::string out;
};

// Runs tools/unimeter-cli with `args` (shell words), stdin from `input`.
CliResult RunCli(const std::string& args, const std::string& input = "") {
  const std::string input_path = std::string(std::getenv("TEST_TMPDIR")) + "/stdin.txt";
  {
    std::ofstream file(input_path);
    file << input;
  }
  const std::string command = "tools/unimeter-cli " + args + " < " + input_path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  CliResult result;
  if (pipe == nullptr) {
    return result;
  }
  char buffer[4096];
  size_t got = 0;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.out.append(buffer, got);
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::vector<FakeRequest> OfType(const FakeServer& server, wire::Opcode opcode) {
  std::vector<FakeRequest> out;
  for (const FakeRequest& request : server.Requests()) {
    if (request.header.packet_type == static_cast<uint8_t>(opcode)) {
      out.push_back(request);
    }
  }
  return out;
}

std::span<const uint8_t> Bytes(const std::string& payload) {
  return {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
}

TEST(CliEndToEndTest, UsageErrorsExitWithTwoWithoutAServer) {
  EXPECT_EQ(RunCli("--help").exit_code, 0);
  EXPECT_EQ(RunCli("query --help").exit_code, 0);
  EXPECT_EQ(RunCli("").exit_code, 2);
  EXPECT_EQ(RunCli("frobnicate").exit_code, 2);
  EXPECT_EQ(RunCli("metrics").exit_code, 2);
  EXPECT_EQ(RunCli("ingest 1 api_calls").exit_code, 2);
  EXPECT_EQ(RunCli("ingest x api_calls 1").exit_code, 2);
  EXPECT_EQ(RunCli("query 1 m --from=yesterday").exit_code, 2);
  EXPECT_EQ(RunCli("metrics create m --agg=avg").exit_code, 2);
  EXPECT_EQ(RunCli("metrics list --bogus").exit_code, 2);
  EXPECT_EQ(RunCli("ingest --stdin", "{\"account_id\":1}\n").exit_code, 2);
}

TEST(CliEndToEndTest, CommandsReachTheWire) {
  FakeServer server;
  const std::string seeds = "--seeds=" + server.address() + " ";

  CliResult created = RunCli(seeds +
                             "metrics create api --agg=sum --period=calendar --cycle-day=15 "
                             "--dimension=region:eu,us --threshold=quota:10:recurring");
  ASSERT_EQ(created.exit_code, 0) << created.out;
  std::vector<FakeRequest> puts = OfType(server, wire::Opcode::kMetricPut);
  ASSERT_EQ(puts.size(), 1u);
  absl::StatusOr<wire::MetricSchemaRecord> schema = wire::DecodeMetricPut(Bytes(puts[0].payload));
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ(schema->code, "api");
  EXPECT_EQ(schema->agg_type, 1);
  EXPECT_EQ(schema->billing_cycle_day, 15);
  EXPECT_EQ(schema->dimensions[0].values[1], "us");
  EXPECT_TRUE(schema->thresholds[0].recurring);

  CliResult ingested =
      RunCli(seeds + "ingest 42 api 5 --prop=region=eu --sync --timestamp=2026-01-01T00:00:00Z");
  ASSERT_EQ(ingested.exit_code, 0) << ingested.out;
  std::vector<FakeRequest> syncs = OfType(server, wire::Opcode::kIngestSync);
  ASSERT_EQ(syncs.size(), 1u);
  absl::StatusOr<wire::IngestRequestView> view =
      wire::IngestRequestView::Decode(syncs[0].header.partition, Bytes(syncs[0].payload));
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->event(0).account_id(), 42u);
  EXPECT_EQ(view->event(0).timestamp_ns(), 1'767'225'600'000'000'000);
  EXPECT_EQ(view->event(0).prop(0).value(), "eu");

  CliResult streamed = RunCli(seeds + "--json ingest --stdin",
                              "{\"account_id\":1,\"metric_code\":\"api\",\"value\":1}\n\n"
                              "{\"account_id\":2,\"metric_code\":\"api\",\"value\":2}\n");
  ASSERT_EQ(streamed.exit_code, 0) << streamed.out;
  EXPECT_NE(streamed.out.find("\"stored\":2"), std::string::npos) << streamed.out;
  EXPECT_EQ(OfType(server, wire::Opcode::kIngestAsync).size(), 1u);

  CliResult queried = RunCli(seeds + "--json query 42 api --from=0 --to=10 --filter=region=eu");
  ASSERT_EQ(queried.exit_code, 0) << queried.out;
  EXPECT_NE(queried.out.find("\"sum\":0"), std::string::npos) << queried.out;
  absl::StatusOr<wire::UsageQueryRequest> query =
      wire::DecodeUsageQuery(Bytes(OfType(server, wire::Opcode::kUsageQuery)[0].payload));
  ASSERT_TRUE(query.ok());
  EXPECT_EQ(query->period_end_ns, 10);
  EXPECT_EQ(query->filters_count, 1);

  for (const char* command :
       {"metrics list", "metrics delete api", "realtime 42 api", "breakdown 42 api --by=region",
        "events 42 --since=0", "alerts list --account=42", "cluster status"}) {
    CliResult result = RunCli(seeds + command);
    EXPECT_EQ(result.exit_code, 0) << command << "\n" << result.out;
    result = RunCli(seeds + "--json " + command);
    EXPECT_EQ(result.exit_code, 0) << command << "\n" << result.out;
  }
}

TEST(CliEndToEndTest, ServerErrorsExitWithOne) {
  FakeServer server;
  server.SetHandler([](FakeConnection& connection, const FakeRequest& request) {
    if (request.header.packet_type != static_cast<uint8_t>(wire::Opcode::kMetricDelete)) {
      return false;
    }
    connection.Send(EmptyReply(wire::Status::kErr, request.header.request_id));
    return true;
  });
  CliResult result = RunCli("--seeds=" + server.address() + " metrics delete api");
  EXPECT_EQ(result.exit_code, 1) << result.out;
  EXPECT_NE(result.out.find("ERR"), std::string::npos) << result.out;

  std::string dead;
  {
    FakeServer gone;
    dead = gone.address();
  }
  EXPECT_EQ(RunCli("--seeds=" + dead + " --timeout-ms=300 metrics list").exit_code, 1);
}

}  // namespace
}  // namespace unimeter::tools
