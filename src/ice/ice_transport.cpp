#include "ice/ice_transport.hpp"

#include "ice/turn_tls_tunnel.hpp"

#include <agent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/glib_loop.hpp"
#include "base/log.hpp"

namespace rtcmesh::ice {

namespace {

constexpr unsigned kComponent = 1;
// Socket buffers: the default 208 KiB receive buffer overflows at data-channel
// rates (measured-here.md); rmem_max on Debian is 4 MiB unless raised.
constexpr int kSocketBufferBytes = 4 * 1024 * 1024;

const char* type_name(NiceCandidateType type) {
  switch (type) {
    case NICE_CANDIDATE_TYPE_HOST:
      return "host";
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE:
      return "srflx";
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE:
      return "prflx";
    case NICE_CANDIDATE_TYPE_RELAYED:
      return "relay";
  }
  return "host";
}

sdp::Candidate from_nice(const NiceCandidate* c) {
  sdp::Candidate out;
  out.foundation = c->foundation;
  out.component = c->component_id;
  out.priority = c->priority;
  char buf[NICE_ADDRESS_STRING_LEN];
  nice_address_to_string(&c->addr, buf);
  out.address = buf;
  out.port = static_cast<uint16_t>(nice_address_get_port(&c->addr));
  out.type = type_name(c->type);
  switch (c->transport) {
    case NICE_CANDIDATE_TRANSPORT_UDP:
      out.transport = "udp";
      break;
    case NICE_CANDIDATE_TRANSPORT_TCP_ACTIVE:
      out.transport = "tcp";
      out.tcp_type = "active";
      break;
    case NICE_CANDIDATE_TRANSPORT_TCP_PASSIVE:
      out.transport = "tcp";
      out.tcp_type = "passive";
      break;
    case NICE_CANDIDATE_TRANSPORT_TCP_SO:
      out.transport = "tcp";
      out.tcp_type = "so";
      break;
  }
  if (c->type != NICE_CANDIDATE_TYPE_HOST && nice_address_is_valid(&c->base_addr)) {
    nice_address_to_string(&c->base_addr, buf);
    out.related_address = buf;
    out.related_port = static_cast<uint16_t>(nice_address_get_port(&c->base_addr));
  }
  // The tcp host candidates libnice gathers in active mode carry port 9 (RFC 6544).
  return out;
}

void on_component_state(NiceAgent*, guint, guint component, guint state, gpointer data) {
  if (component == kComponent) static_cast<IceTransport*>(data)->handle_component_state(state);
}
void on_new_candidate(NiceAgent*, NiceCandidate* candidate, gpointer data) {
  static_cast<IceTransport*>(data)->handle_new_candidate(candidate);
}
void on_gathering_done(NiceAgent*, guint, gpointer data) {
  static_cast<IceTransport*>(data)->handle_gathering_done();
}
void on_recv(NiceAgent*, guint, guint, guint len, gchar* buf, gpointer data) {
  static_cast<IceTransport*>(data)->handle_recv(buf, len);
}

}  // namespace

const char* to_string(State state) {
  switch (state) {
    case State::New:
      return "new";
    case State::Checking:
      return "checking";
    case State::Connected:
      return "connected";
    case State::Completed:
      return "completed";
    case State::Disconnected:
      return "disconnected";
    case State::Failed:
      return "failed";
    case State::Closed:
      return "closed";
  }
  return "?";
}

const char* to_string(GatheringState state) {
  switch (state) {
    case GatheringState::New:
      return "new";
    case GatheringState::Gathering:
      return "gathering";
    case GatheringState::Complete:
      return "complete";
  }
  return "?";
}

IceTransport::IceTransport(base::Loop& loop, Callbacks callbacks)
    : loop_(loop), callbacks_(std::move(callbacks)) {}

Result<std::unique_ptr<IceTransport>> IceTransport::create(base::Loop& loop, const Config& config,
                                                           Callbacks callbacks) {
  std::unique_ptr<IceTransport> self(new IceTransport(loop, std::move(callbacks)));
  // Nomination: aggressive by default (the controlling agent sets USE-CANDIDATE
  // on its checks), which saves the extra nominating round trip and halves the
  // setup time on a LAN (7 ms -> 3 ms measured on loopback). RFC 8445 keeps
  // accepting it on the controlled side, and Chromium and aiortc do. Regular
  // nomination (Config::regular_nomination) picks the best pair when several
  // paths succeed at different speeds.
  auto options = static_cast<NiceAgentOption>(
      (config.regular_nomination ? NICE_AGENT_OPTION_REGULAR_NOMINATION : 0) |
      NICE_AGENT_OPTION_CONSENT_FRESHNESS | NICE_AGENT_OPTION_ICE_TRICKLE);
  NiceAgent* agent =
      nice_agent_new_full(base::glib_context(loop), NICE_COMPATIBILITY_RFC5245, options);
  if (agent == nullptr) return make_error("libnice: cannot create agent");
  self->agent_ = agent;
  g_object_set(agent, "ice-udp", TRUE, "ice-tcp", config.tcp ? TRUE : FALSE, "upnp", FALSE,
               // RFC 8445 section 14.3: Ta is 50 ms for a single stream in the RFC,
               // but on a LAN/loopback the checks are tiny; libnice's pacing decides
               // how soon the nominating check follows the first success.
               "stun-pacing-timer", 1u, "stun-initial-timeout", 200u, "stun-max-retransmissions",
               5u, "force-relay", config.relay_only ? TRUE : FALSE, nullptr);
  for (const auto& address : config.local_addresses) {
    NiceAddress addr;
    nice_address_init(&addr);
    if (!nice_address_set_from_string(&addr, address.c_str())) {
      return make_error(ErrorCode::SyntaxError, "invalid local address '" + address + "'");
    }
    nice_agent_add_local_address(agent, &addr);
  }
  self->stream_ = nice_agent_add_stream(agent, 1);
  if (self->stream_ == 0) return make_error("libnice: cannot add stream");
  if (config.port_min != 0 || config.port_max != 0) {
    nice_agent_set_port_range(agent, self->stream_, kComponent, config.port_min, config.port_max);
  }
  self->relay_only_ = config.relay_only;
  self->gathering_timeout_ = config.gathering_timeout;
  bool stun_set = false;
  for (const auto& server : config.servers) {
    if (server.kind == Server::Kind::Turn) {
      if (!self->turn_servers_.empty()) self->turn_servers_ += ", ";
      self->turn_servers_ += (server.transport == Server::Transport::Tls ? "turns:" : "turn:") +
                             (server.host.empty() ? server.address : server.host) + ":" +
                             std::to_string(server.port) +
                             (server.transport == Server::Transport::Udp ? "" : "?transport=tcp");
    }
    if (server.kind == Server::Kind::Stun) {
      if (stun_set) {
        RTCMESH_LOG(Warn, "ice", "libnice supports one STUN server; ignoring " << server.address);
        continue;
      }
      g_object_set(agent, "stun-server", server.address.c_str(), "stun-server-port",
                   static_cast<guint>(server.port), nullptr);
      stun_set = true;
    } else {
      // Never NICE_RELAY_TYPE_TURN_TLS: libnice would speak plaintext TURN over
      // TCP (see TurnTlsTunnel). TLS servers go through a local tunnel instead.
      std::string address = server.address;
      guint port = server.port;
      NiceRelayType type = server.transport == Server::Transport::Udp ? NICE_RELAY_TYPE_TURN_UDP
                                                                      : NICE_RELAY_TYPE_TURN_TCP;
      if (server.transport == Server::Transport::Tls) {
        auto tunnel = TurnTlsTunnel::create(base::glib_context(loop), server);
        if (!tunnel) return tunnel.error();
        address = (*tunnel)->local_address();
        port = (*tunnel)->local_port();
        self->tunnels_.push_back(std::move(tunnel.value()));
      }
      if (!nice_agent_set_relay_info(agent, self->stream_, kComponent, address.c_str(), port,
                                     server.username.c_str(), server.password.c_str(), type)) {
        return make_error("libnice: bad TURN server " + server.address);
      }
    }
  }
  g_signal_connect(agent, "component-state-changed", G_CALLBACK(on_component_state), self.get());
  g_signal_connect(agent, "new-candidate-full", G_CALLBACK(on_new_candidate), self.get());
  g_signal_connect(agent, "candidate-gathering-done", G_CALLBACK(on_gathering_done), self.get());
  nice_agent_attach_recv(agent, self->stream_, kComponent, base::glib_context(loop), on_recv,
                         self.get());
  self->refresh_credentials();
  return self;
}

IceTransport::~IceTransport() {
  if (gathering_timer_ != 0) loop_.cancel(gathering_timer_);
  if (agent_ == nullptr) return;
  // Detach every callback before the agent goes: libnice may still dispatch
  // sources on this context, but everything runs on this thread, so after these
  // calls nothing can reach `this` any more.
  nice_agent_attach_recv(agent_, stream_, kComponent, base::glib_context(loop_), nullptr, nullptr);
  g_signal_handlers_disconnect_by_data(agent_, this);
  // close_async releases TURN allocations and prunes refresh timers; the agent
  // is released when it completes.
  nice_agent_close_async(
      agent_, +[](GObject* source, GAsyncResult*, gpointer) { g_object_unref(source); }, nullptr);
  // The TLS tunnels go now, not when close_async completes. A TURN allocation
  // made over TCP/TLS lives with its connection (coturn deletes it as soon as
  // the connection closes), so nothing is left behind on the server. And no
  // OpenSSL call may run after the peer layer's teardown: an exiting process
  // does not wait past it, and OpenSSL's atexit cleanup would race a late
  // handshake on the loop thread (seen: a crash in OPENSSL_cleanup).
  tunnels_.clear();
}

void IceTransport::refresh_credentials() {
  gchar* ufrag = nullptr;
  gchar* pwd = nullptr;
  if (nice_agent_get_local_credentials(agent_, stream_, &ufrag, &pwd)) {
    ufrag_ = ufrag;
    pwd_ = pwd;
  }
  g_free(ufrag);
  g_free(pwd);
}

void IceTransport::set_controlling(bool controlling) {
  g_object_set(agent_, "controlling-mode", controlling ? TRUE : FALSE, nullptr);
}

Status IceTransport::gather() {
  if (gathering_state_ != GatheringState::New) return {};
  gathering_state_ = GatheringState::Gathering;
  if (callbacks_.on_gathering_state) callbacks_.on_gathering_state(gathering_state_);
  if (!nice_agent_gather_candidates(agent_, stream_)) {
    return make_error("ICE: cannot gather candidates (no usable local address?)");
  }
  if (gathering_state_ == GatheringState::Gathering) {  // libnice may finish inline
    gathering_timer_ = loop_.post_after(gathering_timeout_, [this] {
      gathering_timer_ = 0;
      handle_gathering_timeout();
    });
  }
  tune_sockets();
  return {};
}

void IceTransport::tune_sockets() {
  GPtrArray* sockets = nice_agent_get_sockets(agent_, stream_, kComponent);
  if (sockets == nullptr) return;
  for (guint i = 0; i < sockets->len; ++i) {
    int fd = g_socket_get_fd(static_cast<GSocket*>(g_ptr_array_index(sockets, i)));
    int size = kSocketBufferBytes;
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN; fall back to the capped SO_RCVBUF.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
  }
  g_ptr_array_unref(sockets);
}

Status IceTransport::set_remote_credentials(const std::string& ufrag, const std::string& pwd) {
  if (!nice_agent_set_remote_credentials(agent_, stream_, ufrag.c_str(), pwd.c_str())) {
    return make_error("ICE: cannot set remote credentials");
  }
  if (state_ == State::New) set_state(State::Checking);
  return {};
}

Status IceTransport::add_remote_candidate(const sdp::Candidate& candidate) {
  if (candidate.component != kComponent) return {};  // rtcp component: not used with rtcp-mux
  // Counted even when refused below: a remote whose candidates we cannot use
  // (mDNS names) may still reach us, and we learn it as peer-reflexive.
  ++remote_candidates_;
  NiceCandidateType type;
  if (candidate.type == "host")
    type = NICE_CANDIDATE_TYPE_HOST;
  else if (candidate.type == "srflx")
    type = NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE;
  else if (candidate.type == "prflx")
    type = NICE_CANDIDATE_TYPE_PEER_REFLEXIVE;
  else if (candidate.type == "relay")
    type = NICE_CANDIDATE_TYPE_RELAYED;
  else
    return make_error("ICE: unknown candidate type '" + candidate.type + "'");

  NiceCandidateTransport transport;
  if (candidate.transport == "udp") {
    transport = NICE_CANDIDATE_TRANSPORT_UDP;
  } else if (candidate.transport == "tcp") {
    if (candidate.tcp_type == "active")
      transport = NICE_CANDIDATE_TRANSPORT_TCP_ACTIVE;
    else if (candidate.tcp_type == "passive")
      transport = NICE_CANDIDATE_TRANSPORT_TCP_PASSIVE;
    else if (candidate.tcp_type == "so")
      transport = NICE_CANDIDATE_TRANSPORT_TCP_SO;
    else
      return make_error("ICE: tcp candidate without tcptype");
  } else {
    return make_error("ICE: unsupported candidate transport '" + candidate.transport + "'");
  }
  NiceCandidate* c = nice_candidate_new(type);
  c->transport = transport;
  c->stream_id = stream_;
  c->component_id = kComponent;
  c->priority = candidate.priority;
  std::strncpy(c->foundation, candidate.foundation.c_str(), NICE_CANDIDATE_MAX_FOUNDATION - 1);
  c->foundation[NICE_CANDIDATE_MAX_FOUNDATION - 1] = '\0';
  if (!nice_address_set_from_string(&c->addr, candidate.address.c_str())) {
    nice_candidate_free(c);
    // mDNS (.local) and other names: we never hand unresolved names to libnice.
    return make_error("ICE: candidate address '" + candidate.address + "' is not numeric");
  }
  nice_address_set_port(&c->addr, candidate.port);
  if (!candidate.related_address.empty()) {
    nice_address_set_from_string(&c->base_addr, candidate.related_address.c_str());
    nice_address_set_port(&c->base_addr, candidate.related_port);
  }
  GSList* list = g_slist_append(nullptr, c);
  int added = nice_agent_set_remote_candidates(agent_, stream_, kComponent, list);
  g_slist_free(list);
  nice_candidate_free(c);
  if (added < 0) return make_error("ICE: remote candidate refused");
  return {};
}

void IceTransport::remote_gathering_done() {
  remote_done_ = true;
  nice_agent_peer_candidate_gathering_done(agent_, stream_);
  check_pairs_possible();
}

Status IceTransport::restart() {
  if (!nice_agent_restart_stream(agent_, stream_)) return make_error("ICE: restart failed");
  refresh_credentials();
  remote_done_ = false;
  remote_candidates_ = 0;
  return {};
}

void IceTransport::check_pairs_possible() {
  // W3C "failed" comes after local gathering has finished, never before.
  if (state_ != State::New && state_ != State::Checking) return;
  if (gathering_state_ != GatheringState::Complete) return;
  std::string reason;
  if (local_candidates_ == 0) {
    if (relay_only_ && turn_servers_.empty()) {
      reason = "relay-only ICE without a TURN server: there is no candidate to offer";
    } else if (relay_only_) {
      reason = "relay-only ICE gathered no relay candidate: no TURN allocation succeeded on " +
               turn_servers_ +
               " (server unreachable, or the credentials were rejected: wrong or expired)";
    } else {
      reason = "ICE gathered no local candidate";
    }
  } else if (remote_done_ && remote_candidates_ == 0) {
    reason = "the remote peer signalled end-of-candidates without any candidate";
  }
  if (reason.empty()) return;
  failure_reason_ = reason;
  RTCMESH_LOG(Warn, "ice", "ICE failed: " << reason);
  set_state(State::Failed);
}

bool IceTransport::send(ByteSpan packet) {
  int sent = nice_agent_send(agent_, stream_, kComponent, static_cast<guint>(packet.size()),
                             reinterpret_cast<const gchar*>(packet.data()));
  if (sent < 0) return false;
  bytes_sent_ += packet.size();
  ++packets_sent_;
  return true;
}

bool IceTransport::selected_pair(SelectedPair& out) const {
  NiceCandidate* local = nullptr;
  NiceCandidate* remote = nullptr;
  if (!nice_agent_get_selected_pair(agent_, stream_, kComponent, &local, &remote)) return false;
  out.local = from_nice(local);
  out.remote = from_nice(remote);
  return true;
}

void IceTransport::set_state(State state) {
  if (state == state_) return;
  state_ = state;
  if (callbacks_.on_state) callbacks_.on_state(state);
}

void IceTransport::handle_component_state(unsigned state) {
  RTCMESH_LOG(
      Debug, "ice",
      "component state " << nice_component_state_to_string(static_cast<NiceComponentState>(state)));
  switch (static_cast<NiceComponentState>(state)) {
    case NICE_COMPONENT_STATE_CONNECTING:
      if (state_ == State::New) set_state(State::Checking);
      break;
    case NICE_COMPONENT_STATE_CONNECTED:
    case NICE_COMPONENT_STATE_READY:
      ever_connected_ = true;
      set_state(State::Connected);
      break;
    case NICE_COMPONENT_STATE_FAILED:
      set_state(State::Failed);
      break;
    case NICE_COMPONENT_STATE_DISCONNECTED:
      if (ever_connected_) set_state(State::Disconnected);
      break;
    default:
      break;
  }
}

void IceTransport::handle_new_candidate(void* nice_candidate) {
  auto* c = static_cast<NiceCandidate*>(nice_candidate);
  if (c->stream_id != stream_ || c->component_id != kComponent) return;
  if (gathering_forced_) {
    // End-of-candidates is out already; libnice may still use it locally.
    RTCMESH_LOG(Info, "ice", "candidate after the gathering timeout not announced");
    return;
  }
  ++local_candidates_;
  sdp::Candidate candidate = from_nice(c);
  if (relay_only_ && c->type == NICE_CANDIDATE_TYPE_RELAYED) {
    // libnice puts the local socket's address (the host address) into a relay
    // candidate's raddr. A relay-only policy exists to keep that address from
    // the remote peer, so announce the wildcard, as browsers do when host and
    // reflexive candidates are filtered (RFC 8839 allows any value here).
    candidate.related_address = candidate.address.find(':') != std::string::npos ? "::" : "0.0.0.0";
    candidate.related_port = 0;
  }
  if (callbacks_.on_local_candidate) callbacks_.on_local_candidate(candidate);
}

void IceTransport::handle_gathering_timeout() {
  if (gathering_state_ != GatheringState::Gathering) return;
  RTCMESH_LOG(Warn, "ice",
              "ICE gathering did not finish within " << gathering_timeout_.count()
                                                     << " ms (a TURN server that closed "
                                                     << "its TCP connection?): ending it");
  gathering_forced_ = true;
  handle_gathering_done();
}

void IceTransport::handle_gathering_done() {
  if (gathering_timer_ != 0) {
    loop_.cancel(gathering_timer_);
    gathering_timer_ = 0;
  }
  if (gathering_state_ == GatheringState::Complete) return;  // after the timeout
  gathering_state_ = GatheringState::Complete;
  if (callbacks_.on_gathering_state) callbacks_.on_gathering_state(gathering_state_);
  check_pairs_possible();
}

void IceTransport::handle_recv(const char* buf, unsigned len) {
  bytes_received_ += len;
  ++packets_received_;
  deliver(ByteSpan(reinterpret_cast<const uint8_t*>(buf), len));
}

}  // namespace rtcmesh::ice
