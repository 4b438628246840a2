#include "sdp/candidate.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace rtcmesh::sdp {
namespace {

std::filesystem::path candidate_corpus_dir() {
#ifdef RTCMESH_FUZZ_CORPUS_DIR
  return std::filesystem::path(RTCMESH_FUZZ_CORPUS_DIR) / "candidate";
#else
  return std::filesystem::path(__FILE__).parent_path() / "../../fuzz/corpus/candidate";
#endif
}

using Extensions = std::vector<std::pair<std::string, std::string>>;

// Trickled by Chromium 156 (fuzz/corpus/candidate/chromium_trickle_0.txt).
TEST(Candidate, ParsesChromiumTrickledCandidate) {
  auto c = parse_candidate(
      "candidate:3055454990 1 udp 2113937151 192.168.77.10 46290 typ host generation 0 "
      "ufrag spes network-cost 999");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->foundation, "3055454990");
  EXPECT_EQ(c->component, 1u);
  EXPECT_EQ(c->transport, "udp");
  EXPECT_EQ(c->priority, 2113937151u);
  EXPECT_EQ(c->address, "192.168.77.10");
  EXPECT_EQ(c->port, 46290);
  EXPECT_EQ(c->type, "host");
  EXPECT_EQ(c->related_address, "");
  EXPECT_EQ(c->related_port, 0);
  EXPECT_EQ(c->tcp_type, "");
  EXPECT_EQ(c->extensions,
            (Extensions{{"generation", "0"}, {"ufrag", "spes"}, {"network-cost", "999"}}));
}

TEST(Candidate, ParsesAiortcCandidateWith32CharFoundation) {
  auto c = parse_candidate(
      "candidate:ca583d2142b85fb4a99e44e970855cc1 1 udp 2130706431 fd00:77::10 46987 typ host");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->foundation, "ca583d2142b85fb4a99e44e970855cc1");
  EXPECT_EQ(c->address, "fd00:77::10");
  EXPECT_TRUE(c->extensions.empty());
}

TEST(Candidate, ParsesServerReflexiveWithRelatedAddress) {
  auto c = parse_candidate(
      "candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr 192.168.1.10 "
      "rport 50003 generation 0");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->type, "srflx");
  EXPECT_EQ(c->related_address, "192.168.1.10");
  EXPECT_EQ(c->related_port, 50003);
  EXPECT_EQ(c->extensions, (Extensions{{"generation", "0"}}));
}

TEST(Candidate, ParsesRelayOverTcpIpv6) {
  auto c = parse_candidate(
      "candidate:1 1 TCP 25108223 2001:db8:1::20 443 typ relay raddr 2001:db8:2::7 rport 50123 "
      "tcptype passive");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->transport, "tcp");  // lower-cased
  EXPECT_EQ(c->type, "relay");
  EXPECT_EQ(c->address, "2001:db8:1::20");
  EXPECT_EQ(c->related_address, "2001:db8:2::7");
  EXPECT_EQ(c->tcp_type, "passive");
}

TEST(Candidate, ParsesAllTcpTypes) {
  for (const char* type : {"active", "passive", "so"}) {
    auto c = parse_candidate(std::string("candidate:1 1 tcp 1518280447 192.168.1.10 9 typ host "
                                         "tcptype ") +
                             type);
    ASSERT_TRUE(c.ok()) << type << ": " << c.error().message;
    EXPECT_EQ(c->tcp_type, type);
  }
}

TEST(Candidate, ParsesMdnsHostNameAndPrflx) {
  auto mdns = parse_candidate(
      "candidate:3958276412 1 udp 2122260223 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54321 "
      "typ host generation 0");
  ASSERT_TRUE(mdns.ok()) << mdns.error().message;
  EXPECT_EQ(mdns->address, "1f4712db-ea17-4bcf-a596-105139dfd8bf.local");

  auto prflx = parse_candidate(
      "candidate:7 1 UDP 1845501695 203.0.113.9 40000 typ prflx "
      "raddr 0.0.0.0 rport 0");
  ASSERT_TRUE(prflx.ok()) << prflx.error().message;
  EXPECT_EQ(prflx->type, "prflx");
  EXPECT_EQ(prflx->related_address, "0.0.0.0");
}

TEST(Candidate, AcceptsSdpPrefixAndLineEnding) {
  auto c = parse_candidate("  a=candidate:5 2 udp 2122262783 ::ffff:192.0.2.1 5002 typ host\r\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->component, 2u);
  EXPECT_EQ(c->address, "::ffff:192.0.2.1");
}

TEST(Candidate, ToStringProducesCanonicalForm) {
  Candidate c;
  c.foundation = "4";
  c.component = 1;
  c.transport = "tcp";
  c.priority = 25108223;
  c.address = "198.51.100.20";
  c.port = 443;
  c.type = "relay";
  c.related_address = "203.0.113.7";
  c.related_port = 61234;
  c.tcp_type = "passive";
  c.extensions = {{"generation", "0"}, {"network-id", "3"}};
  EXPECT_EQ(to_string(c),
            "candidate:4 1 tcp 25108223 198.51.100.20 443 typ relay raddr 203.0.113.7 rport 61234 "
            "tcptype passive generation 0 network-id 3");
  auto back = parse_candidate(to_string(c));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, c);
}

TEST(Candidate, RoundTripsEveryValidCorpusFile) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(candidate_corpus_dir())) {
    const std::string name = entry.path().filename().string();
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto c = parse_candidate(text);
    if (name.rfind("crash-", 0) == 0) continue;  // regression inputs: must only not crash
    if (name.rfind("bad_", 0) == 0) {
      EXPECT_FALSE(c.ok()) << name;
      continue;
    }
    ASSERT_TRUE(c.ok()) << name << ": " << c.error().message;
    auto again = parse_candidate(to_string(*c));
    ASSERT_TRUE(again.ok()) << name << ": " << again.error().message;
    EXPECT_EQ(*again, *c) << name;
    ++checked;
  }
  EXPECT_GE(checked, 12);
}

struct BadCandidate {
  const char* text;
  const char* what;  // expected in the error message
};

class CandidateRejects : public testing::TestWithParam<BadCandidate> {};

TEST_P(CandidateRejects, WithMessage) {
  auto c = parse_candidate(GetParam().text);
  ASSERT_FALSE(c.ok()) << GetParam().text;
  EXPECT_NE(c.error().message.find("bad candidate"), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find(GetParam().what), std::string::npos) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Candidate, CandidateRejects,
    testing::Values(
        BadCandidate{"", "expected 'candidate:'"}, BadCandidate{"candidate:", "too few fields"},
        BadCandidate{"1 1 udp 1 10.0.0.1 5000 typ host", "expected 'candidate:'"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ", "too few fields"},
        BadCandidate{"candidate:123456789012345678901234567890123 1 udp 1 10.0.0.1 5000 typ host",
                     "foundation"},
        BadCandidate{"candidate:a-b 1 udp 1 10.0.0.1 5000 typ host", "foundation"},
        BadCandidate{"candidate:1 0 udp 1 10.0.0.1 5000 typ host", "component"},
        BadCandidate{"candidate:1 257 udp 1 10.0.0.1 5000 typ host", "component"},
        BadCandidate{"candidate:1 1 sctp 1 10.0.0.1 5000 typ host", "transport"},
        BadCandidate{"candidate:1 1 udp 4294967296 10.0.0.1 5000 typ host", "priority"},
        BadCandidate{"candidate:1 1 udp -1 10.0.0.1 5000 typ host", "priority"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.256 5000 typ host", "address"},
        BadCandidate{"candidate:1 1 udp 1 1.2.3 5000 typ host", "address"},
        BadCandidate{"candidate:1 1 udp 1 fe80::1%eth0 5000 typ host", "address"},
        BadCandidate{"candidate:1 1 udp 1 1:2:3:4:5:6:7:8:9 5000 typ host", "address"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 65536 typ host", "port"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 50a0 typ host", "port"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 type host", "expected 'typ'"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ nat", "candidate type"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ srflx raddr 10.0.0.2",
                     "raddr and rport"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ srflx raddr x..y rport 1", "raddr"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ srflx raddr 10.0.0.2 rport 70000",
                     "rport"},
        BadCandidate{"candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype sideways", "tcptype"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 9 typ host tcptype active", "tcptype on a udp"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ host generation", "without a value"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ host gen\x01 0", "extension"},
        BadCandidate{"candidate:1 1 udp 1 10.0.0.1 5000 typ host x \xc3\xa9", "extension"}));

TEST(Candidate, RejectsAbsurdLengths) {
  std::string text = "candidate:1 1 udp 1 10.0.0.1 5000 typ host";
  while (text.size() <= 1024) text += " x y";
  auto c = parse_candidate(text);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("too long"), std::string::npos) << c.error().message;

  std::string many = "candidate:1 1 udp 1 10.0.0.1 5000 typ host";
  for (int i = 0; i < 33; ++i) many += " e" + std::to_string(i) + " v";
  auto m = parse_candidate(many);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("too many extensions"), std::string::npos);
}

}  // namespace
}  // namespace rtcmesh::sdp
