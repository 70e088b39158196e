// protocol/wire_benchmark.cc
//
// Codec throughput on the hot paths:
//   BM_DecodeIngest500x2   decode an INGEST payload of 500 events with 2 props each and touch
//                          every field (events/s in the "items" column).
//   BM_EncodeAggValueReply append a USAGE_QUERY reply (header + AggValue) to a reused buffer.
//
//   bazel run -c opt //protocol:wire_benchmark
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "protocol/wire.h"

namespace unimeter::protocol {
namespace {

constexpr size_t kBenchmarkEvents = 500;

std::string IngestPayload() {
  const PropPair props[2] = {{"region", "us-east"}, {"provider", "aws"}};
  std::vector<IngestEvent> events;
  for (size_t i = 0; i < kBenchmarkEvents; ++i) {
    events.push_back({.metric_code = "api_calls",
                      .account_id = i,
                      .timestamp_ns = 1'767'225'600'000'000'000 + static_cast<int64_t>(i),
                      .value = i,
                      .operation_type = 1,
                      .props = props});
  }
  std::string frame;
  if (!AppendIngestRequest(Opcode::kIngestSync, kPartitionAuto, 1, events, &frame).ok()) {
    std::abort();
  }
  return frame.substr(kRequestHeaderSizeBytes);
}

void BM_DecodeIngest500x2(benchmark::State& state) {
  const std::string payload = IngestPayload();
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(payload.data()),
                                       payload.size());
  for (auto _ : state) {
    absl::StatusOr<IngestRequestView> view = IngestRequestView::Decode(kPartitionAuto, bytes);
    if (!view.ok()) {
      std::abort();
    }
    uint64_t checksum = 0;
    for (size_t i = 0; i < view->event_count(); ++i) {
      const WireEventView event = view->event(i);
      checksum += event.metric_code().size() + event.account_id() + event.value() +
                  static_cast<uint64_t>(event.timestamp_ns()) +
                  static_cast<uint8_t>(event.operation_type());
      for (size_t j = 0; j < event.props_count(); ++j) {
        checksum += event.prop(j).key().size() + event.prop(j).value().size();
      }
    }
    benchmark::DoNotOptimize(checksum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBenchmarkEvents));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * payload.size()));
}
BENCHMARK(BM_DecodeIngest500x2);

void BM_EncodeAggValueReply(benchmark::State& state) {
  std::string out;
  out.reserve(kResponseHeaderSizeBytes + kAggValueSizeBytes);
  AggValue value{.sum = (static_cast<unsigned __int128>(1) << 70) + 3,
                 .count = 10,
                 .max = 9,
                 .last_value = 8,
                 .last_timestamp_ns = 7,
                 .alert_flags = 1};
  uint32_t request_id = 1;
  for (auto _ : state) {
    out.clear();
    AppendAggValueReply(request_id++, value, &out);
    benchmark::DoNotOptimize(out.data());
    value.count++;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EncodeAggValueReply);

}  // namespace
}  // namespace unimeter::protocol
