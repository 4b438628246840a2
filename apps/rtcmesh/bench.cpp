// `rtcmesh bench`: the core benchmark. Two peers in one process over real UDP
// on 127.0.0.1 (SDP and candidates handed over in memory):
//   throughput  one reliable ordered channel, 64 KiB messages, driven by bufferedAmountLow
//   rtt         100-byte ping-pong, p50/p99 over N round trips
//   setup       createOffer -> channel open on both sides, over M connections
//   memory      resident memory per connection with K connections open
// Prints a table, or one JSON object with --json. bench/run compares against
// Chromium and aiortc.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <prometheus/registry.h>

#include "commands.hpp"
#include "observe/node.hpp"
#include "rtcmesh/peer_connection.hpp"
#include "testing/peer_pair.hpp"
#include "testing/waiter.hpp"
#include "witness/recorder.hpp"

namespace prometheus {
class Registry;
}

namespace rtcmesh::app {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  bool json = false;
  double seconds = 3.0;
  int round_trips = 2000;
  int setups = 15;
  int connections = 100;
  size_t message_size = 65536;
  std::string only;
  int threads = 2;
  int setup_threads = 1;
  std::string witness_compare;  // dir: throughput with the witness off vs on
  int rounds = 7;
  int witness_sample = 10;  // -1: metrics only, no log
};

// Observers for the two ends of a pair (null = none).
struct Observers {
  std::shared_ptr<ConnectionObserver> a, b;
};

// A connected pair with one open channel on each side: the test kit's pair
// (src/testing/peer_pair.hpp) plus the bench's channels.
struct Pair {
  Pair(const Configuration& a, const Configuration& b) : peers(a, b) {}
  testing::PeerPair peers;
  std::shared_ptr<DataChannel> da, db;
  double setup_ms = 0;
};

// threads == 2: the answerer gets a network thread of its own, as if the two
// peers were two processes; threads == 1: both share the process's thread.
std::unique_ptr<Pair> connect_pair(int threads = 1, const DataChannelInit& init = {},
                                   const Observers& obs = {}) {
  Configuration ca = testing::loopback_config(), cb = testing::loopback_config();
  ca.observer = obs.a;
  cb.dedicated_network_thread = threads > 1;
  cb.observer = obs.b;
  auto pair = std::make_unique<Pair>(ca, cb);
  if (!pair->peers.created)
    throw std::runtime_error("create: " + to_string(pair->peers.created.error()));
  // A refused candidate is not reported: a pair that cannot connect fails below.
  pair->peers.wire_candidates();
  auto signal = std::make_shared<testing::Waiter>();
  auto state = std::make_shared<std::atomic<int>>(0);
  Pair* raw = pair.get();
  pair->peers.answerer->on_data_channel([raw, signal, state](std::shared_ptr<DataChannel> c) {
    raw->db = c;
    ++*state;
    signal->notify();
  });
  auto t0 = Clock::now();
  auto channel = pair->peers.offerer->create_data_channel("bench", init);
  if (!channel) throw std::runtime_error(to_string(channel.error()));
  pair->da = channel.value();
  pair->da->on_open([signal, state] {
    ++*state;
    signal->notify();
  });
  if (auto s = pair->peers.negotiate(); !s) throw std::runtime_error(to_string(s.error()));
  if (!signal->wait([&] { return state->load() >= 2; }))
    throw std::runtime_error("channel did not open");
  pair->setup_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return pair;
}

// Linear interpolation between closest ranks (as bench/run's reference scripts).
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double rank = p * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(rank);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

double throughput_MBps(const BenchOptions& o, int threads, const Observers& obs = {}) {
  auto pair = connect_pair(threads, {}, obs);
  std::atomic<uint64_t> received{0};
  pair->db->on_message([&](const Message& m) { received += m.data.size(); });
  std::vector<uint8_t> chunk(o.message_size, 0x5a);
  std::atomic<bool> running{true};
  constexpr size_t kHigh = 1024 * 1024, kLow = 256 * 1024;
  auto channel = pair->da;
  auto pump = [&] {
    while (running && channel->buffered_amount() < kHigh) {
      if (!channel->send(std::span<const uint8_t>(chunk)))
        break;  // full: bufferedamountlow resumes
    }
  };
  channel->set_buffered_amount_low_threshold(kLow);
  channel->on_buffered_amount_low(pump);
  pump();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // warm-up: cwnd opens
  uint64_t start_bytes = received;
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  uint64_t bytes = received - start_bytes;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  running = false;
  channel->on_buffered_amount_low(nullptr);
  pair->db->on_message(nullptr);
  return static_cast<double>(bytes) / secs / 1e6;
}

std::pair<double, double> rtt_us(const BenchOptions& o, int threads) {
  auto pair = connect_pair(threads);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(o.round_trips));
  int warmup = 100, total = warmup + o.round_trips, done = 0;
  testing::Waiter signal;
  std::string ping(100, 'p');
  Clock::time_point sent_at;
  auto a = pair->da;
  auto b = pair->db;
  // A lost ping shows as the stall below.
  b->on_message([b](const Message& m) { (void)b->send(m.text()); });
  a->on_message([&](const Message&) {
    auto now = Clock::now();
    if (done >= warmup)
      samples.push_back(std::chrono::duration<double, std::micro>(now - sent_at).count());
    if (++done == total) {
      signal.notify();
      return;
    }
    sent_at = Clock::now();
    (void)a->send(ping);
  });
  sent_at = Clock::now();
  if (auto s = a->send(ping); !s) throw std::runtime_error(to_string(s.error()));
  if (!signal.wait([&] { return done == total; }, std::chrono::seconds(60))) {
    throw std::runtime_error("ping-pong stalled");
  }
  a->on_message(nullptr);
  b->on_message(nullptr);
  return {percentile(samples, 0.5), percentile(samples, 0.99)};
}

// The recording overhead: the same throughput run with no observer and with
// each end recording into its own node's witness log (durable, default policy:
// 1 message in 10 sampled, stats every 10 s) and counting metrics, as `rtcmesh
// peer` does. Off and on alternate so drift hits both alike.
int witness_compare(const BenchOptions& o) {
  std::vector<std::unique_ptr<observe::Node>> nodes;
  std::vector<std::shared_ptr<prometheus::Registry>> registries;
  for (const char* name : {"a", "b"}) {
    observe::NodeOptions no;
    no.data_dir = o.witness_compare + "/" + name;
    no.role = "bench";
    no.policy.message_sample_every = o.witness_sample;
    no.no_witness = o.witness_sample < 0;
    if (no.no_witness) no.policy.message_sample_every = 0;
    auto registry = std::make_shared<prometheus::Registry>();
    auto node = observe::Node::open(no, registry);
    if (!node) {
      std::fprintf(stderr, "rtcmesh bench: %s\n", node.error().message.c_str());
      return 1;
    }
    nodes.push_back(std::move(node.value()));
    registries.push_back(registry);
  }
  std::vector<double> off, on;
  auto total = [&](uint64_t witness::RecorderStats::*field) {
    uint64_t n = 0;
    for (auto& node : nodes) n += node->recorder() ? node->recorder()->stats().*field : 0;
    return n;
  };
  uint64_t events_before = total(&witness::RecorderStats::accepted);
  try {
    // ABBA order: off/on in even rounds, on/off in odd ones, so that whatever
    // the previous run leaves behind (a connection still shutting down, warm
    // caches) falls on both alike.
    for (int r = 0; r < o.rounds; ++r) {
      auto run_on = [&] {
        Observers obs{nodes[0]->observe_connection("bench-b", "round" + std::to_string(r)),
                      nodes[1]->observe_connection("bench-a", "round" + std::to_string(r))};
        on.push_back(throughput_MBps(o, o.threads, obs));
      };
      if (r % 2 == 0) {
        off.push_back(throughput_MBps(o, o.threads));
        run_on();
      } else {
        run_on();
        off.push_back(throughput_MBps(o, o.threads));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rtcmesh bench: %s\n", e.what());
    return 1;
  }
  for (auto& n : nodes) {
    if (n->recorder()) n->recorder()->flush();
  }
  uint64_t events = total(&witness::RecorderStats::accepted) - events_before;
  uint64_t rejected = total(&witness::RecorderStats::rejected);
  const double moff = percentile(off, 0.5), mon = percentile(on, 0.5);
  // Paired: each "on" round against the "off" round just before it, so a drift
  // of the machine over the run cancels out; the median of those.
  std::vector<double> paired;
  for (size_t i = 0; i < off.size(); ++i) {
    if (off[i] > 0) paired.push_back((off[i] - on[i]) / off[i] * 100.0);
  }
  nlohmann::json out = {
      {"throughput_witness_off_MBps", moff},
      {"throughput_witness_on_MBps", mon},
      {"witness_overhead_pct", percentile(paired, 0.5)},
      {"witness_overhead_of_medians_pct", moff > 0 ? (moff - mon) / moff * 100.0 : 0.0},
      {"witness_events_per_on_round", static_cast<double>(events) / o.rounds},
      {"witness_events_rejected", rejected},
      {"rounds", o.rounds},
      {"seconds_per_round", o.seconds},
      {"message_size", o.message_size}};
  out["off_runs_MBps"] = off;
  out["on_runs_MBps"] = on;
  for (auto& n : nodes) n->close();
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("throughput, %zu-byte messages, %d rounds of %.1f s, medians\n", o.message_size,
                o.rounds, o.seconds);
    std::printf("  witness off   %8.1f MB/s\n", moff);
    std::printf("  witness on    %8.1f MB/s   (%.0f events recorded per round)\n", mon,
                static_cast<double>(events) / o.rounds);
    std::printf(
        "  overhead      %8.2f %%   (median of paired rounds; of the medians %.2f %%; target < 3 "
        "%%)\n",
        out["witness_overhead_pct"].get<double>(),
        out["witness_overhead_of_medians_pct"].get<double>());
  }
  return 0;
}

long rss_kB() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

Runner add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure throughput, round-trip time, setup time and memory per connection over 127.0.0.1");
  cmd->add_flag("--json", o->json, "Print one JSON object instead of a table");
  cmd->add_option("--seconds", o->seconds, "Duration of the throughput run")->capture_default_str();
  cmd->add_option("--round-trips", o->round_trips, "Ping-pong round trips")->capture_default_str();
  cmd->add_option("--setups", o->setups, "Connections to time for setup")->capture_default_str();
  cmd->add_option("--connections", o->connections, "Connections held open for the memory figure")
      ->capture_default_str();
  cmd->add_option("--message-size", o->message_size, "Bulk message size")->capture_default_str();
  cmd->add_option("--only", o->only, "Run one workload: throughput, rtt, setup or memory")
      ->check(CLI::IsMember({"throughput", "rtt", "setup", "memory"}));
  cmd->add_option("--setup-threads", o->setup_threads, "Network threads for the setup pairs")
      ->check(CLI::Range(1, 2))
      ->capture_default_str();
  cmd->add_option(
         "--threads", o->threads,
         "Network threads for the throughput/RTT pair: 2 = one per peer (as two processes; "
         "the 1-thread figures are reported too), 1 = both peers on one thread")
      ->check(CLI::Range(1, 2))
      ->capture_default_str();
  cmd->add_option("--witness-compare", o->witness_compare,
                  "Throughput with the witness and metrics off vs on (two nodes' logs in DIR), "
                  "--rounds times each, interleaved; prints medians and the overhead");
  cmd->add_option(
         "--witness-sample", o->witness_sample,
         "For --witness-compare: record 1 message in N (0 = none, -1 = no log, metrics only)")
      ->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "Rounds for --witness-compare")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  return [o]() -> int {
    nlohmann::json out;
    auto want = [&](const char* name) { return o->only.empty() || o->only == name; };
    if (!o->witness_compare.empty()) return witness_compare(*o);
    try {
      if (want("throughput")) {
        out["throughput_MBps"] = throughput_MBps(*o, o->threads);
        if (o->threads > 1) out["throughput_one_thread_MBps"] = throughput_MBps(*o, 1);
      }
      if (want("rtt")) {
        auto [p50, p99] = rtt_us(*o, o->threads);
        out["rtt_p50_us"] = p50;
        out["rtt_p99_us"] = p99;
        if (o->threads > 1) {
          auto [q50, q99] = rtt_us(*o, 1);
          out["rtt_one_thread_p50_us"] = q50;
          out["rtt_one_thread_p99_us"] = q99;
        }
      }
      if (want("setup")) {
        std::vector<double> setups;
        for (int i = 0; i < o->setups; ++i)
          setups.push_back(connect_pair(o->setup_threads)->setup_ms);
        out["setup_ms"] = percentile(setups, 0.5);
        out["setup_p10_ms"] = percentile(setups, 0.1);
        out["setup_p90_ms"] = percentile(setups, 0.9);
        out["setup_max_ms"] = *std::max_element(setups.begin(), setups.end());
      }
      if (want("memory")) {
        // Warm the process up (one connection, then closed) so one-time
        // allocations are not charged to the connections measured.
        connect_pair().reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        long before = rss_kB();
        std::vector<std::unique_ptr<Pair>> pairs;
        for (int i = 0; i < o->connections / 2; ++i) pairs.push_back(connect_pair());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        long after = rss_kB();
        out["rss_per_connection_kB"] =
            static_cast<double>(after - before) / (2.0 * static_cast<double>(pairs.size()));
        out["connections"] = 2 * pairs.size();
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rtcmesh bench: %s\n", e.what());
      return 1;
    }
    if (o->json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("%-28s %12s\n", "metric", "rtcmesh");
      for (auto& [k, v] : out.items()) std::printf("%-28s %12.1f\n", k.c_str(), v.get<double>());
    }
    return 0;
  };
}

}  // namespace rtcmesh::app
