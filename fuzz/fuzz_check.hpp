// Invariant checks for the fuzz targets: print what went wrong, then abort() so
// libFuzzer saves the input as a crash (and the replay test fails).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace rtcmesh::fuzz {

[[noreturn]] inline void fail(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  if (!detail.empty()) {
    std::fprintf(stderr, "----\n%.*s\n----\n", static_cast<int>(detail.size()), detail.data());
  }
  std::abort();
}

inline void check(bool condition, std::string_view what, std::string_view detail = {}) {
  if (!condition) fail(what, detail);
}

}  // namespace rtcmesh::fuzz
