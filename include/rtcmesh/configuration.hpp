// Configuration of a PeerConnection (after W3C RTCConfiguration) and the
// description/candidate value types exchanged through signaling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rtcmesh {

class ConnectionObserver;  // rtcmesh/observer.hpp

// RTCIceServer. urls: "stun:host[:port]", "turn:host[:port][?transport=udp|tcp]",
// "turns:host[:port][?transport=tcp]". Host names are resolved when the
// PeerConnection is created.
struct IceServer {
  std::vector<std::string> urls;
  std::string username;
  std::string credential;
};

enum class IceTransportPolicy { All, Relay };

struct Configuration {
  std::vector<IceServer> ice_servers;
  IceTransportPolicy ice_transport_policy = IceTransportPolicy::All;
  // Local UDP/TCP port range for candidates; 0/0 means any.
  uint16_t port_range_begin = 0;
  uint16_t port_range_end = 0;
  // Local addresses to gather host candidates on. Empty means every
  // non-loopback interface. Loopback is opt-in: {"127.0.0.1"} (what tests use).
  std::vector<std::string> gather_addresses;
  // Also gather ICE-TCP (RFC 6544) host candidates.
  bool enable_ice_tcp = false;
  // When controlling (offering), nominate the way RFC 8445 prefers (a second
  // check after the first success) instead of aggressively. Aggressive, the
  // default, connects a round trip sooner; regular picks the best of several
  // working paths.
  bool ice_regular_nomination = false;
  // The a=max-message-size we advertise: the largest message we accept.
  size_t max_message_size = 256 * 1024;
  // By default every connection of the process shares one network thread.
  // True gives this connection a network thread of its own (one more core for
  // its packet processing; the thread ends with the connection).
  bool dedicated_network_thread = false;
  // Told everything the connection does (rtcmesh/observer.hpp): the witness log
  // and metrics attach here. Null = nobody watches, at no cost.
  std::shared_ptr<ConnectionObserver> observer;
};

// RTCSessionDescriptionInit: type is "offer", "answer", "pranswer" or "rollback".
struct SessionDescription {
  std::string type;
  std::string sdp;
};

// RTCIceCandidateInit. An empty `candidate` means end-of-candidates.
struct IceCandidate {
  std::string candidate;  // "candidate:..." (the a= prefix is accepted too)
  std::string sdp_mid = "0";
  int sdp_mline_index = 0;
};

// RTCDataChannelInit.
struct DataChannelInit {
  bool ordered = true;
  std::optional<uint16_t> max_packet_life_time;  // ms
  std::optional<uint16_t> max_retransmits;
  std::string protocol;
  bool negotiated = false;
  std::optional<uint16_t> id;  // required when negotiated
};

}  // namespace rtcmesh
