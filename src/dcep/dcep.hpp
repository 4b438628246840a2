// Data Channel Establishment Protocol (RFC 8832), carried on the channel's SCTP
// stream with PPID 50.
//
//  DATA_CHANNEL_OPEN (RFC 8832 section 5.1):
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Message Type |  Channel Type |            Priority           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Reliability Parameter                      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Label Length          |       Protocol Length         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Label (Label Length bytes) ... Protocol (Protocol Length bytes)
//
//  DATA_CHANNEL_ACK (section 5.2): one byte, 0x02.
//
// Untrusted input: parse() never throws and checks every length.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "base/packet_transport.hpp"
#include "base/result.hpp"

namespace rtcmesh::dcep {

// SCTP payload protocol identifiers (RFC 8831 section 8).
enum class Ppid : uint32_t {
  Dcep = 50,
  String = 51,
  BinaryPartial = 52,  // deprecated, accepted on receive only
  Binary = 53,
  StringPartial = 54,  // deprecated, accepted on receive only
  StringEmpty = 56,
  BinaryEmpty = 57,
};

inline constexpr uint8_t kMessageOpen = 0x03;
inline constexpr uint8_t kMessageAck = 0x02;

enum class ChannelType : uint8_t {
  Reliable = 0x00,
  ReliableUnordered = 0x80,
  PartialReliableRexmit = 0x01,
  PartialReliableRexmitUnordered = 0x81,
  PartialReliableTimed = 0x02,
  PartialReliableTimedUnordered = 0x82,
};

struct Open {
  ChannelType channel_type = ChannelType::Reliable;
  uint16_t priority = 256;
  uint32_t reliability_parameter = 0;  // retransmits or milliseconds, per channel_type
  std::string label;
  std::string protocol;
  bool operator==(const Open&) const = default;
};

struct Ack {
  bool operator==(const Ack&) const = default;
};

using Message = std::variant<Open, Ack>;

// Rejects: empty input, unknown message type, unknown channel type, an OPEN
// shorter than 12 bytes or whose label/protocol lengths do not match the payload.
// Bytes after an ACK's type byte are ignored.
Result<Message> parse(ByteSpan bytes);

std::vector<uint8_t> serialize(const Open& open);
std::vector<uint8_t> serialize_ack();

bool is_ordered(ChannelType type);

}  // namespace rtcmesh::dcep
