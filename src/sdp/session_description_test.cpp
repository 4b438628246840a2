#include "sdp/session_description.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace rtcmesh::sdp {
namespace {

// Real SDP captured from Chromium 156 and aiortc (python3-aiortc, Debian 12) by
// fuzz/tools/capture.sh lives in fuzz/corpus/sdp/; the expectations below are
// those exact files (re-capturing changes ids, ports and credentials).
std::filesystem::path sdp_corpus_dir() {
#ifdef RTCMESH_FUZZ_CORPUS_DIR
  return std::filesystem::path(RTCMESH_FUZZ_CORPUS_DIR) / "sdp";
#else
  return std::filesystem::path(__FILE__).parent_path() / "../../fuzz/corpus/sdp";
#endif
}

std::string read_corpus(const std::string& name) {
  std::ifstream in(sdp_corpus_dir() / name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << (sdp_corpus_dir() / name);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

SessionDescription parse_ok(std::string_view text) {
  auto d = parse(text);
  EXPECT_TRUE(d.ok()) << d.error().message << "\n" << text;
  return d.ok() ? d.value() : SessionDescription{};
}

// parse(serialize(d)) gives d back (the legacy flag is normalised away).
void expect_round_trip(const SessionDescription& d) {
  const std::string text = serialize(d);
  auto again = parse(text);
  ASSERT_TRUE(again.ok()) << again.error().message << "\n" << text;
  SessionDescription expected = d;
  expected.legacy_sctpmap = false;
  EXPECT_EQ(again.value(), expected) << text;
  EXPECT_EQ(serialize(again.value()), text);
}

using Extensions = std::vector<std::pair<std::string, std::string>>;

TEST(SdpRealWorld, ChromiumOffer) {
  const auto d = parse_ok(read_corpus("chromium_offer.sdp"));
  EXPECT_EQ(d.origin_username, "-");
  EXPECT_EQ(d.session_id, 695146222601719298u);
  EXPECT_EQ(d.session_version, 2u);
  EXPECT_EQ(d.mid, "0");
  EXPECT_FALSE(d.legacy_sctpmap);
  EXPECT_EQ(d.ice_ufrag, "spes");
  EXPECT_EQ(d.ice_pwd, "5xJh2oEAiQWBcs8/Roat4pA6");
  EXPECT_TRUE(d.ice_trickle);
  EXPECT_FALSE(d.ice_lite);
  ASSERT_EQ(d.fingerprints.size(), 1u);
  EXPECT_EQ(d.fingerprints[0].algorithm, "sha-256");
  EXPECT_EQ(d.fingerprints[0].value,
            "13:9B:F7:AC:D8:F0:4B:BE:34:9D:7A:33:AA:FB:EB:57:F9:36:88:F5:FB:35:4C:C0:56:91:58:98:"
            "D3:63:56:07");
  EXPECT_EQ(d.setup, Setup::ActPass);
  EXPECT_EQ(d.sctp_port, 5000);
  EXPECT_EQ(d.max_message_size, 262144u);
  ASSERT_EQ(d.candidates.size(), 2u);
  EXPECT_EQ(d.candidates[0].foundation, "3055454990");
  EXPECT_EQ(d.candidates[0].priority, 2113937151u);
  EXPECT_EQ(d.candidates[0].address, "192.168.77.10");
  EXPECT_EQ(d.candidates[0].port, 46290);
  EXPECT_EQ(d.candidates[0].type, "host");
  EXPECT_EQ(d.candidates[0].extensions, (Extensions{{"generation", "0"}, {"network-cost", "999"}}));
  EXPECT_EQ(d.candidates[1].address, "fd00:77::10");
  EXPECT_EQ(d.candidates[1].port, 53470);
  EXPECT_FALSE(d.end_of_candidates);
  EXPECT_EQ(d.connection_address, "192.168.77.10");
  EXPECT_EQ(d.media_port, 46290);
  EXPECT_TRUE(d.bundle);
  EXPECT_TRUE(d.other_media.empty());
  EXPECT_EQ(d.application_index, 0u);
  expect_round_trip(d);
}

TEST(SdpRealWorld, ChromiumAnswer) {
  const auto d = parse_ok(read_corpus("chromium_answer.sdp"));
  EXPECT_EQ(d.session_id, 4289871084462365649u);
  EXPECT_EQ(d.ice_ufrag, "FHJj");
  EXPECT_EQ(d.ice_pwd, "FWgpnFAYZWZMs+Hd2R3Wb3Ds");
  EXPECT_EQ(d.setup, Setup::Active);
  EXPECT_EQ(d.candidates.size(), 2u);
  EXPECT_EQ(d.media_port, 54947);
  EXPECT_TRUE(d.bundle);
  expect_round_trip(d);
}

TEST(SdpRealWorld, ChromiumOfferBeforeGathering) {
  const auto d = parse_ok(read_corpus("chromium_offer_no_candidates.sdp"));
  EXPECT_TRUE(d.candidates.empty());
  EXPECT_EQ(d.media_port, 9);
  EXPECT_EQ(d.connection_address, "0.0.0.0");
  EXPECT_EQ(d.ice_ufrag, "spes");
  expect_round_trip(d);
}

TEST(SdpRealWorld, ChromiumOfferWithAudioAndVideoKeepsThemAsOtherMedia) {
  const auto d = parse_ok(read_corpus("chromium_offer_audio_video.sdp"));
  EXPECT_EQ(d.mid, "2");
  EXPECT_EQ(d.ice_ufrag, "fI//");
  EXPECT_TRUE(d.bundle);  // a=group:BUNDLE 0 1 2
  ASSERT_EQ(d.other_media.size(), 2u);
  EXPECT_EQ(d.other_media[0],
            (OtherMedia{"audio", "UDP/TLS/RTP/SAVPF", "111 63 9 0 8 13 110 126", "0"}));
  EXPECT_EQ(d.other_media[1].media, "video");
  EXPECT_EQ(d.other_media[1].mid, "1");
  EXPECT_EQ(d.application_index, 2u);
  expect_round_trip(d);

  // Answering it: audio and video rejected in place, m= order kept (RFC 8829 5.3.1).
  SessionDescription answer = d;
  answer.setup = Setup::Active;
  const std::string text = serialize(answer);
  const auto audio = text.find("m=audio 0 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n");
  const auto video = text.find("m=video 0 UDP/TLS/RTP/SAVPF 96 ");
  const auto application = text.find("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
  ASSERT_NE(audio, std::string::npos) << text;
  ASSERT_NE(video, std::string::npos) << text;
  ASSERT_NE(application, std::string::npos) << text;
  EXPECT_LT(audio, video);
  EXPECT_LT(video, application);
  EXPECT_NE(text.find("a=group:BUNDLE 2\r\n"), std::string::npos) << text;
  EXPECT_NE(text.find("a=mid:0\r\n"), std::string::npos) << text;
}

TEST(SdpRealWorld, AiortcOfferUsesLegacyForm) {
  const auto d = parse_ok(read_corpus("aiortc_offer.sdp"));
  EXPECT_EQ(d.session_id, 4004295973u);
  EXPECT_EQ(d.session_version, 4004295973u);
  EXPECT_TRUE(d.legacy_sctpmap);
  EXPECT_EQ(d.sctp_port, 5000);
  EXPECT_EQ(d.max_message_size, 65536u);
  EXPECT_EQ(d.mid, "0");
  EXPECT_EQ(d.ice_ufrag, "amL2");
  EXPECT_EQ(d.ice_pwd, "cplszwGRPLhAY1uuKE4EM0");
  EXPECT_FALSE(d.ice_trickle);
  ASSERT_EQ(d.fingerprints.size(), 1u);
  EXPECT_EQ(d.fingerprints[0].value.substr(0, 8), "56:7E:AD");
  EXPECT_EQ(d.setup, Setup::ActPass);
  ASSERT_EQ(d.candidates.size(), 2u);
  EXPECT_EQ(d.candidates[0].foundation, "ca583d2142b85fb4a99e44e970855cc1");
  EXPECT_EQ(d.candidates[0].priority, 2130706431u);
  EXPECT_EQ(d.candidates[1].address, "fd00:77::10");
  EXPECT_EQ(d.candidates[1].port, 40185);
  EXPECT_TRUE(d.end_of_candidates);
  EXPECT_EQ(d.connection_address, "192.168.77.10");
  EXPECT_EQ(d.media_port, 46493);
  EXPECT_TRUE(d.bundle);
  expect_round_trip(d);
}

TEST(SdpRealWorld, AiortcAnswer) {
  const auto d = parse_ok(read_corpus("aiortc_answer.sdp"));
  EXPECT_TRUE(d.legacy_sctpmap);
  EXPECT_EQ(d.setup, Setup::Active);
  EXPECT_EQ(d.ice_ufrag, "8qx7");
  EXPECT_EQ(d.media_port, 43856);
  expect_round_trip(d);
}

TEST(SdpRealWorld, AiortcAnswerToChromiumOfferUsesModernForm) {
  const auto d = parse_ok(read_corpus("aiortc_answer_modern.sdp"));
  EXPECT_FALSE(d.legacy_sctpmap);
  EXPECT_EQ(d.sctp_port, 5000);
  EXPECT_EQ(d.max_message_size, 65536u);
  EXPECT_EQ(d.ice_ufrag, "4lNA");
  EXPECT_EQ(d.setup, Setup::Active);
  EXPECT_EQ(d.candidates.size(), 2u);
  EXPECT_TRUE(d.end_of_candidates);
  EXPECT_EQ(d.media_port, 36441);
  expect_round_trip(d);
}

// libdatachannel 0.24.5 (npm node-datachannel 0.33.4) and werift 0.25.2, captured
// in the same kind of namespace (see fuzz/README.md).
TEST(SdpRealWorld, LibdatachannelOfferWithCommaSeparatedIceOptions) {
  const auto d = parse_ok(read_corpus("ndc_offer.sdp"));
  EXPECT_EQ(d.origin_username, "rtc");
  EXPECT_EQ(d.session_id, 3018643414u);
  EXPECT_EQ(d.session_version, 0u);
  EXPECT_TRUE(d.ice_trickle);  // session level "a=ice-options:ice2,trickle"
  EXPECT_EQ(d.ice_ufrag, "VfBy");
  EXPECT_EQ(d.ice_pwd, "qMxvZa+tLWWrK4SlsTZOn0");
  ASSERT_EQ(d.fingerprints.size(), 1u);  // session level
  EXPECT_EQ(d.fingerprints[0].value.substr(0, 8), "CA:36:21");
  EXPECT_EQ(d.setup, Setup::ActPass);
  EXPECT_EQ(d.mid, "0");
  EXPECT_EQ(d.sctp_port, 5000);
  EXPECT_EQ(d.max_message_size, 262144u);
  ASSERT_EQ(d.candidates.size(), 2u);
  EXPECT_EQ(d.candidates[0].transport, "udp");  // "UDP" on the wire
  EXPECT_EQ(d.candidates[0].address, "fd00:77::10");
  EXPECT_EQ(d.candidates[1].address, "192.168.77.10");
  EXPECT_EQ(d.candidates[1].port, 45133);
  EXPECT_EQ(d.candidates[1].priority, 2114977791u);
  EXPECT_TRUE(d.end_of_candidates);
  EXPECT_EQ(d.connection_address, "192.168.77.10");
  EXPECT_EQ(d.media_port, 45133);
  EXPECT_TRUE(d.bundle);
  expect_round_trip(d);
}

TEST(SdpRealWorld, LibdatachannelAnswer) {
  const auto d = parse_ok(read_corpus("ndc_answer.sdp"));
  EXPECT_TRUE(d.ice_trickle);
  EXPECT_EQ(d.setup, Setup::Active);
  EXPECT_EQ(d.ice_ufrag, "pC99");
  EXPECT_EQ(d.candidates.size(), 2u);
  EXPECT_EQ(d.media_port, 44968);
  expect_round_trip(d);
}

TEST(SdpRealWorld, WeriftOffer) {
  const auto d = parse_ok(read_corpus("werift_offer.sdp"));
  EXPECT_EQ(d.session_id, 55431849u);
  EXPECT_TRUE(d.ice_trickle);
  EXPECT_EQ(d.ice_ufrag, "001f");
  EXPECT_EQ(d.ice_pwd, "d261cee788307b71bea0e0");
  EXPECT_EQ(d.setup, Setup::ActPass);
  EXPECT_EQ(d.max_message_size, 65536u);
  ASSERT_EQ(d.candidates.size(), 2u);
  EXPECT_EQ(d.candidates[0].foundation, "142b85fb4a99e44e970855cc1");
  EXPECT_EQ(d.candidates[0].port, 40443);
  EXPECT_EQ(d.candidates[0].extensions, (Extensions{{"generation", "0"}, {"ufrag", "001f"}}));
  EXPECT_EQ(d.candidates[1].address, "fd00:77::10");
  EXPECT_TRUE(d.end_of_candidates);
  EXPECT_EQ(d.connection_address, "0.0.0.0");
  EXPECT_EQ(d.media_port, 9);
  expect_round_trip(d);
}

TEST(SdpRealWorld, WeriftAnswer) {
  const auto d = parse_ok(read_corpus("werift_answer.sdp"));
  EXPECT_EQ(d.setup, Setup::Active);
  EXPECT_EQ(d.ice_ufrag, "513b");
  EXPECT_EQ(d.max_message_size, 65536u);
  EXPECT_EQ(d.candidates.size(), 2u);
  expect_round_trip(d);
}

TEST(SdpRealWorld, EveryCorpusSeedParsesAndRoundTrips) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(sdp_corpus_dir())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("bad_", 0) == 0 || name.rfind("crash-", 0) == 0) continue;
    SCOPED_TRACE(name);
    const auto d = parse_ok(read_corpus(name));
    expect_round_trip(d);
    ++count;
  }
  EXPECT_GE(count, 10);
}

TEST(SdpParse, LegacyFormWithLfOnlyAndSessionLevelAttributes) {
  const auto d = parse_ok(read_corpus("legacy_lf_only.sdp"));
  EXPECT_TRUE(d.legacy_sctpmap);
  EXPECT_EQ(d.sctp_port, 5000);
  EXPECT_EQ(d.mid, "data");
  EXPECT_EQ(d.ice_ufrag, "Ab+/");        // from session level
  EXPECT_EQ(d.setup, Setup::Passive);    // from session level
  ASSERT_EQ(d.fingerprints.size(), 1u);  // lower-case hex normalised
  EXPECT_EQ(d.fingerprints[0].value.find_first_of("abcdef"), std::string::npos);
  EXPECT_FALSE(d.bundle);                        // no a=group
  EXPECT_FALSE(d.max_message_size.has_value());  // absent: 64 KiB implied
  expect_round_trip(d);
}

TEST(SdpParse, SessionLevelEverything) {
  const auto d = parse_ok(read_corpus("handmade_session_level.sdp"));
  EXPECT_EQ(d.origin_username, "rtcmesh");
  EXPECT_EQ(d.session_id, 18446744073709551615u);
  EXPECT_TRUE(d.ice_lite);
  EXPECT_TRUE(d.ice_trickle);
  EXPECT_EQ(d.fingerprints.size(), 2u);
  EXPECT_EQ(d.fingerprints[1].algorithm, "sha-1");
  EXPECT_EQ(d.mid, "data");
  EXPECT_TRUE(d.bundle);
  EXPECT_EQ(d.sctp_port, 5001);
  EXPECT_EQ(d.max_message_size, 0u);  // 0: unlimited
  EXPECT_EQ(d.connection_address, "2001:db8::1");
  EXPECT_EQ(d.media_port, 50000);
  ASSERT_EQ(d.candidates.size(), 7u);
  EXPECT_EQ(d.candidates[2].tcp_type, "active");
  EXPECT_EQ(d.candidates[5].type, "relay");
  EXPECT_TRUE(d.end_of_candidates);
  expect_round_trip(d);
  EXPECT_NE(serialize(d).find("c=IN IP6 2001:db8::1\r\n"), std::string::npos);
}

TEST(SdpParse, MediaLevelOverridesSessionLevel) {
  const std::string text =
      "v=0\n"
      "o=- 1 1 IN IP4 0.0.0.0\n"
      "s=-\n"
      "t=0 0\n"
      "a=ice-ufrag:sessionufrag\n"
      "a=ice-pwd:sessionpassword0123456789\n"
      "a=ice-options:trickle\n"
      "a=setup:actpass\n"
      "a=fingerprint:sha-256 "
      "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:"
      "AA:AA\n"
      "c=IN IP4 10.1.1.1\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
      "a=ice-ufrag:mediaufrag\n"
      "a=ice-options:renomination\n"
      "a=setup:passive\n"
      "a=fingerprint:sha-1 BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB\n"
      "a=mid:0\n";
  const auto d = parse_ok(text);
  EXPECT_EQ(d.ice_ufrag, "mediaufrag");
  EXPECT_EQ(d.ice_pwd, "sessionpassword0123456789");
  EXPECT_FALSE(d.ice_trickle);  // the media-level ice-options has no trickle
  EXPECT_EQ(d.setup, Setup::Passive);
  ASSERT_EQ(d.fingerprints.size(), 1u);
  EXPECT_EQ(d.fingerprints[0].algorithm, "sha-1");
  EXPECT_EQ(d.connection_address, "10.1.1.1");  // session c= used when media has none
  EXPECT_EQ(d.sctp_port, 5000);                 // a=sctp-port absent: default
  expect_round_trip(d);
}

TEST(SdpParse, IgnoresUnknownAttributesAndPicksFirstUsableApplicationSection) {
  const std::string text =
      "v=0\r\n"
      "o=- 1 1 IN IP4 0.0.0.0\r\n"
      "s=-\r\n"
      "t=0 0\r\n"
      "a=x-foo:bar\r\n"
      "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"  // rejected: not ours
      "a=mid:a\r\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
      "c=IN IP4 0.0.0.0\r\n"
      "a=rtcp-mux\r\n"
      "a=sendrecv\r\n"
      "a=ice-ufrag:abcd\r\n"
      "a=ice-pwd:abcdefghijklmnopqrstuv\r\n"
      "a=fingerprint:sha-256 "
      "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:"
      "EE:FF\r\n"
      "a=mid:b\r\n"
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"  // second usable: other
      "a=mid:c\r\n";
  const auto d = parse_ok(text);
  EXPECT_EQ(d.mid, "b");
  EXPECT_FALSE(d.bundle);
  EXPECT_FALSE(d.setup.has_value());
  ASSERT_EQ(d.other_media.size(), 2u);
  EXPECT_EQ(d.other_media[0].mid, "a");
  EXPECT_EQ(d.other_media[1].mid, "c");
  EXPECT_EQ(d.application_index, 1u);
  expect_round_trip(d);
}

TEST(SdpParse, TypeAndSetupStrings) {
  for (Type t : {Type::Offer, Type::Answer, Type::Pranswer, Type::Rollback}) {
    EXPECT_EQ(parse_type(to_string(t)), t);
  }
  EXPECT_FALSE(parse_type("Offer").has_value());
  EXPECT_FALSE(parse_type("").has_value());
  EXPECT_EQ(to_string(Setup::ActPass), "actpass");
  EXPECT_EQ(to_string(Setup::Active), "active");
  EXPECT_EQ(to_string(Setup::Passive), "passive");
}

TEST(SdpSerialize, ProducesChromiumShape) {
  SessionDescription d;
  d.session_id = 4611731400430051336u;
  d.session_version = 2;
  d.ice_ufrag = "AbCd";
  d.ice_pwd = "abcdefghijklmnopqrstuvwx";
  d.ice_trickle = true;
  d.fingerprints = {{"sha-256",
                     "13:9B:F7:AC:D8:F0:4B:BE:34:9D:7A:33:AA:FB:EB:57:F9:36:88:F5:FB:35:4C:C0:56:"
                     "91:58:98:D3:63:56:07"}};
  d.setup = Setup::ActPass;
  d.max_message_size = 262144;
  auto candidate =
      parse_candidate("candidate:1 1 udp 2122262783 192.168.1.2 50000 typ host generation 0");
  ASSERT_TRUE(candidate.ok());
  d.candidates.push_back(candidate.value());
  EXPECT_EQ(serialize(d),
            "v=0\r\n"
            "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
            "s=-\r\n"
            "t=0 0\r\n"
            "a=group:BUNDLE 0\r\n"
            "a=msid-semantic: WMS\r\n"
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
            "c=IN IP4 0.0.0.0\r\n"
            "a=candidate:1 1 udp 2122262783 192.168.1.2 50000 typ host generation 0\r\n"
            "a=ice-ufrag:AbCd\r\n"
            "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
            "a=ice-options:trickle\r\n"
            "a=fingerprint:sha-256 13:9B:F7:AC:D8:F0:4B:BE:34:9D:7A:33:AA:FB:EB:57:F9:36:88:F5:FB:"
            "35:4C:C0:56:91:58:98:D3:63:56:07\r\n"
            "a=setup:actpass\r\n"
            "a=mid:0\r\n"
            "a=sctp-port:5000\r\n"
            "a=max-message-size:262144\r\n");
  expect_round_trip(d);
}

TEST(SdpSerialize, OptionalPartsAndLegacyInputComeOutModern) {
  auto d = parse_ok(read_corpus("aiortc_offer.sdp"));
  d.ice_lite = true;
  d.bundle = false;
  const std::string text = serialize(d);
  EXPECT_NE(text.find("\r\nm=application 46493 UDP/DTLS/SCTP webrtc-datachannel\r\n"),
            std::string::npos);
  EXPECT_EQ(text.find("sctpmap"), std::string::npos);
  EXPECT_NE(text.find("\r\na=sctp-port:5000\r\n"), std::string::npos);
  EXPECT_NE(text.find("\r\na=ice-lite\r\n"), std::string::npos);
  EXPECT_NE(text.find("\r\na=end-of-candidates\r\n"), std::string::npos);
  EXPECT_EQ(text.find("a=group:BUNDLE"), std::string::npos);
  EXPECT_EQ(text.find("a=ice-options"), std::string::npos);
  expect_round_trip(d);
}

// ---- Rejections: every message names the line number and quotes the line. ----

// A valid Chromium-shaped offer; line numbers are 1-based and fixed.
std::vector<std::string> base_lines() {
  return {
      "v=0",                                                        // 1
      "o=- 4611731400430051336 2 IN IP4 127.0.0.1",                 // 2
      "s=-",                                                        // 3
      "t=0 0",                                                      // 4
      "a=group:BUNDLE 0",                                           // 5
      "a=msid-semantic: WMS",                                       // 6
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",           // 7
      "c=IN IP4 0.0.0.0",                                           // 8
      "a=candidate:1 1 udp 2122262783 192.168.1.2 50000 typ host",  // 9
      "a=ice-ufrag:AbCd",                                           // 10
      "a=ice-pwd:abcdefghijklmnopqrstuvwx",                         // 11
      "a=ice-options:trickle",                                      // 12
      "a=fingerprint:sha-256 13:9B:F7:AC:D8:F0:4B:BE:34:9D:7A:33:AA:FB:EB:57:F9:36:88:F5:FB:35:"
      "4C:C0:56:91:58:98:D3:63:56:07",  // 13
      "a=setup:actpass",                // 14
      "a=mid:0",                        // 15
      "a=sctp-port:5000",               // 16
      "a=max-message-size:262144",      // 17
  };
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  return out;
}

std::string replace_line(int number, const std::string& text) {
  auto lines = base_lines();
  lines.at(static_cast<std::size_t>(number - 1)) = text;
  return join(lines);
}

std::string remove_line(int number) {
  auto lines = base_lines();
  lines.erase(lines.begin() + (number - 1));
  return join(lines);
}

template <class F>
std::string edit(F change) {  // arbitrary change to the 0-based vector of lines
  auto lines = base_lines();
  change(lines);
  return join(lines);
}

std::string insert_line(int number, const std::string& text) {  // becomes line `number`
  auto lines = base_lines();
  lines.insert(lines.begin() + (number - 1), text);
  return join(lines);
}

TEST(SdpReject, BaseIsValid) {
  parse_ok(join(base_lines()));
}

// RFC 8839 separates ice-option tags with SP; libdatachannel writes commas, older
// Chromium "google-ice". Any token is a tag, only "trickle" matters.
TEST(SdpParse, IceOptionsSeparatedBySpacesOrCommas) {
  const std::vector<std::pair<std::string, bool>> cases = {
      {"a=ice-options:ice2,trickle", true},       {"a=ice-options:ice2 trickle", true},
      {"a=ice-options:trickle, ice2", true},      {"a=ice-options:trickle", true},
      {"a=ice-options:ice2,renomination", false}, {"a=ice-options:google-ice", false},
      {"a=ice-options:trickle,", true},
  };
  for (const auto& [line, trickle] : cases) {
    SCOPED_TRACE(line);
    auto lines = base_lines();
    lines[11] = line;  // media level
    EXPECT_EQ(parse_ok(join(lines)).ice_trickle, trickle);
    lines.erase(lines.begin() + 11);  // session level, as libdatachannel puts it
    lines.insert(lines.begin() + 4, line);
    EXPECT_EQ(parse_ok(join(lines)).ice_trickle, trickle);
  }
}

// Every a=setup value from either side; what a value means for an offer or an
// answer is decided in src/peer (RFC 8842), not here.
TEST(SdpParse, EverySetupValueAtEitherLevel) {
  const std::vector<std::pair<std::string, sdp::Setup>> cases = {{"actpass", Setup::ActPass},
                                                                 {"active", Setup::Active},
                                                                 {"passive", Setup::Passive},
                                                                 {"ACTIVE", Setup::Active}};
  for (const auto& [value, setup] : cases) {
    SCOPED_TRACE(value);
    EXPECT_EQ(parse_ok(replace_line(14, "a=setup:" + value)).setup, setup);
    auto lines = base_lines();
    lines.erase(lines.begin() + 13);
    lines.insert(lines.begin() + 4, "a=setup:" + value);
    EXPECT_EQ(parse_ok(join(lines)).setup, setup);
  }
}

// What libdatachannel and werift put around the data-channel section.
TEST(SdpParse, IgnoresOtherStacksAttributes) {
  auto lines = base_lines();
  lines.insert(lines.begin() + 7, "a=sendrecv");
  lines.insert(lines.begin() + 5, "a=extmap-allow-mixed");
  lines.insert(lines.begin() + 5, "a=msid-semantic:WMS *");
  lines.insert(lines.begin() + 5, "a=x-unknown");
  const auto d = parse_ok(join(lines));
  EXPECT_EQ(d.mid, "0");
  EXPECT_TRUE(d.ice_trickle);
  expect_round_trip(d);
}

// IPv6 and mDNS host candidates are parsed as they are; the ICE layer skips those it
// cannot use (an unresolved .local name) with a reason, never the whole description.
TEST(SdpParse, KeepsIpv6AndMdnsCandidates) {
  auto lines = base_lines();
  lines.insert(lines.begin() + 9,
               "a=candidate:2 1 udp 2122262783 fd00:77::10 50001 typ host generation 0");
  lines.insert(lines.begin() + 9,
               "a=candidate:3 1 udp 2122262783 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 50002 "
               "typ host generation 0");
  lines.insert(lines.begin() + 9, "a=candidate:4 1 UDP 2122262783 ::1 50003 typ host");
  const auto d = parse_ok(join(lines));
  ASSERT_EQ(d.candidates.size(), 4u);
  EXPECT_EQ(d.candidates[1].address, "::1");
  EXPECT_EQ(d.candidates[2].address, "1f4712db-ea17-4bcf-a596-105139dfd8bf.local");
  EXPECT_EQ(d.candidates[3].address, "fd00:77::10");
  expect_round_trip(d);
}

// RFC 8841 section 6: absent means 65536 (left to the user of the value), 0 means no
// limit; both are kept as written so an answer can mirror them.
TEST(SdpParse, MaxMessageSizeAbsentOrZero) {
  EXPECT_FALSE(parse_ok(remove_line(17)).max_message_size.has_value());
  EXPECT_EQ(parse_ok(replace_line(17, "a=max-message-size:0")).max_message_size, 0u);
  EXPECT_EQ(parse_ok(replace_line(17, "a=max-message-size:1073741823")).max_message_size,
            1073741823u);
}

struct BadSdp {
  const char* name;
  std::string text;
  int line;          // expected "line <n>: " prefix
  const char* what;  // expected somewhere in the message
};

std::ostream& operator<<(std::ostream& os, const BadSdp& b) {
  return os << b.name;
}

class SdpRejects : public testing::TestWithParam<BadSdp> {};

TEST_P(SdpRejects, NamingTheLine) {
  const BadSdp& bad = GetParam();
  auto d = parse(bad.text);
  ASSERT_FALSE(d.ok()) << bad.name << "\n" << bad.text;
  const std::string& message = d.error().message;
  const std::string prefix = "line " + std::to_string(bad.line) + ": ";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << "expected prefix '" << prefix << "': " << message;
  EXPECT_NE(message.find(bad.what), std::string::npos) << message;
}

const std::string kFp32 =
    "13:9B:F7:AC:D8:F0:4B:BE:34:9D:7A:33:AA:FB:EB:57:F9:36:88:F5:FB:35:4C:C0:56:91:58:98:D3:63:56:"
    "07";

INSTANTIATE_TEST_SUITE_P(
    Sdp, SdpRejects,
    testing::Values(
        // Structure: v=, o=, s=, t=.
        BadSdp{"Empty", "", 1, "empty SDP"}, BadSdp{"OnlyBlankLines", "\r\n\r\n", 1, "empty SDP"},
        BadSdp{"MissingV", remove_line(1), 1, "expected v=0"},
        BadSdp{"WrongVersion", replace_line(1, "v=1"), 1, "expected v=0"},
        BadSdp{"MissingO", remove_line(2), 2, "expected o= line"},
        BadSdp{"OnlyV", "v=0\r\n", 2, "missing o= line"},
        BadSdp{"MissingS", remove_line(3), 3, "expected s= line"},
        BadSdp{"MissingT", remove_line(4), 6, "missing t= line"},
        BadSdp{"DuplicateV", insert_line(5, "v=0"), 5, "duplicate v= line"},
        BadSdp{"OriginIdNotNumber", replace_line(2, "o=- abc 2 IN IP4 127.0.0.1"), 2,
               "bad o= line: session id"},
        BadSdp{"OriginIdNegative", replace_line(2, "o=- -1 2 IN IP4 127.0.0.1"), 2,
               "bad o= line: session id"},
        BadSdp{"OriginIdOverflow", replace_line(2, "o=- 18446744073709551616 2 IN IP4 127.0.0.1"),
               2, "bad o= line: session id"},
        BadSdp{"OriginVersionBad", replace_line(2, "o=- 1 2x IN IP4 127.0.0.1"), 2,
               "bad o= line: session version"},
        BadSdp{"OriginTooFewFields", replace_line(2, "o=- 1 2 IN IP4"), 2, "expected 6 fields"},
        BadSdp{"OriginDoubleSpace", replace_line(2, "o=-  1 2 IN IP4 127.0.0.1"), 2, "bad o= line"},
        BadSdp{"BadTiming", replace_line(4, "t=0"), 4, "bad t= line"},
        // Line syntax.
        BadSdp{"UnknownLineType", insert_line(5, "x=whatever"), 5, "unknown line type"},
        BadSdp{"NoEquals", insert_line(5, "a:group"), 5, "expected <type>=<value>"},
        BadSdp{"UpperCaseType", insert_line(5, "A=foo"), 5, "expected <type>=<value>"},
        BadSdp{"EmptyLineInside", insert_line(8, ""), 8, "empty line"},
        BadSdp{"ControlCharacter", replace_line(6, std::string("a=msid-semantic:\x01WMS")), 6,
               "control character"},
        BadSdp{"MediaLevelTLine", insert_line(9, "t=0 0"), 9, "unexpected t= line"},
        // m= sections.
        BadSdp{"NoApplicationSection",
               join({"v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
                     "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0"}),
               6, "without a usable m=application"},
        BadSdp{"OnlyRejectedApplication",
               replace_line(7, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"), 17,
               "without a usable m=application"},
        BadSdp{"NoMediaAtAll", join({"v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0"}), 4,
               "without a usable m=application"},
        BadSdp{"MediaPortTooBig",
               replace_line(7, "m=application 65536 UDP/DTLS/SCTP webrtc-datachannel"), 7,
               "bad m= line: port"},
        BadSdp{"MediaPortNotNumber",
               replace_line(7, "m=application 9x UDP/DTLS/SCTP webrtc-datachannel"), 7,
               "bad m= line: port"},
        BadSdp{"MediaTooFewFields", replace_line(7, "m=application 9 UDP/DTLS/SCTP"), 7,
               "bad m= line"},
        BadSdp{"WrongFormat", replace_line(7, "m=application 9 UDP/DTLS/SCTP 5000"), 7,
               "expected webrtc-datachannel"},
        BadSdp{"LegacyPortTooBig", replace_line(7, "m=application 9 DTLS/SCTP 99999"), 7,
               "SCTP port"},
        BadSdp{"LegacySctpmapMismatch", edit([](auto& l) {
                 l[6] = "m=application 9 DTLS/SCTP 5000";
                 l[15] = "a=sctpmap:5001 webrtc-datachannel 1024";
               }),
               16, "bad a=sctpmap: port does not match"},
        BadSdp{"LegacySctpmapWrongProtocol", edit([](auto& l) {
                 l[6] = "m=application 9 DTLS/SCTP 5000";
                 l[15] = "a=sctpmap:5000 t38 1024";
               }),
               16, "bad a=sctpmap: protocol"},
        BadSdp{"DuplicateMid", edit([](auto& l) {
                 l.push_back("m=audio 0 UDP/TLS/RTP/SAVPF 0");  // line 18
                 l.push_back("a=mid:0");
               }),
               18, "duplicate mid '0'"},
        BadSdp{"BadMid", replace_line(15, "a=mid:0 1"), 15, "bad a=mid"},
        // c=
        BadSdp{"BadConnectionAddress", replace_line(8, "c=IN IP4 300.0.0.0"), 8, "bad c= line"},
        BadSdp{"MulticastConnection", replace_line(8, "c=IN IP4 224.2.1.1/127"), 8, "bad c= line"},
        BadSdp{"BadConnectionNetType", replace_line(8, "c=XX IP4 0.0.0.0"), 8, "bad c= line"},
        // ICE credentials.
        BadSdp{"MissingUfrag", remove_line(10), 7, "no a=ice-ufrag"},
        BadSdp{"MissingPwd", remove_line(11), 7, "no a=ice-pwd"},
        BadSdp{"ShortUfrag", replace_line(10, "a=ice-ufrag:abc"), 10, "bad a=ice-ufrag"},
        BadSdp{"LongUfrag", replace_line(10, "a=ice-ufrag:" + std::string(257, 'a')), 10,
               "bad a=ice-ufrag"},
        BadSdp{"UfragBadChar", replace_line(10, "a=ice-ufrag:ab-cd"), 10, "bad a=ice-ufrag"},
        BadSdp{"ShortPwd", replace_line(11, "a=ice-pwd:tooshort"), 11, "bad a=ice-pwd"},
        BadSdp{"DuplicateUfrag", insert_line(11, "a=ice-ufrag:Other"), 11, "duplicate a=ice-ufrag"},
        BadSdp{"EmptyIceOptions", replace_line(12, "a=ice-options:"), 12, "bad a=ice-options"},
        BadSdp{"OnlyCommasIceOptions", replace_line(12, "a=ice-options:, ,"), 12,
               "bad a=ice-options"},
        BadSdp{"IceOptionsNotAToken", replace_line(12, "a=ice-options:trickle;ice2"), 12,
               "bad a=ice-options"},
        BadSdp{"DuplicateIceOptions", insert_line(13, "a=ice-options:ice2"), 13,
               "duplicate a=ice-options"},
        // Fingerprint.
        BadSdp{"MissingFingerprint", remove_line(13), 7, "no a=fingerprint"},
        BadSdp{"FingerprintNoValue", replace_line(13, "a=fingerprint:sha-256"), 13,
               "bad a=fingerprint: 'a=fingerprint:sha-256'"},
        BadSdp{"FingerprintBadHex", replace_line(13, "a=fingerprint:sha-256 ZZ" + kFp32.substr(2)),
               13, "bad a=fingerprint"},
        BadSdp{"FingerprintTooShort", replace_line(13, "a=fingerprint:sha-256 " + kFp32.substr(3)),
               13, "bad a=fingerprint"},
        BadSdp{"FingerprintTrailingColon", replace_line(13, "a=fingerprint:sha-256 " + kFp32 + ":"),
               13, "bad a=fingerprint"},
        BadSdp{"FingerprintNoColons", replace_line(13, "a=fingerprint:sha-1 0011223344"), 13,
               "bad a=fingerprint"},
        // DTLS role, SCTP.
        BadSdp{"SetupHoldconn", replace_line(14, "a=setup:holdconn"), 14, "bad a=setup"},
        BadSdp{"DuplicateSetup", insert_line(15, "a=setup:active"), 15, "duplicate a=setup"},
        BadSdp{"SctpPortTooBig", replace_line(16, "a=sctp-port:70000"), 16, "bad a=sctp-port"},
        BadSdp{"SctpPortZero", replace_line(16, "a=sctp-port:0"), 16, "bad a=sctp-port"},
        BadSdp{"MaxMessageSizeBad", replace_line(17, "a=max-message-size:-5"), 17,
               "bad a=max-message-size"},
        // Candidates.
        BadSdp{"CandidateBadType",
               replace_line(9, "a=candidate:1 1 udp 1 192.168.1.2 50000 typ nat"), 9,
               "bad candidate: candidate type"},
        BadSdp{"CandidateBadPort",
               replace_line(9, "a=candidate:1 1 udp 1 192.168.1.2 65536 typ host"), 9,
               "bad candidate: port"},
        BadSdp{"CandidateBadTransport",
               replace_line(9, "a=candidate:1 1 quic 1 192.168.1.2 1 typ host"), 9,
               "bad candidate: transport"},
        BadSdp{"CandidateTruncated", replace_line(9, "a=candidate:1 1 udp 1 192.168.1.2"), 9,
               "bad candidate"},
        // Absurd lengths.
        BadSdp{"LineTooLong", insert_line(6, "a=x-long:" + std::string(5000, 'x')), 6,
               "line too long"}),
    [](const testing::TestParamInfo<BadSdp>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(SdpReject, TooLargeInput) {
  std::string text = join(base_lines());
  while (text.size() <= kMaxSdpSize) text += "a=x-pad:" + std::string(1000, 'p') + "\r\n";
  auto d = parse(text);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().message.rfind("SDP too large", 0), 0u) << d.error().message;
}

TEST(SdpReject, TooManyCandidates) {
  auto lines = base_lines();
  lines.erase(lines.begin() + 8);  // the existing candidate
  for (int k = 0; k < 1025; ++k) {
    lines.push_back("a=candidate:" + std::to_string(k) + " 1 udp 1 10.0.0.1 " +
                    std::to_string(1000 + k) + " typ host");
  }
  const std::string text = join(lines);
  ASSERT_LE(text.size(), kMaxSdpSize);
  auto d = parse(text);
  ASSERT_FALSE(d.ok());
  // 16 base lines remain; candidate number 1025 (index 1024) is line 16 + 1025.
  EXPECT_EQ(d.error().message.rfind("line 1041: too many candidates (max 1024)", 0), 0u)
      << d.error().message;

  lines.pop_back();  // exactly 1024 is fine
  auto ok = parse(join(lines));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->candidates.size(), 1024u);
}

TEST(SdpReject, ErrorQuotesAndEscapesTheLine) {
  auto d = parse(replace_line(13, "a=fingerprint:sha-256\tZZ\xff"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().message, "line 13: bad a=fingerprint: 'a=fingerprint:sha-256\\x09ZZ\\xff'");
  EXPECT_EQ(d.error().code, ErrorCode::SyntaxError);  // every parse failure of SDP
}

}  // namespace
}  // namespace rtcmesh::sdp
