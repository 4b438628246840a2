#include "ice/ice_transport.hpp"

#include <agent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.hpp"

namespace rtcmesh::ice {

// ---------------------------------------------------------------------------
// TURN over TLS (turns:).
//
// libnice 0.1.21 has no TURN-over-TLS client. Given NICE_RELAY_TYPE_TURN_TLS in
// RFC 5245 mode it opens a plain TCP connection and sends TURN in clear (its
// "pseudo-SSL" socket exists only for the Google and MS-OC modes, and is a
// canned fake handshake anyway). A coturn TLS port accepts that plaintext, so
// it even seems to work. It is not TLS: no encryption, no server check, and a
// TLS-only relay (a TLS terminator on 443) rejects it.
//
// So for a turns: server IceTransport runs a small TLS tunnel on the loop
// thread: a TCP listener on loopback that libnice uses as a TURN-TCP server.
// Each accepted connection gets its own TLS (1.2 or later) connection to the
// real server; the certificate must chain to the default trust store (OpenSSL's
// SSL_CERT_FILE / SSL_CERT_DIR override it) and name the server (Server::host,
// or its IP address when no name is known). When the server side fails (TCP
// refused, TLS or certificate error, server gone) the reason is logged at Warn
// and libnice's side is left open but silent until libnice closes it: its
// allocation request then times out (about 4 s with our STUN timers) and
// gathering ends.
// Closing libnice's side instead would hang its gathering for good (libnice
// prunes a TURN discovery whose TCP socket closes without finishing it).
class TurnTlsTunnel {
 public:
  static Result<std::unique_ptr<TurnTlsTunnel>> create(GMainContext* context, const Server& server);
  ~TurnTlsTunnel();
  TurnTlsTunnel(const TurnTlsTunnel&) = delete;
  TurnTlsTunnel& operator=(const TurnTlsTunnel&) = delete;

  const std::string& local_address() const { return local_address_; }
  uint16_t local_port() const { return local_port_; }

 private:
  struct Link;
  TurnTlsTunnel(GMainContext* context, const Server& server);
  void accept_links();

  GMainContext* context_;
  Server server_;
  std::string label_;  // "host:port", for messages
  std::string local_address_;
  uint16_t local_port_ = 0;
  int listen_fd_ = -1;
  GSource* listen_source_ = nullptr;
  std::function<void()> listen_handler_;
  SSL_CTX* ctx_ = nullptr;
  std::vector<std::unique_ptr<Link>> links_;
};

namespace {

// libnice allocates once per host candidate of the server's address family; a
// handful of links is all one agent ever opens.
constexpr size_t kMaxTunnelLinks = 16;
// Bytes buffered per direction before the tunnel stops reading that side.
constexpr size_t kTunnelBufferBytes = 256 * 1024;

bool is_numeric_address(const std::string& text) {
  in6_addr buf;
  return inet_pton(AF_INET, text.c_str(), &buf) == 1 || inet_pton(AF_INET6, text.c_str(), &buf) == 1;
}

bool make_sockaddr(const std::string& address, uint16_t port, sockaddr_storage& out, socklen_t& len) {
  out = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// The reason of the last OpenSSL error; clears the thread's error queue (the
// DTLS layer shares this thread and must not see our errors).
std::string take_openssl_error() {
  unsigned long e = ERR_peek_last_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown TLS error";
}

// A GSource watching unix fds. prepare and check are NULL: GLib dispatches it
// whenever a watched fd has events, and the handler looks at them itself.
struct FdSource {
  GSource source;
  std::function<void()>* handler;
};

gboolean dispatch_fd_source(GSource* source, GSourceFunc, gpointer) {
  (*reinterpret_cast<FdSource*>(source)->handler)();
  return G_SOURCE_CONTINUE;
}

GSourceFuncs g_fd_source_funcs = {nullptr, nullptr, dispatch_fd_source, nullptr, nullptr, nullptr};

GSource* new_fd_source(std::function<void()>* handler) {
  GSource* source = g_source_new(&g_fd_source_funcs, sizeof(FdSource));
  reinterpret_cast<FdSource*>(source)->handler = handler;
  return source;
}

constexpr int kHangUp = G_IO_ERR | G_IO_HUP;

}  // namespace

// One libnice TCP connection and its TLS connection to the TURN server. TLS
// runs over memory BIOs; the tunnel does the socket I/O itself (send with
// MSG_NOSIGNAL: a closed server socket must not raise SIGPIPE in the host
// application).
struct TurnTlsTunnel::Link {
  // Failed: the server side is gone; libnice's side stays open, ignored.
  enum class Phase { Connecting, Handshaking, Open, Failed, Closed };

  TurnTlsTunnel& tunnel;
  int local_fd;
  int server_fd = -1;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;  // owned by ssl
  BIO* wbio = nullptr;  // owned by ssl
  Phase phase = Phase::Connecting;
  std::string up;       // plaintext from libnice, not yet given to TLS
  std::string down;     // plaintext from the server, not yet written to libnice
  std::string tls_out;  // TLS records not yet written to the server socket
  bool server_eof = false;
  GSource* source = nullptr;
  gpointer local_tag = nullptr;
  gpointer server_tag = nullptr;
  std::function<void()> handler;

  Link(TurnTlsTunnel& t, int fd) : tunnel(t), local_fd(fd) {}
  ~Link() { close(); }
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Starts the TCP connection to the server; false (logged) if that failed.
  bool start() {
    handler = [this] { pump(); };
    source = new_fd_source(&handler);
    local_tag = g_source_add_unix_fd(source, local_fd, G_IO_IN);
    g_source_attach(source, tunnel.context_);
    const Server& server = tunnel.server_;
    sockaddr_storage addr;
    socklen_t len = 0;
    if (!make_sockaddr(server.address, server.port, addr, len)) return fail("bad server address");
    server_fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server_fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
    server_tag = g_source_add_unix_fd(source, server_fd, G_IO_OUT);
    if (::connect(server_fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 && errno != EINPROGRESS) {
      return fail(std::string("cannot connect: ") + std::strerror(errno));
    }
    ssl = SSL_new(tunnel.ctx_);
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (ssl == nullptr || rbio == nullptr || wbio == nullptr) {
      if (rbio != nullptr) BIO_free(rbio);
      if (wbio != nullptr) BIO_free(wbio);
      rbio = wbio = nullptr;
      return fail("cannot create the TLS connection: " + take_openssl_error());
    }
    BIO_set_mem_eof_return(rbio, -1);  // empty input means "wait", not EOF
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_connect_state(ssl);
    const std::string& host = server.host.empty() ? server.address : server.host;
    if (is_numeric_address(host)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) {
        return fail("cannot check the certificate against " + host);
      }
    } else if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 || SSL_set1_host(ssl, host.c_str()) != 1) {
      return fail("cannot check the certificate against " + host);
    }
    return true;
  }

  // The server side failed: log why, drop it, keep libnice's side (see above).
  bool fail(const std::string& why) {
    RTCMESH_LOG(Warn, "ice", "TURN over TLS to " << tunnel.label_ << ": " << why);
    if (phase == Phase::Closed || phase == Phase::Failed) return false;
    phase = Phase::Failed;
    if (ssl != nullptr) SSL_free(ssl);  // frees the BIOs
    ssl = nullptr;
    ERR_clear_error();
    if (server_tag != nullptr) g_source_remove_unix_fd(source, server_tag);
    server_tag = nullptr;
    if (server_fd >= 0) ::close(server_fd);
    server_fd = -1;
    up.clear();
    down.clear();
    tls_out.clear();
    g_source_modify_unix_fd(source, local_tag, G_IO_IN);
    return false;
  }

  // Failed phase: discard what libnice sends until it closes the connection.
  void drain_local() {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(local_fd, buf, sizeof buf);
      if (n > 0) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) close();
      return;
    }
  }

  void close() {
    if (phase == Phase::Closed) return;
    phase = Phase::Closed;
    if (source != nullptr) {
      g_source_destroy(source);  // allowed inside its own dispatch
      g_source_unref(source);
      source = nullptr;
    }
    if (ssl != nullptr) SSL_free(ssl);  // frees the BIOs
    ssl = nullptr;
    ERR_clear_error();
    if (server_fd >= 0) ::close(server_fd);
    if (local_fd >= 0) ::close(local_fd);
    server_fd = local_fd = -1;
  }

  // Why the handshake failed, as precisely as OpenSSL tells.
  std::string handshake_error(int rc) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return std::string("certificate rejected: ") + X509_verify_cert_error_string(verify);
    }
    if (SSL_get_error(ssl, rc) == SSL_ERROR_SSL) return "TLS handshake failed: " + take_openssl_error();
    ERR_clear_error();
    return "TLS handshake failed";
  }

  // Moves every byte it can in both directions, then updates what the source
  // waits for. Everything is non-blocking; GLib only wakes us up.
  void pump() {
    if (phase == Phase::Failed) {
      drain_local();
      return;
    }
    auto local_events = g_source_query_unix_fd(source, local_tag);
    auto server_events = g_source_query_unix_fd(source, server_tag);
    char buf[16 * 1024];
    bool progress = true;
    while (progress) {
      progress = false;
      // libnice -> up. After a hang-up, read anyway: it returns the EOF.
      if (up.size() < kTunnelBufferBytes || (local_events & kHangUp)) {
        ssize_t n = ::read(local_fd, buf, sizeof buf);
        if (n > 0) {
          up.append(buf, static_cast<size_t>(n));
          progress = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          close();  // libnice closed its TURN connection (or it broke)
          return;
        }
      }
      if (phase == Phase::Connecting) {
        if (!(server_events & (G_IO_OUT | kHangUp))) break;
        int error = 0;
        socklen_t elen = sizeof error;
        if (getsockopt(server_fd, SOL_SOCKET, SO_ERROR, &error, &elen) != 0) error = errno;
        if (error != 0) {
          fail(std::string("cannot connect: ") + std::strerror(error));
          return;
        }
        phase = Phase::Handshaking;
        server_events = static_cast<GIOCondition>(server_events & ~G_IO_OUT);
      }
      // server socket -> TLS
      if (!server_eof && (phase == Phase::Handshaking || down.size() < kTunnelBufferBytes ||
                          (server_events & kHangUp))) {
        ssize_t n = ::read(server_fd, buf, sizeof buf);
        if (n > 0) {
          BIO_write(rbio, buf, static_cast<int>(n));
          progress = true;
        } else if (n == 0) {
          server_eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          fail(std::string("connection to the server lost: ") + std::strerror(errno));
          return;
        }
      }
      if (phase == Phase::Handshaking) {
        ERR_clear_error();
        int rc = SSL_do_handshake(ssl);
        if (rc == 1) {
          phase = Phase::Open;
          progress = true;
          RTCMESH_LOG(Info, "ice", "TURN over TLS to " << tunnel.label_ << ": " << SSL_get_version(ssl)
                                                       << ", " << SSL_get_cipher_name(ssl));
        } else if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ) {
          flush_tls_out();  // a TLS alert for the server, best effort
          fail(handshake_error(rc));
          return;
        }
      }
      if (phase == Phase::Open) {
        // up -> TLS (bounded by what still waits for the server socket)
        while (!up.empty() && tls_out.size() < kTunnelBufferBytes) {
          ERR_clear_error();
          int n = SSL_write(ssl, up.data(), static_cast<int>(std::min<size_t>(up.size(), 16 * 1024)));
          if (n <= 0) {
            fail("TLS write failed: " + take_openssl_error());
            return;
          }
          up.erase(0, static_cast<size_t>(n));
          progress = true;
        }
        // TLS -> down
        while (down.size() < kTunnelBufferBytes) {
          ERR_clear_error();
          int n = SSL_read(ssl, buf, sizeof buf);
          if (n > 0) {
            down.append(buf, static_cast<size_t>(n));
            progress = true;
            continue;
          }
          int error = SSL_get_error(ssl, n);
          if (error == SSL_ERROR_WANT_READ) break;
          if (error == SSL_ERROR_ZERO_RETURN) {
            server_eof = true;  // close_notify from the server
            break;
          }
          fail("TLS read failed: " + take_openssl_error());
          return;
        }
      }
      // TLS -> server socket
      if (!flush_tls_out(&progress)) return;
      // down -> libnice
      if (!down.empty()) {
        ssize_t n = ::send(local_fd, down.data(), down.size(), MSG_NOSIGNAL);
        if (n > 0) {
          down.erase(0, static_cast<size_t>(n));
          progress = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          close();
          return;
        }
      }
      local_events = server_events = static_cast<GIOCondition>(0);
    }
    if (server_eof) {
      // Whatever libnice had not read yet is lost with the session.
      fail(phase == Phase::Open ? "the server closed the connection"
                                : "the server closed the connection during the TLS handshake");
      return;
    }
    int local_want = (up.size() < kTunnelBufferBytes ? G_IO_IN : 0) | (down.empty() ? 0 : G_IO_OUT);
    int server_want = G_IO_OUT;
    if (phase != Phase::Connecting) {
      server_want = tls_out.empty() ? 0 : G_IO_OUT;
      if (phase == Phase::Handshaking || down.size() < kTunnelBufferBytes) server_want |= G_IO_IN;
    }
    g_source_modify_unix_fd(source, local_tag, static_cast<GIOCondition>(local_want));
    g_source_modify_unix_fd(source, server_tag, static_cast<GIOCondition>(server_want));
  }

  // Moves the TLS output to the server socket; false if the link failed.
  bool flush_tls_out(bool* progress = nullptr) {
    char buf[16 * 1024];
    for (;;) {
      int n = BIO_read(wbio, buf, sizeof buf);
      if (n <= 0) break;
      tls_out.append(buf, static_cast<size_t>(n));
    }
    if (tls_out.empty() || phase == Phase::Connecting) return true;
    ssize_t n = ::send(server_fd, tls_out.data(), tls_out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      tls_out.erase(0, static_cast<size_t>(n));
      if (progress != nullptr) *progress = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      if (progress != nullptr) fail(std::string("connection to the server lost: ") + std::strerror(errno));
      return false;
    }
    return true;
  }
};

TurnTlsTunnel::TurnTlsTunnel(GMainContext* context, const Server& server)
    : context_(g_main_context_ref(context)), server_(server) {
  const std::string& host = server.host.empty() ? server.address : server.host;
  label_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(server.port);
}

Result<std::unique_ptr<TurnTlsTunnel>> TurnTlsTunnel::create(GMainContext* context,
                                                             const Server& server) {
  std::unique_ptr<TurnTlsTunnel> self(new TurnTlsTunnel(context, server));
  ERR_clear_error();
  self->ctx_ = SSL_CTX_new(TLS_client_method());
  if (self->ctx_ == nullptr) return make_error("TURN over TLS: " + take_openssl_error());
  SSL_CTX_set_min_proto_version(self->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(self->ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_set_default_verify_paths(self->ctx_) != 1) {
    return make_error("TURN over TLS: cannot load the trust store: " + take_openssl_error());
  }
  // Listen on the loopback address of the server's family: libnice opens a
  // TURN connection from each host candidate of that family.
  bool v6 = server.address.find(':') != std::string::npos;
  self->local_address_ = v6 ? "::1" : "127.0.0.1";
  sockaddr_storage addr;
  socklen_t len = 0;
  make_sockaddr(self->local_address_, 0, addr, len);
  self->listen_fd_ = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (self->listen_fd_ < 0 || ::bind(self->listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(self->listen_fd_, 8) != 0 ||
      ::getsockname(self->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return make_error(std::string("TURN over TLS: cannot listen on ") + self->local_address_ + ": " +
                      std::strerror(errno));
  }
  self->local_port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                               : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  self->listen_handler_ = [raw = self.get()] { raw->accept_links(); };
  self->listen_source_ = new_fd_source(&self->listen_handler_);
  g_source_add_unix_fd(self->listen_source_, self->listen_fd_, G_IO_IN);
  g_source_attach(self->listen_source_, context);
  return self;
}

void TurnTlsTunnel::accept_links() {
  // Links close themselves (possibly inside their own dispatch); reap them here.
  std::erase_if(links_, [](const std::unique_ptr<Link>& l) { return l->phase == Link::Phase::Closed; });
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (links_.size() >= kMaxTunnelLinks) {
      RTCMESH_LOG(Warn, "ice", "TURN over TLS to " << label_ << ": too many connections");
      ::close(fd);
      continue;
    }
    // Kept even when start() failed: a failed link holds libnice's side open.
    auto link = std::make_unique<Link>(*this, fd);
    link->start();
    links_.push_back(std::move(link));
  }
}

TurnTlsTunnel::~TurnTlsTunnel() {
  links_.clear();
  if (listen_source_ != nullptr) {
    g_source_destroy(listen_source_);
    g_source_unref(listen_source_);
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  g_main_context_unref(context_);
}

namespace {

constexpr unsigned kComponent = 1;
// Socket buffers: the default 208 KiB receive buffer overflows at data-channel
// rates (measured-here.md); rmem_max on Debian is 4 MiB unless raised.
constexpr int kSocketBufferBytes = 4 * 1024 * 1024;

const char* type_name(NiceCandidateType type) {
  switch (type) {
    case NICE_CANDIDATE_TYPE_HOST: return "host";
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE: return "srflx";
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE: return "prflx";
    case NICE_CANDIDATE_TYPE_RELAYED: return "relay";
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
    case NICE_CANDIDATE_TRANSPORT_UDP: out.transport = "udp"; break;
    case NICE_CANDIDATE_TRANSPORT_TCP_ACTIVE: out.transport = "tcp"; out.tcp_type = "active"; break;
    case NICE_CANDIDATE_TRANSPORT_TCP_PASSIVE: out.transport = "tcp"; out.tcp_type = "passive"; break;
    case NICE_CANDIDATE_TRANSPORT_TCP_SO: out.transport = "tcp"; out.tcp_type = "so"; break;
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
    case State::New: return "new";
    case State::Checking: return "checking";
    case State::Connected: return "connected";
    case State::Completed: return "completed";
    case State::Disconnected: return "disconnected";
    case State::Failed: return "failed";
    case State::Closed: return "closed";
  }
  return "?";
}

const char* to_string(GatheringState state) {
  switch (state) {
    case GatheringState::New: return "new";
    case GatheringState::Gathering: return "gathering";
    case GatheringState::Complete: return "complete";
  }
  return "?";
}

IceTransport::IceTransport(base::Loop& loop, Callbacks callbacks)
    : loop_(loop), callbacks_(std::move(callbacks)) {}

Result<std::unique_ptr<IceTransport>> IceTransport::create(base::Loop& loop, const Config& config,
                                                           Callbacks callbacks) {
  std::unique_ptr<IceTransport> self(new IceTransport(loop, std::move(callbacks)));
  auto options = static_cast<NiceAgentOption>(NICE_AGENT_OPTION_REGULAR_NOMINATION |
                                              NICE_AGENT_OPTION_CONSENT_FRESHNESS |
                                              NICE_AGENT_OPTION_ICE_TRICKLE);
  NiceAgent* agent = nice_agent_new_full(loop.context(), NICE_COMPATIBILITY_RFC5245, options);
  if (agent == nullptr) return make_error("libnice: cannot create agent");
  self->agent_ = agent;
  g_object_set(agent, "ice-udp", TRUE, "ice-tcp", config.tcp ? TRUE : FALSE, "upnp", FALSE,
               // RFC 8445 section 14.3: Ta is 50 ms for a single stream in the RFC,
               // but on a LAN/loopback the checks are tiny; libnice's pacing decides
               // how soon the nominating check follows the first success.
               "stun-pacing-timer", 1u, "stun-initial-timeout", 200u,
               "stun-max-retransmissions", 5u, "force-relay", config.relay_only ? TRUE : FALSE,
               nullptr);
  for (const auto& address : config.local_addresses) {
    NiceAddress addr;
    nice_address_init(&addr);
    if (!nice_address_set_from_string(&addr, address.c_str())) {
      return make_error("invalid local address '" + address + "'");
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
      NiceRelayType type =
          server.transport == Server::Transport::Udp ? NICE_RELAY_TYPE_TURN_UDP : NICE_RELAY_TYPE_TURN_TCP;
      if (server.transport == Server::Transport::Tls) {
        auto tunnel = TurnTlsTunnel::create(loop.context(), server);
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
  nice_agent_attach_recv(agent, self->stream_, kComponent, loop.context(), on_recv, self.get());
  self->refresh_credentials();
  return self;
}

IceTransport::~IceTransport() {
  if (gathering_timer_ != 0) loop_.cancel(gathering_timer_);
  if (agent_ == nullptr) return;
  // Detach every callback before the agent goes: libnice may still dispatch
  // sources on this context, but everything runs on this thread, so after these
  // calls nothing can reach `this` any more.
  nice_agent_attach_recv(agent_, stream_, kComponent, loop_.context(), nullptr, nullptr);
  g_signal_handlers_disconnect_by_data(agent_, this);
  // close_async releases TURN allocations and prunes refresh timers; the agent
  // is released when it completes.
  nice_agent_close_async(
      agent_, +[](GObject* source, GAsyncResult*, gpointer) { g_object_unref(source); }, nullptr);
  // The TLS tunnels go now, not when close_async completes: closing a TURN
  // connection over TCP/TLS already ends its allocation (RFC 6062 section 4:
  // the allocation lives with its control connection; coturn deletes it at
  // once), and no OpenSSL call may run after the peer layer's teardown, which
  // an exiting process does not wait past (OpenSSL's atexit cleanup would
  // race a late handshake on the loop thread).
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
  if (candidate.type == "host") type = NICE_CANDIDATE_TYPE_HOST;
  else if (candidate.type == "srflx") type = NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE;
  else if (candidate.type == "prflx") type = NICE_CANDIDATE_TYPE_PEER_REFLEXIVE;
  else if (candidate.type == "relay") type = NICE_CANDIDATE_TYPE_RELAYED;
  else return make_error("ICE: unknown candidate type '" + candidate.type + "'");

  NiceCandidateTransport transport;
  if (candidate.transport == "udp") {
    transport = NICE_CANDIDATE_TRANSPORT_UDP;
  } else if (candidate.transport == "tcp") {
    if (candidate.tcp_type == "active") transport = NICE_CANDIDATE_TRANSPORT_TCP_ACTIVE;
    else if (candidate.tcp_type == "passive") transport = NICE_CANDIDATE_TRANSPORT_TCP_PASSIVE;
    else if (candidate.tcp_type == "so") transport = NICE_CANDIDATE_TRANSPORT_TCP_SO;
    else return make_error("ICE: tcp candidate without tcptype");
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
  RTCMESH_LOG(Debug, "ice", "component state " << nice_component_state_to_string(
                                static_cast<NiceComponentState>(state)));
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
  RTCMESH_LOG(Warn, "ice", "ICE gathering did not finish within "
                               << gathering_timeout_.count() << " ms (a TURN server that closed "
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
