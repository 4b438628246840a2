// Server side of RFC 6455 framing: an incremental decoder of client frames and an
// encoder of (unmasked) server frames. Pure: no I/O, so it is unit tested and fuzzed.
//
// The decoder keeps no buffer while a connection is idle. A frame that arrives whole
// in one read is unmasked in place and handed out as a view; only a frame split
// across reads, or a fragmented message, is copied into per-connection storage, and
// that storage is released once the message is done (so a burst does not pin memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/utf8.hpp"

namespace rtcmesh::hub {

enum class WsOpcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

// Close codes the hub uses (RFC 6455 7.4 and the protocol doc 1.6).
namespace close_code {
inline constexpr uint16_t kNormal = 1000;
inline constexpr uint16_t kGoingAway = 1001;
inline constexpr uint16_t kProtocolError = 1002;
inline constexpr uint16_t kUnsupportedData = 1003;
inline constexpr uint16_t kInvalidPayload = 1007;
inline constexpr uint16_t kPolicy = 1008;
inline constexpr uint16_t kTooBig = 1009;
inline constexpr uint16_t kReplaced = 4000;
inline constexpr uint16_t kTimeout = 4001;
}  // namespace close_code

// What the decoder hands out. Returning false from any callback stops decoding
// (the connection is going away); feed() then returns WsDecoder::Stopped.
class WsSink {
 public:
  virtual ~WsSink() = default;
  // A complete text message, already checked to be valid UTF-8.
  virtual bool on_text(std::string_view message) = 0;
  virtual bool on_binary(std::string_view message) = 0;
  virtual bool on_ping(std::string_view payload) = 0;
  virtual bool on_pong(std::string_view payload) = 0;
  // code 1005 (no status) when the close frame carried no payload.
  virtual bool on_close(uint16_t code, std::string_view reason) = 0;
};

struct WsError {
  uint16_t close_code = 0;  // 1002 protocol, 1007 bad UTF-8, 1009 too big
  const char* reason = "";  // short, for logs and metrics
};

class WsDecoder {
 public:
  explicit WsDecoder(size_t max_message) : max_message_(max_message) {}

  enum class Status { Ok, Stopped, Failed };
  // Decodes every complete frame in data[0..size). data is modified (unmasked in
  // place). Bytes of an incomplete frame are kept for the next call.
  Status feed(uint8_t* data, size_t size, WsSink& sink);
  const WsError& error() const { return error_; }

  // Bytes held between calls (partial frame + partial fragmented message).
  size_t buffered() const { return partial_.capacity() + message_.capacity(); }

 private:
  // Returns the number of bytes consumed from data (0 = need more), or sets failed_.
  size_t decode_one(uint8_t* data, size_t size, WsSink& sink, bool& stop);
  bool deliver(uint8_t opcode, bool fin, std::string_view payload, WsSink& sink, bool& stop);
  bool fail(uint16_t code, const char* reason);
  bool validate(const void* header);  // a Header, private to the .cpp

  size_t max_message_;
  std::string partial_;         // an incomplete frame's bytes, still masked
  std::string message_;         // payload so far of a fragmented message
  uint8_t message_opcode_ = 0;  // 0 when no fragmented message is in progress
  bool failed_ = false;
  WsError error_;
};

// Valid UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
using base::is_valid_utf8;

// Appends one unmasked frame with FIN set.
void append_frame(std::string& out, WsOpcode opcode, std::string_view payload);
// Appends a text frame whose payload is a followed by b (no temporary string).
void append_text_frame(std::string& out, std::string_view a, std::string_view b = {});
// Appends a close frame (code + reason, reason truncated to fit 125 bytes).
void append_close_frame(std::string& out, uint16_t code, std::string_view reason);

}  // namespace rtcmesh::hub
