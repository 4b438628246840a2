// RTCPeerConnection for data channels: ICE (libnice), DTLS 1.2 (OpenSSL),
// SCTP (usrsctp), DCEP, with the W3C names and states.
//
// Threading: every connection runs on a network thread (one per process by
// default) that owns all ICE, DTLS and SCTP state. Every method may be called
// from any thread; calls from other threads are posted to the network thread
// and, where a result is returned, waited for. With dedicated network threads,
// do not call the waiting methods of one connection from the callbacks of a
// connection on another thread (post to your own thread instead); the one
// call made that way all the time, add_ice_candidate, does not wait there. Callbacks run on the network
// thread, never concurrently, and must not block. close() is safe from any
// thread and from inside any callback. Destroying the last reference closes the
// connection; it is safe mid-transfer.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "rtcmesh/configuration.hpp"
#include "rtcmesh/data_channel.hpp"
#include "rtcmesh/states.hpp"
#include "rtcmesh/stats.hpp"

namespace rtcmesh {

namespace impl {
struct PeerConnection;
}

// A value or an error message, for calls that can fail on bad input.
template <class T>
struct Expected {
  std::optional<T> value;
  std::string error;
  explicit operator bool() const { return value.has_value(); }
};

// Waits until every closed connection of the process has finished its graceful
// shutdown (queued messages and stream resets sent, SCTP SHUTDOWN, DTLS
// close_notify), or `timeout`. Call it before a program exits so that the
// remote peers see a clean close. Returns false on timeout.
bool wait_for_closing_connections(std::chrono::milliseconds timeout);

class PeerConnection {
 public:
  // Generates the DTLS certificate and resolves the ICE servers. Fails on a bad
  // ICE server URL or a gather address that is not numeric.
  static Expected<std::shared_ptr<PeerConnection>> create(const Configuration& config);
  ~PeerConnection();
  PeerConnection(const PeerConnection&) = delete;
  PeerConnection& operator=(const PeerConnection&) = delete;

  Expected<SessionDescription> create_offer();
  Expected<SessionDescription> create_answer();
  // An empty description means "the one just created" (W3C implicit SLD).
  // Starts ICE gathering; candidates arrive through on_ice_candidate.
  std::string set_local_description(const SessionDescription& description = {});
  // Returns an empty string on success, else an error naming the bad SDP line.
  std::string set_remote_description(const SessionDescription& description);
  // Empty `candidate.candidate` = end-of-candidates. Returns "" or an error.
  // Called from a callback of a connection that runs on another network thread
  // (dedicated_network_thread), it is applied asynchronously and a failure is
  // only logged, so that two threads never wait for each other.
  std::string add_ice_candidate(const IceCandidate& candidate);
  // The current local description including every candidate gathered so far
  // (what a non-trickle peer sends once gathering is complete).
  std::optional<SessionDescription> local_description() const;
  std::optional<SessionDescription> remote_description() const;
  // Next create_offer() restarts ICE (new ufrag/pwd).
  void restart_ice();
  // Receive-side flow control for a consumer that cannot keep up (not in W3C):
  // while paused no channel's on_message runs; incoming data waits in SCTP's
  // receive buffer, then SCTP's advertised window closes and the remote's
  // reliable sends wait (its bufferedAmount grows). Nothing is lost; partially
  // reliable messages may expire at the sender as their rules say. Resuming
  // delivers what was held, in order. Sending is not affected. Callable from
  // any thread, including a callback of this connection; never blocks. On the
  // network thread (in a callback) it takes effect at once: no on_message runs
  // after it returns. From another thread the change is queued to the network
  // thread, so messages being delivered meanwhile may still arrive; the last
  // call wins.
  void pause_receiving();
  void resume_receiving();

  Expected<std::shared_ptr<DataChannel>> create_data_channel(const std::string& label,
                                                             const DataChannelInit& init = {});
  Stats get_stats() const;
  void close();

  PeerConnectionState connection_state() const;
  IceConnectionState ice_connection_state() const;
  IceGatheringState ice_gathering_state() const;
  SignalingState signaling_state() const;

  void on_ice_candidate(std::function<void(const IceCandidate&)> callback);
  void on_connection_state_change(std::function<void(PeerConnectionState)> callback);
  void on_ice_connection_state_change(std::function<void(IceConnectionState)> callback);
  void on_ice_gathering_state_change(std::function<void(IceGatheringState)> callback);
  void on_signaling_state_change(std::function<void(SignalingState)> callback);
  void on_data_channel(std::function<void(std::shared_ptr<DataChannel>)> callback);
  // Connection-level errors (for example a DTLS fingerprint mismatch), with the
  // reason; the connection state moves to "failed" as well.
  void on_error(std::function<void(const std::string&)> callback);

  explicit PeerConnection(std::shared_ptr<impl::PeerConnection> impl);

 private:
  std::shared_ptr<impl::PeerConnection> impl_;
};

}  // namespace rtcmesh
