// protocol/frame_reader.cc
#include "protocol/frame_reader.h"

#include <algorithm>
#include <cstring>

#include "node/base/check.h"

namespace unimeter::protocol {

FrameReader::FrameReader(FrameReaderOptions options) : options_(options) {}

size_t FrameReader::Consume(std::span<const uint8_t> input, FrameEvent* event) {
  *event = FrameEvent();
  size_t used = 0;
  while (used < input.size()) {
    const size_t available = input.size() - used;
    switch (state_) {
      case State::kClosed:
        return input.size();
      case State::kHeader: {
        const size_t take = std::min(available, kRequestHeaderSizeBytes - header_filled_bytes_);
        std::memcpy(header_bytes_.data() + header_filled_bytes_, input.data() + used, take);
        header_filled_bytes_ += take;
        used += take;
        if (header_filled_bytes_ < kRequestHeaderSizeBytes) {
          break;
        }
        header_filled_bytes_ = 0;
        used += OnHeader(input.subspan(used), event);
        if (event->kind != FrameEventKind::kNeedMore) {
          return used;
        }
        break;
      }
      case State::kPayload: {
        const size_t take = std::min(available, header_.payload_len - payload_filled_bytes_);
        std::memcpy(buffer_.data() + payload_filled_bytes_, input.data() + used, take);
        payload_filled_bytes_ += take;
        used += take;
        if (payload_filled_bytes_ < header_.payload_len) {
          break;
        }
        *event = {.kind = FrameEventKind::kFrame,
                  .header = header_,
                  .payload = std::span<const uint8_t>(buffer_.data(), header_.payload_len)};
        payload_filled_bytes_ = 0;
        state_ = State::kHeader;
        return used;
      }
      case State::kDrain: {
        const size_t take =
            static_cast<size_t>(std::min<uint64_t>(available, drain_remaining_bytes_));
        drain_remaining_bytes_ -= take;
        used += take;
        if (drain_remaining_bytes_ > 0) {
          break;
        }
        *event = {.kind = FrameEventKind::kReject, .header = header_, .rejection = rejection_};
        state_ = State::kHeader;
        return used;
      }
    }
  }
  UM_CHECK_EQ(used, input.size());
  return used;
}

size_t FrameReader::OnHeader(std::span<const uint8_t> rest, FrameEvent* event) {
  header_ = DecodeRequestHeader(header_bytes_.data());
  const HeaderVerdict verdict = ClassifyHeader(header_, options_.extensions);
  rejection_ = verdict.rejection;
  const bool close = verdict.action == HeaderAction::kRejectThenClose ||
                     (verdict.may_close_instead && options_.close_above_drain_limit);
  if (close) {
    state_ = State::kClosed;
    *event = {.kind = FrameEventKind::kClose, .header = header_, .rejection = rejection_};
    return 0;
  }
  if (verdict.action == HeaderAction::kDrainThenReject) {
    if (header_.payload_len == 0) {
      *event = {.kind = FrameEventKind::kReject, .header = header_, .rejection = rejection_};
      return 0;
    }
    drain_remaining_bytes_ = header_.payload_len;
    state_ = State::kDrain;
    return 0;
  }
  UM_CHECK(verdict.action == HeaderAction::kDispatch);
  UM_CHECK_LE(header_.payload_len, kPayloadSizeBytesMax);
  if (rest.size() >= header_.payload_len) {
    // The whole payload is in the input: hand out a view into it, no copy.
    *event = {.kind = FrameEventKind::kFrame,
              .header = header_,
              .payload = rest.first(header_.payload_len)};
    return header_.payload_len;
  }
  if (buffer_.size() < header_.payload_len) {
    buffer_.reserve(header_.payload_len);  // Exactly: growth never exceeds one maximal payload.
    buffer_.resize(header_.payload_len);
  }
  payload_filled_bytes_ = 0;
  state_ = State::kPayload;
  return 0;
}

}  // namespace unimeter::protocol
