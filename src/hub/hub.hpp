// The rtcmesh hub: WebSocket signaling (docs/signaling-protocol.md Part 1), the HTTP
// API, Prometheus metrics and the embedded browser client, on one port.
// Boost stays out of this header (see hub.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prometheus {
class Registry;
}

namespace rtcmesh::hub {

struct HubOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string cert_file;  // TLS when both are set
  std::string key_file;
  std::string token_secret;
  std::vector<std::string> allow_origins;
  std::string turn_secret;
  std::vector<std::string> turn_urls;
  std::vector<std::string> stun_urls;
  int64_t turn_ttl_seconds = 86400;
  size_t max_frame = 65536;
  uint32_t max_messages_per_second = 200;  // 0 = unlimited
  size_t max_peers_per_room = 256;
  size_t max_rooms = 4096;
  size_t max_connections = 60000;
  size_t max_write_queue = 1048576;
  int64_t peer_timeout_ms = 60000;
  int64_t heartbeat_interval_ms = 30000;
  bool no_relay = false;
  std::string web_root;  // empty = the embedded copy
  // Metrics go into this registry when set (the app adds the witness's own
  // metrics to it), else into one of the hub's.
  std::shared_ptr<prometheus::Registry> registry;
  // The hub's audit events (joins, leaves, rejections) for the witness log:
  // event type, room, peer, reason/detail, count. Called on the hub thread; must not block.
  struct AuditEvent {
    std::string_view type;  // "hub_join" | "hub_leave" | "hub_reject"
    std::string_view room, peer, reason;
    bool resumed = false;
    uint64_t count = 1;  // hub_reject: rejections of this reason since the last record
  };
  std::function<void(const AuditEvent&)> on_audit;
  // Printed to stderr after the listening line (node id, witness file).
  std::string startup_note;
  // The hub's node id (its witness log's agent), shown by /api/health.
  std::string node_id;
};

// Checks options that can be checked without touching the network; returns an
// error message, or "" when they are fine.
std::string validate_options(const HubOptions& options);

// Binds, prints the listening line to stderr, serves until SIGINT/SIGTERM, then
// says server-shutdown to every client. Returns the process exit code
// (0 after a signal, 1 when it cannot listen, 2 for bad TLS files).
int run_hub(const HubOptions& options);

}  // namespace rtcmesh::hub
