// node/env/posix/test_util.h
//
// Helpers for the posix Env tests and benchmark: temporary directories, free ports, and
// driving several event loops from one thread.
#ifndef UNIMETER_NODE_ENV_POSIX_TEST_UTIL_H_
#define UNIMETER_NODE_ENV_POSIX_TEST_UTIL_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>

#include "absl/functional/function_ref.h"
#include "node/base/check.h"
#include "node/env/posix/event_loop.h"
#include "node/env/posix/posix_env.h"

namespace unimeter::posix_test {

inline constexpr int64_t kMillisecondNs = 1'000'000;
inline constexpr int64_t kSecondNs = 1'000'000'000;
// Generous: a loaded 2-core machine may stall a test for seconds.
inline constexpr int64_t kPatienceNs = 10 * kSecondNs;

// A fresh directory under $TEST_TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/posix_env_XXXXXX";
    UM_CHECK(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port that was free a moment ago (bind to 0, read it, close).
inline uint16_t PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  UM_CHECK_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  UM_CHECK_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t size = sizeof(address);
  UM_CHECK_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size), 0);
  close(fd);
  return ntohs(address.sin_port);
}

// Drives every env's loop in turn (short waits) until `predicate` or `timeout_ns`.
inline bool RunAllUntil(std::initializer_list<PosixEnv*> envs, absl::FunctionRef<bool()> predicate,
                        int64_t timeout_ns) {
  const int64_t deadline_ns = EventLoop::MonotonicNowNs() + timeout_ns;
  while (!predicate()) {
    if (EventLoop::MonotonicNowNs() >= deadline_ns) {
      return predicate();
    }
    for (PosixEnv* env : envs) {
      if (env != nullptr) {
        env->loop().RunOnce(envs.size() > 1 ? 0 : kMillisecondNs);
      }
    }
    if (envs.size() > 1) {
      usleep(100);  // Several loops in one thread: poll without burning the core.
    }
  }
  return true;
}

}  // namespace unimeter::posix_test

#endif  // UNIMETER_NODE_ENV_POSIX_TEST_UTIL_H_
