// `rtcmesh id`: print this node's id (creating its key on first use), or export
// its public key for verifiers of its witness logs.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

#include "commands.hpp"
#include "identity/identity.hpp"

namespace rtcmesh::app {

Runner add_id_command(CLI::App& app) {
  struct Args {
    std::string data_dir = identity::default_data_dir();
    bool json = false;
    std::string export_public;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "id", "Print this node's id (node-<16 hex>), creating its Ed25519 key on first use");
  cmd->add_option("--data-dir", args->data_dir, "Directory of identity.key and the witness log")
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "Print {node_id, public_key (hex), key_file} as JSON");
  cmd->add_option("--export-public", args->export_public,
                  "Write the public key (PEM) to FILE, for `rtcmesh witness verify --key`");
  return [args]() {
    auto id = identity::Identity::load_or_create(args->data_dir);
    if (!id) {
      std::fprintf(stderr, "rtcmesh id: %s\n", id.error().message.c_str());
      return 1;
    }
    if (!args->export_public.empty()) {
      std::ofstream out(args->export_public);
      out << (*id)->public_key_pem();
      if (!out.flush()) {
        std::fprintf(stderr, "rtcmesh id: cannot write %s\n", args->export_public.c_str());
        return 1;
      }
    }
    if (args->json) {
      nlohmann::json j = {{"node_id", (*id)->node_id()},
                          {"public_key", (*id)->public_key_hex()},
                          {"key_file", args->data_dir + "/" + identity::kKeyFileName}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\n", (*id)->node_id().c_str());
    }
    return 0;
  };
}

}  // namespace rtcmesh::app
