#include "identity/crypto.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstring>

namespace rtcmesh::crypto {

std::string to_hex(const uint8_t* data, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool from_hex_into(std::string_view hex, uint8_t* out, size_t n) {
  if (hex.size() != 2 * n) return false;
  for (size_t i = 0; i < n; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
std::optional<std::array<uint8_t, N>> from_hex(std::string_view hex) {
  std::array<uint8_t, N> out{};
  if (!from_hex_into(hex, out.data(), N)) return std::nullopt;
  return out;
}
template std::optional<std::array<uint8_t, 32>> from_hex<32>(std::string_view);
template std::optional<std::array<uint8_t, 64>> from_hex<64>(std::string_view);

namespace {
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}
}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  reset();
}
Sha256::~Sha256() = default;
void Sha256::reset() {
  EVP_DigestInit_ex(impl_->ctx, sha256_md(), nullptr);
}
void Sha256::update(const void* data, size_t size) {
  EVP_DigestUpdate(impl_->ctx, data, size);
}
Hash Sha256::finish() {
  Hash out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, out.data(), &len);
  reset();
  return out;
}

Hash sha256(std::string_view data) {
  thread_local Sha256 h;
  h.update(data);
  return h.finish();
}

bool random_bytes(uint8_t* out, size_t n) {
  return RAND_bytes(out, static_cast<int>(n)) == 1;
}

Result<Ed25519Verifier> Ed25519Verifier::from_raw(const PublicKeyBytes& key) {
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size());
  if (!pkey) return make_error("not a valid Ed25519 public key");
  Ed25519Verifier v;
  v.pkey_ = std::shared_ptr<void>(pkey, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
  v.raw_ = key;
  return v;
}

Result<Ed25519Verifier> Ed25519Verifier::from_text(std::string_view text) {
  std::string_view trimmed = text;
  while (!trimmed.empty() &&
         (trimmed.back() == '\n' || trimmed.back() == '\r' || trimmed.back() == ' ')) {
    trimmed.remove_suffix(1);
  }
  if (auto raw = from_hex<32>(trimmed)) return from_raw(*raw);
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey) return make_error("not a public key (expected 64 hex digits or a PEM PUBLIC KEY)");
  PublicKeyBytes raw{};
  size_t len = raw.size();
  bool ok = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519 &&
            EVP_PKEY_get_raw_public_key(pkey, raw.data(), &len) == 1 && len == raw.size();
  EVP_PKEY_free(pkey);
  if (!ok) return make_error("the public key is not Ed25519");
  return from_raw(raw);
}

bool Ed25519Verifier::verify(std::string_view message, const Signature& sig) const {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok =
      ctx &&
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_.get())) ==
          1 &&
      EVP_DigestVerify(ctx, sig.data(), sig.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace rtcmesh::crypto
