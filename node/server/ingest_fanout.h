// node/server/ingest_fanout.h
//
// IngestFanout runs one client request's events through the Engine: it splits them into
// one part per partition (keeping request order inside each part), ingests the parts, and
// merges their outcomes into one answer in request order. Every front door (binary v1,
// the extension ingest, HTTP) answers from the merged outcome:
//
//   kAcknowledged     every part reached its acknowledgement point: counts, per-event
//                     outcomes, last_offset = offset of the last stored event in request
//                     order (wire-protocol-v1 6.8), unknown_metric if a stored event names
//                     an unregistered metric;
//   kNothingAccepted  every part was refused before anything was accepted (BACKPRESSURE);
//   kUnknown          some part failed after others may have been accepted, or a part's
//                     outcome is unknown (ERR: outcome unknown).
#ifndef UNIMETER_NODE_SERVER_INGEST_FANOUT_H_
#define UNIMETER_NODE_SERVER_INGEST_FANOUT_H_

#include <cstdint>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "node/server/engine.h"

namespace unimeter {

struct MergedIngest {
  enum class Outcome : uint8_t { kAcknowledged, kNothingAccepted, kUnknown };
  Outcome outcome = Outcome::kAcknowledged;
  uint32_t n_stored = 0;
  uint32_t n_duplicates = 0;
  uint32_t n_conflicts = 0;
  uint64_t last_offset = 0;
  bool unknown_metric = false;
  std::vector<metering::EventOutcome> outcomes;  // Request order (when acknowledged).
};

// Ingests `events` (already validated) and calls `done` once with the merged outcome; an
// empty request is acknowledged with zeros at once.
void IngestFanout(Engine& engine, std::vector<metering::Event> events, IngestMode mode,
                  absl::AnyInvocable<void(MergedIngest merged)> done);

}  // namespace unimeter

#endif  // UNIMETER_NODE_SERVER_INGEST_FANOUT_H_
