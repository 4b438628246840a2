// Two SctpTransports over a testing::MemoryLink (no DTLS): testing::SctpPair,
// on a ManualExecutor, so usrsctp's timers (its 10 ms tick), our own timers
// and the clock usrsctp reads all run in virtual time on the test thread.
// TimersWorkAcrossLoops alone uses two real base::Loops (the tick moving
// between threads).
#include "sctp/sctp_transport.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/loop.hpp"
#include "testing/memory_link.hpp"
#include "testing/pattern.hpp"
#include "testing/sctp_pair.hpp"

namespace {

using namespace std::chrono_literals;
using rtcmesh::ByteSpan;
using rtcmesh::base::Loop;
using rtcmesh::sctp::Callbacks;
using rtcmesh::sctp::Options;
using rtcmesh::sctp::Reliability;
using rtcmesh::sctp::SctpTransport;
using rtcmesh::sctp::SendOptions;
using rtcmesh::sctp::State;
using rtcmesh::testing::MemoryLink;
using rtcmesh::testing::pattern;
using rtcmesh::testing::SctpPair;
using Endpoint = rtcmesh::testing::SctpEndpoint;

constexpr uint32_t kPpidBinary = SctpPair::kPpidBinary;
constexpr uint32_t kPpidString = SctpPair::kPpidString;

// Bitwise CRC32c (RFC 9260 appendix B), independent of the implementation.
uint32_t crc32c_reference(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// RFC 9260 appendix B: the least significant byte of the CRC goes first.
bool has_valid_checksum(ByteSpan packet) {
  if (packet.size() < 12) return false;
  std::vector<uint8_t> copy(packet.begin(), packet.end());
  std::memset(copy.data() + 8, 0, 4);
  uint32_t crc = crc32c_reference(copy.data(), copy.size());
  return packet[8] == (crc & 0xFF) && packet[9] == ((crc >> 8) & 0xFF) &&
         packet[10] == ((crc >> 16) & 0xFF) && packet[11] == (crc >> 24);
}

// First chunk type of an SCTP packet (RFC 9260 §3.2); 0 is DATA.
int first_chunk_type(ByteSpan packet) {
  return packet.size() > 12 ? packet[12] : -1;
}

class SctpTransportTest : public ::testing::Test, public SctpPair {};

TEST(SctpCrc32c, ReferenceMatchesKnownVector) {
  const char* text = "123456789";
  EXPECT_EQ(crc32c_reference(reinterpret_cast<const uint8_t*>(text), 9), 0xE3069283u);
}

TEST_F(SctpTransportTest, SimultaneousOpenAndMessagesBothWaysOnSeveralStreams) {
  ASSERT_TRUE(connect());
  EXPECT_EQ(a.states.front().first, State::Connecting);
  for (uint16_t stream : {0, 1, 5, 1023}) {
    auto data = pattern(100 + stream, stream);
    ASSERT_TRUE(send(a, stream, data, {}, kPpidString));
    ASSERT_TRUE(send(b, stream, pattern(200 + stream, stream + 7)));
  }
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == 4; }));
  ASSERT_TRUE(a.wait([&] { return a.messages.size() == 4; }));
  std::lock_guard<std::mutex> la(a.mutex), lb(b.mutex);
  size_t i = 0;
  for (uint16_t stream : {0, 1, 5, 1023}) {
    EXPECT_EQ(b.messages[i].stream, stream);
    EXPECT_EQ(b.messages[i].ppid, kPpidString);
    EXPECT_EQ(b.messages[i].data, pattern(100 + stream, stream));
    EXPECT_EQ(a.messages[i].stream, stream);
    EXPECT_EQ(a.messages[i].ppid, kPpidBinary);
    EXPECT_EQ(a.messages[i].data, pattern(200 + stream, stream + 7));
    ++i;
  }
}

TEST_F(SctpTransportTest, PacketsCarryValidChecksumAndFitThePathMtu) {
  struct Counts {
    std::atomic<size_t> bad_checksum{0}, too_big{0}, packets{0};
  };
  auto counts = std::make_shared<Counts>();
  auto check = [counts](ByteSpan packet) {
    ++counts->packets;
    if (!has_valid_checksum(packet)) ++counts->bad_checksum;
    if (packet.size() > 1191) ++counts->too_big;
    return true;
  };
  link->a.filter = check;
  link->b.filter = check;
  ASSERT_TRUE(connect());
  ASSERT_TRUE(send(a, 1, pattern(65536, 1)));
  ASSERT_TRUE(send(b, 1, pattern(3000, 2)));
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == 1; }));
  ASSERT_TRUE(a.wait([&] { return a.messages.size() == 1; }));
  EXPECT_GT(counts->packets.load(), 60u);
  EXPECT_EQ(counts->bad_checksum.load(), 0u);
  EXPECT_EQ(counts->too_big.load(), 0u);
}

TEST_F(SctpTransportTest, MessagesOfOneByteTo256KiBArriveWholeAndIntact) {
  ASSERT_TRUE(connect());
  const std::vector<size_t> sizes = {1, 2, 1000, 1191, 65535, 65536, 65537, 200000, 256 * 1024};
  for (size_t i = 0; i < sizes.size(); ++i) ASSERT_TRUE(send(a, 3, pattern(sizes[i], i)));
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == sizes.size(); }));
  std::lock_guard<std::mutex> lock(b.mutex);
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(b.messages[i].data.size(), sizes[i]);
    EXPECT_TRUE(b.messages[i].data == pattern(sizes[i], i)) << "message " << i;
  }
  { EXPECT_EQ(a.transport->stats().messages_sent, sizes.size()); }
}

TEST_F(SctpTransportTest, MessageBiggerThanTheSendBufferIsSentWhole) {
  Options big;
  big.max_receive_message_size = 8 * 1024 * 1024;
  ASSERT_TRUE(connect({}, big));
  auto data = pattern(5 * 1024 * 1024 + 3, 9);
  ASSERT_TRUE(send(a, 2, data));
  ASSERT_TRUE(send(a, 2, pattern(10, 10)));
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == 2; }, 30s));
  std::lock_guard<std::mutex> lock(b.mutex);
  EXPECT_TRUE(b.messages[0].data == data);
  EXPECT_EQ(b.messages[1].data, pattern(10, 10));
}

TEST_F(SctpTransportTest, ReliableOrderedStreamKeepsOrder) {
  ASSERT_TRUE(connect());
  constexpr int kCount = 2000;
  {
    for (int i = 0; i < kCount; ++i) {
      std::vector<uint8_t> data = pattern(1 + (i * 37) % 5000, i);
      std::memcpy(data.data(), &i, std::min(sizeof i, data.size()));
      ASSERT_TRUE(a.transport->send(4, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  }
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == kCount; }));
  std::lock_guard<std::mutex> lock(b.mutex);
  for (int i = 0; i < kCount; ++i) {
    std::vector<uint8_t> expected = pattern(1 + (i * 37) % 5000, i);
    std::memcpy(expected.data(), &i, std::min(sizeof i, expected.size()));
    ASSERT_EQ(b.messages[i].data, expected) << "message " << i;
  }
}

TEST_F(SctpTransportTest, PartialReliabilitySurvivesLossAndReliableStreamDeliversAll) {
  ASSERT_TRUE(connect());
  // Shared with the filter, which outlives the test body if an assertion fails.
  struct Loss {
    std::mt19937 random{42};
    std::atomic<size_t> dropped{0};
  };
  auto loss = std::make_shared<Loss>();
  auto lossy = [loss](ByteSpan) {
    if (loss->random() % 10 == 0) {
      ++loss->dropped;
      return false;
    }
    return true;
  };
  {
    link->a.filter = lossy;
    link->b.filter = lossy;
  }
  SendOptions unreliable;
  unreliable.unordered = true;
  unreliable.reliability = Reliability::MaxRetransmits;
  unreliable.reliability_value = 0;
  SendOptions timed;
  timed.reliability = Reliability::MaxLifetimeMs;
  timed.reliability_value = 50;
  constexpr int kRounds = 300;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(send(a, 1, pattern(1000, i), unreliable));
    ASSERT_TRUE(send(a, 2, pattern(3000, i), timed));
    std::vector<uint8_t> reliable = pattern(800, i);
    std::memcpy(reliable.data(), &i, sizeof i);
    ASSERT_TRUE(send(a, 3, reliable));
    if (i % 50 == 0) executor.advance(20ms);
  }
  auto reliable_count = [&] {
    size_t n = 0;
    for (auto& m : b.messages) n += m.stream == 3;
    return n;
  };
  ASSERT_TRUE(b.wait([&] { return reliable_count() == kRounds; }, 60s)) << reliable_count();
  EXPECT_GT(loss->dropped.load(), 10u);
  std::lock_guard<std::mutex> lock(b.mutex);
  int next = 0;
  size_t unreliable_received = 0, timed_received = 0;
  for (auto& m : b.messages) {
    if (m.stream == 3) {
      int seq;
      std::memcpy(&seq, m.data.data(), sizeof seq);
      EXPECT_EQ(seq, next++);
    } else if (m.stream == 1) {
      ++unreliable_received;
      EXPECT_EQ(m.data.size(), 1000u);
    } else if (m.stream == 2) {
      ++timed_received;
      EXPECT_EQ(m.data.size(), 3000u);
    }
  }
  EXPECT_LE(unreliable_received, static_cast<size_t>(kRounds));
  EXPECT_GT(unreliable_received, 0u);
  EXPECT_GT(timed_received, 0u);
  EXPECT_FALSE(a.ended());
  EXPECT_FALSE(b.ended());
  EXPECT_EQ(a.transport->state(), State::Connected);
}

TEST_F(SctpTransportTest, BufferedAmountGrowsWhenSctpIsFullAndReportsGoingDown) {
  ASSERT_TRUE(connect());
  constexpr int kCount = 64;  // 4 MiB > the 1 MiB send buffer
  size_t peak = 0;
  {
    auto data = pattern(65536, 1);
    for (int i = 0; i < kCount; ++i) {
      ASSERT_TRUE(a.transport->send(6, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
      peak = std::max(peak, a.transport->buffered_amount(6));
    }
    EXPECT_EQ(a.transport->buffered_amount(6), peak);
    EXPECT_EQ(a.transport->buffered_amount(7), 0u);
  }
  EXPECT_GE(peak, 2u * 1024 * 1024);
  b.keep_data = false;
  ASSERT_TRUE(b.wait([&] { return b.count == kCount; }));
  ASSERT_TRUE(a.wait([&] { return !a.buffered.empty() && a.buffered.back().second == 0; }));
  std::lock_guard<std::mutex> lock(a.mutex);
  size_t previous = peak;
  for (auto& [stream, amount] : a.buffered) {
    EXPECT_EQ(stream, 6);
    EXPECT_LT(amount, previous);
    previous = amount;
  }
  EXPECT_EQ(b.bytes, uint64_t{kCount} * 65536);
}

TEST_F(SctpTransportTest, PausedReceiverClosesTheWindowAndLosesNothing) {
  ASSERT_TRUE(connect());
  { b.transport->set_receive_paused(true); }
  // 10 MiB: more than B's receive buffer (4 MiB) and A's SCTP send buffer
  // (1 MiB) hold, so the rest must wait in A's queue.
  constexpr int kCount = 160;
  {
    for (int i = 0; i < kCount; ++i) {
      auto data = pattern(65536, static_cast<uint32_t>(i));
      ASSERT_TRUE(a.transport->send(3, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  }
  // Nothing is delivered while paused, and the sender's queue stops draining
  // once the window is closed.
  executor.advance(300ms);
  size_t stalled = 0;
  { stalled = a.transport->buffered_amount(3); }
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    EXPECT_EQ(b.count, 0u);
  }
  EXPECT_GT(stalled, 0u);
  executor.advance(300ms);
  { EXPECT_EQ(a.transport->buffered_amount(3), stalled); }
  { b.transport->set_receive_paused(false); }
  ASSERT_TRUE(b.wait([&] { return b.count == kCount; }));
  std::lock_guard<std::mutex> lock(b.mutex);
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(b.messages[static_cast<size_t>(i)].data, pattern(65536, static_cast<uint32_t>(i)))
        << i;
  }
  State state = State::New;
  { state = a.transport->state(); }
  EXPECT_EQ(state, State::Connected);
}

TEST_F(SctpTransportTest, ResetStreamReachesPeerAfterEarlierDataAndStreamCanBeReused) {
  ASSERT_TRUE(connect());
  constexpr int kCount = 100;
  {
    auto data = pattern(20000, 3);
    for (int i = 0; i < kCount; ++i) {
      ASSERT_TRUE(a.transport->send(7, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
    a.transport->reset_stream(7);
    EXPECT_FALSE(a.transport->send(7, kPpidBinary, ByteSpan(data.data(), 10), {}));
    EXPECT_TRUE(a.transport->send(8, kPpidBinary, ByteSpan(data.data(), 10), {}));
  }
  ASSERT_TRUE(b.wait([&] { return !b.resets.empty(); }));
  ASSERT_TRUE(a.wait([&] { return !a.resets.empty(); }));  // b answered with its own reset
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    int data_before_reset = 0;
    bool reset_seen = false;
    for (auto& entry : b.log) {
      if (entry == "r7") reset_seen = true;
      if (entry == "m7") {
        EXPECT_FALSE(reset_seen) << "data after the reset";
        ++data_before_reset;
      }
    }
    EXPECT_EQ(data_before_reset, kCount);
    EXPECT_EQ(b.resets, std::vector<uint16_t>{7});
  }
  {
    std::lock_guard<std::mutex> lock(a.mutex);
    EXPECT_EQ(a.resets, std::vector<uint16_t>{7});
  }
  // Both directions are reset: the id can carry a new channel (RFC 8831 §6.7).
  // The release happens when our own reset is confirmed; allow for that.
  bool sent = false;
  for (int attempt = 0; attempt < 100 && !sent; ++attempt) {
    sent = send(a, 7, pattern(5, 5));
    if (!sent) executor.advance(10ms);
  }
  ASSERT_TRUE(sent);
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == kCount + 2; }));
  std::lock_guard<std::mutex> lock(b.mutex);
  EXPECT_EQ(b.messages.back().stream, 7);
  EXPECT_EQ(b.messages.back().data, pattern(5, 5));
}

TEST_F(SctpTransportTest, PeerResetIsAnsweredAfterOurQueuedData) {
  ASSERT_TRUE(connect());
  // b resets first while a still has data queued on the same stream.
  {
    auto data = pattern(65536, 4);
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(a.transport->send(9, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
    b.transport->reset_stream(9);
  }
  ASSERT_TRUE(a.wait([&] { return !a.resets.empty(); }));
  ASSERT_TRUE(b.wait([&] { return !b.resets.empty(); }));
  std::lock_guard<std::mutex> lock(b.mutex);
  EXPECT_EQ(b.messages.size(), 40u);
  EXPECT_EQ(b.log.back(), "r9");
}

TEST_F(SctpTransportTest, OversizedIncomingMessageIsDroppedAndNextOneArrives) {
  Options small;
  small.max_receive_message_size = 100 * 1024;
  ASSERT_TRUE(connect({}, small));
  ASSERT_TRUE(send(a, 1, pattern(100 * 1024, 1)));   // at the limit: delivered
  ASSERT_TRUE(send(a, 1, pattern(200 * 1024, 2)));   // over: dropped
  ASSERT_TRUE(send(a, 1, pattern(1000 * 1024, 3)));  // far over (partial delivery): dropped
  ASSERT_TRUE(send(a, 1, pattern(10 * 1024, 4)));
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == 2; }));
  executor.advance(50ms);
  std::lock_guard<std::mutex> lock(b.mutex);
  ASSERT_EQ(b.messages.size(), 2u);
  EXPECT_EQ(b.messages[0].data, pattern(100 * 1024, 1));
  EXPECT_EQ(b.messages[1].data, pattern(10 * 1024, 4));
  { EXPECT_EQ(b.transport->stats().messages_dropped, 2u); }
}

TEST_F(SctpTransportTest, EarlyPacketsAreKeptUntilStart) {
  create();
  { a.transport->start(); }
  executor.advance(100ms);  // a's INIT waits in b's early queue
  auto begin = executor.now();
  { b.transport->start(); }
  ASSERT_TRUE(a.wait_state(State::Connected));
  ASSERT_TRUE(b.wait_state(State::Connected));
  // Without the early queue the handshake would wait for a's INIT retransmission (1 s).
  EXPECT_LT(executor.now() - begin, 500ms);
}

TEST_F(SctpTransportTest, SendBeforeConnectedIsQueuedAndDelivered) {
  create();
  auto data = pattern(70000, 8);
  {
    EXPECT_FALSE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));  // New
    a.transport->start();
    b.transport->start();
    EXPECT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    EXPECT_EQ(a.transport->buffered_amount(1), data.size());
  }
  ASSERT_TRUE(b.wait([&] { return b.messages.size() == 1; }));
  std::lock_guard<std::mutex> lock(b.mutex);
  EXPECT_TRUE(b.messages[0].data == data);
}

TEST_F(SctpTransportTest, GracefulCloseClosesBothSides) {
  ASSERT_TRUE(connect());
  {
    auto data = pattern(200000, 1);
    ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    a.transport->close();
    EXPECT_FALSE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), 1), {}));
    a.transport->close();  // idempotent
  }
  ASSERT_TRUE(a.wait_state(State::Closed));
  ASSERT_TRUE(b.wait_state(State::Closed));
  EXPECT_EQ(b.messages.size(), 4u);  // queued data went out before the SHUTDOWN
  EXPECT_FALSE(a.reached(State::Failed));
  EXPECT_FALSE(b.reached(State::Failed));
}

TEST_F(SctpTransportTest, DestroyingOneSideMidTransferIsCleanAndPeerEnds) {
  ASSERT_TRUE(connect());
  b.keep_data = false;
  {
    auto data = pattern(65536, 1);
    for (int i = 0; i < 128; ++i) {
      ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  }
  ASSERT_TRUE(b.wait([&] { return b.count >= 4; }));
  a.transport.reset();  // ABORT goes out on the link
  ASSERT_TRUE(b.wait([&] { return b.ended(); }));
  EXPECT_TRUE(b.reached(State::Failed));
  { EXPECT_FALSE(b.transport->send(1, kPpidBinary, ByteSpan(), {})); }
}

TEST_F(SctpTransportTest, TransportMayBeDestroyedFromItsOwnCallback) {
  ASSERT_TRUE(connect());
  b.on_message = [&](uint16_t, uint32_t, ByteSpan) { b.transport.reset(); };
  {
    auto data = pattern(1000, 1);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  }
  ASSERT_TRUE(a.wait([&] { return a.ended(); }));
  std::lock_guard<std::mutex> lock(b.mutex);
  EXPECT_EQ(b.count, 1u);
}

TEST_F(SctpTransportTest, DestroyedBeforeStartOrWhileConnecting) {
  create();
  {
    a.transport->start();
    a.transport.reset();
    b.transport.reset();
  }
  create();
  {
    a.transport->close();
    EXPECT_EQ(a.transport->state(), State::Closed);
  }
  ASSERT_TRUE(a.wait_state(State::Closed));
}

TEST_F(SctpTransportTest, CallbacksNeverRunInsidePublicMethods) {
  bool in_method = false;  // loop thread only
  bool violated = false;
  create();
  a.on_message = b.on_message = [&](uint16_t, uint32_t, ByteSpan) { violated |= in_method; };
  a.on_buffered = b.on_buffered = [&](uint16_t, size_t) { violated |= in_method; };
  a.on_state = b.on_state = [&](State) { violated |= in_method; };
  {
    in_method = true;
    a.transport->start();
    b.transport->start();
    in_method = false;
  }
  ASSERT_TRUE(a.wait_state(State::Connected));
  ASSERT_TRUE(b.wait_state(State::Connected));
  auto data = pattern(65536, 3);
  for (int round = 0; round < 20; ++round) {
    {
      in_method = true;
      for (int i = 0; i < 8; ++i)
        a.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {});
      b.transport->send(2, kPpidBinary, ByteSpan(data.data(), 100), {});
      in_method = false;
    }
  }
  {
    in_method = true;
    a.transport->reset_stream(1);
    a.transport->close();
    in_method = false;
  }
  ASSERT_TRUE(b.wait_state(State::Closed));
  ASSERT_TRUE(a.wait_state(State::Closed));
  { EXPECT_FALSE(violated); }
  rtcmesh::sctp::Stats sent, received;
  {
    sent = a.transport->stats();
    received = b.transport->stats();
  }
  EXPECT_EQ(sent.messages_sent, 160u);
  EXPECT_EQ(sent.bytes_sent, 160u * 65536);
  EXPECT_EQ(received.messages_received, 160u);
  EXPECT_EQ(received.bytes_received, 160u * 65536);
  EXPECT_EQ(received.messages_dropped, 0u);
}

// A timer-driven retransmission (T3-rtx) works when the association's loop is
// not the loop running the usrsctp tick, and after the tick moved loops.
TEST(SctpTransportLoops, TimersWorkAcrossLoops) {
  Loop first, second;
  std::unique_ptr<MemoryLink> link1, link2;
  Endpoint a1, b1, a2, b2;
  first.run_sync([&] { link1 = std::make_unique<MemoryLink>(first); });
  second.run_sync([&] { link2 = std::make_unique<MemoryLink>(second); });
  first.run_sync([&] {
    a1.transport = std::make_unique<SctpTransport>(first, link1->a, Options{}, a1.callbacks());
    b1.transport = std::make_unique<SctpTransport>(first, link1->b, Options{}, b1.callbacks());
    a1.transport->start();
    b1.transport->start();
  });
  second.run_sync([&] {
    a2.transport = std::make_unique<SctpTransport>(second, link2->a, Options{}, a2.callbacks());
    b2.transport = std::make_unique<SctpTransport>(second, link2->b, Options{}, b2.callbacks());
    a2.transport->start();
    b2.transport->start();
  });
  ASSERT_TRUE(a2.wait_state(State::Connected));
  ASSERT_TRUE(b2.wait_state(State::Connected));
  ASSERT_TRUE(b1.wait_state(State::Connected));

  // Drop the next DATA packet from a2: only the retransmission timer recovers it.
  std::atomic<int> drop_next_data{0};
  second.run_sync([&] {
    link2->a.filter = [&](ByteSpan packet) {
      if (first_chunk_type(packet) == 0 && drop_next_data > 0) {
        --drop_next_data;
        return false;
      }
      return true;
    };
  });
  auto exchange = [&](uint32_t seed) {
    drop_next_data = 1;
    auto data = pattern(100, seed);
    second.run_sync([&] {
      ASSERT_TRUE(a2.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    });
    size_t expected = 0;
    {
      std::lock_guard<std::mutex> lock(b2.mutex);
      expected = b2.messages.size() + 1;
    }
    EXPECT_TRUE(b2.wait([&] { return b2.messages.size() == expected; }, 5s));
    EXPECT_EQ(drop_next_data.load(), 0);
  };
  exchange(1);  // tick on `first`, association on `second`
  first.run_sync([&] {
    a1.transport.reset();
    b1.transport.reset();
    link1.reset();
  });
  exchange(2);  // tick moved to `second`
  second.run_sync([&] {
    a2.transport.reset();
    b2.transport.reset();
    link2.reset();
  });
}

// Bulk one-way throughput with 64 KiB messages, paced by on_buffered_amount
// like a browser app using bufferedAmountLow. RTCMESH_SCTP_BENCH_MB sets the
// volume (default 32 MiB).
TEST_F(SctpTransportTest, Throughput) {
  size_t megabytes = 32;
  if (const char* env = std::getenv("RTCMESH_SCTP_BENCH_MB"))
    megabytes = std::strtoul(env, nullptr, 10);
  const size_t total = megabytes * 1024 * 1024;
  constexpr size_t kMessage = 65536;
  constexpr size_t kHigh = 1024 * 1024;
  constexpr size_t kLow = 256 * 1024;
  ASSERT_TRUE(connect());
  b.keep_data = false;
  auto message = pattern(kMessage, 7);
  size_t queued = 0;
  auto pump = [&] {
    while (queued < total && a.transport->buffered_amount(1) < kHigh) {
      ASSERT_TRUE(a.transport->send(1, kPpidBinary, ByteSpan(message.data(), message.size()), {}));
      queued += kMessage;
    }
  };
  a.on_buffered = [&](uint16_t, size_t amount) {
    if (amount <= kLow) pump();
  };
  auto cpu_seconds = [] {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  };
  double cpu_begin = cpu_seconds();
  auto begin = std::chrono::steady_clock::now();
  pump();
  ASSERT_TRUE(b.wait([&] { return b.bytes >= total; }, 120s));
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  double cpu = cpu_seconds() - cpu_begin;
  double rate = static_cast<double>(total) / seconds / 1e6;
  // The CPU rate (bytes per CPU-second of the whole process, both endpoints on
  // one loop thread) is what one idle core gives; wall time suffers on a busy box.
  std::printf(
      "[ SCTP     ] %zu MiB in %.3f s: %.1f MB/s wall, %.1f MB per CPU-second (%zu packets a->b)\n",
      megabytes, seconds, rate, static_cast<double>(total) / cpu / 1e6, link->a.sent);
  RecordProperty("MBps", std::to_string(rate));
  { a.on_buffered = nullptr; }
}

}  // namespace
