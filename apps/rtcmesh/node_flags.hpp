// The flags `connect`, `peer` and `hub` share about the node: where its key and
// witness log live, whether and how it records, and (peer, connect) the port
// its Prometheus metrics are served on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "observe/node.hpp"

namespace CLI {
class App;
}
namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace rtcmesh::app {

struct NodeFlags {
  std::string data_dir;
  std::string witness;
  bool no_witness = false;
  uint32_t sample_every = 10;
  bool hash_addresses = false;
  int metrics_port = -1;  // -1 = off
  std::string metrics_host = "127.0.0.1";
};

// with_metrics_port: add --metrics-port/--metrics-host (the hub serves /metrics itself).
void add_node_flags(CLI::App& cmd, NodeFlags& flags, bool with_metrics_port);
observe::NodeOptions node_options(const NodeFlags& flags, const std::string& role);

// A node opened from the flags, with its metrics endpoint when asked for.
struct OpenedNode {
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::unique_ptr<observe::Node> node;
  std::string metrics_url;  // "" without --metrics-port
  ~OpenedNode();
};
// Prints "rtcmesh <role>: ..." and returns null on failure.
std::unique_ptr<OpenedNode> open_node(const NodeFlags& flags, const std::string& role,
                                      bool webrtc_metrics = true);

}  // namespace rtcmesh::app
