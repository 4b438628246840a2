#include "signaling/signaling_client.hpp"

#include <gtest/gtest.h>

namespace rtcmesh::signaling {
namespace {

using namespace std::chrono_literals;

TEST(HubUrl, ParsesWsAndWss) {
  auto u = parse_hub_url("ws://127.0.0.1:8000/signaling");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8000");
  EXPECT_EQ(u->target, "/signaling");
  EXPECT_EQ(u->http_origin(), "http://127.0.0.1:8000");
  EXPECT_TRUE(u->loopback_host());

  auto s = parse_hub_url("WSS://hub.example/signaling?x=1");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, "443");
  EXPECT_EQ(s->target, "/signaling?x=1");
  EXPECT_EQ(s->http_origin(), "https://hub.example:443");
  EXPECT_FALSE(s->loopback_host());

  auto v6 = parse_hub_url("ws://[::1]:9/");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->http_origin(), "http://[::1]:9");
  EXPECT_TRUE(v6->loopback_host());
  EXPECT_EQ(parse_hub_url("ws://localhost")->target, "/");
}

TEST(HubUrl, RejectsBadUrls) {
  for (const char* bad : {"", "127.0.0.1:8000", "ftp://x/", "ws://", "ws://:80/", "ws://h:0/",
                          "ws://h:99999/", "ws://h:8a/", "ws://user:pw@h/", "ws://[::1/"}) {
    EXPECT_FALSE(parse_hub_url(bad)) << bad;
  }
}

TEST(Reconnect, BackoffDoublesToThirtySecondsWithJitter) {
  EXPECT_EQ(reconnect_delay(1000ms, 0, 30000ms, 0.5), 1000ms);
  EXPECT_EQ(reconnect_delay(1000ms, 1, 30000ms, 0.5), 2000ms);
  EXPECT_EQ(reconnect_delay(1000ms, 4, 30000ms, 0.5), 16000ms);
  EXPECT_EQ(reconnect_delay(1000ms, 5, 30000ms, 0.5), 30000ms);
  EXPECT_EQ(reconnect_delay(1000ms, 500, 30000ms, 0.5), 30000ms);
  EXPECT_EQ(reconnect_delay(1000ms, 0, 30000ms, 0.0), 750ms);
  EXPECT_EQ(reconnect_delay(1000ms, 0, 30000ms, 1.0), 1250ms);
}

}  // namespace
}  // namespace rtcmesh::signaling
