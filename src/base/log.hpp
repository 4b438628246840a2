// Minimal leveled logging to stderr. Level from RTCMESH_LOG (error|warn|info|debug|verbose),
// default warn. Thread-safe; one line per call.
#pragma once

#include <sstream>
#include <string_view>

namespace rtcmesh::log {

enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3, Verbose = 4 };

Level level();
void set_level(Level level);
void write(Level level, std::string_view component, std::string_view message);

}  // namespace rtcmesh::log

#define RTCMESH_LOG(lvl, component, expr)                                                  \
  do {                                                                                     \
    if (static_cast<int>(::rtcmesh::log::Level::lvl) <=                                    \
        static_cast<int>(::rtcmesh::log::level())) {                                       \
      std::ostringstream rtcmesh_log_os_;                                                  \
      rtcmesh_log_os_ << expr;                                                             \
      ::rtcmesh::log::write(::rtcmesh::log::Level::lvl, component, rtcmesh_log_os_.str()); \
    }                                                                                      \
  } while (0)
