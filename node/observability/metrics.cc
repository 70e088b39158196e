#include "node/observability/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/base/check.h"

namespace unimeter {
namespace {

std::string EscapeLabelValue(const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      escaped.push_back('\\');
      escaped.push_back(c);
    } else if (c == '\n') {
      escaped.append("\\n");
    } else {
      escaped.push_back(c);
    }
  }
  return escaped;
}

std::string RenderLabels(const MetricLabels& labels, const std::string& extra_name = "",
                         const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) {
    return "";
  }
  std::string text = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    absl::StrAppend(&text, first ? "" : ",", name, "=\"", EscapeLabelValue(value), "\"");
    first = false;
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&text, first ? "" : ",", extra_name, "=\"", extra_value, "\"");
  }
  text.push_back('}');
  return text;
}

// Seconds with enough digits to be exact for ns values, without trailing zeros.
std::string FormatSeconds(int64_t ns) {
  std::string text = absl::StrFormat("%d.%09d", ns / 1'000'000'000, ns % 1'000'000'000);
  while (text.back() == '0') {
    text.pop_back();
  }
  if (text.back() == '.') {
    text.push_back('0');
  }
  return text;
}

bool ValidMetricName(const std::string& name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  });
}

}  // namespace

Histogram::Histogram(std::vector<int64_t> bounds_ns)
    : bounds_ns_(std::move(bounds_ns)), bucket_counts_(bounds_ns_.size() + 1, 0) {
  UM_CHECK(std::is_sorted(bounds_ns_.begin(), bounds_ns_.end()));
}

void Histogram::ObserveNs(int64_t value_ns) {
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_ns_.begin(), bounds_ns_.end(), value_ns) - bounds_ns_.begin());
  ++bucket_counts_[bucket];
  ++count_;
  sum_ns_ += value_ns;
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> cumulative(bucket_counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < bucket_counts_.size(); ++i) {
    running += bucket_counts_[i];
    cumulative[i] = running;
  }
  return cumulative;
}

MetricsRegistry::Family& MetricsRegistry::FindOrAddFamily(const std::string& name,
                                                          const std::string& help, Type type,
                                                          const MetricLabels& labels) {
  UM_CHECK(ValidMetricName(name));
  for (Family& family : families_) {
    if (family.name == name) {
      UM_CHECK(family.type == type);
      for (const Series& series : family.series) {
        UM_CHECK(series.labels != labels);
      }
      return family;
    }
  }
  families_.push_back(Family{name, help, type, {}});
  return families_.back();
}

Counter& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const MetricLabels& labels) {
  Family& family = FindOrAddFamily(name, help, Type::kCounter, labels);
  family.series.push_back(Series{labels, std::make_unique<Counter>(), nullptr, nullptr});
  return *family.series.back().counter;
}

Gauge& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 const MetricLabels& labels) {
  Family& family = FindOrAddFamily(name, help, Type::kGauge, labels);
  family.series.push_back(Series{labels, nullptr, std::make_unique<Gauge>(), nullptr});
  return *family.series.back().gauge;
}

Histogram& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         const MetricLabels& labels,
                                         const std::vector<int64_t>& bounds_ns) {
  Family& family = FindOrAddFamily(name, help, Type::kHistogram, labels);
  family.series.push_back(Series{labels, nullptr, nullptr, std::make_unique<Histogram>(bounds_ns)});
  return *family.series.back().histogram;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::string text;
  for (const Family& family : families_) {
    const char* type = family.type == Type::kCounter ? "counter"
                       : family.type == Type::kGauge ? "gauge"
                                                     : "histogram";
    absl::StrAppend(&text, "# HELP ", family.name, " ", family.help, "\n# TYPE ", family.name, " ",
                    type, "\n");
    for (const Series& series : family.series) {
      if (series.counter != nullptr) {
        absl::StrAppend(&text, family.name, RenderLabels(series.labels), " ",
                        series.counter->value(), "\n");
      } else if (series.gauge != nullptr) {
        absl::StrAppend(&text, family.name, RenderLabels(series.labels), " ", series.gauge->value(),
                        "\n");
      } else {
        const Histogram& histogram = *series.histogram;
        const std::vector<uint64_t> cumulative = histogram.CumulativeCounts();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          const std::string bound =
              i < histogram.bounds_ns().size() ? FormatSeconds(histogram.bounds_ns()[i]) : "+Inf";
          absl::StrAppend(&text, family.name, "_bucket", RenderLabels(series.labels, "le", bound),
                          " ", cumulative[i], "\n");
        }
        absl::StrAppend(&text, family.name, "_sum", RenderLabels(series.labels), " ",
                        FormatSeconds(histogram.sum_ns()), "\n");
        absl::StrAppend(&text, family.name, "_count", RenderLabels(series.labels), " ",
                        histogram.count(), "\n");
      }
    }
  }
  return text;
}

}  // namespace unimeter
