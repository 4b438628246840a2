// Two SctpTransports over a testing::MemoryLink on one base::Loop (no DTLS).
// Every transport call runs on the loop (run_sync); callbacks record what they
// see under a mutex and the test thread waits on it with a timeout.
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
#include <thread>
#include <random>
#include <string>
#include <vector>

#include "base/loop.hpp"
#include "testing/memory_link.hpp"

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

constexpr uint32_t kPpidBinary = 53;  // RFC 8831 §8
constexpr uint32_t kPpidString = 51;

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
int first_chunk_type(ByteSpan packet) { return packet.size() > 12 ? packet[12] : -1; }

std::vector<uint8_t> pattern(size_t size, uint32_t seed) {
  std::vector<uint8_t> data(size);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& byte : data) {
    x = x * 1103515245u + 12345u;
    byte = static_cast<uint8_t>(x >> 16);
  }
  return data;
}

struct Received {
  uint16_t stream;
  uint32_t ppid;
  std::vector<uint8_t> data;
};

// Records everything one transport reports. Callbacks run on the loop thread.
struct Endpoint {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<Received> messages;
  std::vector<std::pair<State, std::string>> states;
  std::vector<uint16_t> resets;
  std::vector<std::pair<uint16_t, size_t>> buffered;
  std::vector<std::string> log;  // "m<stream>" / "r<stream>" in arrival order
  bool keep_data = true;
  uint64_t bytes = 0;
  size_t count = 0;
  // Optional hooks, run on the loop after recording (without the mutex).
  std::function<void(uint16_t, uint32_t, ByteSpan)> on_message;
  std::function<void(uint16_t, size_t)> on_buffered;
  std::function<void(State)> on_state;
  std::unique_ptr<SctpTransport> transport;

  Callbacks callbacks() {
    Callbacks cb;
    cb.on_state = [this](State state, const std::string& error) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        states.emplace_back(state, error);
      }
      cv.notify_all();
      if (on_state) on_state(state);
    };
    cb.on_message = [this](uint16_t stream, uint32_t ppid, ByteSpan message) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (keep_data)
          messages.push_back({stream, ppid, std::vector<uint8_t>(message.begin(), message.end())});
        bytes += message.size();
        ++count;
        if (keep_data) log.push_back("m" + std::to_string(stream));
      }
      cv.notify_all();
      if (on_message) on_message(stream, ppid, message);
    };
    cb.on_stream_reset = [this](uint16_t stream) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        resets.push_back(stream);
        log.push_back("r" + std::to_string(stream));
      }
      cv.notify_all();
    };
    cb.on_buffered_amount = [this](uint16_t stream, size_t amount) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        buffered.emplace_back(stream, amount);
      }
      cv.notify_all();
      if (on_buffered) on_buffered(stream, amount);
    };
    return cb;
  }

  template <typename Predicate>
  bool wait(Predicate predicate, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, timeout, predicate);
  }

  bool reached(State state) {
    for (auto& [s, e] : states) {
      if (s == state) return true;
    }
    return false;
  }
  bool wait_state(State state, std::chrono::milliseconds timeout = 10s) {
    return wait([&] { return reached(state); }, timeout);
  }
  bool ended() { return reached(State::Closed) || reached(State::Failed); }
};

class SctpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_.run_sync([&] { link_ = std::make_unique<MemoryLink>(loop_); });
  }

  void TearDown() override {
    loop_.run_sync([&] {
      link_->a.filter = nullptr;  // filters may capture the test body's locals
      link_->b.filter = nullptr;
      a_.transport.reset();
      b_.transport.reset();
      link_.reset();
    });
  }

  void create(Options options_a = {}, Options options_b = {}) {
    loop_.run_sync([&] {
      a_.transport = std::make_unique<SctpTransport>(loop_, link_->a, options_a, a_.callbacks());
      b_.transport = std::make_unique<SctpTransport>(loop_, link_->b, options_b, b_.callbacks());
    });
  }

  void connect(Options options_a = {}, Options options_b = {}) {
    create(options_a, options_b);
    loop_.run_sync([&] {
      a_.transport->start();
      b_.transport->start();
    });
    ASSERT_TRUE(a_.wait_state(State::Connected));
    ASSERT_TRUE(b_.wait_state(State::Connected));
  }

  bool send(Endpoint& from, uint16_t stream, const std::vector<uint8_t>& data,
            SendOptions options = {}, uint32_t ppid = kPpidBinary) {
    bool ok = false;
    loop_.run_sync([&] {
      ok = from.transport->send(stream, ppid, ByteSpan(data.data(), data.size()), options);
    });
    return ok;
  }

  Loop loop_;
  std::unique_ptr<MemoryLink> link_;
  Endpoint a_;
  Endpoint b_;
};

TEST(SctpCrc32c, ReferenceMatchesKnownVector) {
  const char* text = "123456789";
  EXPECT_EQ(crc32c_reference(reinterpret_cast<const uint8_t*>(text), 9), 0xE3069283u);
}

TEST_F(SctpTransportTest, SimultaneousOpenAndMessagesBothWaysOnSeveralStreams) {
  connect();
  EXPECT_EQ(a_.states.front().first, State::Connecting);
  for (uint16_t stream : {0, 1, 5, 1023}) {
    auto data = pattern(100 + stream, stream);
    ASSERT_TRUE(send(a_, stream, data, {}, kPpidString));
    ASSERT_TRUE(send(b_, stream, pattern(200 + stream, stream + 7)));
  }
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == 4; }));
  ASSERT_TRUE(a_.wait([&] { return a_.messages.size() == 4; }));
  std::lock_guard<std::mutex> la(a_.mutex), lb(b_.mutex);
  size_t i = 0;
  for (uint16_t stream : {0, 1, 5, 1023}) {
    EXPECT_EQ(b_.messages[i].stream, stream);
    EXPECT_EQ(b_.messages[i].ppid, kPpidString);
    EXPECT_EQ(b_.messages[i].data, pattern(100 + stream, stream));
    EXPECT_EQ(a_.messages[i].stream, stream);
    EXPECT_EQ(a_.messages[i].ppid, kPpidBinary);
    EXPECT_EQ(a_.messages[i].data, pattern(200 + stream, stream + 7));
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
  link_->a.filter = check;
  link_->b.filter = check;
  connect();
  ASSERT_TRUE(send(a_, 1, pattern(65536, 1)));
  ASSERT_TRUE(send(b_, 1, pattern(3000, 2)));
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == 1; }));
  ASSERT_TRUE(a_.wait([&] { return a_.messages.size() == 1; }));
  EXPECT_GT(counts->packets.load(), 60u);
  EXPECT_EQ(counts->bad_checksum.load(), 0u);
  EXPECT_EQ(counts->too_big.load(), 0u);
}

TEST_F(SctpTransportTest, MessagesOfOneByteTo256KiBArriveWholeAndIntact) {
  connect();
  const std::vector<size_t> sizes = {1, 2, 1000, 1191, 65535, 65536, 65537, 200000, 256 * 1024};
  for (size_t i = 0; i < sizes.size(); ++i) ASSERT_TRUE(send(a_, 3, pattern(sizes[i], i)));
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == sizes.size(); }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(b_.messages[i].data.size(), sizes[i]);
    EXPECT_TRUE(b_.messages[i].data == pattern(sizes[i], i)) << "message " << i;
  }
  loop_.run_sync([&] { EXPECT_EQ(a_.transport->stats().messages_sent, sizes.size()); });
}

TEST_F(SctpTransportTest, MessageBiggerThanTheSendBufferIsSentWhole) {
  Options big;
  big.max_receive_message_size = 8 * 1024 * 1024;
  connect({}, big);
  auto data = pattern(5 * 1024 * 1024 + 3, 9);
  ASSERT_TRUE(send(a_, 2, data));
  ASSERT_TRUE(send(a_, 2, pattern(10, 10)));
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == 2; }, 30s));
  std::lock_guard<std::mutex> lock(b_.mutex);
  EXPECT_TRUE(b_.messages[0].data == data);
  EXPECT_EQ(b_.messages[1].data, pattern(10, 10));
}

TEST_F(SctpTransportTest, ReliableOrderedStreamKeepsOrder) {
  connect();
  constexpr int kCount = 2000;
  loop_.run_sync([&] {
    for (int i = 0; i < kCount; ++i) {
      std::vector<uint8_t> data = pattern(1 + (i * 37) % 5000, i);
      std::memcpy(data.data(), &i, std::min(sizeof i, data.size()));
      ASSERT_TRUE(a_.transport->send(4, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  });
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == kCount; }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  for (int i = 0; i < kCount; ++i) {
    std::vector<uint8_t> expected = pattern(1 + (i * 37) % 5000, i);
    std::memcpy(expected.data(), &i, std::min(sizeof i, expected.size()));
    ASSERT_EQ(b_.messages[i].data, expected) << "message " << i;
  }
}

TEST_F(SctpTransportTest, PartialReliabilitySurvivesLossAndReliableStreamDeliversAll) {
  connect();
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
  loop_.run_sync([&] {
    link_->a.filter = lossy;
    link_->b.filter = lossy;
  });
  SendOptions unreliable;
  unreliable.unordered = true;
  unreliable.reliability = Reliability::MaxRetransmits;
  unreliable.reliability_value = 0;
  SendOptions timed;
  timed.reliability = Reliability::MaxLifetimeMs;
  timed.reliability_value = 50;
  constexpr int kRounds = 300;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(send(a_, 1, pattern(1000, i), unreliable));
    ASSERT_TRUE(send(a_, 2, pattern(3000, i), timed));
    std::vector<uint8_t> reliable = pattern(800, i);
    std::memcpy(reliable.data(), &i, sizeof i);
    ASSERT_TRUE(send(a_, 3, reliable));
    if (i % 50 == 0) std::this_thread::sleep_for(20ms);
  }
  auto reliable_count = [&] {
    size_t n = 0;
    for (auto& m : b_.messages) n += m.stream == 3;
    return n;
  };
  ASSERT_TRUE(b_.wait([&] { return reliable_count() == kRounds; }, 60s)) << reliable_count();
  EXPECT_GT(loss->dropped.load(), 10u);
  std::lock_guard<std::mutex> lock(b_.mutex);
  int next = 0;
  size_t unreliable_received = 0, timed_received = 0;
  for (auto& m : b_.messages) {
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
  EXPECT_FALSE(a_.ended());
  EXPECT_FALSE(b_.ended());
  EXPECT_EQ(a_.transport->state(), State::Connected);
}

TEST_F(SctpTransportTest, BufferedAmountGrowsWhenSctpIsFullAndReportsGoingDown) {
  connect();
  constexpr int kCount = 64;  // 4 MiB > the 1 MiB send buffer
  size_t peak = 0;
  loop_.run_sync([&] {
    auto data = pattern(65536, 1);
    for (int i = 0; i < kCount; ++i) {
      ASSERT_TRUE(a_.transport->send(6, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
      peak = std::max(peak, a_.transport->buffered_amount(6));
    }
    EXPECT_EQ(a_.transport->buffered_amount(6), peak);
    EXPECT_EQ(a_.transport->buffered_amount(7), 0u);
  });
  EXPECT_GE(peak, 2u * 1024 * 1024);
  b_.keep_data = false;
  ASSERT_TRUE(b_.wait([&] { return b_.count == kCount; }));
  ASSERT_TRUE(a_.wait([&] { return !a_.buffered.empty() && a_.buffered.back().second == 0; }));
  std::lock_guard<std::mutex> lock(a_.mutex);
  size_t previous = peak;
  for (auto& [stream, amount] : a_.buffered) {
    EXPECT_EQ(stream, 6);
    EXPECT_LT(amount, previous);
    previous = amount;
  }
  EXPECT_EQ(b_.bytes, uint64_t{kCount} * 65536);
}

TEST_F(SctpTransportTest, PausedReceiverClosesTheWindowAndLosesNothing) {
  connect();
  loop_.run_sync([&] { b_.transport->set_receive_paused(true); });
  // 10 MiB: more than B's receive buffer (4 MiB) and A's SCTP send buffer
  // (1 MiB) hold, so the rest must wait in A's queue.
  constexpr int kCount = 160;
  loop_.run_sync([&] {
    for (int i = 0; i < kCount; ++i) {
      auto data = pattern(65536, static_cast<uint32_t>(i));
      ASSERT_TRUE(a_.transport->send(3, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  });
  // Nothing is delivered while paused, and the sender's queue stops draining
  // once the window is closed.
  std::this_thread::sleep_for(300ms);
  size_t stalled = 0;
  loop_.run_sync([&] { stalled = a_.transport->buffered_amount(3); });
  {
    std::lock_guard<std::mutex> lock(b_.mutex);
    EXPECT_EQ(b_.count, 0u);
  }
  EXPECT_GT(stalled, 0u);
  std::this_thread::sleep_for(300ms);
  loop_.run_sync([&] { EXPECT_EQ(a_.transport->buffered_amount(3), stalled); });
  loop_.run_sync([&] { b_.transport->set_receive_paused(false); });
  ASSERT_TRUE(b_.wait([&] { return b_.count == kCount; }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(b_.messages[static_cast<size_t>(i)].data, pattern(65536, static_cast<uint32_t>(i))) << i;
  }
  State state = State::New;
  loop_.run_sync([&] { state = a_.transport->state(); });
  EXPECT_EQ(state, State::Connected);
}

TEST_F(SctpTransportTest, ResetStreamReachesPeerAfterEarlierDataAndStreamCanBeReused) {
  connect();
  constexpr int kCount = 100;
  loop_.run_sync([&] {
    auto data = pattern(20000, 3);
    for (int i = 0; i < kCount; ++i) {
      ASSERT_TRUE(a_.transport->send(7, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
    a_.transport->reset_stream(7);
    EXPECT_FALSE(a_.transport->send(7, kPpidBinary, ByteSpan(data.data(), 10), {}));
    EXPECT_TRUE(a_.transport->send(8, kPpidBinary, ByteSpan(data.data(), 10), {}));
  });
  ASSERT_TRUE(b_.wait([&] { return !b_.resets.empty(); }));
  ASSERT_TRUE(a_.wait([&] { return !a_.resets.empty(); }));  // b answered with its own reset
  {
    std::lock_guard<std::mutex> lock(b_.mutex);
    int data_before_reset = 0;
    bool reset_seen = false;
    for (auto& entry : b_.log) {
      if (entry == "r7") reset_seen = true;
      if (entry == "m7") {
        EXPECT_FALSE(reset_seen) << "data after the reset";
        ++data_before_reset;
      }
    }
    EXPECT_EQ(data_before_reset, kCount);
    EXPECT_EQ(b_.resets, std::vector<uint16_t>{7});
  }
  {
    std::lock_guard<std::mutex> lock(a_.mutex);
    EXPECT_EQ(a_.resets, std::vector<uint16_t>{7});
  }
  // Both directions are reset: the id can carry a new channel (RFC 8831 §6.7).
  // The release happens when our own reset is confirmed; allow for that.
  bool sent = false;
  for (int attempt = 0; attempt < 100 && !sent; ++attempt) {
    sent = send(a_, 7, pattern(5, 5));
    if (!sent) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(sent);
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == kCount + 2; }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  EXPECT_EQ(b_.messages.back().stream, 7);
  EXPECT_EQ(b_.messages.back().data, pattern(5, 5));
}

TEST_F(SctpTransportTest, PeerResetIsAnsweredAfterOurQueuedData) {
  connect();
  // b resets first while a still has data queued on the same stream.
  loop_.run_sync([&] {
    auto data = pattern(65536, 4);
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(a_.transport->send(9, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
    b_.transport->reset_stream(9);
  });
  ASSERT_TRUE(a_.wait([&] { return !a_.resets.empty(); }));
  ASSERT_TRUE(b_.wait([&] { return !b_.resets.empty(); }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  EXPECT_EQ(b_.messages.size(), 40u);
  EXPECT_EQ(b_.log.back(), "r9");
}

TEST_F(SctpTransportTest, OversizedIncomingMessageIsDroppedAndNextOneArrives) {
  Options small;
  small.max_receive_message_size = 100 * 1024;
  connect({}, small);
  ASSERT_TRUE(send(a_, 1, pattern(100 * 1024, 1)));   // at the limit: delivered
  ASSERT_TRUE(send(a_, 1, pattern(200 * 1024, 2)));   // over: dropped
  ASSERT_TRUE(send(a_, 1, pattern(1000 * 1024, 3)));  // far over (partial delivery): dropped
  ASSERT_TRUE(send(a_, 1, pattern(10 * 1024, 4)));
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == 2; }));
  std::this_thread::sleep_for(50ms);
  std::lock_guard<std::mutex> lock(b_.mutex);
  ASSERT_EQ(b_.messages.size(), 2u);
  EXPECT_EQ(b_.messages[0].data, pattern(100 * 1024, 1));
  EXPECT_EQ(b_.messages[1].data, pattern(10 * 1024, 4));
  loop_.run_sync([&] { EXPECT_EQ(b_.transport->stats().messages_dropped, 2u); });
}

TEST_F(SctpTransportTest, EarlyPacketsAreKeptUntilStart) {
  create();
  loop_.run_sync([&] { a_.transport->start(); });
  std::this_thread::sleep_for(100ms);  // a's INIT waits in b's early queue
  auto begin = std::chrono::steady_clock::now();
  loop_.run_sync([&] { b_.transport->start(); });
  ASSERT_TRUE(a_.wait_state(State::Connected));
  ASSERT_TRUE(b_.wait_state(State::Connected));
  // Without the early queue the handshake would wait for a's INIT retransmission (1 s).
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 500ms);
}

TEST_F(SctpTransportTest, SendBeforeConnectedIsQueuedAndDelivered) {
  create();
  auto data = pattern(70000, 8);
  loop_.run_sync([&] {
    EXPECT_FALSE(
        a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));  // New
    a_.transport->start();
    b_.transport->start();
    EXPECT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    EXPECT_EQ(a_.transport->buffered_amount(1), data.size());
  });
  ASSERT_TRUE(b_.wait([&] { return b_.messages.size() == 1; }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  EXPECT_TRUE(b_.messages[0].data == data);
}

TEST_F(SctpTransportTest, GracefulCloseClosesBothSides) {
  connect();
  loop_.run_sync([&] {
    auto data = pattern(200000, 1);
    ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    a_.transport->close();
    EXPECT_FALSE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), 1), {}));
    a_.transport->close();  // idempotent
  });
  ASSERT_TRUE(a_.wait_state(State::Closed));
  ASSERT_TRUE(b_.wait_state(State::Closed));
  EXPECT_EQ(b_.messages.size(), 4u);  // queued data went out before the SHUTDOWN
  EXPECT_FALSE(a_.reached(State::Failed));
  EXPECT_FALSE(b_.reached(State::Failed));
}

TEST_F(SctpTransportTest, DestroyingOneSideMidTransferIsCleanAndPeerEnds) {
  connect();
  b_.keep_data = false;
  loop_.run_sync([&] {
    auto data = pattern(65536, 1);
    for (int i = 0; i < 128; ++i) {
      ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  });
  ASSERT_TRUE(b_.wait([&] { return b_.count >= 4; }));
  loop_.run_sync([&] { a_.transport.reset(); });  // ABORT goes out on the link
  ASSERT_TRUE(b_.wait([&] { return b_.ended(); }));
  EXPECT_TRUE(b_.reached(State::Failed));
  loop_.run_sync([&] { EXPECT_FALSE(b_.transport->send(1, kPpidBinary, ByteSpan(), {})); });
}

TEST_F(SctpTransportTest, TransportMayBeDestroyedFromItsOwnCallback) {
  connect();
  b_.on_message = [&](uint16_t, uint32_t, ByteSpan) { b_.transport.reset(); };
  loop_.run_sync([&] {
    auto data = pattern(1000, 1);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {}));
    }
  });
  ASSERT_TRUE(a_.wait([&] { return a_.ended(); }));
  std::lock_guard<std::mutex> lock(b_.mutex);
  EXPECT_EQ(b_.count, 1u);
}

TEST_F(SctpTransportTest, DestroyedBeforeStartOrWhileConnecting) {
  create();
  loop_.run_sync([&] {
    a_.transport->start();
    a_.transport.reset();
    b_.transport.reset();
  });
  create();
  loop_.run_sync([&] {
    a_.transport->close();
    EXPECT_EQ(a_.transport->state(), State::Closed);
  });
  ASSERT_TRUE(a_.wait_state(State::Closed));
}

TEST_F(SctpTransportTest, CallbacksNeverRunInsidePublicMethods) {
  bool in_method = false;  // loop thread only
  bool violated = false;
  create();
  a_.on_message = b_.on_message = [&](uint16_t, uint32_t, ByteSpan) { violated |= in_method; };
  a_.on_buffered = b_.on_buffered = [&](uint16_t, size_t) { violated |= in_method; };
  a_.on_state = b_.on_state = [&](State) { violated |= in_method; };
  loop_.run_sync([&] {
    in_method = true;
    a_.transport->start();
    b_.transport->start();
    in_method = false;
  });
  ASSERT_TRUE(a_.wait_state(State::Connected));
  ASSERT_TRUE(b_.wait_state(State::Connected));
  auto data = pattern(65536, 3);
  for (int round = 0; round < 20; ++round) {
    loop_.run_sync([&] {
      in_method = true;
      for (int i = 0; i < 8; ++i)
        a_.transport->send(1, kPpidBinary, ByteSpan(data.data(), data.size()), {});
      b_.transport->send(2, kPpidBinary, ByteSpan(data.data(), 100), {});
      in_method = false;
    });
  }
  loop_.run_sync([&] {
    in_method = true;
    a_.transport->reset_stream(1);
    a_.transport->close();
    in_method = false;
  });
  ASSERT_TRUE(b_.wait_state(State::Closed));
  ASSERT_TRUE(a_.wait_state(State::Closed));
  loop_.run_sync([&] { EXPECT_FALSE(violated); });
  rtcmesh::sctp::Stats sent, received;
  loop_.run_sync([&] {
    sent = a_.transport->stats();
    received = b_.transport->stats();
  });
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
  connect();
  b_.keep_data = false;
  auto message = pattern(kMessage, 7);
  size_t queued = 0;
  auto pump = [&] {
    while (queued < total && a_.transport->buffered_amount(1) < kHigh) {
      ASSERT_TRUE(a_.transport->send(1, kPpidBinary, ByteSpan(message.data(), message.size()), {}));
      queued += kMessage;
    }
  };
  a_.on_buffered = [&](uint16_t, size_t amount) {
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
  loop_.run_sync(pump);
  ASSERT_TRUE(b_.wait([&] { return b_.bytes >= total; }, 120s));
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  double cpu = cpu_seconds() - cpu_begin;
  double rate = static_cast<double>(total) / seconds / 1e6;
  // The CPU rate (bytes per CPU-second of the whole process, both endpoints on
  // one loop thread) is what one idle core gives; wall time suffers on a busy box.
  std::printf(
      "[ SCTP     ] %zu MiB in %.3f s: %.1f MB/s wall, %.1f MB per CPU-second (%zu packets a->b)\n",
      megabytes, seconds, rate, static_cast<double>(total) / cpu / 1e6, link_->a.sent);
  RecordProperty("MBps", std::to_string(rate));
  loop_.run_sync([&] { a_.on_buffered = nullptr; });
}

}  // namespace
