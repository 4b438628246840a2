// ConnectionWitness: the ConnectionObserver that writes one connection's life
// into the node's witness log (docs/witness-format.md, "Connection events") and
// keeps the WebRTC metrics. Either sink may be absent (--no-witness, no
// metrics). It only enqueues records (Recorder::record never blocks), so it is
// safe on the network thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "rtcmesh/observer.hpp"

namespace rtcmesh::witness {
class Recorder;
}

namespace rtcmesh::observe {

class RtcMetrics;

struct WitnessPolicy {
  // Record 1 message in N per connection and direction (the 1st, N+1th, ...);
  // 0 records none.
  uint32_t message_sample_every = 10;
  // ... and at most this many samples a second per connection (0 = no cap), so
  // a bulk transfer of small messages cannot flood the log; message_count keeps
  // counting, so the totals stay visible.
  uint32_t max_samples_per_second = 20;
  std::chrono::milliseconds stats_interval{10000};
  // Record ICE candidate addresses as salted hashes (witness::salted_address_hash)
  // instead of in the clear. The salt stays out of the log.
  bool hash_addresses = false;
  std::string address_salt;
};

class ConnectionWitness : public ConnectionObserver {
 public:
  // peer_id: who is at the other end, as the application knows it (room peer id,
  // or "" when unknown); session: the mesh session id or "".
  ConnectionWitness(std::shared_ptr<witness::Recorder> recorder,
                    std::shared_ptr<RtcMetrics> metrics, const WitnessPolicy& policy,
                    std::string peer_id, std::string session);
  ~ConnectionWitness() override;

  void on_description(const ObservedDescription&) override;
  void on_candidate(const ObservedCandidate&) override;
  void on_connection_state_change(PeerConnectionState from, PeerConnectionState to) override;
  void on_data_channel_open(const std::string& label, int id, const std::string& protocol) override;
  void on_data_channel_close(const DataChannelStats&) override;
  void on_message(bool sent, const std::string& label, size_t size) override;
  void on_stats(const Stats&, bool final) override;
  std::chrono::milliseconds stats_interval() const override { return policy_.stats_interval; }
  void on_error(const std::string& kind, const std::string& message) override;
  void on_closed(const std::string& reason, PeerConnectionState final_state) override;

 private:
  void emit(std::string_view type, nlohmann::json data);
  std::shared_ptr<witness::Recorder> recorder_;
  std::shared_ptr<RtcMetrics> metrics_;
  const WitnessPolicy policy_;
  const std::string peer_id_;
  const std::string session_;
  uint64_t sent_ = 0, received_ = 0;
  uint64_t unsampled_ = 0;  // due samples skipped by the cap since the last one
  double sample_tokens_ = 0;
  std::chrono::steady_clock::time_point tokens_at_{};
  std::set<int> open_channels_;
  bool closed_ = false;
};

}  // namespace rtcmesh::observe
