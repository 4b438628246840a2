// CRC-32C (Castagnoli) for the frame checksums: SSE4.2 when the CPU has it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtcmesh::witness {

uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace rtcmesh::witness
