#include "observe/node.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <prometheus/registry.h>

#include "witness/fault_env.hpp"
#include "witness/query.hpp"
#include "witness/recorder.hpp"

namespace rtcmesh::observe {
namespace {

TEST(Node, HubAuditEventsBecomeWitnessRecords) {
  char tmpl[] = "/tmp/rtcmesh-node-XXXXXX";
  ASSERT_TRUE(::mkdtemp(tmpl));
  const std::string dir = tmpl;
  NodeOptions o;
  o.data_dir = dir;
  o.role = "hub";
  auto node = Node::open(o);
  ASSERT_TRUE(node.ok()) << node.error().message;
  EXPECT_TRUE((*node)->record_hub_event("hub_join", "room-1", "peer-a", "", true, 1));
  EXPECT_TRUE((*node)->record_hub_event("hub_leave", "room-1", "peer-a", "timeout", false, 1));
  EXPECT_TRUE((*node)->record_hub_event("hub_reject", "room-2", "", "room_full", false, 3));
  const std::string path = (*node)->recorder()->path();
  (*node)->close();

  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<nlohmann::json> data;
  witness::QueryFilter hub_only;
  auto r =
      witness::query_log(ss.str(), hub_only, [&](const witness::Record& rec, std::string_view) {
        if (rec.event_type.rfind("hub_", 0) == 0) data.push_back(rec.data);
      });
  EXPECT_TRUE(r.is_log);
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0],
            (nlohmann::json{{"room", "room-1"}, {"peer_id", "peer-a"}, {"resumed", true}}));
  EXPECT_EQ(data[1],
            (nlohmann::json{{"room", "room-1"}, {"peer_id", "peer-a"}, {"reason", "timeout"}}));
  EXPECT_EQ(data[2], (nlohmann::json{{"room", "room-2"}, {"reason", "room_full"}, {"count", 3}}));

  o.no_witness = true;
  auto quiet = Node::open(o);
  ASSERT_TRUE(quiet.ok());
  EXPECT_FALSE((*quiet)->record_hub_event("hub_join", "r", "p", "", false, 1));
  std::filesystem::remove_all(dir);
}

double gauge(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric.front().gauge.value;
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

TEST(Node, AFailingDiskShowsInTheMetricsAndTheNodeGoesOn) {
  char tmpl[] = "/tmp/rtcmesh-node-XXXXXX";
  ASSERT_TRUE(::mkdtemp(tmpl));
  const std::string dir = tmpl;
  witness::FaultEnv env;
  NodeOptions o;
  o.data_dir = dir;
  o.role = "peer";
  o.witness_env = &env;
  auto registry = std::make_shared<prometheus::Registry>();
  auto node = Node::open(o, registry);
  ASSERT_TRUE(node.ok()) << node.error().message;
  auto& recorder = *(*node)->recorder();
  ASSERT_TRUE(recorder.flush(std::chrono::seconds(10)));
  EXPECT_EQ(gauge(*registry, "witness_log_state"), 0);

  env.fail(witness::FaultEnv::Op::Sync, EIO, witness::FaultEnv::kForever);
  EXPECT_TRUE((*node)->record("after", {{"n", 1}}));
  EXPECT_FALSE(recorder.flush(std::chrono::seconds(10)));  // sealed: at once
  EXPECT_FALSE((*node)->record("later", {{"n", 2}}));
  (*node)->close();  // joins the writer: its report is in
  EXPECT_EQ(gauge(*registry, "witness_log_state"), 2);
  EXPECT_EQ(gauge(*registry, "witness_events_lost"), 1);
  EXPECT_EQ(gauge(*registry, "witness_io_errors"), 1);
  EXPECT_NE(recorder.io_error().find("Input/output error"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rtcmesh::observe
