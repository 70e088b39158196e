#include "node/replication/meta_history.h"

#include <algorithm>

namespace unimeter::replication {

void PeerMetaRecord::Note(uint64_t incarnation, uint64_t boot_id, uint64_t start, uint64_t durable,
                          uint64_t wal_durable) {
  if (durable == 0) return;
  if (incarnation != incarnation_) {
    // A new incarnation (a replaced disk) has no history. A late announcement of an old one
    // (after a newer one was seen) starts the record over too: that can delay a
    // confirmation or miss a finding, never cause a false one.
    const bool superseded = Superseded(incarnation, boot_id);
    if (incarnation_ != 0) {
      retired_[retired_next_ % kRetiredMax] = Retired{incarnation_, boot_id_};
      ++retired_next_;
    }
    superseded_ = superseded;
    earlier_ = wal_earlier_ = 0;
    incarnation_ = incarnation;
    boot_id_ = boot_id;
    start_ = start;
    newest_durable_ = durable;
    newest_wal_durable_ = wal_durable;
    return;
  }
  if (start > start_) {
    earlier_ = std::max(earlier_, newest_durable_);
    wal_earlier_ = std::max(wal_earlier_, newest_wal_durable_);
    boot_id_ = boot_id;
    start_ = start;
    newest_durable_ = durable;
    newest_wal_durable_ = wal_durable;
  } else if (start < start_) {
    earlier_ = std::max(earlier_, durable);
    wal_earlier_ = std::max(wal_earlier_, wal_durable);
  } else if (boot_id != boot_id_) {
    earlier_ = std::max({earlier_, newest_durable_, durable});
    wal_earlier_ = std::max({wal_earlier_, newest_wal_durable_, wal_durable});
  } else {
    newest_durable_ = std::max(newest_durable_, durable);
    newest_wal_durable_ = std::max(newest_wal_durable_, wal_durable);
  }
}

bool PeerMetaRecord::Superseded(uint64_t incarnation, uint64_t boot_id) const {
  for (const Retired& retired : retired_) {
    if (retired.incarnation == incarnation && incarnation != 0 && retired.boot_id != boot_id) {
      return true;
    }
  }
  return false;
}

MetaEcho PeerMetaRecord::Echo() const {
  return MetaEcho{.incarnation = incarnation_,
                  .start = superseded_ ? kSuperseded : start_,
                  .earlier = earlier_,
                  .wal_earlier = wal_earlier_};
}

EchoVerdict JudgeEcho(const MetaEcho& echo, uint64_t incarnation, uint64_t start,
                      uint64_t wal_start) {
  if (echo.incarnation != incarnation || echo.start < start) return EchoVerdict::kNotYet;
  if (echo.start > start || echo.earlier > start || echo.wal_earlier > wal_start) {
    return EchoVerdict::kWentBack;
  }
  return EchoVerdict::kConfirmed;
}

}  // namespace unimeter::replication
