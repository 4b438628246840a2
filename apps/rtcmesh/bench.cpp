#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace rtcmesh::app {
Runner add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Measure throughput, latency, setup time and memory");
  (void)cmd;
  return [] { return 0; };
}
}  // namespace rtcmesh::app
