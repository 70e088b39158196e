// fsync-probe: the disk's physical floor for durable writes. Appends 4 KiB and calls
// fdatasync, N times, in a file under --dir, and prints p50/p90/p99 latency in
// microseconds (text, or JSON with --json). With --preallocated the file is written and
// synced in full first and the probe then overwrites it block by block: fdatasync need not
// commit a new file size, the floor of a log that preallocates or recycles its segments. Benchmarks
// read every synchronous figure as a ratio to this, measured in the same run on the same disk.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "node/base/flags.h"
#include "tools/histogram.h"

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  int64_t count = 500;
  bool json = false;
  bool preallocated = false;
  unimeter::FlagParser flags("fsync-probe",
                             "fsync-probe --dir=DIR [--count=N] [--preallocated] [--json]");
  flags.AddString("dir", &dir, "directory on the disk to measure");
  flags.AddInt("count", &count, "writes", 10, 1'000'000);
  flags.AddBool("json", &json, "print JSON");
  flags.AddBool("preallocated", &preallocated, "overwrite a synced, preallocated file");
  if (!flags.Parse(argc, argv).ok() || flags.help_requested()) {
    std::fprintf(stderr, "%s", flags.Help().c_str());
    return 2;
  }
  const std::string path = dir + "/fsync-probe.tmp";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror("fsync-probe: open");
    return 1;
  }
  std::vector<char> block(4096, 'x');
  if (preallocated) {  // Write the whole file once, make it durable, rewind.
    for (int64_t i = 0; i < count; ++i) {
      if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
        std::perror("fsync-probe: preallocating");
        return 1;
      }
    }
    if (fsync(fd) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
      std::perror("fsync-probe: preallocating");
      return 1;
    }
  }
  std::vector<double> latencies_us;
  for (int64_t i = 0; i < count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
        fdatasync(fd) != 0) {
      std::perror("fsync-probe: write/fdatasync");
      return 1;
    }
    latencies_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  close(fd);
  unlink(path.c_str());
  std::sort(latencies_us.begin(), latencies_us.end());
  auto at = [&](double q) { return unimeter::tools::NearestRankQuantile(latencies_us, q); };
  if (json) {
    std::printf("{\"fdatasync_us_p50\":%.1f,\"fdatasync_us_p90\":%.1f,\"fdatasync_us_p99\":%.1f}\n",
                at(0.5), at(0.9), at(0.99));
  } else {
    std::printf("fdatasync of 4 KiB %s (%lld): p50 %.1f us, p90 %.1f us, p99 %.1f us\n",
                preallocated ? "overwrites of a preallocated file" : "appends",
                static_cast<long long>(count), at(0.5), at(0.9), at(0.99));
  }
  return 0;
}
