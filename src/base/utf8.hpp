// UTF-8 validation (RFC 3629), the one check every layer uses: WebSocket text
// frames (hub), witness records.
#pragma once

#include <string_view>

namespace rtcmesh::base {

// True for well-formed UTF-8: no overlong forms, no surrogates (U+D800..U+DFFF),
// nothing past U+10FFFF, no truncated sequence.
bool is_valid_utf8(std::string_view text);

}  // namespace rtcmesh::base
