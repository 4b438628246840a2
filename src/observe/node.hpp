// Node: what `rtcmesh connect`, `peer` and `hub` share about being a node: the
// identity in the data directory, the witness log it records into by default,
// the metrics, and the checkpoints its peers handed over (docs/witness-format.md,
// "Peer checkpoints").
//
//   <data-dir>/identity.key               Ed25519 key (0600)
//   <data-dir>/witness.log                the default log (--witness PATH elsewhere)
//   <data-dir>/peers/<node-id>.checkpoint.json   latest checkpoint of each peer
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.hpp"
#include "observe/connection_witness.hpp"

namespace prometheus {
class Registry;
}
namespace rtcmesh::identity {
class Identity;
}
namespace rtcmesh::witness {
class Env;
}

namespace rtcmesh::observe {

class WitnessMetrics;

struct NodeOptions {
  std::string data_dir;      // "" = identity::default_data_dir()
  std::string witness_path;  // "" = <data_dir>/witness.log
  bool no_witness = false;
  WitnessPolicy policy;
  std::string role;                     // "peer" | "hub" | "connect": in node_started
  bool webrtc_metrics = true;           // the hub has no connections of its own
  witness::Env* witness_env = nullptr;  // the log's file system (tests); null = POSIX
};

class Node {
 public:
  // Loads (or creates) the identity and opens the witness log. With a registry,
  // the witness and WebRTC metrics are registered on it.
  static Result<std::unique_ptr<Node>> open(
      const NodeOptions& options, std::shared_ptr<prometheus::Registry> registry = nullptr);
  ~Node();  // close()

  const identity::Identity& identity() const { return *identity_; }
  const std::string& node_id() const;
  const std::string& data_dir() const { return data_dir_; }
  // Null with --no-witness.
  const std::shared_ptr<witness::Recorder>& recorder() const { return recorder_; }
  const std::shared_ptr<RtcMetrics>& rtc_metrics() const { return rtc_metrics_; }

  // An observer for one new connection (Configuration::observer); null when
  // there is neither a log nor metrics.
  std::shared_ptr<ConnectionObserver> observe_connection(const std::string& peer_id,
                                                         const std::string& session);
  // Records an event of the node's own (hub joins, ...); false if not accepted.
  bool record(std::string event_type, nlohmann::json data);
  // One of the hub's audit events (hub::HubOptions::on_audit) as a witness
  // record: hub_join (peer_id, room, resumed), hub_leave (peer_id, room,
  // reason), hub_reject (room, reason, count). Empty fields are left out.
  bool record_hub_event(std::string_view type, std::string_view room, std::string_view peer,
                        std::string_view reason, bool resumed, uint64_t count);

  // The latest signed checkpoint of our log (export JSON), null before one.
  nlohmann::json latest_checkpoint() const;
  // A checkpoint a peer sent: checked (signature, origin = node id of its key),
  // recorded as witness_peer_checkpoint and kept in peers/ when it is newer
  // than the one held. Returns a short note ("kept", "older than held: ..."),
  // or an error when the checkpoint is not genuine.
  Result<std::string> keep_peer_checkpoint(const std::string& peer_id,
                                           const nlohmann::json& checkpoint);
  std::string peer_checkpoint_path(const std::string& origin) const;

  // Writes the final checkpoint and syncs. Idempotent.
  void close();

 private:
  Node() = default;
  std::shared_ptr<const identity::Identity> identity_;
  std::string data_dir_;
  NodeOptions options_;
  std::shared_ptr<witness::Recorder> recorder_;
  std::shared_ptr<WitnessMetrics> witness_metrics_;
  std::shared_ptr<RtcMetrics> rtc_metrics_;
  std::mutex peers_mutex_;
};

}  // namespace rtcmesh::observe
