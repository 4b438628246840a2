// The mesh's negotiation state machine and file framing, with meshes wired to
// an in-process fake hub (direct message passing) and real PeerConnections over
// UDP on 127.0.0.1.
#include "mesh/mesh.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <unistd.h>

#include "identity/crypto.hpp"

namespace rtcmesh::mesh {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Collects one mesh's events; waits on them.
struct Node {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<json> events;
  std::unique_ptr<Mesh> mesh;
  std::string id;

  void add(const json& e) {
    std::lock_guard<std::mutex> lock(mutex);
    events.push_back(e);
    cv.notify_all();
  }
  int count(const std::function<bool(const json&)>& pred) {
    std::lock_guard<std::mutex> lock(mutex);
    int n = 0;
    for (const auto& e : events) n += pred(e) ? 1 : 0;
    return n;
  }
  bool wait(const std::function<bool(const json&)>& pred, int n = 1,
            std::chrono::milliseconds timeout = 15s) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, timeout, [&] {
      int c = 0;
      for (const auto& e : events) c += pred(e) ? 1 : 0;
      return c >= n;
    });
  }
  std::vector<json> snapshot() {
    std::lock_guard<std::mutex> lock(mutex);
    return events;
  }
};

auto is(const std::string& event, const std::string& key = "", const std::string& value = "") {
  return [=](const json& e) {
    if (e.value("event", "") != event) return false;
    return key.empty() || (e.contains(key) && e[key] == value);
  };
}

// A hub in miniature: rooms of one, forwarding with "from", welcome and
// peer-joined. `intercept` may rewrite, hold or drop a message (return false).
class FakeHub {
 public:
  std::function<bool(const std::string& from, const json& m)> intercept;

  std::shared_ptr<Node> add(const std::string& id, MeshOptions options = {}) {
    auto node = std::make_shared<Node>();
    node->id = id;
    options.peer = id;
    options.rtc.gather_addresses = {"127.0.0.1"};
    if (options.download_dir == "rtcmesh-downloads") {
      options.download_dir = (fs::temp_directory_path() /
                              ("rtcmesh-mesh-test-" + id + "-" + std::to_string(::getpid())))
                                 .string();
    }
    std::weak_ptr<Node> weak = node;
    node->mesh = std::make_unique<Mesh>(
        options, [this, id](const json& m) { from(id, m); },
        [weak](const json& e) {
          if (auto n = weak.lock()) n->add(e);
        });
    std::lock_guard<std::mutex> lock(mutex_);
    nodes_[id] = node;
    return node;
  }

  // Joins `id`: welcome to it listing the others, peer-joined to the others.
  void join(const std::string& id, bool announce = true) {
    std::vector<std::shared_ptr<Node>> others;
    std::shared_ptr<Node> me;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      me = nodes_.at(id);
      joined_.insert(id);
      for (const auto& j : joined_) {
        if (j != id) others.push_back(nodes_.at(j));
      }
    }
    json peers = json::array();
    for (const auto& o : others) peers.push_back({{"peer", o->id}, {"metadata", json::object()}});
    me->mesh->on_hub_state("connected");
    me->mesh->on_hub_message({{"type", "welcome"},
                              {"room", "demo"},
                              {"peer", id},
                              {"peers", peers},
                              {"resume", "r-" + id},
                              {"resumed", false}});
    if (!announce) return;
    for (const auto& o : others)
      o->mesh->on_hub_message(
          {{"type", "peer-joined"}, {"peer", id}, {"metadata", json::object()}});
  }
  void mark_joined(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    joined_.insert(id);
  }
  void remove(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    joined_.erase(id);
  }
  void deliver(const std::string& to, const json& m) {
    std::shared_ptr<Node> target;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = nodes_.find(to);
      if (it == nodes_.end() || !joined_.count(to)) return;
      target = it->second;
    }
    target->mesh->on_hub_message(m);
  }
  int forwarded(const std::string& type) {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_[type];
  }

 private:
  void from(const std::string& id, const json& m) {
    if (intercept && !intercept(id, m)) return;
    json out = m;
    out["from"] = id;
    std::string to = m.value("to", "");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++counts_[m.value("type", "")];
      if (!joined_.count(to)) {
        auto sender = nodes_.find(id);
        if (sender != nodes_.end()) {
          sender->second->mesh->on_hub_message(
              {{"type", "error"}, {"code", "target_offline"}, {"to", to}});
        }
        return;
      }
    }
    deliver(to, out);
  }

  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Node>> nodes_;
  std::set<std::string> joined_;
  std::map<std::string, int> counts_;
};

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  crypto::Sha256 h;
  std::vector<char> buf(1 << 16);
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0) h.update(buf.data(), in.gcount());
  return crypto::to_hex(h.finish());
}

TEST(MeshHelpers, SafeFileNameStripsPaths) {
  EXPECT_EQ(safe_file_name("report.pdf"), "report.pdf");
  EXPECT_EQ(safe_file_name("../../etc/passwd"), "passwd");
  EXPECT_EQ(safe_file_name("C:\\Users\\x\\evil.exe"), "evil.exe");
  EXPECT_EQ(safe_file_name(".."), "file");
  EXPECT_EQ(safe_file_name(""), "file");
  EXPECT_EQ(safe_file_name("/"), "file");
  EXPECT_EQ(safe_file_name(".bashrc"), "bashrc");
  EXPECT_EQ(safe_file_name(std::string("a\nb\x01.txt")), "ab.txt");
}

TEST(MeshHelpers, UniquePathAddsNumberedSuffix) {
  auto dir = fs::temp_directory_path() / ("rtcmesh-unique-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_EQ(unique_path(dir.string(), "a.txt"), (dir / "a.txt").string());
  std::ofstream(dir / "a.txt") << "x";
  EXPECT_EQ(unique_path(dir.string(), "a.txt"), (dir / "a-1.txt").string());
  std::ofstream(dir / "a-1.txt") << "x";
  EXPECT_EQ(unique_path(dir.string(), "a.txt"), (dir / "a-2.txt").string());
  std::ofstream(dir / "noext") << "x";
  EXPECT_EQ(unique_path(dir.string(), "noext"), (dir / "noext-1").string());
  fs::remove_all(dir);
}

TEST(MeshHelpers, RandomIdsFollowTheIdRule) {  // the rule itself: src/base/id_test.cpp
  auto id = random_id(16);
  EXPECT_EQ(id.size(), 16u);
  EXPECT_TRUE(valid_id(id));
}

TEST(Mesh, ThreePeersFormAFullMeshAndChat) {
  FakeHub hub;
  auto a = hub.add("alice");
  auto b = hub.add("bob");
  auto c = hub.add("carol");
  hub.join("alice");
  hub.join("bob");
  hub.join("carol");
  for (auto* n : {a.get(), b.get(), c.get()}) {
    ASSERT_TRUE(n->wait(is("channel-open"), 2)) << n->id;
  }
  a->mesh->chat("hi from alice");
  b->mesh->chat("hi from bob");
  c->mesh->chat("hi from carol");
  for (auto* n : {a.get(), b.get(), c.get()}) {
    ASSERT_TRUE(n->wait(is("chat"), 2)) << n->id;
    EXPECT_EQ(
        n->count([&](const json& e) { return e["event"] == "chat" && e["relayed"] == false; }), 2);
    EXPECT_EQ(n->count(is("chat", "from", n->id)), 0);
  }
  // Newcomers offer: alice (first) never offered.
  EXPECT_EQ(hub.forwarded("offer"), 3);
  auto peers = a->mesh->peers();
  ASSERT_EQ(peers.size(), 2u);
  for (const auto& p : peers) {
    EXPECT_TRUE(p.channel_open);
    EXPECT_EQ(p.state, "connected");
    EXPECT_EQ(p.pair, "host/host");
  }
}

TEST(Mesh, GlareLeavesExactlyOneConnection) {
  for (int round = 0; round < 3; ++round) {
    FakeHub hub;
    auto a = hub.add("alice");
    auto b = hub.add("bob");
    // Both get the other in their welcome at once: both offer.
    hub.mark_joined("alice");
    hub.mark_joined("bob");
    hub.join("alice", false);
    hub.join("bob", false);
    ASSERT_TRUE(a->wait(is("channel-open"))) << round;
    ASSERT_TRUE(b->wait(is("channel-open"))) << round;
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(hub.forwarded("offer"), 2);
    auto pa = a->mesh->peers();
    auto pb = b->mesh->peers();
    ASSERT_EQ(pa.size(), 1u);
    ASSERT_EQ(pb.size(), 1u);
    EXPECT_EQ(pa[0].session, pb[0].session);
    EXPECT_TRUE(pa[0].channel_open);
    EXPECT_EQ(a->count(is("channel-open")), 1);
    EXPECT_EQ(b->count(is("channel-open")), 1);
    EXPECT_EQ(a->count(is("channel-closed")), 0);
    // alice sorts lower: she is impolite, her session survives.
    EXPECT_EQ(a->count(is("connection", "state", "closed")), 0);
    EXPECT_EQ(b->count(is("connection", "state", "closed")), 1);
  }
}

TEST(Mesh, EarlyCandidatesAreQueuedUntilTheOffer) {
  FakeHub hub;
  std::mutex held_mutex;
  std::vector<json> held;
  // Hold bob's offer until his end-of-candidates went through, and drop
  // alice's own candidates: the connection can only form from bob's queued ones.
  hub.intercept = [&](const std::string& from, const json& m) {
    std::string type = m.value("type", "");
    if (from == "bob" && type == "offer") {
      std::lock_guard<std::mutex> lock(held_mutex);
      held.push_back(m);
      return false;
    }
    if (from == "alice" && type == "candidate") return false;
    return true;
  };
  auto a = hub.add("alice");
  auto b = hub.add("bob");
  hub.join("alice");
  hub.join("bob");
  std::this_thread::sleep_for(500ms);  // bob gathers and trickles meanwhile
  json offer;
  {
    std::lock_guard<std::mutex> lock(held_mutex);
    ASSERT_EQ(held.size(), 1u);
    offer = held[0];
  }
  EXPECT_GE(hub.forwarded("candidate"), 2);  // at least one candidate + end-of-candidates
  offer["from"] = "bob";
  hub.deliver("alice", offer);
  ASSERT_TRUE(a->wait(is("channel-open")));
  ASSERT_TRUE(b->wait(is("channel-open")));
}

TEST(Mesh, NewSessionFromAKnownPeerReplacesTheConnection) {
  FakeHub hub;
  auto a = hub.add("alice");
  auto b = hub.add("bob");
  hub.join("alice");
  hub.join("bob");
  ASSERT_TRUE(a->wait(is("channel-open")));
  auto first = a->mesh->peers().at(0).session;
  // bob's process restarts: a fresh mesh with the same id offers a new session.
  b->mesh->close();
  hub.remove("bob");
  auto b2 = hub.add("bob");
  hub.join("bob", false);
  ASSERT_TRUE(b2->wait(is("channel-open")));
  ASSERT_TRUE(a->wait(is("channel-open"), 2));
  auto peers = a->mesh->peers();
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_NE(peers[0].session, first);
  EXPECT_TRUE(peers[0].channel_open);
  EXPECT_EQ(a->count(is("channel-closed")), 1);
  b2->mesh->chat("back");
  ASSERT_TRUE(a->wait(is("chat", "text", "back")));
}

TEST(Mesh, ChannelsSurviveTheHubAndRejoinDoesNotDuplicate) {
  FakeHub hub;
  auto a = hub.add("alice");
  auto b = hub.add("bob");
  hub.join("alice");
  hub.join("bob");
  ASSERT_TRUE(a->wait(is("channel-open")));
  ASSERT_TRUE(b->wait(is("channel-open")));
  auto session = a->mesh->peers().at(0).session;
  hub.remove("alice");
  hub.remove("bob");
  a->mesh->on_hub_state("disconnected");
  b->mesh->on_hub_state("disconnected");
  a->mesh->chat("while the hub is down");
  ASSERT_TRUE(b->wait(is("chat", "text", "while the hub is down")));
  // The hub is back; both re-join (bob's welcome lists alice).
  hub.join("alice");
  hub.join("bob");
  ASSERT_TRUE(b->wait(is("joined"), 2));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(hub.forwarded("offer"), 1);
  EXPECT_EQ(a->mesh->peers().at(0).session, session);
  EXPECT_EQ(b->mesh->peers().at(0).session, session);
  EXPECT_EQ(a->count(is("channel-closed")), 0);
}

TEST(Mesh, FileTransferArrivesIntactWithNumberedSuffix) {
  FakeHub hub;
  auto a = hub.add("alice");
  auto b = hub.add("bob");
  hub.join("alice");
  hub.join("bob");
  ASSERT_TRUE(a->wait(is("channel-open")));
  auto dir = fs::temp_directory_path() / ("rtcmesh-send-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto src = dir / "data.bin";
  {
    std::mt19937 rng(7);
    std::ofstream out(src, std::ios::binary);
    std::vector<char> buf(3 * 1024 * 1024 + 12345);
    for (auto& ch : buf) ch = static_cast<char>(rng());
    out.write(buf.data(), buf.size());
  }
  auto want = sha256_file(src);
  a->mesh->send_file("bob", src.string());
  ASSERT_TRUE(b->wait(is("file-received"), 1, 30s));
  ASSERT_TRUE(a->wait(is("file-sent"), 1, 30s));
  a->mesh->send_file("bob", src.string());
  ASSERT_TRUE(b->wait(is("file-received"), 2, 30s));
  ASSERT_TRUE(a->wait(is("file-sent"), 2, 30s));
  std::vector<std::string> paths;
  for (const auto& e : b->snapshot()) {
    if (e["event"] != "file-received") continue;
    EXPECT_TRUE(e["ok"].get<bool>());
    EXPECT_EQ(e["sha256"], want);
    EXPECT_EQ(e["name"], "data.bin");
    paths.push_back(e["path"]);
  }
  for (const auto& e : a->snapshot()) {
    if (e["event"] == "file-sent") {
      EXPECT_TRUE(e["ok"].get<bool>());
    }
  }
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(fs::path(paths[0]).filename(), "data.bin");
  EXPECT_EQ(fs::path(paths[1]).filename(), "data-1.bin");
  for (const auto& p : paths) EXPECT_EQ(sha256_file(p), want);
  fs::remove_all(dir);
  fs::remove_all(fs::path(paths[0]).parent_path());
}

TEST(Mesh, SendErrorsAreReported) {
  FakeHub hub;
  auto a = hub.add("alice");
  auto b = hub.add("bob");
  hub.join("alice");
  hub.join("bob");
  ASSERT_TRUE(a->wait(is("channel-open")));
  a->mesh->send_file("nobody", "/etc/hostname");
  ASSERT_TRUE(a->wait(is("error")));
  EXPECT_NE(a->snapshot().back()["message"].get<std::string>().find("unknown peer"),
            std::string::npos);
  a->mesh->send_file("bob", "/nonexistent/file");
  ASSERT_TRUE(a->wait(is("error"), 2));
  EXPECT_NE(a->snapshot().back()["message"].get<std::string>().find("cannot read"),
            std::string::npos);
}

TEST(Mesh, HubRelayOnlyWhenAllowed) {
  FakeHub hub;
  MeshOptions relay_only;
  relay_only.rtc.ice_transport_policy = IceTransportPolicy::Relay;  // and no TURN: never connects
  relay_only.relay_after = 300ms;
  MeshOptions allowed;
  allowed.allow_hub_relay = true;
  allowed.relay_after = 300ms;
  auto a = hub.add("alice", allowed);
  auto b = hub.add("bob", relay_only);
  hub.join("alice");
  hub.join("bob");
  std::this_thread::sleep_for(600ms);
  a->mesh->chat("through the hub");
  ASSERT_TRUE(b->wait(is("chat")));
  EXPECT_EQ(b->snapshot().back()["relayed"], true);
  // bob did not allow relaying: his chat is not delivered, and he is told so.
  b->mesh->chat("not relayed");
  ASSERT_TRUE(b->wait(is("error")));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(a->count(is("chat")), 0);
  EXPECT_EQ(hub.forwarded("relay"), 1);
}

}  // namespace
}  // namespace rtcmesh::mesh
