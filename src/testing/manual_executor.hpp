// ManualExecutor: a base::Executor for tests, with virtual time.
//
// Nothing runs by itself: run_until_idle() runs what was posted, advance()
// moves virtual time forward and fires the timers that become due, in order,
// with now() at each timer's due time. A test of timers then takes
// microseconds of real time and no sleeps (a 30 s handshake timeout included).
//
// Libraries that read the wall clock themselves see the virtual time too:
// while a ManualExecutor exists, gettimeofday() (which OpenSSL's DTLS
// retransmission timer and usrsctp's RTT and cookie clocks use) returns the
// real time of the executor's creation plus the virtual time elapsed since.
// The override is in manual_executor.cpp, linked into the test binary only.
// Hence at most one ManualExecutor may exist at a time (checked).
//
// Thread-safety: post() may be called from any thread; everything else on the
// thread that created the executor, which is its "executor thread".
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "base/executor.hpp"

namespace rtcmesh::testing {

class ManualExecutor final : public base::Executor {
 public:
  ManualExecutor();
  ~ManualExecutor() override;
  ManualExecutor(const ManualExecutor&) = delete;
  ManualExecutor& operator=(const ManualExecutor&) = delete;

  void post(Task task) override;
  TimerId post_after(std::chrono::milliseconds delay, Task task) override;
  void cancel(TimerId id) override;
  TimePoint now() const override { return now_; }
  bool in_executor_thread() const override { return std::this_thread::get_id() == thread_; }

  // Runs posted tasks (and those they post) and timers due at now(), until
  // nothing is left to run at the current time. Returns how many ran.
  size_t run_until_idle();
  // Moves virtual time forward by `duration`: each timer due within it fires at
  // its due time (now() == due), in order, with run_until_idle() after each.
  void advance(Clock::duration duration);
  // Runs until `done()` is true, advancing virtual time from timer to timer,
  // for at most `limit` of virtual time. Returns done().
  bool run_until(const std::function<bool()>& done,
                 Clock::duration limit = std::chrono::seconds(60));
  // Virtual time elapsed since construction.
  Clock::duration elapsed() const { return now_ - start_; }
  size_t pending_timers() const { return timers_.size(); }

 private:
  void set_now(TimePoint now);
  bool run_one_posted();
  bool fire_one_due();

  const std::thread::id thread_;
  const TimePoint start_;
  TimePoint now_;
  TimerId next_timer_ = 1;
  mutable std::mutex mutex_;  // guards posted_ only
  std::deque<Task> posted_;
  std::map<std::pair<TimePoint, TimerId>, Task> timers_;  // in firing order
  std::unordered_map<TimerId, TimePoint> due_;            // id -> due time, for cancel()
};

}  // namespace rtcmesh::testing
