#include "node/metering/dedup_index.h"

#include <utility>

namespace unimeter::metering {

// Layout: for each index, u64 segment count, then per segment (i64 log time, u64 count,
// count keys). Decoding re-inserts in order, so a later insertion of a key wins again.
bool DedupIndex::Decode(ByteReader& reader) {
  uint64_t segments = 0;
  if (!reader.U64(&segments)) return false;
  int64_t last_log_time = INT64_MIN;
  for (uint64_t s = 0; s < segments; ++s) {
    int64_t log_time_ns = 0;
    uint64_t count = 0;
    if (!reader.I64(&log_time_ns) || !reader.U64(&count) || log_time_ns < last_log_time ||
        count > reader.left() / 32 || count == 0) {
      return reader.Fail();
    }
    last_log_time = log_time_ns;
    for (uint64_t i = 0; i < count; ++i) {
      ContentKey key;
      if (!reader.U64(&key.account_id) || !reader.I64(&key.timestamp_ns) ||
          !reader.U64(&key.value) || !reader.U32(&key.metric_id) || !reader.U32(&key.negative)) {
        return false;
      }
      content_.Insert(key, log_time_ns, log_time_ns);
    }
  }
  if (!reader.U64(&segments)) return false;
  last_log_time = INT64_MIN;
  for (uint64_t s = 0; s < segments; ++s) {
    int64_t log_time_ns = 0;
    uint64_t count = 0;
    if (!reader.I64(&log_time_ns) || !reader.U64(&count) || log_time_ns < last_log_time ||
        count > reader.left() / 24 || count == 0) {
      return reader.Fail();
    }
    last_log_time = log_time_ns;
    for (uint64_t i = 0; i < count; ++i) {
      IdempotencyKey key;
      IdempotencyRecord record{log_time_ns, 0};
      if (!reader.U64(&key.high) || !reader.U64(&key.low) || !reader.U64(&record.fingerprint)) {
        return false;
      }
      idempotency_.Insert(key, record, log_time_ns);
    }
  }
  return true;
}

void PendingDedup::AddBatch(uint64_t first_offset, uint64_t end_offset, int64_t log_time_ns,
                            std::vector<ContentKey> content_keys,
                            std::vector<std::pair<IdempotencyKey, uint64_t>> idempotency_keys) {
  UM_CHECK_LT(first_offset, end_offset);
  UM_CHECK(batches_.empty() || first_offset >= batches_.back().end_offset);
  Batch batch{first_offset, end_offset, log_time_ns, std::move(content_keys), {}};
  for (const ContentKey& key : batch.content_keys) {
    auto [stored, inserted] = content_.Insert(key, PendingContent{log_time_ns, first_offset});
    if (!inserted) *stored = PendingContent{log_time_ns, first_offset};
  }
  for (const auto& [key, fingerprint] : idempotency_keys) {
    const PendingIdempotency pending{IdempotencyRecord{log_time_ns, fingerprint}, first_offset};
    auto [stored, inserted] = idempotency_.Insert(key, pending);
    if (!inserted) *stored = pending;
    batch.idempotency_keys.push_back(key);
  }
  batches_.push_back(std::move(batch));
}

void PendingDedup::ForgetKeysOf(const Batch& batch) {
  // A key taken over by a newer batch belongs to that batch and stays.
  for (const ContentKey& key : batch.content_keys) {
    const PendingContent* pending = content_.Find(key);
    if (pending != nullptr && pending->batch_first_offset == batch.first_offset) {
      content_.Erase(key);
    }
  }
  for (const IdempotencyKey& key : batch.idempotency_keys) {
    const PendingIdempotency* pending = idempotency_.Find(key);
    if (pending != nullptr && pending->batch_first_offset == batch.first_offset) {
      idempotency_.Erase(key);
    }
  }
}

uint32_t PendingDedup::CodeId(const std::string& metric_code) {
  return *code_ids_.Insert(metric_code, static_cast<uint32_t>(code_ids_.size())).first;
}

void PendingDedup::RetireApplied(uint64_t applied_next_offset) {
  while (!batches_.empty() && batches_.front().end_offset <= applied_next_offset) {
    ForgetKeysOf(batches_.front());
    batches_.pop_front();
  }
  if (batches_.empty()) code_ids_.Clear();
}

void PendingDedup::DropNewestBatch() {
  UM_CHECK(!batches_.empty());
  ForgetKeysOf(batches_.back());
  batches_.pop_back();
}

void PendingDedup::Clear() {
  batches_.clear();
  code_ids_.Clear();
  content_.Clear();
  idempotency_.Clear();
}

}  // namespace unimeter::metering
