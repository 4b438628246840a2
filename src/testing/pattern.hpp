// Deterministic test data: pattern(size, seed) is the same bytes every time,
// and different seeds give different bytes (a linear congruential sequence).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rtcmesh::testing {

inline std::vector<uint8_t> pattern(size_t size, uint32_t seed) {
  std::vector<uint8_t> data(size);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& byte : data) {
    x = x * 1103515245u + 12345u;
    byte = static_cast<uint8_t>(x >> 16);
  }
  return data;
}

}  // namespace rtcmesh::testing
