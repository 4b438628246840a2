// rtcmesh peer (placeholder until it lands).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.hpp"

namespace rtcmesh::app {

Runner add_peer_command(CLI::App& app) {
  app.add_subcommand("peer", "not built yet");
  return [] {
    std::fprintf(stderr, "rtcmesh: peer is not built yet\n");
    return 1;
  };
}

}  // namespace rtcmesh::app
