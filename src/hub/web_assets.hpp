// The browser client's files (web/*), embedded at build time by
// src/hub/embed_web.cmake into a generated .cpp.
#pragma once

#include <cstddef>
#include <span>

namespace rtcmesh::hub {

struct WebAsset {
  const char* path;  // "/index.html"
  const unsigned char* data;
  size_t size;
};

std::span<const WebAsset> embedded_web_assets();

}  // namespace rtcmesh::hub
