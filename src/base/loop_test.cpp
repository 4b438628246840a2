#include "base/loop.hpp"
#include <gtest/gtest.h>
#include <atomic>
#include <future>
TEST(Loop, RunsPostedTasksInOrderAndTimers) {
  rtcmesh::base::Loop loop;
  std::vector<int> seen;
  for (int i = 0; i < 100; ++i) loop.post([&seen, i] { seen.push_back(i); });
  std::promise<void> fired;
  loop.run_sync([&] { loop.post_after(std::chrono::milliseconds(5), [&] { fired.set_value(); }); });
  EXPECT_EQ(fired.get_future().wait_for(std::chrono::seconds(2)), std::future_status::ready);
  loop.run_sync([] {});
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}
TEST(Loop, CancelledTimerDoesNotRun) {
  rtcmesh::base::Loop loop;
  std::atomic<bool> ran{false};
  loop.run_sync([&] {
    auto id = loop.post_after(std::chrono::milliseconds(1), [&] { ran = true; });
    loop.cancel(id);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  loop.run_sync([] {});
  EXPECT_FALSE(ran.load());
}
TEST(Loop, CanBeReleasedFromItsOwnThread) {
  auto loop = std::make_shared<rtcmesh::base::Loop>();
  std::promise<void> done;
  auto* raw = loop.get();
  // The task holds the last reference: the loop is destroyed on its own thread.
  raw->post([keep = std::move(loop), &done]() mutable {
    keep.reset();
    done.set_value();
  });
  EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(2)), std::future_status::ready);
}
TEST(Loop, KnowsWhichThreadsAreLoopThreads) {
  rtcmesh::base::Loop loop;
  EXPECT_FALSE(rtcmesh::base::Loop::on_any_loop_thread());
  bool inside = false;
  loop.run_sync(
      [&] { inside = rtcmesh::base::Loop::on_any_loop_thread() && loop.in_loop_thread(); });
  EXPECT_TRUE(inside);
}
