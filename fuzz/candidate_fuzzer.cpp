// candidate_fuzzer: sdp::parse_candidate on arbitrary bytes. A candidate that
// parses must print (to_string) to text that parses back to the same value, both
// bare and with the SDP "a=" prefix, and printing must be a fixed point.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "sdp/candidate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtcmesh;
  using fuzz::check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto first = sdp::parse_candidate(text);
  if (!first) {
    check(!first.error().message.empty(), "empty candidate error message");
    check(first.error().code == ErrorCode::SyntaxError, "candidate error is not a SyntaxError",
          first.error().message);
    return 0;
  }
  const std::string printed = sdp::to_string(*first);
  auto second = sdp::parse_candidate(printed);
  check(second.ok(), "to_string() output does not parse",
        second.ok() ? printed : second.error().message + "\n" + printed);
  check(*second == *first, "parse(to_string(c)) != c", printed);
  check(sdp::to_string(*second) == printed, "to_string() is not a fixed point", printed);

  auto with_prefix = sdp::parse_candidate("a=" + printed + "\r\n");
  check(with_prefix.ok() && *with_prefix == *first, "a= form does not parse the same", printed);
  return 0;
}
