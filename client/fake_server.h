// client/fake_server.h
//
// A small loopback server for the client tests: speaks protocol v1 through the protocol/
// codec (FrameReader for requests, Append*Reply for replies), one thread per connection.
// Every request is recorded; a test-provided handler decides the reply (or a misbehaviour:
// BACKPRESSURE, REDIRECT, ERR, a dropped connection, a held reply), and a default handler
// answers everything else with plausible OK replies.
#ifndef UNIMETER_CLIENT_FAKE_SERVER_H_
#define UNIMETER_CLIENT_FAKE_SERVER_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/wire.h"

namespace unimeter::client::testing {

struct FakeRequest {
  protocol::RequestHeader header{};
  std::string payload{};
  int connection = 0;  // 1, 2, ... in accept order.
};

class FakeConnection {
 public:
  FakeConnection(int fd, int id) : fd_(fd), id_(id) {}
  // Writes one or more complete frames (atomically with respect to other Send calls).
  void Send(const std::string& bytes);
  // Closes the connection (the client sees EOF / reset).
  void Close();
  int id() const { return id_; }
  int fd() const { return fd_; }

 private:
  std::mutex mu_;
  int fd_;
  int id_;
  bool closed_ = false;
};

class FakeServer {
 public:
  // Returns true if it handled (replied to or deliberately ignored) the request; false lets
  // the default handler reply.
  using Handler = std::function<bool(FakeConnection&, const FakeRequest&)>;

  FakeServer();  // Listens on 127.0.0.1 with an ephemeral port.
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  const std::string& address() const { return address_; }
  void SetHandler(Handler handler);
  // The map served by the default GET_PARTITION_MAP handler; initially every leader = self.
  void SetLeaders(const std::array<std::string, protocol::kPartitionCount>& leaders);
  // Encodes a PARTITION_MAP_UPDATE push (or any frame) to every open connection.
  void PushToAll(const std::string& frame);
  // The current map as a GET_PARTITION_MAP reply, or (push) a PARTITION_MAP_UPDATE frame.
  std::string MapFrame(uint32_t request_id, bool push) const;

  std::vector<FakeRequest> Requests() const;
  size_t Count(protocol::Opcode opcode) const;
  // Waits until at least `count` requests with `opcode` arrived (false after timeout_ms).
  bool WaitForCount(protocol::Opcode opcode, size_t count, int64_t timeout_ms) const;

  // Default reply to `request` (what happens when the handler returns false).
  void DefaultReply(FakeConnection& connection, const FakeRequest& request);

 private:
  void AcceptLoop();
  void Serve(std::shared_ptr<FakeConnection> connection);

  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::string address_;
  std::thread accept_thread_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Handler handler_;
  std::array<std::string, protocol::kPartitionCount> leaders_;
  std::vector<FakeRequest> requests_;
  std::vector<std::shared_ptr<FakeConnection>> connections_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  int next_connection_id_ = 1;
};

// Reply frame helpers for handlers.
std::string EmptyReply(protocol::Status status, uint32_t request_id);
std::string IngestOkReply(uint32_t request_id, uint32_t n_stored, uint64_t last_offset);
std::string RedirectReply(uint32_t request_id, const std::string& address);
std::string AggReply(uint32_t request_id, uint64_t sum);

}  // namespace unimeter::client::testing

#endif  // UNIMETER_CLIENT_FAKE_SERVER_H_
