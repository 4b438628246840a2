// sdp_fuzzer: sdp::parse on arbitrary bytes. Errors must name their line. A
// description that parses must survive serialize -> parse unchanged (except the
// legacy flag, which serialize() normalises to the modern form) and serialising
// the re-parsed value must give the same text again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "sdp/session_description.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtcmesh;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto first = sdp::parse(text);
  if (!first) {
    const std::string& message = first.error().message;
    check(message.rfind("line ", 0) == 0 || message.rfind("SDP too large", 0) == 0,
          "SDP error does not name a line", message);
    check(first.error().code == ErrorCode::SyntaxError, "SDP error is not a SyntaxError", message);
    return 0;
  }

  const std::string serialized = sdp::serialize(*first);
  // The size cap applies to input; our CRLF output of a near-64 KiB LF input may
  // legitimately be larger, and is then out of scope for the round trip.
  if (serialized.size() > sdp::kMaxSdpSize) return 0;

  auto second = sdp::parse(serialized);
  check(second.ok(), "serialize() output does not parse",
        second.ok() ? std::string() : second.error().message + "\n" + serialized);

  sdp::SessionDescription expected = *first;
  expected.legacy_sctpmap = false;
  check(*second == expected, "parse(serialize(d)) != d", serialized);
  check(sdp::serialize(*second) == serialized, "serialize() is not a fixed point", serialized);
  return 0;
}
