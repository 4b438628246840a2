// RTCPeerConnection for data channels: ICE (libnice), DTLS 1.2 (OpenSSL),
// SCTP (usrsctp), DCEP, with the W3C names and states.
//
// Threading: every connection runs on a network thread (one per process by
// default) that owns all ICE, DTLS and SCTP state. Every method may be called
// from any thread; calls from other threads are posted to the network thread
// and, where a result is returned, waited for. With dedicated network threads,
// do not call the waiting methods of one connection from the callbacks of a
// connection on another thread (post to your own thread instead); the one
// call made that way all the time, add_ice_candidate, does not wait there. Callbacks run on the
// network thread, never concurrently, and must not block. close() is safe from any thread and from
// inside any callback. Destroying the last reference closes the connection; it is safe
// mid-transfer.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "rtcmesh/configuration.hpp"
#include "rtcmesh/data_channel.hpp"
#include "rtcmesh/result.hpp"
#include "rtcmesh/states.hpp"
#include "rtcmesh/stats.hpp"

namespace rtcmesh {

namespace impl {
struct PeerConnection;
}

// Error codes follow the W3C RTCPeerConnection / RTCDataChannel algorithms
// (include/rtcmesh/result.hpp); where this API differs, the contract says so.
// A parse failure of SDP or of a candidate is SyntaxError here; browsers reject
// those with an RTCError (an OperationError) whose errorDetail is
// "sdp-syntax-error", which is what the code SyntaxError stands for.

// Waits until every closed connection of the process has finished its graceful
// shutdown (queued messages and stream resets sent, SCTP SHUTDOWN, DTLS
// close_notify), or `timeout`. Call it before a program exits so that the
// remote peers see a clean close.
// Errors: TimeoutError when connections were still closing at `timeout`.
[[nodiscard]] Result<void> wait_for_closing_connections(std::chrono::milliseconds timeout);

class PeerConnection {
 public:
  // Generates the DTLS certificate and resolves the ICE servers.
  // Errors: SyntaxError for an ICE server URL that does not parse or a gather
  // address that is not numeric; NotSupportedError for stuns: and turns: with
  // transport=udp; InvalidAccessError for a TURN server without username or
  // credential (W3C); OperationError when an ICE server name does not resolve,
  // the certificate cannot be generated or the ICE agent cannot be created;
  // RangeError for max_message_size below 1024.
  [[nodiscard]] static Result<std::shared_ptr<PeerConnection>> create(const Configuration& config);
  ~PeerConnection();
  PeerConnection(const PeerConnection&) = delete;
  PeerConnection& operator=(const PeerConnection&) = delete;

  // Errors: InvalidStateError when the connection is closed or the signaling
  // state is neither stable nor have-local-offer (W3C allows an offer in any
  // state but closed; we do not renegotiate mid-exchange); OperationError when
  // a requested ICE restart fails.
  [[nodiscard]] Result<SessionDescription> create_offer();
  // Errors: InvalidStateError when the connection is closed or the signaling
  // state is not have-remote-offer (W3C).
  [[nodiscard]] Result<SessionDescription> create_answer();
  // An empty description means "the one just created" (W3C implicit SLD);
  // type "rollback" drops a local offer. Starts ICE gathering; candidates
  // arrive through on_ice_candidate.
  // Errors: InvalidStateError when closed or when the type does not fit the
  // signaling state (W3C); TypeError for an unknown type (WebIDL enum);
  // SyntaxError when the SDP does not parse; InvalidModificationError when the
  // offer's ICE credentials are not the ones we created (W3C: a modified
  // description); InvalidAccessError for an answer whose a=setup is not active
  // or passive; OperationError when ICE gathering cannot start; errors of
  // create_offer/create_answer for an implicit description.
  [[nodiscard]] Result<void> set_local_description(const SessionDescription& description = {});
  // Errors: InvalidStateError when closed or when the type does not fit the
  // signaling state (W3C); TypeError for an unknown type; SyntaxError naming the
  // bad SDP line (a media section without a=fingerprint is one); InvalidAccessError
  // for an answer with a=setup:actpass; OperationError when ICE refuses the
  // credentials or the restart.
  [[nodiscard]] Result<void> set_remote_description(const SessionDescription& description);
  // Empty `candidate.candidate` = end-of-candidates.
  // Errors: InvalidStateError when closed or before a remote description (W3C);
  // SyntaxError for a candidate line that does not parse; OperationError when
  // ICE refuses the candidate (W3C: "could not be successfully added").
  // Called from a callback of a connection that runs on another network thread
  // (dedicated_network_thread), it is applied asynchronously, returns success
  // and a failure is only logged, so that two threads never wait for each other.
  [[nodiscard]] Result<void> add_ice_candidate(const IceCandidate& candidate);
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

  // Errors (W3C createDataChannel): InvalidStateError when closed; TypeError
  // for a label or protocol over 65535 bytes, for both max_retransmits and
  // max_packet_life_time, or for a negotiated channel without an id;
  // OperationError for an id that is in use or beyond the negotiated streams.
  // A channel that finds no free stream id later is closed and reports
  // OperationError through its on_error.
  [[nodiscard]] Result<std::shared_ptr<DataChannel>> create_data_channel(
      const std::string& label, const DataChannelInit& init = {});
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
  // Connection-level errors, always OperationError (W3C RTCError) with the
  // reason: a DTLS failure such as a fingerprint mismatch (the connection state
  // moves to "failed" as well) or ICE failing.
  void on_error(std::function<void(const Error&)> callback);

 private:
  explicit PeerConnection(std::shared_ptr<impl::PeerConnection> impl);

  std::shared_ptr<impl::PeerConnection> impl_;
};

}  // namespace rtcmesh
