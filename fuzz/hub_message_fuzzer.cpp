// hub_message_fuzzer: the hub's client-message validator (src/hub/message) on
// arbitrary text. Whatever it accepts must be one JSON object (checked again with the
// stand-alone recogniser), without "from", with a known type and valid ids, and the
// forwarded form (from inserted after the brace) must still be one JSON object.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "hub/message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtcmesh::hub;
  using rtcmesh::fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ClientMessage m;
  MessageError e;
  const bool ok = parse_client_message(text, m, e);
  const bool object = is_json_object(text);
  if (!ok) {
    const std::string code = e.code;
    check(code == "bad_json" || code == "bad_message" || code == "unknown_type" ||
              code == "invalid_id",
          "unexpected error code", code);
    check(code == "bad_json" || object || code == "bad_message",
          "non-JSON rejected as not bad_json");
    return 0;
  }
  check(object, "accepted text is not one JSON object", text);
  switch (m.type) {
    case MessageType::Join:
      check(is_valid_id(m.room) && is_valid_id(m.peer), "join with a bad id");
      check(!m.has_metadata || m.metadata.size() <= kMaxMetadataBytes, "metadata too large");
      break;
    case MessageType::Offer:
    case MessageType::Answer:
    case MessageType::Candidate:
    case MessageType::Relay:
      check(is_valid_id(m.to), "forward to a bad id");
      break;
    default:
      break;
  }
  // Nested objects may repeat names (only top-level duplicates are refused), so this
  // checks shape, not is_json_object().
  if (m.has_metadata) {
    check(m.metadata.size() >= 2 && m.metadata.front() == '{' && m.metadata.back() == '}',
          "metadata is not an object", m.metadata);
  }
  const std::string forwarded =
      std::string(R"({"from":"alice",)") + std::string(text.substr(text.find('{') + 1));
  check(is_json_object(forwarded), "forwarded form is not one JSON object", forwarded);
  return 0;
}
