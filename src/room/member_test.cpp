// room::Member's wiring: hub client states and refusals reach the mesh and the
// caller. (Two members meshing through a real hub: tests/mesh, `rtcmesh peer`.)
#include "room/member.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <vector>

namespace rtcmesh::room {
namespace {

class Events {
 public:
  void add(const nlohmann::json& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
    }
    cv_.notify_all();
  }
  // The first event with "event" == type, waiting for it.
  std::optional<nlohmann::json> wait(const std::string& type) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<nlohmann::json> found;
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      for (const auto& e : events_) {
        if (e.value("event", "") == type) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<nlohmann::json> events_;
};

mesh::MeshOptions mesh_options() {
  mesh::MeshOptions o;
  o.room = "room-1";
  o.peer = "peer-a";
  o.ice_servers_from_hub = false;
  o.rtc.gather_addresses = {"127.0.0.1"};
  return o;
}

TEST(RoomMember, ClientOptionsComeFromTheMesh) {
  signaling::ClientOptions hub;
  hub.url = "ws://127.0.0.1:9/signaling";
  hub.room = "other";
  hub.peer = "other";
  hub.token = "t";
  hub.metadata = native_metadata("Ada");
  auto o = client_options_for(mesh_options(), hub);
  EXPECT_EQ(o.room, "room-1");
  EXPECT_EQ(o.peer, "peer-a");
  EXPECT_FALSE(o.fetch_ice_servers);
  EXPECT_EQ(o.url, hub.url);
  EXPECT_EQ(o.token, "t");
  EXPECT_EQ(o.metadata["name"], "Ada");
  EXPECT_EQ(o.metadata["kind"], "native");
  EXPECT_FALSE(native_metadata("").contains("name"));
}

TEST(RoomMember, AFatalRefusalIsAnErrorEventAndWakesTheCaller) {
  Events events;
  std::string woken;
  MemberCallbacks cb;
  cb.on_event = [&](const nlohmann::json& e) { events.add(e); };
  cb.on_fatal = [&](const std::string& text) { woken = text; };
  signaling::ClientOptions hub;
  hub.url = "ftp://127.0.0.1/";  // refused for good before any connection
  Member member(mesh_options(), hub, cb);
  EXPECT_FALSE(member.fatal());
  EXPECT_FALSE(member.wait_fatal(std::chrono::milliseconds(0)));
  member.join();
  ASSERT_TRUE(member.wait_fatal(std::chrono::seconds(10)));
  auto error = events.wait("error");
  ASSERT_TRUE(error);
  EXPECT_EQ((*error)["message"], *member.fatal());
  EXPECT_EQ(woken, *member.fatal());
  member.leave();
  member.leave();  // idempotent
}

TEST(RoomMember, HubStatesReachTheMeshAndDiagnosticsTheCaller) {
  // A bound, never listening port on 127.0.0.1: every connect is refused.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  Events events;
  std::mutex mu;
  std::vector<std::string> diagnostics;
  MemberCallbacks cb;
  cb.on_event = [&](const nlohmann::json& e) { events.add(e); };
  cb.on_diagnostic = [&](const std::string& text) {
    std::lock_guard<std::mutex> lock(mu);
    diagnostics.push_back(text);
  };
  signaling::ClientOptions hub;
  hub.url = "ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/signaling";
  hub.reconnect_interval = std::chrono::milliseconds(10);
  {
    Member member(mesh_options(), hub, cb);
    member.join();
    auto state = events.wait("hub");  // from the mesh: the client's state went through it
    ASSERT_TRUE(state);
    EXPECT_NE((*state)["state"], "connected");
    EXPECT_FALSE(member.fatal());
    member.mesh().list_peers();
    auto peers = events.wait("peers");
    ASSERT_TRUE(peers);
    EXPECT_TRUE((*peers)["peers"].empty());
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_FALSE(diagnostics.empty());
  ::close(s);
}

}  // namespace
}  // namespace rtcmesh::room
