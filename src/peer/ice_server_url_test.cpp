#include "peer/ice_server_url.hpp"

#include <gtest/gtest.h>

namespace rtcmesh::impl {
namespace {

TEST(IceServerUrl, ParsesStunAndTurnForms) {
  auto stun = parse_ice_url("stun:127.0.0.1:3479");
  ASSERT_TRUE(stun) << stun.error().message;
  EXPECT_EQ(stun->scheme, IceUrl::Scheme::Stun);
  EXPECT_EQ(stun->host, "127.0.0.1");
  EXPECT_EQ(stun->port, 3479);

  auto turn = parse_ice_url("turn:example.org?transport=tcp");
  ASSERT_TRUE(turn);
  EXPECT_EQ(turn->port, 3478);
  EXPECT_EQ(turn->transport, ice::Server::Transport::Tcp);

  auto turns = parse_ice_url("turns:[::1]:5350?transport=tcp");
  ASSERT_TRUE(turns);
  EXPECT_EQ(turns->host, "::1");
  EXPECT_EQ(turns->port, 5350);
  EXPECT_EQ(turns->transport, ice::Server::Transport::Tls);

  auto udp = parse_ice_url("turn:10.0.0.1:3478?transport=udp");
  ASSERT_TRUE(udp);
  EXPECT_EQ(udp->transport, ice::Server::Transport::Udp);
}

TEST(IceServerUrl, RejectsBadUrlsWithAReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1:3478", "scheme"},
      {"ftp:host", "scheme"},
      {"stun:", "host"},
      {"stun:host:0", "port"},
      {"stun:host:70000", "port"},
      {"stun:host:12ab", "port"},
      {"turn:[::1", "IPv6"},
      {"turn:host?transport=sctp", "parameter"},
      {"turns:host?transport=udp", "udp"},
      {"stuns:host", "not supported"},
  };
  for (auto [url, reason] : cases) {
    auto r = parse_ice_url(url);
    ASSERT_FALSE(r) << url;
    EXPECT_NE(r.error().message.find(reason), std::string::npos)
        << url << ": " << r.error().message;
  }
}

TEST(IceServerUrl, TurnNeedsCredentials) {
  auto r = resolve_ice_servers({IceServer{{"turn:127.0.0.1"}, "", ""}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("username"), std::string::npos);
  auto ok = resolve_ice_servers({IceServer{{"turn:127.0.0.1:3478?transport=tcp"}, "u", "p"}});
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].kind, ice::Server::Kind::Turn);
  EXPECT_EQ((*ok)[0].address, "127.0.0.1");
}

}  // namespace
}  // namespace rtcmesh::impl
