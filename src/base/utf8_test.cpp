#include "base/utf8.hpp"

#include <gtest/gtest.h>

#include <string>

namespace rtcmesh::base {
namespace {

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii, long enough for the word loop"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_TRUE(is_valid_utf8("\xC2\x80"));                              // U+0080, smallest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));                          // U+D7FF, below surrogates
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));                          // U+E000, above them
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));                      // U+10FFFF, the last
  EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));                  // NUL is a character
}

TEST(Utf8, RejectsMalformedText) {
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // overlong 3-byte
  EXPECT_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // surrogate U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));  // lead byte past F4
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("\x80"));          // lone continuation
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));   // truncated at the end
  EXPECT_FALSE(is_valid_utf8("\xE2\x28\xA1"));  // bad continuation
}

TEST(Utf8, FindsTheBadByteAfterALongAsciiRun) {
  // The 8-byte ASCII skip must stop at the first non-ASCII byte wherever it falls.
  for (size_t prefix = 0; prefix < 20; ++prefix) {
    std::string ok(prefix, 'x');
    EXPECT_TRUE(is_valid_utf8(ok + "\xC3\xA9" + std::string(9, 'y'))) << prefix;
    EXPECT_FALSE(is_valid_utf8(ok + "\xC3" + std::string(9, 'y'))) << prefix;
    EXPECT_FALSE(is_valid_utf8(ok + "\xED\xA0\x80" + std::string(3, 'y'))) << prefix;
  }
}

}  // namespace
}  // namespace rtcmesh::base
