#include "dcep/dcep.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace rtcmesh::dcep {
namespace {

using Bytes = std::vector<uint8_t>;

Open parse_open(const Bytes& bytes) {
  auto m = parse(bytes);
  EXPECT_TRUE(m.ok()) << m.error().message;
  if (!m.ok() || !std::holds_alternative<Open>(*m)) {
    ADD_FAILURE() << "not an OPEN";
    return {};
  }
  return std::get<Open>(*m);
}

std::string parse_error(const Bytes& bytes) {
  auto m = parse(bytes);
  EXPECT_FALSE(m.ok());
  return m.ok() ? std::string() : m.error().message;
}

struct KnownOpen {
  ChannelType type;
  uint8_t type_byte;
  bool ordered;
  uint32_t reliability;
};

// RFC 8832 section 5.1 / 8.2.2: every channel type, byte for byte.
TEST(Dcep, KnownBytesForAllSixChannelTypes) {
  const KnownOpen cases[] = {
      {ChannelType::Reliable, 0x00, true, 0},
      {ChannelType::ReliableUnordered, 0x80, false, 0},
      {ChannelType::PartialReliableRexmit, 0x01, true, 3},
      {ChannelType::PartialReliableRexmitUnordered, 0x81, false, 7},
      {ChannelType::PartialReliableTimed, 0x02, true, 1500},
      {ChannelType::PartialReliableTimedUnordered, 0x82, false, 0x01020304},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(static_cast<int>(k.type_byte));
    Open open;
    open.channel_type = k.type;
    open.priority = 0x0100;
    open.reliability_parameter = k.reliability;
    open.label = "chat";
    open.protocol = "json";
    const Bytes expected = {0x03,         // Message Type: DATA_CHANNEL_OPEN
                            k.type_byte,  // Channel Type
                            0x01,
                            0x00,  // Priority 256
                            static_cast<uint8_t>(k.reliability >> 24),
                            static_cast<uint8_t>(k.reliability >> 16),
                            static_cast<uint8_t>(k.reliability >> 8),
                            static_cast<uint8_t>(k.reliability),
                            0x00,
                            0x04,  // Label Length
                            0x00,
                            0x04,  // Protocol Length
                            'c',
                            'h',
                            'a',
                            't',
                            'j',
                            's',
                            'o',
                            'n'};
    EXPECT_EQ(serialize(open), expected);
    EXPECT_EQ(parse_open(expected), open);
    EXPECT_EQ(is_ordered(k.type), k.ordered);
  }
}

TEST(Dcep, BigEndianFields) {
  const Bytes bytes = {0x03, 0x02, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x00, 0x00, 'x'};
  const Open open = parse_open(bytes);
  EXPECT_EQ(open.channel_type, ChannelType::PartialReliableTimed);
  EXPECT_EQ(open.priority, 0x1234);
  EXPECT_EQ(open.reliability_parameter, 0xDEADBEEFu);
  EXPECT_EQ(open.label, "x");
  EXPECT_EQ(open.protocol, "");
}

TEST(Dcep, EmptyLabelAndProtocol) {
  const Bytes bytes = {0x03, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0};
  const Open open = parse_open(bytes);
  EXPECT_EQ(open, (Open{ChannelType::Reliable, 0, 0, "", ""}));
  EXPECT_EQ(serialize(open), bytes);
}

TEST(Dcep, LabelBytesAreKeptVerbatim) {
  Open open;
  open.label = std::string("caf\xc3\xa9\0nul", 9);
  open.protocol = "\xe2\x98\x83";
  const Bytes wire = serialize(open);
  ASSERT_EQ(wire.size(), 12u + 9 + 3);
  EXPECT_EQ(parse_open(wire), open);
}

TEST(Dcep, Ack) {
  EXPECT_EQ(serialize_ack(), Bytes{0x02});
  auto m = parse(Bytes{0x02});
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_TRUE(std::holds_alternative<Ack>(*m));
  // RFC 8832 section 5.2 defines only the type byte; extra bytes are ignored.
  auto trailing = parse(Bytes{0x02, 0xFF, 0x00});
  ASSERT_TRUE(trailing.ok());
  EXPECT_TRUE(std::holds_alternative<Ack>(*trailing));
}

TEST(Dcep, RejectsEmptyAndUnknownMessageTypes) {
  EXPECT_NE(parse_error({}).find("empty"), std::string::npos);
  for (uint8_t type : {0x00, 0x01, 0x04, 0xFF}) {
    EXPECT_NE(parse_error({type, 0x00}).find("unknown message type"), std::string::npos)
        << static_cast<int>(type);
  }
}

TEST(Dcep, RejectsUnknownChannelTypes) {
  for (uint8_t type : {0x03, 0x7F, 0x83, 0xFF}) {
    const Bytes bytes = {0x03, type, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_NE(parse_error(bytes).find("unknown channel type"), std::string::npos)
        << static_cast<int>(type);
  }
}

TEST(Dcep, RejectsEveryTruncationOfAnOpen) {
  const Bytes full = serialize(Open{ChannelType::PartialReliableRexmit, 256, 5, "label", "proto"});
  for (std::size_t n = 1; n < full.size(); ++n) {
    const Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string error = parse_error(prefix);
    EXPECT_FALSE(error.empty()) << n;
    if (n < 12)
      EXPECT_NE(error.find("truncated"), std::string::npos) << n << ": " << error;
    else
      EXPECT_NE(error.find("does not match"), std::string::npos) << n << ": " << error;
  }
}

TEST(Dcep, RejectsLengthsThatDoNotMatchThePayload) {
  // Label length 0xFFFF with four bytes present.
  EXPECT_NE(parse_error({0x03, 0x00, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 'a', 'b', 'c', 'd'})
                .find("does not match"),
            std::string::npos);
  // Both lengths maximal: the sum must not wrap.
  EXPECT_NE(parse_error({0x03, 0x00, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 'a'})
                .find("does not match"),
            std::string::npos);
  // Protocol length past the end.
  EXPECT_NE(parse_error({0x03, 0x00, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x02, 'a', 'b'})
                .find("does not match"),
            std::string::npos);
  // Trailing bytes after label and protocol.
  EXPECT_NE(parse_error({0x03, 0x00, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00, 'a', 'b'})
                .find("does not match"),
            std::string::npos);
}

TEST(Dcep, SerializeCapsLabelAt65535Bytes) {
  Open open;
  open.label = std::string(70000, 'L');
  open.protocol = "p";
  const Bytes wire = serialize(open);
  ASSERT_EQ(wire.size(), 12u + 65535 + 1);
  EXPECT_EQ(wire[8], 0xFF);
  EXPECT_EQ(wire[9], 0xFF);
  const Open back = parse_open(wire);
  EXPECT_EQ(back.label.size(), 65535u);
  EXPECT_EQ(back.protocol, "p");
}

TEST(Dcep, PpidValues) {
  // RFC 8831 section 8.
  EXPECT_EQ(static_cast<uint32_t>(Ppid::Dcep), 50u);
  EXPECT_EQ(static_cast<uint32_t>(Ppid::String), 51u);
  EXPECT_EQ(static_cast<uint32_t>(Ppid::Binary), 53u);
  EXPECT_EQ(static_cast<uint32_t>(Ppid::StringEmpty), 56u);
  EXPECT_EQ(static_cast<uint32_t>(Ppid::BinaryEmpty), 57u);
}

}  // namespace
}  // namespace rtcmesh::dcep
