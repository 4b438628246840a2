// Waits for a predicate that callbacks on another thread (a network thread)
// make true: the tests' and the benchmark's one way to wait for an event.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

namespace rtcmesh::testing {

class Waiter {
 public:
  template <class F>
  bool wait(F&& done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, std::forward<F>(done));
  }
  // Notifies under the lock: the waiting side may return and destroy the
  // Waiter as soon as it sees the change.
  template <class F>
  void update(F&& change) {
    std::lock_guard<std::mutex> lock(mutex_);
    change();
    cv_.notify_all();
  }
  void notify() {
    update([] {});
  }
  std::mutex& mutex() { return mutex_; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace rtcmesh::testing
