// Event types for the wiring of the witness into `rtcmesh connect/peer/hub`
// (issue 4). data fields are integers and strings only (no floats: RTT in µs);
// never message content; ICE addresses through salted_address_hash() when the
// privacy option is on. Peer ids go in data.peer_id (`witness query --peer`).
#pragma once

#include <string_view>

namespace rtcmesh::witness::events {

constexpr std::string_view kSessionInitialized = "session_initialized";
constexpr std::string_view kOfferCreated =
    "webrtc_offer_created";  // peer_id, ice_ufrag, fingerprint
constexpr std::string_view kOfferReceived =
    "webrtc_offer_received";  // peer_id, ice_ufrag, fingerprint
constexpr std::string_view kAnswerCreated =
    "webrtc_answer_created";  // peer_id, ice_ufrag, fingerprint
constexpr std::string_view kAnswerReceived =
    "webrtc_answer_received";  // peer_id, ice_ufrag, fingerprint
constexpr std::string_view kIceCandidate =
    "webrtc_ice_candidate";  // peer_id, direction, candidate_type, protocol, priority, address
constexpr std::string_view kConnectionState = "webrtc_connection_state";  // peer_id, from, to
constexpr std::string_view kDataChannelOpen =
    "webrtc_datachannel_open";  // peer_id, label, id, protocol
constexpr std::string_view kDataChannelClose =
    "webrtc_datachannel_close";  // peer_id, label, id, total_messages
constexpr std::string_view kDataChannelMessageSample =
    "webrtc_datachannel_message_sample";  // peer_id, label, message_count, message_size_bytes,
                                          // sample_rate
constexpr std::string_view kStatsSnapshot = "webrtc_stats_snapshot";  // peer_id, integer stats
constexpr std::string_view kPeerDisconnected =
    "webrtc_peer_disconnected";                        // peer_id, reason, final_state
constexpr std::string_view kError = "webrtc_error";    // peer_id, error_type, error_message
constexpr std::string_view kHubJoin = "hub_join";      // peer_id, room
constexpr std::string_view kHubLeave = "hub_leave";    // peer_id, room, reason
constexpr std::string_view kHubReject = "hub_reject";  // reason, room

}  // namespace rtcmesh::witness::events
