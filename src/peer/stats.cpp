#include "rtcmesh/stats.hpp"

#include <nlohmann/json.hpp>

namespace rtcmesh {

std::string Stats::to_json() const {
  using nlohmann::json;
  json report = json::object();
  report["P"] = {{"id", "P"},
                 {"type", "peer-connection"},
                 {"timestamp", timestamp_ms},
                 {"dataChannelsOpened", data_channels_opened},
                 {"dataChannelsClosed", data_channels_closed}};
  json transport_json = {{"id", transport.id},
                         {"type", "transport"},
                         {"timestamp", timestamp_ms},
                         {"bytesSent", transport.bytes_sent},
                         {"bytesReceived", transport.bytes_received},
                         {"dtlsState", transport.dtls_state},
                         {"iceState", transport.ice_state},
                         {"dtlsRole", transport.dtls_role}};
  if (!transport.selected_candidate_pair_id.empty()) {
    transport_json["selectedCandidatePairId"] = transport.selected_candidate_pair_id;
  }
  report[transport.id] = transport_json;
  if (selected_candidate_pair) {
    const auto& p = *selected_candidate_pair;
    auto candidate = [this](const IceCandidateStats& c, const char* type) {
      return json{{"id", c.id},
                  {"type", type},
                  {"timestamp", timestamp_ms},
                  {"transportId", "T01"},
                  {"address", c.address},
                  {"port", c.port},
                  {"protocol", c.protocol},
                  {"candidateType", c.candidate_type},
                  {"priority", c.priority}};
    };
    report[p.local.id] = candidate(p.local, "local-candidate");
    report[p.remote.id] = candidate(p.remote, "remote-candidate");
    json pair = {{"id", p.id},
                 {"type", "candidate-pair"},
                 {"timestamp", timestamp_ms},
                 {"transportId", transport.id},
                 {"localCandidateId", p.local.id},
                 {"remoteCandidateId", p.remote.id},
                 {"state", p.state},
                 {"nominated", p.nominated},
                 {"bytesSent", p.bytes_sent},
                 {"bytesReceived", p.bytes_received},
                 {"packetsSent", p.packets_sent},
                 {"packetsReceived", p.packets_received}};
    if (p.current_round_trip_time) pair["currentRoundTripTime"] = *p.current_round_trip_time;
    report[p.id] = pair;
  }
  for (const auto& d : data_channels) {
    report[d.id] = {{"id", d.id},
                    {"type", "data-channel"},
                    {"timestamp", timestamp_ms},
                    {"label", d.label},
                    {"protocol", d.protocol},
                    {"dataChannelIdentifier", d.data_channel_identifier},
                    {"state", d.state},
                    {"messagesSent", d.messages_sent},
                    {"bytesSent", d.bytes_sent},
                    {"messagesReceived", d.messages_received},
                    {"bytesReceived", d.bytes_received}};
  }
  return report.dump();
}

}  // namespace rtcmesh
