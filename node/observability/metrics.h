// node/observability/metrics.h
//
// A node's Prometheus metrics: counters, gauges and histograms registered once at start-up
// (families keep registration order, so the exposition is stable), updated on the event
// loop without locks or allocation, rendered in text exposition format 0.0.4.
//
//   MetricsRegistry registry;
//   Counter& ingested = registry.AddCounter("billing_events_ingested_total",
//                                           "Events accepted.", {{"mode", "sync"}});
//   Histogram& latency = registry.AddHistogram("billing_ingest_sync_duration_seconds",
//                                              "INGEST_SYNC latency.", {}, kLatencyBoundsNs);
//   ingested.Increment();  latency.ObserveNs(420'000);
//   std::string text = registry.RenderPrometheus();
//
// Metrics are per-node observations, never replicated state. Event-loop only.
#ifndef UNIMETER_NODE_OBSERVABILITY_METRICS_H_
#define UNIMETER_NODE_OBSERVABILITY_METRICS_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace unimeter {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// The histogram bounds the product documents (seconds 0.0005 .. 2.5, then +Inf), in ns.
inline const std::vector<int64_t> kLatencyBoundsNs = {
    500'000,     1'000'000,   5'000'000,   10'000'000,    25'000'000,   50'000'000,
    100'000'000, 250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000};

class Counter {
 public:
  void Increment(uint64_t amount = 1) { value_ += amount; }
  uint64_t value() const { return value_; }

 private:
  uint64_t value_ = 0;
};

class Gauge {
 public:
  void Set(int64_t value) { value_ = value; }
  void Add(int64_t delta) { value_ += delta; }
  int64_t value() const { return value_; }

 private:
  int64_t value_ = 0;
};

class Histogram {
 public:
  // REQUIRES: bounds ascending.
  explicit Histogram(std::vector<int64_t> bounds_ns);
  void ObserveNs(int64_t value_ns);
  uint64_t count() const { return count_; }
  int64_t sum_ns() const { return sum_ns_; }
  const std::vector<int64_t>& bounds_ns() const { return bounds_ns_; }
  // Cumulative count of observations <= bounds_ns()[i]; the last entry is +Inf.
  std::vector<uint64_t> CumulativeCounts() const;

 private:
  std::vector<int64_t> bounds_ns_;
  std::vector<uint64_t> bucket_counts_;  // Per bucket (not cumulative), +Inf last.
  uint64_t count_ = 0;
  int64_t sum_ns_ = 0;
};

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers one series. The same name with different labels joins the same family;
  // REQUIRES: a family keeps one type and help text, and (name, labels) is new.
  // The returned reference lives as long as the registry.
  Counter& AddCounter(const std::string& name, const std::string& help,
                      const MetricLabels& labels = {});
  Gauge& AddGauge(const std::string& name, const std::string& help,
                  const MetricLabels& labels = {});
  Histogram& AddHistogram(const std::string& name, const std::string& help,
                          const MetricLabels& labels, const std::vector<int64_t>& bounds_ns);

  // Text exposition format 0.0.4: HELP and TYPE once per family, then its series.
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<Series> series;
  };
  Family& FindOrAddFamily(const std::string& name, const std::string& help, Type type,
                          const MetricLabels& labels);

  std::deque<Family> families_;
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_OBSERVABILITY_METRICS_H_
