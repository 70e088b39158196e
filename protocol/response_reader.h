// protocol/response_reader.h
//
// ResponseReader reassembles reply and push frames (12-byte response header + payload,
// wire-protocol-v1 2.2-2.3) from a client's byte stream, for every client of the protocol:
// the C++ client library, simulated workloads and tests. Bounded: a payload_len above the
// reply bound, or a status byte outside 0-6 on a reply (not a push), makes the stream
// corrupt (WP 4). Pure and single-threaded.
#ifndef UNIMETER_PROTOCOL_RESPONSE_READER_H_
#define UNIMETER_PROTOCOL_RESPONSE_READER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "protocol/wire.h"

namespace unimeter::protocol {

struct ResponseFrame {
  ResponseHeader header{};
  std::string payload{};
};

class ResponseReader {
 public:
  enum class Result { kFrame, kNeedMore, kCorrupt };

  void Append(std::span<const uint8_t> bytes);
  // kFrame: *frame holds the next frame. kCorrupt: a payload_len above the reply bound, or a
  // status byte outside 0-6 on a reply (WP 4); the stream cannot be trusted any more.
  Result Next(ResponseFrame* frame);
  size_t buffered_bytes() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
};

}  // namespace unimeter::protocol

#endif  // UNIMETER_PROTOCOL_RESPONSE_READER_H_
