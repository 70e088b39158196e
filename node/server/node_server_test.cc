// Goal: the server's request paths, extension opcodes included, behave as documented, and
// everything a SYNC acknowledgement promised survives a crash. Method: the real NodeServer
// runs as a single node inside the deterministic simulator (the same code as the binary,
// over a simulated Env); a simulated client speaks raw frames built with the protocol codec.
#include "node/server/node_server.h"

#include <gtest/gtest.h>

#include "node/server/extensions.h"
#include "protocol/extensions.pb.h"
#include "protocol/frame_reader.h"
#include "protocol/response_reader.h"
#include "sim/sim_cluster.h"

namespace unimeter {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kT0 = 1'767'225'600 * kSecond;  // 2026-01-01, inside FIXED bucket 681.

// A client connection collecting reply frames by request id.
class TestClient {
 public:
  TestClient(sim::SimCluster& cluster, sim::SimEnv& env) : cluster_(cluster), env_(env) {}

  void Connect() {
    stream_.reset();
    env_.Connect("n0:7001", [this](absl::StatusOr<std::unique_ptr<Stream>> stream) {
      ASSERT_TRUE(stream.ok()) << stream.status();
      stream_ = std::move(*stream);
      stream_->SetHandler(
          {[this](absl::Span<const uint8_t> bytes) { OnData(bytes); }, [](absl::Status) {}});
    });
    ASSERT_TRUE(cluster_.simulator().RunUntil([&] { return stream_ != nullptr; },
                                              cluster_.simulator().now_ns() + kSecond));
  }

  // Sends `frame` and waits for the reply with `request_id`: (status, payload).
  std::pair<uint8_t, std::string> Call(uint32_t request_id, const std::string& frame) {
    EXPECT_TRUE(stream_
                    ->Write(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data()),
                                                frame.size()))
                    .ok());
    EXPECT_TRUE(cluster_.simulator().RunUntil([&] { return replies_.contains(request_id); },
                                              cluster_.simulator().now_ns() + 10 * kSecond))
        << "no reply to request " << request_id;
    auto reply = replies_[request_id];
    replies_.erase(request_id);
    return reply;
  }

  std::pair<uint8_t, std::string> CallExt(uint32_t request_id, uint8_t opcode,
                                          const google::protobuf::Message& message) {
    const std::string payload = message.SerializeAsString();
    std::string frame(protocol::kRequestHeaderSizeBytes, '\0');
    protocol::EncodeRequestHeader(
        protocol::RequestHeader{protocol::kMagic, protocol::kVersion, opcode,
                                protocol::kPartitionAuto, static_cast<uint32_t>(payload.size()),
                                request_id},
        reinterpret_cast<uint8_t*>(frame.data()));
    return Call(request_id, frame + payload);
  }

 private:
  void OnData(absl::Span<const uint8_t> bytes) {
    reader_.Append(std::span<const uint8_t>(bytes.data(), bytes.size()));
    protocol::ResponseFrame frame;
    protocol::ResponseReader::Result result;
    while ((result = reader_.Next(&frame)) == protocol::ResponseReader::Result::kFrame) {
      replies_[frame.header.request_id] = {frame.header.status, frame.payload};
    }
    EXPECT_NE(result, protocol::ResponseReader::Result::kCorrupt);
  }

  sim::SimCluster& cluster_;
  sim::SimEnv& env_;
  std::unique_ptr<Stream> stream_;
  protocol::ResponseReader reader_;
  absl::btree_map<uint32_t, std::pair<uint8_t, std::string>> replies_;
};

class NodeServerTest : public ::testing::Test {
 protected:
  explicit NodeServerTest(int64_t min_free_disk_mb = 0)
      : cluster_(11, Options(), [min_free_disk_mb](Env& env) {
          NodeServerOptions options;
          options.port = 7001;
          options.http_port = 0;
          options.min_free_disk_mb = min_free_disk_mb;
          return std::make_unique<NodeServer>(env, options);
        }) {
    UM_CHECK_OK(cluster_.StartAll());
    client_ = std::make_unique<TestClient>(cluster_, cluster_.AddClient());
    client_->Connect();
  }

  static sim::ClusterOptions Options() {
    sim::ClusterOptions options;
    options.node_count = 1;
    options.clock_offset_ns_max = 0;
    return options;
  }

  void PutSumMetric(const std::string& code) {
    protocol::MetricSchemaRecord schema;
    schema.code = code;
    schema.agg_type = 1;  // SUM.
    schema.dimensions.push_back({"provider", {"aws", "gcp"}});
    std::string frame;
    ASSERT_TRUE(protocol::AppendMetricPutRequest(next_id_, schema, &frame).ok());
    EXPECT_EQ(client_->Call(next_id_++, frame).first, 0);
  }

  uint64_t Sum(uint64_t account, const std::string& code) {
    protocol::UsageQueryRequest query;
    query.account_id = account;
    query.period_start_ns = kT0;
    query.period_end_ns = kT0 + 1;
    query.metric_code = code;
    std::string frame;
    EXPECT_TRUE(protocol::AppendUsageQueryRequest(next_id_, query, &frame).ok());
    auto [status, payload] = client_->Call(next_id_++, frame);
    EXPECT_EQ(status, 0);
    EXPECT_EQ(payload.size(), protocol::kAggValueSizeBytes);
    return LoadU64(reinterpret_cast<const uint8_t*>(payload.data()));
  }

  sim::SimCluster cluster_;
  std::unique_ptr<TestClient> client_;
  uint32_t next_id_ = 1;
};

TEST_F(NodeServerTest, SyncAcknowledgedEventsSurviveACrash) {
  PutSumMetric("gb");
  std::vector<protocol::IngestEvent> events;
  for (int i = 0; i < 10; ++i) {
    events.push_back(protocol::IngestEvent{"gb", static_cast<uint64_t>(i), kT0 + i, 5, 0, {}});
  }
  std::string frame;
  ASSERT_TRUE(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync, protocol::kPartitionAuto,
                                            next_id_, events, &frame)
                  .ok());
  auto [status, payload] = client_->Call(next_id_++, frame);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(LoadU32(reinterpret_cast<const uint8_t*>(payload.data())), 10u);  // n_stored
  cluster_.Crash(0);
  ASSERT_TRUE(cluster_.Restart(0).ok());
  client_->Connect();
  for (uint64_t account = 0; account < 10; ++account) {
    EXPECT_EQ(Sum(account, "gb"), 5u) << "account " << account;
  }
  // Resending the same client-timestamped events after the crash is deduplicated.
  auto [resend_status, resend_payload] = client_->Call(next_id_, [&] {
    std::string again;
    UM_CHECK_OK(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync,
                                              protocol::kPartitionAuto, next_id_, events, &again));
    return again;
  }());
  ++next_id_;
  EXPECT_EQ(resend_status, static_cast<uint8_t>(protocol::Status::kDuplicate));
  EXPECT_EQ(Sum(3, "gb"), 5u);
}

TEST_F(NodeServerTest, ExtensionIngestWithIdempotencyKeysAndCorrections) {
  PutSumMetric("cpu");
  ext::IngestRequest request;
  request.set_sync(true);
  auto add = [&](uint64_t value, int64_t timestamp, char key, bool negative) {
    ext::Event* event = request.add_events();
    event->set_account_id(7);
    event->set_metric_code("cpu");
    event->set_value(value);
    event->set_timestamp_ns(timestamp);
    event->set_idempotency_key(std::string(16, key));
    event->set_negative_correction(negative);
    ext::Property* property = event->add_properties();
    property->set_key("provider");
    property->set_value("aws");
  };
  add(100, kT0 + 1, 'a', false);
  add(30, kT0 + 2, 'b', true);    // Correction: 100 - 30.
  add(100, kT0 + 1, 'a', false);  // Same key, same payload: duplicate.
  add(999, kT0 + 3, 'a', false);  // Same key, other payload: conflict, reported.
  auto [status, payload] = client_->CallExt(next_id_++, kOpcodeExtIngest, request);
  ASSERT_EQ(status, 0);
  ext::IngestReply reply;
  ASSERT_TRUE(reply.ParseFromString(payload));
  EXPECT_EQ(reply.n_stored(), 2u);
  EXPECT_EQ(reply.n_duplicates(), 1u);
  EXPECT_EQ(reply.n_conflicts(), 1u);
  ASSERT_EQ(reply.outcomes_size(), 4);
  EXPECT_EQ(reply.outcomes(2), ext::DUPLICATE);
  EXPECT_EQ(reply.outcomes(3), ext::CONFLICT);
  EXPECT_EQ(Sum(7, "cpu"), 70u);

  // Exact range: only the first event lies in [kT0 + 1, kT0 + 2).
  ext::RangeQueryRequest range;
  range.set_account_id(7);
  range.set_metric_code("cpu");
  range.set_start_ns(kT0 + 1);
  range.set_end_ns(kT0 + 2);
  ext::Filter* filter = range.add_filters();
  filter->set_key("provider");
  filter->set_value("aws");
  auto [range_status, range_payload] = client_->CallExt(next_id_++, kOpcodeExtRangeQuery, range);
  ASSERT_EQ(range_status, 0);
  ext::RangeQueryReply range_reply;
  ASSERT_TRUE(range_reply.ParseFromString(range_payload));
  EXPECT_EQ(range_reply.sum_lo(), 100u);
  range.set_end_ns(kT0 + 10);
  auto [whole_status, whole_payload] = client_->CallExt(next_id_++, kOpcodeExtRangeQuery, range);
  ASSERT_TRUE(range_reply.ParseFromString(whole_payload));
  EXPECT_EQ(range_reply.sum_lo(), 70u);

  // Paginated events with properties.
  ext::EventsPageRequest page;
  page.set_account_id(7);
  page.set_since_ns(0);
  page.set_until_ns(INT64_MAX);
  page.set_limit(1);
  auto [page_status, page_payload] = client_->CallExt(next_id_++, kOpcodeExtEventsPage, page);
  ASSERT_EQ(page_status, 0);
  ext::EventsPageReply page_reply;
  ASSERT_TRUE(page_reply.ParseFromString(page_payload));
  ASSERT_EQ(page_reply.events_size(), 1);
  EXPECT_TRUE(page_reply.more());
  EXPECT_EQ(page_reply.events(0).properties(0).value(), "aws");
  page.set_after_offset(page_reply.next_after_offset());
  page.set_has_after_offset(true);
  page.set_limit(10);
  auto [next_status, next_payload] = client_->CallExt(next_id_++, kOpcodeExtEventsPage, page);
  ASSERT_TRUE(page_reply.ParseFromString(next_payload));
  EXPECT_EQ(page_reply.events_size(), 1);
  EXPECT_FALSE(page_reply.more());
}

TEST_F(NodeServerTest, ExtensionErrorsCarryAMessageAndServerInfoListsCapabilities) {
  ext::IngestRequest request;
  ext::Event* event = request.add_events();
  event->set_account_id(1);
  event->set_metric_code("m");
  event->set_idempotency_key("short");
  auto [status, payload] = client_->CallExt(next_id_++, kOpcodeExtIngest, request);
  EXPECT_EQ(status, static_cast<uint8_t>(protocol::Status::kErr));
  ext::ErrorReply error;
  ASSERT_TRUE(error.ParseFromString(payload));
  EXPECT_NE(error.message().find("16 bytes"), std::string::npos);
  auto [info_status, info_payload] =
      client_->CallExt(next_id_++, kOpcodeExtServerInfo, ext::ServerInfoRequest());
  ASSERT_EQ(info_status, 0);
  ext::ServerInfoReply info;
  ASSERT_TRUE(info.ParseFromString(info_payload));
  EXPECT_EQ(info.version(), kServerVersion);
  EXPECT_EQ(info.nodes(), 1u);
  // An unimplemented extension opcode is still ERR, and the connection stays in sync.
  std::string frame(protocol::kRequestHeaderSizeBytes, '\0');
  protocol::EncodeRequestHeader(protocol::RequestHeader{protocol::kMagic, protocol::kVersion, 0x90,
                                                        protocol::kPartitionAuto, 3, next_id_},
                                reinterpret_cast<uint8_t*>(frame.data()));
  EXPECT_EQ(client_->Call(next_id_++, frame + "xyz").first,
            static_cast<uint8_t>(protocol::Status::kErr));
  EXPECT_EQ(Sum(1, "m"), 0u);
}

// A node whose free disk dropped below --min-free-disk-mb (8 MiB here) takes writes again
// only above the threshold plus an eighth of it (at least 1 MiB): a disk hovering around the
// threshold must not flip the node, and in a cluster its partitions, at every check.
class NodeServerLowDiskTest : public NodeServerTest {
 protected:
  NodeServerLowDiskTest() : NodeServerTest(8) {}

  // Leaves `free_kib` KiB of the node's disk free and lets two checks run (every 250 ms
  // while low, every second otherwise).
  void LeaveFree(uint64_t free_kib) {
    sim::SimDisk& disk = cluster_.disk(0);
    disk.options().capacity_bytes = disk.used_bytes() + free_kib * 1024;
    cluster_.simulator().RunUntil([] { return false; },
                                  cluster_.simulator().now_ns() + 2 * kSecond + 100'000'000);
  }

  uint8_t IngestStatus(uint64_t account) {
    std::vector<protocol::IngestEvent> events = {
        protocol::IngestEvent{"gb", account, kT0 + static_cast<int64_t>(account), 1, 0, {}}};
    std::string frame;
    UM_CHECK_OK(protocol::AppendIngestRequest(protocol::Opcode::kIngestSync,
                                              protocol::kPartitionAuto, next_id_, events, &frame));
    return client_->Call(next_id_++, frame).first;
  }
};

TEST_F(NodeServerLowDiskTest, WritesResumeOnlyAboveTheThresholdAndAMargin) {
  PutSumMetric("gb");
  const auto backpressure = static_cast<uint8_t>(protocol::Status::kBackpressure);
  EXPECT_EQ(IngestStatus(1), 0);
  LeaveFree(4 * 1024);
  EXPECT_EQ(IngestStatus(2), backpressure);
  LeaveFree(8 * 1024 + 512);  // Above the threshold, within the margin.
  EXPECT_EQ(IngestStatus(3), backpressure);
  LeaveFree(64 * 1024);
  EXPECT_EQ(IngestStatus(4), 0);
  LeaveFree(7 * 1024);
  EXPECT_EQ(IngestStatus(5), backpressure);
}

}  // namespace
}  // namespace unimeter
