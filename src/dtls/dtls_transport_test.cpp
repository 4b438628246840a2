// DtlsTransport and Certificate tests: two transports joined by a MemoryLink on
// a ManualExecutor (testing::DtlsPair). Everything runs on the test thread in
// virtual time: retransmissions and the 30 s handshake limit cost no real time.
#include "dtls/dtls_transport.hpp"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "dtls/certificate.hpp"
#include "testing/dtls_pair.hpp"
#include "testing/memory_link.hpp"
#include "testing/pattern.hpp"

namespace {

using namespace std::chrono_literals;
using rtcmesh::ByteSpan;
using rtcmesh::dtls::Certificate;
using rtcmesh::dtls::DtlsTransport;
using rtcmesh::dtls::RemoteFingerprint;
using rtcmesh::dtls::Role;
using rtcmesh::dtls::State;
using rtcmesh::testing::Bytes;
using rtcmesh::testing::DtlsPair;
using rtcmesh::testing::make_certificate;
using rtcmesh::testing::MemoryLink;
using rtcmesh::testing::pattern;
using rtcmesh::testing::sha256_of;
using Duration = std::chrono::steady_clock::duration;

// RFC 8122 fingerprint syntax: `bytes` upper-case hex pairs joined by ':'.
// (No std::regex: g++ 12 warns inside <regex> at -O1 with sanitizers.)
bool is_colon_hex(const std::string& value, size_t bytes) {
  if (value.size() != bytes * 3 - 1) return false;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    bool ok = (i % 3 == 2) ? c == ':' : ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'));
    if (!ok) return false;
  }
  return true;
}

bool contains(const std::vector<State>& states, State state) {
  return std::find(states.begin(), states.end(), state) != states.end();
}

using Side = rtcmesh::testing::DtlsSide;

// The shared pair (src/testing/dtls_pair.hpp): two transports over a
// MemoryLink on a ManualExecutor, so every timer runs in virtual time.
class DtlsPairTest : public ::testing::Test, public DtlsPair {};

// Sends `packets` from `from` and checks `to` got exactly those bytes, in order.
void exchange(DtlsPair& pair, Side& from, Side& to, const std::vector<Bytes>& packets) {
  const size_t before = to.received.size();
  for (const auto& p : packets) EXPECT_TRUE(from.transport->send(ByteSpan(p.data(), p.size())));
  ASSERT_TRUE(pair.run_until([&] { return to.received.size() >= before + packets.size(); }));
  ASSERT_EQ(to.received.size(), before + packets.size());
  for (size_t i = 0; i < packets.size(); ++i) EXPECT_EQ(to.received[before + i], packets[i]) << i;
}

std::vector<Bytes> test_packets(uint8_t seed) {
  std::vector<Bytes> packets;
  for (size_t size : {1, 2, 13, 100, 500, 1024, 1100, 1200, 1199, 4096, 16384}) {
    packets.push_back(pattern(size, static_cast<uint8_t>(seed + size)));
  }
  return packets;
}

class DtlsHandshakeBothWays : public DtlsPairTest, public ::testing::WithParamInterface<bool> {};

TEST_P(DtlsHandshakeBothWays, ConnectsAndCarriesDataBothWays) {
  const bool a_is_client = GetParam();
  create_pair(a_is_client);
  // Record the size of every handshake datagram.
  auto sizes_a = std::make_shared<std::vector<size_t>>();
  auto sizes_b = std::make_shared<std::vector<size_t>>();
  {
    link->a.filter = [sizes_a](ByteSpan p) {
      sizes_a->push_back(p.size());
      return true;
    };
    link->b.filter = [sizes_b](ByteSpan p) {
      sizes_b->push_back(p.size());
      return true;
    };
  }
  EXPECT_FALSE(std::invoke([&] {
    Bytes early = pattern(10, 1);
    return a.transport->send(ByteSpan(early.data(), early.size()));
  })) << "send before Connected must fail";
  start_both();
  ASSERT_TRUE(wait_connected()) << "a: " << a.error << " b: " << b.error;
  size_t client_hello_bytes = 0;
  {
    EXPECT_EQ(a.states, (std::vector<State>{State::Connecting, State::Connected}));
    EXPECT_EQ(b.states, (std::vector<State>{State::Connecting, State::Connected}));
    EXPECT_EQ(a.transport->role(), a_is_client ? Role::Client : Role::Server);
    EXPECT_EQ(a.transport->state(), State::Connected);
    link->a.filter = nullptr;
    link->b.filter = nullptr;
    const auto& client_sizes = a_is_client ? *sizes_a : *sizes_b;
    ASSERT_FALSE(client_sizes.empty());
    client_hello_bytes = client_sizes[0];
    for (size_t size : *sizes_a) EXPECT_LE(size, 1200u);
    for (size_t size : *sizes_b) EXPECT_LE(size, 1200u);
    // ClientHello, server flight, client flight, server Finished: with no loss
    // each flight is one datagram.
    EXPECT_EQ(sizes_a->size() + sizes_b->size(), 4u);
  }
  RecordProperty("client_hello_bytes", static_cast<int>(client_hello_bytes));
  // One send() is one record in one datagram, also at full SCTP packet size.
  {
    size_t before = link->a.sent;
    auto max_size = std::make_shared<size_t>(0);
    link->a.filter = [max_size](ByteSpan p) {
      *max_size = std::max(*max_size, p.size());
      return true;
    };
    Bytes packet = pattern(1200, 9);
    for (int i = 0; i < 10; ++i)
      EXPECT_TRUE(a.transport->send(ByteSpan(packet.data(), packet.size())));
    EXPECT_EQ(link->a.sent, before + 10);
    EXPECT_GT(*max_size, 1200u);
    EXPECT_LE(*max_size, 1200u + 13 + 8 + 16);  // record header, explicit nonce, tag
    link->a.filter = nullptr;
  }
  ASSERT_TRUE(run_until([&] { return b.received.size() == 10; }));
  exchange(*this, a, b, test_packets(1));
  exchange(*this, b, a, test_packets(2));
  // Interleaved, many small packets.
  std::vector<Bytes> burst;
  for (int i = 0; i < 500; ++i)
    burst.push_back(pattern(1 + (i * 37) % 1200, static_cast<uint8_t>(i)));
  exchange(*this, a, b, burst);
  exchange(*this, b, a, burst);
  EXPECT_FALSE(std::invoke([&] {
    Bytes too_big(16385);
    return a.transport->send(ByteSpan(too_big.data(), too_big.size()));
  }));
}

INSTANTIATE_TEST_SUITE_P(Roles, DtlsHandshakeBothWays, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "AIsClient" : "AIsServer";
                         });

TEST_F(DtlsPairTest, AcceptsSha1AndAnyOfSeveralFingerprints) {
  auto other = make_certificate();
  auto sha1_of_b = rtcmesh::dtls::fingerprint(cert_b->x509(), "sha-1");
  ASSERT_TRUE(sha1_of_b.ok());
  // Case-insensitive algorithm and value; the first entry does not match.
  std::string lower_value = *sha1_of_b;
  std::transform(lower_value.begin(), lower_value.end(), lower_value.begin(), ::tolower);
  create(a, link->a, cert_a, Role::Client,
         {{"sha-256", other->fingerprint_sha256()}, {"SHA-1", lower_value}});
  create(b, link->b, cert_b, Role::Server, sha256_of(cert_a));
  start_both();
  ASSERT_TRUE(wait_connected()) << "a: " << a.error << " b: " << b.error;
}

class DtlsFingerprintMismatch : public DtlsPairTest, public ::testing::WithParamInterface<bool> {};

// The side whose check fails reports both fingerprints; the other side never
// reaches Connected (it gets the alert and fails).
TEST_P(DtlsFingerprintMismatch, FailsAndPeerDoesNotConnect) {
  const bool client_checks_wrong = GetParam();
  auto stranger = make_certificate();
  create(a, link->a, cert_a, Role::Client,
         client_checks_wrong ? sha256_of(stranger) : sha256_of(cert_b));
  create(b, link->b, cert_b, Role::Server,
         client_checks_wrong ? sha256_of(cert_a) : sha256_of(stranger));
  start_both();
  Side& checker = client_checks_wrong ? a : b;
  Side& victim = client_checks_wrong ? b : a;
  const auto& real = client_checks_wrong ? cert_b : cert_a;
  ASSERT_TRUE(run_until([&] { return checker.state() == State::Failed; }));
  ASSERT_TRUE(run_until([&] { return victim.state() == State::Failed; }));
  executor.advance(50ms);
  {
    EXPECT_EQ(checker.error, "remote certificate fingerprint mismatch: expected sha-256 " +
                                 stranger->fingerprint_sha256() + ", got " +
                                 real->fingerprint_sha256());
    EXPECT_FALSE(contains(checker.states, State::Connected));
    EXPECT_FALSE(contains(victim.states, State::Connected));
    EXPECT_FALSE(victim.error.empty());
    EXPECT_NE(victim.error.find("bad certificate"), std::string::npos) << victim.error;
  }
}

INSTANTIATE_TEST_SUITE_P(Sides, DtlsFingerprintMismatch, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "ClientChecks" : "ServerChecks";
                         });

TEST_F(DtlsPairTest, NoRemoteFingerprintFails) {
  create(a, link->a, cert_a, Role::Client, {});
  create(b, link->b, cert_b, Role::Server, sha256_of(cert_a));
  start_both();
  ASSERT_TRUE(run_until([&] { return a.state() == State::Failed && b.state() == State::Failed; }));
  {
    EXPECT_NE(a.error.find("fingerprint"), std::string::npos) << a.error;
    EXPECT_FALSE(contains(b.states, State::Connected));
  }
}

// Count of datagrams each side sends in a lossless handshake.
std::pair<size_t, size_t> lossless_counts(const MemoryLink& link) {
  return {link.a.sent, link.b.sent};
}

// Losing any single handshake datagram (first flight, server flight, client's
// second flight, server's Finished) costs one short retransmission timeout
// (100 ms), not OpenSSL's default 1 s. Virtual time makes that exact.
TEST_F(DtlsPairTest, AnySingleLostHandshakeDatagramRecoversQuickly) {
  create_pair();
  start_both();
  ASSERT_TRUE(wait_connected());
  executor.advance(20ms);
  auto [client_count, server_count] = lossless_counts(*link);
  ASSERT_GE(client_count, 2u);
  ASSERT_GE(server_count, 2u);

  for (int from_server = 0; from_server < 2; ++from_server) {
    size_t count = from_server ? server_count : client_count;
    for (size_t drop = 0; drop < count; ++drop) {
      SCOPED_TRACE((from_server ? "server datagram " : "client datagram ") + std::to_string(drop));
      reset_pair();
      create_pair();
      auto seen = std::make_shared<size_t>(0);
      {
        MemoryLink::End& end = from_server ? link->b : link->a;
        end.filter = [seen, drop](ByteSpan) { return (*seen)++ != drop; };
      }
      auto started = executor.now();
      start_both();
      ASSERT_TRUE(wait_connected()) << "a: " << a.error << " b: " << b.error;
      auto elapsed =
          std::invoke([&] { return std::max(a.connected_at, b.connected_at) - started; });
      EXPECT_GE(elapsed, 100ms)
          << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
      EXPECT_LT(elapsed, 200ms)
          << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
      // And data flows afterwards.
      exchange(*this, a, b, {pattern(1100, 3)});
      exchange(*this, b, a, {pattern(1100, 4)});
    }
  }
}

TEST_F(DtlsPairTest, FirstFlightDroppedConnectsWellUnderOneSecond) {
  create_pair();
  {
    auto dropped = std::make_shared<bool>(false);
    link->a.filter = [dropped](ByteSpan) {
      if (*dropped) return true;
      *dropped = true;  // the ClientHello
      return false;
    };
  }
  auto started = executor.now();
  start_both();
  ASSERT_TRUE(wait_connected());
  auto elapsed = std::invoke([&] { return std::max(a.connected_at, b.connected_at) - started; });
  // One retransmission of the ClientHello, after the first 100 ms timeout.
  EXPECT_GE(elapsed, 100ms) << "the ClientHello was not dropped?";
  EXPECT_LT(elapsed, 200ms);
}

// The server is started only after the client's ClientHello reached it; the
// buffered ClientHello is answered at start() without waiting for a
// retransmission.
TEST_F(DtlsPairTest, EarlyPacketsAreBufferedUntilStart) {
  create_pair();
  auto server_started = std::make_shared<std::atomic<bool>>(false);
  {
    a.transport->start();  // the ClientHello is on its way
    // Drop the client's retransmissions while the server is not started, so
    // only the buffered first ClientHello can make progress.
    link->a.filter = [server_started](ByteSpan) { return server_started->load(); };
  }
  ASSERT_TRUE(run_until([&] { return b.datagrams_in >= 1; }));
  executor.advance(350ms);  // client retransmits at ~100 and ~300 ms; next one at ~700 ms
  auto started = executor.now();
  {
    EXPECT_EQ(b.transport->state(), State::New);
    server_started->store(true);
    b.transport->start();
  }
  ASSERT_TRUE(wait_connected());
  auto elapsed = std::invoke([&] { return std::max(a.connected_at, b.connected_at) - started; });
  // The next client retransmission would come at ~700 ms; none was needed.
  EXPECT_LT(elapsed, 100ms) << "connected only after a client retransmission";
}

TEST_F(DtlsPairTest, EarlyBufferIsBounded) {
  create_pair();
  {
    Bytes junk = pattern(50, 9);
    junk[0] = 22;
    for (int i = 0; i < 1000; ++i)
      b.transport->receive_from_lower(ByteSpan(junk.data(), junk.size()));
  }
  start_both();
  ASSERT_TRUE(wait_connected()) << "a: " << a.error << " b: " << b.error;
}

class DtlsCloseTest : public DtlsPairTest, public ::testing::WithParamInterface<bool> {};

TEST_P(DtlsCloseTest, CloseNotifyReachesPeer) {
  const bool client_closes = GetParam();
  create_pair();
  start_both();
  ASSERT_TRUE(wait_connected());
  Side& closer = client_closes ? a : b;
  Side& peer = client_closes ? b : a;
  {
    closer.transport->close();
    closer.transport->close();  // idempotent
    EXPECT_EQ(closer.transport->state(), State::Closed);
    Bytes p = pattern(10, 1);
    EXPECT_FALSE(closer.transport->send(ByteSpan(p.data(), p.size())));
  }
  ASSERT_TRUE(run_until([&] { return peer.state() == State::Closed; }));
  executor.advance(20ms);
  {
    EXPECT_EQ(closer.states,
              (std::vector<State>{State::Connecting, State::Connected, State::Closed}));
    EXPECT_EQ(peer.states,
              (std::vector<State>{State::Connecting, State::Connected, State::Closed}));
    EXPECT_TRUE(peer.error.empty());
    peer.transport->close();  // already closed: no new callback
    EXPECT_EQ(peer.states.size(), 3u);
  }
}

INSTANTIATE_TEST_SUITE_P(Sides, DtlsCloseTest, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "ClientCloses" : "ServerCloses";
                         });

TEST_F(DtlsPairTest, CloseBeforeStartAndDuringHandshake) {
  create_pair();
  {
    a.transport->close();
    EXPECT_EQ(a.transport->state(), State::Closed);
    a.transport->start();  // no effect after close
    EXPECT_EQ(a.transport->state(), State::Closed);
  }
  reset_pair();
  create_pair();
  link->b.filter = [](ByteSpan) { return false; };  // server unheard
  start_both();
  executor.advance(30ms);
  {
    a.transport->close();
    EXPECT_EQ(a.transport->state(), State::Closed);
  }
  executor.advance(300ms);  // retransmission timers would have fired by now
  { EXPECT_EQ(a.states, (std::vector<State>{State::Connecting, State::Closed})); }
}

// Other stacks may pack several records into one datagram: all of them are
// delivered at once (none waits in OpenSSL's buffer for the next datagram).
TEST_F(DtlsPairTest, SeveralRecordsInOneDatagram) {
  create_pair();
  start_both();
  ASSERT_TRUE(wait_connected());
  {
    Bytes datagram;
    link->a.filter = [&datagram](ByteSpan p) {
      datagram.insert(datagram.end(), p.begin(), p.end());
      return false;  // captured instead of sent
    };
    std::vector<Bytes> packets = {pattern(300, 1), pattern(1, 2), pattern(700, 3)};
    for (const auto& p : packets) ASSERT_TRUE(a.transport->send(ByteSpan(p.data(), p.size())));
    link->a.filter = nullptr;
    size_t before = b.received.size();
    b.transport->receive_from_lower(ByteSpan(datagram.data(), datagram.size()));
    ASSERT_EQ(b.received.size(), before + 3);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(b.received[before + i], packets[i]);
    // A replayed datagram is dropped (RFC 6347 section 4.1.2.6).
    b.transport->receive_from_lower(ByteSpan(datagram.data(), datagram.size()));
    EXPECT_EQ(b.received.size(), before + 3);
  }
}

TEST_F(DtlsPairTest, GarbageRecordsAreIgnored) {
  create_pair();
  start_both();
  ASSERT_TRUE(wait_connected());
  {
    for (uint8_t type : {20, 21, 22, 23, 63, 0, 64, 255}) {
      Bytes junk = pattern(80, type);
      junk[0] = type;
      b.transport->receive_from_lower(ByteSpan(junk.data(), junk.size()));
      // "Records" with a valid header but a forged body: they fail
      // authentication. Those shorter than the AEAD overhead made OpenSSL
      // 3.0.19 send a fatal internal_error alert; they must be dropped too.
      for (uint8_t length : {0, 1, 8, 15, 16, 20, 23, 24, 40}) {
        Bytes forged = {type, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, length};
        forged.resize(13 + length, 0xAB);
        b.transport->receive_from_lower(ByteSpan(forged.data(), forged.size()));
      }
    }
    b.transport->receive_from_lower(ByteSpan());
  }
  exchange(*this, a, b, {pattern(1000, 5)});
  { EXPECT_EQ(b.transport->state(), State::Connected) << b.error; }
}

// Destroying a transport with retransmission timers pending is clean, and no
// callback fires afterwards (run under ASan too).
TEST_F(DtlsPairTest, DestroyMidHandshakeWithTimersPending) {
  for (int victim_is_client = 0; victim_is_client < 2; ++victim_is_client) {
    reset_pair();
    create_pair();
    // Nothing from the server reaches the client: both keep retransmitting.
    {
      link->b.filter = [](ByteSpan) { return false; };
    }
    start_both();
    executor.advance(120ms);  // at least one retransmission happened
    Side& victim = victim_is_client ? a : b;
    size_t states_seen = 0;
    {
      states_seen = victim.states.size();
      victim.transport.reset();
    }
    executor.advance(400ms);
    { EXPECT_EQ(victim.states.size(), states_seen); }
  }
}

TEST_F(DtlsPairTest, DestroyMidDataWithDeliveriesQueued) {
  create_pair();
  start_both();
  ASSERT_TRUE(wait_connected());
  Bytes packet = pattern(1100, 7);
  {
    for (int i = 0; i < 2000; ++i) {
      a.transport->send(ByteSpan(packet.data(), packet.size()));
      b.transport->send(ByteSpan(packet.data(), packet.size()));
    }
    // Deliveries to b are queued on the loop; b goes away before most of them.
    executor.post([this] { b.transport.reset(); });
  }
  executor.advance(50ms);
  { a.transport.reset(); }
  executor.advance(50ms);
}

TEST_F(DtlsPairTest, DestroyFromOwnCallbacks) {
  // From the Connected state callback.
  create_pair();
  { a.destroy_on_connected = true; }
  start_both();
  ASSERT_TRUE(run_until([&] { return a.transport == nullptr && b.state() == State::Connected; }));
  executor.advance(50ms);
  // From the receiver, while a datagram is being read.
  reset_pair();
  create_pair();
  start_both();
  ASSERT_TRUE(wait_connected());
  {
    b.destroy_on_receive = true;
    Bytes p = pattern(100, 1);
    for (int i = 0; i < 10; ++i) a.transport->send(ByteSpan(p.data(), p.size()));
  }
  ASSERT_TRUE(run_until([&] { return b.transport == nullptr; }));
  executor.advance(20ms);
  { EXPECT_EQ(b.received.size(), 1u); }
}

// Every datagram is lost: the client keeps retransmitting (100 ms doubling to
// 4 s) until the 30 s handshake limit, which must come before OpenSSL's own
// limit of 12 retransmissions per flight. The server, which heard nothing,
// gives up at the same limit. 30 s of virtual time, milliseconds of real time.
TEST_F(DtlsPairTest, HandshakeTimesOutAfter30Seconds) {
  create_pair();
  auto client_datagrams = std::make_shared<size_t>(0);
  link->a.filter = [client_datagrams](ByteSpan) {
    ++*client_datagrams;
    return false;
  };
  link->b.filter = [](ByteSpan) { return false; };
  auto started = executor.now();
  start_both();
  ASSERT_FALSE(run_until([&] { return a.state() == State::Failed || b.state() == State::Failed; },
                         29'999ms));
  ASSERT_TRUE(
      run_until([&] { return a.state() == State::Failed && b.state() == State::Failed; }, 10s));
  EXPECT_EQ(executor.now() - started, 30s);
  EXPECT_EQ(a.error, "DTLS handshake timed out");
  EXPECT_EQ(b.error, "DTLS handshake timed out");  // the server never heard anything
  // ClientHello + retransmissions at 0.1, 0.3, 0.7, 1.5, 3.1, 7.1, 11.1, ... 27.1 s.
  EXPECT_EQ(*client_datagrams, 12u);
  // Nothing is left running afterwards.
  size_t after = *client_datagrams;
  executor.advance(60s);
  EXPECT_EQ(*client_datagrams, after);
}

TEST_F(DtlsPairTest, SetupErrorIsReportedAtStart) {
  {
    a.transport =
        std::make_unique<DtlsTransport>(executor, link->a, nullptr, Role::Client, sha256_of(cert_b),
                                        [&](State state, const std::string& error) {
                                          a.states.push_back(state);
                                          a.error = error;
                                        });
    a.transport->start();
    EXPECT_EQ(a.transport->state(), State::Failed);
    EXPECT_NE(a.error.find("certificate"), std::string::npos) << a.error;
  }
}

// ---- DTLS parameters against other stacks' hellos ----
//
// A raw OpenSSL DTLS 1.2 endpoint configured like another stack (cipher
// suites, groups, signature algorithms, use_srtp profiles), on the other end of
// the MemoryLink from a DtlsTransport, as client and as server.

struct HelloProfile {
  const char* name;
  const char* ciphers;
  const char* groups;
  const char* sigalgs;
  const char* srtp;  // use_srtp profiles offered / accepted; "" for none
};

// pion/dtls 2.2.6 as pion/webrtc 3.1.56 configures it (dtls cipher_suite.go
// defaultCipherSuites, config.go defaultCurves, signaturehash.Algorithms;
// webrtc constants.go defaultSrtpProtectionProfiles). Its ClientHello on the
// wire: suites c02b,c02f,c00a,c014,c02c,c030; groups x25519,P-256,P-384;
// use_srtp 0007,0001; extended_master_secret. As client it aborts with
// insufficient_security when the ServerHello has no use_srtp (flight3handler);
// as server it completes the handshake and then fails the connection without
// a negotiated profile (webrtc ErrNoSRTPProtectionProfile), before SCTP.
const HelloProfile kPion = {
    "Pion",
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-SHA:"
    "ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384",
    "X25519:P-256:P-384",
    "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:RSA+SHA256:RSA+SHA384:RSA+SHA512:ed25519",
    "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"};
// Roughly a browser (BoringSSL under libwebrtc): AES-GCM and ChaCha20 first,
// then CBC; GCM and SHA1_80 SRTP profiles.
const HelloProfile kBrowserLike = {
    "BrowserLike",
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA",
    "X25519:P-256:P-384",
    "ECDSA+SHA256:rsa_pss_rsae_sha256:RSA+SHA256:ECDSA+SHA384:rsa_pss_rsae_sha384:RSA+SHA384:"
    "rsa_pss_rsae_sha512:RSA+SHA512",
    "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"};
void PrintTo(const HelloProfile& profile, std::ostream* os) {
  *os << profile.name;
}

// A data-only stack that offers no use_srtp at all: the extension stays optional.
const HelloProfile kNoSrtp = {"NoSrtp",
                              "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
                              "P-256:X25519", "ECDSA+SHA256:ECDSA+SHA384", ""};

// One DTLS endpoint on memory BIOs: each datagram from the link is written to
// the read BIO and processed at once; whatever OpenSSL wrote goes out as one
// datagram. No retransmission timer (the link loses nothing).
class RawDtlsPeer {
 public:
  RawDtlsPeer(MemoryLink::End& end, const std::shared_ptr<Certificate>& cert,
              const HelloProfile& profile, bool server)
      : end_(end) {
    ctx_ = SSL_CTX_new(DTLS_method());
    bool ok = ctx_ != nullptr && SSL_CTX_set_min_proto_version(ctx_, DTLS1_2_VERSION) == 1 &&
              SSL_CTX_set_max_proto_version(ctx_, DTLS1_2_VERSION) == 1 &&
              SSL_CTX_set_cipher_list(ctx_, profile.ciphers) == 1 &&
              SSL_CTX_set1_groups_list(ctx_, profile.groups) == 1 &&
              SSL_CTX_set1_sigalgs_list(ctx_, profile.sigalgs) == 1 &&
              (profile.srtp[0] == '\0' || SSL_CTX_set_tlsext_use_srtp(ctx_, profile.srtp) == 0) &&
              SSL_CTX_use_certificate(ctx_, cert->x509()) == 1 &&
              SSL_CTX_use_PrivateKey(ctx_, cert->key()) == 1;
    EXPECT_TRUE(ok) << "raw peer setup: " << ERR_reason_error_string(ERR_peek_error());
    if (!ok) return;
    SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET | SSL_OP_NO_QUERY_MTU);
    // Self-signed on both sides: accept any certificate, as WebRTC stacks do
    // before they compare the fingerprint.
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       [](int, X509_STORE_CTX*) { return 1; });
    ssl_ = SSL_new(ctx_);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in, -1);  // empty means "would block", not EOF
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(ssl_, in, out);
    SSL_set_mtu(ssl_, 1200);
    if (server) {
      SSL_set_accept_state(ssl_);
    } else {
      SSL_set_connect_state(ssl_);
    }
    in_ = in;
    out_ = out;
  }
  ~RawDtlsPeer() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  RawDtlsPeer(const RawDtlsPeer&) = delete;
  RawDtlsPeer& operator=(const RawDtlsPeer&) = delete;

  void start() { step(); }
  void receive(ByteSpan datagram) {
    if (ssl_ == nullptr) return;
    BIO_write(in_, datagram.data(), static_cast<int>(datagram.size()));
    step();
  }
  void send(const Bytes& data) {
    ASSERT_TRUE(connected);
    ASSERT_EQ(SSL_write(ssl_, data.data(), static_cast<int>(data.size())),
              static_cast<int>(data.size()));
    flush();
  }
  SSL* ssl() const { return ssl_; }

  bool connected = false;
  std::string error;
  std::vector<Bytes> received;

 private:
  void step() {
    if (ssl_ == nullptr || !error.empty()) return;
    ERR_clear_error();
    if (!connected) {
      int ret = SSL_do_handshake(ssl_);
      if (ret == 1) {
        connected = true;
      } else {
        int e = SSL_get_error(ssl_, ret);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          unsigned long code = ERR_peek_error();
          error = code ? ERR_reason_error_string(code) : "SSL error " + std::to_string(e);
        }
      }
    }
    if (connected) {
      Bytes buffer(16384);
      for (;;) {
        int n = SSL_read(ssl_, buffer.data(), static_cast<int>(buffer.size()));
        if (n <= 0) break;
        received.emplace_back(buffer.begin(), buffer.begin() + n);
      }
    }
    flush();
  }
  void flush() {
    char* data = nullptr;
    long n = BIO_get_mem_data(out_, &data);
    if (n > 0) {
      end_.send(ByteSpan(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)));
      (void)BIO_reset(out_);
    }
  }

  MemoryLink::End& end_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

class DtlsParameters : public DtlsPairTest,
                       public ::testing::WithParamInterface<std::tuple<HelloProfile, bool>> {
 protected:
  // Before the pair's destructor; no task runs in between (one thread).
  void TearDown() override { raw_.reset(); }
  std::unique_ptr<RawDtlsPeer> raw_;
};

// Our DtlsTransport (a) against a raw OpenSSL peer (b) configured like another
// stack, with us as server (the other stack's ClientHello) and as client (our
// ClientHello against a server with the other stack's parameters).
TEST_P(DtlsParameters, NegotiatesWhatTheOtherStackNeeds) {
  const auto& [profile, we_are_server] = GetParam();
  {
    raw_ = std::make_unique<RawDtlsPeer>(link->b, cert_b, profile, /*server=*/!we_are_server);
    link->b.set_receiver([this](ByteSpan p) { raw_->receive(p); });
  }
  create(a, link->a, cert_a, we_are_server ? Role::Server : Role::Client, sha256_of(cert_b));
  {
    a.transport->start();
    raw_->start();
  }
  ASSERT_TRUE(run_until([&] {
    return (raw_->connected && a.state() == State::Connected) || !raw_->error.empty() ||
           a.state() == State::Failed;
  })) << "handshake did not finish";
  {
    ASSERT_TRUE(raw_->connected) << profile.name << ": " << raw_->error << " / ours: " << a.error;
    ASSERT_EQ(a.state(), State::Connected) << a.error;
    SSL* ssl = raw_->ssl();
    // What Chromium negotiates with us today stays as it was: ECDHE-ECDSA
    // with AES-128-GCM (our first suite, every stack has it), extended master
    // secret (RFC 7627).
    EXPECT_STREQ(SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)), "ECDHE-ECDSA-AES128-GCM-SHA256");
    EXPECT_EQ(SSL_get_extms_support(ssl), 1);
    // use_srtp (RFC 5764): answered as server, offered as client, so that a
    // stack that requires a profile (Pion) gets one. As server we pick by our
    // preference: AES-128-GCM, which every profile here offers.
    SRTP_PROTECTION_PROFILE* srtp = SSL_get_selected_srtp_profile(ssl);
    if (profile.srtp[0] != '\0') {
      ASSERT_NE(srtp, nullptr) << profile.name << ": no SRTP profile negotiated";
      if (we_are_server) {
        EXPECT_EQ(srtp->id, static_cast<unsigned long>(SRTP_AEAD_AES_128_GCM)) << srtp->name;
      } else {
        EXPECT_TRUE(srtp->id == SRTP_AEAD_AES_128_GCM || srtp->id == SRTP_AEAD_AES_256_GCM ||
                    srtp->id == SRTP_AES128_CM_SHA1_80)
            << srtp->name;
      }
    } else {
      EXPECT_EQ(srtp, nullptr);
    }
    if (!we_are_server) {
      // Pion as server takes the client's first group without checking its
      // own list (flight0handler): ours must be one every stack has.
      int groups = SSL_get1_groups(ssl, nullptr);
      ASSERT_GT(groups, 0);
      std::vector<int> list(static_cast<size_t>(groups));
      SSL_get1_groups(ssl, list.data());
      EXPECT_EQ(list[0], NID_X25519);
    }
  }
  // Application data both ways.
  const Bytes to_raw = pattern(1100, 3);
  const Bytes to_us = pattern(900, 5);
  {
    EXPECT_TRUE(a.transport->send(ByteSpan(to_raw.data(), to_raw.size())));
    raw_->send(to_us);
  }
  ASSERT_TRUE(run_until([&] { return !raw_->received.empty() && !a.received.empty(); }));
  {
    EXPECT_EQ(raw_->received[0], to_raw);
    EXPECT_EQ(a.received[0], to_us);
  }
}

INSTANTIATE_TEST_SUITE_P(Stacks, DtlsParameters,
                         ::testing::Combine(::testing::Values(kPion, kBrowserLike, kNoSrtp),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::string(std::get<0>(param_info.param).name) +
                                  (std::get<1>(param_info.param) ? "ClientWeServe"
                                                                 : "ServerWeConnect");
                         });

// ---- Certificate ----

TEST(Certificate, GeneratesSelfSignedEcdsaP256) {
  auto cert = make_certificate();
  ASSERT_TRUE(cert);
  EVP_PKEY* key = cert->key();
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &group_len), 1);
  EXPECT_STREQ(group, "prime256v1");
  X509* x509 = cert->x509();
  EXPECT_EQ(X509_get_version(x509), X509_VERSION_3);
  EXPECT_EQ(X509_get_signature_nid(x509), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(x509, key), 1) << "not self-signed with its own key";
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(x509), X509_get_issuer_name(x509)), 0);
  char cn[64] = {};
  ASSERT_GT(X509_NAME_get_text_by_NID(X509_get_subject_name(x509), NID_commonName, cn, sizeof cn),
            0);
  EXPECT_STREQ(cn, "rtcmesh");
  int days = 0;
  int seconds = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notBefore(x509)), 1);
  EXPECT_EQ(days * 86400 + seconds <= -86400 + 5 && days * 86400 + seconds >= -86400 - 5, true)
      << days << "d " << seconds << "s";
  ASSERT_EQ(ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(x509)), 1);
  EXPECT_EQ(days * 86400 + seconds <= 30 * 86400 + 5 && days * 86400 + seconds >= 30 * 86400 - 5,
            true)
      << days << "d " << seconds << "s";
  // Random serials: two certificates differ.
  auto other = make_certificate();
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(x509), X509_get0_serialNumber(other->x509())),
            0);
  EXPECT_NE(cert->fingerprint_sha256(), other->fingerprint_sha256());
}

TEST(Certificate, FingerprintFormat) {
  auto cert = make_certificate();
  ASSERT_TRUE(cert);
  const std::string& fp = cert->fingerprint_sha256();
  EXPECT_TRUE(is_colon_hex(fp, 32)) << fp;
  auto computed = rtcmesh::dtls::fingerprint(cert->x509(), "sha-256");
  ASSERT_TRUE(computed.ok());
  EXPECT_EQ(*computed, fp);
  auto upper = rtcmesh::dtls::fingerprint(cert->x509(), "SHA-256");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(*upper, fp);

  auto sha1 = rtcmesh::dtls::fingerprint(cert->x509(), "sha-1");
  ASSERT_TRUE(sha1.ok());
  EXPECT_TRUE(is_colon_hex(*sha1, 20)) << *sha1;
  for (auto [name, bytes] : {std::pair{"sha-224", 28}, {"sha-384", 48}, {"sha-512", 64}}) {
    auto value = rtcmesh::dtls::fingerprint(cert->x509(), name);
    ASSERT_TRUE(value.ok()) << name;
    EXPECT_TRUE(is_colon_hex(*value, static_cast<size_t>(bytes))) << name;
  }
}

TEST(Certificate, UnknownAlgorithmIsAnError) {
  auto cert = make_certificate();
  ASSERT_TRUE(cert);
  for (const char* name : {"md5", "sha-3", "", "sha256"}) {
    auto value = rtcmesh::dtls::fingerprint(cert->x509(), name);
    ASSERT_FALSE(value.ok()) << name;
    EXPECT_NE(value.error().message.find("unsupported"), std::string::npos);
  }
  EXPECT_FALSE(rtcmesh::dtls::fingerprint(nullptr, "sha-256").ok());
  EXPECT_FALSE(is_colon_hex("ab:CD", 2));
  EXPECT_FALSE(is_colon_hex("AB-CD", 2));
}

TEST(DtlsState, ToString) {
  EXPECT_STREQ(rtcmesh::dtls::to_string(State::New), "new");
  EXPECT_STREQ(rtcmesh::dtls::to_string(State::Connected), "connected");
  EXPECT_STREQ(rtcmesh::dtls::to_string(State::Failed), "failed");
}

}  // namespace
