// protocol/fuzz_replay_main.cc
//
// Runs a libFuzzer target without libFuzzer, for CI: every corpus file named on the command
// line, then a fixed number of seeded mutations of them (bit flips, interesting values,
// truncations, splices, duplications). Deterministic: the mutations come from a fixed seed.
//
//   wire_fuzz_replay [--mutations=N] FILE...
//
// Exits non-zero if a file cannot be read; a failing input aborts inside the target.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "node/base/random.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr uint64_t kMutationSeed = 0x5eed'0f'fa22'7e57;
constexpr size_t kMutationsDefault = 4000;

void Run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

// Little-endian u32 values that sit on the protocol's boundaries.
constexpr uint32_t kInterestingU32[] = {
    0,       1,      2,          3,          4,
    5,       8,      9,          28,         29,
    64,      88,     95,         96,         255,
    256,     1023,   1024,       1025,       196'616,
    196'617, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 16u * 1024 * 1024 + 1};

std::string Mutate(const std::vector<std::string>& corpus, unimeter::Prng& prng) {
  std::string input = corpus[prng.UniformBelow(corpus.size())];
  const uint64_t steps = prng.UniformRange(1, 4);
  for (uint64_t step = 0; step < steps; ++step) {
    switch (prng.UniformBelow(6)) {
      case 0:  // Flip a few bits.
        for (uint64_t flips = prng.UniformRange(1, 8); flips > 0 && !input.empty(); --flips) {
          input[prng.UniformBelow(input.size())] ^= static_cast<char>(1 << prng.UniformBelow(8));
        }
        break;
      case 1:  // Overwrite a u32 with a boundary value.
        if (input.size() >= 4) {
          const size_t at = prng.UniformBelow(input.size() - 3);
          const uint32_t value = kInterestingU32[prng.UniformBelow(std::size(kInterestingU32))];
          for (int i = 0; i < 4; ++i) {
            input[at + i] = static_cast<char>(value >> (8 * i));
          }
        }
        break;
      case 2:  // Set one byte to a boundary value.
        if (!input.empty()) {
          const char values[] = {0, 1, 2, 3, 4, 5, 8, 9, 28, 29, '\x7F', '\x80', '\xFF'};
          input[prng.UniformBelow(input.size())] = values[prng.UniformBelow(sizeof(values))];
        }
        break;
      case 3:  // Truncate.
        input.resize(prng.UniformBelow(input.size() + 1));
        break;
      case 4: {  // Splice: a prefix of this input and a suffix of another.
        const std::string& other = corpus[prng.UniformBelow(corpus.size())];
        input = input.substr(0, prng.UniformBelow(input.size() + 1)) +
                other.substr(prng.UniformBelow(other.size() + 1));
        break;
      }
      default:  // Duplicate: the stream twice (pipelining).
        if (input.size() < 300'000) {
          input += input;
        }
        break;
    }
  }
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mutations = kMutationsDefault;
  std::vector<std::string> corpus;
  for (int i = 1; i < argc; ++i) {
    const char* flag = "--mutations=";
    if (std::strncmp(argv[i], flag, std::strlen(flag)) == 0) {
      mutations = std::strtoull(argv[i] + std::strlen(flag), nullptr, 10);
      continue;
    }
    std::ifstream file(argv[i], std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", argv[i]);
      return 2;
    }
    corpus.emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  if (corpus.empty()) {
    std::fprintf(stderr, "fuzz replay: no corpus files given\n");
    return 2;
  }
  for (const std::string& input : corpus) {
    Run(input);
  }
  unimeter::Prng prng(kMutationSeed);
  for (size_t i = 0; i < mutations; ++i) {
    Run(Mutate(corpus, prng));
  }
  std::printf("fuzz replay: %zu corpus files, %zu mutations, no failure\n", corpus.size(),
              mutations);
  return 0;
}
