#include "dtls/certificate.hpp"

#include "dtls/dtls_transport.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cctype>
#include <cstdint>

namespace rtcmesh::dtls {
namespace {

constexpr long kSecondsPerDay = 24 * 60 * 60;
constexpr long kNotBeforeOffset = -1 * kSecondsPerDay;  // tolerate peer clock skew
constexpr long kNotAfterOffset = 30 * kSecondsPerDay;

// The oldest OpenSSL error on this thread's queue as text, and clears the queue.
std::string openssl_reason(std::string_view what) {
  std::string message(what);
  unsigned long code = ERR_get_error();
  if (code != 0) {
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    message += ": ";
    message += text.data();
  }
  ERR_clear_error();
  return message;
}

// Maps an RFC 8122 "hash-func" token (the IANA "Hash Function Textual Names"
// registry) to an OpenSSL digest. MD5/MD2 are legal in the grammar but
// deprecated for fingerprints (RFC 8122 section 5), so they are not accepted.
const EVP_MD* digest_for(std::string_view algorithm) {
  std::string name;
  name.reserve(algorithm.size());
  for (char c : algorithm)
    name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (name == "sha-256") return EVP_sha256();
  if (name == "sha-1") return EVP_sha1();
  if (name == "sha-384") return EVP_sha384();
  if (name == "sha-512") return EVP_sha512();
  if (name == "sha-224") return EVP_sha224();
  return nullptr;
}

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BignumDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

}  // namespace

Result<std::shared_ptr<Certificate>> Certificate::generate() {
  ERR_clear_error();
  // ECDSA over P-256: what browsers generate for RTCCertificate by default and
  // what every WebRTC stack accepts (RFC 8827 section 6.5 leaves it open).
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return make_error(openssl_reason("certificate: P-256 key generation failed"));

  std::unique_ptr<X509, X509Deleter> x509(X509_new());
  if (!x509) return make_error(openssl_reason("certificate: X509_new failed"));

  // Random positive 64-bit serial: peers may cache certificates by
  // issuer+serial, so two certificates of ours must not share one.
  std::unique_ptr<BIGNUM, BignumDeleter> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x509.get())) == nullptr) {
    return make_error(openssl_reason("certificate: serial number"));
  }

  X509_NAME* name = X509_get_subject_name(x509.get());
  bool ok = X509_set_version(x509.get(), X509_VERSION_3) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(x509.get()), kNotBeforeOffset) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(x509.get()), kNotAfterOffset) != nullptr &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>("rtcmesh"), -1, -1,
                                       0) == 1 &&
            X509_set_issuer_name(x509.get(), name) == 1 &&  // self-signed
            X509_set_pubkey(x509.get(), key.get()) == 1;
  if (!ok) return make_error(openssl_reason("certificate: building the certificate failed"));
  if (X509_sign(x509.get(), key.get(), EVP_sha256()) <= 0) {
    return make_error(openssl_reason("certificate: signing failed"));
  }

  auto sha256 = fingerprint(x509.get(), "sha-256");
  if (!sha256) return sha256.error();
  auto cert = std::shared_ptr<Certificate>(new Certificate(x509.release(), key.release()));
  cert->fingerprint_ = std::move(sha256.value());
  return cert;
}

Certificate::Certificate(X509* x509, EVP_PKEY* key) : x509_(x509), key_(key) {}

SSL_CTX* Certificate::dtls_context() const {
  std::call_once(context_once_, [this] { context_ = DtlsTransport::build_context(x509_, key_); });
  return context_;
}

Certificate::~Certificate() {
  if (context_ != nullptr) SSL_CTX_free(context_);
  X509_free(x509_);
  EVP_PKEY_free(key_);
}

Result<std::string> fingerprint(X509* cert, std::string_view algorithm) {
  if (cert == nullptr) return make_error("fingerprint: no certificate");
  const EVP_MD* md = digest_for(algorithm);
  if (md == nullptr) {
    return make_error("fingerprint: unsupported hash algorithm \"" + std::string(algorithm) + "\"");
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  // RFC 8122 section 5: the hash is over the DER form of the certificate.
  if (X509_digest(cert, md, digest.data(), &length) != 1 || length == 0) {
    return make_error(openssl_reason("fingerprint: X509_digest failed"));
  }
  // RFC 8122 grammar: fingerprint = 2UHEX *(":" 2UHEX).
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out(length * 3 - 1, ':');
  for (unsigned int i = 0; i < length; ++i) {
    out[i * 3] = kHex[digest[i] >> 4];
    out[i * 3 + 1] = kHex[digest[i] & 0x0F];
  }
  return out;
}

}  // namespace rtcmesh::dtls
