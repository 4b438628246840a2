#include "base/json_string.hpp"

#include <gtest/gtest.h>

namespace rtcmesh::base {
namespace {

std::string literal(std::string_view s) {
  std::string out = "prefix:";
  append_json_string(out, s);
  return out;
}

TEST(JsonString, AppendsAQuotedLiteral) {
  EXPECT_EQ(literal(""), "prefix:\"\"");
  EXPECT_EQ(literal("plain text"), "prefix:\"plain text\"");
  EXPECT_EQ(literal("a\"b\\c/d"), R"(prefix:"a\"b\\c/d")");  // '/' is not escaped
}

TEST(JsonString, ControlCharactersUseTheShortEscapesElseU00xx) {
  EXPECT_EQ(literal("\b\t\n\f\r"), R"(prefix:"\b\t\n\f\r")");
  EXPECT_EQ(literal(std::string("\x00\x01\x1f", 3)), R"(prefix:"\u0000\u0001\u001f")");
  EXPECT_EQ(literal("\x7f"), "prefix:\"\x7f\"");  // DEL is not a JSON control character
}

TEST(JsonString, NonAsciiBytesPassThrough) {
  EXPECT_EQ(literal("\xC3\xA9\xF0\x9F\x98\x80"), "prefix:\"\xC3\xA9\xF0\x9F\x98\x80\"");
}

}  // namespace
}  // namespace rtcmesh::base
