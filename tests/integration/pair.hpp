// The integration tests' pair: src/testing/peer_pair.hpp with gtest checks
// (creation must succeed, a refused candidate fails the test).
#pragma once

#include <gtest/gtest.h>

#include "testing/peer_pair.hpp"
#include "testing/result_matchers.hpp"
#include "testing/waiter.hpp"

namespace rtcmesh::testing {

struct Pair : PeerPair {
  explicit Pair(const Configuration& a = loopback_config(),
                const Configuration& b = loopback_config())
      : PeerPair(a, b) {
    EXPECT_OK(created);
    on_candidate_error = [](const Error& e) { ADD_FAILURE() << "candidate refused: " << e; };
  }
};

}  // namespace rtcmesh::testing
