#include "observe/node.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "identity/identity.hpp"
#include "observe/metrics.hpp"
#include "witness/events.hpp"
#include "witness/format.hpp"
#include "witness/recorder.hpp"

namespace rtcmesh::observe {

namespace {

// Writes `text` to `path` through a temporary file and rename, so a reader never
// sees half a checkpoint.
Status write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return make_error("cannot write " + tmp + ": " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return make_error("cannot rename " + tmp + ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Node>> Node::open(const NodeOptions& options,
                                         std::shared_ptr<prometheus::Registry> registry) {
  auto node = std::unique_ptr<Node>(new Node());
  node->options_ = options;
  node->data_dir_ = options.data_dir.empty() ? identity::default_data_dir() : options.data_dir;
  auto id = identity::Identity::load_or_create(node->data_dir_);
  if (!id) return id.error();
  node->identity_ = id.value();
  if (registry) {
    node->witness_metrics_ = std::make_shared<WitnessMetrics>(*registry);
    if (options.webrtc_metrics) node->rtc_metrics_ = std::make_shared<RtcMetrics>(*registry);
  }
  if (!options.no_witness) {
    // The default log is one per process: when another process of this node
    // (a second `rtcmesh connect`, say) holds witness.log, the next free
    // witness.N.log is used. An explicit --witness PATH never moves.
    const bool default_path = options.witness_path.empty();
    std::string path = default_path ? node->data_dir_ + "/witness.log" : options.witness_path;
    witness::RecorderOptions ro;
    ro.env = options.witness_env;
    if (auto m = node->witness_metrics_) {
      ro.on_recorded = [m](std::string_view type, std::chrono::microseconds latency) {
        m->recorded(type, latency);
      };
      ro.on_batch = [m](size_t events, std::chrono::microseconds write_sync,
                        const witness::RecorderStats& s) {
        if (events) m->batch(events, write_sync);
        m->set_queue_depth(s.accepted - s.durable);
        m->set_dropped(s.rejected);
      };
    }
    // The recorder logs the problem itself; the metrics show it to a scraper.
    ro.on_io_error = [m = node->witness_metrics_](const witness::IoProblem& p) {
      if (!m) return;
      const int state = p.kind == witness::IoProblem::Kind::Retrying ? 1
                        : p.kind == witness::IoProblem::Kind::Sealed ? 2
                                                                     : 0;
      m->set_io_state(state, p.io_errors,
                      p.kind == witness::IoProblem::Kind::Sealed ? p.not_durable : 0);
    };
    auto recorder = witness::Recorder::open(path, node->identity_, ro);
    for (int n = 1;
         default_path && !recorder && n <= 64 &&
         recorder.error().message.find("in use by another recorder") != std::string::npos;
         ++n) {
      path = node->data_dir_ + "/witness." + std::to_string(n) + ".log";
      recorder = witness::Recorder::open(path, node->identity_, ro);
    }
    if (!recorder) {
      std::string message = recorder.error().message;
      if (message.find("in use by another recorder") != std::string::npos) {
        message +=
            " (another rtcmesh process records there: give this one its own --data-dir, or "
            "--witness PATH, or --no-witness)";
      }
      return make_error("witness: " + message);
    }
    node->recorder_ = std::move(recorder.value());
    nlohmann::json d = {{"node_id", node->identity_->node_id()},
                        {"role", options.role},
                        {"pid", static_cast<int64_t>(::getpid())}};
    node->recorder_->record("node_started", std::move(d));
  }
  return node;
}

Node::~Node() {
  close();
}

const std::string& Node::node_id() const {
  return identity_->node_id();
}

std::shared_ptr<ConnectionObserver> Node::observe_connection(const std::string& peer_id,
                                                             const std::string& session) {
  if (!recorder_ && !rtc_metrics_) return nullptr;
  return std::make_shared<ConnectionWitness>(recorder_, rtc_metrics_, options_.policy, peer_id,
                                             session);
}

bool Node::record(std::string event_type, nlohmann::json data) {
  if (!recorder_) return false;
  return recorder_->record(std::move(event_type), std::move(data)).has_value();
}

bool Node::record_hub_event(std::string_view type, std::string_view room, std::string_view peer,
                            std::string_view reason, bool resumed, uint64_t count) {
  if (!recorder_) return false;
  nlohmann::json data = {{"room", std::string(room)}};
  if (!peer.empty()) data["peer_id"] = std::string(peer);
  if (!reason.empty()) data["reason"] = std::string(reason);
  if (type == witness::events::kHubJoin) data["resumed"] = resumed;
  if (type == witness::events::kHubReject) data["count"] = count;
  return record(std::string(type), std::move(data));
}

nlohmann::json Node::latest_checkpoint() const {
  return recorder_ ? recorder_->latest_checkpoint() : nlohmann::json();
}

std::string Node::peer_checkpoint_path(const std::string& origin) const {
  return data_dir_ + "/peers/" + origin + ".checkpoint.json";
}

Result<std::string> Node::keep_peer_checkpoint(const std::string& peer_id,
                                               const nlohmann::json& checkpoint) {
  if (!checkpoint.is_object()) return make_error("checkpoint is not an object");
  const std::string text = checkpoint.dump();
  auto parsed = witness::parse_peer_checkpoint(text);
  if (!parsed) return parsed.error();
  const auto& c = parsed.value();
  std::lock_guard<std::mutex> lock(peers_mutex_);
  const std::string dir = data_dir_ + "/peers";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error("cannot create " + dir + ": " + std::strerror(errno));
  }
  const std::string path = peer_checkpoint_path(c.origin);
  std::string note = "kept";
  uint64_t held_size = 0;
  bool replace = true;
  {
    std::ifstream in(path);
    if (in) {
      std::stringstream buffer;
      buffer << in.rdbuf();
      if (auto held = witness::Checkpoint::from_export(buffer.str());
          held && held->origin == c.origin) {
        held_size = held->size;
        if (held->size > c.size) {
          // A peer now claiming a shorter log than it signed before: its log was
          // cut or replaced. Keep the larger one; the verifier will name it.
          note = "older than the one held (size " + std::to_string(c.size) + " < " +
                 std::to_string(held->size) + ")";
          replace = false;
        } else if (held->size == c.size) {
          // Same size: the same claim again, or a second history of that size (a
          // fork: both are evidence; the first stays on disk, this one in our log).
          note = held->root == c.root ? "same as held"
                                      : "conflicts with the one held (same size, other root)";
          replace = false;
        }
      }
    }
  }
  if (replace) {
    if (auto s = write_atomically(path, c.export_json().dump(2) + "\n"); !s) return s.error();
  }
  if (recorder_) {
    nlohmann::json data = {{"peer_id", peer_id}, {"origin", c.origin},
                           {"size", c.size},     {"checkpoint", c.export_json()},
                           {"note", note},       {"held_size", held_size}};
    recorder_->record(std::string(witness::kTypePeerCheckpoint), std::move(data));
  }
  return note;
}

void Node::close() {
  if (recorder_) recorder_->close();
}

}  // namespace rtcmesh::observe
