// Goal: ExpiringIndex (the dedup window's storage) finds exactly the keys inserted and not
// yet expired, with the newest value of a key inserted twice, expires in insertion order
// at the exact window boundary, and visits entries in insertion order; checked directly
// and against a plain ordered-map model over many insertions, table growths and expiries.
#include "node/metering/dedup_index.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace unimeter::metering {
namespace {

ContentKey Key(uint64_t account, int64_t timestamp_ns) {
  return ContentKey{account, timestamp_ns, 1, 0, 0};
}

TEST(ExpiringIndex, FindsInsertedKeysUntilTheirWindowEnds) {
  ExpiringIndex<ContentKey, int64_t> index;
  index.Insert(Key(1, 10), 100, 100);
  index.Insert(Key(2, 10), 100, 100);
  index.Insert(Key(3, 10), 150, 150);
  EXPECT_EQ(index.size(), 3u);
  ASSERT_NE(index.Find(Key(3, 10)), nullptr);
  EXPECT_EQ(*index.Find(Key(3, 10)), 150);
  EXPECT_EQ(index.Find(Key(4, 10)), nullptr);
  EXPECT_EQ(index.Find(ContentKey{1, 10, 1, 0, 1}), nullptr);  // Sign differs.

  index.Expire(/*log_time_ns=*/149, /*window_ns=*/50);  // 100 + 50 > 149: all stay.
  EXPECT_EQ(index.size(), 3u);
  index.Expire(150, 50);  // 100 + 50 <= 150: the first two go.
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.fifo_size(), 1u);
  EXPECT_EQ(index.Find(Key(1, 10)), nullptr);
  EXPECT_NE(index.Find(Key(3, 10)), nullptr);
  index.Expire(1000, 50);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.fifo_size(), 0u);
}

TEST(ExpiringIndex, AKeyInsertedAgainKeepsItsNewestValueUntilThatExpires) {
  ExpiringIndex<IdempotencyKey, IdempotencyRecord> index;
  const IdempotencyKey key{7, 8};
  index.Insert(key, IdempotencyRecord{100, 1}, 100);
  index.Insert(IdempotencyKey{9, 9}, IdempotencyRecord{120, 5}, 120);
  index.Insert(key, IdempotencyRecord{200, 2}, 200);  // The old one's window had passed.
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index.fifo_size(), 3u);
  EXPECT_EQ(index.Find(key)->fingerprint, 2u);

  // Visit: insertion order, each entry with the value a lookup sees.
  std::vector<std::pair<int64_t, uint64_t>> segments;
  std::vector<uint64_t> fingerprints;
  index.Visit([&](int64_t log_time, uint64_t count) { segments.emplace_back(log_time, count); },
              [&](const IdempotencyKey& visited) {
                const IdempotencyRecord* record = index.Find(visited);
                ASSERT_NE(record, nullptr);
                fingerprints.push_back(record->fingerprint);
              });
  EXPECT_EQ(segments, (std::vector<std::pair<int64_t, uint64_t>>{{100, 1}, {120, 1}, {200, 1}}));
  EXPECT_EQ(fingerprints, (std::vector<uint64_t>{2, 5, 2}));

  index.Expire(150, 50);  // Evicts the first entry only: the key stays with its new value.
  ASSERT_NE(index.Find(key), nullptr);
  EXPECT_EQ(index.Find(key)->fingerprint, 2u);
  EXPECT_EQ(index.fifo_size(), 2u);
  index.Expire(249, 50);
  EXPECT_NE(index.Find(key), nullptr);
  EXPECT_EQ(index.Find(IdempotencyKey{9, 9}), nullptr);
  index.Expire(250, 50);
  EXPECT_EQ(index.Find(key), nullptr);
  EXPECT_EQ(index.size(), 0u);
}

// Runs 200,000 steps of the owner's check-then-insert against a model. With
// `replica_phases`, every other run of 12,000 steps (over twice the window) inserts and
// expires without any lookup (as a replica applies), so the lazily built table must catch
// up with insertions, with re-insertions of a key and with entries that expired before
// they were ever indexed.
void CheckAgainstModel(bool replica_phases) {
  ExpiringIndex<ContentKey, int64_t> index;
  std::map<std::pair<uint64_t, int64_t>, int64_t> model;  // Key -> newest log time.
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  constexpr int64_t kWindow = 5'000;
  int64_t log_time = 0;
  for (int step = 0; step < 200'000; ++step) {
    log_time += static_cast<int64_t>(next() % 3);
    // Keys from a small space, so re-insertions of expired keys happen often.
    const uint64_t account = next() % 20'000;
    const int64_t timestamp = static_cast<int64_t>(next() % 4);
    const ContentKey key = Key(account, timestamp);
    const bool lookups = !replica_phases || (step / 12'000) % 2 == 0;
    const int64_t* found = lookups ? index.Find(key) : nullptr;
    auto it = model.find({account, timestamp});
    const bool live = it != model.end() && WithinWindow(it->second, log_time, kWindow);
    if (it != model.end() && !live) model.erase(it);
    // The index may still hold an expired key until Expire runs; within the window the
    // two agree exactly.
    if (!lookups) {
      // A replica applies what the owner decided: here, the model's decision.
    } else if (live) {
      ASSERT_NE(found, nullptr) << step;
      ASSERT_EQ(*found, it->second) << step;
    } else if (found != nullptr) {
      ASSERT_FALSE(WithinWindow(*found, log_time, kWindow)) << step;
    }
    if (!live) {
      index.Insert(key, log_time, log_time);
      model[{account, timestamp}] = log_time;
    }
    if (step % 97 == 0) {
      index.Expire(log_time, kWindow);
      for (auto m = model.begin(); m != model.end();) {
        m = WithinWindow(m->second, log_time, kWindow) ? std::next(m) : model.erase(m);
      }
      if (lookups) {
        ASSERT_EQ(index.size(), model.size()) << step;
      }
    }
  }
  EXPECT_EQ(index.size(), model.size());
  EXPECT_GT(model.size(), 1'000u);
}

TEST(ExpiringIndex, MatchesAnOrderedMapModelAcrossGrowthAndExpiry) { CheckAgainstModel(false); }

TEST(ExpiringIndex, ALazilyBuiltTableMatchesTheModelAfterLookupFreeStretches) {
  CheckAgainstModel(true);
}

}  // namespace
}  // namespace unimeter::metering
