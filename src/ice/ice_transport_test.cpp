// IceTransport failure paths that need no STUN/TURN server: ICE must fail,
// with a reason, instead of hanging when no candidate pair can ever exist, and
// gathering must end even when libnice loses track of a TURN allocation.
// (STUN and TURN against coturn: tests/turn/turn_test.py.)
#include "ice/ice_transport.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace rtcmesh::ice {
namespace {

using namespace std::chrono_literals;

// One IceTransport on the shared network loop, with its events recorded.
class Fixture {
 public:
  explicit Fixture(Config config) {
    config.local_addresses = {"127.0.0.1"};
    loop_->run_sync([&] {
      Callbacks callbacks;
      callbacks.on_state = [this](State s) { record([&] { state_ = s; }); };
      callbacks.on_gathering_state = [this](GatheringState s) { record([&] { gathering_ = s; }); };
      callbacks.on_local_candidate = [this](const sdp::Candidate&) {
        record([&] { ++candidates_; });
      };
      auto created = IceTransport::create(*loop_, config, std::move(callbacks));
      ASSERT_TRUE(created) << created.error().message;
      ice_ = std::move(created.value());
    });
  }
  ~Fixture() {
    loop_->run_sync([&] { ice_.reset(); });
  }

  template <class F>
  auto on_loop(F&& f) {
    decltype(f()) result{};
    loop_->run_sync([&] { result = f(); });
    return result;
  }
  void on_loop_void(const std::function<void()>& f) { loop_->run_sync(f); }

  bool wait_state(State want, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return state_ == want; });
  }
  bool wait_gathered(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return gathering_ == GatheringState::Complete; });
  }
  State state() {
    std::lock_guard<std::mutex> lock(mutex_);
    return state_;
  }
  int candidates() {
    std::lock_guard<std::mutex> lock(mutex_);
    return candidates_;
  }
  IceTransport& ice() { return *ice_; }

 private:
  template <class F>
  void record(F&& f) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      f();
    }
    cv_.notify_all();
  }

  std::shared_ptr<base::Loop> loop_ = base::Loop::shared();
  std::unique_ptr<IceTransport> ice_;
  std::mutex mutex_;
  std::condition_variable cv_;
  State state_ = State::New;
  GatheringState gathering_ = GatheringState::New;
  int candidates_ = 0;
};

TEST(IceTransport, RelayOnlyWithoutTurnServerFailsWhenGatheringEnds) {
  Config config;
  config.relay_only = true;
  Fixture f(config);
  f.on_loop_void([&] { ASSERT_TRUE(f.ice().gather()); });
  ASSERT_TRUE(f.wait_state(State::Failed, 5s));
  EXPECT_EQ(f.candidates(), 0);
  auto reason = f.on_loop([&] { return f.ice().failure_reason(); });
  EXPECT_NE(reason.find("without a TURN server"), std::string::npos) << reason;
}

TEST(IceTransport, RemoteEndOfCandidatesWithoutAnyFails) {
  Fixture f(Config{});
  f.on_loop_void([&] { ASSERT_TRUE(f.ice().gather()); });
  ASSERT_TRUE(f.wait_gathered(5s));
  EXPECT_GT(f.candidates(), 0);
  f.on_loop_void([&] {
    ASSERT_TRUE(f.ice().set_remote_credentials("abcd", "0123456789012345678901"));
    f.ice().remote_gathering_done();
  });
  ASSERT_TRUE(f.wait_state(State::Failed, 5s));
  auto reason = f.on_loop([&] { return f.ice().failure_reason(); });
  EXPECT_NE(reason.find("end-of-candidates without any candidate"), std::string::npos) << reason;
}

TEST(IceTransport, UnusableRemoteCandidatesLeaveRoomForPeerReflexive) {
  // A browser's mDNS candidates are refused, but its checks may still reach us
  // (we then learn it as peer-reflexive): that is not a reason to fail.
  Fixture f(Config{});
  f.on_loop_void([&] {
    ASSERT_TRUE(f.ice().gather());
    ASSERT_TRUE(f.ice().set_remote_credentials("abcd", "0123456789012345678901"));
    sdp::Candidate c;
    c.foundation = "1";
    c.transport = "udp";
    c.priority = 2122260223;
    c.address = "0b1c3a8e-5d6f-4a7b-8c9d-0e1f2a3b4c5d.local";
    c.port = 54321;
    c.type = "host";
    EXPECT_FALSE(f.ice().add_remote_candidate(c));
    f.ice().remote_gathering_done();
  });
  ASSERT_TRUE(f.wait_gathered(5s));
  std::this_thread::sleep_for(300ms);
  EXPECT_NE(f.state(), State::Failed);
}

// A TCP server that accepts every connection, reads a little and closes it:
// what a TLS-only or overloaded TURN port does to a TURN-TCP client.
class ClosingServer {
 public:
  ClosingServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[64];
        (void)!::read(c, buf, sizeof buf);
        ::close(c);
        ++accepted_;
      }
    });
  }
  ~ClosingServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

TEST(IceTransport, GatheringEndsWhenTurnServerClosesTheTcpConnection) {
  // libnice 0.1.21 drops such an allocation without ever finishing gathering.
  ClosingServer server;
  Config config;
  config.relay_only = true;
  config.gathering_timeout = 500ms;
  Server turn;
  turn.kind = Server::Kind::Turn;
  turn.transport = Server::Transport::Tcp;
  turn.address = "127.0.0.1";
  turn.port = server.port();
  turn.username = "user";
  turn.password = "pass";
  config.servers = {turn};
  Fixture f(config);
  auto start = std::chrono::steady_clock::now();
  f.on_loop_void([&] { ASSERT_TRUE(f.ice().gather()); });
  ASSERT_TRUE(f.wait_gathered(5s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_GE(server.accepted(), 1);
  ASSERT_TRUE(f.wait_state(State::Failed, 1s));
  auto reason = f.on_loop([&] { return f.ice().failure_reason(); });
  EXPECT_NE(reason.find("no TURN allocation succeeded"), std::string::npos) << reason;
}

TEST(IceTransport, TurnsServerIsReachedThroughTlsNotPlaintext) {
  // libnice alone sends a plaintext Allocate to a turns: server. The tunnel
  // must send a TLS ClientHello instead (record type 22, version 3.x).
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  unsigned char first[2] = {0, 0};
  std::thread server([&] {
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) return;
    (void)!::recv(c, first, sizeof first, MSG_WAITALL);
    ::close(c);
  });
  {
    Config config;
    config.relay_only = true;
    config.gathering_timeout = 500ms;
    Server turn;
    turn.kind = Server::Kind::Turn;
    turn.transport = Server::Transport::Tls;
    turn.address = "127.0.0.1";
    turn.port = ntohs(addr.sin_port);
    turn.username = "user";
    turn.password = "pass";
    config.servers = {turn};
    Fixture f(config);
    f.on_loop_void([&] { ASSERT_TRUE(f.ice().gather()); });
    server.join();
    EXPECT_EQ(first[0], 0x16);
    EXPECT_EQ(first[1], 0x03);
    EXPECT_TRUE(f.wait_state(State::Failed, 5s));
  }
  ::close(fd);
}

}  // namespace
}  // namespace rtcmesh::ice
