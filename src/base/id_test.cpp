#include "base/id.hpp"

#include <gtest/gtest.h>

#include <string>

namespace rtcmesh::base {
namespace {

TEST(Id, AcceptsTheProtocolAlphabet) {
  EXPECT_TRUE(is_valid_id("a"));
  EXPECT_TRUE(is_valid_id("alice"));
  EXPECT_TRUE(is_valid_id("peer-1.x_y"));
  EXPECT_TRUE(is_valid_id("0A.b-c_d"));
  EXPECT_TRUE(is_valid_id(std::string(64, 'a')));
}

TEST(Id, RejectsEverythingElse) {
  EXPECT_FALSE(is_valid_id(""));
  EXPECT_FALSE(is_valid_id(std::string(65, 'a')));
  EXPECT_FALSE(is_valid_id(".a"));  // the first character is alphanumeric
  EXPECT_FALSE(is_valid_id("-a"));
  EXPECT_FALSE(is_valid_id("_a"));
  EXPECT_FALSE(is_valid_id("a b"));
  EXPECT_FALSE(is_valid_id("a/b"));
  EXPECT_FALSE(is_valid_id("a\nb"));
  EXPECT_FALSE(is_valid_id("caf\xC3\xA9"));  // ASCII only
  EXPECT_FALSE(is_valid_id(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace rtcmesh::base
