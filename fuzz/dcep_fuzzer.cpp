// dcep_fuzzer: dcep::parse on arbitrary bytes. An OPEN that parses must serialise
// back to exactly the input bytes (the format has no slack: lengths must match the
// payload) and re-parse to the same value; an ACK must round-trip as an ACK.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "dcep/dcep.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtcmesh;
  using fuzz::check;
  const ByteSpan bytes(data, size);

  auto first = dcep::parse(bytes);
  if (!first) {
    check(first.error().message.rfind("DCEP: ", 0) == 0, "DCEP error without prefix",
          first.error().message);
    check(first.error().code == ErrorCode::SyntaxError, "DCEP error is not a SyntaxError",
          first.error().message);
    return 0;
  }
  if (const auto* open = std::get_if<dcep::Open>(&*first)) {
    const std::vector<uint8_t> wire = dcep::serialize(*open);
    check(wire.size() == size && std::equal(wire.begin(), wire.end(), data),
          "serialize(parse(bytes)) != bytes");
    auto second = dcep::parse(wire);
    check(second.ok() && std::holds_alternative<dcep::Open>(*second) &&
              std::get<dcep::Open>(*second) == *open,
          "parse(serialize(open)) != open");
    (void)dcep::is_ordered(open->channel_type);
  } else {
    check(size >= 1 && data[0] == dcep::kMessageAck, "ACK parsed from a non-ACK type byte");
    auto ack = dcep::parse(dcep::serialize_ack());
    check(ack.ok() && std::holds_alternative<dcep::Ack>(*ack), "serialize_ack() does not parse");
  }
  return 0;
}
