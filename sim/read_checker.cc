#include "sim/read_checker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "node/base/check.h"

namespace unimeter::sim {

ReadInvocation ReadChecker::Invoke(uint64_t account) const {
  UM_CHECK_LT(account, completed_max_.size());
  return ReadInvocation{account, ledger_.acked[account], completed_max_[account]};
}

std::string ReadChecker::Check(const ReadInvocation& read, uint64_t sum) {
  const uint64_t account = read.account;
  ++reads_checked_;
  const uint64_t countable = ledger_.sent[account] - ledger_.refused[account];
  const char* violated = nullptr;
  if (sum < read.acknowledged) {
    violated = "S1 (a read missed an acknowledged event)";
  } else if (sum > countable) {
    violated = "S3 (a read counted more events than were sent)";
  } else if (sum < read.completed_max) {
    violated = "linearizable reads (a read went back in time)";
  }
  if (violated == nullptr) {
    completed_max_[account] = std::max(completed_max_[account], sum);
    return std::string();
  }
  return absl::StrCat(violated, ": account ", account, " read ", sum,
                      "; acknowledged before the read ", read.acknowledged,
                      ", largest earlier completed read ", read.completed_max, ", sent ",
                      ledger_.sent[account], ", refused and abandoned ", ledger_.refused[account]);
}

}  // namespace unimeter::sim
