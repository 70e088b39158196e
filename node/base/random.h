// node/base/random.h
//
// Deterministic pseudo-random numbers for core code and the simulator.
//
// Prng is xoshiro256** seeded through SplitMix64, with our own small distributions
// (bounded integer, ratio, exponential) written in integer arithmetic only, so the same
// seed yields the same sequence on every machine, compiler and standard library.
// std:: distributions are banned in core code because their algorithms are unspecified.
//
// SubSeed() derives independent per-subsystem seeds from one run seed, so a new draw in
// one subsystem never reshuffles another. Golden values are pinned by random_test.cc.
#ifndef UNIMETER_NODE_BASE_RANDOM_H_
#define UNIMETER_NODE_BASE_RANDOM_H_

#include <cstdint>

namespace unimeter {

// One step of SplitMix64: advances `state` and returns the next output.
uint64_t SplitMix64(uint64_t& state);

// A seed for subsystem `tag` (any stable constant) derived from `run_seed`.
uint64_t SubSeed(uint64_t run_seed, uint64_t tag);

class Prng {
 public:
  explicit Prng(uint64_t seed);

  uint64_t NextU64();

  // Uniform in [0, bound). REQUIRES: bound > 0. Unbiased (rejection sampling).
  uint64_t UniformBelow(uint64_t bound);

  // Uniform in [low, high], both inclusive. REQUIRES: low <= high.
  uint64_t UniformRange(uint64_t low, uint64_t high);

  // True with probability numerator / denominator. REQUIRES: denominator > 0.
  bool Chance(uint64_t numerator, uint64_t denominator);

  // Exponentially distributed with the given mean, rounded down; capped at 64 x mean.
  uint64_t Exponential(uint64_t mean);

  uint64_t seed() const { return seed_; }

 private:
  uint64_t seed_;
  uint64_t state_[4];
};

// -log2(x / 2^32) for x in [1, 2^32], in Q32 fixed point (computed with integers only).
uint64_t NegativeLog2Q32(uint64_t x);

}  // namespace unimeter

#endif  // UNIMETER_NODE_BASE_RANDOM_H_
