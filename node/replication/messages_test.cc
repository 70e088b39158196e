#include "node/replication/messages.h"

#include <gtest/gtest.h>

#include "node/base/checksum.h"
#include "node/base/random.h"
#include "node/metering/log_entry.h"
#include "node/replication/replica_meta.h"

namespace unimeter::replication {
namespace {

Message RoundTrip(const Message& message) {
  Header header{0x1234, 7, NodeState::kSyncing, true};
  const std::vector<uint8_t> bytes = EncodeMessage(header, message);
  Header decoded_header;
  Message decoded;
  EXPECT_TRUE(DecodeMessage(bytes, &decoded_header, &decoded).ok());
  EXPECT_EQ(decoded_header.incarnation, 0x1234u);
  EXPECT_EQ(decoded_header.state, NodeState::kSyncing);
  EXPECT_TRUE(decoded_header.formed);
  EXPECT_EQ(decoded.index(), message.index());
  return decoded;
}

TEST(MessagesTest, AppendRoundTripsEntries) {
  Append append;
  append.sequence = 9;
  AppendItem item;
  item.partition = 200;
  item.epoch = (3ull << 32) | 1;
  item.prev_index = 4;
  item.prev_epoch = 7;
  item.commit_index = 3;
  item.entries.push_back(WireEntry{
      5, item.epoch,
      std::make_shared<const metering::LogEntry>(metering::LogEntry::StartOfEpoch(item.epoch))});
  item.entries.push_back(
      WireEntry{6, item.epoch,
                std::make_shared<const metering::LogEntry>(metering::LogEntry::Retention(-5))});
  append.items.push_back(item);
  const Append decoded = std::get<Append>(RoundTrip(append));
  ASSERT_EQ(decoded.items.size(), 1u);
  EXPECT_EQ(decoded.sequence, 9u);
  EXPECT_EQ(decoded.items[0].partition, 200u);
  EXPECT_EQ(decoded.items[0].prev_epoch, 7u);
  ASSERT_EQ(decoded.items[0].entries.size(), 2u);
  EXPECT_EQ(*decoded.items[0].entries[1].entry, metering::LogEntry::Retention(-5));
}

TEST(MessagesTest, ForwardRoundTripsEventsAndReplies) {
  ForwardItem forward;
  forward.request_id = 77;
  forward.partition = 13;
  forward.sync = false;
  metering::Event event;
  event.account_id = 13;
  event.metric_code = "api_calls";
  event.value = 5;
  event.timestamp_ns = -3;
  event.operation = metering::OperationType::kAdd;
  event.properties.push_back({"region", "eu"});
  event.idempotency_key = metering::IdempotencyKey{1, 2};
  event.negative_correction = true;
  forward.events = {event, metering::Event{}};
  ForwardItem entry;
  entry.request_id = 78;
  entry.kind = ForwardKind::kEntry;
  entry.entry = std::make_shared<const metering::LogEntry>(metering::LogEntry::Delete("x"));
  const Forward decoded = std::get<Forward>(RoundTrip(Forward{{forward, entry}}));
  ASSERT_EQ(decoded.items.size(), 2u);
  EXPECT_EQ(decoded.items[0].request_id, 77u);
  EXPECT_FALSE(decoded.items[0].sync);
  ASSERT_EQ(decoded.items[0].events.size(), 2u);
  EXPECT_EQ(decoded.items[0].events[0], event);
  EXPECT_EQ(*decoded.items[1].entry, metering::LogEntry::Delete("x"));

  ForwardReplyItem reply;
  reply.request_id = 77;
  reply.status = absl::UnknownError("maybe");
  reply.result.n_stored = 1;
  reply.result.outcomes = {metering::EventOutcome::kStored, metering::EventOutcome::kDuplicate};
  const ForwardReply back = std::get<ForwardReply>(RoundTrip(ForwardReply{{reply}}));
  ASSERT_EQ(back.items.size(), 1u);
  EXPECT_EQ(back.items[0].status, reply.status);
  EXPECT_EQ(back.items[0].result.outcomes, reply.result.outcomes);
}

TEST(MessagesTest, HeartbeatAndPromisesRoundTrip) {
  Heartbeat heartbeat;
  heartbeat.term = 5;
  heartbeat.map_version = 6;
  heartbeat.owner.fill(2);
  heartbeat.epoch[255] = 99;
  const Heartbeat decoded = std::get<Heartbeat>(RoundTrip(heartbeat));
  EXPECT_EQ(decoded.owner, heartbeat.owner);
  EXPECT_EQ(decoded.epoch, heartbeat.epoch);
  Promise promise;
  promise.items.push_back(PromiseItem{1, 2, true, 2, 1, 10, 8});
  const Promise back = std::get<Promise>(RoundTrip(promise));
  ASSERT_EQ(back.items.size(), 1u);
  EXPECT_EQ(back.items[0].last_index, 10u);
  EXPECT_TRUE(back.items[0].granted);
}

TEST(MessagesTest, ConfirmRoundsRoundTrip) {
  ConfirmEpoch request;
  request.round = 41;
  request.items.push_back(ConfirmItem{255, (7ull << 32) | 2});
  request.lease_ns = 500'000'000;
  const ConfirmEpoch decoded = std::get<ConfirmEpoch>(RoundTrip(request));
  EXPECT_EQ(decoded.round, 41u);
  EXPECT_EQ(decoded.lease_ns, 500'000'000);
  ASSERT_EQ(decoded.items.size(), 1u);
  EXPECT_EQ(decoded.items[0].partition, 255u);
  EXPECT_EQ(decoded.items[0].epoch, (7ull << 32) | 2);
  ConfirmEpochReply reply;
  reply.round = 41;
  reply.items.push_back(ConfirmReplyItem{3, 9, true});
  reply.items.push_back(ConfirmReplyItem{4, 9, false});
  reply.lease_ns = 250'000'000;
  const ConfirmEpochReply back = std::get<ConfirmEpochReply>(RoundTrip(reply));
  EXPECT_EQ(back.round, 41u);
  EXPECT_EQ(back.lease_ns, 250'000'000);
  ASSERT_EQ(back.items.size(), 2u);
  EXPECT_TRUE(back.items[0].confirmed);
  EXPECT_FALSE(back.items[1].confirmed);
  EXPECT_EQ(back.items[1].partition, 4u);
  // A minor-1 sender has no lease field: it asks for and grants none.
  std::vector<uint8_t> bytes = EncodeMessage(Header{}, reply);
  bytes.resize(bytes.size() - 8);
  Header header;
  Message message;
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_EQ(std::get<ConfirmEpochReply>(message).lease_ns, 0);
  EXPECT_TRUE(std::get<ConfirmEpochReply>(message).items[0].confirmed);
  bytes = EncodeMessage(Header{}, request);
  bytes.resize(bytes.size() - 8);
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_EQ(std::get<ConfirmEpoch>(message).lease_ns, 0);
  // A negative lease is malformed.
  reply.lease_ns = -1;
  EXPECT_FALSE(DecodeMessage(EncodeMessage(Header{}, reply), &header, &message).ok());
  // A partition number outside the 256 is refused.
  bytes = EncodeMessage(Header{}, request);
  bytes[bytes.size() - 17] = 0x01;  // The partition's high byte (little-endian): 0x01FF.
  EXPECT_FALSE(DecodeMessage(bytes, &header, &message).ok());
}

TEST(MessagesTest, HeartbeatAckTellsHellosFromAnswers) {
  HeartbeatAck hello;
  hello.term = 6;
  hello.hello = true;
  hello.commit_index[255] = 12;
  hello.echo_ns = 777;
  HeartbeatAck back = std::get<HeartbeatAck>(RoundTrip(hello));
  EXPECT_TRUE(back.hello);
  EXPECT_EQ(back.echo_ns, 777);
  EXPECT_EQ(back.commit_index[255], 12u);
  EXPECT_FALSE(back.writes_blocked);
  hello.writes_blocked = true;
  EXPECT_TRUE(std::get<HeartbeatAck>(RoundTrip(hello)).writes_blocked);
  hello.meta_start = 40;
  hello.meta_durable = 43;
  hello.wal_durable = 1 << 20;
  hello.echo = MetaEcho{.incarnation = 9, .start = 31, .earlier = 30, .wal_earlier = 4096};
  back = std::get<HeartbeatAck>(RoundTrip(hello));
  EXPECT_EQ(back.meta_start, 40u);
  EXPECT_EQ(back.meta_durable, 43u);
  EXPECT_EQ(back.wal_durable, 1u << 20);
  EXPECT_EQ(back.echo, (MetaEcho{9, 31, 30, 4096}));
  // A minor-6 sender announces no replica.meta sequences and echoes nothing.
  std::vector<uint8_t> bytes = EncodeMessage(Header{}, hello);
  bytes.resize(bytes.size() - 56);
  Header header;
  Message message;
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_TRUE(std::get<HeartbeatAck>(message).writes_blocked);
  EXPECT_EQ(std::get<HeartbeatAck>(message).meta_durable, 0u);
  EXPECT_EQ(std::get<HeartbeatAck>(message).echo, MetaEcho{});
  // Cut inside the sequences: malformed.
  std::vector<uint8_t> cut = EncodeMessage(Header{}, hello);
  cut.resize(cut.size() - 12);
  EXPECT_FALSE(DecodeMessage(cut, &header, &message).ok());
  // A minor-5 sender has no writes_blocked byte: it takes writes.
  bytes.resize(bytes.size() - 1);
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_FALSE(std::get<HeartbeatAck>(message).writes_blocked);
  EXPECT_EQ(std::get<HeartbeatAck>(message).echo_ns, 777);
  // A minor-0 sender has no flag byte and no echo: its acks are answers of unknown age.
  bytes.resize(bytes.size() - 9);
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_FALSE(std::get<HeartbeatAck>(message).hello);
  EXPECT_EQ(std::get<HeartbeatAck>(message).echo_ns, 0);
  EXPECT_EQ(std::get<HeartbeatAck>(message).term, 6u);
  // Heartbeats carry the leader's send time; a minor-0 leader's decode as 0.
  Heartbeat heartbeat;
  heartbeat.term = 6;
  heartbeat.sent_ns = 123456789;
  EXPECT_EQ(std::get<Heartbeat>(RoundTrip(heartbeat)).sent_ns, 123456789);
  bytes = EncodeMessage(Header{}, heartbeat);
  bytes.resize(bytes.size() - 8);
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_EQ(std::get<Heartbeat>(message).sent_ns, 0);
}

TEST(MessagesTest, SnapshotAckRoundTripsAndTheSendersMinorVersionIsKnown) {
  SnapshotAck ack;
  ack.items.push_back(SnapshotAckItem{255, (5ull << 32) | 2, 901, 3 * 1024 * 1024, 4 << 20});
  ack.items.push_back(SnapshotAckItem{0, 1, 2, 0, 0});
  const SnapshotAck back = std::get<SnapshotAck>(RoundTrip(ack));
  ASSERT_EQ(back.items.size(), 2u);
  EXPECT_EQ(back.items[0].partition, 255u);
  EXPECT_EQ(back.items[0].epoch, (5ull << 32) | 2);
  EXPECT_EQ(back.items[0].index, 901u);
  EXPECT_EQ(back.items[0].received_bytes, 3u * 1024 * 1024);
  EXPECT_EQ(back.items[0].chunk_offset, 4u << 20);
  EXPECT_EQ(back.items[1].received_bytes, 0u);
  // The receiver learns the sender's minor version: a minor-2 sender of chunks gets no
  // acknowledgements (it does not pace its transfers).
  std::vector<uint8_t> bytes = EncodeMessage(Header{}, ack);
  Header header;
  Message message;
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_EQ(header.minor, kProtocolMinor);
  bytes = EncodeMessage(Header{}, SnapshotChunk{});
  bytes[1] = 2;
  ASSERT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  EXPECT_EQ(header.minor, 2);
  // A partition outside the 256, and a truncated item, are refused.
  bytes = EncodeMessage(Header{}, ack);
  bytes[bytes.size() - 33] = 0x01;  // The second item's partition high byte: 0x0100.
  EXPECT_FALSE(DecodeMessage(bytes, &header, &message).ok());
  bytes = EncodeMessage(Header{}, ack);
  bytes.resize(bytes.size() - 1);
  EXPECT_FALSE(DecodeMessage(bytes, &header, &message).ok());
}

TEST(MessagesTest, RejectsOtherMajorVersionsAndGarbage) {
  std::vector<uint8_t> bytes = EncodeMessage(Header{}, VoteRequest{3, true});
  Header header;
  Message message;
  bytes[0] = kProtocolMajor + 1;
  EXPECT_FALSE(DecodeMessage(bytes, &header, &message).ok());
  // A newer minor version may append fields: still decodes.
  bytes = EncodeMessage(Header{}, VoteRequest{3, true});
  bytes[1] = kProtocolMinor + 1;
  bytes.push_back(0xEE);
  EXPECT_TRUE(DecodeMessage(bytes, &header, &message).ok());
  // Random bytes and every truncation of a valid message are refused or decoded safely.
  Prng prng(42);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> noise(prng.UniformBelow(64));
    for (uint8_t& byte : noise) byte = static_cast<uint8_t>(prng.NextU64());
    if (!noise.empty()) noise[0] = kProtocolMajor;
    (void)DecodeMessage(noise, &header, &message);
  }
  Append append;
  append.items.resize(2);
  append.items[0].partition = 1;
  const std::vector<uint8_t> valid = EncodeMessage(Header{}, append);
  for (size_t size = 0; size < valid.size(); ++size) {
    EXPECT_FALSE(DecodeMessage(absl::MakeConstSpan(valid.data(), size), &header, &message).ok());
  }
}

TEST(ReplicaMetaTest, SlotRoundTripsAndDetectsDamage) {
  ReplicaMeta meta;
  meta.incarnation = 77;
  meta.active = true;
  meta.formed = true;
  meta.term = 12;
  meta.voted_for = 2;
  meta.promised_epoch[17] = 5;
  meta.node_id = 4;
  std::vector<uint8_t> slot = EncodeMetaSlot(meta, 3);
  ASSERT_EQ(slot.size(), kMetaSlotBytes);
  uint64_t sequence = 0;
  absl::StatusOr<ReplicaMeta> decoded = DecodeMetaSlot(slot, &sequence);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, meta);
  EXPECT_EQ(sequence, 3u);
  slot[40] ^= 1;
  EXPECT_TRUE(absl::IsDataLoss(DecodeMetaSlot(slot, &sequence).status()));
}

// Format version 2 (before node_id) is still read, with the owner unknown.
TEST(ReplicaMetaTest, VersionTwoSlotReadsWithUnknownNodeId) {
  ReplicaMeta meta;
  meta.incarnation = 77;
  meta.term = 12;
  meta.promised_epoch[17] = 5;
  meta.node_id = 4;
  std::vector<uint8_t> slot = EncodeMetaSlot(meta, 3);
  // Rewrite as version 2: the version byte, node_id dropped, the CRC32C recomputed.
  const size_t node_id_at = 4 + 1 + 8 + 8 + 1 + 8 + 4 + 2 * 8 * kPartitionCount;
  slot[4] = 2;
  slot.erase(slot.begin() + static_cast<std::ptrdiff_t>(node_id_at),
             slot.begin() + static_cast<std::ptrdiff_t>(node_id_at + 4));
  const uint32_t crc = Crc32c(slot.data(), node_id_at);
  for (int i = 0; i < 4; ++i) slot[node_id_at + i] = static_cast<uint8_t>(crc >> (8 * i));
  slot.resize(kMetaSlotBytes, 0);
  uint64_t sequence = 0;
  absl::StatusOr<ReplicaMeta> decoded = DecodeMetaSlot(slot, &sequence);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->node_id, kUnknownNodeId);
  EXPECT_EQ(decoded->promised_epoch[17], 5u);
  EXPECT_EQ(decoded->term, 12u);
}

}  // namespace
}  // namespace unimeter::replication
