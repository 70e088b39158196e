#include "tests/chaos/history.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace unimeter::chaos {
namespace {

constexpr size_t kAnomaliesKeptMax = 200;

std::string Key(int metric, uint64_t account) {
  return absl::StrCat("metric ", metric, " account ", account);
}

}  // namespace

std::string DescribeBits(uint64_t bits) {
  std::vector<int> set;
  for (int bit = 0; bit < 64; ++bit) {
    if ((bits >> bit) & 1) set.push_back(bit);
  }
  return absl::StrCat("{", absl::StrJoin(set, ","), "}");
}

History::History(int metrics, uint64_t accounts)
    : metrics_(metrics), accounts_(accounts), keys_(static_cast<size_t>(metrics) * accounts) {}

size_t History::Index(int metric, uint64_t account) const {
  if (metric < 0 || metric >= metrics_ || account >= accounts_) std::abort();
  return static_cast<size_t>(metric) * accounts_ + account;
}

void History::Sent(int metric, const std::vector<uint64_t>& accounts, int round) {
  const uint64_t bit = uint64_t{1} << round;
  std::lock_guard<std::mutex> lock(mutex_);
  for (uint64_t account : accounts) {
    KeyBits& key = keys_[Index(metric, account)];
    if ((key.sent & bit) != 0) std::abort();  // A round is sent once per key.
    key.sent |= bit;
  }
}

void History::Resolved(int metric, const std::vector<uint64_t>& accounts, int round,
                       Outcome outcome) {
  const uint64_t bit = uint64_t{1} << round;
  std::lock_guard<std::mutex> lock(mutex_);
  for (uint64_t account : accounts) {
    KeyBits& key = keys_[Index(metric, account)];
    switch (outcome) {
      case Outcome::kAcked:
        key.acked |= bit;
        ++acked_events_;
        break;
      case Outcome::kMaybe:
        key.maybe |= bit;
        ++maybe_events_;
        break;
      case Outcome::kFailed:
        key.failed |= bit;
        ++failed_events_;
        break;
    }
  }
}

KeyBits History::Bits(int metric, uint64_t account) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return keys_[Index(metric, account)];
}

void History::CheckRead(int metric, uint64_t account, uint64_t acked_before,
                        unsigned __int128 total, const std::string& where) {
  const KeyBits now = Bits(metric, account);
  ++reads_checked_;
  if ((total >> 64) != 0) {
    AddAnomaly(absl::StrCat(where, ": ", Key(metric, account), " total above 2^64"));
    return;
  }
  const auto bits = static_cast<uint64_t>(total);
  if ((bits & acked_before) != acked_before) {
    AddAnomaly(absl::StrCat(where, ": ", Key(metric, account),
                            " read went back in time: acknowledged before the read but missing ",
                            DescribeBits(acked_before & ~bits)));
  }
  if ((bits & ~now.sent) != 0) {
    AddAnomaly(absl::StrCat(where, ": ", Key(metric, account), " counts events never sent ",
                            DescribeBits(bits & ~now.sent), " (or a double count)"));
  }
}

void History::CheckFinal(int metric, uint64_t account,
                         const std::vector<unsigned __int128>& totals) {
  const KeyBits key = Bits(metric, account);
  ++keys_checked_;
  for (size_t node = 0; node < totals.size(); ++node) {
    const std::string where = absl::StrCat("final, node ", node, ": ", Key(metric, account));
    if ((totals[node] >> 64) != 0) {
      AddAnomaly(absl::StrCat(where, " total above 2^64"));
      continue;
    }
    const auto bits = static_cast<uint64_t>(totals[node]);
    if ((bits & key.acked) != key.acked) {
      AddAnomaly(
          absl::StrCat(where, " lost acknowledged events ", DescribeBits(key.acked & ~bits)));
    }
    if ((bits & key.failed) != 0) {
      AddAnomaly(absl::StrCat(where, " counts events of failed requests ",
                              DescribeBits(bits & key.failed)));
    }
    if ((bits & ~key.sent) != 0) {
      AddAnomaly(absl::StrCat(where, " counts events never sent ", DescribeBits(bits & ~key.sent),
                              " (or a double count)"));
    }
    if (totals[node] != totals[0]) {
      AddAnomaly(absl::StrCat(where, " disagrees with node 0: ", DescribeBits(bits), " vs ",
                              DescribeBits(static_cast<uint64_t>(totals[0]))));
    }
  }
}

void History::AddAnomaly(const std::string& anomaly) {
  ++anomaly_count_;
  std::lock_guard<std::mutex> lock(mutex_);
  if (anomalies_.size() < kAnomaliesKeptMax) anomalies_.push_back(anomaly);
}

std::vector<uint64_t> History::WrittenAccounts(int metric) const {
  std::vector<uint64_t> accounts;
  std::lock_guard<std::mutex> lock(mutex_);
  for (uint64_t account = 0; account < accounts_; ++account) {
    if (keys_[Index(metric, account)].sent != 0) accounts.push_back(account);
  }
  return accounts;
}

std::vector<std::string> History::anomalies() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return anomalies_;
}

std::map<std::string, uint64_t> History::EventCounts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {{"acked", acked_events_}, {"maybe", maybe_events_}, {"failed", failed_events_}};
}

}  // namespace unimeter::chaos
