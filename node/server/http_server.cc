#include "node/server/http_server.h"

#include <charconv>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "node/base/check.h"

namespace unimeter {

struct HttpServer::Connection {
  uint64_t id = 0;
  std::unique_ptr<Stream> stream;
  std::string input;
  size_t header_end = 0;  // Offset just past "\r\n\r\n", 0 until seen.
  size_t content_length = 0;
  HttpRequest request;
  bool dispatched = false;  // The handler has the request.
  bool answered = false;
  TimerId idle_timer = kNoTimer;
};

namespace {

HttpResponse JsonError(int status, const std::string& message) {
  return HttpResponse{status, "application/json", absl::StrCat("{\"error\":\"", message, "\"}")};
}

// Parses the request line and headers in input[0, header_end). Returns false if malformed.
bool ParseHead(absl::string_view head, HttpRequest* request, size_t* content_length) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  if (lines.empty()) {
    return false;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[1][0] != '/' ||
      !absl::StartsWith(parts[2], "HTTP/1.")) {
    return false;
  }
  request->method = std::string(parts[0]);
  const size_t query = parts[1].find('?');
  request->path = std::string(parts[1].substr(0, query));
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      continue;
    }
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) {
      return false;
    }
    if (absl::AsciiStrToLower(lines[i].substr(0, colon)) != "content-length") {
      continue;
    }
    const absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    size_t length = 0;
    auto result = std::from_chars(value.data(), value.data() + value.size(), length);
    if (value.empty() || result.ec != std::errc() || result.ptr != value.data() + value.size() ||
        request->has_content_length) {
      return false;
    }
    request->has_content_length = true;
    *content_length = length;
  }
  return true;
}

}  // namespace

const char* HttpReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

HttpServer::HttpServer(Env& env, HttpServerOptions options, HttpHandler handler,
                       Gauge* connections_gauge)
    : env_(env),
      options_(options),
      handler_(std::move(handler)),
      connections_gauge_(connections_gauge) {}

HttpServer::~HttpServer() {
  env_.CancelTimer(reap_timer_);
  for (auto& [id, connection] : connections_) {
    env_.CancelTimer(connection->idle_timer);
  }
}

void HttpServer::Bury(std::shared_ptr<Connection> connection) {
  graveyard_.push_back(std::move(connection));
  if (reap_timer_ == kNoTimer) {
    reap_timer_ = env_.StartTimer(0, [this] {
      reap_timer_ = kNoTimer;
      graveyard_.clear();
    });
  }
}

absl::Status HttpServer::Start(uint16_t port) {
  absl::StatusOr<std::unique_ptr<Listener>> listener =
      env_.Listen(port, [this](std::unique_ptr<Stream> stream) { OnAccept(std::move(stream)); });
  if (!listener.ok()) {
    return listener.status();
  }
  listener_ = std::move(*listener);
  return absl::OkStatus();
}

uint16_t HttpServer::port() const { return listener_ == nullptr ? 0 : listener_->port(); }

void HttpServer::StopAccepting() { listener_.reset(); }

void HttpServer::OnAccept(std::unique_ptr<Stream> stream) {
  if (connections_.size() >= options_.connections_max) {
    stream->Close();  // Over the limit: accepted and closed at once.
    auto doomed = std::make_shared<Connection>();
    doomed->stream = std::move(stream);
    Bury(std::move(doomed));
    return;
  }
  auto connection = std::make_shared<Connection>();
  connection->id = stream->id();
  connection->stream = std::move(stream);
  connections_[connection->id] = connection;
  if (connections_gauge_ != nullptr) {
    connections_gauge_->Set(static_cast<int64_t>(connections_.size()));
  }
  std::weak_ptr<Connection> weak = connection;
  connection->idle_timer = env_.StartTimer(options_.idle_timeout_ns, [this, weak] {
    if (auto live = weak.lock(); live != nullptr && !live->dispatched) {
      live->idle_timer = kNoTimer;
      live->stream->Close();
    }
  });
  connection->stream->SetHandler(
      Stream::Handler{[this, weak](absl::Span<const uint8_t> bytes) {
                        if (auto live = weak.lock(); live != nullptr) {
                          OnData(live, bytes);
                        }
                      },
                      [this, id = connection->id](absl::Status) { Drop(id); }});
}

void HttpServer::OnData(const std::shared_ptr<Connection>& connection,
                        absl::Span<const uint8_t> bytes) {
  if (connection->dispatched || connection->answered) {
    return;  // One request per connection; anything after it is ignored.
  }
  const size_t room = kHttpRequestBytesMax + 1 - connection->input.size();
  connection->input.append(reinterpret_cast<const char*>(bytes.data()),
                           std::min(bytes.size(), room));
  if (connection->header_end == 0) {
    const size_t end = connection->input.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (connection->input.size() > kHttpRequestBytesMax) {
        Respond(connection, JsonError(431, "headers too large"));
      }
      return;
    }
    connection->header_end = end + 4;
    if (!ParseHead(absl::string_view(connection->input).substr(0, end), &connection->request,
                   &connection->content_length)) {
      Respond(connection, JsonError(400, "bad request"));
      return;
    }
    if (connection->content_length > kHttpRequestBytesMax - connection->header_end) {
      Respond(connection, JsonError(413, "payload too large"));
      return;
    }
  }
  if (connection->input.size() >= connection->header_end + connection->content_length) {
    connection->request.body =
        connection->input.substr(connection->header_end, connection->content_length);
    Dispatch(connection);
  }
}

void HttpServer::Dispatch(const std::shared_ptr<Connection>& connection) {
  connection->dispatched = true;
  env_.CancelTimer(connection->idle_timer);
  std::weak_ptr<Connection> weak = connection;
  handler_(connection->request, [this, weak](HttpResponse response) {
    if (auto live = weak.lock(); live != nullptr) {
      Respond(live, response);
    }
  });
}

void HttpServer::Respond(const std::shared_ptr<Connection>& connection,
                         const HttpResponse& response) {
  if (connection->answered) {
    return;
  }
  connection->answered = true;
  std::string bytes =
      absl::StrCat("HTTP/1.1 ", response.status, " ", HttpReasonPhrase(response.status),
                   "\r\nContent-Type: ", response.content_type,
                   "\r\nContent-Length: ", response.body.size(), "\r\nConnection: close\r\n\r\n");
  bytes += response.body;
  const absl::Status status = connection->stream->Write(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (!status.ok()) {
    env_.Log(absl::StrCat("http: response to ", connection->stream->peer_address(),
                          " not sent: ", status.ToString()));
  }
  connection->stream->Close();
}

void HttpServer::Drop(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) {
    return;
  }
  env_.CancelTimer(it->second->idle_timer);
  Bury(std::move(it->second));  // The stream may be inside its own callback.
  connections_.erase(it);
  if (connections_gauge_ != nullptr) {
    connections_gauge_->Set(static_cast<int64_t>(connections_.size()));
  }
}

}  // namespace unimeter
