// Goal: the HTTP front end parses and bounds requests exactly as wire-protocol-v1.md §11
// says (one request per connection, Connection: close, 16,384-byte limit with 431 and 413,
// 400 for malformed heads), supports handlers that answer later, times out idle clients
// and enforces the connection limit. Runs over the simulated Env, so it is deterministic.
#include "node/server/http_server.h"

#include <gtest/gtest.h>

#include "sim/sim_env.h"

namespace unimeter {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest()
      : simulator_(1),
        network_(simulator_, 2, sim::NetworkOptions{}),
        server_env_(simulator_, network_, 0, 1, nullptr, 3, sim::ClockOptions{}, nullptr),
        client_env_(simulator_, network_, 1000, 1, nullptr, 4, sim::ClockOptions{}, nullptr) {}
  ~HttpServerTest() override {
    server_.reset();
    simulator_.DropAll();
  }

  void StartServer(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(
        server_env_, options,
        [this](const HttpRequest& request, HttpResponder respond) {
          last_request_ = request;
          if (request.path == "/later") {
            pending_ = std::move(respond);
            return;
          }
          respond(HttpResponse{
              200, "application/json",
              "{\"path\":\"" + request.path + "\",\"body\":\"" + request.body + "\"}"});
        },
        &connections_);
    ASSERT_TRUE(server_->Start(9090).ok());
  }

  // Sends `request` on a new connection; returns everything received until close.
  std::string Exchange(const std::string& request, int64_t wait_ns = 2 * kSecond) {
    std::string received;
    bool closed = false;
    std::unique_ptr<Stream> stream;
    client_env_.Connect("n0:9090", [&](absl::StatusOr<std::unique_ptr<Stream>> connected) {
      ASSERT_TRUE(connected.ok());
      stream = std::move(*connected);
      stream->SetHandler(
          {[&](absl::Span<const uint8_t> bytes) { received.append(bytes.begin(), bytes.end()); },
           [&](absl::Status) { closed = true; }});
      // The write may fail when the server already closed the connection (the limit test);
      // the reply (or its absence) is what the tests check.
      write_status_ = stream->Write(
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(request.data()), request.size()));
    });
    simulator_.RunUntil([&] { return closed; }, simulator_.now_ns() + wait_ns);
    stream.reset();
    return closed ? received : "<still open>" + received;
  }

  sim::Simulator simulator_;
  sim::SimNetwork network_;
  sim::SimEnv server_env_;
  sim::SimEnv client_env_;
  Gauge connections_;
  std::unique_ptr<HttpServer> server_;
  HttpRequest last_request_;
  HttpResponder pending_;
  absl::Status write_status_;
};

TEST_F(HttpServerTest, ServesOneRequestPerConnectionAndCloses) {
  StartServer();
  const std::string reply =
      Exchange("POST /v1/events?x=1 HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\n\r\n[1]!");
  EXPECT_EQ(reply,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 35\r\n"
            "Connection: close\r\n\r\n{\"path\":\"/v1/events\",\"body\":\"[1]!\"}");
  EXPECT_TRUE(write_status_.ok());
  EXPECT_EQ(last_request_.method, "POST");
  EXPECT_TRUE(last_request_.has_content_length);
  const std::string get = Exchange("GET /health HTTP/1.0\r\n\r\n");
  EXPECT_NE(get.find("{\"path\":\"/health\",\"body\":\"\"}"), std::string::npos) << get;
  simulator_.RunUntil(simulator_.now_ns() + kSecond);
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_EQ(connections_.value(), 0);
}

TEST_F(HttpServerTest, RejectsOversizeAndMalformedRequests) {
  StartServer();
  const std::string huge_headers =
      "GET / HTTP/1.1\r\nX: " + std::string(kHttpRequestBytesMax, 'a') + "\r\n\r\n";
  EXPECT_NE(Exchange(huge_headers).find("431 Request Header Fields Too Large"), std::string::npos);
  EXPECT_NE(Exchange("POST /v1/events HTTP/1.1\r\nContent-Length: 20000\r\n\r\n")
                .find("413 Payload Too Large\r\n"),
            std::string::npos);
  const std::string reply = Exchange("garbage\r\n\r\n");
  EXPECT_NE(reply.find("400 Bad Request"), std::string::npos);
  EXPECT_NE(reply.find("{\"error\":\"bad request\"}"), std::string::npos);
  EXPECT_NE(Exchange("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").find("400"), std::string::npos);
  EXPECT_NE(
      Exchange("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx").find("400"),
      std::string::npos);
}

TEST_F(HttpServerTest, HandlerMayAnswerLater) {
  StartServer();
  std::string received;
  bool closed = false;
  std::unique_ptr<Stream> stream;
  client_env_.Connect("n0:9090", [&](absl::StatusOr<std::unique_ptr<Stream>> connected) {
    stream = std::move(*connected);
    stream->SetHandler(
        {[&](absl::Span<const uint8_t> bytes) { received.append(bytes.begin(), bytes.end()); },
         [&](absl::Status) { closed = true; }});
    const std::string request = "GET /later HTTP/1.1\r\n\r\n";
    ASSERT_TRUE(stream
                    ->Write(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(request.data()),
                                                request.size()))
                    .ok());
  });
  simulator_.RunUntil(simulator_.now_ns() + 30 * kSecond);  // Past the idle timeout.
  EXPECT_FALSE(closed);                                     // A dispatched request is not idle.
  ASSERT_TRUE(pending_ != nullptr);
  pending_(HttpResponse{503, "application/json", "{\"error\":\"backpressure\"}"});
  simulator_.RunUntil([&] { return closed; }, simulator_.now_ns() + kSecond);
  EXPECT_NE(received.find("HTTP/1.1 503 Service Unavailable"), std::string::npos);
  stream.reset();
}

TEST_F(HttpServerTest, IdleClientsAreClosedAndTheLimitHolds) {
  HttpServerOptions options;
  options.connections_max = 1;
  options.idle_timeout_ns = kSecond;
  StartServer(options);
  std::unique_ptr<Stream> idle;
  bool idle_closed = false;
  client_env_.Connect("n0:9090", [&](absl::StatusOr<std::unique_ptr<Stream>> connected) {
    idle = std::move(*connected);
    idle->SetHandler({[](absl::Span<const uint8_t>) {}, [&](absl::Status) { idle_closed = true; }});
  });
  simulator_.RunUntil(simulator_.now_ns() + kSecond / 2);
  EXPECT_EQ(server_->connection_count(), 1u);
  // A second connection beyond the limit is accepted and closed at once, unanswered.
  EXPECT_EQ(Exchange("GET /health HTTP/1.1\r\n\r\n"), "");
  simulator_.RunUntil([&] { return idle_closed; }, simulator_.now_ns() + 5 * kSecond);
  EXPECT_TRUE(idle_closed);
  idle.reset();
}

}  // namespace
}  // namespace unimeter
