// tests/chaos/raw_connection.h
//
// Plain blocking sockets for the fault tests: a binary-protocol connection to ONE node (no
// routing, no retries, unlike the client library), so a test can ask a particular node for
// its own answer or send a write to a node cut off from the others; and a one-shot HTTP GET.
// Pipelined: many requests may be written before their replies are read. Not thread-safe.
#ifndef UNIMETER_TESTS_CHAOS_RAW_CONNECTION_H_
#define UNIMETER_TESTS_CHAOS_RAW_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protocol/response_reader.h"
#include "protocol/wire.h"

namespace unimeter::chaos {

class RawConnection {
 public:
  // Connects to host:port within timeout_ms. Unavailable on failure.
  static absl::StatusOr<std::unique_ptr<RawConnection>> Connect(const std::string& address,
                                                                int64_t timeout_ms);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Writes a complete frame. Unavailable when the connection broke.
  absl::Status Send(const std::string& frame);
  // The next reply (pushes, request id 0, are skipped) within timeout_ms of this call.
  // DeadlineExceeded when none arrived (the connection stays usable); Unavailable when it
  // closed; DataLoss when the stream is corrupt.
  absl::StatusOr<protocol::ResponseFrame> Receive(int64_t timeout_ms);

 private:
  explicit RawConnection(int fd) : fd_(fd) {}
  int fd_ = -1;
  protocol::ResponseReader reader_;
};

// The SUM over all time of (account, metric) as `address` itself answers it (USAGE_QUERY),
// for many accounts at once, pipelined on one connection. Results in input order; a reply
// other than OK is an error status naming the wire status.
std::vector<absl::StatusOr<unsigned __int128>> QuerySums(const std::string& address,
                                                         const std::string& metric_code,
                                                         const std::vector<uint64_t>& accounts,
                                                         int64_t timeout_ms);

// GET `path` from host:port; the whole reply (status line, headers, body).
absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path,
                                    int64_t timeout_ms);

}  // namespace unimeter::chaos

#endif  // UNIMETER_TESTS_CHAOS_RAW_CONNECTION_H_
