// A self-signed ECDSA P-256 certificate for DTLS (RFC 8827 section 6.5) and
// fingerprints of certificates (RFC 8122 section 5).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/result.hpp"

typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct ssl_ctx_st SSL_CTX;

namespace rtcmesh::dtls {

class Certificate {
 public:
  // Generates a fresh key pair and a self-signed certificate (CN "rtcmesh",
  // valid from one day ago for 30 days, random serial). Thread-safe.
  static Result<std::shared_ptr<Certificate>> generate();

  ~Certificate();
  Certificate(const Certificate&) = delete;
  Certificate& operator=(const Certificate&) = delete;

  X509* x509() const { return x509_; }
  EVP_PKEY* key() const { return key_; }
  // "sha-256" fingerprint value: upper-case hex bytes separated by ':'.
  const std::string& fingerprint_sha256() const { return fingerprint_; }

  // The DTLS context (SSL_CTX) of this certificate, built once and shared by
  // the transports that use it. Building one costs ~0.2 ms in OpenSSL 3.0, so
  // PeerConnection builds it when the certificate is made, off the network
  // thread and before the clock of a connection setup starts. Thread-safe.
  // Returns nullptr if it cannot be built (the transport then reports why).
  SSL_CTX* dtls_context() const;

 private:
  Certificate(X509* x509, EVP_PKEY* key);
  X509* x509_;
  EVP_PKEY* key_;
  std::string fingerprint_;
  mutable std::once_flag context_once_;
  mutable SSL_CTX* context_ = nullptr;
};

// Fingerprint of `cert` with hash `algorithm` ("sha-1", "sha-224", "sha-256",
// "sha-384", "sha-512"; case-insensitive) as upper-case colon-separated hex.
Result<std::string> fingerprint(X509* cert, std::string_view algorithm);

}  // namespace rtcmesh::dtls
