// The canonical JSON the witness hashes (docs/witness-format.md, "Canonical
// encoding"): object keys printable ASCII, sorted bytewise (for ASCII this is
// RFC 8785's UTF-16 order), no whitespace, integers only with |n| <= 2^53-1 (a
// float is rejected: encode decimals as strings), strings valid UTF-8 with only
// '"', '\\' and control characters escaped (\b \t \n \f \r, else \u00xx), so
// the output is also RFC 8785 (JCS) output for the same value.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "base/json_string.hpp"
#include "base/result.hpp"
#include "base/utf8.hpp"

namespace rtcmesh::witness {

constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

// Appends the canonical bytes of `value` to `out`; on error `out` is unspecified.
Status append_canonical(const nlohmann::json& value, std::string& out);
Result<std::string> canonical(const nlohmann::json& value);
// Strings are written by base::append_json_string (valid UTF-8 only, base::is_valid_utf8).

}  // namespace rtcmesh::witness
