#include "identity/identity.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace rtcmesh::identity {

std::string default_data_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/rtcmesh";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/rtcmesh";
}

std::string node_id_for(const crypto::PublicKeyBytes& key) {
  auto digest =
      crypto::sha256(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  return "node-" + crypto::to_hex(digest.data(), 8);
}

Identity::Identity(void* pkey) : pkey_(pkey) {
  size_t len = public_key_.size();
  EVP_PKEY_get_raw_public_key(static_cast<EVP_PKEY*>(pkey_), public_key_.data(), &len);
  node_id_ = node_id_for(public_key_);
}

Identity::~Identity() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_));
}

Result<std::shared_ptr<Identity>> Identity::generate() {
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!pkey) return make_error("cannot generate an Ed25519 key");
  return std::shared_ptr<Identity>(new Identity(pkey));
}

Result<std::shared_ptr<Identity>> Identity::from_seed(const std::array<uint8_t, 32>& seed) {
  EVP_PKEY* pkey =
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  if (!pkey) return make_error("invalid Ed25519 seed");
  return std::shared_ptr<Identity>(new Identity(pkey));
}

std::string Identity::public_key_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, static_cast<EVP_PKEY*>(pkey_));
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

crypto::Signature Identity::sign(std::string_view message) const {
  crypto::Signature sig{};
  size_t len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // One-shot EVP_DigestSign: Ed25519 is PureEdDSA, DigestSignUpdate is not allowed.
  if (!ctx ||
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_)) != 1 ||
      EVP_DigestSign(ctx, sig.data(), &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    std::abort();  // only fails on allocation failure: nothing sensible to sign with
  }
  EVP_MD_CTX_free(ctx);
  return sig;
}

namespace {

Status make_dirs(const std::string& dir) {
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return make_error("cannot create " + path + ": " + std::strerror(errno));
    }
  }
  return {};
}

Result<std::shared_ptr<Identity>> load(const std::string& path, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(path + ": " + std::strerror(errno));
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error("permissions " + std::string(mode) + " for '" + path +
                      "' are too open: the private key must not be accessible by others "
                      "(chmod 600 '" +
                      path + "')");
  }
  if (st.st_uid != ::geteuid()) return make_error(path + " is owned by another user");
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey) return make_error(path + ": not a PEM private key");
  if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(pkey);
    return make_error(path + ": the key is not Ed25519");
  }
  std::array<uint8_t, 32> seed{};
  size_t len = seed.size();
  EVP_PKEY* key = pkey;
  bool ok = key && EVP_PKEY_get_raw_private_key(key, seed.data(), &len) == 1 && len == 32;
  EVP_PKEY_free(key);
  if (!ok) return make_error(path + ": cannot read the Ed25519 key");
  auto result = Identity::from_seed(seed);
  OPENSSL_cleanse(seed.data(), seed.size());
  return result;
}

}  // namespace

Result<std::shared_ptr<Identity>> Identity::load_or_create(const std::string& data_dir) {
  const std::string path = data_dir + "/" + kKeyFileName;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd >= 0) {
    auto r = load(path, fd);
    ::close(fd);
    return r;
  }
  if (errno != ENOENT) return make_error("cannot open " + path + ": " + std::strerror(errno));

  if (auto st = make_dirs(data_dir); !st) return st.error();
  auto id = generate();
  if (!id) return id;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, static_cast<EVP_PKEY*>((*id)->pkey_), nullptr, nullptr, 0, nullptr,
                           nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);

  // Write to a temporary name and link it into place so two processes starting
  // at once never see a half-written key and never overwrite each other's.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot create " + tmp + ": " + std::strerror(errno));
  bool ok =
      ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()) && ::fsync(fd) == 0;
  ::close(fd);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!ok) {
    ::unlink(tmp.c_str());
    return make_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  int linked = ::link(tmp.c_str(), path.c_str());
  int link_errno = errno;
  ::unlink(tmp.c_str());
  if (linked != 0) {
    if (link_errno == EEXIST) return load_or_create(data_dir);  // another process won
    return make_error("cannot create " + path + ": " + std::strerror(link_errno));
  }
  if (int dfd = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return id;
}

}  // namespace rtcmesh::identity
