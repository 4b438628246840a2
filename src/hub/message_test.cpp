#include "hub/message.hpp"

#include <gtest/gtest.h>

namespace rtcmesh::hub {
namespace {

std::string code_of(std::string_view text) {
  ClientMessage m;
  MessageError e;
  return parse_client_message(text, m, e) ? "ok" : e.code;
}

TEST(HubMessage, ValidMessages) {
  ClientMessage m;
  MessageError e;
  ASSERT_TRUE(parse_client_message(
      R"({"type":"join","room":"demo","peer":"alice","metadata":{"name":"A"},"id":7})", m, e))
      << e.message;
  EXPECT_EQ(m.type, MessageType::Join);
  EXPECT_EQ(m.room, "demo");
  EXPECT_EQ(m.peer, "alice");
  EXPECT_EQ(m.metadata, R"({"name":"A"})");
  EXPECT_EQ(m.ref, "7");
  ASSERT_TRUE(parse_client_message(
      R"( { "type" : "offer", "to":"b\u006fb", "session":"k3J9x0", "sdp":"v=0\r\n", "id":"x" } )",
      m, e));
  EXPECT_EQ(m.to, "bob");
  EXPECT_EQ(m.ref, R"("x")");
  EXPECT_EQ(code_of(R"({"type":"candidate","to":"bob","session":"s1","candidate":null})"), "ok");
  EXPECT_EQ(
      code_of(R"({"type":"candidate","to":"bob","session":"s1","candidate":{"candidate":""}})"),
      "ok");
  EXPECT_EQ(code_of(R"({"type":"relay","to":"bob","data":{"type":"chat"}})"), "ok");
  EXPECT_EQ(code_of(R"({"type":"broadcast","data":{}})"), "ok");
  EXPECT_EQ(code_of(R"({"type":"announce","metadata":{"k":[1,2.5e3,true,null]}})"), "ok");
  EXPECT_EQ(code_of(R"({"type":"heartbeat","unknown":{"a":[]}})"), "ok");
  EXPECT_EQ(code_of(R"({"type":"leave"})"), "ok");
}

TEST(HubMessage, BadJson) {
  for (const char* text :
       {"", "nope", "[]", "\"str\"", "{", R"({"type":"leave"} x)", R"({"type":"leave",})",
        R"({"type":'leave'})", R"({"a":01})", R"({"a":"\ud800"})", R"({"a":"\udc00x"})",
        "{\"a\":\"\x01\"}", R"({"a":1.})", R"({"a":tru})", R"({"a":"\x"})"}) {
    EXPECT_EQ(code_of(text), "bad_json") << text;
  }
  std::string deep =
      R"({"type":"heartbeat","a":)" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(code_of(deep), "bad_json");
}

TEST(HubMessage, Rejections) {
  EXPECT_EQ(code_of(R"({"room":"x"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":5})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"hello"})"), "unknown_type");
  EXPECT_EQ(code_of(R"({"type":"heartbeat","from":"mallory"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"heartbeat","fr\u006fm":"mallory"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"heartbeat","type":"welcome"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"heartbeat","id":1.5})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"heartbeat","id":{}})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"join","room":"demo"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"join","room":"de mo","peer":"a"})"), "invalid_id");
  EXPECT_EQ(code_of(R"({"type":"join","room":"-x","peer":"a"})"), "invalid_id");
  EXPECT_EQ(code_of(R"({"type":"join","room":"x","peer":")" + std::string(65, 'a') + "\"}"),
            "invalid_id");
  EXPECT_EQ(code_of(R"({"type":"join","room":"x","peer":"a","metadata":[]})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"join","room":"x","peer":"a","metadata":{"k":")" +
                    std::string(5000, 'v') + "\"}}"),
            "bad_message");
  EXPECT_EQ(code_of(R"({"type":"offer","to":"bob","session":"s"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"offer","to":"bob","sdp":"v=0"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"offer","to":"bob","session":"s","sdp":5})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"candidate","to":"bob","session":"s","candidate":"x"})"),
            "bad_message");
  EXPECT_EQ(code_of(R"({"type":"relay","to":"bob"})"), "bad_message");
  EXPECT_EQ(code_of(R"({"type":"announce"})"), "bad_message");
}

TEST(HubMessage, RefSurvivesErrors) {
  ClientMessage m;
  MessageError e;
  EXPECT_FALSE(parse_client_message(R"({"type":"offer","id":42,"to":"bob"})", m, e));
  EXPECT_EQ(e.ref, "42");
  EXPECT_FALSE(parse_client_message(R"({"type":"nope","id":"r1"})", m, e));
  EXPECT_EQ(e.ref, R"("r1")");
}

}  // namespace
}  // namespace rtcmesh::hub
