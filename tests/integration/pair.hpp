// Two PeerConnections in one process, signalled through lambdas (trickle ICE),
// gathering on 127.0.0.1 only. The network path is real UDP over loopback.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "rtcmesh/peer_connection.hpp"

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

inline Configuration loopback_config() {
  Configuration config;
  config.gather_addresses = {"127.0.0.1"};
  return config;
}

struct Pair {
  std::shared_ptr<PeerConnection> offerer;
  std::shared_ptr<PeerConnection> answerer;

  explicit Pair(const Configuration& a = loopback_config(), const Configuration& b = loopback_config()) {
    auto oa = PeerConnection::create(a);
    auto ob = PeerConnection::create(b);
    EXPECT_TRUE(oa) << oa.error;
    EXPECT_TRUE(ob) << ob.error;
    offerer = *oa.value;
    answerer = *ob.value;
  }
  ~Pair() {
    if (offerer) offerer->close();
    if (answerer) answerer->close();
  }

  // Trickle: candidates go to the other side as soon as it has a remote
  // description (earlier ones wait, as a signaling client would queue them).
  struct Trickle {
    std::mutex mutex;
    std::vector<IceCandidate> queued;
    bool ready = false;
    std::weak_ptr<PeerConnection> target;
    void add(const IceCandidate& c) {
      std::unique_lock<std::mutex> lock(mutex);
      if (!ready) {
        queued.push_back(c);
        return;
      }
      lock.unlock();
      if (auto p = target.lock()) {
        EXPECT_EQ(p->add_ice_candidate(c), "");
      }
    }
    void flush() {
      std::vector<IceCandidate> pending;
      {
        std::lock_guard<std::mutex> lock(mutex);
        ready = true;
        pending.swap(queued);
      }
      if (auto p = target.lock()) {
        for (const auto& c : pending) EXPECT_EQ(p->add_ice_candidate(c), "");
      }
    }
  };
  std::shared_ptr<Trickle> to_answerer = std::make_shared<Trickle>();
  std::shared_ptr<Trickle> to_offerer = std::make_shared<Trickle>();

  void wire_candidates() {
    to_answerer->target = answerer;
    to_offerer->target = offerer;
    offerer->on_ice_candidate([t = to_answerer](const IceCandidate& c) { t->add(c); });
    answerer->on_ice_candidate([t = to_offerer](const IceCandidate& c) { t->add(c); });
  }

  // Offer/answer exchange. Returns "" on success.
  std::string negotiate() {
    auto offer = offerer->create_offer();
    if (!offer) return offer.error;
    if (auto e = offerer->set_local_description(*offer.value); !e.empty()) return e;
    if (auto e = answerer->set_remote_description(*offer.value); !e.empty()) return e;
    to_answerer->flush();
    auto answer = answerer->create_answer();
    if (!answer) return answer.error;
    if (auto e = answerer->set_local_description(*answer.value); !e.empty()) return e;
    if (auto e = offerer->set_remote_description(*answer.value); !e.empty()) return e;
    to_offerer->flush();
    return "";
  }
};

}  // namespace rtcmesh::testing
