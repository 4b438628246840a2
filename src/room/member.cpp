#include "room/member.hpp"

#include "rtcmesh/version.hpp"

namespace rtcmesh::room {

nlohmann::json native_metadata(const std::string& name) {
  nlohmann::json m = {
      {"kind", "native"}, {"agent", rtcmesh::kAgent}, {"capabilities", {"chat", "file", "ping"}}};
  if (!name.empty()) m["name"] = name;
  return m;
}

signaling::ClientOptions client_options_for(const mesh::MeshOptions& mesh,
                                            signaling::ClientOptions hub) {
  hub.room = mesh.room;
  hub.peer = mesh.peer;
  hub.fetch_ice_servers = mesh.ice_servers_from_hub;
  return hub;
}

Member::Member(mesh::MeshOptions mesh_options, signaling::ClientOptions hub,
               MemberCallbacks callbacks)
    : callbacks_(std::move(callbacks)) {
  auto client_options = client_options_for(mesh_options, std::move(hub));
  // The mesh first, so the client's callbacks always find it. The mesh sends to
  // the hub only in answer to hub input or commands, all after join(), so it
  // always finds the client.
  mesh_ = std::make_unique<mesh::Mesh>(
      std::move(mesh_options), [this](const nlohmann::json& m) { client_->send(m); },
      [this](const nlohmann::json& e) {
        if (callbacks_.on_event) callbacks_.on_event(e);
      });
  signaling::ClientCallbacks cb;
  cb.on_state = [this](signaling::HubState s) { mesh_->on_hub_state(signaling::to_string(s)); };
  cb.on_message = [this](const nlohmann::json& m) { mesh_->on_hub_message(m); };
  cb.on_ice_servers = [this](const nlohmann::json& body) { mesh_->on_ice_servers(body); };
  cb.on_error = [this](const std::string& text) {
    if (callbacks_.on_diagnostic) callbacks_.on_diagnostic(text);
  };
  cb.on_fatal = [this](const std::string& text) { set_fatal(text); };
  client_ = std::make_unique<signaling::Client>(std::move(client_options), std::move(cb));
}

Member::~Member() {
  leave();
}

void Member::join() {
  client_->start();
}

void Member::leave() {
  if (left_) return;
  left_ = true;
  client_->stop();  // no hub callback after this
  mesh_->close();   // no mesh event after this
}

void Member::set_fatal(const std::string& text) {
  if (callbacks_.on_event) callbacks_.on_event({{"event", "error"}, {"message", text}});
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fatal_ = text;
  }
  cv_.notify_all();
  if (callbacks_.on_fatal) callbacks_.on_fatal(text);
}

std::optional<std::string> Member::fatal() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return fatal_;
}

bool Member::wait_fatal(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return fatal_.has_value(); });
}

}  // namespace rtcmesh::room
