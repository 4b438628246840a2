// room::Member: one peer's membership in a room, i.e. the hub connection
// (signaling::Client, Part 1 of docs/signaling-protocol.md) wired to the mesh
// (mesh::Mesh, Parts 2 and 3). The mesh takes hub messages in and hands hub
// messages out without knowing the socket, and the client knows nothing of
// WebRTC: this is the one place that links the two, so that neither layer
// depends on the other and `rtcmesh peer` is only options, printing and stdin.
//
// Threading: hub callbacks arrive on the client's Asio thread and are posted
// into the mesh (its network thread); mesh hub messages go to client.send(),
// which may be called from any thread. on_event runs on either thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "mesh/mesh.hpp"
#include "signaling/signaling_client.hpp"

namespace rtcmesh::room {

struct MemberCallbacks {
  // Mesh events, and {"event":"error","message":...} when the hub refuses the
  // join for good.
  mesh::Mesh::OnEvent on_event;
  // Hub client diagnostics (a failed connect, a malformed frame).
  std::function<void(const std::string&)> on_diagnostic;
  // The hub refused the join for good (after on_event's error): wake whoever waits.
  std::function<void(const std::string&)> on_fatal;
};

// The join metadata of a native peer: kind, agent, capabilities, and the
// display name when there is one.
nlohmann::json native_metadata(const std::string& name);

// The hub client options for a mesh: room, peer id and whether to fetch
// /api/ice-servers come from the mesh, so the two cannot disagree.
signaling::ClientOptions client_options_for(const mesh::MeshOptions& mesh,
                                            signaling::ClientOptions hub);

class Member {
 public:
  // `hub` gives the URL, token, timings and metadata; its room, peer and
  // fetch_ice_servers are taken from `mesh` (client_options_for).
  Member(mesh::MeshOptions mesh, signaling::ClientOptions hub, MemberCallbacks callbacks);
  ~Member();  // leave()
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // Connects to the hub and joins (reconnecting as needed).
  void join();
  // Leaves the hub and closes every connection; no event after it returns. Idempotent.
  void leave();

  mesh::Mesh& mesh() { return *mesh_; }
  // Why the hub refused the join for good, once it did.
  std::optional<std::string> fatal() const;
  // Waits up to `timeout` for a fatal refusal; true when there is one.
  bool wait_fatal(std::chrono::milliseconds timeout) const;

 private:
  void set_fatal(const std::string& text);

  MemberCallbacks callbacks_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::optional<std::string> fatal_;  // guarded by mutex_
  // Declared in this order: the client (which calls into the mesh) is stopped
  // and destroyed before the mesh.
  std::unique_ptr<mesh::Mesh> mesh_;
  std::unique_ptr<signaling::Client> client_;
  bool left_ = false;
};

}  // namespace rtcmesh::room
