// node/metering/schema.h
//
// CompiledSchema is an immutable, validated MetricSchema plus what the hot path needs
// precomputed (dimension pair hashes). It is shared through std::shared_ptr<const ...>
// between log entries and the 256 partition states, so one schema change costs one
// allocation however many partitions apply it.
//
// EncodeSchema/DecodeSchema are the schema's fixed encoding inside log entries and
// snapshots (docs/formats/metering_entries.md, "Schema").
#ifndef UNIMETER_NODE_METERING_SCHEMA_H_
#define UNIMETER_NODE_METERING_SCHEMA_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "node/metering/byte_io.h"
#include "node/metering/period.h"
#include "node/metering/types.h"

namespace unimeter::metering {

// The identity of one matched (key, value) pair inside a slice id; a slice id is the XOR
// of the components of its pairs (keys within a slice are distinct).
//
// Deliberate difference from the letter of WP section 10 (whose hashes never reach the
// wire): the spec's pair hash FNV(key) XOR FNV(value) is separable, so XOR-combining pairs
// cancels whenever dimensions share values -- {a=0, b=1} and {a=1, b=0} would be one slice,
// as would {a=0, b=0} and {a=1, b=1} -- and a filtered query would count events that do
// not match it. We hash each pair as a whole (Hash64 over the length-prefixed key and
// value), so distinct pair sets collide only by 64-bit chance. hashes.h keeps the spec's
// hashes for tooling and test vectors.
uint64_t SliceComponent(absl::string_view key, absl::string_view value);

class CompiledSchema {
 public:
  // Normalises `schema` (billing cycle day) and validates it; InvalidArgument on a bad
  // schema.
  static absl::StatusOr<std::shared_ptr<const CompiledSchema>> Create(MetricSchema schema);

  const MetricSchema& schema() const { return schema_; }
  const std::string& code() const { return schema_.code; }
  AggregationType agg_type() const { return schema_.agg_type; }
  const std::vector<Dimension>& dimensions() const { return schema_.dimensions; }
  const std::vector<Threshold>& thresholds() const { return schema_.thresholds; }

  // The bucket of `timestamp_ns` under this schema's period rules.
  BucketRange BucketFor(int64_t timestamp_ns) const {
    return BucketContaining(schema_.period_type, schema_.billing_cycle_day, timestamp_ns);
  }

  // Matches an event's properties against the declared dimensions (product-semantics 5):
  // writes the slice component of every matched dimension, in declaration order, to
  // `pair_hashes` and returns how many matched (at most kDimensionsPerMetricMax).
  size_t MatchPairs(absl::Span<const Property> properties, uint64_t* pair_hashes) const;

  // The index of the declared dimension `key`, or -1.
  int FindDimension(absl::string_view key) const;

  // The slice component of (dimension `dimension`, `value`) if `value` is declared for it.
  // REQUIRES: 0 <= dimension < dimensions().size().
  std::optional<uint64_t> DeclaredPairHash(int dimension, absl::string_view value) const;

  // REQUIRES: valid indexes.
  uint64_t pair_hash(size_t dimension, size_t value_index) const {
    return pair_hashes_[dimension][value_index];
  }

 private:
  explicit CompiledSchema(MetricSchema schema);

  MetricSchema schema_;
  std::vector<std::vector<uint64_t>> pair_hashes_;  // SliceComponent [dimension][value]
};

using SchemaRef = std::shared_ptr<const CompiledSchema>;

// Appends the fixed encoding of `schema`.
void EncodeSchema(const MetricSchema& schema, ByteWriter& writer);

// Reads one encoded schema and compiles it. DataLoss on truncated or malformed bytes,
// InvalidArgument if the decoded schema violates a rule.
absl::StatusOr<SchemaRef> DecodeSchema(ByteReader& reader);

}  // namespace unimeter::metering

#endif  // UNIMETER_NODE_METERING_SCHEMA_H_
