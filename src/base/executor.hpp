// Executor: where a layer's work and timers run, and what time it is.
//
// The transports (DTLS, SCTP) and anything with timers take an Executor& and
// use only it for posting, for timers and for the current time, so that tests
// can drive them with virtual time (testing::ManualExecutor). In production the
// executor is a base::Loop (the network thread, a GLib main context).
//
// Contract for every implementation:
// - Tasks run on the executor's thread, one at a time, in the order posted;
//   post() may be called from any thread.
// - A timer fires no earlier than `delay` after post_after(), measured by now();
//   timers due at the same time fire in the order they were set.
// - cancel() is called on the executor's thread; unknown or fired ids are ignored.
// - now() is a monotonic time; only differences between two now() values mean
//   anything.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace rtcmesh::base {

class Executor {
 public:
  using Task = std::function<void()>;
  using TimerId = uint64_t;  // 0 is never a valid id
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  virtual ~Executor() = default;

  virtual void post(Task task) = 0;
  // Runs `task` on the executor's thread after `delay` unless cancelled first.
  virtual TimerId post_after(std::chrono::milliseconds delay, Task task) = 0;
  virtual void cancel(TimerId id) = 0;
  virtual TimePoint now() const = 0;
  // True on the thread that runs this executor's tasks.
  virtual bool in_executor_thread() const = 0;
};

}  // namespace rtcmesh::base
