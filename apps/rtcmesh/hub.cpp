// rtcmesh hub (placeholder until it lands).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.hpp"

namespace rtcmesh::app {

Runner add_hub_command(CLI::App& app) {
  app.add_subcommand("hub", "not built yet");
  return [] {
    std::fprintf(stderr, "rtcmesh: hub is not built yet\n");
    return 1;
  };
}

}  // namespace rtcmesh::app
