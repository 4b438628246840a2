#include "testing/manual_executor.hpp"

#include <sys/time.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace rtcmesh::testing {
namespace {

// Microseconds since the epoch that gettimeofday() reports, or -1 for "the
// real clock" (no ManualExecutor alive).
std::atomic<int64_t> g_virtual_wall_us{-1};
std::atomic<bool> g_executor_alive{false};

int64_t real_wall_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

// Written by the executor's thread, read by gettimeofday() on any thread.
std::atomic<int64_t> g_wall_at_start_us{0};

}  // namespace

ManualExecutor::ManualExecutor()
    : thread_(std::this_thread::get_id()),
      // Any fixed point will do; not zero, so that "time_point{}" stays special.
      start_(TimePoint(std::chrono::hours(1))),
      now_(start_) {
  if (g_executor_alive.exchange(true)) {
    std::fprintf(stderr, "ManualExecutor: only one may exist at a time\n");
    std::abort();
  }
  g_wall_at_start_us.store(real_wall_us());
  g_virtual_wall_us.store(g_wall_at_start_us.load());
}

ManualExecutor::~ManualExecutor() {
  // Tasks still queued are dropped, like base::Loop does.
  g_virtual_wall_us.store(-1);
  g_executor_alive.store(false);
}

void ManualExecutor::post(Task task) {
  std::lock_guard<std::mutex> lock(mutex_);
  posted_.push_back(std::move(task));
}

ManualExecutor::TimerId ManualExecutor::post_after(std::chrono::milliseconds delay, Task task) {
  TimerId id = next_timer_++;
  TimePoint due = now_ + std::max(delay, std::chrono::milliseconds(0));
  timers_.emplace(std::make_pair(due, id), std::move(task));
  due_.emplace(id, due);
  return id;
}

void ManualExecutor::cancel(TimerId id) {
  auto it = due_.find(id);
  if (it == due_.end()) return;
  timers_.erase(std::make_pair(it->second, id));
  due_.erase(it);
}

void ManualExecutor::set_now(TimePoint now) {
  now_ = now;
  g_virtual_wall_us.store(
      g_wall_at_start_us.load() +
      std::chrono::duration_cast<std::chrono::microseconds>(now_ - start_).count());
}

bool ManualExecutor::run_one_posted() {
  Task task;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (posted_.empty()) return false;
    task = std::move(posted_.front());
    posted_.pop_front();
  }
  task();
  return true;
}

bool ManualExecutor::fire_one_due() {
  if (timers_.empty() || timers_.begin()->first.first > now_) return false;
  auto node = timers_.extract(timers_.begin());
  due_.erase(node.key().second);
  node.mapped()();
  return true;
}

size_t ManualExecutor::run_until_idle() {
  size_t ran = 0;
  for (;;) {
    if (run_one_posted() || fire_one_due()) {
      ++ran;
      continue;
    }
    return ran;
  }
}

void ManualExecutor::advance(Clock::duration duration) {
  const TimePoint target = now_ + duration;
  run_until_idle();
  while (!timers_.empty() && timers_.begin()->first.first <= target) {
    set_now(std::max(now_, timers_.begin()->first.first));
    run_until_idle();
  }
  set_now(target);
  run_until_idle();
}

bool ManualExecutor::run_until(const std::function<bool()>& done, Clock::duration limit) {
  const TimePoint deadline = now_ + limit;
  for (;;) {
    run_until_idle();
    if (done()) return true;
    if (timers_.empty() || timers_.begin()->first.first > deadline) {
      set_now(std::max(now_, deadline));
      run_until_idle();
      return done();
    }
    set_now(std::max(now_, timers_.begin()->first.first));
  }
}

}  // namespace rtcmesh::testing

// The wall clock of the test process follows the live ManualExecutor (see the
// header). This definition in the executable takes precedence over glibc's for
// the shared libraries (libssl, libusrsctp) that call gettimeofday().
extern "C" int gettimeofday(struct timeval* __restrict tv, void* __restrict /*tz*/) noexcept {
  int64_t us = rtcmesh::testing::g_virtual_wall_us.load();
  if (us < 0) us = rtcmesh::testing::real_wall_us();
  tv->tv_sec = static_cast<time_t>(us / 1'000'000);
  tv->tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return 0;
}
