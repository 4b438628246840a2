#include "identity/identity.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace rtcmesh::identity {
namespace {

// RFC 8032 section 7.1, TEST 1 (empty message).
TEST(Ed25519, Rfc8032Test1) {
  auto seed =
      crypto::from_hex<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  ASSERT_TRUE(seed);
  auto id = Identity::from_seed(*seed);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ((*id)->public_key_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  auto sig = (*id)->sign("");
  EXPECT_EQ(crypto::to_hex(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
            "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  auto v = crypto::Ed25519Verifier::from_raw((*id)->public_key());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->verify("", sig));
  sig[5] ^= 1;
  EXPECT_FALSE(v->verify("", sig));
  EXPECT_EQ((*id)->node_id(), node_id_for((*id)->public_key()));
  EXPECT_EQ((*id)->node_id().size(), 5u + 16u);
  // The PEM export reads back to the same key.
  auto pem = crypto::Ed25519Verifier::from_text((*id)->public_key_pem());
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(pem->raw(), (*id)->public_key());
}

TEST(Sha256, KnownAnswers) {
  EXPECT_EQ(crypto::to_hex(crypto::sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(crypto::to_hex(crypto::sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, StreamedInPiecesEqualsOneShotAndFinishResets) {
  // The mesh hashes file transfers chunk by chunk with one Sha256 object.
  const std::string msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // FIPS 180-2
  crypto::Sha256 h;
  for (size_t i = 0; i < msg.size(); i += 7) h.update(std::string_view(msg).substr(i, 7));
  EXPECT_EQ(crypto::to_hex(h.finish()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  h.update("abc");  // finish() reset the state: a new message
  EXPECT_EQ(h.finish(), crypto::sha256("abc"));
  EXPECT_EQ(h.finish(), crypto::sha256(""));
}

TEST(Identity, CreatedOnceWith0600AndRefusedWhenOpen) {
  char tmpl[] = "/tmp/rtcmesh-id-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  const std::string dir = std::string(tmpl) + "/sub";
  auto a = Identity::load_or_create(dir);
  ASSERT_TRUE(a.ok()) << a.error().message;
  struct stat st {};
  ASSERT_EQ(stat((dir + "/identity.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = Identity::load_or_create(dir);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*a)->node_id(), (*b)->node_id());
  chmod((dir + "/identity.key").c_str(), 0640);
  auto c = Identity::load_or_create(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("too open"), std::string::npos);
  std::string cmd = std::string("rm -rf ") + tmpl;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
}

}  // namespace
}  // namespace rtcmesh::identity
