#include "node/replication/meta_history.h"

#include <algorithm>

#include "node/base/endian.h"

namespace unimeter::replication {

void PeerMetaRecord::Note(uint64_t incarnation, uint64_t boot_id, uint64_t start, uint64_t durable,
                          uint64_t wal_durable) {
  if (durable == 0) return;
  if (incarnation != incarnation_) {
    const Retired* retired = FindRetired(incarnation);
    if (retired != nullptr && (boot_id == retired->boot_id || start < retired->start)) {
      return;  // Late, from a process of a replaced incarnation heard before.
    }
    // A new incarnation (a replaced disk) has no history; a new process of a replaced one
    // can only run on a copy taken before the replacement. A late announcement of an
    // incarnation older than the ones kept starts the record over too: that can delay a
    // confirmation or miss a finding, never cause a false one.
    if (incarnation_ != 0) {
      retired_[retired_next_ % kRetiredMax] = Retired{incarnation_, boot_id_, start_};
      ++retired_next_;
    }
    superseded_ = retired != nullptr;
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

const PeerMetaRecord::Retired* PeerMetaRecord::FindRetired(uint64_t incarnation) const {
  if (incarnation == 0) return nullptr;
  for (uint64_t back = 1; back <= std::min<uint64_t>(retired_next_, kRetiredMax); ++back) {
    const Retired& retired = retired_[(retired_next_ - back) % kRetiredMax];
    if (retired.incarnation == incarnation) return &retired;
  }
  return nullptr;
}

MetaEcho PeerMetaRecord::Echo() const {
  return MetaEcho{.incarnation = incarnation_,
                  .start = superseded_ ? kSuperseded : start_,
                  .earlier = earlier_,
                  .wal_earlier = wal_earlier_};
}

void PeerMetaRecord::EncodeTo(uint8_t* out) const {
  const uint64_t fields[] = {incarnation_,        boot_id_, start_,       newest_durable_,
                             newest_wal_durable_, earlier_, wal_earlier_, retired_next_};
  for (uint64_t field : fields) {
    StoreU64(out, field);
    out += 8;
  }
  *out++ = superseded_ ? 1 : 0;
  for (const Retired& retired : retired_) {
    StoreU64(out, retired.incarnation);
    StoreU64(out + 8, retired.boot_id);
    StoreU64(out + 16, retired.start);
    out += 24;
  }
}

bool PeerMetaRecord::DecodeFrom(const uint8_t* in) {
  if (in[8 * 8] > 1) return false;
  PeerMetaRecord record;
  uint64_t* fields[] = {
      &record.incarnation_,        &record.boot_id_, &record.start_,       &record.newest_durable_,
      &record.newest_wal_durable_, &record.earlier_, &record.wal_earlier_, &record.retired_next_};
  for (uint64_t* field : fields) {
    *field = LoadU64(in);
    in += 8;
  }
  record.superseded_ = *in++ == 1;
  for (Retired& retired : record.retired_) {
    retired.incarnation = LoadU64(in);
    retired.boot_id = LoadU64(in + 8);
    retired.start = LoadU64(in + 16);
    in += 24;
  }
  *this = record;
  return true;
}

namespace {
constexpr uint8_t kPeerRecordsVersion = 1;
constexpr size_t kPeerRecordBytes = 4 + PeerMetaRecord::kEncodedBytes;
}  // namespace

std::string EncodePeerRecords(const std::vector<std::pair<uint32_t, PeerMetaRecord>>& records) {
  std::string bytes(1 + records.size() * kPeerRecordBytes, '\0');
  auto* out = reinterpret_cast<uint8_t*>(bytes.data());
  *out++ = kPeerRecordsVersion;
  for (const auto& [node, record] : records) {
    StoreU32(out, node);
    record.EncodeTo(out + 4);
    out += kPeerRecordBytes;
  }
  return bytes;
}

bool DecodePeerRecords(std::string_view bytes,
                       std::vector<std::pair<uint32_t, PeerMetaRecord>>* records) {
  records->clear();
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kPeerRecordsVersion ||
      (bytes.size() - 1) % kPeerRecordBytes != 0) {
    return false;
  }
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data()) + 1;
  for (size_t i = 0; i < (bytes.size() - 1) / kPeerRecordBytes; ++i, in += kPeerRecordBytes) {
    PeerMetaRecord record;
    if (!record.DecodeFrom(in + 4)) return false;
    records->emplace_back(LoadU32(in), record);
  }
  return true;
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
