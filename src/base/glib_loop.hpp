// The GLib side of base::Loop, for the one layer that needs it: ice/ (libnice
// runs on the loop's GMainContext). No other layer includes this header; they
// see the loop as a base::Executor.
#pragma once

#include "base/loop.hpp"

typedef struct _GMainContext GMainContext;

namespace rtcmesh::base {

struct GlibLoopAccess {
  static GMainContext* context(const Loop& loop);
};

// The GMainContext the loop thread runs.
inline GMainContext* glib_context(const Loop& loop) {
  return GlibLoopAccess::context(loop);
}

}  // namespace rtcmesh::base
