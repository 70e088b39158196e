// Goal: synchronous acknowledgement means durable. A child process ingesting with
// synchronous acknowledgement on real files (tests/crash_ingester.cc) is killed with
// SIGKILL at random moments, at least 50 times; after each restart every acknowledged event
// is counted exactly once and nothing is double counted.
//
// Method: events are numbered; event k has a client timestamp derived from k and value 1,
// so the sum over all accounts counts distinct stored events. Each round restarts the child
// a little before the highest acknowledged event (re-sending acknowledged events, which
// must be deduplicated) and kills it after a seeded random delay. After each restart the
// recovered total must satisfy: acknowledged events <= total <= events ever sent. A last
// run re-sends everything ever sent and must end with total == events ever sent.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "node/base/random.h"

namespace unimeter {
namespace {

struct ChildOutput {
  int64_t total = -1;
  int64_t highest_sent = -1;
  int64_t highest_acked = -1;
};

class Child {
 public:
  Child(const std::string& binary, const std::string& data_dir, int64_t first, int64_t count) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      const std::string data = "--data-dir=" + data_dir;
      const std::string first_flag = "--first=" + std::to_string(first);
      const std::string count_flag = "--count=" + std::to_string(count);
      execl(binary.c_str(), binary.c_str(), data.c_str(), first_flag.c_str(), count_flag.c_str(),
            "--batch=16", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    output_ = fdopen(fds[0], "r");
  }
  ~Child() {
    if (output_ != nullptr) {
      fclose(output_);
    }
  }

  // Reads lines until the child reports its recovered total (or EOF).
  void WaitForTotal(ChildOutput* result) {
    char line[128];
    while (result->total < 0 && fgets(line, sizeof(line), output_) != nullptr) {
      Parse(line, result);
    }
  }

  // Reads lines until EOF (the child exited or was killed).
  void Drain(ChildOutput* result) {
    char line[128];
    while (fgets(line, sizeof(line), output_) != nullptr) {
      Parse(line, result);
    }
  }

  static void Parse(const char* line, ChildOutput* result) {
    {
      long long value = 0;
      if (sscanf(line, "total %lld", &value) == 1) {
        result->total = value;
      } else if (sscanf(line, "sending %lld", &value) == 1) {
        result->highest_sent = value;
      } else if (sscanf(line, "acked %lld", &value) == 1) {
        result->highest_acked = value;
      }
    }
  }

  void KillAfterUs(int64_t delay_us) {
    usleep(static_cast<useconds_t>(delay_us));
    kill(pid_, SIGKILL);
  }

  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    return status;
  }

 private:
  pid_t pid_ = -1;
  FILE* output_ = nullptr;
};

TEST(IngestCrash, SigkillNeverLosesAnAcknowledgedEventNorDoubleCounts) {
  const std::string binary = std::getenv("CRASH_INGESTER");
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string data_dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/crash_data";
  std::filesystem::remove_all(data_dir);
  std::filesystem::create_directories(data_dir);
  Prng prng(20261125);
  int64_t acked = -1;  // Highest acknowledged event number (events are acked in order).
  int64_t sent = -1;   // Highest event number ever handed to the child's ingest.
  int kills = 0;
  for (int round = 0; round < 60; ++round) {
    const int64_t first = std::max<int64_t>(0, acked + 1 - 40);  // Overlap: resend acked ones.
    Child child(binary, data_dir, first, 1'000'000);
    // Wait for recovery, kill after a random delay, then drain the pipe, which holds every
    // line the child printed before it died.
    ChildOutput output;
    child.WaitForTotal(&output);
    child.KillAfterUs(static_cast<int64_t>(prng.UniformRange(1'000, 120'000)));
    child.Drain(&output);
    const int status = child.Wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": the child died on its own (status " << status << ")";
    ++kills;
    ASSERT_GE(output.total, 0) << "round " << round << ": the child did not recover in time";
    // Recovery: nothing acknowledged lost, nothing counted twice.
    EXPECT_GE(output.total, acked + 1) << "round " << round << ": acknowledged events lost";
    EXPECT_LE(output.total, sent + 1) << "round " << round << ": events double counted";
    acked = std::max(acked, output.highest_acked);
    sent = std::max(sent, output.highest_sent);
  }
  EXPECT_GE(kills, 50);
  EXPECT_GT(acked, 1000) << "too little progress to mean anything";
  // Final: resend everything ever sent; each event must end up counted exactly once.
  Child last(binary, data_dir, 0, sent + 1);
  ChildOutput output;
  last.Drain(&output);
  EXPECT_EQ(last.Wait(), 0);
  EXPECT_GE(output.total, acked + 1);
  Child verify(binary, data_dir, 0, 0);
  ChildOutput verified;
  verify.Drain(&verified);
  EXPECT_EQ(verify.Wait(), 0);
  EXPECT_EQ(verified.total, sent + 1) << "after resending all " << sent + 1 << " events";
}

}  // namespace
}  // namespace unimeter
