// SHA-256 and Ed25519 through OpenSSL 3 EVP, shaped for hot loops: the digest
// is fetched once and a Sha256 object reuses its context (the one-shot SHA256()
// fetches and allocates on every call, about twice as slow for small inputs).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace rtcmesh::crypto {

using Hash = std::array<uint8_t, 32>;
using PublicKeyBytes = std::array<uint8_t, 32>;
using Signature = std::array<uint8_t, 64>;

std::string to_hex(const uint8_t* data, size_t size);
template <size_t N>
std::string to_hex(const std::array<uint8_t, N>& a) {
  return to_hex(a.data(), a.size());
}
// Lowercase or uppercase hex of exactly N bytes; nullopt otherwise.
template <size_t N>
std::optional<std::array<uint8_t, N>> from_hex(std::string_view hex);
bool from_hex_into(std::string_view hex, uint8_t* out, size_t n);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void reset();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  Hash finish();  // also resets

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Hash sha256(std::string_view data);

bool random_bytes(uint8_t* out, size_t n);

// Verifies Ed25519 (PureEdDSA, RFC 8032) signatures for one public key.
class Ed25519Verifier {
 public:
  static Result<Ed25519Verifier> from_raw(const PublicKeyBytes& key);
  // Raw hex (64 digits) or a PEM SubjectPublicKeyInfo file's contents.
  static Result<Ed25519Verifier> from_text(std::string_view text);
  bool verify(std::string_view message, const Signature& sig) const;
  const PublicKeyBytes& raw() const { return raw_; }

 private:
  std::shared_ptr<void> pkey_;  // EVP_PKEY, created once (decoding costs as much as a verify)
  PublicKeyBytes raw_{};
};

}  // namespace rtcmesh::crypto
