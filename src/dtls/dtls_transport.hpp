// DTLS 1.2 (RFC 6347) over a datagram link, with OpenSSL 3 and custom BIOs,
// as WebRTC uses it (RFC 8827, RFC 8261): the peer's self-signed certificate is
// accepted only if its fingerprint matches one from the remote SDP.
//
// DtlsTransport is itself a PacketTransport for the layer above (SCTP): send()
// encrypts one record per datagram; decrypted application records are delivered
// to the receiver, one call per record, in the order they were read.
//
// Behaviour:
// - Handshake datagrams are at most 1200 bytes; the ClientHello is one datagram.
// - Retransmission (RFC 6347 section 4.2.4) starts at 100 ms and doubles (cap
//   4 s), so one lost flight costs ~100 ms; after 30 s without completing the
//   handshake the transport fails with "DTLS handshake timed out".
// - Failed carries a reason: a fingerprint mismatch ("remote certificate
//   fingerprint mismatch: expected sha-256 AB:.., got CD:.."), an alert from
//   the peer ("DTLS error: sslv3 alert bad certificate") or another OpenSSL error.
// - A close_notify from the peer (answered with ours) moves to Closed.
// - Malformed or unauthenticated records are dropped silently (RFC 6347
//   section 4.1.2.7); they never fail the transport.
//
// Time and execution: every timer (retransmission, the 30 s limit) runs on the
// executor given to the constructor; tests drive it with virtual time
// (testing::ManualExecutor, which also moves the clock OpenSSL reads).
//
// Thread-safety: not thread-safe. Construct, call and destroy on the executor
// thread; all callbacks run there (checked by assert in debug builds). `lower` must
// outlive this object. The object may be destroyed at any time, also from
// inside its own state callback or receiver (the receiver must then not touch
// its own captures after destroying); no callback runs once the destructor
// has started, and pending timers become no-ops.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/executor.hpp"
#include "base/packet_transport.hpp"
#include "dtls/certificate.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct bio_st BIO;

namespace rtcmesh::dtls {

enum class Role { Client, Server };  // a=setup:active -> Client, passive -> Server

enum class State { New, Connecting, Connected, Closed, Failed };
const char* to_string(State state);

// One a=fingerprint of the remote SDP (RFC 8122). The peer's certificate is
// accepted if it matches any of them; with none, every handshake fails.
struct RemoteFingerprint {
  std::string algorithm;  // "sha-1", "sha-224", "sha-256", "sha-384" or "sha-512"
  std::string value;      // colon-separated hex, compared case-insensitively
};

class DtlsTransport final : public PacketTransport {
 public:
  // `error` is empty except for State::Failed, where it says why (for example
  // "remote certificate fingerprint mismatch: expected sha-256 AB:.., got CD:..").
  using StateCallback = std::function<void(State state, const std::string& error)>;

  DtlsTransport(base::Executor& executor, PacketTransport& lower, std::shared_ptr<Certificate> cert,
                Role role, std::vector<RemoteFingerprint> remote_fingerprints,
                StateCallback on_state);
  ~DtlsTransport() override;
  DtlsTransport(const DtlsTransport&) = delete;
  DtlsTransport& operator=(const DtlsTransport&) = delete;

  // Starts the handshake (the client sends its ClientHello) and moves to
  // Connecting. Datagrams that arrived before start() (up to 32; more are
  // dropped) are kept and processed now. Setup errors (bad certificate, OpenSSL
  // failure) surface here as Failed. No effect after close() or a second call.
  // Builds the SSL_CTX every transport of a certificate shares (DTLS 1.2 only,
  // cipher suites, groups, DTLS-SRTP profiles, certificate and key,
  // fingerprint verification);
  // see Certificate::dtls_context(). nullptr on failure, reasons in OpenSSL's
  // error queue. Thread-safe.
  static SSL_CTX* build_context(X509* x509, EVP_PKEY* key);

  void start();
  // Feeds one datagram received from the lower layer. Call for every DTLS packet
  // (first byte 20..63, RFC 7983; others are ignored); before start() it is
  // buffered, after Closed/Failed dropped. Runs one SSL_read loop and delivers
  // the datagram's application records synchronously.
  void receive_from_lower(ByteSpan datagram);
  // Sends application data (one SCTP packet, 1..16384 bytes) as one record in
  // one datagram, without allocating. False unless Connected. The result says
  // only whether DTLS took the packet; the link below may still drop it.
  bool send(ByteSpan packet) override;
  // Sends close_notify (only possible once Connected) and moves to Closed,
  // firing the state callback. Idempotent; no effect once Failed.
  void close();

  State state() const { return state_; }
  Role role() const { return role_; }

 private:
  struct Glue;  // OpenSSL callbacks (BIOs, verify, timer); defined in the .cpp

  // Every function that can run a user callback (state callback, receiver)
  // returns false when `this` was destroyed during it: the caller must then
  // return at once without touching members.
  bool set_state(State state, const std::string& error = {});
  bool fail(const std::string& error);
  void process_datagram(ByteSpan datagram);
  ByteSpan drop_short_records(ByteSpan datagram, std::vector<uint8_t>& scratch) const;
  bool do_handshake();
  bool on_handshake_done();
  bool read_records(bool until_would_block = false);
  bool on_close_notify();
  void arm_timer();
  void on_retransmit_timer();
  void cancel_timers();
  bool check_remote_certificate(X509* cert);
  std::string ssl_error_text(int ssl_error, int ret);

  base::Executor& executor_;
  PacketTransport& lower_;
  std::shared_ptr<Certificate> cert_;
  Role role_;
  std::vector<RemoteFingerprint> remote_fingerprints_;
  StateCallback on_state_;
  State state_ = State::New;
  bool started_ = false;
  bool handshake_done_ = false;
  bool peer_verified_ = false;              // the verify callback matched a fingerprint
  std::deque<std::vector<uint8_t>> early_;  // datagrams received before start()
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_bio_ = nullptr;              // reads `input_` (owned by ssl_)
  BIO* out_bio_ = nullptr;             // writes each record to lower_ (owned by ssl_)
  ByteSpan input_;                     // the datagram being processed, until OpenSSL reads it
  base::Executor::TimerId timer_ = 0;  // DTLS retransmission (RFC 6347 4.2.4)
  base::Executor::TimerId deadline_timer_ = 0;  // whole-handshake limit
  std::string init_error_;                      // SSL setup failure, reported at start()
  std::string verify_error_;
  std::shared_ptr<bool> alive_;       // timers and posted tasks capture a weak_ptr to this
  std::vector<uint8_t> read_buffer_;  // one plaintext record, reused
  size_t min_record_overhead_ = 16;   // bytes an encrypted record has at least (set at connect)
};

}  // namespace rtcmesh::dtls
