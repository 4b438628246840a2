// TURN over TLS (turns:) for libnice, which has no TURN-over-TLS client.
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
// Closing libnice's side instead would hang its gathering (libnice detaches a
// TURN socket that the other end closes and forgets the pending allocation).
#pragma once

#include <glib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "ice/ice_transport.hpp"

typedef struct ssl_ctx_st SSL_CTX;

namespace rtcmesh::ice {

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

}  // namespace rtcmesh::ice
