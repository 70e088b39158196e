// sim/read_checker.h
//
// ReadChecker judges reads of an account's SUM made while the cluster runs and faults are
// injected (simulation.md invariants S1 and S3 on reads, and linearizability). In the
// workload every event adds 1 to one account's SUM, so for a read invoked at time I and
// answered at time R:
//   S1  the answer counts at least every event acknowledged before I;
//   S3  it counts at most the events sent before R, less those whose request was answered
//       BACKPRESSURE and then abandoned (never accepted, so never counted);
//   lin no read goes back in time: the answer is at least the answer of every read of the
//       same account that completed before I (a read only ever shows committed state, and
//       committed state of a SUM only grows).
//
// Usage: Invoke() when the read is issued, keep the returned ReadInvocation with the read,
// and pass it to Check() with the answer. Reads that fail or never complete (the node
// crashed) are simply dropped. Deterministic; holds a reference to the workload's Ledger.
#ifndef UNIMETER_SIM_READ_CHECKER_H_
#define UNIMETER_SIM_READ_CHECKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sim/workload_client.h"

namespace unimeter::sim {

struct ReadInvocation {
  uint64_t account = 0;
  uint64_t acknowledged = 0;   // Acknowledged events of the account at invocation.
  uint64_t completed_max = 0;  // Largest answer of a read of it completed before.
};

class ReadChecker {
 public:
  explicit ReadChecker(const Ledger& ledger)
      : ledger_(ledger), completed_max_(ledger.sent.size(), 0) {}

  ReadInvocation Invoke(uint64_t account) const;
  // Empty if the answer `sum` is allowed, else the violated invariant with details.
  std::string Check(const ReadInvocation& read, uint64_t sum);

  uint64_t reads_checked() const { return reads_checked_; }

 private:
  const Ledger& ledger_;
  std::vector<uint64_t> completed_max_;  // Per account.
  uint64_t reads_checked_ = 0;
};

}  // namespace unimeter::sim

#endif  // UNIMETER_SIM_READ_CHECKER_H_
