#include "protocol/response_reader.h"

namespace unimeter::protocol {

void ResponseReader::Append(std::span<const uint8_t> bytes) {
  // Drop what was consumed before growing, so the buffer stays about one frame long.
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

ResponseReader::Result ResponseReader::Next(ResponseFrame* frame) {
  const size_t available = buffer_.size() - consumed_;
  if (available < kResponseHeaderSizeBytes) {
    return Result::kNeedMore;
  }
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(buffer_.data()) + consumed_;
  const ResponseHeader header = DecodeResponseHeader(bytes);
  if (header.payload_len > kReplyPayloadSizeBytesMax) {
    return Result::kCorrupt;
  }
  if (header.request_id != kPushRequestId && header.status > kStatusMax) {
    return Result::kCorrupt;
  }
  if (available < kResponseHeaderSizeBytes + header.payload_len) {
    return Result::kNeedMore;
  }
  frame->header = header;
  frame->payload.assign(reinterpret_cast<const char*>(bytes) + kResponseHeaderSizeBytes,
                        header.payload_len);
  consumed_ += kResponseHeaderSizeBytes + header.payload_len;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  return Result::kFrame;
}

}  // namespace unimeter::protocol
