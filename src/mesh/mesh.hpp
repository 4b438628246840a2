// A room's full mesh (docs/signaling-protocol.md Parts 2 and 3): one
// PeerConnection per other peer, perfect negotiation with sessions, early
// candidate queues, ICE restart, hub relay fallback, and the `rtcmesh` channel
// protocol (hello, chat, ping, files).
//
// The mesh does not own the hub connection: the application feeds it hub
// messages (on_hub_message) and hands it a function that sends to the hub, so
// the unit tests can wire several meshes to an in-process fake hub.
//
// Threading: every bit of mesh state is owned by the rtcmesh network thread
// (base::Loop::shared(), the thread that runs PeerConnection callbacks). Public
// methods post to it; PeerConnection/DataChannel callbacks post their work too,
// so mesh code never runs re-entrantly inside a close(). Events and hub sends
// are emitted on that thread and must not block.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/id.hpp"
#include "rtcmesh/configuration.hpp"
#include "rtcmesh/observer.hpp"

namespace rtcmesh::mesh {

struct MeshOptions {
  std::string room = "demo";
  std::string peer;
  // Base configuration of every connection (gather addresses, policy, servers).
  Configuration rtc;
  // Replace rtc.ice_servers with what the hub's /api/ice-servers returns.
  bool ice_servers_from_hub = true;
  bool allow_hub_relay = false;
  std::string download_dir = "rtcmesh-downloads";
  // Timings of Part 2; tests shorten them.
  std::chrono::milliseconds disconnected_grace{10000};  // disconnected this long -> restart
  std::chrono::milliseconds restart_timeout{15000};     // restart not connected -> new session
  std::chrono::milliseconds relay_after{20000};         // no channel this long -> relay allowed
  std::chrono::milliseconds ping_interval{5000};
  std::chrono::milliseconds candidate_ttl{30000};
  size_t max_early_candidates = 64;

  // Witness and metrics (src/observe): an observer for each new connection.
  std::function<std::shared_ptr<ConnectionObserver>(const std::string& peer,
                                                    const std::string& session)>
      observe;
  // Checkpoint exchange (Part 3 `witness-checkpoint`): our latest signed
  // checkpoint (null when we have none), sent when the channel opens and again
  // whenever it has grown; and what to do with the one a peer sends.
  std::function<nlohmann::json()> local_checkpoint;
  std::function<void(const std::string& peer, const nlohmann::json& checkpoint)> on_peer_checkpoint;
};

// The `peers` snapshot; also what the "peers" event lists.
struct PeerInfo {
  std::string peer;
  std::string session;
  std::string state;  // W3C connectionState, "none" without a connection
  bool channel_open = false;
  bool in_room = false;
  std::string pair;  // "host/host", "" before a pair is selected
  std::optional<double> rtt_ms;
  bool relayed = false;  // chat to this peer currently goes through the hub
};

class Mesh {
 public:
  using SendToHub = std::function<void(const nlohmann::json&)>;
  // One event object as the CLI's --json prints it ({"event":...}).
  using OnEvent = std::function<void(const nlohmann::json&)>;

  Mesh(MeshOptions options, SendToHub send, OnEvent on_event);
  ~Mesh();  // close()
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // Hub input, from any thread.
  void on_hub_message(const nlohmann::json& message);
  void on_hub_state(const std::string& state);  // "connected" | "disconnected" | "reconnecting"
  void on_ice_servers(const nlohmann::json& body);

  // Commands, from any thread. Failures are reported as {"event":"error"}.
  void chat(const std::string& text);
  void send_file(const std::string& peer, const std::string& path);
  void list_peers();  // emits {"event":"peers",...}

  // Synchronous snapshot (waits for the network thread; not from a callback).
  std::vector<PeerInfo> peers();
  // Closes every connection and stops; no event is emitted after it returns.
  void close();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Part 3 helpers, exposed for tests and the fuzzer.
// The file name a receiver uses for an offered name: no directories, no
// control characters, never "", "." or "..".
std::string safe_file_name(const std::string& offered);
// `name` in `dir` if free, else "stem-1.ext", "stem-2.ext", ...
std::string unique_path(const std::string& dir, const std::string& name);
// A random string of `length` id-alphabet characters.
std::string random_id(size_t length);
// The protocol id rule (base/id.hpp).
inline bool valid_id(std::string_view id) {
  return base::is_valid_id(id);
}

}  // namespace rtcmesh::mesh
