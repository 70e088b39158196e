#include "node/env/posix/io_thread.h"

#include <utility>

#include "node/base/check.h"

namespace unimeter {

IoThread::IoThread(EventLoop& loop) : loop_(loop), thread_([this] { ThreadMain(); }) {}

IoThread::~IoThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    UM_CHECK(!stopping_);
    stopping_ = true;
  }
  job_ready_.notify_one();
  thread_.join();
  UM_CHECK(jobs_.empty());
}

void IoThread::Submit(absl::AnyInvocable<void()> io_work, absl::AnyInvocable<void()> on_loop) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    UM_CHECK(!stopping_);
    jobs_.push_back(Job{std::move(io_work), std::move(on_loop)});
  }
  job_ready_.notify_one();
}

uint64_t IoThread::completed_job_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return completed_job_count_;
}

void IoThread::ThreadMain() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      job_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) {
        UM_CHECK(stopping_);
        return;  // Stop only once every submitted job has run.
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (job.io_work) {
      job.io_work();
    }
    // Destroy the io_work closure here, on this thread, before completing on the loop.
    job.io_work = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++completed_job_count_;
    }
    if (job.on_loop) {
      loop_.Post(std::move(job.on_loop));
    }
  }
}

}  // namespace unimeter
