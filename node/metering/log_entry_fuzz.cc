// Fuzz target for DecodeLogEntry: any input must decode without crashing or over-reading,
// and whatever decodes must re-encode to exactly the same bytes (the encoding is
// canonical). Under clang it links with libFuzzer; here it is built as a plain test whose
// main (log_entry_fuzz_main.cc) replays a corpus and seeded mutations.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "node/metering/log_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using unimeter::metering::DecodeLogEntry;
  using unimeter::metering::EncodeLogEntry;
  absl::StatusOr<unimeter::metering::LogEntry> entry =
      DecodeLogEntry(absl::MakeConstSpan(data, size));
  if (!entry.ok()) {
    const absl::StatusCode code = entry.status().code();
    if (code != absl::StatusCode::kDataLoss && code != absl::StatusCode::kInvalidArgument) {
      std::abort();
    }
    return 0;
  }
  const std::vector<uint8_t> encoded = EncodeLogEntry(*entry);
  if (encoded.size() != size || (size > 0 && std::memcmp(encoded.data(), data, size) != 0)) {
    std::abort();
  }
  return 0;
}
