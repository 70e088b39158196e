// Fixture for //tools/lint:determinism_selftest: nothing here may be reported.
#include "absl/container/btree_map.h"

int operand(int x) { return x; }
int runtime(int x) { return x; }
int wall_time(int x) { return x; }
int my_getenv(int x) { return x; }

void Fine() {
  int a = operand(1) + runtime(2) + wall_time(3) + my_getenv(4);
  absl::btree_map<int, int> ordered;
  std::chrono::milliseconds ms(5);
  bool is_steady_clock = false;
  auto t = std::chrono::steady_clock::now();  // determinism-ok: stopwatch never enters the sim
  std::mutex mu;                              // determinism-ok: lookup-only wrapper internals
}
