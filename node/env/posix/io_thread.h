// node/env/posix/io_thread.h
//
// IoThread implements IoExecutor (storage/io_executor.h) with one helper thread: jobs run
// one at a time in submission order, and each job's `on_loop` is posted back to the
// EventLoop (never run inline). This is the only thread a real node creates besides the
// loop's own; the loop and the IO thread share nothing but the job queue (a mutex and a
// condition variable) and EventLoop::Post.
//
// Destruction finishes the jobs already submitted (their `io_work` runs, so queued disk
// writes are not silently skipped), then joins the thread. Completions posted after the
// loop stops running are destroyed with the loop, never run.
// REQUIRES: the EventLoop outlives the IoThread.
#ifndef UNIMETER_NODE_ENV_POSIX_IO_THREAD_H_
#define UNIMETER_NODE_ENV_POSIX_IO_THREAD_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "node/env/posix/event_loop.h"
#include "storage/io_executor.h"

namespace unimeter {

class IoThread final : public IoExecutor {
 public:
  explicit IoThread(EventLoop& loop);
  ~IoThread() override;

  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  // Loop thread (or any thread): queues a job. See IoExecutor::Submit.
  void Submit(absl::AnyInvocable<void()> io_work, absl::AnyInvocable<void()> on_loop) override;

  // Jobs whose io_work has finished (any thread; for tests and metrics).
  uint64_t completed_job_count() const;

 private:
  struct Job {
    absl::AnyInvocable<void()> io_work;
    absl::AnyInvocable<void()> on_loop;
  };

  void ThreadMain();

  EventLoop& loop_;
  mutable std::mutex mutex_;
  std::condition_variable job_ready_;
  std::deque<Job> jobs_;              // Guarded by mutex_.
  bool stopping_ = false;             // Guarded by mutex_.
  uint64_t completed_job_count_ = 0;  // Guarded by mutex_.
  std::thread thread_;                // Last: starts after the fields above exist.
};

}  // namespace unimeter

#endif  // UNIMETER_NODE_ENV_POSIX_IO_THREAD_H_
