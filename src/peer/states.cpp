#include "rtcmesh/states.hpp"

namespace rtcmesh {

const char* to_string(PeerConnectionState state) {
  switch (state) {
    case PeerConnectionState::New:
      return "new";
    case PeerConnectionState::Connecting:
      return "connecting";
    case PeerConnectionState::Connected:
      return "connected";
    case PeerConnectionState::Disconnected:
      return "disconnected";
    case PeerConnectionState::Failed:
      return "failed";
    case PeerConnectionState::Closed:
      return "closed";
  }
  return "?";
}

const char* to_string(IceConnectionState state) {
  switch (state) {
    case IceConnectionState::New:
      return "new";
    case IceConnectionState::Checking:
      return "checking";
    case IceConnectionState::Connected:
      return "connected";
    case IceConnectionState::Completed:
      return "completed";
    case IceConnectionState::Disconnected:
      return "disconnected";
    case IceConnectionState::Failed:
      return "failed";
    case IceConnectionState::Closed:
      return "closed";
  }
  return "?";
}

const char* to_string(IceGatheringState state) {
  switch (state) {
    case IceGatheringState::New:
      return "new";
    case IceGatheringState::Gathering:
      return "gathering";
    case IceGatheringState::Complete:
      return "complete";
  }
  return "?";
}

const char* to_string(SignalingState state) {
  switch (state) {
    case SignalingState::Stable:
      return "stable";
    case SignalingState::HaveLocalOffer:
      return "have-local-offer";
    case SignalingState::HaveRemoteOffer:
      return "have-remote-offer";
    case SignalingState::HaveLocalPranswer:
      return "have-local-pranswer";
    case SignalingState::HaveRemotePranswer:
      return "have-remote-pranswer";
    case SignalingState::Closed:
      return "closed";
  }
  return "?";
}

const char* to_string(DataChannelState state) {
  switch (state) {
    case DataChannelState::Connecting:
      return "connecting";
    case DataChannelState::Open:
      return "open";
    case DataChannelState::Closing:
      return "closing";
    case DataChannelState::Closed:
      return "closed";
  }
  return "?";
}

}  // namespace rtcmesh
