#include "node/replication/replay_window.h"

#include <algorithm>

namespace unimeter::replication {

bool ReplayWindow::Accept(uint64_t id) {
  // Distances modulo 2^64: ids start at a random value and may wrap.
  const uint64_t ahead = id - newest_;
  if (!started_ || (ahead != 0 && ahead < (uint64_t{1} << 63))) {
    if (!started_ || ahead >= kWindow) {
      std::fill(bits_.begin(), bits_.end(), 0);
    } else {
      // Ids newest_+1 .. id take the slots of ids leaving the window.
      for (uint64_t step = 1; step < ahead; ++step) Clear(newest_ + step);
    }
    started_ = true;
    newest_ = id;
    Clear(id);
    Set(id);
    return true;
  }
  if (newest_ - id >= kWindow || Test(id)) return false;
  Set(id);
  return true;
}

void ReplayWindow::Reset() {
  std::fill(bits_.begin(), bits_.end(), 0);
  newest_ = 0;
  started_ = false;
}

}  // namespace unimeter::replication
