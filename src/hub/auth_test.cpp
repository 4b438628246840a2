#include "hub/auth.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hub/rate_limiter.hpp"

namespace rtcmesh::hub {
namespace {

constexpr int64_t kNow = 1'700'000'000;

TEST(HubToken, GoodTokenVerifies) {
  const std::string token = sign_token("secret", "demo", "alice", kNow + 60);
  auto claims = verify_token("secret", token, kNow);
  ASSERT_TRUE(claims.ok()) << claims.error().message;
  EXPECT_EQ(claims->room, "demo");
  EXPECT_EQ(claims->sub, "alice");
  EXPECT_EQ(claims->exp, kNow + 60);
  EXPECT_TRUE(authorize_join("secret", token, "demo", "alice", kNow).ok());
}

TEST(HubToken, KnownTokenFromAnotherImplementation) {
  // Made with PyJWT-equivalent code: HS256 over {"room":"demo","sub":"alice","exp":4102444800}.
  const std::string header = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  const std::string payload = base64url_encode(R"({"room":"demo","sub":"alice","exp":4102444800})");
  const std::string mine = sign_token("k", "demo", "alice", 4102444800);
  EXPECT_TRUE(verify_token("k", mine, kNow).ok());
  EXPECT_EQ(mine.substr(0, header.size()), header);
}

TEST(HubToken, Rejections) {
  const std::string good = sign_token("secret", "demo", "alice", kNow + 60);
  EXPECT_FALSE(verify_token("secret", sign_token("secret", "demo", "alice", kNow - 1), kNow).ok());
  EXPECT_FALSE(verify_token("other", good, kNow).ok());
  EXPECT_FALSE(verify_token("secret", "", kNow).ok());
  EXPECT_FALSE(verify_token("secret", "a.b", kNow).ok());
  EXPECT_FALSE(verify_token("secret", good + ".x", kNow).ok());
  std::string tampered = good;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_token("secret", tampered, kNow).ok());

  // alg none, with and without a signature.
  const std::string none_header = base64url_encode(R"({"alg":"none","typ":"JWT"})");
  const std::string body = good.substr(good.find('.') + 1, good.rfind('.') - good.find('.') - 1);
  EXPECT_FALSE(verify_token("secret", none_header + "." + body + ".", kNow).ok());
  EXPECT_FALSE(verify_token("secret",
                            none_header + "." + body + "." + good.substr(good.rfind('.') + 1), kNow)
                   .ok());
  const std::string hs512 = base64url_encode(R"({"alg":"HS512","typ":"JWT"})");
  EXPECT_FALSE(
      verify_token("secret", hs512 + "." + body + "." + good.substr(good.rfind('.') + 1), kNow)
          .ok());

  // Correctly signed, but without exp.
  const std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                            base64url_encode(R"({"room":"demo","sub":"alice"})");
  unsigned char mac[32];
  unsigned int mac_length = 0;
  HMAC(EVP_sha256(), "secret", 6, reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &mac_length);
  const std::string signed_no_exp =
      input + "." + base64url_encode(std::string(reinterpret_cast<char*>(mac), mac_length));
  EXPECT_FALSE(verify_token("secret", signed_no_exp, kNow).ok());
  EXPECT_TRUE(
      verify_token("secret", signed_no_exp.substr(0, signed_no_exp.size()), kNow).error().message ==
      "token has no exp");

  EXPECT_FALSE(authorize_join("secret", good, "other", "alice", kNow).ok());
  EXPECT_FALSE(authorize_join("secret", good, "demo", "bob", kNow).ok());
  EXPECT_FALSE(authorize_join("secret", "", "demo", "alice", kNow).ok());
}

TEST(HubToken, Wildcards) {
  const std::string any_room = sign_token("s", "*", "alice", kNow + 60);
  EXPECT_TRUE(authorize_join("s", any_room, "x", "alice", kNow).ok());
  EXPECT_FALSE(authorize_join("s", any_room, "x", "bob", kNow).ok());
  const std::string any_peer = sign_token("s", "demo", "*", kNow + 60);
  EXPECT_TRUE(authorize_join("s", any_peer, "demo", "zed", kNow).ok());
  EXPECT_FALSE(authorize_join("s", any_peer, "other", "zed", kNow).ok());
}

TEST(HubBase64Url, RoundTripAndStrictness) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\xfd"}) {
    auto back = base64url_decode(base64url_encode(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(base64url_decode("Zg==").ok());  // padding is not base64url in JWT
  EXPECT_FALSE(base64url_decode("Z").ok());
  EXPECT_FALSE(base64url_decode("Zh").ok());  // non-zero leftover bits
  EXPECT_FALSE(base64url_decode("a+b/").ok());
}

TEST(HubTurn, KnownAnswerMatchesOpenssl) {
  // printf '%s' "1767225600:alice" | openssl dgst -sha1 -hmac "s3cret" -binary | base64
  const TurnCredential c = turn_credential("s3cret", "alice", 1767225600 - 86400, 86400);
  EXPECT_EQ(c.username, "1767225600:alice");
  EXPECT_EQ(c.credential, "+CKIbET1K2zFrSOk2S33FcZCpuI=");
  EXPECT_EQ(c.expires_at, 1767225600);
  // Without a peer the username is the expiry alone.
  const TurnCredential anon = turn_credential("s3cret", "", 1767225600 - 10, 10);
  EXPECT_EQ(anon.username, "1767225600");
  EXPECT_EQ(anon.credential, "oQZLAaTYfh5wyzx7R/9OkDHVhdY=");
}

TEST(HubRateLimiter, BurstOfTwiceTheRateThenSteady) {
  RateLimiter limiter(10, 0);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.allow(0) ? 1 : 0;
  EXPECT_EQ(allowed, 20);
  EXPECT_FALSE(limiter.allow(50));  // half a token
  EXPECT_TRUE(limiter.allow(100));  // one token after 100 ms at 10/s
  EXPECT_FALSE(limiter.allow(100));
  // A long pause refills to the burst, not beyond.
  allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.allow(100000) ? 1 : 0;
  EXPECT_EQ(allowed, 20);
  RateLimiter unlimited(0, 0);
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(unlimited.allow(0));
}

}  // namespace
}  // namespace rtcmesh::hub
