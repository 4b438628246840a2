// W3C state enums. to_string() returns the W3C name ("have-local-offer", ...).
#pragma once

namespace rtcmesh {

enum class PeerConnectionState { New, Connecting, Connected, Disconnected, Failed, Closed };
enum class IceConnectionState { New, Checking, Connected, Completed, Disconnected, Failed, Closed };
enum class IceGatheringState { New, Gathering, Complete };
enum class SignalingState {
  Stable,
  HaveLocalOffer,
  HaveRemoteOffer,
  HaveLocalPranswer,
  HaveRemotePranswer,
  Closed
};
enum class DataChannelState { Connecting, Open, Closing, Closed };

const char* to_string(PeerConnectionState state);
const char* to_string(IceConnectionState state);
const char* to_string(IceGatheringState state);
const char* to_string(SignalingState state);
const char* to_string(DataChannelState state);

}  // namespace rtcmesh
