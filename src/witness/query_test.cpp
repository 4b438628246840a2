#include "witness/query.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace rtcmesh::witness {
namespace {

// A log of records built by hand: (type, ts_us, data, metadata).
struct Built {
  std::string bytes = std::string(kMagic);
  uint64_t seq = 0;
  Hash prev{};
  void add(std::string_view type, int64_t ts_us, const nlohmann::json& data,
           const nlohmann::json& metadata = nullptr) {
    std::string payload;
    RecordInput in{seq++, prev, "node-0123456789abcdef", type, ts_us, ts_us, &data, &metadata};
    ASSERT_TRUE(build_record(in, payload).ok());
    append_frame(payload, bytes);
    prev = leaf_hash(payload);
  }
};

std::vector<int64_t> seqs(std::string_view log, const QueryFilter& f, QueryResult* out = nullptr) {
  std::vector<int64_t> got;
  auto r = query_log(log, f, [&](const Record& rec, std::string_view payload) {
    EXPECT_FALSE(payload.empty());
    got.push_back(rec.seq);
  });
  EXPECT_EQ(r.matched, got.size());
  if (out) *out = r;
  return got;
}

TEST(WitnessQuery, SinceAcceptsUnixSecondsAndUtcTimes) {
  EXPECT_EQ(*parse_since("0"), 0);
  EXPECT_EQ(*parse_since("1700000000"), 1700000000LL * 1000000);
  EXPECT_EQ(*parse_since("2023-11-14T22:13:20Z"), 1700000000LL * 1000000);
  EXPECT_EQ(*parse_since("2023-11-14T22:13:20"), 1700000000LL * 1000000);
  for (const char* bad :
       {"", "yesterday", "2023-11-14", "2023-11-14T22:13:20+01:00", "-5", "99999999999999999999"}) {
    EXPECT_FALSE(parse_since(bad).ok()) << bad;
  }
  EXPECT_EQ(iso_time(1700000000LL * 1000000 + 42), "2023-11-14T22:13:20.000042Z");
}

TEST(WitnessQuery, FiltersByTypePeerAndTime) {
  Built log;
  log.add("webrtc_connection_state", 1000, {{"peer_id", "alice"}, {"to", "connected"}});  // 0
  log.add("hub_join", 2000, {{"room", "r"}}, {{"peer", "bob"}});                          // 1
  log.add("chat", 3000, {{"from", "alice"}, {"n", 1}});                                   // 2
  log.add("chat", 4000, {{"to", "bob"}, {"peer_id", 7}});                // 3: a non-string id
  log.add("webrtc_connection_state", 5000, {{"remote_peer", "alice"}});  // 4

  EXPECT_EQ(seqs(log.bytes, {}), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(seqs(log.bytes, {"chat", "", 0}), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(seqs(log.bytes, {"", "alice", 0}), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(seqs(log.bytes, {"", "bob", 0}), (std::vector<int64_t>{1, 3}));  // metadata counts too
  EXPECT_EQ(seqs(log.bytes, {"", "", 3000}), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(seqs(log.bytes, {"webrtc_connection_state", "alice", 2000}), (std::vector<int64_t>{4}));
  EXPECT_TRUE(seqs(log.bytes, {"", "carol", 0}).empty());
  EXPECT_TRUE(seqs(log.bytes, {"", "7", 0}).empty());
}

TEST(WitnessQuery, ReportsATornTailAndANonLog) {
  Built log;
  log.add("a", 1, {{"x", 1}});
  log.add("b", 2, {{"x", 2}});
  const size_t cut = log.bytes.size();
  log.bytes += std::string("\x40\x00\x00\x00partial", 11);
  QueryResult r;
  EXPECT_EQ(seqs(log.bytes, {}, &r), (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(r.is_log);
  EXPECT_EQ(r.stopped_at, cut);
  EXPECT_FALSE(r.stopped.empty());

  bool called = false;
  auto nolog =
      query_log("not a witness log", {}, [&](const Record&, std::string_view) { called = true; });
  EXPECT_FALSE(nolog.is_log);
  EXPECT_FALSE(called);
  QueryResult whole;
  seqs(log.bytes.substr(0, cut), {}, &whole);
  EXPECT_TRUE(whole.stopped.empty());
}

}  // namespace
}  // namespace rtcmesh::witness
