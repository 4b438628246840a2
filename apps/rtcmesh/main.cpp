// rtcmesh: one binary, subcommands (connect, bench, ...).
#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rtcmesh: WebRTC data channels, peer-to-peer meshes and a signed witness log"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rtcmesh 0.1.0");
  auto connect = rtcmesh::app::add_connect_command(app);
  auto bench = rtcmesh::app::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (app.got_subcommand("connect")) return connect();
  if (app.got_subcommand("bench")) return bench();
  return 2;
}
