#include "mesh/mesh.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "base/log.hpp"
#include "base/loop.hpp"
#include "base/result.hpp"
#include "identity/crypto.hpp"
#include "rtcmesh/peer_connection.hpp"
#include "rtcmesh/version.hpp"

namespace rtcmesh::mesh {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kHighWater = 1024 * 1024;
constexpr size_t kLowWater = 256 * 1024;
constexpr size_t kMaxEarlySessions = 8;
constexpr size_t kMaxPreOfferBytes = 4 * 1024 * 1024;
constexpr size_t kMaxIncomingPerPeer = 32;
constexpr auto kProgressEvery = std::chrono::milliseconds(250);

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ufrag_of(const std::string& sdp) {
  auto p = sdp.find("a=ice-ufrag:");
  if (p == std::string::npos) return {};
  p += 12;
  auto e = sdp.find_first_of("\r\n", p);
  return sdp.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

// Members of untrusted JSON, read without exceptions.
std::string get_str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
bool get_bool(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
// Never throws on invalid UTF-8 (a stdin line, a truncated name).
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset();
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

bool live(PeerConnectionState s) {
  return s != PeerConnectionState::Failed && s != PeerConnectionState::Closed;
}

struct QueuedCandidate {
  IceCandidate candidate;
  Clock::time_point at;
};

struct Link {
  uint64_t serial = 0;
  std::string peer;
  std::string session;
  std::shared_ptr<PeerConnection> pc;
  std::shared_ptr<DataChannel> channel;  // the `rtcmesh` channel
  bool channel_open = false;
  bool offerer = false;
  bool remote_set = false;
  PeerConnectionState state = PeerConnectionState::New;
  Clock::time_point created = Clock::now();
  base::Loop::TimerId grace_timer = 0;
  base::Loop::TimerId restart_timer = 0;
  bool restarting = false;
  bool ever_connected = false;
  std::string ufrag;
  std::string ping_nonce;
  Clock::time_point ping_sent;
  std::optional<double> app_rtt_ms;
  uint64_t checkpoint_sent = 0;             // size of the last checkpoint we sent on this link
  Clock::time_point checkpoint_received{};  // when the last one from the peer was taken
};

struct Outgoing {
  std::string id, peer, path, name;
  uint64_t serial = 0;  // of the link it runs on
  uint64_t size = 0, sent = 0;
  FilePtr file;
  std::unique_ptr<crypto::Sha256> sha = std::make_unique<crypto::Sha256>();
  std::string hex;
  std::shared_ptr<DataChannel> channel;
  bool eof = false;
  Clock::time_point last_progress{};
};

struct Incoming {
  std::string id, peer, name, path;
  bool offered = false;
  uint64_t size = 0, got = 0;
  Fd file;
  std::unique_ptr<crypto::Sha256> sha = std::make_unique<crypto::Sha256>();
  std::shared_ptr<DataChannel> channel;
  std::deque<std::vector<uint8_t>> pre_offer;  // chunks that overtook the offer
  size_t pre_offer_bytes = 0;
  Clock::time_point last_progress{};
};

}  // namespace

std::string random_id(size_t length) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(alphabet) - 2);
  std::string out;
  for (size_t i = 0; i < length; ++i) out.push_back(alphabet[pick(rng)]);
  return out;
}

std::string safe_file_name(const std::string& offered) {
  auto slash = offered.find_last_of("/\\");
  std::string base = slash == std::string::npos ? offered : offered.substr(slash + 1);
  std::string out;
  for (unsigned char c : base) {
    if (c < 0x20 || c == 0x7f) continue;
    out.push_back(static_cast<char>(c));
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '.')) out.pop_back();
  while (!out.empty() && out.front() == '.') out.erase(0, 1);  // no hidden or ".." names
  if (out.size() > 200) out = out.substr(out.size() - 200);
  if (out.empty()) out = "file";
  return out;
}

std::string unique_path(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path candidate = fs::path(dir) / name;
  std::error_code ec;
  if (!fs::exists(candidate, ec)) return candidate.string();
  auto dot = name.rfind('.');
  std::string stem = dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
  std::string ext = dot == std::string::npos || dot == 0 ? "" : name.substr(dot);
  for (int i = 1;; ++i) {
    candidate = fs::path(dir) / (stem + "-" + std::to_string(i) + ext);
    if (!fs::exists(candidate, ec)) return candidate.string();
  }
}

struct Mesh::Impl : std::enable_shared_from_this<Impl> {
  MeshOptions options;
  SendToHub send_hub;
  OnEvent emit_event;
  std::shared_ptr<base::Loop> loop = base::Loop::shared();

  // Everything below is touched on the loop thread only.
  bool closed = false;
  bool joined = false;
  uint64_t next_serial = 1;
  std::map<std::string, Link> links;
  std::map<std::string, json> room;  // the other peers the hub says are in the room
  std::map<std::string, std::map<std::string, std::deque<QueuedCandidate>>> early;
  std::map<std::string, std::deque<std::string>> dead_sessions;
  std::map<std::string, Outgoing> outgoing;  // by transfer id
  std::map<std::string, Incoming> incoming;  // by peer + "/" + id
  base::Loop::TimerId ping_timer = 0;

  Impl(MeshOptions o, SendToHub s, OnEvent e)
      : options(std::move(o)), send_hub(std::move(s)), emit_event(std::move(e)) {}

  // Runs `fn` on the loop unless the mesh is closed by then.
  template <class F>
  void post(F fn) {
    std::weak_ptr<Impl> weak = weak_from_this();
    loop->post([weak, fn = std::move(fn)]() mutable {
      if (auto self = weak.lock(); self && !self->closed) fn(*self);
    });
  }
  template <class F>
  base::Loop::TimerId after(std::chrono::milliseconds delay, F fn) {
    std::weak_ptr<Impl> weak = weak_from_this();
    return loop->post_after(delay, [weak, fn = std::move(fn)]() mutable {
      if (auto self = weak.lock(); self && !self->closed) fn(*self);
    });
  }

  void emit(json event) {
    if (!closed && emit_event) emit_event(event);
  }
  void error(const std::string& message) { emit({{"event", "error"}, {"message", message}}); }
  bool impolite_towards(const std::string& other) const { return options.peer < other; }
  Link* link_of(const std::string& peer, uint64_t serial) {
    auto it = links.find(peer);
    return it != links.end() && it->second.serial == serial ? &it->second : nullptr;
  }
  void send_to_hub(json message) {
    if (send_hub) send_hub(message);
  }

  void start();
  void shutdown();
  // hub
  void hub_message(const json& m);
  void hub_state(const std::string& state);
  void ice_servers(const json& body);
  void on_welcome(const json& m);
  void on_offer(const std::string& from, const std::string& session, const std::string& sdp);
  void on_answer(const std::string& from, const std::string& session, const std::string& sdp);
  void on_candidate(const std::string& from, const std::string& session, const json& c);
  // connections
  Result<std::shared_ptr<PeerConnection>> make_pc(const std::string& peer, uint64_t serial,
                                                  const std::string& session);
  void send_checkpoint(const std::string& peer, Link& l);
  void start_offer(const std::string& peer);
  void send_description(Link& l, const SessionDescription& d);
  void flush_early(Link& l);
  void drop_link(const std::string& peer, const std::string& why);
  void on_pc_state(const std::string& peer, uint64_t serial, PeerConnectionState s);
  void on_trouble(const std::string& peer, uint64_t serial);
  void attach_control(const std::shared_ptr<DataChannel>& ch, const std::string& peer,
                      uint64_t serial);
  void attach_incoming_file(const std::shared_ptr<DataChannel>& ch, const std::string& peer,
                            uint64_t serial, const std::string& id);
  // application
  void app_message(const std::string& from, const json& m, bool relayed);
  bool send_app(const std::string& peer, const json& m, bool* relayed = nullptr);
  bool relay_allowed(const std::string& peer) const;
  void do_chat(const std::string& text);
  void do_send_file(const std::string& peer, const std::string& path);
  void pump(const std::string& id);
  void finish_outgoing(const std::string& id, bool ok, const std::string& why);
  void on_file_offer(const std::string& from, const json& m);
  void file_data(const std::string& key, const uint8_t* data, size_t size);
  void file_text(const std::string& key, const std::string& text);
  bool open_incoming(Incoming& in);
  void finish_incoming(const std::string& key, bool ok, const std::string& why, bool reply);
  void fail_transfers_of(const std::string& peer);
  void ping(const std::string& peer, Link& l);
  void ping_all();
  std::vector<PeerInfo> snapshot();
};

// ---------------------------------------------------------------- lifecycle

void Mesh::Impl::start() {
  ping_timer = after(options.ping_interval, [](Impl& self) { self.ping_all(); });
}

void Mesh::Impl::shutdown() {
  if (closed) return;
  closed = true;
  if (ping_timer) loop->cancel(ping_timer);
  for (auto& [peer, l] : links) {
    if (l.grace_timer) loop->cancel(l.grace_timer);
    if (l.restart_timer) loop->cancel(l.restart_timer);
    if (l.channel) l.channel->close();
    if (l.pc) l.pc->close();
  }
  for (auto& [id, t] : outgoing) {
    if (t.channel) t.channel->close();
  }
  for (auto& [key, in] : incoming) {
    if (in.channel) in.channel->close();
    if (in.file.fd >= 0) {
      in.file.reset();
      ::unlink(in.path.c_str());  // a partial file is never left behind
    }
  }
  outgoing.clear();
  incoming.clear();
  links.clear();
}

// ---------------------------------------------------------------- hub input

void Mesh::Impl::hub_state(const std::string& state) {
  if (state != "connected") joined = false;
  emit({{"event", "hub"}, {"state", state}});
}

void Mesh::Impl::ice_servers(const json& body) {
  if (!options.ice_servers_from_hub) return;
  if (!body.contains("iceServers") || !body["iceServers"].is_array()) return;
  std::vector<IceServer> servers;
  for (const auto& s : body["iceServers"]) {
    if (!s.is_object() || !s.contains("urls")) continue;
    IceServer server;
    if (s["urls"].is_string()) server.urls.push_back(s["urls"].get<std::string>());
    if (s["urls"].is_array()) {
      for (const auto& u : s["urls"]) {
        if (u.is_string()) server.urls.push_back(u.get<std::string>());
      }
    }
    if (s.contains("username") && s["username"].is_string()) server.username = s["username"];
    if (s.contains("credential") && s["credential"].is_string())
      server.credential = s["credential"];
    if (!server.urls.empty()) servers.push_back(std::move(server));
  }
  options.rtc.ice_servers = std::move(servers);
}

void Mesh::Impl::hub_message(const json& m) {
  if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) return;
  const std::string type = m["type"];
  auto str = [&](const char* key) -> std::string {
    auto it = m.find(key);
    return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string from = str("from");
  if (type == "welcome") {
    on_welcome(m);
  } else if (type == "peer-joined") {
    auto peer = str("peer");
    if (!valid_id(peer) || peer == options.peer) return;
    room[peer] = m.contains("metadata") ? m["metadata"] : json::object();
    emit({{"event", "peer-joined"}, {"peer", peer}});
    // The newcomer offers (2.1).
  } else if (type == "peer-left") {
    auto peer = str("peer");
    if (!valid_id(peer)) return;
    room.erase(peer);
    early.erase(peer);
    emit({{"event", "peer-left"}, {"peer", peer}, {"reason", str("reason")}});
    // Keep a working connection: the peer may only have lost the hub (2.1).
    auto it = links.find(peer);
    if (it != links.end() && (!live(it->second.state) || !it->second.remote_set)) {
      drop_link(peer, "peer left and the connection is not up");
    }
  } else if (type == "offer" || type == "answer") {
    auto session = str("session");
    auto sdp = str("sdp");
    if (!valid_id(from) || session.empty() || session.size() > 64 || sdp.empty()) {
      RTCMESH_LOG(Info, "mesh", "malformed " << type << " from hub ignored");
      return;
    }
    if (type == "offer")
      on_offer(from, session, sdp);
    else
      on_answer(from, session, sdp);
  } else if (type == "candidate") {
    auto session = str("session");
    if (!valid_id(from) || session.empty() || session.size() > 64 || !m.contains("candidate"))
      return;
    on_candidate(from, session, m["candidate"]);
  } else if (type == "relay") {
    if (!valid_id(from) || !m.contains("data") || !m["data"].is_object()) return;
    app_message(from, m["data"], true);
  } else if (type == "error") {
    auto code = str("code");
    auto to = str("to");
    if (code == "target_offline" && !to.empty()) {
      // Our signaling reached nobody: the peer is gone from the hub.
      room.erase(to);
      auto it = links.find(to);
      if (it != links.end() && it->second.state != PeerConnectionState::Connected) {
        drop_link(to, "target offline");
      }
      return;
    }
    error("hub: " + code + (str("message").empty() ? "" : ": " + str("message")));
  } else if (type == "server-shutdown") {
    RTCMESH_LOG(Info, "mesh", "hub is shutting down; keeping the data channels");
  } else if (type == "peer-announced") {
    auto peer = str("peer");
    if (room.count(peer) && m.contains("metadata")) room[peer] = m["metadata"];
  }
}

void Mesh::Impl::on_welcome(const json& m) {
  joined = true;
  room.clear();
  json ids = json::array();
  if (m.contains("peers") && m["peers"].is_array()) {
    for (const auto& p : m["peers"]) {
      if (!p.is_object() || !p.contains("peer") || !p["peer"].is_string()) continue;
      std::string id = p["peer"];
      if (!valid_id(id) || id == options.peer) continue;
      room[id] = p.contains("metadata") ? p["metadata"] : json::object();
      ids.push_back(id);
    }
  }
  bool resumed = get_bool(m, "resumed");
  std::string room_id =
      m.contains("room") && m["room"].is_string() ? m["room"].get<std::string>() : options.room;
  emit({{"event", "joined"},
        {"room", room_id},
        {"peer", options.peer},
        {"peers", ids},
        {"resumed", resumed}});
  // Offer to every listed peer without a live connection (2.1, 2.4).
  for (const auto& [peer, meta] : room) {
    auto it = links.find(peer);
    if (it == links.end() || !live(it->second.state)) start_offer(peer);
  }
}

// ---------------------------------------------------------------- negotiation

Result<std::shared_ptr<PeerConnection>> Mesh::Impl::make_pc(const std::string& peer,
                                                            uint64_t serial,
                                                            const std::string& session) {
  Configuration config = options.rtc;
  if (options.observe) config.observer = options.observe(peer, session);
  auto created = PeerConnection::create(config);
  if (!created) return created.error();
  auto pc = created.value();
  std::weak_ptr<Impl> weak = weak_from_this();
  pc->on_ice_candidate([this, peer, serial](const IceCandidate& c) {
    post([peer, serial, c](Impl& self) {
      Link* l = self.link_of(peer, serial);
      if (!l) return;
      json cand{
          {"candidate", c.candidate}, {"sdpMid", c.sdp_mid}, {"sdpMLineIndex", c.sdp_mline_index}};
      if (!l->ufrag.empty()) cand["usernameFragment"] = l->ufrag;
      self.send_to_hub(
          {{"type", "candidate"}, {"to", peer}, {"session", l->session}, {"candidate", cand}});
    });
  });
  pc->on_ice_gathering_state_change([this, peer, serial](IceGatheringState s) {
    if (s != IceGatheringState::Complete) return;
    post([peer, serial](Impl& self) {
      Link* l = self.link_of(peer, serial);
      if (!l) return;
      self.send_to_hub(
          {{"type", "candidate"}, {"to", peer}, {"session", l->session}, {"candidate", nullptr}});
    });
  });
  pc->on_connection_state_change([this, peer, serial](PeerConnectionState s) {
    post([peer, serial, s](Impl& self) { self.on_pc_state(peer, serial, s); });
  });
  pc->on_error([peer](const Error& e) { RTCMESH_LOG(Info, "mesh", peer << ": " << e); });
  // Channel callbacks are attached right here (not posted) so that no open or
  // message event can slip by; their work is posted.
  pc->on_data_channel([this, peer, serial](std::shared_ptr<DataChannel> ch) {
    auto label = ch->label();
    if (label == "rtcmesh") {
      attach_control(ch, peer, serial);
    } else if (label.rfind("file:", 0) == 0 && valid_id(label.substr(5))) {
      attach_incoming_file(ch, peer, serial, label.substr(5));
    } else {
      ch->close();
    }
  });
  (void)weak;
  return pc;
}

void Mesh::Impl::send_description(Link& l, const SessionDescription& d) {
  l.ufrag = ufrag_of(d.sdp);
  send_to_hub({{"type", d.type}, {"to", l.peer}, {"session", l.session}, {"sdp", d.sdp}});
}

void Mesh::Impl::start_offer(const std::string& peer) {
  if (links.count(peer)) drop_link(peer, "new session");
  Link l;
  l.serial = next_serial++;
  l.peer = peer;
  l.session = random_id(16);
  l.offerer = true;
  auto pc = make_pc(peer, l.serial, l.session);
  if (!pc) {
    error("cannot create a connection to " + peer + ": " + pc.error().message);
    return;
  }
  l.pc = *pc;
  auto ch = l.pc->create_data_channel("rtcmesh");
  if (!ch) {
    error("cannot create the rtcmesh channel: " + to_string(ch.error()));
    l.pc->close();
    return;
  }
  l.channel = ch.value();
  attach_control(l.channel, peer, l.serial);
  auto offer = l.pc->create_offer();
  Status set = offer ? l.pc->set_local_description(*offer) : Status(offer.error());
  if (!set) {
    error("offer to " + peer + " failed: " + to_string(set.error()));
    l.pc->close();
    return;
  }
  auto& stored = links[peer] = std::move(l);
  RTCMESH_LOG(Info, "mesh", "offer to " << peer << " session " << stored.session);
  send_description(stored, *offer);
}

void Mesh::Impl::flush_early(Link& l) {
  auto pit = early.find(l.peer);
  if (pit == early.end()) return;
  auto sit = pit->second.find(l.session);
  if (sit == pit->second.end()) return;
  auto queue = std::move(sit->second);
  pit->second.erase(sit);
  auto now = Clock::now();
  for (auto& q : queue) {
    if (now - q.at > options.candidate_ttl) continue;
    if (auto added = l.pc->add_ice_candidate(q.candidate); !added) {
      RTCMESH_LOG(Info, "mesh", "queued candidate from " << l.peer << ": " << added.error());
    }
  }
}

void Mesh::Impl::on_offer(const std::string& from, const std::string& session,
                          const std::string& sdp) {
  auto it = links.find(from);
  if (it != links.end() && it->second.session == session) {
    // A renegotiation of the same connection: an ICE restart (2.4).
    Link& l = it->second;
    if (l.state == PeerConnectionState::Failed) {
      // A failed PeerConnection of the core never becomes connected again (its
      // DTLS/SCTP are gone): answering would let the other side's ICE connect
      // to a dead transport. Close it instead; the impolite side starts over (2.2).
      drop_link(from, "ICE restart offered on a failed connection");
      if (impolite_towards(from) && joined && room.count(from)) start_offer(from);
      return;
    }
    if (l.pc->signaling_state() == SignalingState::HaveLocalOffer) {
      if (impolite_towards(from)) return;  // our own restart offer wins
      // Rolling back a local offer in have-local-offer cannot fail on an open
      // connection; if it did, the remote offer below is refused and logged.
      (void)l.pc->set_local_description({"rollback", ""});
    }
    if (auto set = l.pc->set_remote_description({"offer", sdp}); !set) {
      RTCMESH_LOG(Info, "mesh", "re-offer from " << from << " refused: " << set.error());
      return;
    }
    l.remote_set = true;
    flush_early(l);
    auto answer = l.pc->create_answer();
    Status set = answer ? l.pc->set_local_description(*answer) : Status(answer.error());
    if (!set) {
      RTCMESH_LOG(Info, "mesh", "answer to " << from << " failed: " << set.error());
      return;
    }
    RTCMESH_LOG(Info, "mesh", "answered an ICE restart from " << from << " session " << session);
    send_description(l, *answer);
    return;
  }
  auto& dead = dead_sessions[from];
  if (std::find(dead.begin(), dead.end(), session) != dead.end()) return;  // superseded
  if (it != links.end()) {
    Link& l = it->second;
    bool glare = l.offerer && l.pc->signaling_state() == SignalingState::HaveLocalOffer;
    if (glare && impolite_towards(from)) {
      RTCMESH_LOG(Info, "mesh", "glare with " << from << ": keeping our offer (impolite)");
      return;
    }
    // Polite side of a glare, or the other side started over (2.2).
    drop_link(from, glare ? "glare, polite side yields" : "peer started a new session");
  }
  Link l;
  l.serial = next_serial++;
  l.peer = from;
  l.session = session;
  auto pc = make_pc(from, l.serial, l.session);
  if (!pc) {
    error("cannot create a connection to " + from + ": " + pc.error().message);
    return;
  }
  l.pc = *pc;
  if (auto set = l.pc->set_remote_description({"offer", sdp}); !set) {
    RTCMESH_LOG(Info, "mesh", "offer from " << from << " refused: " << set.error());
    l.pc->close();
    return;
  }
  l.remote_set = true;
  auto answer = l.pc->create_answer();
  Status set = answer ? l.pc->set_local_description(*answer) : Status(answer.error());
  if (!set) {
    RTCMESH_LOG(Info, "mesh", "answer to " << from << " failed: " << set.error());
    l.pc->close();
    return;
  }
  auto& stored = links[from] = std::move(l);
  RTCMESH_LOG(Info, "mesh", "answering " << from << " session " << session);
  send_description(stored, *answer);
  flush_early(stored);
}

void Mesh::Impl::on_answer(const std::string& from, const std::string& session,
                           const std::string& sdp) {
  auto it = links.find(from);
  if (it == links.end() || it->second.session != session) return;  // never creates anything
  Link& l = it->second;
  if (l.pc->signaling_state() != SignalingState::HaveLocalOffer) return;
  if (auto set = l.pc->set_remote_description({"answer", sdp}); !set) {
    RTCMESH_LOG(Info, "mesh", "answer from " << from << " refused: " << set.error());
    return;
  }
  l.remote_set = true;
  flush_early(l);
}

void Mesh::Impl::on_candidate(const std::string& from, const std::string& session, const json& c) {
  IceCandidate candidate;
  if (!c.is_null()) {
    if (!c.is_object() || !c.contains("candidate") || !c["candidate"].is_string()) return;
    candidate.candidate = c["candidate"];
    if (candidate.candidate.empty() || candidate.candidate.size() > 1024) return;
    if (c.contains("sdpMid") && c["sdpMid"].is_string()) candidate.sdp_mid = c["sdpMid"];
    if (c.contains("sdpMLineIndex") && c["sdpMLineIndex"].is_number_integer()) {
      candidate.sdp_mline_index = c["sdpMLineIndex"];
    }
  }
  auto it = links.find(from);
  if (it != links.end() && it->second.session == session && it->second.remote_set) {
    if (auto added = it->second.pc->add_ice_candidate(candidate); !added) {
      RTCMESH_LOG(Info, "mesh", "candidate from " << from << ": " << added.error());
    }
    return;
  }
  auto& dead = dead_sessions[from];
  if (std::find(dead.begin(), dead.end(), session) != dead.end()) return;
  // Before its description: queue it (2.2), bounded in count, sessions and age.
  auto& sessions = early[from];
  auto now = Clock::now();
  for (auto s = sessions.begin(); s != sessions.end();) {
    while (!s->second.empty() && now - s->second.front().at > options.candidate_ttl)
      s->second.pop_front();
    s = s->second.empty() && s->first != session ? sessions.erase(s) : std::next(s);
  }
  if (!sessions.count(session) && sessions.size() >= kMaxEarlySessions) return;
  auto& queue = sessions[session];
  if (queue.size() >= options.max_early_candidates) return;
  queue.push_back({candidate, now});
}

void Mesh::Impl::drop_link(const std::string& peer, const std::string& why) {
  auto it = links.find(peer);
  if (it == links.end()) return;
  Link l = std::move(it->second);
  links.erase(it);
  RTCMESH_LOG(Info, "mesh", "closing connection to " << peer << " (" << why << ")");
  if (l.grace_timer) loop->cancel(l.grace_timer);
  if (l.restart_timer) loop->cancel(l.restart_timer);
  auto& dead = dead_sessions[peer];
  dead.push_back(l.session);
  if (dead.size() > 16) dead.pop_front();
  fail_transfers_of(peer);
  if (l.channel) l.channel->close();
  if (l.pc) l.pc->close();
  if (l.channel_open) emit({{"event", "channel-closed"}, {"peer", peer}});
  if (l.state != PeerConnectionState::Closed) {
    emit({{"event", "connection"}, {"peer", peer}, {"state", "closed"}});
  }
}

void Mesh::Impl::on_pc_state(const std::string& peer, uint64_t serial, PeerConnectionState s) {
  Link* l = link_of(peer, serial);
  if (!l || l->state == s) return;
  l->state = s;
  emit({{"event", "connection"}, {"peer", peer}, {"state", to_string(s)}});
  switch (s) {
    case PeerConnectionState::Connected:
      l->ever_connected = true;
      if (l->grace_timer) loop->cancel(l->grace_timer);
      l->grace_timer = 0;
      // Packets on the old path can bring the state back to connected while our
      // restart offer is still unanswered; the ICE agent has new credentials by
      // then and fails unless the answer comes, so the restart deadline stays.
      if (l->restarting && l->pc->signaling_state() != SignalingState::Stable) break;
      if (l->restart_timer) loop->cancel(l->restart_timer);
      l->restart_timer = 0;
      l->restarting = false;
      break;
    case PeerConnectionState::Disconnected:
      if (!l->grace_timer) {
        l->grace_timer = after(options.disconnected_grace, [peer, serial](Impl& self) {
          Link* x = self.link_of(peer, serial);
          if (!x) return;
          x->grace_timer = 0;
          if (x->state == PeerConnectionState::Disconnected) self.on_trouble(peer, serial);
        });
      }
      break;
    case PeerConnectionState::Failed:
      on_trouble(peer, serial);
      break;
    case PeerConnectionState::Closed:
      drop_link(peer, "closed");
      break;
    default:
      break;
  }
}

// A failed (or long disconnected) connection (2.4): the impolite side restarts
// ICE on it, then starts over with a new session if that does not help.
void Mesh::Impl::on_trouble(const std::string& peer, uint64_t serial) {
  Link* l = link_of(peer, serial);
  if (!l) return;
  if (joined && !room.count(peer)) {
    drop_link(peer, "connection lost and the peer is not in the room");
    return;
  }
  if (!impolite_towards(peer)) {
    // The other side restarts; if nothing has come of it by then, give up so
    // that its next offer (or ours after a re-join) starts clean.
    if (!l->restart_timer) {
      l->restart_timer =
          after(options.restart_timeout + options.disconnected_grace, [peer, serial](Impl& self) {
            Link* x = self.link_of(peer, serial);
            if (!x || x->state == PeerConnectionState::Connected) return;
            x->restart_timer = 0;
            self.drop_link(peer, "restart by the other side did not come");
          });
    }
    return;
  }
  if (l->state == PeerConnectionState::Failed && l->ever_connected && joined && room.count(peer)) {
    // The core cannot revive a failed PeerConnection with an ICE restart: start
    // over. (One that never connected keeps the slow path, or a peer without any
    // usable candidate would be offered a new session in a tight loop.)
    start_offer(peer);
    return;
  }
  if (l->restarting || l->pc->signaling_state() != SignalingState::Stable) {
    if (!l->restarting && joined) start_offer(peer);  // never answered: start over now
    return;
  }
  RTCMESH_LOG(Info, "mesh", "ICE restart towards " << peer);
  l->pc->restart_ice();
  auto offer = l->pc->create_offer();
  Status set = offer ? l->pc->set_local_description(*offer) : Status(offer.error());
  if (!set) {
    // A connection that cannot restart is replaced by a new session (2.2).
    RTCMESH_LOG(Info, "mesh", "ICE restart offer to " << peer << " failed: " << set.error());
    if (joined && room.count(peer))
      start_offer(peer);
    else
      drop_link(peer, "ICE restart failed");
    return;
  }
  l->restarting = true;
  send_description(*l, *offer);
  if (l->restart_timer) loop->cancel(l->restart_timer);
  l->restart_timer = after(options.restart_timeout, [peer, serial](Impl& self) {
    Link* x = self.link_of(peer, serial);
    if (!x) return;
    x->restart_timer = 0;
    if (x->state == PeerConnectionState::Connected &&
        x->pc->signaling_state() == SignalingState::Stable) {
      x->restarting = false;
      return;
    }
    if (self.joined && self.room.count(peer))
      self.start_offer(peer);
    else
      self.drop_link(peer, "ICE restart did not reconnect");
  });
}

void Mesh::Impl::attach_control(const std::shared_ptr<DataChannel>& ch, const std::string& peer,
                                uint64_t serial) {
  ch->on_open([this, peer, serial] {
    post([peer, serial](Impl& self) {
      Link* l = self.link_of(peer, serial);
      if (!l || l->channel_open) return;
      l->channel_open = true;
      self.emit({{"event", "channel-open"}, {"peer", peer}});
      self.send_app(peer, {{"type", "hello"},
                           {"peer", self.options.peer},
                           {"agent", kAgent},
                           {"capabilities", {"chat", "file", "ping"}}});
      // A first ping right away, so /peers has a microsecond RTT before the periodic one.
      l = self.link_of(peer, serial);  // looked up again: sending may have dropped the link
      if (l) self.ping(peer, *l);
      l = self.link_of(peer, serial);
      if (l) self.send_checkpoint(peer, *l);
    });
  });
  ch->on_message([this, peer, serial](const Message& m) {
    if (m.binary || m.data.size() > 256 * 1024) return;
    auto j = json::parse(m.text(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    post([peer, serial, j = std::move(j)](Impl& self) {
      if (!self.link_of(peer, serial)) return;
      self.app_message(peer, j, false);
    });
  });
  ch->on_close([this, peer, serial] {
    post([peer, serial](Impl& self) {
      Link* l = self.link_of(peer, serial);
      if (!l || !l->channel_open) return;
      l->channel_open = false;
      self.emit({{"event", "channel-closed"}, {"peer", peer}});
    });
  });
  post([peer, serial, ch](Impl& self) {
    if (Link* l = self.link_of(peer, serial)) l->channel = ch;
  });
}

// ---------------------------------------------------------------- application

bool Mesh::Impl::relay_allowed(const std::string& peer) const {
  if (!options.allow_hub_relay || !joined || !room.count(peer)) return false;
  auto it = links.find(peer);
  if (it == links.end()) return true;
  const Link& l = it->second;
  if (l.channel_open) return false;
  return !live(l.state) || Clock::now() - l.created >= options.relay_after;
}

bool Mesh::Impl::send_app(const std::string& peer, const json& m, bool* relayed) {
  auto it = links.find(peer);
  if (it != links.end() && it->second.channel_open && it->second.channel) {
    auto sent = it->second.channel->send(dump(m));
    if (sent) {
      if (relayed) *relayed = false;
      return true;
    }
    RTCMESH_LOG(Info, "mesh", "send to " << peer << ": " << sent.error());
  }
  if (relay_allowed(peer)) {
    send_to_hub({{"type", "relay"}, {"to", peer}, {"data", m}});
    if (relayed) *relayed = true;
    return true;
  }
  return false;
}

void Mesh::Impl::app_message(const std::string& from, const json& m, bool relayed) {
  if (!m.contains("type") || !m["type"].is_string()) return;
  const std::string type = m["type"];
  if (type == "chat") {
    if (!m.contains("text") || !m["text"].is_string()) return;
    emit({{"event", "chat"}, {"from", from}, {"text", m["text"]}, {"relayed", relayed}});
  } else if (type == "ping") {
    json pong{{"type", "pong"},
              {"nonce", m.contains("nonce") ? m["nonce"] : json()},
              {"ts", m.contains("ts") ? m["ts"] : json()}};
    if (relayed) {
      if (options.allow_hub_relay && joined)
        send_to_hub({{"type", "relay"}, {"to", from}, {"data", pong}});
    } else {
      send_app(from, pong);
    }
  } else if (type == "pong") {
    auto it = links.find(from);
    if (it == links.end() || !m.contains("nonce") || m["nonce"] != it->second.ping_nonce) return;
    it->second.app_rtt_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - it->second.ping_sent).count();
  } else if (type == "witness-checkpoint" && !relayed) {
    // One a second per peer at most: each costs a signature check and a record.
    auto it = links.find(from);
    if (it == links.end() || !options.on_peer_checkpoint || !m.contains("checkpoint") ||
        !m["checkpoint"].is_object()) {
      return;
    }
    const auto now = Clock::now();
    if (it->second.checkpoint_received != Clock::time_point{} &&
        now - it->second.checkpoint_received < std::chrono::seconds(1)) {
      return;
    }
    it->second.checkpoint_received = now;
    options.on_peer_checkpoint(from, m["checkpoint"]);
  } else if (type == "hello") {
    RTCMESH_LOG(Info, "mesh", "hello from " << from << " (" << get_str(m, "agent") << ")");
  } else if (type == "file-offer" && !relayed) {
    on_file_offer(from, m);
  } else if (type == "file-result" && !relayed) {
    if (!m.contains("id") || !m["id"].is_string()) return;
    std::string id = m["id"];
    auto it = outgoing.find(id);
    if (it == outgoing.end() || it->second.peer != from) return;
    bool ok = get_bool(m, "ok") && get_str(m, "sha256") == it->second.hex;
    std::string why = get_str(m, "error");
    finish_outgoing(id, ok, ok ? "" : why.empty() ? "receiver reported a mismatch" : why);
  }
}

void Mesh::Impl::do_chat(const std::string& text) {
  json m{{"type", "chat"}, {"text", text}, {"ts", unix_ms()}};
  std::set<std::string> peers;
  for (const auto& [p, meta] : room) peers.insert(p);
  for (const auto& [p, l] : links) peers.insert(p);
  std::vector<std::string> missed;
  for (const auto& p : peers) {
    if (!send_app(p, m)) missed.push_back(p);
  }
  for (const auto& p : missed) {
    error("chat not delivered to " + p + ": no open channel" +
          (options.allow_hub_relay ? " yet" : " (hub relay not allowed)"));
  }
}

void Mesh::Impl::ping(const std::string& peer, Link& l) {
  l.ping_nonce = random_id(8);
  l.ping_sent = Clock::now();
  send_app(peer, {{"type", "ping"}, {"nonce", l.ping_nonce}, {"ts", unix_ms()}});
}

void Mesh::Impl::send_checkpoint(const std::string& peer, Link& l) {
  if (!options.local_checkpoint) return;
  json cp = options.local_checkpoint();
  if (!cp.is_object() || !cp.contains("size") || !cp["size"].is_number_unsigned()) return;
  const uint64_t size = cp["size"].get<uint64_t>();
  if (size <= l.checkpoint_sent) return;
  l.checkpoint_sent = size;
  send_app(peer, {{"type", "witness-checkpoint"}, {"checkpoint", std::move(cp)}});
}

void Mesh::Impl::ping_all() {
  std::vector<std::string> open;
  for (auto& [peer, l] : links) {
    if (l.channel_open) open.push_back(peer);
  }
  // Looked up one by one: a send may drop a link.
  for (const auto& peer : open) {
    auto it = links.find(peer);
    if (it != links.end() && it->second.channel_open) ping(peer, it->second);
    it = links.find(peer);
    if (it != links.end() && it->second.channel_open) send_checkpoint(peer, it->second);
  }
  ping_timer = after(options.ping_interval, [](Impl& self) { self.ping_all(); });
}

std::vector<PeerInfo> Mesh::Impl::snapshot() {
  std::set<std::string> peers;
  for (const auto& [p, meta] : room) peers.insert(p);
  for (const auto& [p, l] : links) peers.insert(p);
  std::vector<PeerInfo> out;
  for (const auto& p : peers) {
    PeerInfo info;
    info.peer = p;
    info.in_room = room.count(p) > 0;
    info.state = "none";
    auto it = links.find(p);
    if (it != links.end()) {
      const Link& l = it->second;
      info.session = l.session;
      info.state = to_string(l.state);
      info.channel_open = l.channel_open;
      auto stats = l.pc->get_stats();
      if (stats.selected_candidate_pair) {
        const auto& pair = *stats.selected_candidate_pair;
        info.pair = pair.local.candidate_type + "/" + pair.remote.candidate_type;
        if (pair.current_round_trip_time) info.rtt_ms = *pair.current_round_trip_time * 1000.0;
      }
      // The app-level ping is timed in microseconds; SCTP's srtt has millisecond steps.
      if (l.app_rtt_ms) info.rtt_ms = l.app_rtt_ms;
    }
    info.relayed = !info.channel_open && relay_allowed(p);
    out.push_back(std::move(info));
  }
  return out;
}

// ---------------------------------------------------------------- files: sending

void Mesh::Impl::do_send_file(const std::string& peer, const std::string& path) {
  auto it = links.find(peer);
  if (it == links.end() && !room.count(peer)) {
    error("/send: unknown peer '" + peer + "'");
    return;
  }
  if (it == links.end() || !it->second.channel_open) {
    error("/send: no open channel to " + peer + " (files are never relayed)");
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error("/send: cannot read " + path + ": " + std::strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    error("/send: " + path + " is not a regular file");
    return;
  }
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error("/send: cannot open " + path + ": " + std::strerror(errno));
    return;
  }
  std::string id = random_id(12);
  Outgoing& t = outgoing[id];
  t.id = id;
  t.peer = peer;
  t.path = path;
  t.name = safe_file_name(std::filesystem::path(path).filename().string());
  t.size = static_cast<uint64_t>(st.st_size);
  t.file.reset(f);
  t.serial = it->second.serial;
  send_app(peer, {{"type", "file-offer"}, {"id", id}, {"name", t.name}, {"size", t.size}});
  auto ch = it->second.pc->create_data_channel("file:" + id);
  if (!ch) {
    finish_outgoing(id, false, to_string(ch.error()));
    return;
  }
  t.channel = ch.value();
  t.channel->set_buffered_amount_low_threshold(kLowWater);
  t.channel->on_open([this, id] { post([id](Impl& self) { self.pump(id); }); });
  t.channel->on_buffered_amount_low([this, id] { post([id](Impl& self) { self.pump(id); }); });
  t.channel->on_close([this, id] {
    post([id](Impl& self) { self.finish_outgoing(id, false, "transfer channel closed"); });
  });
  // On a connected association the core opens the channel inside
  // create_data_channel(), before on_open could be attached: start pumping here.
  if (t.channel->ready_state() == DataChannelState::Open) post([id](Impl& self) { self.pump(id); });
  emit({{"event", "file-progress"},
        {"peer", peer},
        {"id", id},
        {"name", t.name},
        {"bytes", 0},
        {"size", t.size},
        {"direction", "send"}});
}

void Mesh::Impl::pump(const std::string& id) {
  auto it = outgoing.find(id);
  if (it == outgoing.end()) return;
  Outgoing& t = it->second;
  if (t.eof || !t.channel || t.channel->ready_state() != DataChannelState::Open) return;
  size_t chunk = std::min(kChunk, t.channel->max_message_size());
  std::vector<uint8_t> buffer(chunk);
  while (!t.eof && t.channel->buffered_amount() < kHighWater) {
    size_t n = std::fread(buffer.data(), 1, chunk, t.file.get());
    if (n > 0) {
      t.sha->update(buffer.data(), n);
      if (auto sent = t.channel->send(std::span<const uint8_t>(buffer.data(), n)); !sent) {
        finish_outgoing(id, false, "send failed: " + to_string(sent.error()));
        return;
      }
      t.sent += n;
    }
    if (n < chunk) {
      if (std::ferror(t.file.get())) {
        finish_outgoing(id, false, "read error on " + t.path);
        return;
      }
      t.eof = true;
      t.file.reset();
      t.hex = crypto::to_hex(t.sha->finish());
      if (t.sent != t.size) RTCMESH_LOG(Warn, "mesh", t.path << " changed size while being sent");
      json end{{"type", "file-end"}, {"id", id}, {"size", t.sent}, {"sha256", t.hex}};
      if (auto sent = t.channel->send(dump(end)); !sent) {
        finish_outgoing(id, false, "send failed: " + to_string(sent.error()));
        return;
      }
    }
  }
  auto now = Clock::now();
  if (t.eof || now - t.last_progress >= kProgressEvery) {
    t.last_progress = now;
    emit({{"event", "file-progress"},
          {"peer", t.peer},
          {"id", id},
          {"name", t.name},
          {"bytes", t.sent},
          {"size", t.size},
          {"direction", "send"}});
  }
}

void Mesh::Impl::finish_outgoing(const std::string& id, bool ok, const std::string& why) {
  auto it = outgoing.find(id);
  if (it == outgoing.end()) return;
  Outgoing t = std::move(it->second);
  outgoing.erase(it);
  if (t.channel) t.channel->close();
  if (!ok) error("sending " + t.name + " to " + t.peer + " failed: " + why);
  emit({{"event", "file-sent"},
        {"to", t.peer},
        {"id", id},
        {"size", t.sent},
        {"sha256", t.hex},
        {"ok", ok}});
}

// ---------------------------------------------------------------- files: receiving

void Mesh::Impl::attach_incoming_file(const std::shared_ptr<DataChannel>& ch,
                                      const std::string& peer, uint64_t serial,
                                      const std::string& id) {
  std::string key = peer + "/" + id;
  ch->on_message([this, key](const Message& m) {
    if (m.binary) {
      post([key, bytes = std::vector<uint8_t>(m.data.begin(), m.data.end())](Impl& self) {
        self.file_data(key, bytes.data(), bytes.size());
      });
    } else {
      post([key, text = std::string(m.text())](Impl& self) { self.file_text(key, text); });
    }
  });
  ch->on_close([this, key] {
    post([key](Impl& self) {
      self.finish_incoming(key, false, "transfer channel closed before file-end", false);
    });
  });
  post([key, peer, serial, id, ch](Impl& self) {
    if (!self.link_of(peer, serial)) {
      ch->close();
      return;
    }
    auto it = self.incoming.find(key);
    if (it == self.incoming.end()) {
      Incoming& in = self.incoming[key];  // the channel overtook its file-offer
      in.id = id;
      in.peer = peer;
      in.channel = ch;
      return;
    }
    it->second.channel = ch;
  });
}

void Mesh::Impl::on_file_offer(const std::string& from, const json& m) {
  if (!m.contains("id") || !m["id"].is_string() || !m.contains("size") ||
      !m["size"].is_number_unsigned()) {
    return;
  }
  std::string id = m["id"];
  if (!valid_id(id)) return;
  std::string key = from + "/" + id;
  size_t of_peer = 0;
  for (const auto& [k, in] : incoming) of_peer += in.peer == from;
  auto it = incoming.find(key);
  if (it != incoming.end() && it->second.offered) return;
  if (it == incoming.end() && of_peer >= kMaxIncomingPerPeer) {
    error("too many transfers from " + from + "; offer " + id + " ignored");
    return;
  }
  Incoming& in = incoming[key];
  in.id = id;
  in.peer = from;
  in.offered = true;
  in.size = m["size"].get<uint64_t>();
  in.name = safe_file_name(
      m.contains("name") && m["name"].is_string() ? m["name"].get<std::string>() : "");
  emit({{"event", "file-progress"},
        {"peer", from},
        {"id", id},
        {"name", in.name},
        {"bytes", 0},
        {"size", in.size},
        {"direction", "receive"}});
  auto pending = std::move(in.pre_offer);
  in.pre_offer_bytes = 0;
  for (auto& chunk : pending) file_data(key, chunk.data(), chunk.size());
}

bool Mesh::Impl::open_incoming(Incoming& in) {
  if (in.file.fd >= 0) return true;
  std::error_code ec;
  std::filesystem::create_directories(options.download_dir, ec);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string path = unique_path(options.download_dir, in.name);
    // O_EXCL: never overwrite, even if another transfer took the name meanwhile.
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      in.file.fd = fd;
      in.path = path;
      return true;
    }
    if (errno != EEXIST) {
      error("cannot write " + path + ": " + std::strerror(errno));
      return false;
    }
  }
  return false;
}

void Mesh::Impl::file_data(const std::string& key, const uint8_t* data, size_t size) {
  auto it = incoming.find(key);
  if (it == incoming.end()) return;
  Incoming& in = it->second;
  if (!in.offered) {
    in.pre_offer_bytes += size;
    if (in.pre_offer_bytes > kMaxPreOfferBytes) {
      finish_incoming(key, false, "data without a file-offer", false);
      return;
    }
    in.pre_offer.emplace_back(data, data + size);
    return;
  }
  if (in.got + size > in.size) {
    finish_incoming(key, false, "more bytes than offered", true);
    return;
  }
  if (!open_incoming(in)) {
    finish_incoming(key, false, "cannot create the file", true);
    return;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(in.file.fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      finish_incoming(key, false, std::string("write failed: ") + std::strerror(errno), true);
      return;
    }
    done += static_cast<size_t>(n);
  }
  in.sha->update(data, size);
  in.got += size;
  auto now = Clock::now();
  if (now - in.last_progress >= kProgressEvery) {
    in.last_progress = now;
    emit({{"event", "file-progress"},
          {"peer", in.peer},
          {"id", in.id},
          {"name", in.name},
          {"bytes", in.got},
          {"size", in.size},
          {"direction", "receive"}});
  }
}

void Mesh::Impl::file_text(const std::string& key, const std::string& text) {
  auto it = incoming.find(key);
  if (it == incoming.end()) return;
  Incoming& in = it->second;
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || get_str(j, "type") != "file-end") return;
  if (!in.offered) {
    finish_incoming(key, false, "file-end without a file-offer", false);
    return;
  }
  if (!open_incoming(in)) {  // a 0-byte file has no chunks
    finish_incoming(key, false, "cannot create the file", true);
    return;
  }
  uint64_t declared =
      j.contains("size") && j["size"].is_number_unsigned() ? j["size"].get<uint64_t>() : ~0ull;
  std::string want = get_str(j, "sha256");
  std::string got = crypto::to_hex(in.sha->finish());
  in.sha.reset();
  if (declared != in.got || in.got != in.size) {
    finish_incoming(key, false, "size mismatch: got " + std::to_string(in.got) + " bytes", true);
  } else if (want != got) {
    finish_incoming(key, false, "SHA-256 mismatch", true);
  } else {
    in.file.reset();
    emit({{"event", "file-progress"},
          {"peer", in.peer},
          {"id", in.id},
          {"name", in.name},
          {"bytes", in.got},
          {"size", in.size},
          {"direction", "receive"}});
    send_app(in.peer, {{"type", "file-result"}, {"id", in.id}, {"ok", true}, {"sha256", got}});
    emit({{"event", "file-received"},
          {"from", in.peer},
          {"id", in.id},
          {"name", in.name},
          {"path", in.path},
          {"size", in.got},
          {"sha256", got},
          {"ok", true}});
    incoming.erase(it);
  }
}

void Mesh::Impl::finish_incoming(const std::string& key, bool ok, const std::string& why,
                                 bool reply) {
  auto it = incoming.find(key);
  if (it == incoming.end()) return;
  Incoming in = std::move(it->second);
  incoming.erase(it);
  (void)ok;
  if (in.file.fd >= 0) {
    in.file.reset();
    ::unlink(in.path.c_str());
  }
  if (reply)
    send_app(in.peer, {{"type", "file-result"}, {"id", in.id}, {"ok", false}, {"error", why}});
  if (in.channel) in.channel->close();
  error("receiving " + in.name + " from " + in.peer + " failed: " + why);
  emit({{"event", "file-received"},
        {"from", in.peer},
        {"id", in.id},
        {"name", in.name},
        {"path", ""},
        {"size", in.got},
        {"sha256", ""},
        {"ok", false}});
}

void Mesh::Impl::fail_transfers_of(const std::string& peer) {
  std::vector<std::string> out_ids, in_keys;
  for (const auto& [id, t] : outgoing) {
    if (t.peer == peer) out_ids.push_back(id);
  }
  for (const auto& [key, in] : incoming) {
    if (in.peer == peer) in_keys.push_back(key);
  }
  for (const auto& id : out_ids) finish_outgoing(id, false, "connection closed");
  for (const auto& key : in_keys) finish_incoming(key, false, "connection closed", false);
}

// ---------------------------------------------------------------- public API

Mesh::Mesh(MeshOptions options, SendToHub send, OnEvent on_event)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(send), std::move(on_event))) {
  if (impl_->options.peer.empty()) impl_->options.peer = "peer-" + random_id(8);
  impl_->post([](Impl& self) { self.start(); });
}

Mesh::~Mesh() {
  close();
}

void Mesh::on_hub_message(const nlohmann::json& message) {
  impl_->post([message](Impl& self) { self.hub_message(message); });
}

void Mesh::on_hub_state(const std::string& state) {
  impl_->post([state](Impl& self) { self.hub_state(state); });
}

void Mesh::on_ice_servers(const nlohmann::json& body) {
  impl_->post([body](Impl& self) { self.ice_servers(body); });
}

void Mesh::chat(const std::string& text) {
  impl_->post([text](Impl& self) { self.do_chat(text); });
}

void Mesh::send_file(const std::string& peer, const std::string& path) {
  impl_->post([peer, path](Impl& self) { self.do_send_file(peer, path); });
}

void Mesh::list_peers() {
  impl_->post([](Impl& self) {
    json list = json::array();
    for (const auto& p : self.snapshot()) {
      json row{{"peer", p.peer},
               {"state", p.state},
               {"channel", p.channel_open ? "open" : "closed"},
               {"pair", p.pair},
               {"relayed", p.relayed}};
      row["rtt_ms"] = p.rtt_ms ? json(std::round(*p.rtt_ms * 100) / 100) : json(nullptr);
      list.push_back(row);
    }
    self.emit({{"event", "peers"}, {"peers", list}});
  });
}

std::vector<PeerInfo> Mesh::peers() {
  std::vector<PeerInfo> out;
  auto impl = impl_;
  impl->loop->run_sync([&] {
    if (!impl->closed) out = impl->snapshot();
  });
  return out;
}

void Mesh::close() {
  auto impl = impl_;
  impl->loop->run_sync([&] { impl->shutdown(); });
}

}  // namespace rtcmesh::mesh
