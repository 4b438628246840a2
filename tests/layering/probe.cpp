// A layering probe: it includes RTCMESH_PROBE_HEADER while linked like the layer
// named in tests/layering/CMakeLists.txt. Probes that must fail prove that a
// layer cannot see headers above or beside it; the others are the controls.
#include RTCMESH_PROBE_HEADER

int rtcmesh_layering_probe() {
  return 0;
}
