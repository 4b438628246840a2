// `rtcmesh peer`: join a room on a hub and keep a full mesh of data channels
// with its other peers (docs/signaling-protocol.md). stdin lines become chat,
// /send streams files, --json prints one event object per line.
//
// This file is options, printing and stdin commands. The hub connection wired
// to the mesh is room::Member (src/room), the checking and storing of peers'
// checkpoints observe::CheckpointKeeper (src/observe). Printing goes through
// one mutex: events arrive on the network, signaling and keeper threads.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>

#include "commands.hpp"
#include "console/line_reader.hpp"
#include "node_flags.hpp"
#include "observe/checkpoint_keeper.hpp"
#include "room/member.hpp"
#include "rtcmesh/peer_connection.hpp"
#include "witness/recorder.hpp"

namespace rtcmesh::app {
namespace {

using json = nlohmann::json;

struct PeerOptions {
  std::string hub = "ws://127.0.0.1:8000/signaling";
  std::string room = "demo";
  std::string id;
  std::string name;
  std::string token;
  bool json_output = false;
  std::string download_dir = "./rtcmesh-downloads";
  bool allow_hub_relay = false;
  int reconnect_interval = 1000;
  bool loopback = false;
  std::vector<std::string> ice_servers;
  std::string ice_username, ice_credential;
  bool relay_only = false;
  bool quiet = false;
  bool exit_on_eof = false;
  std::string ca_file;
  // Part 2.4 timings (ms); tests shorten them.
  int restart_after = 10000;
  int restart_timeout = 15000;
  int relay_after = 20000;
  NodeFlags node;
};

console::LineReader* g_stdin = nullptr;
std::atomic<bool> g_interrupted{false};

void on_signal(int) {
  g_interrupted = true;
  if (g_stdin) g_stdin->wake();
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  return it->is_string() ? it->get<std::string>() : dump(*it);
}
uint64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// Renders mesh events: JSON lines, or human text (chat on stdout, the rest on stderr).
class Printer {
 public:
  explicit Printer(const PeerOptions& options) : options_(options) {}

  void event(const json& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (options_.json_output) {
      auto line = dump(e);
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
      return;
    }
    human(e);
  }
  void diag(const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    end_bar();
    std::fprintf(stderr, "rtcmesh: %s\n", text.c_str());
    std::fflush(stderr);
  }

 private:
  struct Bar {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  };
  void end_bar() {
    if (bar_open_) std::fputc('\n', stderr);
    bar_open_ = false;
  }
  void err(const std::string& text, bool always = false) {
    if (options_.quiet && !always) return;
    end_bar();
    std::fprintf(stderr, "rtcmesh: %s\n", text.c_str());
    std::fflush(stderr);
  }
  void out(const std::string& text) {
    end_bar();
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  void progress(const json& e) {
    auto id = str(e, "id");
    auto size = num(e, "size");
    auto bytes = num(e, "bytes");
    auto& bar = bars_[id];
    double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - bar.start).count();
    double rate = secs > 0.05 ? bytes / secs : 0;  // bytes/s
    double pct = size ? 100.0 * static_cast<double>(bytes) / static_cast<double>(size) : 100.0;
    int filled = static_cast<int>(pct / 5);
    std::string graph(static_cast<size_t>(filled), '#');
    graph.resize(20, '.');
    char eta[32] = "--";
    if (rate > 0 && bytes < size) {
      std::snprintf(eta, sizeof eta, "%.0fs", static_cast<double>(size - bytes) / rate);
    } else if (bytes >= size) {
      std::snprintf(eta, sizeof eta, "done");
    }
    bool send = str(e, "direction") == "send";
    std::fprintf(stderr, "\r%s %s %s %s [%s] %5.1f%% %7.2f MB/s ETA %s ",
                 send ? "sending" : "receiving", str(e, "name").c_str(), send ? "to" : "from",
                 str(e, "peer").c_str(), graph.c_str(), pct, rate / 1e6, eta);
    std::fflush(stderr);
    bar_open_ = true;
    if (bytes >= size) {
      end_bar();
      bars_.erase(id);
    }
  }
  void human(const json& e) {
    auto type = str(e, "event");
    if (type == "chat") {
      out("<" + str(e, "from") + "> " + (e.value("relayed", false) ? "[relayed] " : "") +
          str(e, "text"));
    } else if (type == "joined") {
      std::string peers;
      for (const auto& p : e["peers"]) peers += (peers.empty() ? "" : ", ") + p.get<std::string>();
      err("joined room " + str(e, "room") + " as " + str(e, "peer") +
              (e.value("resumed", false) ? " (resumed)" : "") +
              "; peers: " + (peers.empty() ? "none" : peers),
          true);
    } else if (type == "hub") {
      err("hub " + str(e, "state"));
    } else if (type == "peer-joined") {
      err(str(e, "peer") + " joined");
    } else if (type == "peer-left") {
      err(str(e, "peer") + " left (" + str(e, "reason") + ")");
    } else if (type == "connection") {
      err("connection to " + str(e, "peer") + ": " + str(e, "state"));
    } else if (type == "channel-open") {
      err("channel to " + str(e, "peer") + " open", true);
    } else if (type == "channel-closed") {
      err("channel to " + str(e, "peer") + " closed", true);
    } else if (type == "file-progress") {
      if (!options_.quiet) progress(e);
    } else if (type == "file-received") {
      if (e.value("ok", false)) {
        err("received " + str(e, "name") + " from " + str(e, "from") + " -> " + str(e, "path") +
                " (" + str(e, "size") + " bytes, sha256 " + str(e, "sha256") + ")",
            true);
      }
    } else if (type == "file-sent") {
      if (e.value("ok", false)) {
        err("sent " + str(e, "id") + " to " + str(e, "to") + " (" + str(e, "size") +
                " bytes, sha256 " + str(e, "sha256") + ", verified by the receiver)",
            true);
      }
    } else if (type == "peers") {
      if (e["peers"].empty()) {
        out("no peers");
        return;
      }
      char line[256];
      std::snprintf(line, sizeof line, "%-24s %-13s %-8s %-13s %s", "PEER", "STATE", "CHANNEL",
                    "PAIR", "RTT");
      out(line);
      for (const auto& p : e["peers"]) {
        std::string rtt = p["rtt_ms"].is_number()
                              ? std::to_string(p["rtt_ms"].get<double>()).substr(0, 6) + " ms"
                              : "-";
        std::string channel = str(p, "channel") + (p.value("relayed", false) ? " (relay)" : "");
        std::snprintf(line, sizeof line, "%-24s %-13s %-8s %-13s %s", str(p, "peer").c_str(),
                      str(p, "state").c_str(), channel.c_str(),
                      str(p, "pair").empty() ? "-" : str(p, "pair").c_str(), rtt.c_str());
        out(line);
      }
    } else if (type == "error") {
      err("error: " + str(e, "message"), true);
    } else if (type == "witness-checkpoint") {
      if (e.value("ok", false)) {
        err("kept " + str(e, "peer") + "'s witness checkpoint (size " + str(e, "size") + ", " +
            str(e, "note") + ")");
      } else {
        err("witness checkpoint from " + str(e, "peer") + " refused: " + str(e, "error"), true);
      }
    }
  }

  const PeerOptions& options_;
  std::mutex mutex_;
  std::map<std::string, Bar> bars_;
  bool bar_open_ = false;
};

int run_peer(const PeerOptions& o) {
  auto url = signaling::parse_hub_url(o.hub);
  if (!url) {
    std::fprintf(stderr, "rtcmesh peer: --hub: %s\n", url.error().message.c_str());
    return 2;
  }
  if (!o.id.empty() && !mesh::valid_id(o.id)) {
    std::fprintf(stderr, "rtcmesh peer: --id '%s' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}\n",
                 o.id.c_str());
    return 2;
  }
  if (!mesh::valid_id(o.room)) {
    std::fprintf(stderr, "rtcmesh peer: --room '%s' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}\n",
                 o.room.c_str());
    return 2;
  }
  auto opened = open_node(o.node, "peer");
  if (!opened) return 1;
  observe::Node& node = *opened->node;
  // The node id is the peer id (self-verifying: it is derived from the key that
  // signs our witness checkpoints); --id overrides it.
  std::string id = o.id.empty() ? node.node_id() : o.id;
  if (!mesh::valid_id(id)) {
    std::fprintf(stderr, "rtcmesh peer: --id '%s' must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}\n",
                 id.c_str());
    return 2;
  }

  mesh::MeshOptions mo;
  mo.room = o.room;
  mo.peer = id;
  mo.allow_hub_relay = o.allow_hub_relay;
  mo.download_dir = o.download_dir;
  mo.disconnected_grace = std::chrono::milliseconds(o.restart_after);
  mo.restart_timeout = std::chrono::milliseconds(o.restart_timeout);
  mo.relay_after = std::chrono::milliseconds(o.relay_after);
  if (o.loopback || url->loopback_host()) mo.rtc.gather_addresses = {"127.0.0.1"};
  for (const auto& s : o.ice_servers)
    mo.rtc.ice_servers.push_back({{s}, o.ice_username, o.ice_credential});
  if (o.relay_only) mo.rtc.ice_transport_policy = IceTransportPolicy::Relay;
  mo.ice_servers_from_hub = o.ice_servers.empty();
  mo.observe = [&node](const std::string& peer, const std::string& session) {
    return node.observe_connection(peer, session);
  };
  {
    // Bad --ice-server URLs are argument errors, found before joining.
    auto probe = PeerConnection::create(mo.rtc);
    if (!probe) {
      std::fprintf(stderr, "rtcmesh peer: %s\n", to_string(probe.error()).c_str());
      return 2;
    }
    probe.value()->close();
  }

  Printer printer(o);
  observe::CheckpointKeeper keeper(node, [&printer](const json& e) { printer.event(e); });
  if (node.recorder()) {
    // A fresh checkpoint is asked for each time; the peer gets the latest one
    // signed (at most a ping interval old), and newer ones as they come.
    mo.local_checkpoint = [&node] {
      node.recorder()->request_checkpoint();
      return node.latest_checkpoint();
    };
    mo.on_peer_checkpoint = [&keeper](const std::string& peer, const json& cp) {
      keeper.add(peer, cp);
    };
  }

  signaling::ClientOptions co;
  co.url = o.hub;
  co.token = o.token;
  co.reconnect_interval = std::chrono::milliseconds(o.reconnect_interval);
  co.ca_file = o.ca_file;
  co.metadata = room::native_metadata(o.name);
  room::MemberCallbacks cb;
  cb.on_event = [&printer](const json& e) { printer.event(e); };
  cb.on_diagnostic = [&](const std::string& text) {
    if (!o.quiet && !o.json_output) printer.diag(text);
  };
  cb.on_fatal = [](const std::string&) {
    if (g_stdin) g_stdin->wake();
  };
  room::Member member(mo, co, cb);
  mesh::Mesh& mesh = member.mesh();
  if (!o.json_output && !o.quiet) {
    printer.diag("peer " + id + " joining room " + o.room + " at " + o.hub);
    printer.diag("witness " + (node.recorder() ? node.recorder()->path() : std::string("off")) +
                 (opened->metrics_url.empty() ? "" : ", metrics " + opened->metrics_url));
  }
  printer.event({{"event", "node"},
                 {"node_id", node.node_id()},
                 {"data_dir", node.data_dir()},
                 {"witness", node.recorder() ? json(node.recorder()->path()) : json()},
                 {"metrics", opened->metrics_url.empty() ? json() : json(opened->metrics_url)}});
  member.join();

  auto has_fatal = [&] { return member.fatal().has_value(); };
  std::string line;
  bool eof = false;
  while (!g_interrupted && !has_fatal()) {
    if (eof) {
      member.wait_fatal(std::chrono::milliseconds(200));
      continue;
    }
    auto st = g_stdin->next(line);
    if (st == console::LineReader::Status::Eof) {
      if (o.exit_on_eof) break;
      eof = true;
      continue;
    }
    if (st != console::LineReader::Status::Line || line.empty()) continue;
    if (line[0] != '/') {
      mesh.chat(line);
      continue;
    }
    if (line == "/quit") break;
    if (line == "/peers") {
      mesh.list_peers();
    } else if (line.rfind("/send", 0) == 0 && (line.size() == 5 || line[5] == ' ')) {
      auto rest = line.substr(std::min<size_t>(line.size(), 6));
      auto space = rest.find(' ');
      if (rest.empty() || space == std::string::npos || space + 1 >= rest.size()) {
        printer.event({{"event", "error"}, {"message", "usage: /send PEER FILE"}});
        continue;
      }
      mesh.send_file(rest.substr(0, space), rest.substr(space + 1));
    } else if (line == "/help") {
      printer.diag("commands: a plain line chats to every peer; /send PEER FILE; /peers; /quit");
    } else {
      printer.event(
          {{"event", "error"},
           {"message", "unknown command '" + line.substr(0, line.find(' ')) +
                           "' (try /help; start a chat line with a space to send a '/')"}});
    }
  }
  member.leave();
  // On timeout the remaining shutdowns are cut short by the exit; nothing to report.
  (void)wait_for_closing_connections(std::chrono::seconds(2));
  node.close();  // the final checkpoint
  return has_fatal() ? 1 : 0;
}

}  // namespace

Runner add_peer_command(CLI::App& app) {
  auto o = std::make_shared<PeerOptions>();
  auto* cmd = app.add_subcommand(
      "peer", "Join a room on an rtcmesh hub and mesh with its peers: chat, files");
  cmd->add_option("--hub", o->hub, "Hub signaling URL (ws:// or wss://)")->capture_default_str();
  cmd->add_option("--room", o->room, "Room to join")->capture_default_str();
  cmd->add_option("--id", o->id,
                  "Peer id (default: this node's id, node-<16 hex>, see `rtcmesh id`)");
  cmd->add_option("--name", o->name, "Display name (sent as metadata)");
  cmd->add_option("--token", o->token, "Access token (JWT) when the hub requires one");
  cmd->add_flag("--json", o->json_output, "One JSON event per line on stdout");
  cmd->add_option("--download-dir", o->download_dir, "Where received files go")
      ->capture_default_str();
  cmd->add_flag("--allow-hub-relay", o->allow_hub_relay,
                "Send chat through the hub to peers without a direct channel");
  cmd->add_option("--reconnect-interval", o->reconnect_interval, "First hub reconnect delay (ms)")
      ->check(CLI::Range(10, 600000))
      ->capture_default_str();
  cmd->add_flag("--loopback", o->loopback,
                "Gather 127.0.0.1 candidates (on by itself for a loopback hub)");
  cmd->add_option("--ice-server", o->ice_servers,
                  "STUN/TURN URL instead of the hub's /api/ice-servers; repeatable");
  cmd->add_option("--ice-username", o->ice_username, "Username for --ice-server TURN URLs");
  cmd->add_option("--ice-credential", o->ice_credential, "Credential for --ice-server TURN URLs");
  cmd->add_flag("--relay-only", o->relay_only, "ICE transport policy 'relay' (TURN only)");
  cmd->add_flag("--quiet", o->quiet, "Fewer diagnostics on stderr");
  cmd->add_flag("--exit-on-eof", o->exit_on_eof, "Quit at the end of stdin");
  cmd->add_option("--ca-file", o->ca_file, "Extra CA certificate (PEM) to trust for wss://");
  add_node_flags(*cmd, o->node, true);
  // Protocol timings (docs/signaling-protocol.md 2.4), for tests and unusual networks.
  const char* advanced = "Advanced (protocol timings, ms)";
  cmd->add_option("--restart-after", o->restart_after,
                  "ICE-restart a connection disconnected this long (impolite side)")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str()
      ->group(advanced);
  cmd->add_option("--restart-timeout", o->restart_timeout,
                  "Replace a restarted connection not connected after this long by a new session")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str()
      ->group(advanced);
  cmd->add_option(
         "--relay-after", o->relay_after,
         "Allow hub relay to a peer without an open channel after this long (--allow-hub-relay)")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str()
      ->group(advanced);
  return [o] {
    console::LineReader input;
    g_stdin = &input;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    int code = run_peer(*o);
    g_stdin = nullptr;
    return code;
  };
}

}  // namespace rtcmesh::app
