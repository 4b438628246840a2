// Two PeerConnections in one process, signalled in memory with trickle ICE,
// gathering on 127.0.0.1 only; the network path is real UDP over loopback.
// The one pair of the integration tests (tests/integration/pair.hpp adds the
// gtest checks) and of `rtcmesh bench`. No gtest here.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "rtcmesh/peer_connection.hpp"

namespace rtcmesh::testing {

inline Configuration loopback_config() {
  Configuration config;
  config.gather_addresses = {"127.0.0.1"};
  return config;
}

class PeerPair {
 public:
  std::shared_ptr<PeerConnection> offerer;
  std::shared_ptr<PeerConnection> answerer;
  // The outcome of creating both connections; when it is an error, a
  // connection that could not be created is null.
  Status created;
  // Called (on a network thread) when the other side refuses a trickled
  // candidate; set it before wire_candidates(). Unset: refusals are ignored.
  std::function<void(const Error&)> on_candidate_error;

  explicit PeerPair(const Configuration& a = loopback_config(),
                    const Configuration& b = loopback_config()) {
    auto oa = PeerConnection::create(a);
    auto ob = PeerConnection::create(b);
    if (oa) offerer = oa.value();
    if (ob) answerer = ob.value();
    if (!oa)
      created = oa.error();
    else if (!ob)
      created = ob.error();
  }
  ~PeerPair() {
    if (offerer) offerer->close();
    if (answerer) answerer->close();
  }
  PeerPair(const PeerPair&) = delete;
  PeerPair& operator=(const PeerPair&) = delete;

  // Trickle: candidates go to the other side as soon as it has a remote
  // description (earlier ones wait, as a signaling client would queue them).
  struct Trickle {
    std::mutex mutex;
    std::vector<IceCandidate> queued;
    bool ready = false;
    std::weak_ptr<PeerConnection> target;
    std::function<void(const Error&)> on_error;
    void add(const IceCandidate& c) {
      std::unique_lock<std::mutex> lock(mutex);
      if (!ready) {
        queued.push_back(c);
        return;
      }
      lock.unlock();
      deliver(c);
    }
    void flush() {
      std::vector<IceCandidate> pending;
      {
        std::lock_guard<std::mutex> lock(mutex);
        ready = true;
        pending.swap(queued);
      }
      for (const auto& c : pending) deliver(c);
    }
    void deliver(const IceCandidate& c) {
      auto p = target.lock();
      if (!p) return;
      auto added = p->add_ice_candidate(c);
      if (!added && on_error) on_error(added.error());
    }
  };
  std::shared_ptr<Trickle> to_answerer = std::make_shared<Trickle>();
  std::shared_ptr<Trickle> to_offerer = std::make_shared<Trickle>();

  void wire_candidates() {
    to_answerer->target = answerer;
    to_offerer->target = offerer;
    to_answerer->on_error = on_candidate_error;
    to_offerer->on_error = on_candidate_error;
    offerer->on_ice_candidate([t = to_answerer](const IceCandidate& c) { t->add(c); });
    answerer->on_ice_candidate([t = to_offerer](const IceCandidate& c) { t->add(c); });
  }

  // Offer/answer exchange; the first error of the six steps, if any.
  Status negotiate() {
    auto offer = offerer->create_offer();
    if (!offer) return offer.error();
    if (auto s = offerer->set_local_description(*offer); !s) return s;
    if (auto s = answerer->set_remote_description(*offer); !s) return s;
    to_answerer->flush();
    auto answer = answerer->create_answer();
    if (!answer) return answer.error();
    if (auto s = answerer->set_local_description(*answer); !s) return s;
    if (auto s = offerer->set_remote_description(*answer); !s) return s;
    to_offerer->flush();
    return {};
  }
};

}  // namespace rtcmesh::testing
