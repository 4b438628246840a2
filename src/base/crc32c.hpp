// CRC-32C (Castagnoli): SCTP packets (RFC 9260 appendix B) and witness frames.
// The SSE4.2 instruction when the CPU has it, else a table.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtcmesh::base {

uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace rtcmesh::base
