// Loop: the network thread. It runs a GLib main context, which libnice needs,
// and every ICE, DTLS and SCTP call of the connections bound to it happens on
// this one thread, so nothing below the public API needs a mutex.
//
// Loop is the production Executor. Only ice/ needs its GLib context
// (base/glib_loop.hpp); every other layer sees it as an Executor.
//
// Thread-safety: post(), post_after() and in_loop_thread() may be called from
// any thread; cancel() on the loop thread. Tasks run on the loop thread in the
// order they were posted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "base/executor.hpp"

namespace rtcmesh::base {

class Loop final : public Executor {
 public:
  // The process-wide default loop. Its thread starts on first use and lives
  // as long as the process.
  static std::shared_ptr<Loop> shared();

  Loop();
  // Stops the thread. Safe from any thread, including from a task on this loop
  // (the thread then finishes the current dispatch and releases itself).
  // Tasks still queued are dropped.
  ~Loop() override;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  void post(Task task) override;
  // Runs `task` on the loop thread after `delay` unless cancelled first.
  TimerId post_after(std::chrono::milliseconds delay, Task task) override;
  // Cancels a pending timer. Must be called on the loop thread. Unknown ids are ignored.
  void cancel(TimerId id) override;
  // steady_clock, the clock GLib's timeouts use (CLOCK_MONOTONIC).
  TimePoint now() const override { return Clock::now(); }
  bool in_executor_thread() const override { return in_loop_thread(); }
  // Runs `task` on the loop thread and waits for it; runs it inline when called on the loop.
  void run_sync(const Task& task);
  bool in_loop_thread() const;
  // True when the calling thread is the thread of some Loop (this one or another).
  static bool on_any_loop_thread();

  struct Impl;

 private:
  friend struct GlibLoopAccess;  // base/glib_loop.hpp
  std::shared_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace rtcmesh::base
