// Tests of the Client against in-process fake servers (client/fake_server.h) on loopback.
//
// Goal: verify routing by partition, batching, request-id matching with out-of-order replies,
// BACKPRESSURE retries, REDIRECT following, failover, map pushes, alert pushes, deadlines and
// above all the unknown-outcome rule (product-semantics 8.5): an ingest request whose outcome
// is unknown is resent only when every event carries a client timestamp.
//
// Method: the fakes record every request; handlers script the misbehaviour. No assertion
// depends on timing: waits have generous bounds (10-20 s) and only guard against hangs.
#include "client/client.h"

#include <array>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/fake_server.h"
#include "gtest/gtest.h"
#include "protocol/wire.h"

namespace unimeter::client {
namespace {

namespace wire = ::unimeter::protocol;
using testing::AggReply;
using testing::EmptyReply;
using testing::FakeConnection;
using testing::FakeRequest;
using testing::FakeServer;
using testing::RedirectReply;

constexpr int64_t kWaitMs = 20'000;

ClientOptions Options(std::vector<std::string> seeds) {
  ClientOptions options;
  options.seeds = std::move(seeds);
  options.request_timeout_ms = kWaitMs;
  options.connect_timeout_ms = 5'000;
  options.initial_map_timeout_ms = kWaitMs;
  options.backoff_initial_ms = 1;
  options.backoff_max_ms = 20;
  return options;
}

std::unique_ptr<Client> MustConnect(ClientOptions options) {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

std::vector<Event> Events(std::vector<uint64_t> accounts, int64_t timestamp_ns) {
  std::vector<Event> events;
  for (uint64_t account : accounts) {
    events.push_back({.account_id = account,
                      .metric_code = "api_calls",
                      .value = 1,
                      .timestamp_ns = timestamp_ns});
  }
  return events;
}

bool IsIngest(const FakeRequest& request) {
  return request.header.packet_type == static_cast<uint8_t>(wire::Opcode::kIngestSync) ||
         request.header.packet_type == static_cast<uint8_t>(wire::Opcode::kIngestAsync);
}

// The account ids of every ingest request a fake received, in arrival order.
std::vector<uint64_t> IngestedAccounts(const FakeServer& server) {
  std::vector<uint64_t> accounts;
  for (const FakeRequest& request : server.Requests()) {
    if (!IsIngest(request)) {
      continue;
    }
    absl::StatusOr<wire::IngestRequestView> view = wire::IngestRequestView::Decode(
        request.header.partition,
        {reinterpret_cast<const uint8_t*>(request.payload.data()), request.payload.size()});
    EXPECT_TRUE(view.ok());
    for (uint32_t i = 0; view.ok() && i < view->event_count(); ++i) {
      accounts.push_back(view->event(i).account_id());
    }
  }
  return accounts;
}

std::array<std::string, wire::kPartitionCount> EvenOdd(const std::string& even,
                                                       const std::string& odd) {
  std::array<std::string, wire::kPartitionCount> leaders;
  for (size_t p = 0; p < leaders.size(); ++p) {
    leaders[p] = p % 2 == 0 ? even : odd;
  }
  return leaders;
}

TEST(ClientTest, RoutesIngestToEachPartitionsLeader) {
  FakeServer a;
  FakeServer b;
  a.SetLeaders(EvenOdd(a.address(), b.address()));
  b.SetLeaders(EvenOdd(a.address(), b.address()));
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->GetPartitionMap()[1].leader, b.address());

  absl::StatusOr<IngestResult> result = client->IngestSync(Events({2, 3, 4, 5}, 0));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->n_stored, 4u);
  EXPECT_EQ(result->requests, 2u);
  EXPECT_EQ(IngestedAccounts(a), (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(IngestedAccounts(b), (std::vector<uint64_t>{3, 5}));
  for (const FakeRequest& request : a.Requests()) {
    EXPECT_NE(request.header.request_id, 0u);
    EXPECT_EQ(request.header.partition, wire::kPartitionAuto);
  }
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 1u);

  ASSERT_TRUE(client->IngestAsync(Events({7}, 0)).ok());
  EXPECT_EQ(b.Count(wire::Opcode::kIngestAsync), 1u);
}

TEST(ClientTest, SplitsLargeInputIntoRequestsOfAtMost1024Events) {
  FakeServer a;
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  std::vector<uint64_t> accounts(2500);
  for (size_t i = 0; i < accounts.size(); ++i) {
    accounts[i] = i;
  }
  absl::StatusOr<IngestResult> result = client->IngestSync(Events(accounts, 0));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->n_stored, 2500u);
  EXPECT_EQ(result->requests, 3u);
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 3u);
  EXPECT_EQ(IngestedAccounts(a).size(), 2500u);
}

TEST(ClientTest, RejectsInvalidEventsWithoutSending) {
  FakeServer a;
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  std::vector<Event> events = Events({1}, 0);
  events[0].metric_code = std::string(64, 'x');
  absl::StatusOr<IngestResult> result = client->IngestSync(events);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 0u);
}

TEST(ClientTest, RetriesBackpressureUntilAccepted) {
  FakeServer a;
  std::mutex mu;
  int backpressure_left = 3;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    std::lock_guard<std::mutex> lock(mu);
    if (IsIngest(request) && backpressure_left > 0) {
      --backpressure_left;
      connection.Send(EmptyReply(wire::Status::kBackpressure, request.header.request_id));
      return true;
    }
    return false;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  // No client timestamps: BACKPRESSURE means nothing was accepted, so resending is safe.
  absl::StatusOr<IngestResult> result = client->IngestSync(Events({1}, 0));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 4u);
}

TEST(ClientTest, BackpressureUntilTheDeadlineIsResourceExhausted) {
  FakeServer a;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    if (!IsIngest(request)) {
      return false;
    }
    connection.Send(EmptyReply(wire::Status::kBackpressure, request.header.request_id));
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<IngestResult> result = client->IngestSync(Events({1}, 0), {.timeout_ms = 300});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted) << result.status();
  EXPECT_GE(a.Count(wire::Opcode::kIngestSync), 1u);
}

TEST(ClientTest, FollowsRedirectForMetricPut) {
  FakeServer a;
  FakeServer b;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    if (request.header.packet_type != static_cast<uint8_t>(wire::Opcode::kMetricPut)) {
      return false;
    }
    connection.Send(RedirectReply(request.header.request_id, b.address()));
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  MetricSchema schema{.code = "api_calls", .agg_type = 1};
  ASSERT_TRUE(client->PutMetric(schema).ok());
  EXPECT_EQ(a.Count(wire::Opcode::kMetricPut), 1u);
  ASSERT_EQ(b.Count(wire::Opcode::kMetricPut), 1u);
  for (const FakeRequest& request : b.Requests()) {
    if (request.header.packet_type == static_cast<uint8_t>(wire::Opcode::kMetricPut)) {
      absl::StatusOr<wire::MetricSchemaRecord> decoded = wire::DecodeMetricPut(
          {reinterpret_cast<const uint8_t*>(request.payload.data()), request.payload.size()});
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(decoded->code, "api_calls");
    }
  }
}

TEST(ClientTest, MetricAdminFollowsOnlyOneRedirect) {
  FakeServer a;
  FakeServer b;
  auto bounce = [](FakeServer& to) {
    return [&to](FakeConnection& connection, const FakeRequest& request) {
      if (request.header.packet_type != static_cast<uint8_t>(wire::Opcode::kMetricDelete)) {
        return false;
      }
      connection.Send(RedirectReply(request.header.request_id, to.address()));
      return true;
    };
  };
  a.SetHandler(bounce(b));
  b.SetHandler(bounce(a));
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::Status status = client->DeleteMetric("api_calls");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(a.Count(wire::Opcode::kMetricDelete) + b.Count(wire::Opcode::kMetricDelete), 2u);
}

TEST(ClientTest, FollowsRedirectForIngestAndRefreshesTheMap) {
  FakeServer a;
  FakeServer b;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    if (!IsIngest(request)) {
      return false;
    }
    connection.Send(RedirectReply(request.header.request_id, b.address()));
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<IngestResult> result = client->IngestSync(Events({9}, 0));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(IngestedAccounts(b), (std::vector<uint64_t>{9}));
  // The redirect asked for a map refresh (the initial download is the first one).
  EXPECT_TRUE(a.WaitForCount(wire::Opcode::kGetPartitionMap, 2, kWaitMs));
}

// Closes the connection without replying to the first `drops` ingest requests.
FakeServer::Handler DropIngest(int drops, std::mutex* mu, int* dropped) {
  return [=](FakeConnection& connection, const FakeRequest& request) {
    std::lock_guard<std::mutex> lock(*mu);
    if (!IsIngest(request) || *dropped >= drops) {
      return false;
    }
    ++*dropped;
    connection.Close();
    return true;
  };
}

TEST(ClientTest, LostConnectionWithoutClientTimestampsIsUnknownAndNeverResent) {
  FakeServer a;
  std::mutex mu;
  int dropped = 0;
  a.SetHandler(DropIngest(100, &mu, &dropped));
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  std::vector<Event> events = Events({1, 2}, 1'000);
  events[1].timestamp_ns = 0;  // One server-stamped event makes the whole request unsafe.
  absl::StatusOr<IngestResult> result = client->IngestSync(events);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnknown) << result.status();
  // The client is still usable, and the ingest request was not resent in the background.
  ASSERT_TRUE(client->Usage(1, "api_calls", 0, 10).ok());
  ASSERT_TRUE(client->ListMetrics().ok());
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 1u);
}

TEST(ClientTest, LostConnectionWithClientTimestampsIsResent) {
  FakeServer a;
  std::mutex mu;
  int dropped = 0;
  a.SetHandler(DropIngest(1, &mu, &dropped));
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<IngestResult> result = client->IngestSync(Events({1, 2}, 1'000));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 2u);
  EXPECT_EQ(IngestedAccounts(a), (std::vector<uint64_t>{1, 2, 1, 2}));
}

TEST(ClientTest, ErrOnIngestWithoutTimestampsIsUnknownAndNotResent) {
  FakeServer a;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    if (!IsIngest(request)) {
      return false;
    }
    connection.Send(EmptyReply(wire::Status::kErr, request.header.request_id));
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<IngestResult> result = client->IngestAsync(Events({1}, 0));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnknown) << result.status();
  ASSERT_TRUE(client->ListMetrics().ok());
  EXPECT_EQ(a.Count(wire::Opcode::kIngestAsync), 1u);
}

TEST(ClientTest, ErrOnIngestWithTimestampsIsResent) {
  FakeServer a;
  std::mutex mu;
  int errors_left = 1;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    std::lock_guard<std::mutex> lock(mu);
    if (!IsIngest(request) || errors_left == 0) {
      return false;
    }
    --errors_left;
    connection.Send(EmptyReply(wire::Status::kErr, request.header.request_id));
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<IngestResult> result = client->IngestSync(Events({1}, 123));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 2u);
}

TEST(ClientTest, MatchesOutOfOrderRepliesByRequestId) {
  FakeServer a;
  std::mutex mu;
  std::optional<FakeRequest> held;
  auto account_of = [](const FakeRequest& request) {
    return wire::DecodeUsageQuery(
               {reinterpret_cast<const uint8_t*>(request.payload.data()), request.payload.size()})
        ->account_id;
  };
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    if (request.header.packet_type != static_cast<uint8_t>(wire::Opcode::kUsageQuery)) {
      return false;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!held.has_value()) {
      held = request;  // Hold the first reply until the second request arrives.
      return true;
    }
    // One write with the second reply first, then the first.
    connection.Send(AggReply(request.header.request_id, account_of(request) * 10) +
                    AggReply(held->header.request_id, account_of(*held) * 10));
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<AggValue> first;
  absl::StatusOr<AggValue> second;
  std::thread one([&] { first = client->Usage(1, "api_calls", 0, 10); });
  std::thread two([&] { second = client->Usage(2, "api_calls", 0, 10); });
  one.join();
  two.join();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->sum, 10u);
  EXPECT_EQ(second->sum, 20u);
  // Both went over the one multiplexed connection, with distinct ids.
  std::vector<FakeRequest> queries;
  for (const FakeRequest& request : a.Requests()) {
    if (request.header.packet_type == static_cast<uint8_t>(wire::Opcode::kUsageQuery)) {
      queries.push_back(request);
    }
  }
  ASSERT_EQ(queries.size(), 2u);
  EXPECT_EQ(queries[0].connection, queries[1].connection);
  EXPECT_NE(queries[0].header.request_id, queries[1].header.request_id);
}

TEST(ClientTest, DeadlineWhenTheServerNeverReplies) {
  FakeServer a;
  a.SetHandler([&](FakeConnection&, const FakeRequest& request) {
    return request.header.packet_type == static_cast<uint8_t>(wire::Opcode::kUsageQuery) ||
           IsIngest(request);  // Swallowed: never answered.
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  absl::StatusOr<AggValue> usage = client->Usage(1, "api_calls", 0, 10, {}, {.timeout_ms = 200});
  EXPECT_EQ(usage.status().code(), absl::StatusCode::kDeadlineExceeded) << usage.status();
  // An ingest request that was sent and never answered may have been applied.
  absl::StatusOr<IngestResult> ingest = client->IngestSync(Events({1}, 0), {.timeout_ms = 200});
  EXPECT_EQ(ingest.status().code(), absl::StatusCode::kUnknown) << ingest.status();
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 1u);
}

TEST(ClientTest, PartitionMapUpdatePushReroutes) {
  FakeServer a;
  FakeServer b;
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(client->GetPartitionMap()[5].leader, a.address());

  std::array<std::string, wire::kPartitionCount> to_b;
  to_b.fill(b.address());
  a.SetLeaders(to_b);
  b.SetLeaders(to_b);
  a.PushToAll(a.MapFrame(0, /*push=*/true));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (client->GetPartitionMap()[5].leader != b.address() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(client->GetPartitionMap()[5].leader, b.address());
  ASSERT_TRUE(client->IngestSync(Events({5}, 0)).ok());
  EXPECT_EQ(IngestedAccounts(b), (std::vector<uint64_t>{5}));
  EXPECT_EQ(a.Count(wire::Opcode::kIngestSync), 0u);
}

TEST(ClientTest, FailsOverToTheNextSeedAndNode) {
  std::string dead_address;
  {
    FakeServer dead;
    dead_address = dead.address();
  }  // Closed: connecting is refused.
  FakeServer a;
  std::unique_ptr<Client> client = MustConnect(Options({dead_address, a.address()}));
  ASSERT_NE(client, nullptr);
  // Leaders point at the dead node for odd partitions: the client fails over to `a`.
  a.SetLeaders(EvenOdd(a.address(), dead_address));
  client->RefreshPartitionMap();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (client->GetPartitionMap()[1].leader != dead_address &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(client->GetPartitionMap()[1].leader, dead_address);
  absl::StatusOr<IngestResult> result = client->IngestSync(Events({1, 3}, 0));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(IngestedAccounts(a), (std::vector<uint64_t>{1, 3}));
}

TEST(ClientTest, ConnectFailsWhenNoSeedAnswers) {
  std::string dead_address;
  {
    FakeServer dead;
    dead_address = dead.address();
  }
  ClientOptions options = Options({dead_address});
  options.initial_map_timeout_ms = 300;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
  EXPECT_FALSE(client.ok());
  EXPECT_FALSE(Client::Connect(Options({})).ok());
  EXPECT_EQ(Client::Connect(Options({"nocolon"})).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClientTest, DeliversAlertPushes) {
  FakeServer a;
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<AlertPush> pushes;
  client->SetAlertCallback([&](const AlertPush& push) {
    std::lock_guard<std::mutex> lock(mu);
    pushes.push_back(push);
    cv.notify_all();
  });
  ASSERT_TRUE(client->EnableAlertPush().ok());
  ASSERT_GE(a.Count(wire::Opcode::kAlertPushEnable), 1u);

  std::string frame;
  ASSERT_TRUE(wire::AppendAlertPushFrame({.record = {.offset = 17,
                                                     .account_id = 42,
                                                     .metric_code = "api_calls",
                                                     .threshold_code = "quota",
                                                     .value_at_cross = 1000,
                                                     .event_timestamp_ns = 5},
                                          .node_id = 2},
                                         &frame)
                  .ok());
  frame += EmptyReply(wire::Status::kOk, 0x99);  // A reply to nothing: ignored.
  a.PushToAll(frame);
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(
      cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return !pushes.empty(); }));
  EXPECT_EQ(pushes[0].record.offset, 17u);
  EXPECT_EQ(pushes[0].record.account_id, 42u);
  EXPECT_EQ(pushes[0].record.metric_code, "api_calls");
  EXPECT_EQ(pushes[0].record.threshold_code, "quota");
  EXPECT_EQ(pushes[0].node_id, 2);
  EXPECT_EQ(pushes[0].node_address, a.address());
}

TEST(ClientTest, DecodesQueryReplies) {
  FakeServer a;
  a.SetHandler([&](FakeConnection& connection, const FakeRequest& request) {
    const uint32_t id = request.header.request_id;
    std::string out;
    switch (static_cast<wire::Opcode>(request.header.packet_type)) {
      case wire::Opcode::kMetricList: {
        std::vector<wire::MetricSchemaRecord> schemas = {
            {.code = "api_calls",
             .agg_type = 1,
             .dimensions = {{.key = "region", .values = {"eu", "us"}}},
             .thresholds = {{.code = "quota", .value = 100, .recurring = true}},
             .period_type = wire::kPeriodTypeCalendar,
             .billing_cycle_day = 15}};
        EXPECT_TRUE(wire::AppendMetricListReply(id, schemas, &out).ok());
        break;
      }
      case wire::Opcode::kEventsList: {
        std::vector<wire::EventRecord> records = {
            {.offset = 1, .timestamp_ns = 10, .account_id = 7, .metric_code = "m", .value = 3},
            {.offset = 2, .timestamp_ns = 11, .account_id = 7, .metric_code = "m", .value = 4}};
        EXPECT_TRUE(wire::AppendEventListReply(id, records, &out).ok());
        break;
      }
      case wire::Opcode::kAlertsList: {
        std::vector<wire::AlertRecord> records = {
            {.offset = 3, .account_id = 7, .metric_code = "m", .threshold_code = "t"}};
        EXPECT_TRUE(wire::AppendAlertListReply(id, records, &out).ok());
        break;
      }
      case wire::Opcode::kUsageQueryBreakdown: {
        wire::BreakdownEntry entry{.dims_count = 1, .value = {.sum = 99}};
        entry.dim_keys[0] = "region";
        entry.dim_values[0] = "eu";
        EXPECT_TRUE(wire::AppendBreakdownReply(id, {&entry, 1}, &out).ok());
        break;
      }
      case wire::Opcode::kClusterStatus:
        wire::AppendClusterStatusReply(id, {.node_id = 3, .n_nodes = 3}, &out);
        break;
      case wire::Opcode::kUsageRealtime: {
        wire::AggValue value{.sum = (static_cast<unsigned __int128>(1) << 64) + 5};
        wire::AppendAggValueReply(id, value, &out);
        break;
      }
      default:
        return false;
    }
    connection.Send(out);
    return true;
  });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);

  absl::StatusOr<std::vector<MetricSchema>> metrics = client->ListMetrics();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  ASSERT_EQ(metrics->size(), 1u);
  EXPECT_EQ((*metrics)[0].dimensions[0].values[1], "us");
  EXPECT_EQ((*metrics)[0].billing_cycle_day, 15);

  absl::StatusOr<std::vector<EventRecord>> events = client->EventsList(7, 0, 100);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].value, 4u);

  absl::StatusOr<std::vector<AlertRecord>> alerts = client->AlertsList(a.address(), 0, 0);
  ASSERT_TRUE(alerts.ok()) << alerts.status();
  ASSERT_EQ(alerts->size(), 1u);
  EXPECT_EQ((*alerts)[0].threshold_code, "t");

  std::vector<std::string> keys = {"region"};
  absl::StatusOr<std::vector<BreakdownCell>> cells = client->Breakdown(7, "m", 0, 10, keys);
  ASSERT_TRUE(cells.ok()) << cells.status();
  ASSERT_EQ(cells->size(), 1u);
  EXPECT_EQ((*cells)[0].dimensions[0].value, "eu");
  EXPECT_EQ((*cells)[0].value.sum, 99u);

  absl::StatusOr<ClusterStatus> status = client->GetClusterStatus(a.address());
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->node_id, 3);

  absl::StatusOr<AggValue> realtime = client->Realtime(7, "m");
  ASSERT_TRUE(realtime.ok()) << realtime.status();
  EXPECT_EQ(realtime->sum, (static_cast<unsigned __int128>(1) << 64) + 5);

  EXPECT_EQ(client->Nodes(), std::vector<std::string>{a.address()});
}

TEST(ClientTest, ShutdownCompletesOutstandingCalls) {
  FakeServer a;
  a.SetHandler([&](FakeConnection&, const FakeRequest& request) { return IsIngest(request); });
  std::unique_ptr<Client> client = MustConnect(Options({a.address()}));
  ASSERT_NE(client, nullptr);
  std::mutex mu;
  std::optional<absl::StatusOr<IngestResult>> outcome;
  ASSERT_TRUE(client
                  ->SubmitIngest(Events({1}, 0), DeliveryMode::kAsync,
                                 [&](absl::StatusOr<IngestResult> result) {
                                   std::lock_guard<std::mutex> lock(mu);
                                   outcome = std::move(result);
                                 })
                  .ok());
  ASSERT_TRUE(a.WaitForCount(wire::Opcode::kIngestAsync, 1, kWaitMs));
  client.reset();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_TRUE(outcome.has_value());
  // It was sent and never answered: the outcome is unknown.
  EXPECT_EQ(outcome->status().code(), absl::StatusCode::kUnknown) << outcome->status();
}

}  // namespace
}  // namespace unimeter::client
