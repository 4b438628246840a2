#include "dtls/dtls_transport.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cstring>

#include "base/log.hpp"

namespace rtcmesh::dtls {
namespace {

constexpr char kLog[] = "dtls";

// Datagrams kept while the transport is not started yet (the peer's first
// flight often arrives before our ICE/DTLS side is ready; dropping it would
// cost a full retransmission timeout).
constexpr size_t kMaxEarlyDatagrams = 32;

// Handshake datagrams stay below 1200 bytes, the size WebRTC assumes every path
// carries (RFC 8261 section 5; ICE uses the same bound).
constexpr long kHandshakeMtu = 1200;
// After the handshake only application records are written, one per SCTP
// packet. OpenSSL 3.0 never splits an application record by MTU, but keep the
// MTU well above any SCTP packet anyway (RFC 8261 section 5: DTLS must be able
// to send records larger than the path MTU; SCTP does its own fragmentation).
constexpr long kConnectedMtu = 16384;

// RFC 6347 section 4.2.4.1 suggests a 1 s initial retransmission timer. On a
// path ICE has just proven live that turns one lost datagram into a 1 s setup
// delay, so start at 100 ms (libwebrtc uses 50 ms) and double. The 4 s cap
// keeps retrying while the 30 s limit below is reached before OpenSSL's own
// limit of 12 retransmissions of one flight.
constexpr unsigned int kInitialRetransmitUs = 100'000;
constexpr unsigned int kMaxRetransmitUs = 4'000'000;
constexpr std::chrono::milliseconds kHandshakeTimeout{30'000};

// Only ECDHE with AEAD ciphers: forward secrecy (RFC 8827 section 6.5 requires
// it), and a short list keeps the ClientHello well inside one datagram.
// ECDSA first (our certificate and every browser's is ECDSA); the RSA suites
// only matter when we are the client of a peer with an RSA certificate.
constexpr char kCipherList[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kGroups[] = "X25519:P-256";
// DTLS-SRTP (RFC 5764) profiles for the use_srtp extension, offered as client
// and answered as server although data channels never use SRTP. Some stacks
// require a negotiated profile on every DTLS transport: Pion (webrtc 3.1, dtls
// 2.2) as client aborts with insufficient_security when the ServerHello lacks
// use_srtp, and as server completes the handshake but then fails the
// connection ("no SRTP Protection Profile was chosen") and never starts SCTP.
// Browsers always offer it; this is the set Chromium offers and Pion accepts
// (Pion knows AES_128_GCM and AES128_CM_SHA1_80). Preference: ours, as server.
constexpr char kSrtpProfiles[] =
    "SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_80";

std::string lower_case(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool equal_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// All queued OpenSSL errors of this thread as "reason; reason", and clears them.
std::string drain_openssl_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    std::array<char, 256> buffer{};
    if (reason == nullptr) {
      ERR_error_string_n(code, buffer.data(), buffer.size());
      reason = buffer.data();
    }
    if (!text.empty()) text += "; ";
    text += reason;
  }
  return text;
}

// SSL_get_error() is only reliable with an empty error queue (SSL_get_error(3)).
// ERR_clear_error() costs ~450 ns in OpenSSL 3.0, ERR_peek_error() ~50 ns:
// clear only when there is something to clear.
inline void clear_error_queue() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

void assert_executor_thread([[maybe_unused]] base::Executor& executor) {
  // OpenSSL DTLS state is not thread-safe: every call happens on the executor thread.
  assert(executor.in_executor_thread() && "DtlsTransport used off its executor thread");
}

}  // namespace

const char* to_string(State state) {
  switch (state) {
    case State::New:
      return "new";
    case State::Connecting:
      return "connecting";
    case State::Connected:
      return "connected";
    case State::Closed:
      return "closed";
    case State::Failed:
      return "failed";
  }
  return "unknown";
}

// The glue between OpenSSL's C callbacks and the transport. Nested, so it may
// touch private members.
struct DtlsTransport::Glue {
  static DtlsTransport* from_bio(BIO* bio) {
    return static_cast<DtlsTransport*>(BIO_get_data(bio));
  }

  static int bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  // Input BIO: hands OpenSSL the current datagram, whole, in one read (DTLS
  // reads one datagram per BIO_read; a datagram larger than `length` is
  // truncated like recv() on a UDP socket). Empty means "would block".
  static int in_read(BIO* bio, char* out, int length) {
    DtlsTransport* self = from_bio(bio);
    BIO_clear_retry_flags(bio);
    if (self->input_.empty() || length <= 0) {
      BIO_set_retry_read(bio);
      return -1;
    }
    size_t n = std::min(self->input_.size(), static_cast<size_t>(length));
    std::memcpy(out, self->input_.data(), n);
    self->input_ = {};
    return static_cast<int>(n);
  }

  static int in_write(BIO*, const char*, int) { return -1; }

  // Output BIO: OpenSSL writes one record (or one retransmitted handshake
  // message) per BIO_write; each goes out as its own datagram, straight from
  // OpenSSL's write buffer. A datagram link may drop it: that is not an error.
  static int out_write(BIO* bio, const char* data, int length) {
    DtlsTransport* self = from_bio(bio);
    BIO_clear_retry_flags(bio);
    if (length > 0) {
      self->lower_.send(
          ByteSpan(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(length)));
    }
    return length;
  }

  static int out_read(BIO*, char*, int) { return -1; }

  static long in_ctrl(BIO* bio, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_PENDING:
        return static_cast<long>(from_bio(bio)->input_.size());
      case BIO_CTRL_FLUSH:
        return 1;
      default:
        return 0;  // WPENDING, DGRAM_* queries: nothing to report
    }
  }

  static long out_ctrl(BIO*, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;  // every write is already sent
      case BIO_CTRL_WPENDING:
        return 0;  // nothing buffered
      case BIO_CTRL_DGRAM_QUERY_MTU:
        return 0;  // unknown: we set the MTU ourselves
      case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
        return 0;  // the MTU we set is the datagram size
      default:
        return 0;
    }
  }

  static const BIO_METHOD* input_method() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m =
          BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rtcmesh dtls input");
      if (m != nullptr) {
        BIO_meth_set_create(m, bio_create);
        BIO_meth_set_read(m, in_read);
        BIO_meth_set_write(m, in_write);
        BIO_meth_set_ctrl(m, in_ctrl);
      }
      return m;
    }();
    return method;
  }

  static const BIO_METHOD* output_method() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m =
          BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rtcmesh dtls output");
      if (m != nullptr) {
        BIO_meth_set_create(m, bio_create);
        BIO_meth_set_read(m, out_read);
        BIO_meth_set_write(m, out_write);
        BIO_meth_set_ctrl(m, out_ctrl);
      }
      return m;
    }();
    return method;
  }

  // WebRTC certificates are self-signed, so chain validation always "fails";
  // the peer is authenticated by the fingerprint from the signalled SDP
  // instead (RFC 8827 section 6.5, RFC 8122 section 5). Only the end-entity
  // certificate (depth 0) is checked; anything the peer sent above it is
  // irrelevant.
  static int verify(int /*preverify_ok*/, X509_STORE_CTX* store) {
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (ssl == nullptr) return 0;
    auto* self = static_cast<DtlsTransport*>(SSL_get_app_data(ssl));
    if (self == nullptr) return 0;
    if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    if (cert == nullptr) return 0;
    if (!self->check_remote_certificate(cert)) {
      // Makes OpenSSL send a bad_certificate alert (RFC 5246 section 7.2.2).
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
      return 0;
    }
    return 1;
  }

  // Retransmission timer schedule (see kInitialRetransmitUs).
  static unsigned int retransmit_timeout(SSL*, unsigned int previous_us) {
    if (previous_us == 0) return kInitialRetransmitUs;
    return std::min(previous_us * 2, kMaxRetransmitUs);
  }
};

SSL_CTX* DtlsTransport::build_context(X509* x509, EVP_PKEY* key) {
  SSL_CTX* ctx = SSL_CTX_new(DTLS_method());
  if (ctx == nullptr) return nullptr;
  // DTLS 1.2 only (RFC 8827 section 6.5 requires >= 1.2; OpenSSL 3.0 has no
  // 1.3 and negotiates 1.2 when a peer's ClientHello also offers 1.3).
  // RFC 8261 section 5: no compression; RFC 8827: no renegotiation. Tickets
  // and the session cache are useless for one-off WebRTC sessions and would
  // only add a NewSessionTicket message to the server's last flight.
  bool ok = SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) == 1 &&
            SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) == 1;
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_QUERY_MTU | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  ok = ok && SSL_CTX_set_cipher_list(ctx, kCipherList) == 1 &&
       SSL_CTX_set1_groups_list(ctx, kGroups) == 1 &&
       SSL_CTX_set_tlsext_use_srtp(ctx, kSrtpProfiles) == 0 &&  // 0 is success here
       SSL_CTX_use_certificate(ctx, x509) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
       SSL_CTX_check_private_key(ctx) == 1;
  if (!ok) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  // Both roles demand a certificate (RFC 8827 section 6.5: mutual authentication).
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, Glue::verify);
  return ctx;
}

DtlsTransport::DtlsTransport(base::Executor& executor, PacketTransport& lower,
                             std::shared_ptr<Certificate> cert, Role role,
                             std::vector<RemoteFingerprint> remote_fingerprints,
                             StateCallback on_state)
    : executor_(executor),
      lower_(lower),
      cert_(std::move(cert)),
      role_(role),
      remote_fingerprints_(std::move(remote_fingerprints)),
      on_state_(std::move(on_state)),
      alive_(std::make_shared<bool>(true)),
      read_buffer_(SSL3_RT_MAX_PLAIN_LENGTH) {
  // Setup failures cannot be reported from a constructor (no exceptions, no
  // callbacks yet): they are kept and turn start() into State::Failed.
  init_error_ = [this]() -> std::string {
    clear_error_queue();
    auto setup_failed = [](const char* what) {
      std::string reason = drain_openssl_errors();
      return std::string("DTLS setup failed: ") + what + (reason.empty() ? "" : ": " + reason);
    };
    if (!cert_ || cert_->x509() == nullptr || cert_->key() == nullptr) {
      return "DTLS setup failed: no local certificate";
    }
    const BIO_METHOD* in_method = Glue::input_method();
    const BIO_METHOD* out_method = Glue::output_method();
    if (in_method == nullptr || out_method == nullptr) return setup_failed("BIO_meth_new");

    ctx_ = cert_->dtls_context();
    if (ctx_ == nullptr) return setup_failed("SSL_CTX configuration");
    SSL_CTX_up_ref(ctx_);  // released in the destructor

    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return setup_failed("SSL_new");
    SSL_set_app_data(ssl_, this);
    in_bio_ = BIO_new(in_method);
    out_bio_ = BIO_new(out_method);
    if (in_bio_ == nullptr || out_bio_ == nullptr) {
      BIO_free(in_bio_);
      BIO_free(out_bio_);
      in_bio_ = out_bio_ = nullptr;
      return setup_failed("BIO_new");
    }
    BIO_set_data(in_bio_, this);
    BIO_set_data(out_bio_, this);
    SSL_set_bio(ssl_, in_bio_, out_bio_);  // ssl_ owns both now
    if (SSL_set_mtu(ssl_, kHandshakeMtu) <= 0) return setup_failed("SSL_set_mtu");
    DTLS_set_timer_cb(ssl_, Glue::retransmit_timeout);
    if (role_ == Role::Client) {
      SSL_set_connect_state(ssl_);
    } else {
      SSL_set_accept_state(ssl_);
    }
    return {};
  }();
}

DtlsTransport::~DtlsTransport() {
  // From here on nothing may call back: timers and posted tasks hold a
  // weak_ptr to alive_, and user callbacks are dropped.
  alive_.reset();
  on_state_ = nullptr;
  if (timer_ != 0 || deadline_timer_ != 0) {
    assert_executor_thread(executor_);
    cancel_timers();
  }
  if (ssl_ != nullptr) SSL_free(ssl_);  // also frees in_bio_ and out_bio_; sends nothing
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void DtlsTransport::start() {
  assert_executor_thread(executor_);
  if (started_ || state_ != State::New) return;
  started_ = true;
  if (!init_error_.empty()) {
    early_.clear();
    fail(init_error_);
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  deadline_timer_ = executor_.post_after(kHandshakeTimeout, [this, alive] {
    if (alive.expired()) return;
    deadline_timer_ = 0;
    if (state_ == State::Connecting) fail("DTLS handshake timed out");
  });
  if (!set_state(State::Connecting)) return;
  if (state_ != State::Connecting) return;  // closed from the callback

  if (role_ == Role::Client) {
    if (!do_handshake()) return;  // writes the ClientHello
  }
  // Datagrams that arrived early, in arrival order.
  auto early = std::move(early_);
  early_.clear();
  for (const auto& datagram : early) {
    if (state_ != State::Connecting && state_ != State::Connected) return;
    process_datagram(ByteSpan(datagram.data(), datagram.size()));
    if (alive.expired()) return;
  }
}

void DtlsTransport::receive_from_lower(ByteSpan datagram) {
  assert_executor_thread(executor_);
  // RFC 7983 section 7: DTLS records start with a content type of 20..63.
  if (datagram.empty() || datagram[0] < 20 || datagram[0] > 63) return;
  if (!started_) {
    if (state_ == State::New && early_.size() < kMaxEarlyDatagrams) {
      early_.emplace_back(datagram.begin(), datagram.end());
    }
    return;
  }
  if (state_ != State::Connecting && state_ != State::Connected) return;
  process_datagram(datagram);
}

// OpenSSL 3.0.18+ answers an encrypted record shorter than its AEAD overhead
// (explicit nonce + tag) with a fatal internal_error alert instead of
// discarding it, so one forged 14-byte datagram would end the association.
// RFC 6347 section 4.1.2.7 says such records are dropped: do it before OpenSSL
// sees them. Returns the datagram, or a copy in `scratch` without those records.
ByteSpan DtlsTransport::drop_short_records(ByteSpan datagram, std::vector<uint8_t>& scratch) const {
  constexpr size_t kHeader = 13;
  bool copying = false;  // a short record was met: `scratch` holds the records kept so far
  size_t pos = 0;
  while (pos + kHeader <= datagram.size()) {
    const uint16_t epoch = static_cast<uint16_t>(datagram[pos + 3] << 8 | datagram[pos + 4]);
    const size_t length = static_cast<size_t>(datagram[pos + 11] << 8 | datagram[pos + 12]);
    const size_t end = std::min(datagram.size(), pos + kHeader + length);
    if (epoch != 0 && length < min_record_overhead_) {
      if (!copying) scratch.assign(datagram.begin(), datagram.begin() + pos);
      copying = true;
    } else if (copying) {
      scratch.insert(scratch.end(), datagram.begin() + pos, datagram.begin() + end);
    }
    pos = end;
  }
  if (!copying) return datagram;
  scratch.insert(scratch.end(), datagram.begin() + pos,
                 datagram.end());  // a trailing partial header
  RTCMESH_LOG(Debug, kLog,
              "dropped encrypted records shorter than " << min_record_overhead_ << " bytes");
  return ByteSpan(scratch.data(), scratch.size());
}

// One datagram: either a handshake step or one SSL_read loop.
void DtlsTransport::process_datagram(ByteSpan datagram) {
  std::vector<uint8_t> scratch;
  datagram = drop_short_records(datagram, scratch);
  if (datagram.empty()) return;
  input_ = datagram;
  std::weak_ptr<bool> alive = alive_;
  if (!handshake_done_) {
    do_handshake();
  } else {
    read_records();
  }
  if (!alive.expired()) input_ = {};  // normally already consumed by OpenSSL
}

bool DtlsTransport::do_handshake() {
  clear_error_queue();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) return on_handshake_done();
  int error = SSL_get_error(ssl_, ret);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    arm_timer();
    return true;
  }
  return fail(ssl_error_text(error, ret));
}

bool DtlsTransport::on_handshake_done() {
  handshake_done_ = true;
  cancel_timers();
  // Belt and braces: the verify callback must have matched the certificate the
  // handshake actually used.
  X509* peer = SSL_get0_peer_certificate(ssl_);
  if (!peer_verified_ || peer == nullptr || !check_remote_certificate(peer)) {
    if (verify_error_.empty()) verify_error_ = "remote certificate was not verified";
    return fail(verify_error_);
  }
  SSL_set_mtu(ssl_, kConnectedMtu);
  // AES-GCM records carry an 8-byte explicit nonce and a 16-byte tag;
  // ChaCha20-Poly1305 only the tag.
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  const char* name = cipher ? SSL_CIPHER_get_name(cipher) : "";
  min_record_overhead_ = std::strstr(name, "CHACHA20") ? 16 : 24;
  arm_timer();  // normally nothing is pending once the handshake is complete
  RTCMESH_LOG(Debug, kLog,
              "connected as " << (role_ == Role::Client ? "client" : "server") << " with "
                              << SSL_get_cipher_name(ssl_));
  if (!set_state(State::Connected)) return false;
  if (state_ != State::Connected) return true;
  // The datagram that completed the handshake may carry application records
  // too, and OpenSSL may hold records that arrived before the Finished in
  // queues SSL_has_pending() does not look at: read until it says WANT_READ.
  return read_records(/*until_would_block=*/true);
}

// One SSL_read per application record; the loop ends when the datagram is
// used up. Once connected, SSL_has_pending() sees further records of the same
// datagram still in OpenSSL's read buffer, so the common case (one record per
// datagram) costs a single SSL_read and no failing call.
bool DtlsTransport::read_records(bool until_would_block) {
  std::weak_ptr<bool> alive = alive_;
  // SSL_get_error() needs an empty error queue: check it once per datagram
  // and again after every user callback (which may have used OpenSSL).
  clear_error_queue();
  for (;;) {
    int n = SSL_read(ssl_, read_buffer_.data(), static_cast<int>(read_buffer_.size()));
    if (n > 0) {
      deliver(ByteSpan(read_buffer_.data(), static_cast<size_t>(n)));
      if (alive.expired()) return false;
      if (state_ != State::Connected) return true;
      if (!until_would_block && input_.empty() && SSL_has_pending(ssl_) == 0) return true;
      clear_error_queue();
      continue;
    }
    int error = SSL_get_error(ssl_, n);
    switch (error) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        // Also the path of a retransmitted handshake flight from the peer:
        // OpenSSL resends its own last flight from inside SSL_read
        // (RFC 6347 section 4.2.4).
        return true;
      case SSL_ERROR_ZERO_RETURN:
        return on_close_notify();
      default:
        return fail(ssl_error_text(error, n));
    }
  }
}

// RFC 5246 section 7.2.1: answer the peer's close_notify with our own.
bool DtlsTransport::on_close_notify() {
  clear_error_queue();
  SSL_shutdown(ssl_);
  clear_error_queue();
  cancel_timers();
  return set_state(State::Closed);
}

bool DtlsTransport::send(ByteSpan packet) {
  assert_executor_thread(executor_);
  if (state_ != State::Connected) return false;
  if (packet.empty() || packet.size() > SSL3_RT_MAX_PLAIN_LENGTH) return false;
  // One record per packet, encrypted into OpenSSL's write buffer and handed to
  // lower_ by the output BIO: no allocation and no copy of ours.
  clear_error_queue();
  int n = SSL_write(ssl_, packet.data(), static_cast<int>(packet.size()));
  if (n > 0) return true;
  int error = SSL_get_error(ssl_, n);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return false;
  // Fatal. The caller (SCTP) may be deep inside its own send path, so the
  // state callback is posted instead of re-entering it from here.
  std::string reason = ssl_error_text(error, n);
  RTCMESH_LOG(Warn, kLog, "send failed: " << reason);
  state_ = State::Failed;
  cancel_timers();
  std::weak_ptr<bool> alive = alive_;
  executor_.post([this, alive, reason = std::move(reason)] {
    if (alive.expired() || !on_state_) return;
    StateCallback callback = on_state_;
    callback(State::Failed, reason);
  });
  return false;
}

void DtlsTransport::close() {
  assert_executor_thread(executor_);
  if (state_ == State::Closed || state_ == State::Failed) return;
  cancel_timers();
  early_.clear();
  started_ = true;  // a later start() must not revive it
  if (state_ == State::Connected) {
    // RFC 5246 section 7.2.1. During the handshake OpenSSL refuses to send
    // close_notify; the peer then notices through its own timeout (or ICE).
    clear_error_queue();
    SSL_shutdown(ssl_);
    clear_error_queue();
  }
  set_state(State::Closed);
}

bool DtlsTransport::set_state(State state, const std::string& error) {
  if (state_ == state) return true;
  RTCMESH_LOG(
      Debug, kLog,
      to_string(state_) << " -> " << to_string(state) << (error.empty() ? "" : ": ") << error);
  state_ = state;
  if (!on_state_) return true;
  std::weak_ptr<bool> alive = alive_;
  // A copy: the callback may destroy this transport (and on_state_ with it).
  StateCallback callback = on_state_;
  callback(state, error);
  return !alive.expired();
}

bool DtlsTransport::fail(const std::string& error) {
  if (state_ == State::Failed || state_ == State::Closed) return true;
  cancel_timers();
  early_.clear();
  RTCMESH_LOG(Info, kLog, "failed: " << error);
  return set_state(State::Failed, error);
}

// RFC 6347 section 4.2.4: OpenSSL keeps the retransmission timer; we only
// wake up when it expires. Called after every handshake step.
void DtlsTransport::arm_timer() {
  if (timer_ != 0) {
    executor_.cancel(timer_);
    timer_ = 0;
  }
  timeval remaining{};
  if (DTLSv1_get_timeout(ssl_, &remaining) != 1) return;  // no timer running
  // Round up: OpenSSL treats a timer within 15 ms of expiry as expired, so
  // waking a little late is harmless and waking early only re-arms.
  auto delay = std::chrono::milliseconds(static_cast<int64_t>(remaining.tv_sec) * 1000 +
                                         (remaining.tv_usec + 999) / 1000);
  RTCMESH_LOG(Verbose, kLog,
              "retransmission timer in " << delay.count() << " ms (" << to_string(state_) << ")");
  std::weak_ptr<bool> alive = alive_;
  timer_ = executor_.post_after(delay, [this, alive] {
    if (alive.expired()) return;
    timer_ = 0;
    on_retransmit_timer();
  });
}

void DtlsTransport::on_retransmit_timer() {
  if (state_ != State::Connecting && state_ != State::Connected) return;
  clear_error_queue();
  // Resends the last flight (through out_write) if the timer really expired.
  if (DTLSv1_handle_timeout(ssl_) < 0) {
    std::string reason = drain_openssl_errors();
    fail("DTLS retransmission failed" + (reason.empty() ? "" : ": " + reason));
    return;
  }
  arm_timer();
}

void DtlsTransport::cancel_timers() {
  if (timer_ != 0) executor_.cancel(timer_);
  if (deadline_timer_ != 0) executor_.cancel(deadline_timer_);
  timer_ = deadline_timer_ = 0;
}

bool DtlsTransport::check_remote_certificate(X509* cert) {
  if (remote_fingerprints_.empty()) {
    verify_error_ = "no remote certificate fingerprint to check against";
    return false;
  }
  std::string mismatch;
  for (const auto& expected : remote_fingerprints_) {
    auto actual = fingerprint(cert, expected.algorithm);
    if (!actual) {
      mismatch += (mismatch.empty() ? "" : "; ") + std::string("expected ") +
                  lower_case(expected.algorithm) + " " + expected.value + ", " +
                  actual.error().message;
      continue;
    }
    if (equal_ignore_case(*actual, expected.value)) {
      peer_verified_ = true;
      return true;
    }
    mismatch += (mismatch.empty() ? "" : "; ") + std::string("expected ") +
                lower_case(expected.algorithm) + " " + expected.value + ", got " + *actual;
  }
  peer_verified_ = false;
  if (verify_error_.empty()) verify_error_ = "remote certificate fingerprint mismatch: " + mismatch;
  return false;
}

std::string DtlsTransport::ssl_error_text(int ssl_error, int ret) {
  // A rejected fingerprint surfaces as "certificate verify failed"; say why.
  if (!verify_error_.empty()) {
    clear_error_queue();
    return verify_error_;
  }
  std::string reason = drain_openssl_errors();
  if (!reason.empty()) return "DTLS error: " + reason;
  if (ssl_error == SSL_ERROR_SYSCALL) return "DTLS I/O error (ret " + std::to_string(ret) + ")";
  return "DTLS error (SSL_get_error " + std::to_string(ssl_error) + ")";
}

}  // namespace rtcmesh::dtls
