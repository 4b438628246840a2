// DTLS 1.2 (RFC 6347) over a datagram link, with OpenSSL 3 and memory BIOs,
// as WebRTC uses it (RFC 8827, RFC 8261): the peer's self-signed certificate is
// accepted only if its fingerprint matches the one from the remote SDP.
//
// DtlsTransport is itself a PacketTransport for the layer above (SCTP): send()
// encrypts one record per datagram; decrypted application records are delivered
// to the receiver.
//
// Thread-safety: not thread-safe. Construct, call and destroy on the loop thread;
// all callbacks run there. `lower` must outlive this object.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/loop.hpp"
#include "base/packet_transport.hpp"
#include "dtls/certificate.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct bio_st BIO;

namespace rtcmesh::dtls {

enum class Role { Client, Server };  // a=setup:active -> Client, passive -> Server

enum class State { New, Connecting, Connected, Closed, Failed };
const char* to_string(State state);

struct RemoteFingerprint {
  std::string algorithm;  // e.g. "sha-256"
  std::string value;      // upper-case colon-separated hex
};

class DtlsTransport final : public PacketTransport {
 public:
  // `error` is empty except for State::Failed, where it says why (for example
  // "remote certificate fingerprint mismatch: expected sha-256 AB:.., got CD:..").
  using StateCallback = std::function<void(State state, const std::string& error)>;

  DtlsTransport(base::Loop& loop, PacketTransport& lower, std::shared_ptr<Certificate> cert,
                Role role, std::vector<RemoteFingerprint> remote_fingerprints,
                StateCallback on_state);
  ~DtlsTransport() override;
  DtlsTransport(const DtlsTransport&) = delete;
  DtlsTransport& operator=(const DtlsTransport&) = delete;

  // Starts the handshake (the client sends its ClientHello). Datagrams that
  // arrived before start() (up to 32) are kept and processed now.
  void start();
  // Feeds one datagram received from the lower layer. Call for every DTLS packet
  // (first byte 20..63, RFC 7983); before start() it is buffered.
  void receive_from_lower(ByteSpan datagram);
  // Sends application data (one SCTP packet). False unless Connected.
  bool send(ByteSpan packet) override;
  // Sends close_notify and moves to Closed. Idempotent.
  void close();

  State state() const { return state_; }
  Role role() const { return role_; }

 private:
  void set_state(State state, const std::string& error = {});
  void do_handshake();
  void read_records();
  void flush_output();
  void arm_timer();
  void fail(const std::string& error);

  base::Loop& loop_;
  PacketTransport& lower_;
  std::shared_ptr<Certificate> cert_;
  Role role_;
  std::vector<RemoteFingerprint> remote_fingerprints_;
  StateCallback on_state_;
  State state_ = State::New;
  bool started_ = false;
  std::deque<std::vector<uint8_t>> early_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_bio_ = nullptr;
  BIO* out_bio_ = nullptr;
  base::Loop::TimerId timer_ = 0;
  std::string verify_error_;
  std::shared_ptr<bool> alive_;  // timers capture a weak_ptr to this
  std::vector<uint8_t> read_buffer_;
};

}  // namespace rtcmesh::dtls
