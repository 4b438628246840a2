#include "dcep/dcep.hpp"

#include <cstddef>
#include <optional>
#include <string>

namespace rtcmesh::dcep {
namespace {

// Size of the fixed part of DATA_CHANNEL_OPEN (RFC 8832 section 5.1): message type,
// channel type, priority, reliability parameter, label length, protocol length.
constexpr std::size_t kOpenHeaderSize = 12;
constexpr std::size_t kMaxFieldLength = 0xFFFF;  // both lengths are 16-bit

// Bounds-checked big-endian ("network byte order", RFC 8832 section 5) reader.
// Every read either succeeds completely or returns nullopt and consumes nothing.
class Reader {
 public:
  explicit Reader(ByteSpan bytes) : bytes_(bytes) {}

  std::size_t remaining() const { return bytes_.size() - pos_; }

  std::optional<uint8_t> u8() {
    if (remaining() < 1) return std::nullopt;
    return bytes_[pos_++];
  }
  std::optional<uint16_t> u16() {
    if (remaining() < 2) return std::nullopt;
    const auto v = static_cast<uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::optional<uint32_t> u32() {
    if (remaining() < 4) return std::nullopt;
    const uint32_t v = (uint32_t{bytes_[pos_]} << 24) | (uint32_t{bytes_[pos_ + 1]} << 16) |
                       (uint32_t{bytes_[pos_ + 2]} << 8) | uint32_t{bytes_[pos_ + 3]};
    pos_ += 4;
    return v;
  }
  std::optional<std::string> string(std::size_t length) {
    if (remaining() < length) return std::nullopt;
    std::string s(length, '\0');
    for (std::size_t i = 0; i < length; ++i) s[i] = static_cast<char>(bytes_[pos_ + i]);
    pos_ += length;
    return s;
  }

 private:
  ByteSpan bytes_;
  std::size_t pos_ = 0;
};

void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xFF));
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>((v >> 16) & 0xFF));
  out.push_back(static_cast<uint8_t>((v >> 8) & 0xFF));
  out.push_back(static_cast<uint8_t>(v & 0xFF));
}

// RFC 8832 section 8.2.2: the six registered channel types.
std::optional<ChannelType> to_channel_type(uint8_t value) {
  switch (value) {
    case 0x00:
      return ChannelType::Reliable;
    case 0x80:
      return ChannelType::ReliableUnordered;
    case 0x01:
      return ChannelType::PartialReliableRexmit;
    case 0x81:
      return ChannelType::PartialReliableRexmitUnordered;
    case 0x02:
      return ChannelType::PartialReliableTimed;
    case 0x82:
      return ChannelType::PartialReliableTimedUnordered;
    default:
      return std::nullopt;
  }
}

std::string hex_byte(uint8_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("0x") + kHex[b >> 4] + kHex[b & 0x0F];
}

// RFC 8832 section 5.1: DATA_CHANNEL_OPEN. The message type byte was already read.
Result<Message> parse_open(Reader& r, std::size_t total) {
  if (total < kOpenHeaderSize) {
    return make_error(ErrorCode::SyntaxError,
                      "DCEP: DATA_CHANNEL_OPEN truncated: " + std::to_string(total) +
                          " bytes, need at least " + std::to_string(kOpenHeaderSize));
  }
  // The size check above makes each of these reads succeed; they stay checked anyway.
  const auto channel_type = r.u8();
  const auto priority = r.u16();
  const auto reliability = r.u32();
  const auto label_length = r.u16();
  const auto protocol_length = r.u16();
  if (!channel_type || !priority || !reliability || !label_length || !protocol_length) {
    return make_error(ErrorCode::SyntaxError, "DCEP: DATA_CHANNEL_OPEN truncated header");
  }
  const auto type = to_channel_type(*channel_type);
  if (!type)
    return make_error(ErrorCode::SyntaxError,
                      "DCEP: unknown channel type " + hex_byte(*channel_type));

  // Label and Protocol fill the rest exactly; anything short or extra is malformed.
  const std::size_t declared = std::size_t{*label_length} + *protocol_length;
  if (declared != r.remaining()) {
    return make_error(ErrorCode::SyntaxError,
                      "DCEP: DATA_CHANNEL_OPEN label length " + std::to_string(*label_length) +
                          " + protocol length " + std::to_string(*protocol_length) +
                          " does not match the " + std::to_string(r.remaining()) +
                          " payload bytes after the header");
  }
  auto label = r.string(*label_length);
  auto protocol = r.string(*protocol_length);
  if (!label || !protocol)
    return make_error(ErrorCode::SyntaxError, "DCEP: DATA_CHANNEL_OPEN truncated payload");

  Open open;
  open.channel_type = *type;
  open.priority = *priority;
  // Section 5.1: for reliable channels the parameter "MUST be ignored" by the
  // receiver; it is kept as received and callers look at it only for the
  // partially reliable types.
  open.reliability_parameter = *reliability;
  open.label = std::move(*label);
  open.protocol = std::move(*protocol);
  return Message{std::move(open)};
}

}  // namespace

Result<Message> parse(ByteSpan bytes) {
  Reader r(bytes);
  const auto message_type = r.u8();
  if (!message_type) return make_error(ErrorCode::SyntaxError, "DCEP: empty message");
  switch (*message_type) {
    case kMessageAck:
      // RFC 8832 section 5.2: DATA_CHANNEL_ACK is the type byte alone.
      return Message{Ack{}};
    case kMessageOpen:
      return parse_open(r, bytes.size());
    default:
      return make_error(ErrorCode::SyntaxError,
                        "DCEP: unknown message type " + hex_byte(*message_type));
  }
}

std::vector<uint8_t> serialize(const Open& open) {
  // Lengths are 16-bit on the wire; longer strings are cut to fit (callers
  // enforce the 65535-byte limit of RTCDataChannelInit before getting here).
  const std::size_t label_length =
      open.label.size() < kMaxFieldLength ? open.label.size() : kMaxFieldLength;
  const std::size_t protocol_length =
      open.protocol.size() < kMaxFieldLength ? open.protocol.size() : kMaxFieldLength;

  std::vector<uint8_t> out;
  out.reserve(kOpenHeaderSize + label_length + protocol_length);
  // RFC 8832 section 5.1, field by field, network byte order.
  out.push_back(kMessageOpen);
  out.push_back(static_cast<uint8_t>(open.channel_type));
  put_u16(out, open.priority);
  put_u32(out, open.reliability_parameter);
  put_u16(out, static_cast<uint16_t>(label_length));
  put_u16(out, static_cast<uint16_t>(protocol_length));
  out.insert(out.end(), open.label.begin(),
             open.label.begin() + static_cast<std::ptrdiff_t>(label_length));
  out.insert(out.end(), open.protocol.begin(),
             open.protocol.begin() + static_cast<std::ptrdiff_t>(protocol_length));
  return out;
}

std::vector<uint8_t> serialize_ack() {
  return {kMessageAck};
}

bool is_ordered(ChannelType type) {
  // RFC 8832 section 5.1: the high bit (0x80) of the channel type marks unordered.
  return (static_cast<uint8_t>(type) & 0x80) == 0;
}

}  // namespace rtcmesh::dcep
