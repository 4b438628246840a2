// Two native peers in one process over real UDP on 127.0.0.1.
#include <openssl/sha.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>

#include "pair.hpp"
#include "rtcmesh/observer.hpp"

namespace rtcmesh::testing {
namespace {

using namespace std::chrono_literals;

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::string random_text(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, 'a');
  for (auto& c : out) c = static_cast<char>('a' + rng() % 26);
  return out;
}

struct Received {
  bool binary;
  std::vector<uint8_t> data;
};

// A channel on each side, open, with received messages collected.
struct ChannelPair {
  Waiter waiter;
  std::shared_ptr<DataChannel> local;   // created by the offerer
  std::shared_ptr<DataChannel> remote;  // announced to the answerer
  std::vector<Received> at_local, at_remote;
  bool local_open = false, remote_open = false, local_closed = false, remote_closed = false;

  void collect(const std::shared_ptr<DataChannel>& c, bool is_local) {
    c->on_message([this, is_local](const Message& m) {
      waiter.update([&] {
        (is_local ? at_local : at_remote).push_back({m.binary, {m.data.begin(), m.data.end()}});
      });
    });
    c->on_close([this, is_local] {
      waiter.update([&] { (is_local ? local_closed : remote_closed) = true; });
    });
  }

  // Offerer creates `label`; succeeds when both sides are open.
  Status open(Pair& pair, const std::string& label, const DataChannelInit& init = {}) {
    if (init.negotiated) {
      auto a = pair.offerer->create_data_channel(label, init);
      auto b = pair.answerer->create_data_channel(label, init);
      if (!a) return a.error();
      if (!b) return b.error();
      local = a.value();
      remote = b.value();
      collect(local, true);
      collect(remote, false);
      local->on_open([this] { waiter.update([&] { local_open = true; }); });
      remote->on_open([this] { waiter.update([&] { remote_open = true; }); });
    } else {
      pair.answerer->on_data_channel([this](std::shared_ptr<DataChannel> c) {
        collect(c, false);
        c->on_open([this] { waiter.update([&] { remote_open = true; }); });
        waiter.update([&] { remote = c; });
      });
      auto a = pair.offerer->create_data_channel(label, init);
      if (!a) return a.error();
      local = a.value();
      collect(local, true);
      local->on_open([this] { waiter.update([&] { local_open = true; }); });
    }
    if (auto s = pair.negotiate(); !s) return s;
    if (!waiter.wait([&] { return local_open && remote_open; }, 10s)) {
      return make_error(ErrorCode::TimeoutError, "channel did not open");
    }
    return {};
  }
};

void exchange_all_sizes(ChannelPair& cp) {
  const size_t sizes[] = {0, 1, 65536, 262144};
  uint32_t seed = 1;
  std::vector<Received> expected;
  for (size_t n : sizes) {
    auto text = random_text(n, seed++);
    auto bin = random_bytes(n, seed++);
    ASSERT_OK(cp.local->send(text));
    ASSERT_OK(cp.local->send(std::span<const uint8_t>(bin)));
    ASSERT_OK(cp.remote->send(text));
    ASSERT_OK(cp.remote->send(std::span<const uint8_t>(bin)));
    expected.push_back({false, {text.begin(), text.end()}});
    expected.push_back({true, bin});
  }
  ASSERT_TRUE(cp.waiter.wait(
      [&] {
        return cp.at_local.size() == expected.size() && cp.at_remote.size() == expected.size();
      },
      15s))
      << cp.at_local.size() << " / " << cp.at_remote.size();
  std::lock_guard<std::mutex> lock(cp.waiter.mutex());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(cp.at_remote[i].binary, expected[i].binary) << i;
    EXPECT_EQ(cp.at_remote[i].data, expected[i].data) << i;
    EXPECT_EQ(cp.at_local[i].binary, expected[i].binary) << i;
    EXPECT_EQ(cp.at_local[i].data, expected[i].data) << i;
  }
}

TEST(PeerConnection, ConnectsAndExchangesTextAndBinaryOfEverySize) {
  ChannelPair cp;  // declared first: outlives the pair, whose close() stops callbacks
  Pair pair;
  pair.wire_candidates();
  ASSERT_OK(cp.open(pair, "sizes"));
  EXPECT_EQ(cp.remote->label(), "sizes");
  EXPECT_EQ(pair.offerer->connection_state(), PeerConnectionState::Connected);
  EXPECT_EQ(pair.answerer->signaling_state(), SignalingState::Stable);
  // The answerer took the DTLS client role (RFC 5763): the offerer's channel is odd.
  ASSERT_TRUE(cp.local->id());
  EXPECT_EQ(*cp.local->id() % 2, 1);
  EXPECT_EQ(cp.local->max_message_size(), 262144u);
  exchange_all_sizes(cp);
}

struct ReliabilityCase {
  const char* name;
  DataChannelInit init;
};

class Reliability : public ::testing::TestWithParam<ReliabilityCase> {};

TEST_P(Reliability, AllModesDeliverOnLoopback) {
  ChannelPair cp;  // declared first: outlives the pair, whose close() stops callbacks
  Pair pair;
  pair.wire_candidates();
  ASSERT_OK(cp.open(pair, GetParam().name, GetParam().init));
  EXPECT_EQ(cp.remote->ordered(), GetParam().init.ordered);
  EXPECT_EQ(cp.remote->max_retransmits(), GetParam().init.max_retransmits);
  EXPECT_EQ(cp.remote->max_packet_life_time(), GetParam().init.max_packet_life_time);
  EXPECT_EQ(cp.remote->protocol(), "rtcmesh-test");  // carried by DCEP (or agreed, if negotiated)
  EXPECT_EQ(cp.remote->negotiated(), GetParam().init.negotiated);
  EXPECT_EQ(cp.remote->id(), cp.local->id());
  exchange_all_sizes(cp);
}

DataChannelInit make_init(bool ordered, std::optional<uint16_t> rexmit,
                          std::optional<uint16_t> lifetime, bool negotiated = false) {
  DataChannelInit init;
  init.ordered = ordered;
  init.protocol = "rtcmesh-test";
  init.max_retransmits = rexmit;
  init.max_packet_life_time = lifetime;
  if (negotiated) {
    init.negotiated = true;
    init.id = 7;
  }
  return init;
}

INSTANTIATE_TEST_SUITE_P(Modes, Reliability,
                         ::testing::Values(ReliabilityCase{"reliable", make_init(true, {}, {})},
                                           ReliabilityCase{"unordered", make_init(false, {}, {})},
                                           ReliabilityCase{"rexmit0", make_init(false, 0, {})},
                                           ReliabilityCase{"lifetime100", make_init(true, {}, 100)},
                                           ReliabilityCase{"negotiated",
                                                           make_init(true, {}, {}, true)}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(PeerConnection, ClosesFromEitherSide) {
  for (bool from_offerer : {true, false}) {
    ChannelPair cp;
    Pair pair;
    pair.wire_candidates();
    ASSERT_OK(cp.open(pair, "close"));
    (from_offerer ? cp.local : cp.remote)->close();
    ASSERT_TRUE(cp.waiter.wait([&] { return cp.local_closed && cp.remote_closed; }, 5s))
        << from_offerer;
    EXPECT_EQ(cp.local->ready_state(), DataChannelState::Closed);
    EXPECT_EQ(cp.remote->ready_state(), DataChannelState::Closed);
    EXPECT_ERROR(cp.local->send("late"), ErrorCode::InvalidStateError);
    EXPECT_ERROR(cp.local->send(std::span<const uint8_t>()), ErrorCode::InvalidStateError);
  }
}

TEST(PeerConnection, BulkTransferDrivenByBufferedAmountLowArrivesIntact) {
  ChannelPair cp;  // declared first: outlives the pair, whose close() stops callbacks
  Pair pair;
  pair.wire_candidates();
  ASSERT_OK(cp.open(pair, "bulk"));
  constexpr size_t kChunk = 65536, kTotal = 32 << 20;
  std::atomic<size_t> received{0};
  SHA256_CTX rx;
  SHA256_Init(&rx);
  cp.remote->on_message([&](const Message& m) {
    SHA256_Update(&rx, m.data.data(), m.data.size());
    received += m.data.size();
    if (received == kTotal) cp.waiter.update([] {});
  });
  SHA256_CTX tx;
  SHA256_Init(&tx);
  size_t sent = 0;
  uint32_t seed = 42;
  std::mutex send_mutex;
  auto pump = [&] {
    std::lock_guard<std::mutex> lock(send_mutex);
    while (sent < kTotal && cp.local->buffered_amount() < 1024 * 1024) {
      auto chunk = random_bytes(kChunk, seed++);
      SHA256_Update(&tx, chunk.data(), chunk.size());
      ASSERT_OK(cp.local->send(std::span<const uint8_t>(chunk)));
      sent += kChunk;
    }
  };
  cp.local->set_buffered_amount_low_threshold(256 * 1024);
  cp.local->on_buffered_amount_low(pump);
  pump();
  ASSERT_TRUE(cp.waiter.wait([&] { return received.load() == kTotal; }, 60s)) << received.load();
  unsigned char a[32], b[32];
  SHA256_Final(a, &tx);
  SHA256_Final(b, &rx);
  EXPECT_EQ(0, std::memcmp(a, b, 32));
  auto stats = pair.answerer->get_stats();
  ASSERT_FALSE(stats.data_channels.empty());
  EXPECT_EQ(stats.data_channels[0].bytes_received, kTotal);
  EXPECT_EQ(stats.data_channels[0].messages_received, kTotal / kChunk);
  pair.offerer->close();  // before the locals the callbacks use go away
  pair.answerer->close();
}

TEST(PeerConnection, BufferedAmountLowFiresWhenSctpTakesEverything) {
  // Regression: sends from another thread are counted in bufferedAmount until
  // the network thread hands them to SCTP; when SCTP takes them all at once the
  // amount falls to 0 and bufferedamountlow must fire.
  ChannelPair cp;
  Pair pair;
  pair.wire_candidates();
  ASSERT_OK(cp.open(pair, "low"));
  std::atomic<int> low_events{0};
  cp.local->set_buffered_amount_low_threshold(0);
  cp.local->on_buffered_amount_low([&] {
    ++low_events;
    cp.waiter.update([] {});
  });
  std::string small(1000, 's');
  for (int i = 0; i < 10; ++i) ASSERT_OK(cp.local->send(small));
  ASSERT_TRUE(cp.waiter.wait([&] { return low_events > 0; }, 5s));
  EXPECT_EQ(cp.local->buffered_amount(), 0u);
  pair.offerer->close();
}

TEST(PeerConnection, StatsUseW3cNames) {
  ChannelPair cp;  // declared first: outlives the pair, whose close() stops callbacks
  Pair pair;
  pair.wire_candidates();
  ASSERT_OK(cp.open(pair, "stats"));
  ASSERT_OK(cp.local->send("hello"));
  ASSERT_TRUE(cp.waiter.wait([&] { return cp.at_remote.size() == 1; }));
  auto stats = pair.offerer->get_stats();
  ASSERT_TRUE(stats.selected_candidate_pair);
  EXPECT_EQ(stats.selected_candidate_pair->local.candidate_type, "host");
  EXPECT_EQ(stats.selected_candidate_pair->local.address, "127.0.0.1");
  EXPECT_GT(stats.selected_candidate_pair->bytes_sent, 0u);
  ASSERT_TRUE(stats.selected_candidate_pair->current_round_trip_time);  // SCTP's smoothed RTT
  EXPECT_GE(*stats.selected_candidate_pair->current_round_trip_time, 0.0);
  EXPECT_LT(*stats.selected_candidate_pair->current_round_trip_time, 1.0);
  ASSERT_EQ(stats.data_channels.size(), 1u);
  EXPECT_EQ(stats.data_channels[0].messages_sent, 1u);
  EXPECT_EQ(stats.data_channels[0].bytes_sent, 5u);
  EXPECT_EQ(stats.data_channels[0].state, "open");
  auto json = stats.to_json();
  for (const char* key : {"\"candidate-pair\"", "\"data-channel\"", "\"messagesSent\"",
                          "\"bytesReceived\"", "\"candidateType\"", "\"dataChannelIdentifier\"",
                          "\"selectedCandidatePairId\"", "\"currentRoundTripTime\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  }
}

TEST(PeerConnection, FullGatheringWithoutTrickle) {
  Waiter w;
  bool a_done = false, b_done = false;
  ChannelPair cp;
  Pair pair;  // no wire_candidates(): candidates travel inside the SDP
  pair.offerer->on_ice_gathering_state_change([&](IceGatheringState s) {
    if (s == IceGatheringState::Complete) w.update([&] { a_done = true; });
  });
  pair.answerer->on_ice_gathering_state_change([&](IceGatheringState s) {
    if (s == IceGatheringState::Complete) w.update([&] { b_done = true; });
  });
  pair.answerer->on_data_channel([&](std::shared_ptr<DataChannel> c) {
    cp.collect(c, false);
    cp.waiter.update([&] {
      cp.remote = c;
      cp.remote_open = true;
    });
  });
  auto channel = pair.offerer->create_data_channel("full");
  ASSERT_OK(channel);
  cp.local = channel.value();
  cp.collect(cp.local, true);
  cp.local->on_open([&] { cp.waiter.update([&] { cp.local_open = true; }); });
  ASSERT_OK(pair.offerer->set_local_description());
  ASSERT_TRUE(w.wait([&] { return a_done; }));
  auto offer = pair.offerer->local_description();
  ASSERT_TRUE(offer);
  EXPECT_NE(offer->sdp.find("a=candidate:"), std::string::npos);
  EXPECT_NE(offer->sdp.find("a=end-of-candidates"), std::string::npos);
  ASSERT_OK(pair.answerer->set_remote_description(*offer));
  ASSERT_OK(pair.answerer->set_local_description());
  ASSERT_TRUE(w.wait([&] { return b_done; }));
  auto answer = pair.answerer->local_description();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->type, "answer");
  ASSERT_OK(pair.offerer->set_remote_description(*answer));
  ASSERT_TRUE(cp.waiter.wait([&] { return cp.local_open && cp.remote_open; }));
  ASSERT_OK(cp.local->send("x"));
  ASSERT_TRUE(cp.waiter.wait([&] { return cp.at_remote.size() == 1; }));
}

TEST(PeerConnection, FingerprintMismatchFailsTheConnection) {
  Waiter w;
  std::string error;
  std::optional<ErrorCode> code;
  bool failed = false;
  Pair pair;
  pair.wire_candidates();
  pair.offerer->on_error([&](const Error& e) {
    w.update([&] {
      error = e.message;
      code = e.code;
    });
  });
  pair.offerer->on_connection_state_change([&](PeerConnectionState s) {
    if (s == PeerConnectionState::Failed) w.update([&] { failed = true; });
  });
  auto channel = pair.offerer->create_data_channel("x");
  ASSERT_OK(channel);
  auto offer = pair.offerer->create_offer();
  ASSERT_OK(offer);
  ASSERT_OK(pair.offerer->set_local_description(*offer));
  ASSERT_OK(pair.answerer->set_remote_description(*offer));
  pair.to_answerer->flush();
  auto answer = pair.answerer->create_answer();
  ASSERT_OK(answer);
  ASSERT_OK(pair.answerer->set_local_description(*answer));
  // Replace the answerer's fingerprint with a well-formed but wrong one.
  std::string sdp = answer->sdp;
  auto pos = sdp.find("a=fingerprint:sha-256 ");
  ASSERT_NE(pos, std::string::npos);
  pos += 22;
  sdp.replace(pos, 2, sdp.substr(pos, 2) == "00" ? "11" : "00");
  ASSERT_OK(pair.offerer->set_remote_description({"answer", sdp}));
  pair.to_offerer->flush();
  ASSERT_TRUE(w.wait([&] { return failed && !error.empty(); }, 10s));
  EXPECT_NE(error.find("fingerprint"), std::string::npos) << error;
  EXPECT_EQ(code, ErrorCode::OperationError);  // W3C: an RTCError, named OperationError
  EXPECT_NE(pair.answerer->connection_state(), PeerConnectionState::Connected);
}

TEST(PeerConnection, MalformedInputIsRejectedAndTheConnectionStillWorks) {
  Pair pair;
  pair.wire_candidates();
  auto bad = pair.answerer->set_remote_description({"offer", "v=0\r\no=- x 1 IN IP4 0.0.0.0\r\n"});
  ASSERT_ERROR(bad, ErrorCode::SyntaxError);
  EXPECT_NE(bad.error().message.find("line 2"), std::string::npos) << bad.error();
  EXPECT_ERROR(pair.answerer->set_remote_description({"bogus", "v=0"}), ErrorCode::TypeError);
  // W3C: a candidate before any remote description is an InvalidStateError.
  EXPECT_ERROR(pair.answerer->add_ice_candidate({"candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
               ErrorCode::InvalidStateError);
  ChannelPair cp;
  ASSERT_OK(cp.open(pair, "after-bad-input"));
  EXPECT_ERROR(
      pair.answerer->add_ice_candidate({"candidate:1 1 udp notanumber 127.0.0.1 9 typ host"}),
      ErrorCode::SyntaxError);
  EXPECT_ERROR(pair.answerer->add_ice_candidate({"candidate:garbage"}), ErrorCode::SyntaxError);
  // W3C send(): a message over the remote's maximum size is a TypeError.
  auto too_big = std::vector<uint8_t>(cp.local->max_message_size() + 1);
  auto refused = cp.local->send(std::span<const uint8_t>(too_big));
  ASSERT_ERROR(refused, ErrorCode::TypeError);
  EXPECT_NE(refused.error().message.find("maximum message size"), std::string::npos)
      << refused.error();
  ASSERT_OK(cp.local->send("still alive"));
  ASSERT_TRUE(cp.waiter.wait([&] { return cp.at_remote.size() == 1; }));
}

// The codes of the contracts in rtcmesh/peer_connection.hpp and data_channel.hpp.
TEST(PeerConnection, ErrorsCarryTheW3cCodes) {
  Pair pair;
  // Signaling state: an answer needs a remote offer; a remote answer needs a local offer.
  EXPECT_ERROR(pair.offerer->create_answer(), ErrorCode::InvalidStateError);
  auto offer = pair.offerer->create_offer();
  ASSERT_OK(offer);
  EXPECT_ERROR(pair.answerer->set_remote_description({"answer", offer->sdp}),
               ErrorCode::InvalidStateError);
  EXPECT_ERROR(pair.offerer->set_local_description({"bogus", ""}), ErrorCode::TypeError);
  // A local offer whose ICE credentials are not ours was modified.
  std::string foreign = offer->sdp;
  auto ufrag = foreign.find("a=ice-ufrag:");
  ASSERT_NE(ufrag, std::string::npos);
  foreign.insert(ufrag + 12, "zz");
  EXPECT_ERROR(pair.offerer->set_local_description({"offer", foreign}),
               ErrorCode::InvalidModificationError);
  // A description without a=fingerprint cannot secure DTLS: the parser refuses
  // its media section.
  std::string no_fingerprint = offer->sdp;
  auto fp = no_fingerprint.find("a=fingerprint:");
  ASSERT_NE(fp, std::string::npos);
  no_fingerprint.erase(fp, no_fingerprint.find("\r\n", fp) + 2 - fp);
  EXPECT_ERROR(pair.answerer->set_remote_description({"offer", no_fingerprint}),
               ErrorCode::SyntaxError);
  // An answer must pick a DTLS role: a=setup:actpass does not fit.
  ASSERT_OK(pair.offerer->set_local_description(*offer));
  auto other_offer = pair.answerer->create_offer();
  ASSERT_OK(other_offer);
  ASSERT_NE(other_offer->sdp.find("a=setup:actpass"), std::string::npos);
  EXPECT_ERROR(pair.offerer->set_remote_description({"answer", other_offer->sdp}),
               ErrorCode::InvalidAccessError);
  // createDataChannel's argument checks.
  DataChannelInit both;
  both.max_retransmits = 1;
  both.max_packet_life_time = 1;
  EXPECT_ERROR(pair.offerer->create_data_channel("x", both), ErrorCode::TypeError);
  DataChannelInit negotiated_without_id;
  negotiated_without_id.negotiated = true;
  EXPECT_ERROR(pair.offerer->create_data_channel("x", negotiated_without_id), ErrorCode::TypeError);
  DataChannelInit id_in_use;
  id_in_use.negotiated = true;
  id_in_use.id = 3;
  ASSERT_OK(pair.offerer->create_data_channel("first", id_in_use));
  EXPECT_ERROR(pair.offerer->create_data_channel("second", id_in_use), ErrorCode::OperationError);
  // An unopened channel refuses to send.
  auto pending = pair.offerer->create_data_channel("pending");
  ASSERT_OK(pending);
  EXPECT_ERROR(pending.value()->send("early"), ErrorCode::InvalidStateError);
  // Everything on a closed connection is an InvalidStateError.
  pair.offerer->close();
  EXPECT_ERROR(pair.offerer->create_offer(), ErrorCode::InvalidStateError);
  EXPECT_ERROR(pair.offerer->set_local_description(), ErrorCode::InvalidStateError);
  EXPECT_ERROR(pair.offerer->set_remote_description({"offer", offer->sdp}),
               ErrorCode::InvalidStateError);
  EXPECT_ERROR(pair.offerer->add_ice_candidate({}), ErrorCode::InvalidStateError);
  EXPECT_ERROR(pair.offerer->create_data_channel("late"), ErrorCode::InvalidStateError);
  EXPECT_EQ(pending.value()->ready_state(), DataChannelState::Closed);
  EXPECT_ERROR(pending.value()->send("late"), ErrorCode::InvalidStateError);
  // Configuration errors of create().
  Configuration bad_url = loopback_config();
  bad_url.ice_servers.push_back({{"stun-without-colon"}, "", ""});
  EXPECT_ERROR(PeerConnection::create(bad_url), ErrorCode::SyntaxError);
  Configuration no_credential = loopback_config();
  no_credential.ice_servers.push_back({{"turn:127.0.0.1"}, "", ""});
  EXPECT_ERROR(PeerConnection::create(no_credential), ErrorCode::InvalidAccessError);
  Configuration small = loopback_config();
  small.max_message_size = 100;
  EXPECT_ERROR(PeerConnection::create(small), ErrorCode::RangeError);
  // The closed connection's shutdown ends (no transports: at once).
  pair.answerer->close();
  EXPECT_OK(wait_for_closing_connections(5s));
}

TEST(PeerConnection, ManyChannelsOnOneConnection) {
  Waiter w;
  std::vector<std::shared_ptr<DataChannel>> remote;
  std::atomic<int> messages{0};
  Pair pair;
  pair.wire_candidates();
  pair.answerer->on_data_channel([&](std::shared_ptr<DataChannel> c) {
    c->on_message([&](const Message&) {
      if (++messages == 100) w.update([] {});
    });
    w.update([&] { remote.push_back(c); });
  });
  std::vector<std::shared_ptr<DataChannel>> local;
  for (int i = 0; i < 100; ++i) {
    auto channel = pair.offerer->create_data_channel("c" + std::to_string(i));
    ASSERT_OK(channel);
    local.push_back(channel.value());
  }
  ASSERT_OK(pair.negotiate());
  ASSERT_TRUE(w.wait([&] { return remote.size() == 100; }, 10s)) << remote.size();
  for (auto& c : local) {
    ASSERT_TRUE(w.wait([&] { return c->ready_state() == DataChannelState::Open; }));
    ASSERT_OK(c->send(c->label()));
  }
  ASSERT_TRUE(w.wait([&] { return messages == 100; }, 10s));
  // Channels created after the connection is up open too.
  auto late = pair.offerer->create_data_channel("late");
  ASSERT_OK(late);
  ASSERT_TRUE(w.wait([&] { return remote.size() == 101; }));
}

TEST(PeerConnection, CloseFromInsideCallbacksAndDestroyMidTransfer) {
  for (int round = 0; round < 3; ++round) {
    ChannelPair cp;
    std::atomic<int> got{0};
    auto pair = std::make_unique<Pair>();
    pair->wire_candidates();
    ASSERT_OK(cp.open(*pair, "mid"));
    auto pc = pair->answerer;
    cp.remote->on_message([&got, pc, round](const Message&) {
      if (++got == 10 && round == 0) pc->close();  // close() from inside a callback
    });
    std::vector<uint8_t> chunk(60000, 7);
    // Whether each send is still accepted depends on how far the close got: ignored.
    for (int i = 0; i < 100; ++i) (void)cp.local->send(std::span<const uint8_t>(chunk));
    std::this_thread::sleep_for(std::chrono::milliseconds(20 * round));
    pair.reset();  // destroy both mid-transfer
    cp.local.reset();
    cp.remote.reset();
  }
}

TEST(PeerConnection, GlareResolvedByRollback) {
  // Both sides offer at once (perfect negotiation's glare); the polite one
  // rolls its offer back, takes the remote offer and answers.
  Waiter w;
  std::shared_ptr<DataChannel> polite_side;
  int messages = 0;
  Pair pair;
  pair.wire_candidates();
  auto& impolite = pair.offerer;
  auto& polite = pair.answerer;
  polite->on_data_channel([&](std::shared_ptr<DataChannel> c) {
    c->on_message([&](const Message&) { w.update([&] { ++messages; }); });
    w.update([&] { polite_side = c; });
  });
  auto channel = impolite->create_data_channel("glare");
  ASSERT_OK(channel);
  auto offer_a = impolite->create_offer();
  ASSERT_OK(offer_a);
  ASSERT_OK(impolite->set_local_description(*offer_a));
  auto offer_b = polite->create_offer();
  ASSERT_OK(offer_b);
  ASSERT_OK(polite->set_local_description(*offer_b));
  EXPECT_EQ(polite->signaling_state(), SignalingState::HaveLocalOffer);
  // The impolite peer ignores the colliding offer; the polite one rolls back.
  EXPECT_ERROR(impolite->set_remote_description(*offer_b), ErrorCode::InvalidStateError);
  ASSERT_OK(polite->set_local_description({"rollback", ""}));
  EXPECT_EQ(polite->signaling_state(), SignalingState::Stable);
  ASSERT_OK(polite->set_remote_description(*offer_a));
  pair.to_answerer->flush();
  auto answer = polite->create_answer();
  ASSERT_OK(answer);
  ASSERT_OK(polite->set_local_description(*answer));
  ASSERT_OK(impolite->set_remote_description(*answer));
  pair.to_offerer->flush();
  ASSERT_TRUE(w.wait([&] { return polite_side != nullptr; }, 10s));
  ASSERT_TRUE(w.wait([&] { return channel.value()->ready_state() == DataChannelState::Open; }));
  ASSERT_OK(channel.value()->send("after glare"));
  ASSERT_TRUE(w.wait([&] { return messages == 1; }));
}

TEST(PeerConnection, IceRestartKeepsTheChannelWorking) {
  ChannelPair cp;  // declared first: outlives the pair, whose close() stops callbacks
  Pair pair;
  pair.wire_candidates();
  ASSERT_OK(cp.open(pair, "restart"));
  auto before = pair.offerer->local_description()->sdp;
  pair.offerer->restart_ice();
  ASSERT_OK(pair.negotiate());
  auto after = pair.offerer->local_description()->sdp;
  auto ufrag = [](const std::string& sdp) {
    auto p = sdp.find("a=ice-ufrag:");
    return sdp.substr(p, sdp.find('\r', p) - p);
  };
  EXPECT_NE(ufrag(before), ufrag(after));
  ASSERT_OK(cp.local->send("after restart"));
  ASSERT_TRUE(cp.waiter.wait([&] { return cp.at_remote.size() == 1; }, 10s));
  EXPECT_EQ(pair.offerer->connection_state(), PeerConnectionState::Connected);
}

}  // namespace
}  // namespace rtcmesh::testing

// The observer tap (rtcmesh/observer.hpp): what the witness and metrics see.
namespace rtcmesh::testing {
namespace {

struct Log : ConnectionObserver {
  std::mutex mutex;
  std::vector<std::string> events;
  uint64_t sent = 0, received = 0, sent_bytes = 0, received_bytes = 0;
  std::vector<Stats> stats;
  std::vector<bool> stats_final;
  std::vector<DataChannelStats> closed_channels;
  std::string closed_reason;

  void add(std::string e) {
    std::lock_guard<std::mutex> lock(mutex);
    events.push_back(std::move(e));
  }
  bool has(const std::string& e) {
    std::lock_guard<std::mutex> lock(mutex);
    return std::find(events.begin(), events.end(), e) != events.end();
  }
  void on_description(const ObservedDescription& d) override {
    static const char* names[] = {"offer-created", "answer-created", "offer-received",
                                  "answer-received"};
    add(std::string(names[static_cast<int>(d.kind)]) +
        (d.fingerprint.rfind("sha-256 ", 0) == 0 ? "" : " no-fp"));
  }
  void on_candidate(const ObservedCandidate& c) override {
    add(std::string(c.local ? "local" : "remote") + "-candidate " + c.candidate_type + " " +
        c.address);
  }
  void on_connection_state_change(PeerConnectionState from, PeerConnectionState to) override {
    add(std::string("state ") + to_string(from) + "->" + to_string(to));
  }
  void on_data_channel_open(const std::string& label, int, const std::string&) override {
    add("open " + label);
  }
  void on_data_channel_close(const DataChannelStats& s) override {
    add("close " + s.label);
    std::lock_guard<std::mutex> lock(mutex);
    closed_channels.push_back(s);
  }
  void on_message(bool is_sent, const std::string&, size_t size) override {
    std::lock_guard<std::mutex> lock(mutex);
    (is_sent ? sent : received) += 1;
    (is_sent ? sent_bytes : received_bytes) += size;
  }
  void on_stats(const Stats& s, bool final) override {
    std::lock_guard<std::mutex> lock(mutex);
    stats.push_back(s);
    stats_final.push_back(final);
  }
  std::chrono::milliseconds stats_interval() const override {
    return std::chrono::milliseconds(100);
  }
  void on_error(const std::string& kind, const std::string&) override { add("error " + kind); }
  void on_closed(const std::string& reason, PeerConnectionState) override {
    add("closed " + reason);
    std::lock_guard<std::mutex> lock(mutex);
    closed_reason = reason;
  }
};

TEST(ConnectionObserver, SeesTheWholeLifeOfAConnection) {
  auto la = std::make_shared<Log>(), lb = std::make_shared<Log>();
  auto ca = loopback_config(), cb = loopback_config();
  ca.observer = la;
  cb.observer = lb;
  {
    ChannelPair cp;
    Pair pair(ca, cb);
    pair.wire_candidates();
    ASSERT_OK(cp.open(pair, "watched"));
    for (int i = 0; i < 5; ++i) ASSERT_OK(cp.local->send(std::string(100, 'x')));
    ASSERT_TRUE(cp.waiter.wait([&] { return cp.at_remote.size() == 5; }));
    // A bad candidate is refused and reported; the connection carries on.
    EXPECT_ERROR(pair.answerer->add_ice_candidate({"candidate:bogus"}), ErrorCode::SyntaxError);
    std::this_thread::sleep_for(300ms);  // periodic stats every 100 ms
    pair.offerer->close();
    // The answerer sees the peer go (SCTP SHUTDOWN, close_notify), then closes itself.
    ASSERT_TRUE(cp.waiter.wait([&] { return cp.remote_closed; }, 5s));
    std::this_thread::sleep_for(100ms);
    pair.answerer->close();
  }
  EXPECT_TRUE(la->has("offer-created"));
  EXPECT_TRUE(la->has("answer-received"));
  EXPECT_TRUE(lb->has("offer-received"));
  EXPECT_TRUE(lb->has("answer-created"));
  EXPECT_TRUE(la->has("local-candidate host 127.0.0.1"));
  EXPECT_TRUE(la->has("remote-candidate host 127.0.0.1"));
  for (auto* l : {la.get(), lb.get()}) {
    EXPECT_TRUE(l->has("state new->connecting"));
    EXPECT_TRUE(l->has("state connecting->connected"));
    EXPECT_TRUE(
        l->has("state connected->closed"));  // close() fires no W3C event; the observer hears it
    EXPECT_TRUE(l->has("open watched"));
    EXPECT_TRUE(l->has("close watched"));
  }
  EXPECT_TRUE(lb->has("error invalid-candidate"));
  EXPECT_EQ(la->closed_reason, "closed");
  EXPECT_EQ(lb->closed_reason, "remote-closed");
  EXPECT_EQ(la->sent, 5u);
  EXPECT_EQ(la->sent_bytes, 500u);
  EXPECT_EQ(lb->received, 5u);
  ASSERT_FALSE(la->closed_channels.empty());
  EXPECT_EQ(la->closed_channels[0].messages_sent, 5u);
  EXPECT_EQ(lb->closed_channels[0].messages_received, 5u);
  ASSERT_GE(la->stats.size(), 3u);  // at least two periodic snapshots and the final one
  EXPECT_TRUE(la->stats_final.back());
  EXPECT_FALSE(la->stats_final.front());
  EXPECT_TRUE(la->stats.back().selected_candidate_pair.has_value());
  // Nothing after on_closed.
  std::lock_guard<std::mutex> lock(la->mutex);
  EXPECT_EQ(la->events.back(), "closed closed");
}

}  // namespace
}  // namespace rtcmesh::testing
