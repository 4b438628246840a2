// The client side of the hub protocol (docs/signaling-protocol.md Part 1): a
// WebSocket (ws:// or wss://) to the hub that joins a room, keeps the resume
// secret across reconnects, sends heartbeats, reconnects with backoff, and
// fetches /api/ice-servers before each join.
//
// Threading: the client runs on an Asio thread of its own. Callbacks run on
// that thread, one at a time, and must not block; send() and stop() may be
// called from any thread. Boost.Beast stays inside the .cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace rtcmesh::signaling {

struct HubUrl {
  bool tls = false;
  std::string host;    // without brackets for IPv6
  std::string port;    // always set (80/443 by default)
  std::string target;  // path and query, at least "/"
  // "http(s)://host:port" for the hub's HTTP API on the same port.
  std::string http_origin() const;
  bool loopback_host() const;  // 127.0.0.0/8, ::1 or "localhost"
};

// Accepts ws:// and wss:// URLs (and http(s):// as their synonyms).
Result<HubUrl> parse_hub_url(std::string_view url);

// Backoff before reconnect attempt `attempt` (0-based): interval * 2^attempt,
// capped at `max`, scaled by a random factor in [0.75, 1.25] (`jitter01` in [0,1]).
std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds interval, int attempt,
                                          std::chrono::milliseconds max, double jitter01);

enum class HubState { Connected, Disconnected, Reconnecting };
const char* to_string(HubState state);

struct ClientOptions {
  std::string url = "ws://127.0.0.1:8000/signaling";
  std::string room = "demo";
  std::string peer;
  nlohmann::json metadata = nlohmann::json::object();
  std::string token;
  std::chrono::milliseconds reconnect_interval{1000};
  std::chrono::milliseconds max_reconnect_interval{30000};
  size_t max_frame = 64 * 1024;  // received frames larger than this close the socket
  bool fetch_ice_servers = true;
  std::string ca_file;  // extra CA for wss:// (PEM); system CAs are trusted too
  bool verify_tls = true;
};

struct ClientCallbacks {
  std::function<void(HubState)> on_state;
  // Every message from the hub, including welcome and errors.
  std::function<void(const nlohmann::json&)> on_message;
  // The body of /api/ice-servers, fetched before every join.
  std::function<void(const nlohmann::json&)> on_ice_servers;
  // Diagnostics (a failed connect, a refused join, a malformed frame).
  std::function<void(const std::string&)> on_error;
  // The hub refused the join for good (unauthorized, invalid id): the client stops.
  std::function<void(const std::string&)> on_fatal;
};

class Client {
 public:
  Client(ClientOptions options, ClientCallbacks callbacks);
  ~Client();  // stop()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();
  // Sends one message once joined; dropped (logged) while the hub is away,
  // since the mesh re-offers after the next welcome anyway.
  void send(const nlohmann::json& message);
  // Sends leave, closes the socket and joins the thread (at most ~2 s).
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace rtcmesh::signaling
