#include "hub/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "base/base64.hpp"

namespace rtcmesh::hub {
namespace {

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

std::string base64url_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(kUrlAlphabet[(v >> 18) & 63]);
    out.push_back(kUrlAlphabet[(v >> 12) & 63]);
    out.push_back(kUrlAlphabet[(v >> 6) & 63]);
    out.push_back(kUrlAlphabet[v & 63]);
  }
  const size_t rest = data.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(kUrlAlphabet[(v >> 18) & 63]);
    out.push_back(kUrlAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(kUrlAlphabet[(v >> 18) & 63]);
    out.push_back(kUrlAlphabet[(v >> 12) & 63]);
    out.push_back(kUrlAlphabet[(v >> 6) & 63]);
  }
  return out;
}

Result<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return make_error("bad base64url length");
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '-')
      v = 62;
    else if (c == '_')
      v = 63;
    else
      return make_error("bad base64url character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return make_error("non-canonical base64url");
  return out;
}

std::string sign_token(std::string_view secret, std::string_view room, std::string_view peer,
                       int64_t exp) {
  const nlohmann::json payload = {{"room", room}, {"sub", peer}, {"exp", exp}};
  const std::string signing_input =
      base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(payload.dump());
  return signing_input + "." + base64url_encode(hmac(EVP_sha256(), secret, signing_input));
}

Result<TokenClaims> verify_token(std::string_view secret, std::string_view token,
                                 int64_t now_unix) {
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return make_error("malformed token");
  }
  auto header_bytes = base64url_decode(token.substr(0, dot1));
  auto payload_bytes = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_bytes || !payload_bytes || !signature) return make_error("malformed token");

  const auto header = nlohmann::json::parse(*header_bytes, nullptr, false);
  if (!header.is_object()) return make_error("malformed token header");
  const auto alg = header.find("alg");
  // Only HS256: "none" and asymmetric algorithms (key confusion) are refused.
  if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != "HS256") {
    return make_error("token algorithm must be HS256");
  }
  const std::string expected = hmac(EVP_sha256(), secret, token.substr(0, dot2));
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return make_error("bad token signature");
  }
  const auto payload = nlohmann::json::parse(*payload_bytes, nullptr, false);
  if (!payload.is_object()) return make_error("malformed token payload");
  TokenClaims claims;
  const auto exp = payload.find("exp");
  if (exp == payload.end() || !exp->is_number()) return make_error("token has no exp");
  const double exp_value = exp->get<double>();
  if (!(exp_value > static_cast<double>(now_unix))) return make_error("token expired");
  claims.exp = exp_value > 9e15 ? int64_t{9'000'000'000'000'000} : static_cast<int64_t>(exp_value);
  const auto room = payload.find("room");
  if (room != payload.end() && room->is_string()) claims.room = room->get<std::string>();
  const auto sub = payload.find("sub");
  if (sub != payload.end() && sub->is_string()) claims.sub = sub->get<std::string>();
  return claims;
}

Status authorize_join(std::string_view secret, std::string_view token, std::string_view room,
                      std::string_view peer, int64_t now_unix) {
  if (token.empty()) return make_error("this hub requires a token");
  auto claims = verify_token(secret, token, now_unix);
  if (!claims) return claims.error();
  if (claims->room != "*" && claims->room != room) return make_error("token is for another room");
  if (claims->sub != "*" && claims->sub != peer) return make_error("token is for another peer");
  return {};
}

TurnCredential turn_credential(std::string_view secret, std::string_view peer, int64_t now_unix,
                               int64_t ttl_seconds) {
  TurnCredential c;
  c.expires_at = now_unix + ttl_seconds;
  c.username = std::to_string(c.expires_at);
  if (!peer.empty()) {
    c.username += ':';
    c.username += peer;
  }
  const std::string mac = hmac(EVP_sha1(), secret, c.username);
  c.credential = base::base64_encode(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(mac.data()), mac.size()));
  return c;
}

}  // namespace rtcmesh::hub
