// getStats() snapshot with W3C webrtc-stats member names (RTCDataChannelStats,
// RTCIceCandidatePairStats, RTCIceCandidateStats, RTCTransportStats,
// RTCPeerConnectionStats). to_json() renders them as the browser's report would:
// an object keyed by stats id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rtcmesh {

struct DataChannelStats {  // type "data-channel"
  std::string id;
  std::string label;
  std::string protocol;
  int data_channel_identifier = -1;  // SCTP stream id, -1 before assignment
  std::string state;                 // "connecting" | "open" | "closing" | "closed"
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_received = 0;
};

struct IceCandidateStats {  // type "local-candidate" / "remote-candidate"
  std::string id;
  std::string address;
  uint16_t port = 0;
  std::string protocol;        // "udp" | "tcp"
  std::string candidate_type;  // "host" | "srflx" | "prflx" | "relay"
  uint32_t priority = 0;
};

struct IceCandidatePairStats {  // type "candidate-pair"
  std::string id;
  IceCandidateStats local;
  IceCandidateStats remote;
  std::string state = "succeeded";
  bool nominated = true;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t packets_sent = 0;
  uint64_t packets_received = 0;
  // Seconds, as in the W3C dictionary; from the SCTP association's smoothed RTT.
  std::optional<double> current_round_trip_time;
};

struct TransportStats {  // type "transport"
  std::string id = "T01";
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::string dtls_state;  // "new" | "connecting" | "connected" | "closed" | "failed"
  std::string ice_state;
  std::string dtls_role;  // "client" | "server" | "unknown"
  std::string selected_candidate_pair_id;
};

struct Stats {
  double timestamp_ms = 0;            // milliseconds since the Unix epoch
  uint32_t data_channels_opened = 0;  // RTCPeerConnectionStats
  uint32_t data_channels_closed = 0;
  TransportStats transport;
  std::optional<IceCandidatePairStats> selected_candidate_pair;
  std::vector<DataChannelStats> data_channels;

  std::string to_json() const;
};

}  // namespace rtcmesh
