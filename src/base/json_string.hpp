// The JSON string literal writer every layer uses (hub messages, witness records).
#pragma once

#include <string>
#include <string_view>

namespace rtcmesh::base {

// Appends `value` as a JSON string literal: quotes, '"' and '\\' escaped, \b \t
// \n \f \r as short escapes, every other control character as \u00xx, all
// other bytes as they are. This is the RFC 8785 (JCS) form, so witness records
// stay canonical; `value` should be valid UTF-8 (see base/utf8.hpp).
void append_json_string(std::string& out, std::string_view value);

}  // namespace rtcmesh::base
