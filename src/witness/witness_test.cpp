#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/crc32c.hpp"
#include "witness/canonical_json.hpp"
#include "witness/format.hpp"
#include "witness/merkle.hpp"
#include "witness/recorder.hpp"
#include "witness/verifier.hpp"

namespace rtcmesh::witness {
namespace {

std::string unhex(std::string_view h) {
  std::string out(h.size() / 2, '\0');
  crypto::from_hex_into(h, reinterpret_cast<uint8_t*>(out.data()), out.size());
  return out;
}

// transparency-dev/merkle rfc6962 hasher vectors and the certificate-transparency
// reference roots for prefixes of its 8 test leaves.
TEST(Merkle, Rfc6962KnownAnswers) {
  EXPECT_EQ(crypto::to_hex(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(crypto::to_hex(leaf_hash("")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  EXPECT_EQ(crypto::to_hex(leaf_hash("L123456")),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56");
  Hash l{}, r{};
  std::memcpy(l.data(), "N123", 4);
  std::memcpy(r.data(), "N456", 4);
  // node() takes 32-byte hashes; the vector hashes the raw strings, so rebuild it.
  crypto::Sha256 h;
  h.update("\x01N123N456", 9);
  EXPECT_EQ(crypto::to_hex(h.finish()),
            "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb");

  const char* leaves[] = {"",
                          "00",
                          "10",
                          "2021",
                          "3031",
                          "40414243",
                          "5051525354555657",
                          "606162636465666768696a6b6c6d6e6f"};
  const char* roots[] = {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
                         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
                         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
                         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
                         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  CompactTree tree;
  std::vector<Hash> hashes;
  EXPECT_EQ(tree.root(), empty_root());
  for (int i = 0; i < 8; ++i) {
    hashes.push_back(leaf_hash(unhex(leaves[i])));
    tree.append(hashes.back());
    EXPECT_EQ(crypto::to_hex(tree.root()), roots[i]) << "size " << i + 1;
    EXPECT_EQ(crypto::to_hex(reference_root(hashes)), roots[i]);
  }
}

TEST(Merkle, CompactTreeMatchesDefinition) {
  CompactTree tree;
  std::vector<Hash> hashes;
  for (int i = 0; i < 70; ++i) {
    hashes.push_back(leaf_hash(std::to_string(i)));
    tree.append(hashes.back());
    ASSERT_EQ(tree.root(), reference_root(hashes)) << i;
  }
}

TEST(Crc32c, KnownAnswer) {
  EXPECT_EQ(base::crc32c("123456789", 9), 0xE3069283u);  // the CRC-32C check value
  std::string zeros(32, '\0');
  EXPECT_EQ(base::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
}

TEST(CanonicalJson, SortedCompactIntegersOnly) {
  auto j = nlohmann::json::parse(R"({"b":[1,{"z":null,"a":true}],"a":"x\u000f\n\"\\/€","c":-5})");
  auto c = canonical(j);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*c, "{\"a\":\"x\\u000f\\n\\\"\\\\/€\",\"b\":[1,{\"a\":true,\"z\":null}],\"c\":-5}");
  // Same value built another way -> the same bytes.
  nlohmann::json k;
  k["c"] = -5;
  k["b"] = nlohmann::json::array({1, {{"a", true}, {"z", nullptr}}});
  k["a"] = "x\x0f\n\"\\/€";
  EXPECT_EQ(*canonical(k), *c);
  EXPECT_FALSE(canonical(nlohmann::json::parse("{\"a\":1.5}")).ok());
  EXPECT_FALSE(canonical(nlohmann::json{{"a", int64_t{1} << 53}}).ok());
  EXPECT_TRUE(canonical(nlohmann::json{{"a", (int64_t{1} << 53) - 1}}).ok());
  EXPECT_FALSE(canonical(nlohmann::json{{"a", std::string("\xff")}}).ok());
  EXPECT_FALSE(canonical(nlohmann::json{{"\xc3\xa9", 1}}).ok());  // keys are ASCII
}

TEST(Format, SameEventSameBytes) {
  nlohmann::json data = {{"peer_id", "p"}, {"state", "connected"}};
  RecordInput in{3,     Hash{}, "node-0000000000000000", "webrtc_connection_state", 1, 2,
                 &data, nullptr};
  std::string a, b;
  ASSERT_TRUE(build_record(in, a).ok());
  ASSERT_TRUE(build_record(in, b).ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a,
            "{\"agent\":\"node-0000000000000000\",\"data\":{\"peer_id\":\"p\",\"state\":"
            "\"connected\"},\"event_type\":\"webrtc_connection_state\",\"metadata\":{},"
            "\"mono_us\":2,\"prev\":\"" +
                std::string(64, '0') + "\",\"seq\":3,\"ts_us\":1,\"v\":1}");
  auto r = parse_record(a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->seq, 3);
  EXPECT_EQ(r->event_type, "webrtc_connection_state");
}

// A real log written by the recorder, then mutated in memory.
class LogMutation : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rtcmesh-wit-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    id_ = *identity::Identity::generate();
    RecorderOptions opt;
    opt.checkpoint_every = 5;
    auto rec = Recorder::open(dir_ + "/log", id_, opt);
    ASSERT_TRUE(rec.ok()) << rec.error().message;
    for (int i = 0; i < 12; ++i) ASSERT_TRUE((*rec)->record("e", {{"n", i}}).has_value());
    (*rec)->close();
    std::ifstream in(dir_ + "/log", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    file_ = ss.str();
    FrameReader reader(file_);
    for (Frame f = reader.next(); f.status == Frame::Status::Ok; f = reader.next()) {
      frames_.emplace_back(file_.substr(f.offset, kFrameHeader + f.payload.size()));
    }
  }
  void TearDown() override { ASSERT_EQ(std::system(("rm -rf " + dir_).c_str()), 0); }
  std::string join(const std::vector<std::string>& frames) {
    std::string out(kMagic);
    for (const auto& f : frames) out += f;
    return out;
  }
  std::string dir_, file_;
  std::shared_ptr<identity::Identity> id_;
  std::vector<std::string> frames_;
};

TEST_F(LogMutation, ValidAndEveryDamageNamed) {
  auto ok = verify_log(file_);
  ASSERT_TRUE(ok.valid()) << ok.text();
  EXPECT_EQ(ok.events, 13u);  // 12 + witness_log_created
  ASSERT_TRUE(ok.latest);

  // Flip each byte of a record's payload: always "modified" at that record.
  const size_t target = 4;
  size_t start = kMagic.size();
  for (size_t i = 0; i < target; ++i) start += frames_[i].size();
  for (size_t b = kFrameHeader; b < frames_[target].size(); ++b) {
    std::string m = file_;
    m[start + b] ^= 0x20;
    auto r = verify_log(m);
    ASSERT_EQ(r.damage, Damage::Modified) << b << r.text();
    EXPECT_EQ(r.seq, static_cast<int64_t>(target));
  }
  auto del = frames_;
  del.erase(del.begin() + 3);
  EXPECT_EQ(verify_log(join(del)).damage, Damage::Deleted);
  auto dup = frames_;
  dup.insert(dup.begin() + 4, frames_[3]);
  EXPECT_EQ(verify_log(join(dup)).damage, Damage::Inserted);
  auto swp = frames_;
  std::swap(swp[2], swp[3]);
  EXPECT_EQ(verify_log(join(swp)).damage, Damage::Reordered);
  EXPECT_EQ(verify_log(file_.substr(0, file_.size() - 3)).damage, Damage::Torn);
  EXPECT_EQ(verify_log("garbage").damage, Damage::Corrupt);

  // Truncation: undetectable alone, detected against a checkpoint held elsewhere.
  auto cut = frames_;
  cut.resize(cut.size() - 3);
  EXPECT_TRUE(verify_log(join(cut)).valid());
  VerifyOptions with_cp;
  with_cp.checkpoints.push_back(*ok.latest);
  EXPECT_EQ(verify_log(join(cut), with_cp).damage, Damage::Truncated);
  EXPECT_TRUE(verify_log(file_, with_cp).valid());

  // Another key: pinned key and foreign checkpoint both say "wrong key".
  auto other = *identity::Identity::generate();
  VerifyOptions pinned;
  pinned.key = other->public_key();
  EXPECT_EQ(verify_log(file_, pinned).damage, Damage::WrongKey);
  Checkpoint forged = *ok.latest;
  forged.key = other->public_key();
  forged.origin = other->node_id();
  forged.sig = other->sign(forged.note());
  VerifyOptions foreign;
  foreign.checkpoints.push_back(forged);
  EXPECT_EQ(verify_log(file_, foreign).damage, Damage::WrongKey);
  // A peer's checkpoint, as received over a data channel.
  auto peer_cp = parse_peer_checkpoint(ok.latest->export_json().dump());
  ASSERT_TRUE(peer_cp.ok()) << peer_cp.error().message;
  EXPECT_TRUE(
      parse_peer_checkpoint(forged.export_json().dump()).ok());  // valid, just not this log's
  auto liar = forged.export_json();
  liar["origin"] = ok.agent;  // claims another node's id
  EXPECT_FALSE(parse_peer_checkpoint(liar.dump()).ok());
  // A checkpoint with a tampered signature.
  Checkpoint bad = *ok.latest;
  bad.sig[0] ^= 1;
  VerifyOptions badcp;
  badcp.checkpoints.push_back(bad);
  EXPECT_EQ(verify_log(file_, badcp).damage, Damage::BadSignature);
}

TEST(Recorder, ReopenAppendsAndRepairsTornTail) {
  char tmpl[] = "/tmp/rtcmesh-wit-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string path = std::string(tmpl) + "/log";
  auto id = *identity::Identity::generate();
  {
    auto rec = Recorder::open(path, id);
    ASSERT_TRUE(rec.ok());
    auto t = (*rec)->record("a", {{"x", 1}});
    ASSERT_TRUE(t);
    EXPECT_TRUE((*rec)->wait_durable(*t, std::chrono::seconds(5)));
    auto second = Recorder::open(path, id);  // one writer per log
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.error().message.find("in use"), std::string::npos);
    EXPECT_FALSE((*rec)->record("bad", {{"f", 1.5}}) ==
                 std::nullopt);  // encoded as an error record
  }
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << std::string("\x40\x00\x00\x00garbage", 11);  // a torn append
  }
  {
    auto rec = Recorder::open(path, id);
    ASSERT_TRUE(rec.ok()) << rec.error().message;
    EXPECT_EQ((*rec)->open_info().truncated_bytes, 11u);
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = verify_log(ss.str());
  EXPECT_TRUE(r.valid()) << r.text();
  EXPECT_NE(ss.str().find("witness_recovery"), std::string::npos);
  EXPECT_NE(ss.str().find("witness_unencodable_event"), std::string::npos);
  auto other = *identity::Identity::generate();
  EXPECT_FALSE(Recorder::open(path, other).ok());
  ASSERT_EQ(std::system((std::string("rm -rf ") + tmpl).c_str()), 0);
}

TEST(Recorder, FullQueueRejectsAndCounts) {
  char tmpl[] = "/tmp/rtcmesh-wit-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string path = std::string(tmpl) + "/log";
  RecorderOptions opt;
  opt.queue_capacity = 4;
  std::atomic<int> observed{0};
  opt.on_recorded = [&](std::string_view type, std::chrono::microseconds latency) {
    EXPECT_EQ(type, "e");
    EXPECT_GE(latency.count(), 0);
    ++observed;
  };
  auto rec = Recorder::open(path, *identity::Identity::generate(), opt);
  ASSERT_TRUE(rec.ok());
  int rejected = 0;
  for (int i = 0; i < 2000; ++i) rejected += (*rec)->record("e", {{"n", i}}) ? 0 : 1;
  (*rec)->close();
  EXPECT_GT(rejected, 0);
  EXPECT_EQ((*rec)->stats().rejected, static_cast<uint64_t>(rejected));
  EXPECT_EQ(static_cast<uint64_t>(observed.load()), (*rec)->stats().accepted);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_TRUE(verify_log(ss.str()).valid());
  EXPECT_NE(ss.str().find("witness_events_dropped"), std::string::npos);
  ASSERT_EQ(std::system((std::string("rm -rf ") + tmpl).c_str()), 0);
}

TEST(Privacy, SaltedAddressHash) {
  auto a = salted_address_hash("s1", "192.0.2.1:5000");
  EXPECT_EQ(a, salted_address_hash("s1", "192.0.2.1:5000"));
  EXPECT_NE(a, salted_address_hash("s2", "192.0.2.1:5000"));
  EXPECT_EQ(a.find("192"), std::string::npos);
  EXPECT_EQ(random_salt().size(), 32u);
}

}  // namespace
}  // namespace rtcmesh::witness
