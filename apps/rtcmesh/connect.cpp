// `rtcmesh connect`: manual signaling over stdin/stdout, one data channel,
// lines in, messages out. The interop tests drive it through pipes. Stdout is
// written by console::LineWriter (a thread with high/low water back-pressure),
// stdin read by console::LineReader (src/console).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <mutex>

#include "base/base64.hpp"
#include "commands.hpp"
#include "console/line_reader.hpp"
#include "console/line_writer.hpp"
#include "node_flags.hpp"
#include "rtcmesh/peer_connection.hpp"
#include "witness/recorder.hpp"

namespace rtcmesh::app {
namespace {

struct ConnectOptions {
  bool offer = false;
  bool answer = false;
  std::string label = "data";
  std::string protocol;
  bool unordered = false;
  int max_retransmits = -1;
  int max_packet_life_time = -1;
  int negotiated_id = -1;
  bool echo = false;
  std::vector<std::string> ice_servers;
  std::string ice_username;
  std::string ice_credential;
  bool relay_only = false;
  bool ice_tcp = false;
  bool loopback = false;
  std::vector<std::string> bind_addresses;
  size_t max_message_size = 256 * 1024;
  int port_min = 0, port_max = 0;
  bool quiet = false;
  NodeFlags node;
};

// A channel's send queue above this stops stdin reading and the echo; both
// resume when it falls below kSendLowWater (DataChannel::send fails at 16 MiB).
constexpr size_t kSendHighWater = 4 << 20;
constexpr size_t kSendLowWater = 1 << 20;

console::LineReader* g_stdin = nullptr;
std::atomic<bool> g_interrupted{false};

void on_signal(int) {
  g_interrupted = true;
  if (g_stdin) g_stdin->wake();
}

class Session {
 public:
  explicit Session(const ConnectOptions& options, console::LineReader& input)
      : options_(options), input_(input) {}

  // Runs the session; whichever way it ends, the connection is closed and the
  // network thread has finished with it before this returns.
  int run() {
    int code = run_session();
    if (pc_) {
      pc_->close();
      {
        std::lock_guard<std::mutex> lock(state_mutex_);
        pc_shared_.reset();
      }
      pc_.reset();
    }
    // On timeout the remaining shutdowns are cut short by the exit; nothing to report.
    (void)wait_for_closing_connections(std::chrono::seconds(3));
    out_.finish();    // every received line reaches stdout before we exit
    opened_.reset();  // the final checkpoint, after the connection's last events
    return code;
  }

 private:
  int run_session();
  void status(const std::string& text) {
    if (options_.quiet && text.rfind("channel", 0) != 0) return;
    std::lock_guard<std::mutex> lock(out_mutex_);
    std::fprintf(stderr, "rtcmesh: %s\n", text.c_str());
    std::fflush(stderr);
  }
  void print_line(std::string text) { out_.push(std::move(text)); }
  // Receiving is paused while stdout has too much queued (kStdout) or the
  // echo's send queue is long (kEcho): SCTP's window closes instead of lines
  // or echoes being dropped.
  static constexpr unsigned kStdout = 1, kEcho = 2;
  void set_pressure(unsigned source, bool on) { pressure_.set(source, on); }
  // The gate's transitions, under its lock: queued to the network thread in order.
  void apply_pressure(bool paused, unsigned sources) {
    std::shared_ptr<PeerConnection> pc;
    {
      std::lock_guard<std::mutex> state_lock(state_mutex_);
      pc = pc_shared_;
    }
    if (!pc) return;
    if (paused)
      pc->pause_receiving();
    else
      pc->resume_receiving();
    if (!options_.quiet) {
      status(paused ? std::string("receiving paused (") +
                          (sources & kStdout ? "stdout is full" : "echo queue is long") + ")"
                    : "receiving resumed");
    }
  }
  void attach(const std::shared_ptr<DataChannel>& channel);
  enum class Applied { Yes, NotADescription, Fatal };
  Applied apply_remote(const std::string& line, const char* expected_type);
  bool wait_gathering();
  void send_line(const std::string& line);
  void finish(int code) {
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      if (exit_code_ < 0) exit_code_ = code;
    }
    state_cv_.notify_all();
    input_.wake();
  }

  const ConnectOptions& options_;
  console::LineReader& input_;
  std::mutex out_mutex_;
  std::unique_ptr<OpenedNode> opened_;  // declared before pc_: outlives the connection
  std::shared_ptr<PeerConnection> pc_;
  std::mutex state_mutex_;
  std::condition_variable state_cv_;
  std::shared_ptr<PeerConnection> pc_shared_;  // pc_ for the writer thread; guarded by state_mutex_
  console::PressureGate pressure_{
      [this](bool paused, unsigned sources) { apply_pressure(paused, sources); }};
  console::LineWriter out_{[this](bool full) { set_pressure(kStdout, full); }};
  std::shared_ptr<DataChannel> channel_;  // guarded by state_mutex_
  bool open_ = false;
  bool closed_ = false;
  bool gathered_ = false;
  int exit_code_ = -1;
};

void Session::attach(const std::shared_ptr<DataChannel>& channel) {
  std::weak_ptr<DataChannel> weak = channel;
  channel->on_open([this, weak] {
    auto c = weak.lock();
    status("channel open (label \"" + (c ? c->label() : "") + "\", id " +
           (c && c->id() ? std::to_string(*c->id()) : "?") + ")");
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      open_ = true;
    }
    state_cv_.notify_all();
    input_.wake();
  });
  channel->on_message([this, weak](const Message& m) {
    if (m.binary) {
      print_line("binary:" + base::base64_encode(m.data));
    } else {
      print_line(std::string(m.text()));
    }
    if (options_.echo) {
      if (auto c = weak.lock()) {
        auto sent = m.binary ? c->send(m.data) : c->send(m.text());
        if (!sent) status("echo failed: " + to_string(sent.error()));
        if (c->buffered_amount() > kSendHighWater) set_pressure(kEcho, true);
      }
    }
  });
  channel->set_buffered_amount_low_threshold(kSendLowWater);
  channel->on_buffered_amount_low([this] {
    set_pressure(kEcho, false);
    state_cv_.notify_all();  // send_line() waits for this
  });
  channel->on_close([this] {
    status("channel closed");
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      closed_ = true;
    }
    finish(0);
  });
  channel->on_error([this](const Error& error) { status("channel error: " + to_string(error)); });
  std::lock_guard<std::mutex> lock(state_mutex_);
  channel_ = channel;
}

Session::Applied Session::apply_remote(const std::string& line, const char* expected_type) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    status(std::string("error: expected a JSON ") + expected_type + " line, got invalid JSON");
    return Applied::Fatal;
  }
  if (j.contains("candidate") && j["candidate"].is_string()) {
    IceCandidate c;
    c.candidate = j["candidate"].get<std::string>();
    if (j.contains("sdpMid") && j["sdpMid"].is_string()) c.sdp_mid = j["sdpMid"].get<std::string>();
    auto added = pc_->add_ice_candidate(c);
    status(added ? "remote candidate added" : "candidate ignored: " + to_string(added.error()));
    return Applied::NotADescription;
  }
  if (!j.contains("type") || !j["type"].is_string() || !j.contains("sdp") ||
      !j["sdp"].is_string()) {
    status(std::string("error: expected {\"type\":\"") + expected_type + "\",\"sdp\":...}");
    return Applied::Fatal;
  }
  SessionDescription d{j["type"].get<std::string>(), j["sdp"].get<std::string>()};
  if (d.type != expected_type) {
    status("error: expected an " + std::string(expected_type) + ", got type \"" + d.type + "\"");
    return Applied::Fatal;
  }
  auto applied = pc_->set_remote_description(d);
  if (!applied) {
    status("error: the remote " + std::string(expected_type) +
           " cannot be applied: " + to_string(applied.error()));
    return Applied::Fatal;
  }
  status(std::string("remote ") + expected_type + " applied");
  return Applied::Yes;
}

bool Session::wait_gathering() {
  std::unique_lock<std::mutex> lock(state_mutex_);
  state_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return gathered_ || exit_code_ >= 0; });
  return gathered_;
}

void Session::send_line(const std::string& line) {
  std::shared_ptr<DataChannel> channel;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    channel = channel_;
  }
  if (!channel) return;
  // Stdin backpressure: while the channel's queue is long, stop reading stdin
  // (the writer blocks on the pipe) rather than fail a send.
  while (channel->buffered_amount() > kSendHighWater) {
    std::unique_lock<std::mutex> lock(state_mutex_);
    if (exit_code_ >= 0 || closed_ || g_interrupted) return;
    state_cv_.wait_for(lock, std::chrono::milliseconds(50));
  }
  Status sent;
  if (line.rfind("binary:", 0) == 0) {
    auto bytes = base::base64_decode(std::string_view(line).substr(7));
    if (!bytes) {
      status("error: bad base64 after 'binary:'; line not sent");
      return;
    }
    sent = channel->send(std::span<const uint8_t>(bytes->data(), bytes->size()));
  } else {
    sent = channel->send(line);
  }
  if (!sent) status("send failed: " + to_string(sent.error()));
}

int Session::run_session() {
  Configuration config;
  if (options_.loopback) config.gather_addresses = {"127.0.0.1"};
  for (const auto& a : options_.bind_addresses) config.gather_addresses.push_back(a);
  for (const auto& url : options_.ice_servers) {
    config.ice_servers.push_back({{url}, options_.ice_username, options_.ice_credential});
  }
  if (options_.relay_only) config.ice_transport_policy = IceTransportPolicy::Relay;
  config.enable_ice_tcp = options_.ice_tcp;
  config.max_message_size = options_.max_message_size;
  config.port_range_begin = static_cast<uint16_t>(options_.port_min);
  config.port_range_end = static_cast<uint16_t>(options_.port_max);
  opened_ = open_node(options_.node, "connect");
  if (!opened_) return 1;
  config.observer = opened_->node->observe_connection("", "");
  if (!options_.quiet && opened_->node->recorder()) {
    status("witness " + opened_->node->recorder()->path() +
           (opened_->metrics_url.empty() ? "" : ", metrics " + opened_->metrics_url));
  } else if (!options_.quiet && !opened_->metrics_url.empty()) {
    status("metrics " + opened_->metrics_url);
  }
  auto created = PeerConnection::create(config);
  if (!created) {
    status("error: " + to_string(created.error()));
    return 2;
  }
  pc_ = created.value();
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    pc_shared_ = pc_;
  }
  pc_->on_ice_gathering_state_change([this](IceGatheringState s) {
    if (s != IceGatheringState::Complete) return;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      gathered_ = true;
    }
    state_cv_.notify_all();
  });
  pc_->on_connection_state_change([this](PeerConnectionState s) {
    status(std::string("connection state ") + to_string(s));
    if (s == PeerConnectionState::Connected) {
      auto stats = pc_->get_stats();
      if (stats.selected_candidate_pair) {
        const auto& p = *stats.selected_candidate_pair;
        status("selected pair " + p.local.candidate_type + " " + p.local.address + ":" +
               std::to_string(p.local.port) + " <-> " + p.remote.candidate_type + " " +
               p.remote.address + ":" + std::to_string(p.remote.port));
      }
    }
    if (s == PeerConnectionState::Failed) finish(1);
  });
  pc_->on_error([this](const Error& error) { status("connection failed: " + to_string(error)); });
  pc_->on_data_channel([this](std::shared_ptr<DataChannel> channel) {
    attach(channel);
    // on_open already fired inside this callback's caller only after we return,
    // so attach() sees it.
  });

  DataChannelInit init;
  init.ordered = !options_.unordered;
  if (options_.max_retransmits >= 0)
    init.max_retransmits = static_cast<uint16_t>(options_.max_retransmits);
  if (options_.max_packet_life_time >= 0) {
    init.max_packet_life_time = static_cast<uint16_t>(options_.max_packet_life_time);
  }
  init.protocol = options_.protocol;
  if (options_.negotiated_id >= 0) {
    init.negotiated = true;
    init.id = static_cast<uint16_t>(options_.negotiated_id);
  }
  if (options_.offer || init.negotiated) {
    auto channel = pc_->create_data_channel(options_.label, init);
    if (!channel) {
      status("error: " + to_string(channel.error()));
      return 2;
    }
    attach(channel.value());
  }

  std::string line;
  if (options_.answer) {
    status("waiting for the offer on stdin");
    for (;;) {
      auto st = input_.next(line);
      if (st != console::LineReader::Status::Line) return 0;  // EOF or signal before any offer
      if (line.empty()) continue;
      auto applied = apply_remote(line, "offer");
      if (applied == Applied::Fatal) return 1;
      if (applied == Applied::Yes) break;
    }
  }
  if (auto set = pc_->set_local_description(); !set) {
    status("error: " + to_string(set.error()));
    return 1;
  }
  if (!wait_gathering()) {
    if (exit_code_ >= 0) return exit_code_;
    status("error: ICE gathering did not complete");
    return 1;
  }
  auto local = pc_->local_description();
  print_line(nlohmann::json{{"type", local->type}, {"sdp", local->sdp}}.dump());
  if (options_.offer) {
    status("waiting for the answer on stdin");
    for (;;) {
      auto st = input_.next(line);
      if (st == console::LineReader::Status::Eof || g_interrupted) return 0;
      if (st != console::LineReader::Status::Line) {
        std::lock_guard<std::mutex> lock(state_mutex_);
        if (exit_code_ >= 0) return exit_code_;
        continue;
      }
      if (line.empty()) continue;
      auto applied = apply_remote(line, "answer");
      if (applied == Applied::Fatal) return 1;
      if (applied == Applied::Yes) break;
    }
  }

  // Bridge: stdin lines -> messages. Lines typed before the channel opens wait.
  std::deque<std::string> pending;
  bool stdin_done = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      if (exit_code_ >= 0) break;
      if (open_) {
        while (!pending.empty()) {
          auto l = std::move(pending.front());
          pending.pop_front();
          state_mutex_.unlock();
          send_line(l);
          state_mutex_.lock();
        }
      }
      if (stdin_done && open_ && pending.empty()) break;
    }
    if (g_interrupted) break;
    if (stdin_done) {
      std::unique_lock<std::mutex> lock(state_mutex_);
      state_cv_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    auto st = input_.next(line);
    if (st == console::LineReader::Status::Line) {
      bool is_open;
      {
        std::lock_guard<std::mutex> lock(state_mutex_);
        is_open = open_ && pending.empty();
      }
      if (is_open)
        send_line(line);
      else
        pending.push_back(line);
    } else if (st == console::LineReader::Status::Eof) {
      stdin_done = true;
      std::lock_guard<std::mutex> lock(state_mutex_);
      if (!open_) break;  // nothing to flush: close right away
    }
  }

  int code;
  std::shared_ptr<DataChannel> channel;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    code = exit_code_ >= 0 ? exit_code_ : 0;
    channel = channel_;
  }
  if (channel && !closed_ && channel->ready_state() == DataChannelState::Open) {
    // Close by stream reset after the queued messages, and give the peer a
    // moment to answer so it sees a clean close.
    channel->close();
    std::unique_lock<std::mutex> lock(state_mutex_);
    state_cv_.wait_for(lock, std::chrono::seconds(3), [&] { return closed_; });
  }
  return code;
}

}  // namespace

Runner add_connect_command(CLI::App& app) {
  auto options = std::make_shared<ConnectOptions>();
  auto* cmd = app.add_subcommand(
      "connect",
      "Connect to one peer with manual signaling: descriptions as JSON lines on stdin/stdout, "
      "then stdin lines become messages and messages are printed as lines");
  auto* offer = cmd->add_flag("--offer", options->offer, "Create the offer (and the data channel)");
  auto* answer = cmd->add_flag("--answer", options->answer, "Read an offer and answer it");
  offer->excludes(answer);
  cmd->add_option("--label", options->label, "Data channel label")->capture_default_str();
  cmd->add_option("--protocol", options->protocol, "Data channel sub-protocol");
  cmd->add_flag("--unordered", options->unordered, "Unordered delivery");
  auto* rexmit = cmd->add_option("--max-retransmits", options->max_retransmits,
                                 "Partial reliability: at most N retransmissions")
                     ->check(CLI::Range(0, 65535));
  cmd->add_option("--max-packet-life-time", options->max_packet_life_time,
                  "Partial reliability: give up after MS milliseconds")
      ->check(CLI::Range(0, 65535))
      ->excludes(rexmit);
  cmd->add_option("--negotiated-id", options->negotiated_id,
                  "Negotiated channel with this SCTP stream id (both sides must agree)")
      ->check(CLI::Range(0, 1023));
  cmd->add_flag("--echo", options->echo, "Send every received message straight back");
  cmd->add_option("--ice-server", options->ice_servers,
                  "STUN/TURN URL (stun:, turn:, turns:, ?transport=tcp); repeatable");
  cmd->add_option("--ice-username", options->ice_username, "Username for TURN servers");
  cmd->add_option("--ice-credential", options->ice_credential, "Credential for TURN servers");
  cmd->add_flag("--relay-only", options->relay_only, "ICE transport policy 'relay'");
  cmd->add_flag("--ice-tcp", options->ice_tcp, "Also gather ICE-TCP candidates (RFC 6544)");
  cmd->add_flag("--loopback", options->loopback, "Gather host candidates on 127.0.0.1 only");
  cmd->add_option("--bind", options->bind_addresses, "Gather host candidates on this address");
  cmd->add_option("--max-message-size", options->max_message_size,
                  "Largest message we accept (a=max-message-size)")
      ->check(CLI::Range(size_t{1024}, size_t{64} << 20))
      ->capture_default_str();
  cmd->add_option("--port-min", options->port_min, "Lowest local port")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--port-max", options->port_max, "Highest local port")
      ->check(CLI::Range(0, 65535));
  cmd->add_flag("--quiet", options->quiet, "Only channel status lines on stderr");
  add_node_flags(*cmd, options->node, true);
  return [cmd, options]() -> int {
    if (!options->offer && !options->answer) {
      std::fprintf(stderr, "rtcmesh connect: give --offer or --answer (see --help)\n");
      return 2;
    }
    (void)cmd;
    console::LineReader input;
    g_stdin = &input;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    Session session(*options, input);
    int code = session.run();
    g_stdin = nullptr;
    return code;
  };
}

}  // namespace rtcmesh::app
