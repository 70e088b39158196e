// Goal: the exposition matches Prometheus text format 0.0.4 exactly for every type
// (HELP/TYPE once per family, labelled series, cumulative histogram buckets with the
// documented bounds and +Inf, _sum in seconds and _count), and promtool accepts it.
#include "node/observability/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace unimeter {
namespace {

TEST(MetricsRegistry, RendersEveryTypeExactly) {
  MetricsRegistry registry;
  Counter& async =
      registry.AddCounter("billing_events_ingested_total", "Events accepted.", {{"mode", "async"}});
  Counter& sync =
      registry.AddCounter("billing_events_ingested_total", "Events accepted.", {{"mode", "sync"}});
  Gauge& connections = registry.AddGauge("billing_connections_active", "Open connections.");
  Histogram& latency = registry.AddHistogram("billing_wal_sync_duration_seconds", "fsync latency.",
                                             {}, kLatencyBoundsNs);
  async.Increment(3);
  sync.Increment();
  connections.Set(2);
  latency.ObserveNs(400'000);        // <= 0.0005
  latency.ObserveNs(3'000'000);      // <= 0.005
  latency.ObserveNs(9'000'000'000);  // +Inf only
  const std::string text = registry.RenderPrometheus();
  const std::string expected =
      "# HELP billing_events_ingested_total Events accepted.\n"
      "# TYPE billing_events_ingested_total counter\n"
      "billing_events_ingested_total{mode=\"async\"} 3\n"
      "billing_events_ingested_total{mode=\"sync\"} 1\n"
      "# HELP billing_connections_active Open connections.\n"
      "# TYPE billing_connections_active gauge\n"
      "billing_connections_active 2\n"
      "# HELP billing_wal_sync_duration_seconds fsync latency.\n"
      "# TYPE billing_wal_sync_duration_seconds histogram\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.0005\"} 1\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.001\"} 1\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.005\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.01\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.025\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.05\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.1\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.25\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"0.5\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"1.0\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"2.5\"} 2\n"
      "billing_wal_sync_duration_seconds_bucket{le=\"+Inf\"} 3\n"
      "billing_wal_sync_duration_seconds_sum 9.0034\n"
      "billing_wal_sync_duration_seconds_count 3\n";
  EXPECT_EQ(text, expected);
}

TEST(MetricsRegistry, PromtoolAcceptsTheExposition) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (tools/setup installs it)";
  }
  MetricsRegistry registry;
  registry.AddCounter("billing_events_duplicate_total", "Duplicates dropped.").Increment();
  registry.AddGauge("billing_node_ready", "1 when serving.").Set(1);
  registry
      .AddHistogram("billing_ingest_async_duration_seconds", "Async latency.", {}, kLatencyBoundsNs)
      .ObserveNs(700'000);
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/metrics.txt";
  std::ofstream(path) << registry.RenderPrometheus();
  const std::string command = "promtool check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) {
    output += buffer;
  }
  EXPECT_EQ(pclose(pipe), 0) << output;
}

}  // namespace
}  // namespace unimeter
