// protocol/frame_reader_test.cc
//
// Goal: the frame reader yields the same events whatever the chunking of the byte stream,
// drains rejected bodies without buffering them (so the next request is still parsed), echoes
// each request's own id, and closes after a bad magic. Method: build a stream of frames with the
// wire encoders, feed it whole, byte by byte and in seeded random chunks, and compare the event
// sequences against the expected one.
#include "protocol/frame_reader.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/base/endian.h"
#include "node/base/random.h"
#include "protocol/wire.h"

namespace unimeter::protocol {
namespace {

// One yielded event, with its payload copied (the view is only valid until the next Consume).
struct Seen {
  FrameEventKind kind;
  RequestHeader header;
  HeaderRejection rejection;
  std::string payload;
  bool operator==(const Seen&) const = default;
};

std::span<const uint8_t> Span(const std::string& bytes) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// Feeds `stream` in chunks of the sizes `next_chunk()` returns; collects every event.
template <typename NextChunk>
std::vector<Seen> Feed(FrameReader& reader, const std::string& stream, NextChunk next_chunk) {
  std::vector<Seen> seen;
  size_t position = 0;
  while (position < stream.size()) {
    const size_t chunk_size = std::min(next_chunk(), stream.size() - position);
    std::span<const uint8_t> chunk = Span(stream).subspan(position, chunk_size);
    position += chunk_size;
    while (!chunk.empty()) {
      FrameEvent event;
      const size_t used = reader.Consume(chunk, &event);
      EXPECT_LE(used, chunk.size());
      chunk = chunk.subspan(used);
      EXPECT_LE(reader.buffer_capacity_bytes(), kPayloadSizeBytesMax);
      if (event.kind == FrameEventKind::kNeedMore) {
        EXPECT_TRUE(chunk.empty());
        continue;
      }
      seen.push_back(
          {event.kind, event.header, event.rejection,
           std::string(reinterpret_cast<const char*>(event.payload.data()), event.payload.size())});
    }
  }
  return seen;
}

std::vector<Seen> FeedWhole(const std::string& stream, FrameReaderOptions options = {}) {
  FrameReader reader(options);
  return Feed(reader, stream, [&] { return stream.size(); });
}

std::vector<Seen> FeedBytewise(const std::string& stream, FrameReaderOptions options = {}) {
  FrameReader reader(options);
  return Feed(reader, stream, [] { return size_t{1}; });
}

std::vector<Seen> FeedRandomChunks(const std::string& stream, uint64_t seed,
                                   FrameReaderOptions options = {}) {
  FrameReader reader(options);
  Prng prng(seed);
  return Feed(reader, stream, [&] {
    // Mostly small chunks, sometimes large ones that hold several frames.
    return prng.Chance(1, 4) ? static_cast<size_t>(prng.UniformRange(1, 70'000))
                             : static_cast<size_t>(prng.UniformRange(1, 40));
  });
}

RequestHeader HeaderOf(const std::string& frame) {
  return DecodeRequestHeader(reinterpret_cast<const uint8_t*>(frame.data()));
}

Seen FrameOf(const std::string& frame) {
  return {FrameEventKind::kFrame, HeaderOf(frame), HeaderRejection::kNone,
          frame.substr(kRequestHeaderSizeBytes)};
}

Seen RejectOf(const RequestHeader& header, HeaderRejection rejection) {
  return {FrameEventKind::kReject, header, rejection, ""};
}

std::string RawFrame(const RequestHeader& header, const std::string& body) {
  std::string frame(kRequestHeaderSizeBytes, '\0');
  EncodeRequestHeader(header, reinterpret_cast<uint8_t*>(frame.data()));
  return frame + body;
}

// A stream with one valid request of every opcode that has a payload, plus empty ones.
struct Stream {
  std::string bytes;
  std::vector<Seen> expected;

  void Add(const std::string& frame) {
    bytes += frame;
    expected.push_back(FrameOf(frame));
  }
};

Stream EveryOpcodeStream() {
  Stream stream;
  std::string frame;
  const PropPair props[2] = {{"region", "us-east"}, {"provider", "aws"}};
  std::vector<IngestEvent> events;
  for (uint64_t i = 0; i < 300; ++i) {
    events.push_back({.metric_code = "api_calls",
                      .account_id = i,
                      .value = i,
                      .props = std::span<const PropPair>(props, i % 3 == 0 ? 2 : 0)});
  }
  EXPECT_TRUE(AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 1, events, &frame).ok());
  stream.Add(frame);
  frame.clear();
  EXPECT_TRUE(AppendIngestRequest(Opcode::kIngestAsync, 4, 2, {}, &frame).ok());
  stream.Add(frame);
  for (uint8_t opcode : {0x10, 0x22, 0x34, 0x40}) {
    frame.clear();
    AppendEmptyRequest(opcode, 100 + opcode, &frame);
    stream.Add(frame);
  }
  frame.clear();
  MetricSchemaRecord schema{.code = "api_calls", .agg_type = 1};
  schema.dimensions.push_back({.key = "region", .values = {"us-east", "eu-west"}});
  schema.thresholds.push_back({.code = "quota", .value = 10});
  EXPECT_TRUE(AppendMetricPutRequest(3, schema, &frame).ok());
  stream.Add(frame);
  frame.clear();
  EXPECT_TRUE(AppendMetricDeleteRequest(4, "api_calls", &frame).ok());
  stream.Add(frame);
  frame.clear();
  UsageQueryRequest query{.account_id = 42, .metric_code = "api_calls", .filters_count = 1};
  query.filters[0] = {"region", "us-east"};
  EXPECT_TRUE(AppendUsageQueryRequest(5, query, &frame).ok());
  stream.Add(frame);
  frame.clear();
  EXPECT_TRUE(AppendUsageRealtimeRequest(6, {.account_id = 42, .metric_code = "m"}, &frame).ok());
  stream.Add(frame);
  frame.clear();
  AppendEventsListRequest(7, {.account_id = 42, .since_ns = 0, .until_ns = 9}, &frame);
  stream.Add(frame);
  frame.clear();
  AppendAlertsListRequest(8, {.account_id = 0, .since_offset = 3}, &frame);
  stream.Add(frame);
  frame.clear();
  EXPECT_TRUE(AppendBreakdownRequest(9,
                                     {.account_id = 42,
                                      .metric_code = "api_calls",
                                      .group_by_count = 1,
                                      .group_by_keys = {"region"}},
                                     &frame)
                  .ok());
  stream.Add(frame);
  frame.clear();
  AppendClusterRebalanceRequest(10, {.new_node_count = 3}, &frame);
  stream.Add(frame);
  return stream;
}

TEST(FrameReader, EveryOpcodeWholeBytewiseAndRandomChunks) {
  const Stream stream = EveryOpcodeStream();
  EXPECT_EQ(FeedWhole(stream.bytes), stream.expected);
  EXPECT_EQ(FeedBytewise(stream.bytes), stream.expected);
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    EXPECT_EQ(FeedRandomChunks(stream.bytes, seed), stream.expected) << "seed " << seed;
  }
}

TEST(FrameReader, PayloadIsAViewIntoTheInputWhenComplete) {
  std::string frame;
  AppendEventsListRequest(7, {.account_id = 1}, &frame);
  FrameReader reader;
  FrameEvent event;
  EXPECT_EQ(reader.Consume(Span(frame), &event), frame.size());
  ASSERT_EQ(event.kind, FrameEventKind::kFrame);
  EXPECT_EQ(event.payload.data(), reinterpret_cast<const uint8_t*>(frame.data()) + 16);
  EXPECT_EQ(reader.buffer_capacity_bytes(), 0u);
}

TEST(FrameReader, StopsAfterEachEvent) {
  std::string two;
  AppendEmptyRequest(0x10, 1, &two);
  AppendEmptyRequest(0x10, 2, &two);
  FrameReader reader;
  FrameEvent event;
  EXPECT_EQ(reader.Consume(Span(two), &event), 16u);
  EXPECT_EQ(event.header.request_id, 1u);
  EXPECT_EQ(reader.Consume(Span(two).subspan(16), &event), 16u);
  EXPECT_EQ(event.header.request_id, 2u);
  EXPECT_EQ(reader.Consume({}, &event), 0u);
  EXPECT_EQ(event.kind, FrameEventKind::kNeedMore);
}

TEST(FrameReader, MaximalPayloadBufferedOnceAndBounded) {
  std::string frame;
  std::vector<IngestEvent> events(1024, IngestEvent{.metric_code = "m"});
  std::vector<PropPair> props(1024, PropPair{"k", "v"});
  for (size_t i = 0; i < 1024; ++i) {
    events[i].props = std::span<const PropPair>(&props[i], 1);
  }
  ASSERT_TRUE(AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 5, events, &frame).ok());
  ASSERT_EQ(frame.size(), 16u + kPayloadSizeBytesMax);
  const std::vector<Seen> expected = {FrameOf(frame), FrameOf(frame)};
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    EXPECT_EQ(FeedRandomChunks(frame + frame, seed), expected);
  }
  EXPECT_EQ(FeedBytewise(frame + frame), expected);
}

TEST(FrameReader, OversizeBodyDrainedAndStreamStaysInSync) {
  Stream stream;
  std::string frame;
  AppendEmptyRequest(0x40, 1, &frame);
  stream.Add(frame);
  const RequestHeader oversize{
      .packet_type = 0x01, .payload_len = kPayloadSizeBytesMax + 1, .request_id = 77};
  // The body looks like frames; draining must not parse it.
  std::string body;
  while (body.size() < oversize.payload_len) {
    body += frame;
  }
  body.resize(oversize.payload_len);
  stream.bytes += RawFrame(oversize, body);
  stream.expected.push_back(RejectOf(oversize, HeaderRejection::kPayloadTooLarge));
  frame.clear();
  AppendEventsListRequest(2, {.account_id = 9}, &frame);
  stream.Add(frame);

  EXPECT_EQ(FeedWhole(stream.bytes), stream.expected);
  EXPECT_EQ(FeedBytewise(stream.bytes), stream.expected);
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    EXPECT_EQ(FeedRandomChunks(stream.bytes, seed), stream.expected) << seed;
  }
  // Draining never buffers: after the oversize header, the buffer stays empty.
  FrameReader reader;
  FrameEvent event;
  std::span<const uint8_t> input = Span(stream.bytes);
  input = input.subspan(reader.Consume(input, &event));  // The first frame.
  input = input.subspan(reader.Consume(input.first(16 + 100'000), &event));
  EXPECT_EQ(event.kind, FrameEventKind::kNeedMore);
  EXPECT_EQ(reader.buffered_payload_bytes(), 0u);
  EXPECT_EQ(reader.buffer_capacity_bytes(), 0u);
}

TEST(FrameReader, BadVersionAndBadOpcodeBodiesDrained) {
  Stream stream;
  const RequestHeader bad_version{
      .version = 2, .packet_type = 0x01, .payload_len = 200, .request_id = 11};
  stream.bytes += RawFrame(bad_version, std::string(200, '\x01'));
  stream.expected.push_back(RejectOf(bad_version, HeaderRejection::kBadVersion));
  for (uint8_t opcode : {0x02, 0x11, 0x35, 0x42, 0x43, 0x44, 0x80, 0xFF}) {
    const RequestHeader bad_opcode{
        .packet_type = opcode, .payload_len = opcode, .request_id = 1000u + opcode};
    stream.bytes += RawFrame(bad_opcode, std::string(opcode, '\xEE'));
    stream.expected.push_back(RejectOf(bad_opcode, HeaderRejection::kBadOpcode));
  }
  // A rejected request with an empty body is answered at once.
  const RequestHeader empty_unknown{.packet_type = 0x50, .payload_len = 0, .request_id = 12};
  stream.bytes += RawFrame(empty_unknown, "");
  stream.expected.push_back(RejectOf(empty_unknown, HeaderRejection::kBadOpcode));
  std::string frame;
  AppendAlertsListRequest(13, {.account_id = 1}, &frame);
  stream.Add(frame);

  EXPECT_EQ(FeedWhole(stream.bytes), stream.expected);
  EXPECT_EQ(FeedBytewise(stream.bytes), stream.expected);
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    EXPECT_EQ(FeedRandomChunks(stream.bytes, seed), stream.expected) << seed;
  }
}

TEST(FrameReader, RegisteredExtensionOpcodesAreDispatched) {
  FrameReaderOptions options;
  options.extensions.Add(0x80);
  const RequestHeader extension{.packet_type = 0x80, .payload_len = 3, .request_id = 5};
  const std::string frame = RawFrame(extension, "abc");
  EXPECT_EQ(FeedWhole(frame, options), std::vector<Seen>{FrameOf(frame)});
  EXPECT_EQ(FeedWhole(frame), std::vector<Seen>{RejectOf(extension, HeaderRejection::kBadOpcode)});
}

TEST(FrameReader, BadMagicClosesWithBytes12To15) {
  std::string good;
  AppendEmptyRequest(0x10, 1, &good);
  std::string bad = good;
  bad[3] = '\xC1';  // Magic 0xC1FFEE01.
  StoreU32(reinterpret_cast<uint8_t*>(bad.data()) + 12, 0xA1B2C3D4);
  const std::string stream = good + bad + good + good;
  const RequestHeader bad_header = HeaderOf(bad);
  const std::vector<Seen> expected = {
      FrameOf(good), {FrameEventKind::kClose, bad_header, HeaderRejection::kBadMagic, ""}};
  EXPECT_EQ(FeedWhole(stream), expected);
  EXPECT_EQ(FeedBytewise(stream), expected);
  EXPECT_EQ(expected[1].header.request_id, 0xA1B2C3D4);
  FrameReader reader;
  FrameEvent event;
  std::span<const uint8_t> input = Span(stream);
  input = input.subspan(reader.Consume(input, &event));
  EXPECT_EQ(reader.Consume(input, &event), 16u);
  EXPECT_EQ(event.kind, FrameEventKind::kClose);
  EXPECT_TRUE(reader.closed());
  // Everything after the close is swallowed.
  EXPECT_EQ(reader.Consume(input.subspan(16), &event), 32u);
  EXPECT_EQ(event.kind, FrameEventKind::kNeedMore);
}

TEST(FrameReader, PayloadAbove16MiBClosesByDefaultOrDrains) {
  const RequestHeader huge{
      .packet_type = 0x01, .payload_len = kDrainSizeBytesMax + 1, .request_id = 3};
  std::string stream = RawFrame(huge, "");
  EXPECT_EQ(
      FeedWhole(stream),
      (std::vector<Seen>{{FrameEventKind::kClose, huge, HeaderRejection::kPayloadTooLarge, ""}}));
  // With draining chosen, 16 MiB + 1 bytes are counted down, then the next frame is parsed.
  FrameReader reader(FrameReaderOptions{.close_above_drain_limit = false});
  FrameEvent event;
  EXPECT_EQ(reader.Consume(Span(stream), &event), 16u);
  EXPECT_EQ(event.kind, FrameEventKind::kNeedMore);
  const std::string chunk(1 << 20, '\0');
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(reader.Consume(Span(chunk), &event), chunk.size());
    EXPECT_EQ(event.kind, FrameEventKind::kNeedMore);
  }
  std::string next;
  AppendEmptyRequest(0x10, 4, &next);
  const std::string tail = std::string(1, '\0') + next;
  EXPECT_EQ(reader.Consume(Span(tail), &event), 1u);
  EXPECT_EQ(event.kind, FrameEventKind::kReject);
  EXPECT_EQ(event.header.request_id, 3u);
  EXPECT_EQ(reader.Consume(Span(tail).subspan(1), &event), 16u);
  EXPECT_EQ(event.kind, FrameEventKind::kFrame);
  EXPECT_EQ(event.header.request_id, 4u);
  EXPECT_EQ(reader.buffer_capacity_bytes(), 0u);
}

}  // namespace
}  // namespace unimeter::protocol
