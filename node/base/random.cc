#include "node/base/random.h"

#include "node/base/check.h"

namespace unimeter {
namespace {

uint64_t RotateLeft(uint64_t value, int bits) { return (value << bits) | (value >> (64 - bits)); }

// log2(e) in Q32: ln(u) = log2(u) / log2(e). We need -ln(x / 2^32) = -log2(x/2^32) * ln(2).
constexpr uint64_t kLn2Q32 = 2977044472ULL;  // round(ln(2) * 2^32)

}  // namespace

uint64_t SplitMix64(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ULL;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t SubSeed(uint64_t run_seed, uint64_t tag) {
  uint64_t state = run_seed ^ (tag * 0xD1B54A32D192ED03ULL);
  SplitMix64(state);
  return SplitMix64(state);
}

Prng::Prng(uint64_t seed) : seed_(seed) {
  uint64_t state = seed;
  for (uint64_t& word : state_) {
    word = SplitMix64(state);
  }
  UM_CHECK((state_[0] | state_[1] | state_[2] | state_[3]) != 0);
}

uint64_t Prng::NextU64() {
  const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const uint64_t shifted = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= shifted;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

uint64_t Prng::UniformBelow(uint64_t bound) {
  UM_CHECK_GT(bound, 0u);
  // Reject the top partial copy of [0, bound) so every value is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound;
  uint64_t value = NextU64();
  while (value > limit) {
    value = NextU64();
  }
  return value % bound;
}

uint64_t Prng::UniformRange(uint64_t low, uint64_t high) {
  UM_CHECK_LE(low, high);
  if (low == 0 && high == UINT64_MAX) {
    return NextU64();
  }
  return low + UniformBelow(high - low + 1);
}

bool Prng::Chance(uint64_t numerator, uint64_t denominator) {
  UM_CHECK_GT(denominator, 0u);
  if (numerator == 0) {
    return false;
  }
  if (numerator >= denominator) {
    return true;
  }
  return UniformBelow(denominator) < numerator;
}

uint64_t Prng::Exponential(uint64_t mean) {
  if (mean == 0) {
    return 0;
  }
  // Inverse transform: -ln(U) * mean with U uniform in (0, 1], U = x / 2^32.
  const uint64_t x = (NextU64() >> 32) + 1;
  const uint64_t neg_ln_q32 =
      static_cast<uint64_t>((static_cast<unsigned __int128>(NegativeLog2Q32(x)) * kLn2Q32) >> 32);
  const unsigned __int128 product = static_cast<unsigned __int128>(neg_ln_q32) * mean;
  const uint64_t value = static_cast<uint64_t>(product >> 32);
  const uint64_t cap = mean > UINT64_MAX / 64 ? UINT64_MAX : mean * 64;
  return value < cap ? value : cap;
}

uint64_t NegativeLog2Q32(uint64_t x) {
  UM_CHECK_GE(x, 1u);
  UM_CHECK_LE(x, 1ULL << 32);
  // log2(x) = integer part + fraction; the fraction comes from repeated squaring of the
  // mantissa in Q32 (one result bit per squaring), all in integers.
  int integer_part = 63 - __builtin_clzll(x);
  uint64_t mantissa_q32 = (x << 32) >> integer_part;  // in [2^32, 2^33)
  uint64_t fraction_q32 = 0;
  for (int bit = 31; bit >= 0; --bit) {
    mantissa_q32 =
        static_cast<uint64_t>((static_cast<unsigned __int128>(mantissa_q32) * mantissa_q32) >> 32);
    if (mantissa_q32 >= (2ULL << 32)) {
      mantissa_q32 >>= 1;
      fraction_q32 |= 1ULL << bit;
    }
  }
  const uint64_t log2_q32 = (static_cast<uint64_t>(integer_part) << 32) | fraction_q32;
  return (32ULL << 32) - log2_q32;
}

}  // namespace unimeter
