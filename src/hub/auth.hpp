// Access tokens (JWT HS256, protocol doc 1.7) and TURN REST credentials (1.8).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace rtcmesh::hub {

struct TokenClaims {
  std::string room;  // "*" = any room
  std::string sub;   // "*" = any peer
  int64_t exp = 0;   // unix seconds
};

// HS256 JWT with payload {"room","sub","exp"}.
std::string sign_token(std::string_view secret, std::string_view room, std::string_view peer,
                       int64_t exp);

// Checks structure, alg (HS256 only), signature and expiry against now_unix.
Result<TokenClaims> verify_token(std::string_view secret, std::string_view token, int64_t now_unix);

// verify_token plus: room and sub match (or are "*").
Status authorize_join(std::string_view secret, std::string_view token, std::string_view room,
                      std::string_view peer, int64_t now_unix);

struct TurnCredential {
  std::string username;    // "<expiry>:<peer>" (just "<expiry>" without a peer)
  std::string credential;  // base64(HMAC-SHA1(secret, username)), padded
  int64_t expires_at = 0;
};

TurnCredential turn_credential(std::string_view secret, std::string_view peer, int64_t now_unix,
                               int64_t ttl_seconds);

std::string base64url_encode(std::string_view data);
// Unpadded base64url only; nullopt-like failure as ok()==false.
Result<std::string> base64url_decode(std::string_view text);

}  // namespace rtcmesh::hub
