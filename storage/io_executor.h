// storage/io_executor.h
//
// IoExecutor runs blocking storage work (fdatasync, LMDB write transactions) off the
// event loop and completes back onto it. The real node implements it with one IO
// thread that completes through an eventfd (node/env/posix); code that uses it
// (the LMDB state store) never creates threads of its own.
#ifndef UNIMETER_STORAGE_IO_EXECUTOR_H_
#define UNIMETER_STORAGE_IO_EXECUTOR_H_

#include "absl/functional/any_invocable.h"

namespace unimeter {

class IoExecutor {
 public:
  virtual ~IoExecutor() = default;

  // Runs `io_work` on the IO thread (jobs run one at a time, in submission order), then
  // `on_loop` on the event loop. Either may be empty. Never runs `on_loop` inline.
  virtual void Submit(absl::AnyInvocable<void()> io_work, absl::AnyInvocable<void()> on_loop) = 0;
};

}  // namespace unimeter

#endif  // UNIMETER_STORAGE_IO_EXECUTOR_H_
