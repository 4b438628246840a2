// rtcmesh hub: the signaling hub (src/hub), and `rtcmesh hub token` to mint access tokens.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"
#include "hub/auth.hpp"
#include "hub/hub.hpp"
#include "hub/message.hpp"
#include "node_flags.hpp"
#include "witness/recorder.hpp"

namespace rtcmesh::app {
namespace {

// HOST:PORT, [V6]:PORT. Returns false on anything else.
bool parse_listen(const std::string& text, hub::HubOptions& o) {
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  const unsigned long value = std::stoul(port);
  if (value > 65535) return false;
  o.host = host;
  o.port = static_cast<uint16_t>(value);
  return true;
}

struct HubArgs {
  hub::HubOptions options;
  std::string listen = "127.0.0.1:8000";
  std::string token_secret;
  std::string token_room;
  std::string token_peer;
  int64_t token_ttl = 3600;
  NodeFlags node;
};

}  // namespace

Runner add_hub_command(CLI::App& app) {
  auto args = std::make_shared<HubArgs>();
  auto& o = args->options;
  auto* cmd =
      app.add_subcommand("hub", "Run the signaling hub (WebSocket + HTTP API + web client)");
  cmd->add_option("--listen", args->listen, "HOST:PORT to listen on (port 0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--cert", o.cert_file, "TLS certificate chain (PEM): serve https and wss");
  cmd->add_option("--key", o.key_file, "TLS private key (PEM)");
  cmd->add_option("--token-secret", o.token_secret,
                  "Require HS256 JWT access tokens signed with this");
  cmd->add_option("--allow-origin", o.allow_origins,
                  "Browser origin allowed to connect (repeatable)");
  cmd->add_option("--turn-secret", o.turn_secret,
                  "coturn static-auth-secret for TURN REST credentials");
  cmd->add_option("--turn-url", o.turn_urls, "TURN server URL for /api/ice-servers (repeatable)");
  cmd->add_option("--stun-url", o.stun_urls, "STUN server URL for /api/ice-servers (repeatable)");
  cmd->add_option("--turn-ttl", o.turn_ttl_seconds, "TURN credential lifetime, seconds")
      ->capture_default_str();
  cmd->add_option("--max-frame", o.max_frame, "Largest WebSocket message, bytes")
      ->capture_default_str();
  cmd->add_option("--max-messages-per-second", o.max_messages_per_second,
                  "Per-connection rate (token bucket, burst 2x); 0 = unlimited")
      ->capture_default_str();
  cmd->add_option("--max-peers-per-room", o.max_peers_per_room, "Peers per room")
      ->capture_default_str();
  cmd->add_option("--max-rooms", o.max_rooms, "Rooms")->capture_default_str();
  cmd->add_option("--max-connections", o.max_connections, "WebSocket connections")
      ->capture_default_str();
  cmd->add_option("--max-write-queue", o.max_write_queue,
                  "Outgoing bytes queued per connection before it is closed as a slow consumer")
      ->capture_default_str();
  cmd->add_option("--peer-timeout", o.peer_timeout_ms, "Close connections silent this long, ms")
      ->capture_default_str();
  cmd->add_option("--heartbeat-interval", o.heartbeat_interval_ms,
                  "Heartbeat interval told to clients, ms")
      ->capture_default_str();
  cmd->add_flag("--no-relay", o.no_relay, "Refuse `relay` messages");
  cmd->add_option("--web-root", o.web_root,
                  "Serve the browser client from DIR instead of the embedded copy");
  add_node_flags(*cmd, args->node, false);

  auto* token =
      cmd->add_subcommand("token", "Print an HS256 access token (JWT) for a room and peer");
  token->add_option("--secret", args->token_secret, "The hub's --token-secret")->required();
  token->add_option("--room", args->token_room, "Room id, or * for any")->required();
  token->add_option("--peer", args->token_peer, "Peer id, or * for any")->required();
  token->add_option("--ttl", args->token_ttl, "Lifetime, seconds")->capture_default_str();

  return [args, token] {
    if (token->parsed()) {
      auto ok_id = [](const std::string& id) { return id == "*" || hub::is_valid_id(id); };
      if (!ok_id(args->token_room) || !ok_id(args->token_peer)) {
        std::fprintf(stderr, "rtcmesh hub token: --room and --peer must be ids or *\n");
        return 2;
      }
      if (args->token_ttl <= 0 || args->token_secret.empty()) {
        std::fprintf(stderr, "rtcmesh hub token: --ttl must be positive and --secret non-empty\n");
        return 2;
      }
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      std::printf("%s\n", hub::sign_token(args->token_secret, args->token_room, args->token_peer,
                                          now + args->token_ttl)
                              .c_str());
      return 0;
    }
    if (!parse_listen(args->listen, args->options)) {
      std::fprintf(stderr, "rtcmesh hub: --listen wants HOST:PORT, got '%s'\n",
                   args->listen.c_str());
      return 2;
    }
    if (auto problem = hub::validate_options(args->options); !problem.empty()) {
      std::fprintf(stderr, "rtcmesh hub: %s\n", problem.c_str());
      return 2;
    }
    auto opened = open_node(args->node, "hub", false);
    if (!opened) return 1;
    args->options.registry = opened->registry;
    observe::Node* node = opened->node.get();
    if (node->recorder()) {
      args->options.on_audit = [node](const hub::HubOptions::AuditEvent& e) {
        node->record_hub_event(e.type, e.room, e.peer, e.reason, e.resumed, e.count);
      };
    }
    args->options.node_id = node->node_id();
    args->options.startup_note = "node " + node->node_id() + ", witness " +
                                 (node->recorder() ? node->recorder()->path() : std::string("off"));
    return hub::run_hub(args->options);
  };
}

}  // namespace rtcmesh::app
