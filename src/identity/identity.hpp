// A node's identity: an Ed25519 key pair kept in <data-dir>/identity.key (PEM
// PKCS#8, mode 0600, created on first use) and the node id derived from it,
// "node-" + the first 16 hex digits of SHA-256(raw 32-byte public key), so an id
// can be checked against the key that signs for it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "identity/crypto.hpp"

namespace rtcmesh::identity {

// $XDG_DATA_HOME/rtcmesh, else $HOME/.local/share/rtcmesh.
std::string default_data_dir();

std::string node_id_for(const crypto::PublicKeyBytes& key);
constexpr const char* kKeyFileName = "identity.key";

class Identity {
 public:
  // Loads <data_dir>/identity.key, creating the directory (0700) and the key
  // (0600) when missing. Refuses a key file that group or others may read.
  static Result<std::shared_ptr<Identity>> load_or_create(const std::string& data_dir);
  static Result<std::shared_ptr<Identity>> generate();
  // For known-answer tests: the 32-byte RFC 8032 secret seed.
  static Result<std::shared_ptr<Identity>> from_seed(const std::array<uint8_t, 32>& seed);

  ~Identity();
  Identity(const Identity&) = delete;
  Identity& operator=(const Identity&) = delete;

  const std::string& node_id() const { return node_id_; }
  const crypto::PublicKeyBytes& public_key() const { return public_key_; }
  std::string public_key_hex() const { return crypto::to_hex(public_key_); }
  std::string public_key_pem() const;
  // Thread-safe.
  crypto::Signature sign(std::string_view message) const;

 private:
  explicit Identity(void* pkey);
  void* pkey_;  // EVP_PKEY*
  crypto::PublicKeyBytes public_key_{};
  std::string node_id_;
};

}  // namespace rtcmesh::identity
