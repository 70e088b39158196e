// Unit tests of the client's pure helpers: request ids, addresses, event validation, ingest
// batching (limits and grouping by owner), backoff and the reply frame reader.
#include "client/internal.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "protocol/wire.h"

namespace unimeter::client::internal {
namespace {

namespace wire = ::unimeter::protocol;

TEST(NextRequestIdTest, CountsUpAndSkipsZeroOnWrap) {
  EXPECT_EQ(NextRequestId(0), 1u);
  EXPECT_EQ(NextRequestId(1), 2u);
  EXPECT_EQ(NextRequestId(0xFFFFFFFEu), 0xFFFFFFFFu);
  EXPECT_EQ(NextRequestId(0xFFFFFFFFu), 1u);
}

TEST(SplitAddressTest, SplitsAtLastColon) {
  absl::StatusOr<HostPort> parsed = SplitAddress("10.0.0.2:7001");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->host, "10.0.0.2");
  EXPECT_EQ(parsed->port, 7001);
  EXPECT_FALSE(SplitAddress("10.0.0.2").ok());
  EXPECT_FALSE(SplitAddress(":7001").ok());
  EXPECT_FALSE(SplitAddress("host:").ok());
  EXPECT_FALSE(SplitAddress("host:0").ok());
  EXPECT_FALSE(SplitAddress("host:65536").ok());
  EXPECT_FALSE(SplitAddress("host:12a").ok());
}

TEST(ValidateEventTest, RejectsWhatTheWireCannotCarry) {
  Event event{.account_id = 1, .metric_code = "api_calls", .value = 1};
  EXPECT_TRUE(ValidateEvent(event, 0).ok());
  event.metric_code = std::string(63, 'm');
  EXPECT_TRUE(ValidateEvent(event, 0).ok());
  event.metric_code = std::string(64, 'm');
  EXPECT_FALSE(ValidateEvent(event, 0).ok());
  event.metric_code = "";
  EXPECT_FALSE(ValidateEvent(event, 0).ok());
  event.metric_code = "ok";
  event.properties.push_back({.key = std::string(32, 'k'), .value = "v"});
  EXPECT_FALSE(ValidateEvent(event, 0).ok());
  event.properties[0] = {.key = "k", .value = std::string(64, 'v')};
  EXPECT_FALSE(ValidateEvent(event, 0).ok());
  event.properties.assign(256, Property{.key = "k", .value = "v"});
  EXPECT_FALSE(ValidateEvent(event, 0).ok());
}

std::vector<Event> MakeEvents(size_t count, size_t props_each, int64_t timestamp_ns) {
  std::vector<Event> events(count);
  for (size_t i = 0; i < count; ++i) {
    events[i] = {.account_id = i, .metric_code = "m", .value = 1, .timestamp_ns = timestamp_ns};
    events[i].properties.assign(props_each, Property{.key = "k", .value = "v"});
  }
  return events;
}

std::string NoOwner(uint32_t) { return ""; }

TEST(PlanIngestBatchesTest, SplitsAtTheEventLimit) {
  std::vector<Event> events = MakeEvents(2500, 0, 0);
  std::vector<IngestBatch> batches = PlanIngestBatches(events, NoOwner);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].event_indexes.size(), 1024u);
  EXPECT_EQ(batches[1].event_indexes.size(), 1024u);
  EXPECT_EQ(batches[2].event_indexes.size(), 452u);
  EXPECT_EQ(batches[1].event_indexes.front(), 1024u);
  EXPECT_EQ(batches[1].first_partition, 1024u % 256);
  EXPECT_FALSE(batches[0].all_timestamped);
}

TEST(PlanIngestBatchesTest, SplitsAtThePropertyLimit) {
  // 255 props each: four events fit (1,020 pairs), the fifth starts a new request.
  std::vector<Event> events = MakeEvents(9, 255, 7);
  std::vector<IngestBatch> batches = PlanIngestBatches(events, NoOwner);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].event_indexes.size(), 4u);
  EXPECT_EQ(batches[0].props_count, 1020u);
  EXPECT_EQ(batches[2].event_indexes.size(), 1u);
  EXPECT_TRUE(batches[0].all_timestamped);
  for (const IngestBatch& batch : batches) {
    std::string frame;
    ASSERT_TRUE(AppendIngestBatch(wire::Opcode::kIngestSync, 9, events, batch, &frame).ok());
    absl::StatusOr<wire::IngestRequestView> view = wire::IngestRequestView::Decode(
        wire::kPartitionAuto,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(frame.data()), frame.size())
            .subspan(wire::kRequestHeaderSizeBytes));
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->event_count(), batch.event_indexes.size());
    EXPECT_EQ(view->props_count(), batch.props_count);
  }
}

TEST(PlanIngestBatchesTest, GroupsByOwnerKeepingOrder) {
  std::vector<Event> events = MakeEvents(6, 0, 0);  // Accounts 0..5.
  events[3].timestamp_ns = 5;
  auto owner = [](uint32_t partition) { return partition % 2 == 0 ? "a:1" : "b:1"; };
  std::vector<IngestBatch> batches = PlanIngestBatches(events, owner);
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].event_indexes, (std::vector<uint32_t>{0, 2, 4}));
  EXPECT_EQ(batches[1].event_indexes, (std::vector<uint32_t>{1, 3, 5}));
  EXPECT_EQ(batches[1].first_partition, 1u);
}

TEST(PlanIngestBatchesTest, AllTimestampedOnlyWhenEveryEventHasOne) {
  std::vector<Event> events = MakeEvents(3, 0, 100);
  EXPECT_TRUE(PlanIngestBatches(events, NoOwner)[0].all_timestamped);
  events[2].timestamp_ns = 0;
  EXPECT_FALSE(PlanIngestBatches(events, NoOwner)[0].all_timestamped);
}

TEST(SetRequestIdTest, RewritesOnlyTheId) {
  std::string frame;
  wire::AppendEmptyRequest(static_cast<uint8_t>(wire::Opcode::kMetricList), 1, &frame);
  SetRequestId(0xABCDEF01u, &frame);
  const wire::RequestHeader header =
      wire::DecodeRequestHeader(reinterpret_cast<const uint8_t*>(frame.data()));
  EXPECT_EQ(header.request_id, 0xABCDEF01u);
  EXPECT_EQ(header.packet_type, static_cast<uint8_t>(wire::Opcode::kMetricList));
  EXPECT_EQ(header.magic, wire::kMagic);
}

TEST(BackoffDelayMsTest, DoublesUpToTheMaximumWithJitter) {
  EXPECT_EQ(BackoffDelayMs(1, 10, 1000, 0.0), 5);
  EXPECT_EQ(BackoffDelayMs(2, 10, 1000, 0.0), 10);
  EXPECT_EQ(BackoffDelayMs(3, 10, 1000, 0.0), 20);
  EXPECT_EQ(BackoffDelayMs(30, 10, 1000, 0.0), 500);
  EXPECT_LT(BackoffDelayMs(30, 10, 1000, 0.999), 1000);
  EXPECT_GE(BackoffDelayMs(30, 10, 1000, 0.999), 990);
}

TEST(ResponseReaderTest, ReassemblesFramesSplitAnywhere) {
  std::string stream;
  wire::AppendAggValueReply(7, {.sum = 5}, &stream);
  wire::AppendEmptyReply(wire::Status::kBackpressure, 8, &stream);
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    ResponseReader reader;
    std::vector<ResponseFrame> frames;
    for (size_t at = 0; at < stream.size(); at += chunk) {
      const size_t n = std::min(chunk, stream.size() - at);
      reader.Append({reinterpret_cast<const uint8_t*>(stream.data()) + at, n});
      ResponseFrame frame;
      while (reader.Next(&frame) == ResponseReader::Result::kFrame) {
        frames.push_back(frame);
      }
    }
    ASSERT_EQ(frames.size(), 2u) << chunk;
    EXPECT_EQ(frames[0].header.request_id, 7u);
    EXPECT_EQ(frames[0].payload.size(), wire::kAggValueSizeBytes);
    EXPECT_EQ(frames[1].header.status, static_cast<uint8_t>(wire::Status::kBackpressure));
    EXPECT_EQ(reader.buffered_bytes(), 0u);
  }
}

TEST(ResponseReaderTest, RejectsReservedStatusAndOversizedPayload) {
  uint8_t header[wire::kResponseHeaderSizeBytes];
  wire::EncodeResponseHeader({.status = 7, .request_id = 3, .payload_len = 0}, header);
  ResponseReader reader;
  reader.Append(header);
  ResponseFrame frame;
  EXPECT_EQ(reader.Next(&frame), ResponseReader::Result::kCorrupt);

  wire::EncodeResponseHeader(
      {.status = 0, .request_id = 3, .payload_len = wire::kReplyPayloadSizeBytesMax + 1}, header);
  ResponseReader second;
  second.Append(header);
  EXPECT_EQ(second.Next(&frame), ResponseReader::Result::kCorrupt);

  // A push with an unknown type is a valid frame (skipped later by the client).
  wire::EncodeResponseHeader({.status = 0x99, .request_id = 0, .payload_len = 0}, header);
  ResponseReader third;
  third.Append(header);
  EXPECT_EQ(third.Next(&frame), ResponseReader::Result::kFrame);
}

}  // namespace
}  // namespace unimeter::client::internal
