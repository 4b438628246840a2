// ManualExecutor: the virtual-time executor the DTLS and SCTP tests run on.
#include "testing/manual_executor.hpp"

#include <gtest/gtest.h>
#include <sys/time.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using rtcmesh::testing::ManualExecutor;

int64_t wall_us() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec;
}

TEST(ManualExecutor, PostedTasksRunOnlyWhenAskedAndInOrder) {
  ManualExecutor executor;
  std::vector<int> order;
  executor.post([&] {
    order.push_back(1);
    executor.post([&] { order.push_back(3); });  // posted by a task: same round
  });
  executor.post([&] { order.push_back(2); });
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(executor.run_until_idle(), 3u);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(executor.elapsed(), 0ms);
  EXPECT_TRUE(executor.in_executor_thread());
  bool other_thread = true;
  std::thread([&] { other_thread = executor.in_executor_thread(); }).join();
  EXPECT_FALSE(other_thread);
}

TEST(ManualExecutor, AdvanceFiresTimersInDueOrderAtTheirDueTime) {
  ManualExecutor executor;
  const auto start = executor.now();
  std::vector<std::string> fired;
  auto record = [&](const std::string& name) {
    return
        [&, name] { fired.push_back(name + "@" + std::to_string((executor.now() - start) / 1ms)); };
  };
  executor.post_after(30ms, record("c"));
  executor.post_after(10ms, record("a"));
  executor.post_after(10ms, record("b"));  // same due time: in the order set
  auto cancelled = executor.post_after(20ms, record("x"));
  executor.post_after(10ms, [&] {
    // A timer set by a timer, due within the same advance().
    executor.post_after(5ms, record("d"));
  });
  executor.cancel(cancelled);
  executor.cancel(cancelled);  // unknown now: ignored
  executor.advance(9ms);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(executor.pending_timers(), 4u);  // c, a, b and the setter of d
  executor.advance(21ms);
  EXPECT_EQ(fired, (std::vector<std::string>{"a@10", "b@10", "d@15", "c@30"}));
  EXPECT_EQ(executor.now() - start, 30ms);
  EXPECT_EQ(executor.pending_timers(), 0u);
}

TEST(ManualExecutor, RunUntilStopsAtThePredicateOrTheLimit) {
  ManualExecutor executor;
  int ticks = 0;
  std::function<void()> tick = [&] {
    ++ticks;
    executor.post_after(10ms, tick);
  };
  executor.post_after(10ms, tick);
  EXPECT_TRUE(executor.run_until([&] { return ticks == 5; }, 1s));
  EXPECT_EQ(executor.elapsed(), 50ms);
  EXPECT_FALSE(executor.run_until([] { return false; }, 95ms));
  EXPECT_EQ(executor.elapsed(), 145ms);
  EXPECT_EQ(ticks, 14);
}

// OpenSSL and usrsctp read gettimeofday(): it follows the virtual time while
// an executor exists, and the real clock again afterwards.
TEST(ManualExecutor, WallClockFollowsVirtualTime) {
  int64_t before = 0;
  {
    ManualExecutor executor;
    before = wall_us();
    executor.advance(1h);
    int64_t after = wall_us();
    EXPECT_EQ(after - before, int64_t{3600} * 1'000'000);
  }
  int64_t real = wall_us();
  EXPECT_GE(real, before);
  EXPECT_LT(real - before, int64_t{600} * 1'000'000);
}

}  // namespace
