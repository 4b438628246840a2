// Subcommands of the rtcmesh binary. Each registers its CLI11 options and
// returns the function that runs it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace rtcmesh::app {

using Runner = std::function<int()>;

Runner add_connect_command(CLI::App& app);
Runner add_bench_command(CLI::App& app);
Runner add_hub_command(CLI::App& app);
Runner add_peer_command(CLI::App& app);
Runner add_id_command(CLI::App& app);
Runner add_witness_command(CLI::App& app);
int run_witness_bench(const std::string& dir, uint64_t events, bool json);

}  // namespace rtcmesh::app
