// protocol/frame_reader.h
//
// FrameReader turns the byte stream of one client connection into request frames, applying
// the header validation order of wire-protocol-v1.md section 2.4. The session feeds it
// whatever bytes arrive; it yields one event at a time:
//
//   kFrame   a request with a valid header (steps 1-4 passed) and its whole payload; decode it
//            for header.packet_type (step 5).
//   kReject  a request whose header failed step 2, 3 or 4; its body has already been read and
//            discarded. Reply ERR with header.request_id; the stream is still in sync.
//   kClose   bad magic (or, if enabled, a payload_len above 16 MiB): reply ERR with
//            header.request_id (bytes 12-15 of the header), then close the connection.
//
// Memory is bounded: the reader buffers at most one header and one payload of at most
// 196,616 bytes. Rejected bodies are drained by counting bytes down, never buffered. When a
// whole payload is already inside the fed input, the frame's payload view points into the
// input (no copy).
//
// Usage:
//   FrameReader reader;
//   while (!input.empty()) {
//     FrameEvent event;
//     input = input.subspan(reader.Consume(input, &event));
//     if (event.kind != FrameEventKind::kNeedMore) Handle(event);  // Before the next Consume.
//   }
//
// Deterministic and single-threaded: the events depend only on the bytes, never on how they
// were split into chunks.
#ifndef UNIMETER_PROTOCOL_FRAME_READER_H_
#define UNIMETER_PROTOCOL_FRAME_READER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/wire.h"

namespace unimeter::protocol {

struct FrameReaderOptions {
  // Extension opcodes (0x80-0xFF) that are dispatched instead of rejected.
  ExtensionOpcodeSet extensions{};
  // WP 2.4 step 2 allows replying ERR and closing when payload_len exceeds 16 MiB instead of
  // draining it. True: close (kClose); false: drain whatever the size (kReject).
  bool close_above_drain_limit = true;
};

enum class FrameEventKind : uint8_t {
  kNeedMore,  // All input consumed without completing an event.
  kFrame,
  kReject,
  kClose,
};

struct FrameEvent {
  FrameEventKind kind = FrameEventKind::kNeedMore;
  RequestHeader header{};
  // kReject / kClose: why (kNone for kFrame).
  HeaderRejection rejection = HeaderRejection::kNone;
  // kFrame: exactly header.payload_len bytes. Points into the input passed to Consume or into
  // the reader's buffer; valid until the next call to Consume (and while the input lives).
  std::span<const uint8_t> payload{};
};

class FrameReader {
 public:
  explicit FrameReader(FrameReaderOptions options = FrameReaderOptions());

  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  // Consumes bytes from the front of `input` until one event completes (then stops right after
  // it) or the input is exhausted (event->kind = kNeedMore). Returns the number of bytes
  // consumed. After a kClose event the reader is closed: it consumes and ignores everything.
  size_t Consume(std::span<const uint8_t> input, FrameEvent* event);

  bool closed() const { return state_ == State::kClosed; }
  // Bytes of the current payload copied into the internal buffer so far (tests).
  size_t buffered_payload_bytes() const { return payload_filled_bytes_; }
  // Capacity of the internal payload buffer; never above kPayloadSizeBytesMax.
  size_t buffer_capacity_bytes() const { return buffer_.capacity(); }

 private:
  enum class State : uint8_t { kHeader, kPayload, kDrain, kClosed };

  // Called once the 16 header bytes are complete. May complete an event.
  size_t OnHeader(std::span<const uint8_t> rest, FrameEvent* event);

  FrameReaderOptions options_;
  State state_ = State::kHeader;
  std::array<uint8_t, kRequestHeaderSizeBytes> header_bytes_{};
  size_t header_filled_bytes_ = 0;
  RequestHeader header_;
  HeaderRejection rejection_ = HeaderRejection::kNone;
  std::vector<uint8_t> buffer_;
  size_t payload_filled_bytes_ = 0;
  uint64_t drain_remaining_bytes_ = 0;
};

}  // namespace unimeter::protocol

#endif  // UNIMETER_PROTOCOL_FRAME_READER_H_
