// Goal: node-to-node messages flow both ways between two PosixEnvs over loopback, survive
// one side being destroyed and recreated (reconnect with backoff), are bounded per peer,
// and bad frames close the connection without delivering anything damaged.
// Method: two envs in one process whose loops the test drives alternately; raw sockets
// for malformed input.
#include "node/env/posix/tcp_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "node/env/posix/posix_env.h"
#include "node/env/posix/test_util.h"

namespace unimeter {
namespace {

using posix_test::kMillisecondNs;
using posix_test::kPatienceNs;
using posix_test::PickFreePort;
using posix_test::RunAllUntil;
using posix_test::TempDir;

struct Received {
  NodeId source;
  std::string message;
};

std::unique_ptr<PosixEnv> MakeEnv(NodeId id, const std::string& dir, uint16_t port,
                                  std::vector<PosixEnvOptions::Peer> peers,
                                  std::vector<Received>* inbox) {
  PosixEnvOptions options;
  options.node_id = id;
  options.data_dir = dir;
  options.replication_port = port;
  options.peers = std::move(peers);
  absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(std::move(options));
  UM_CHECK_OK(env.status());
  (*env)->transport().SetReceiver([inbox](NodeId source, absl::Span<const uint8_t> message) {
    inbox->push_back({source, std::string(message.begin(), message.end())});
  });
  return *std::move(env);
}

void Send(PosixEnv& env, NodeId target, const std::string& message) {
  env.transport().Send(target, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(message.data()),
                                                   message.size()));
}

class TwoNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    port_a_ = PickFreePort();
    port_b_ = PickFreePort();
    a_ = MakeA();
    b_ = MakeB();
  }
  std::unique_ptr<PosixEnv> MakeA() {
    return MakeEnv(1, dir_a_.path(), port_a_, {{2, "127.0.0.1", port_b_}}, &inbox_a_);
  }
  std::unique_ptr<PosixEnv> MakeB() {
    return MakeEnv(2, dir_b_.path(), port_b_, {{1, "localhost", port_a_}}, &inbox_b_);
  }

  TempDir dir_a_;
  TempDir dir_b_;
  uint16_t port_a_ = 0;
  uint16_t port_b_ = 0;
  std::vector<Received> inbox_a_;
  std::vector<Received> inbox_b_;
  std::unique_ptr<PosixEnv> a_;
  std::unique_ptr<PosixEnv> b_;
};

TEST_F(TwoNodes, MessagesFlowBothWaysInOrder) {
  EXPECT_EQ(a_->replication_port(), port_a_);
  std::vector<std::string> to_b;
  for (int i = 0; i < 200; ++i) {
    to_b.push_back(std::string(static_cast<size_t>(i * 37 % 5000), static_cast<char>(i)));
  }
  to_b.push_back(std::string(kMessageSizeBytesMax, 'm'));  // The largest message.
  to_b.push_back("");                                      // And the smallest.
  for (const std::string& message : to_b) {
    Send(*a_, 2, message);  // Queued before the connection exists: kept and sent later.
  }
  Send(*b_, 1, "pong");
  ASSERT_TRUE(RunAllUntil(
      {a_.get(), b_.get()}, [&] { return inbox_b_.size() == to_b.size() && inbox_a_.size() == 1; },
      kPatienceNs));
  for (size_t i = 0; i < to_b.size(); ++i) {
    EXPECT_EQ(inbox_b_[i].source, 1u);
    EXPECT_EQ(inbox_b_[i].message, to_b[i]) << i;
  }
  EXPECT_EQ(inbox_a_[0].source, 2u);
  EXPECT_EQ(inbox_a_[0].message, "pong");
  EXPECT_EQ(a_->tcp_transport().counters().messages_sent, to_b.size());
  EXPECT_EQ(a_->tcp_transport().counters().messages_dropped, 0u);
  EXPECT_EQ(b_->tcp_transport().counters().bad_frames, 0u);
}

TEST_F(TwoNodes, ReconnectsAfterThePeerIsRecreated) {
  Send(*a_, 2, "first");
  ASSERT_TRUE(RunAllUntil(
      {a_.get(), b_.get()}, [&] { return inbox_b_.size() == 1; }, kPatienceNs));
  b_.reset();
  inbox_b_.clear();
  // A notices the loss and keeps retrying with backoff while B is gone.
  ASSERT_TRUE(RunAllUntil(
      {a_.get()}, [&] { return !a_->tcp_transport().connected(2); }, kPatienceNs));
  a_->loop().RunFor(50 * kMillisecondNs);
  b_ = MakeB();
  // Best effort: a message written into a dying connection may be lost, so keep sending.
  int sent = 0;
  int64_t next_send_ns = 0;
  ASSERT_TRUE(RunAllUntil(
      {a_.get(), b_.get()},
      [&] {
        const int64_t now_ns = EventLoop::MonotonicNowNs();
        if (now_ns >= next_send_ns) {
          Send(*a_, 2, "again-" + std::to_string(sent++));
          Send(*b_, 1, "back");
          next_send_ns = now_ns + 20 * kMillisecondNs;
        }
        return !inbox_b_.empty() && inbox_a_.size() >= 1;
      },
      kPatienceNs));
  EXPECT_EQ(inbox_b_[0].source, 1u);
  EXPECT_EQ(inbox_b_[0].message.rfind("again-", 0), 0u);
  EXPECT_GE(a_->tcp_transport().counters().connects, 2u);
  EXPECT_GE(a_->tcp_transport().counters().disconnects, 1u);
}

// A raw client socket connected to `port`, blocking.
int ConnectRaw(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  UM_CHECK_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  UM_CHECK_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

void WriteRaw(int fd, const std::vector<uint8_t>& bytes) {
  UM_CHECK_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

std::vector<uint8_t> Frame(const std::string& payload) {
  return EncodeFrame(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
}

class BadFrames : public ::testing::Test {
 protected:
  void SetUp() override {
    // The peer (node 2) does not exist; we impersonate it with raw sockets.
    env_ = MakeEnv(1, dir_.path(), 0, {{2, "127.0.0.1", PickFreePort()}}, &inbox_);
  }
  // Drives the env until it has counted one more bad frame and closed every inbound
  // connection; true if `fd` then sees EOF or a reset.
  bool ExpectClosedByEnv(int fd) {
    const uint64_t bad_frames = ++expected_bad_frames_;
    const bool closed = RunAllUntil(
        {env_.get()},
        [&] {
          return env_->tcp_transport().counters().bad_frames == bad_frames &&
                 env_->tcp_transport().inbound_connection_count() == 0;
        },
        kPatienceNs);
    EXPECT_TRUE(closed);
    if (!closed) {
      close(fd);
      return false;
    }
    char byte;
    const ssize_t got = recv(fd, &byte, 1, 0);  // Blocks until EOF or reset.
    close(fd);
    return got <= 0;
  }

  TempDir dir_;
  std::vector<Received> inbox_;
  std::unique_ptr<PosixEnv> env_;
  uint64_t expected_bad_frames_ = 0;
};

TEST_F(BadFrames, BadChecksumClosesTheConnection) {
  const int fd = ConnectRaw(env_->replication_port());
  WriteRaw(fd, EncodeHelloFrame(2));
  WriteRaw(fd, Frame("good"));
  std::vector<uint8_t> bad = Frame("damaged");
  bad[4] ^= 0x01;  // Flip a checksum bit.
  WriteRaw(fd, bad);
  WriteRaw(fd, Frame("after"));  // Never delivered: the connection is gone.
  EXPECT_TRUE(ExpectClosedByEnv(fd));
  ASSERT_EQ(inbox_.size(), 1u);
  EXPECT_EQ(inbox_[0].source, 2u);
  EXPECT_EQ(inbox_[0].message, "good");
  EXPECT_EQ(env_->tcp_transport().counters().bad_frames, 1u);
}

TEST_F(BadFrames, OversizedFrameAndUnknownHelloAreRejected) {
  int fd = ConnectRaw(env_->replication_port());
  WriteRaw(fd, EncodeHelloFrame(2));
  std::vector<uint8_t> huge = Frame("x");
  const uint32_t size = kMessageSizeBytesMax + 1;
  std::memcpy(huge.data(), &size, 4);  // Little-endian host.
  WriteRaw(fd, huge);
  EXPECT_TRUE(ExpectClosedByEnv(fd));

  fd = ConnectRaw(env_->replication_port());
  WriteRaw(fd, EncodeHelloFrame(7));  // Not a configured peer.
  WriteRaw(fd, Frame("spoofed"));
  EXPECT_TRUE(ExpectClosedByEnv(fd));

  fd = ConnectRaw(env_->replication_port());
  WriteRaw(fd, Frame("no hello"));
  EXPECT_TRUE(ExpectClosedByEnv(fd));

  EXPECT_TRUE(inbox_.empty());
  EXPECT_EQ(env_->tcp_transport().counters().bad_frames, 3u);
}

// A peer whose path was cut gives up on its connection and opens a new one; the old inbound
// connection never sees a FIN. Its hello on the new connection closes the old one, so cuts
// do not leak connections, and delivery continues on the new one.
TEST_F(BadFrames, NewHelloFromAPeerClosesItsOlderInboundConnection) {
  const int old_fd = ConnectRaw(env_->replication_port());
  WriteRaw(old_fd, EncodeHelloFrame(2));
  WriteRaw(old_fd, Frame("first"));
  ASSERT_TRUE(RunAllUntil(
      {env_.get()}, [&] { return inbox_.size() == 1; }, kPatienceNs));
  EXPECT_EQ(env_->tcp_transport().inbound_connection_count(), 1u);
  const int new_fd = ConnectRaw(env_->replication_port());
  WriteRaw(new_fd, EncodeHelloFrame(2));
  WriteRaw(new_fd, Frame("second"));
  ASSERT_TRUE(RunAllUntil(
      {env_.get()}, [&] { return inbox_.size() == 2; }, kPatienceNs));
  EXPECT_EQ(env_->tcp_transport().inbound_connection_count(), 1u);
  char byte;
  EXPECT_LE(recv(old_fd, &byte, 1, 0), 0);  // The env closed the superseded connection.
  EXPECT_EQ(inbox_[1].message, "second");
  EXPECT_EQ(env_->tcp_transport().counters().bad_frames, 0u);
  close(old_fd);
  close(new_fd);
}

TEST(TcpTransportTest, PerPeerQueueIsBounded) {
  EventLoop loop(nullptr);
  TcpTransportOptions options;
  options.node_id = 1;
  options.peers = {{2, "127.0.0.1", PickFreePort()}};  // Nobody listens there.
  options.queue_messages_max = 10;
  options.queue_bytes_max = 10 * (kFrameHeaderSizeBytes + 100);
  absl::StatusOr<std::unique_ptr<TcpTransport>> transport = TcpTransport::Create(loop, options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  const std::vector<uint8_t> small(10, 1);
  const std::vector<uint8_t> large(200, 2);
  (*transport)->Send(2, large);  // 2 frames' worth of bytes...
  for (int i = 0; i < 20; ++i) {
    (*transport)->Send(2, small);
  }
  // ...plus small ones up to the message bound: 10 kept, 11 dropped.
  EXPECT_EQ((*transport)->counters().messages_dropped, 11u);
  loop.RunFor(30 * kMillisecondNs);  // Connection attempts fail and back off; no crash.
  EXPECT_FALSE((*transport)->connected(2));
}

}  // namespace
}  // namespace unimeter
