#include "node/metering/schema.h"

#include <string>
#include <utility>

#include "node/base/check.h"
#include "node/base/checksum.h"

namespace unimeter::metering {

uint64_t SliceComponent(absl::string_view key, absl::string_view value) {
  std::vector<uint8_t> bytes;
  ByteWriter writer(&bytes);
  writer.String8(std::string(key));
  writer.String8(std::string(value));
  return Hash64(bytes.data(), bytes.size(), /*seed=*/0x511CE);
}

absl::StatusOr<SchemaRef> CompiledSchema::Create(MetricSchema schema) {
  NormalizeMetricSchema(schema);
  absl::Status status = ValidateMetricSchema(schema);
  if (!status.ok()) return status;
  return SchemaRef(new CompiledSchema(std::move(schema)));
}

CompiledSchema::CompiledSchema(MetricSchema schema) : schema_(std::move(schema)) {
  UM_CHECK_LE(schema_.dimensions.size(), kDimensionsPerMetricMax);
  for (const Dimension& dimension : schema_.dimensions) {
    std::vector<uint64_t> hashes;
    hashes.reserve(dimension.values.size());
    for (const std::string& value : dimension.values) {
      hashes.push_back(SliceComponent(dimension.key, value));
    }
    pair_hashes_.push_back(std::move(hashes));
  }
}

size_t CompiledSchema::MatchPairs(absl::Span<const Property> properties,
                                  uint64_t* pair_hashes) const {
  size_t matched = 0;
  for (size_t d = 0; d < schema_.dimensions.size(); ++d) {
    const Dimension& dimension = schema_.dimensions[d];
    for (const Property& property : properties) {
      if (property.key != dimension.key) continue;
      // Only the first property with the key counts, whether or not its value matches.
      for (size_t v = 0; v < dimension.values.size(); ++v) {
        if (dimension.values[v] == property.value) {
          pair_hashes[matched++] = pair_hashes_[d][v];
          break;
        }
      }
      break;
    }
  }
  UM_CHECK_LE(matched, kDimensionsPerMetricMax);
  return matched;
}

int CompiledSchema::FindDimension(absl::string_view key) const {
  for (size_t d = 0; d < schema_.dimensions.size(); ++d) {
    if (schema_.dimensions[d].key == key) return static_cast<int>(d);
  }
  return -1;
}

std::optional<uint64_t> CompiledSchema::DeclaredPairHash(int dimension,
                                                         absl::string_view value) const {
  UM_CHECK_GE(dimension, 0);
  UM_CHECK_LT(static_cast<size_t>(dimension), schema_.dimensions.size());
  const Dimension& declared = schema_.dimensions[dimension];
  for (size_t v = 0; v < declared.values.size(); ++v) {
    if (declared.values[v] == value) return pair_hashes_[dimension][v];
  }
  return std::nullopt;
}

void EncodeSchema(const MetricSchema& schema, ByteWriter& writer) {
  writer.String8(schema.code);
  writer.U8(static_cast<uint8_t>(schema.agg_type));
  writer.U8(schema.recurring ? 1 : 0);
  writer.U8(schema.period_type);
  writer.U8(schema.billing_cycle_day);
  writer.String8(schema.field_name);
  writer.U8(static_cast<uint8_t>(schema.dimensions.size()));
  for (const Dimension& dimension : schema.dimensions) {
    writer.String8(dimension.key);
    writer.U8(static_cast<uint8_t>(dimension.values.size()));
    for (const std::string& value : dimension.values) writer.String8(value);
  }
  writer.U8(static_cast<uint8_t>(schema.thresholds.size()));
  for (const Threshold& threshold : schema.thresholds) {
    writer.String8(threshold.code);
    writer.U64(threshold.value);
    writer.U8(threshold.recurring ? 1 : 0);
  }
}

namespace {

bool ReadDimensions(ByteReader& reader, std::vector<Dimension>* dimensions) {
  uint8_t count = 0;
  if (!reader.U8(&count) || count > kDimensionsPerMetricMax) return reader.Fail();
  dimensions->resize(count);
  for (Dimension& dimension : *dimensions) {
    uint8_t value_count = 0;
    if (!reader.String8(kDimensionKeyBytesMax, &dimension.key) || !reader.U8(&value_count) ||
        value_count > kValuesPerDimensionMax) {
      return reader.Fail();
    }
    dimension.values.resize(value_count);
    for (std::string& value : dimension.values) {
      if (!reader.String8(kDimensionValueBytesMax, &value)) return false;
    }
  }
  return true;
}

bool ReadThresholds(ByteReader& reader, std::vector<Threshold>* thresholds) {
  uint8_t count = 0;
  if (!reader.U8(&count) || count > kThresholdsPerMetricMax) return reader.Fail();
  thresholds->resize(count);
  for (Threshold& threshold : *thresholds) {
    if (!reader.String8(kThresholdCodeBytesMax, &threshold.code) || !reader.U64(&threshold.value) ||
        !reader.Bool(&threshold.recurring)) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<SchemaRef> DecodeSchema(ByteReader& reader) {
  MetricSchema schema;
  uint8_t agg_type = 0;
  const bool read = reader.String8(kMetricCodeBytesMax, &schema.code) && reader.U8(&agg_type) &&
                    reader.Bool(&schema.recurring) && reader.U8(&schema.period_type) &&
                    reader.U8(&schema.billing_cycle_day) &&
                    reader.String8(kFieldNameBytesMax, &schema.field_name) &&
                    ReadDimensions(reader, &schema.dimensions) &&
                    ReadThresholds(reader, &schema.thresholds);
  if (!read) return absl::DataLossError("truncated or malformed metric schema");
  if (agg_type > kAggregationTypeMax) return absl::DataLossError("bad agg_type in schema");
  schema.agg_type = static_cast<AggregationType>(agg_type);
  if (schema.billing_cycle_day < kBillingCycleDayMin ||
      schema.billing_cycle_day > kBillingCycleDayMax) {
    return absl::DataLossError("billing_cycle_day not normalised in encoded schema");
  }
  return CompiledSchema::Create(std::move(schema));
}

}  // namespace unimeter::metering
