// node/server/http_server.h
//
// HttpServer serves the node's HTTP port (wire-protocol-v1.md §11) on Env streams: one
// request per connection, `Connection: close` on every response, the whole request
// (request line, headers, body) within 16,384 bytes. It parses and bounds requests and
// leaves routing to the handler, which may answer later (an ingest waits for its commit).
//
// Errors it answers itself: request line + headers over the limit => 431 {"error":"headers
// too large"}; Content-Length making the request exceed the limit => 413 {"error":"payload
// too large"}; a malformed request line or Content-Length => 400 {"error":"bad request"};
// a client idle for idle_timeout_ns before completing its request => closed.
// Event-loop only.
#ifndef UNIMETER_NODE_SERVER_HTTP_SERVER_H_
#define UNIMETER_NODE_SERVER_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "node/env/env.h"
#include "node/observability/metrics.h"

namespace unimeter {

inline constexpr size_t kHttpRequestBytesMax = 16384;

struct HttpRequest {
  std::string method;
  std::string path;  // Without the query string.
  std::string body;
  bool has_content_length = false;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// Sends the response (once); a no-op if the client is gone.
using HttpResponder = absl::AnyInvocable<void(HttpResponse response)>;
using HttpHandler = absl::AnyInvocable<void(const HttpRequest& request, HttpResponder respond)>;

struct HttpServerOptions {
  size_t connections_max = 256;
  int64_t idle_timeout_ns = 10'000'000'000;
};

class HttpServer {
 public:
  // `connections_gauge` (may be null) tracks open connections
  // (billing_http_connections_active).
  HttpServer(Env& env, HttpServerOptions options, HttpHandler handler, Gauge* connections_gauge);
  ~HttpServer();

  // Starts listening on `port` (0 = ephemeral).
  absl::Status Start(uint16_t port);
  uint16_t port() const;
  // Stops accepting new connections; open ones finish.
  void StopAccepting();
  size_t connection_count() const { return connections_.size(); }

 private:
  struct Connection;
  void OnAccept(std::unique_ptr<Stream> stream);
  void OnData(const std::shared_ptr<Connection>& connection, absl::Span<const uint8_t> bytes);
  void Dispatch(const std::shared_ptr<Connection>& connection);
  void Respond(const std::shared_ptr<Connection>& connection, const HttpResponse& response);
  void Drop(uint64_t id);
  // Destroys `connection` from a later loop turn (never inside its own stream callback).
  void Bury(std::shared_ptr<Connection> connection);

  Env& env_;
  const HttpServerOptions options_;
  HttpHandler handler_;
  Gauge* connections_gauge_;
  std::unique_ptr<Listener> listener_;
  absl::btree_map<uint64_t, std::shared_ptr<Connection>> connections_;
  std::vector<std::shared_ptr<Connection>> graveyard_;
  TimerId reap_timer_ = kNoTimer;
};

// "200 OK" style reason phrases for the statuses we send.
const char* HttpReasonPhrase(int status);

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_HTTP_SERVER_H_
