// A main for log_entry_fuzz.cc without libFuzzer: replays every file of
// node/metering/testdata/log_entry_corpus/ (sorted) and then thousands of seeded
// mutations (bit flips, byte sets, truncations, insertions) of valid encodings.
// Deterministic: fixed seed, our own PRNG.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "node/base/random.h"
#include "node/metering/log_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace unimeter::metering {
namespace {

constexpr const char* kCorpusDir = "node/metering/testdata/log_entry_corpus/";
// The checked-in corpus (listed, so no directory listing is needed).
constexpr const char* kCorpusFiles[] = {
    "batch.bin",           "put.bin",   "delete.bin",      "retention.bin",
    "truncated_batch.bin", "empty.bin", "alert_copies.bin"};

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open corpus file %s\n", path.c_str());
    std::abort();
  }
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void Mutate(Prng& prng, std::vector<uint8_t>& bytes) {
  const uint64_t mutations = 1 + prng.UniformBelow(4);
  for (uint64_t m = 0; m < mutations; ++m) {
    const uint64_t kind = prng.UniformBelow(5);
    if (bytes.empty() || kind == 4) {
      bytes.insert(bytes.begin() + prng.UniformBelow(bytes.size() + 1),
                   static_cast<uint8_t>(prng.NextU64()));
      continue;
    }
    const size_t at = prng.UniformBelow(bytes.size());
    if (kind == 0) bytes[at] ^= static_cast<uint8_t>(1u << prng.UniformBelow(8));
    if (kind == 1) bytes[at] = static_cast<uint8_t>(prng.NextU64());
    if (kind == 2) bytes.resize(at);
    if (kind == 3) bytes[at] = prng.Chance(1, 2) ? 0 : 0xFF;
  }
}

int Main() {
  std::vector<std::vector<uint8_t>> seeds;
  for (const char* name : kCorpusFiles) {
    seeds.push_back(ReadFile(std::string(kCorpusDir) + name));
    LLVMFuzzerTestOneInput(seeds.back().data(), seeds.back().size());
  }
  Prng prng(0x5EED10C);
  constexpr int kMutations = 20'000;
  int decoded = 0;
  for (int i = 0; i < kMutations; ++i) {
    std::vector<uint8_t> bytes = seeds[prng.UniformBelow(seeds.size())];
    Mutate(prng, bytes);
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    decoded += DecodeLogEntry(bytes).ok() ? 1 : 0;
  }
  std::printf("replayed %zu corpus files and %d mutations (%d decoded)\n", seeds.size(), kMutations,
              decoded);
  return 0;
}

}  // namespace
}  // namespace unimeter::metering

int main() { return unimeter::metering::Main(); }
