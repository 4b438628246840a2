// rtcmesh: one binary, subcommands (connect, hub, peer, bench, ...).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.hpp"
#include "rtcmesh/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rtcmesh: WebRTC data channels, peer-to-peer meshes and a signed witness log"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rtcmesh " RTCMESH_VERSION);
  auto connect = rtcmesh::app::add_connect_command(app);
  auto bench = rtcmesh::app::add_bench_command(app);
  auto hub = rtcmesh::app::add_hub_command(app);
  auto peer = rtcmesh::app::add_peer_command(app);
  auto id = rtcmesh::app::add_id_command(app);
  auto witness = rtcmesh::app::add_witness_command(app);
  auto known = [&](const char* name) {
    for (auto* sub : app.get_subcommands({})) {
      if (sub->get_name() == name) return true;
    }
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !known(argv[1])) {
    std::fprintf(stderr, "rtcmesh: unknown command '%s' (see rtcmesh --help)\n", argv[1]);
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is 0; every bad argument exits 2
  }
  if (app.got_subcommand("connect")) return connect();
  if (app.got_subcommand("bench")) return bench();
  if (app.got_subcommand("hub")) return hub();
  if (app.got_subcommand("peer")) return peer();
  if (app.got_subcommand("id")) return id();
  if (app.got_subcommand("witness")) return witness();
  return 2;
}
