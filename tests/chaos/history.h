// tests/chaos/history.h
//
// History: what the fault tests' clients sent, what they were told, and the checks of every
// answer against it.
//
// Encoding. Every event goes to a key (metric index, account) of a SUM metric, and the r-th
// event of a key (round r, 0..62) carries the value 2^r. A key's total is therefore the set
// of its events that the cluster counts: bit r set = event r counted once. Per key the
// history keeps four disjoint-by-construction bit sets:
//   sent    every event whose request was written (the outcome may be anything);
//   acked   synchronous ingests acknowledged OK: durable on a majority, must be counted;
//   maybe   asynchronous acknowledgements, unknown outcomes, deadlines: counted at most once;
//   failed  definite failures (the client's contract: nothing of the request was stored).
// The client library routes and retries, but each request the workload builds holds the
// events of one partition only, so each outcome belongs to exactly those events.
//
// Checks (violations are recorded as anomaly strings, never thrown):
//   read:   a total read after an acknowledgement contains that event (no read older than
//           an acknowledged write it follows) and contains nothing never sent (a double
//           count shows as bits outside the sent set or a missing acknowledged bit).
//   final:  on every node the total contains every acknowledged event, no failed one,
//           nothing never sent, and all nodes agree.
// Thread-safe: writers, readers and the checker run on different threads.
#ifndef UNIMETER_TESTS_CHAOS_HISTORY_H_
#define UNIMETER_TESTS_CHAOS_HISTORY_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace unimeter::chaos {

inline constexpr int kRoundsPerKey = 63;  // Values 2^0 .. 2^62.

enum class Outcome { kAcked, kMaybe, kFailed };

struct KeyBits {
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t maybe = 0;
  uint64_t failed = 0;
};

class History {
 public:
  History(int metrics, uint64_t accounts);

  // Before the request is written.
  void Sent(int metric, const std::vector<uint64_t>& accounts, int round);
  void Resolved(int metric, const std::vector<uint64_t>& accounts, int round, Outcome outcome);
  KeyBits Bits(int metric, uint64_t account) const;

  // A total read from the cluster. `acked_before` = Bits().acked taken before the read was
  // sent; the sent set is taken now (after the reply).
  void CheckRead(int metric, uint64_t account, uint64_t acked_before, unsigned __int128 total,
                 const std::string& where);
  // The totals every node answered for one key after healing (one per node, in node order).
  void CheckFinal(int metric, uint64_t account, const std::vector<unsigned __int128>& totals);
  void AddAnomaly(const std::string& anomaly);

  // Keys that were ever written to, per metric.
  std::vector<uint64_t> WrittenAccounts(int metric) const;
  std::vector<std::string> anomalies() const;
  uint64_t anomaly_count() const { return anomaly_count_; }
  uint64_t reads_checked() const { return reads_checked_; }
  uint64_t keys_checked() const { return keys_checked_; }
  // Events per outcome so far: acked, maybe, failed.
  std::map<std::string, uint64_t> EventCounts() const;

 private:
  size_t Index(int metric, uint64_t account) const;

  const int metrics_;
  const uint64_t accounts_;
  mutable std::mutex mutex_;
  std::vector<KeyBits> keys_;  // metric * accounts_ + account.
  std::vector<std::string> anomalies_;
  std::atomic<uint64_t> anomaly_count_{0};
  std::atomic<uint64_t> reads_checked_{0};
  std::atomic<uint64_t> keys_checked_{0};
  uint64_t acked_events_ = 0;
  uint64_t maybe_events_ = 0;
  uint64_t failed_events_ = 0;
};

// "bits {0,3,17}" for messages.
std::string DescribeBits(uint64_t bits);

}  // namespace unimeter::chaos

#endif  // UNIMETER_TESTS_CHAOS_HISTORY_H_
