// The integration tests' pair: src/testing/peer_pair.hpp with gtest checks
// (creation must succeed, a refused candidate fails the test), plus a Waiter.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "testing/peer_pair.hpp"
#include "testing/result_matchers.hpp"

namespace rtcmesh::testing {

// Waits for a predicate that callbacks on the network thread make true.
class Waiter {
 public:
  template <class F>
  bool wait(F&& done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, std::forward<F>(done));
  }
  // Notifies under the lock: the waiting test may return and destroy the
  // Waiter as soon as it sees the change.
  template <class F>
  void update(F&& change) {
    std::lock_guard<std::mutex> lock(mutex_);
    change();
    cv_.notify_all();
  }
  std::mutex& mutex() { return mutex_; }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

struct Pair : PeerPair {
  explicit Pair(const Configuration& a = loopback_config(), const Configuration& b = loopback_config())
      : PeerPair(a, b) {
    EXPECT_OK(created);
    on_candidate_error = [](const Error& e) { ADD_FAILURE() << "candidate refused: " << e; };
  }
};

}  // namespace rtcmesh::testing
