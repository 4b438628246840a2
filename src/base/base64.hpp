// RFC 4648 base64 (standard alphabet, padded), for printing binary messages.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rtcmesh::base {

std::string base64_encode(std::span<const uint8_t> data);
// Rejects characters outside the alphabet and bad padding.
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace rtcmesh::base
