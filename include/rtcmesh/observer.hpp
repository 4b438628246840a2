// ConnectionObserver: a tap on one PeerConnection's life, for audit logs and
// metrics (the witness in src/observe is one). Set Configuration::observer
// before create(); the connection then reports what it does, including what the
// application's W3C callbacks do not show (a close() it was asked for, the
// candidates inside a remote description, every message's size).
//
// Calls come on the connection's network thread, one at a time and in order.
// They must be cheap and must not block: hand slow work to another thread (the
// witness recorder only enqueues). An observer must not call back into the
// connection. One observer may watch several connections only if it tells them
// apart itself; the usual pattern is one observer per connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "rtcmesh/states.hpp"
#include "rtcmesh/stats.hpp"

namespace rtcmesh {

// What the connection learned from a description it created or applied.
struct ObservedDescription {
  enum class Kind { OfferCreated, AnswerCreated, OfferReceived, AnswerReceived };
  Kind kind = Kind::OfferCreated;
  std::string ice_ufrag;
  std::string fingerprint;   // "sha-256 AB:CD:..."
  bool ice_restart = false;  // new ICE credentials compared to the previous one
  size_t candidates = 0;     // candidates carried inside the SDP
};

struct ObservedCandidate {
  bool local = true;
  std::string candidate_type;  // host | srflx | prflx | relay
  std::string protocol;        // udp | tcp
  std::string address;
  uint16_t port = 0;
  uint32_t priority = 0;
};

class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;

  virtual void on_description(const ObservedDescription&) {}
  // Local candidates as gathered; remote ones as added (trickled or in the SDP).
  virtual void on_candidate(const ObservedCandidate&) {}
  // Every change of the W3C connectionState, including the final one to
  // "closed" that close() makes without an event.
  virtual void on_connection_state_change(PeerConnectionState /*from*/,
                                          PeerConnectionState /*to*/) {}
  virtual void on_data_channel_open(const std::string& /*label*/, int /*id*/,
                                    const std::string& /*protocol*/) {}
  // With the channel's totals (RTCDataChannelStats) at the moment it closed.
  virtual void on_data_channel_close(const DataChannelStats&) {}
  // One call per message handed to SCTP (sent) or delivered (received): sizes only.
  virtual void on_message(bool /*sent*/, const std::string& /*label*/, size_t /*size*/) {}
  // Every stats_interval() while the connection lives (0 = never), and once
  // when it closes (final = true, before its channels close), from getStats().
  virtual void on_stats(const Stats&, bool /*final*/) {}
  virtual std::chrono::milliseconds stats_interval() const { return std::chrono::milliseconds(0); }
  // Connection-level errors (the ones on_error reports) and refused input
  // (a bad remote description or candidate): kind is a short token.
  virtual void on_error(const std::string& /*kind*/, const std::string& /*message*/) {}
  // Once, when the connection ends: reason is "closed" (close() was called),
  // "failed" or "remote-closed" (the peer shut the association down).
  virtual void on_closed(const std::string& /*reason*/, PeerConnectionState /*final_state*/) {}
};

}  // namespace rtcmesh
