// The library's one Result/Error (include/rtcmesh/result.hpp), plus the
// internal shorthand make_error("message"). Parsers of untrusted bytes return
// Result and never throw; the message names what was wrong (for SDP: the
// offending line) and the code says which kind of failure it is.
#pragma once

#include "rtcmesh/result.hpp"

namespace rtcmesh {

// An error without a more specific code: OperationError. Parsers use
// make_error(ErrorCode::SyntaxError, ...) instead.
inline Error make_error(std::string message) {
  return Error{ErrorCode::OperationError, std::move(message)};
}

}  // namespace rtcmesh
