// node/server/json_events.h
//
// Parser for the body of `POST /v1/events` (wire-protocol-v1.md §11.1): a JSON array of at
// most 1,024 objects with `account_id` and `value` (integers 0 .. 2^64-1), `metric_code`
// (a string, truncated to 63 bytes) and optional `delivery_mode` ("sync" on any element
// makes the request SYNC). Other keys are ignored whatever their value. Anything else is
// rejected: not an array of objects, a missing or duplicated required key, a wrong type, a
// non-integer or out-of-range number, more than 1,024 elements, nesting deeper than 64,
// invalid UTF-8 escapes, trailing bytes. Pure and allocation-light; fuzzed.
#ifndef UNIMETER_NODE_SERVER_JSON_EVENTS_H_
#define UNIMETER_NODE_SERVER_JSON_EVENTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace unimeter {

inline constexpr size_t kJsonEventsMax = 1024;
inline constexpr size_t kJsonMetricCodeBytesMax = 63;
inline constexpr int kJsonDepthMax = 64;

struct JsonEvent {
  uint64_t account_id = 0;
  std::string metric_code;
  uint64_t value = 0;
};

struct JsonEventsRequest {
  std::vector<JsonEvent> events;
  bool sync = false;
};

// Returns InvalidArgument (message for logs; the client sees "invalid json") on any
// violation of the rules above.
absl::StatusOr<JsonEventsRequest> ParseJsonEvents(absl::string_view body);

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_JSON_EVENTS_H_
