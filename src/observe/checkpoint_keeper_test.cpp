#include "observe/checkpoint_keeper.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <vector>

#include "observe/node.hpp"

namespace rtcmesh::observe {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rtcmesh-keeper-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<Node> open_node(const std::string& dir) {
  NodeOptions o;
  o.data_dir = dir;
  o.role = "peer";
  auto node = Node::open(o);
  EXPECT_TRUE(node.ok()) << node.error().message;
  return node ? std::move(node.value()) : nullptr;
}

// The keeper's results, waited for by count.
class Results {
 public:
  void add(const nlohmann::json& e) {
    std::unique_lock<std::mutex> lock(mu_);
    events_.push_back(e);
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
  }
  std::vector<nlohmann::json> wait(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return events_.size() >= n; }));
    return events_;
  }
  void hold(bool on) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = on;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<nlohmann::json> events_;
  bool held_ = false;
};

TEST(CheckpointKeeper, KeepsGenuineCheckpointsAndRefusesForgedOnes) {
  TempDir ours, theirs;
  auto node = open_node(ours.path());
  auto peer = open_node(theirs.path());
  ASSERT_TRUE(node && peer);
  const auto cp = peer->latest_checkpoint();
  ASSERT_TRUE(cp.is_object());
  auto forged = cp;
  std::string sig = forged["sig"].get<std::string>();
  sig[0] = sig[0] == '0' ? '1' : '0';
  forged["sig"] = sig;

  Results results;
  {
    CheckpointKeeper keeper(*node, [&](const nlohmann::json& e) { results.add(e); });
    EXPECT_TRUE(keeper.add("bob", cp));
    EXPECT_TRUE(keeper.add("bob", cp));
    EXPECT_TRUE(keeper.add("mallory", forged));
    EXPECT_TRUE(keeper.add("eve", "not a checkpoint"));
  }  // the destructor handles what was queued
  auto events = results.wait(4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0]["event"], "witness-checkpoint");
  EXPECT_EQ(events[0]["peer"], "bob");
  EXPECT_EQ(events[0]["ok"], true);
  EXPECT_EQ(events[0]["note"], "kept");
  EXPECT_EQ(events[0]["origin"], peer->node_id());
  EXPECT_EQ(events[0]["size"], cp["size"]);
  EXPECT_EQ(events[1]["note"], "same as held");
  EXPECT_EQ(events[2]["peer"], "mallory");
  EXPECT_EQ(events[2]["ok"], false);
  EXPECT_FALSE(events[2]["error"].get<std::string>().empty());
  EXPECT_EQ(events[3]["ok"], false);
  EXPECT_TRUE(std::filesystem::exists(node->peer_checkpoint_path(peer->node_id())));
}

TEST(CheckpointKeeper, AFullQueueRefusesMore) {
  TempDir ours, theirs;
  auto node = open_node(ours.path());
  auto peer = open_node(theirs.path());
  ASSERT_TRUE(node && peer);
  const auto cp = peer->latest_checkpoint();
  Results results;
  results.hold(true);  // the worker stays inside its first result
  CheckpointKeeper keeper(
      *node, [&](const nlohmann::json& e) { results.add(e); }, 2);
  ASSERT_TRUE(keeper.add("p0", cp));
  results.wait(1);  // p0 has left the queue
  EXPECT_TRUE(keeper.add("p1", cp));
  EXPECT_TRUE(keeper.add("p2", cp));
  EXPECT_FALSE(keeper.add("p3", cp));
  results.hold(false);
  auto events = results.wait(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]["peer"], "p2");
}

}  // namespace
}  // namespace rtcmesh::observe
