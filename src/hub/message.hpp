// Validation of client → hub messages (protocol doc 1.1–1.5) without building a
// JSON tree: the whole text is checked against RFC 8259, and only the top-level
// members the hub acts on are picked out as views into the client's own bytes.
// Forwarded messages are those bytes with "from" inserted, so SDP is never
// re-serialised. Pure; fuzzed by fuzz/hub_message_fuzzer.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/id.hpp"
#include "base/json_string.hpp"

namespace rtcmesh::hub {

enum class MessageType : uint8_t {
  Join,
  Leave,
  Heartbeat,
  Offer,
  Answer,
  Candidate,
  Relay,
  Announce,
  Broadcast,
};

const char* message_type_name(MessageType type);
inline constexpr size_t kMessageTypeCount = 9;

// A rejected message: `code` is one of the protocol's error codes.
struct MessageError {
  const char* code = "";
  std::string message;
  std::string_view ref;  // raw JSON of the message's "id" when it was readable
};

struct ClientMessage {
  MessageType type = MessageType::Heartbeat;
  std::string_view ref;  // raw JSON of "id" (a string or an integer), empty if absent
  // Decoded string members (escapes resolved), empty when absent.
  std::string room;
  std::string peer;
  std::string to;
  std::string token;
  std::string resume;
  // Raw JSON of object members, empty when absent.
  std::string_view metadata;
  bool has_metadata = false;
};

inline constexpr size_t kMaxMetadataBytes = 4096;
inline constexpr size_t kMaxJsonDepth = 64;

// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ (base/id.hpp)
using base::is_valid_id;

// Checks that text is exactly one JSON object (RFC 8259, nesting <= kMaxJsonDepth,
// no lone surrogate escapes, no duplicate top-level member names).
bool is_json_object(std::string_view text);

// Parses and validates one client message. On success the views point into text.
bool parse_client_message(std::string_view text, ClientMessage& out, MessageError& error);

// Appends a JSON string literal (quotes, escapes) for hub-written messages.
using base::append_json_string;

}  // namespace rtcmesh::hub
