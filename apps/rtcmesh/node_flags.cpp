#include "node_flags.hpp"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "identity/identity.hpp"
#include "witness/format.hpp"

namespace rtcmesh::app {

void add_node_flags(CLI::App& cmd, NodeFlags& f, bool with_metrics_port) {
  const char* group = "Node (identity, witness log, metrics)";
  cmd.add_option("--data-dir", f.data_dir,
                 "Directory of the node's key (identity.key) and witness log (default " +
                     identity::default_data_dir() + ")")
      ->group(group);
  cmd.add_option("--witness", f.witness, "Witness log file (default <data-dir>/witness.log)")
      ->group(group);
  cmd.add_flag("--no-witness", f.no_witness, "Do not record a witness log")->group(group);
  cmd.add_option("--witness-sample", f.sample_every,
                 "Record 1 data channel message in N (sizes only, never content); 0 = none")
      ->capture_default_str()
      ->group(group);
  cmd.add_flag("--witness-hash-addresses", f.hash_addresses,
               "Record ICE candidate addresses as salted hashes instead of in the clear")
      ->group(group);
  if (with_metrics_port) {
    cmd.add_option("--metrics-port", f.metrics_port,
                   "Serve Prometheus metrics at http://HOST:PORT/metrics (0 = any free port)")
        ->check(CLI::Range(0, 65535))
        ->group(group);
    cmd.add_option("--metrics-host", f.metrics_host, "Address for --metrics-port")
        ->capture_default_str()
        ->group(group);
  }
}

observe::NodeOptions node_options(const NodeFlags& f, const std::string& role) {
  observe::NodeOptions o;
  o.data_dir = f.data_dir;
  o.witness_path = f.witness;
  o.no_witness = f.no_witness;
  o.policy.message_sample_every = f.sample_every;
  o.policy.hash_addresses = f.hash_addresses;
  if (f.hash_addresses) o.policy.address_salt = witness::random_salt();  // per run, never stored
  o.role = role;
  return o;
}

OpenedNode::~OpenedNode() {
  exposer.reset();  // stop serving before the registry and node go
  if (node) node->close();
}

std::unique_ptr<OpenedNode> open_node(const NodeFlags& f, const std::string& role,
                                      bool webrtc_metrics) {
  auto out = std::make_unique<OpenedNode>();
  out->registry = std::make_shared<prometheus::Registry>();
  auto options = node_options(f, role);
  options.webrtc_metrics = webrtc_metrics;
  auto node = observe::Node::open(options, out->registry);
  if (!node) {
    std::fprintf(stderr, "rtcmesh %s: %s\n", role.c_str(), node.error().message.c_str());
    return nullptr;
  }
  out->node = std::move(node.value());
  if (f.metrics_port >= 0) {
    const std::string host = f.metrics_host.find(':') != std::string::npos
                                 ? "[" + f.metrics_host + "]"
                                 : f.metrics_host;  // IPv6
    const std::string bind = host + ":" + std::to_string(f.metrics_port);
    try {
      out->exposer = std::make_unique<prometheus::Exposer>(bind, 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rtcmesh %s: cannot serve metrics on %s: %s\n", role.c_str(),
                   bind.c_str(), e.what());
      return nullptr;
    }
    out->exposer->RegisterCollectable(out->registry);
    auto ports = out->exposer->GetListeningPorts();
    out->metrics_url = "http://" + host + ":" +
                       std::to_string(ports.empty() ? f.metrics_port : ports.front()) + "/metrics";
  }
  return out;
}

}  // namespace rtcmesh::app
