#include "hub/ws_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rtcmesh::hub {
namespace {

struct Recorder : WsSink {
  std::vector<std::string> texts, binaries, pings, pongs;
  std::vector<uint16_t> closes;
  bool on_text(std::string_view m) override {
    texts.emplace_back(m);
    return true;
  }
  bool on_binary(std::string_view m) override {
    binaries.emplace_back(m);
    return true;
  }
  bool on_ping(std::string_view p) override {
    pings.emplace_back(p);
    return true;
  }
  bool on_pong(std::string_view p) override {
    pongs.emplace_back(p);
    return true;
  }
  bool on_close(uint16_t code, std::string_view) override {
    closes.push_back(code);
    return true;
  }
};

// A client frame: masked with a fixed key.
std::string client_frame(uint8_t first_byte, std::string_view payload, bool mask = true) {
  std::string f;
  f.push_back(static_cast<char>(first_byte));
  const uint8_t mask_bit = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xFF));
  }
  const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  if (mask) f.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (mask ? key[i % 4] : 0)));
  }
  return f;
}

WsDecoder::Status feed(WsDecoder& d, std::string bytes, Recorder& r) {
  return d.feed(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size(), r);
}

TEST(WsCodec, DecodesMaskedTextFramesOfEveryLengthEncoding) {
  for (size_t n : {0u, 5u, 125u, 126u, 1000u, 65535u, 70000u}) {
    WsDecoder d(100000);
    Recorder r;
    const std::string payload(n, 'x');
    ASSERT_EQ(feed(d, client_frame(0x81, payload), r), WsDecoder::Status::Ok) << n;
    ASSERT_EQ(r.texts.size(), 1u);
    EXPECT_EQ(r.texts[0], payload);
  }
}

TEST(WsCodec, ReassemblesFramesSplitAtEveryByte) {
  const std::string wire = client_frame(0x81, R"({"type":"heartbeat"})") + client_frame(0x89, "p") +
                           client_frame(0x81, "second");
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    WsDecoder d(1000);
    Recorder r;
    ASSERT_EQ(feed(d, wire.substr(0, cut), r), WsDecoder::Status::Ok);
    ASSERT_EQ(feed(d, wire.substr(cut), r), WsDecoder::Status::Ok);
    ASSERT_EQ(r.texts.size(), 2u) << cut;
    EXPECT_EQ(r.texts[0], R"({"type":"heartbeat"})");
    EXPECT_EQ(r.texts[1], "second");
    EXPECT_EQ(r.pings, std::vector<std::string>{"p"});
  }
  // One byte at a time.
  WsDecoder d(1000);
  Recorder r;
  for (char c : wire) ASSERT_EQ(feed(d, std::string(1, c), r), WsDecoder::Status::Ok);
  EXPECT_EQ(r.texts.size(), 2u);
  EXPECT_EQ(d.buffered(), std::string().capacity() * 2);
}

TEST(WsCodec, FragmentedMessageWithInterleavedControlFrames) {
  WsDecoder d(1000);
  Recorder r;
  const std::string wire = client_frame(0x01, "hel") + client_frame(0x89, "ping") +
                           client_frame(0x00, "lo ") + client_frame(0x80, "world");
  ASSERT_EQ(feed(d, wire, r), WsDecoder::Status::Ok);
  EXPECT_EQ(r.texts, std::vector<std::string>{"hello world"});
  EXPECT_EQ(r.pings, std::vector<std::string>{"ping"});
}

TEST(WsCodec, RefusesOversizeFramesBeforeTheirPayloadArrives) {
  WsDecoder d(100);
  Recorder r;
  std::string frame = client_frame(0x81, std::string(101, 'a'));
  frame.resize(8);  // only the header
  EXPECT_EQ(feed(d, frame, r), WsDecoder::Status::Failed);
  EXPECT_EQ(d.error().close_code, close_code::kTooBig);
}

TEST(WsCodec, RefusesOversizeFragmentedMessages) {
  WsDecoder d(10);
  Recorder r;
  EXPECT_EQ(feed(d, client_frame(0x01, "123456") + client_frame(0x80, "789012"), r),
            WsDecoder::Status::Failed);
  EXPECT_EQ(d.error().close_code, close_code::kTooBig);
  EXPECT_TRUE(r.texts.empty());
}

TEST(WsCodec, ProtocolErrors) {
  struct Case {
    std::string wire;
    uint16_t code;
  };
  const Case cases[] = {
      {client_frame(0x81, "x", false), close_code::kProtocolError},             // unmasked
      {client_frame(0xC1, "x"), close_code::kProtocolError},                    // RSV1
      {client_frame(0x83, "x"), close_code::kProtocolError},                    // opcode 3
      {client_frame(0x80, "x"), close_code::kProtocolError},                    // lone continuation
      {client_frame(0x09, "x"), close_code::kProtocolError},                    // fragmented ping
      {client_frame(0x89, std::string(126, 'p')), close_code::kProtocolError},  // big ping
      {client_frame(0x01, "a") + client_frame(0x81, "b"), close_code::kProtocolError},
      {client_frame(0x81, "\xC3\x28"), close_code::kInvalidPayload},                 // bad UTF-8
      {client_frame(0x88, "\x03"), close_code::kProtocolError},                      // 1-byte close
      {client_frame(0x88, std::string("\x03\xED", 2)), close_code::kProtocolError},  // code 1005
  };
  for (const auto& c : cases) {
    WsDecoder d(1000);
    Recorder r;
    EXPECT_EQ(feed(d, c.wire, r), WsDecoder::Status::Failed);
    EXPECT_EQ(d.error().close_code, c.code);
    // Once failed, it stays failed.
    EXPECT_EQ(feed(d, client_frame(0x81, "ok"), r), WsDecoder::Status::Failed);
  }
}

TEST(WsCodec, ControlFrames) {
  WsDecoder d(1000);
  Recorder r;
  ASSERT_EQ(feed(d,
                 client_frame(0x8A, "pong") + client_frame(0x88, std::string("\x03\xE8ok", 4)) +
                     client_frame(0x88, ""),
                 r),
            WsDecoder::Status::Ok);
  EXPECT_EQ(r.pongs, std::vector<std::string>{"pong"});
  EXPECT_EQ(r.closes, (std::vector<uint16_t>{1000, 1005}));
}

TEST(WsCodec, BinaryIsDelivered) {
  WsDecoder d(1000);
  Recorder r;
  ASSERT_EQ(feed(d, client_frame(0x82, std::string("\xFF\x00", 2)), r), WsDecoder::Status::Ok);
  EXPECT_EQ(r.binaries.size(), 1u);
}

TEST(WsCodec, EncodesServerFrames) {
  std::string out;
  append_text_frame(out, "ab", "c");
  EXPECT_EQ(out, std::string("\x81\x03"
                             "abc",
                             5));
  out.clear();
  append_frame(out, WsOpcode::Text, std::string(300, 'z'));
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 126);
  EXPECT_EQ(out.size(), 4u + 300u);
  out.clear();
  append_frame(out, WsOpcode::Binary, std::string(70000, 'z'));
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 127);
  EXPECT_EQ(out.size(), 10u + 70000u);
  out.clear();
  append_close_frame(out, 4001, "peer timeout");
  EXPECT_EQ(out, std::string("\x88\x0E\x0F\xA1peer timeout", 16));
}

}  // namespace
}  // namespace rtcmesh::hub
