#include "ice/turn_tls_tunnel.hpp"

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

namespace {

// libnice allocates once per host candidate of the server's address family; a
// handful of links is all one agent ever opens.
constexpr size_t kMaxTunnelLinks = 16;
// Bytes buffered per direction before the tunnel stops reading that side.
constexpr size_t kTunnelBufferBytes = 256 * 1024;

bool is_numeric_address(const std::string& text) {
  in6_addr buf;
  return inet_pton(AF_INET, text.c_str(), &buf) == 1 ||
         inet_pton(AF_INET6, text.c_str(), &buf) == 1;
}

bool make_sockaddr(const std::string& address, uint16_t port, sockaddr_storage& out,
                   socklen_t& len) {
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
    if (::connect(server_fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 &&
        errno != EINPROGRESS) {
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
    } else if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1 ||
               SSL_set1_host(ssl, host.c_str()) != 1) {
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
      std::string why =
          std::string("certificate rejected: ") + X509_verify_cert_error_string(verify);
      if (verify == X509_V_ERR_IP_ADDRESS_MISMATCH && tunnel.server_.host.empty()) {
        why += " (no server name was given, so the certificate must name the IP address)";
      }
      return why;
    }
    if (SSL_get_error(ssl, rc) == SSL_ERROR_SSL)
      return "TLS handshake failed: " + take_openssl_error();
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
          RTCMESH_LOG(Info, "ice",
                      "TURN over TLS to " << tunnel.label_ << ": " << SSL_get_version(ssl) << ", "
                                          << SSL_get_cipher_name(ssl));
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
          int n =
              SSL_write(ssl, up.data(), static_cast<int>(std::min<size_t>(up.size(), 16 * 1024)));
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
      if (progress != nullptr)
        fail(std::string("connection to the server lost: ") + std::strerror(errno));
      return false;
    }
    return true;
  }
};

TurnTlsTunnel::TurnTlsTunnel(GMainContext* context, const Server& server)
    : context_(g_main_context_ref(context)), server_(server) {
  const std::string& host = server.host.empty() ? server.address : server.host;
  label_ = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  label_ += ":" + std::to_string(server.port);
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
  if (self->listen_fd_ < 0 ||
      ::bind(self->listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(self->listen_fd_, 8) != 0 ||
      ::getsockname(self->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return make_error(std::string("TURN over TLS: cannot listen on ") + self->local_address_ +
                      ": " + std::strerror(errno));
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
  std::erase_if(links_,
                [](const std::unique_ptr<Link>& l) { return l->phase == Link::Phase::Closed; });
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

}  // namespace rtcmesh::ice
