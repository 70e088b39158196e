// Goal: client streams deliver bytes in order (echo), buffer input that arrives before
// SetHandler, call on_close exactly once, flush on Close(), bound their output, and report
// connect failures from the loop. Method: one PosixEnv connecting to its own listener.
#include "node/env/posix/posix_stream.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "node/env/posix/posix_env.h"
#include "node/env/posix/test_util.h"

namespace unimeter {
namespace {

using posix_test::kMillisecondNs;
using posix_test::kPatienceNs;
using posix_test::PickFreePort;
using posix_test::TempDir;

absl::Span<const uint8_t> Bytes(const std::string& text) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

// One side of a connection as seen by the test.
struct Side {
  std::unique_ptr<Stream> stream;
  std::string received;
  int close_count = 0;
  absl::Status close_reason;

  Stream::Handler Handler() {
    return Stream::Handler{
        [this](absl::Span<const uint8_t> bytes) { received.append(bytes.begin(), bytes.end()); },
        [this](absl::Status reason) {
          ++close_count;
          close_reason = reason;
        }};
  }
};

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PosixEnvOptions options;
    options.node_id = 3;
    options.data_dir = dir_.path();
    absl::StatusOr<std::unique_ptr<PosixEnv>> env = PosixEnv::Create(options);
    UM_CHECK_OK(env.status());
    env_ = *std::move(env);
  }

  bool RunUntil(absl::FunctionRef<bool()> predicate) {
    return env_->loop().RunUntil(predicate, kPatienceNs);
  }

  // Listens on an ephemeral port; accepted streams go to server_ (handler installed only
  // if `install_handler`). Connects client_ to it.
  void ConnectPair(bool install_handler) {
    absl::StatusOr<std::unique_ptr<Listener>> listener =
        env_->Listen(0, [this, install_handler](std::unique_ptr<Stream> stream) {
          server_.stream = std::move(stream);
          if (install_handler) {
            server_.stream->SetHandler(server_.Handler());
          }
        });
    UM_CHECK_OK(listener.status());
    listener_ = *std::move(listener);
    ASSERT_NE(listener_->port(), 0);
    bool connected = false;
    env_->Connect("127.0.0.1:" + std::to_string(listener_->port()),
                  [&](absl::StatusOr<std::unique_ptr<Stream>> stream) {
                    ASSERT_TRUE(stream.ok()) << stream.status();
                    client_.stream = *std::move(stream);
                    client_.stream->SetHandler(client_.Handler());
                    connected = true;
                  });
    EXPECT_FALSE(connected);  // Never inline.
    ASSERT_TRUE(RunUntil([&] { return connected && server_.stream != nullptr; }));
    EXPECT_NE(client_.stream->id(), server_.stream->id());
    EXPECT_EQ(client_.stream->peer_address(), "127.0.0.1:" + std::to_string(listener_->port()));
  }

  TempDir dir_;
  std::unique_ptr<PosixEnv> env_;
  std::unique_ptr<Listener> listener_;
  Side client_;
  Side server_;
};

TEST_F(StreamTest, EchoInOrderThenCloseOnce) {
  ConnectPair(/*install_handler=*/false);
  // The server echoes everything back.
  Stream* server = server_.stream.get();
  server->SetHandler(Stream::Handler{
      [server](absl::Span<const uint8_t> bytes) { ASSERT_TRUE(server->Write(bytes).ok()); },
      [this](absl::Status reason) {
        ++server_.close_count;
        server_.close_reason = reason;
      }});
  std::string sent;
  for (int i = 0; i < 100; ++i) {
    const std::string chunk = std::to_string(i) + std::string(static_cast<size_t>(i * 97), 'e');
    ASSERT_TRUE(client_.stream->Write(Bytes(chunk)).ok());
    sent += chunk;
  }
  const std::string big(3 * 1024 * 1024 + 17, 'B');
  ASSERT_TRUE(client_.stream->Write(Bytes(big)).ok());
  sent += big;
  ASSERT_TRUE(RunUntil([&] { return client_.received.size() == sent.size(); }));
  EXPECT_EQ(client_.received, sent);

  client_.stream->Close();
  EXPECT_EQ(client_.close_count, 0);  // Never inline.
  EXPECT_EQ(client_.stream->Write(Bytes("late")).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(RunUntil([&] { return client_.close_count == 1 && server_.close_count == 1; }));
  EXPECT_TRUE(client_.close_reason.ok()) << client_.close_reason;
  EXPECT_TRUE(server_.close_reason.ok()) << server_.close_reason;  // EOF from the client.
  client_.stream->Close();                                         // Again: a no-op.
  env_->loop().RunFor(5 * kMillisecondNs);
  EXPECT_EQ(client_.close_count, 1);
  EXPECT_EQ(server_.close_count, 1);
}

TEST_F(StreamTest, InputBeforeSetHandlerIsDeliveredFromTheLoop) {
  ConnectPair(/*install_handler=*/false);
  ASSERT_TRUE(client_.stream->Write(Bytes("early bytes")).ok());
  client_.stream->Close();
  ASSERT_TRUE(RunUntil([&] { return client_.close_count == 1; }));
  env_->loop().RunFor(20 * kMillisecondNs);  // The server reads the bytes and the EOF.
  server_.stream->SetHandler(server_.Handler());
  EXPECT_EQ(server_.received, "");  // Not inside SetHandler.
  EXPECT_EQ(server_.close_count, 0);
  ASSERT_TRUE(RunUntil([&] { return server_.close_count == 1; }));
  EXPECT_EQ(server_.received, "early bytes");  // Data first, then the close.
  EXPECT_EQ(server_.stream->Write(Bytes("x")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(StreamTest, CloseFlushesQueuedOutput) {
  ConnectPair(/*install_handler=*/true);
  const std::string payload(PosixStream::kOutputBytesMax, 'f');
  ASSERT_TRUE(client_.stream->Write(Bytes(payload)).ok());
  EXPECT_EQ(client_.stream->pending_write_bytes(), payload.size());
  // The bound: not one byte more.
  EXPECT_EQ(client_.stream->Write(Bytes("!")).code(), absl::StatusCode::kResourceExhausted);
  client_.stream->Close();
  ASSERT_TRUE(RunUntil([&] { return server_.close_count == 1; }));
  EXPECT_EQ(server_.received.size(), payload.size());
  EXPECT_TRUE(server_.close_reason.ok()) << server_.close_reason;
  ASSERT_TRUE(RunUntil([&] { return client_.close_count == 1; }));
  EXPECT_TRUE(client_.close_reason.ok()) << client_.close_reason;
}

TEST_F(StreamTest, HandlersMayDestroyTheStream) {
  ConnectPair(/*install_handler=*/true);
  bool closed = false;
  server_.stream->SetHandler(
      Stream::Handler{[this](absl::Span<const uint8_t>) { server_.stream->Close(); },
                      [this, &closed](absl::Status) {
                        server_.stream.reset();  // Destroy from inside on_close.
                        closed = true;
                      }});
  ASSERT_TRUE(client_.stream->Write(Bytes("bye")).ok());
  ASSERT_TRUE(RunUntil([&] { return closed && client_.close_count == 1; }));
  EXPECT_EQ(server_.stream, nullptr);
}

TEST_F(StreamTest, ConnectFailuresAreReportedFromTheLoop) {
  std::vector<absl::StatusCode> codes;
  auto record = [&](absl::StatusOr<std::unique_ptr<Stream>> stream) {
    codes.push_back(stream.status().code());
  };
  env_->Connect("127.0.0.1:" + std::to_string(PickFreePort()), record);  // Nobody listens.
  env_->Connect("no-port-here", record);
  env_->Connect("127.0.0.1:99999", record);
  EXPECT_TRUE(codes.empty());
  ASSERT_TRUE(RunUntil([&] { return codes.size() == 3; }));
  EXPECT_EQ(std::count(codes.begin(), codes.end(), absl::StatusCode::kInvalidArgument), 2);
  EXPECT_EQ(std::count(codes.begin(), codes.end(), absl::StatusCode::kUnavailable), 1);
}

TEST_F(StreamTest, DestroyingTheListenerStopsAccepting) {
  absl::StatusOr<std::unique_ptr<Listener>> listener =
      env_->Listen(0, [](std::unique_ptr<Stream>) { FAIL() << "accepted after destruction"; });
  ASSERT_TRUE(listener.ok());
  const uint16_t port = (*listener)->port();
  listener->reset();
  std::optional<absl::StatusCode> code;
  env_->Connect(
      "127.0.0.1:" + std::to_string(port),
      [&](absl::StatusOr<std::unique_ptr<Stream>> stream) { code = stream.status().code(); });
  ASSERT_TRUE(RunUntil([&] { return code.has_value(); }));
  EXPECT_EQ(*code, absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace unimeter

namespace unimeter {
namespace {

// Goal: a listener that runs out of file descriptors does not spin the loop (the pending
// connection keeps the socket readable forever) and accepts again once descriptors free up.
TEST_F(StreamTest, OutOfDescriptorsPausesAcceptingInsteadOfSpinning) {
  std::vector<std::unique_ptr<Stream>> accepted;
  absl::StatusOr<std::unique_ptr<Listener>> listener = env_->Listen(
      0, [&](std::unique_ptr<Stream> stream) { accepted.push_back(std::move(stream)); });
  ASSERT_TRUE(listener.ok());
  // Connect raw client sockets first (the kernel completes them into the backlog).
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons((*listener)->port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    clients.push_back(fd);
  }
  // Now allow no new descriptor: accept fails with EMFILE.
  rlimit original{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &original), 0);
  int highest = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  }
  rlimit tight = original;
  tight.rlim_cur = static_cast<rlim_t>(highest + 1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> fillers;  // Take every free descriptor number below the limit.
  for (int fd = dup(0); fd >= 0; fd = dup(0)) {
    fillers.push_back(fd);
  }
  const uint64_t iterations_before = env_->loop().iteration_count();
  env_->loop().RunFor(300 * kMillisecondNs);
  const uint64_t iterations = env_->loop().iteration_count() - iterations_before;
  for (int fd : fillers) {
    close(fd);
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &original), 0);
  EXPECT_TRUE(accepted.empty());
  EXPECT_LT(iterations, 100u) << "the loop spun on a readable listener it could not accept";
  ASSERT_TRUE(RunUntil([&] { return accepted.size() == clients.size(); }));
  for (int fd : clients) {
    close(fd);
  }
}

}  // namespace
}  // namespace unimeter
