// `rtcmesh witness bench` (hidden; driven by bench/witness/run): events recorded
// durably per second (group commit, fdatasync per batch), events verified per
// second, and this process's Ed25519 sign/verify rates, i.e. the ceiling a
// signature on every record would impose.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "identity/identity.hpp"
#include "witness/recorder.hpp"
#include "witness/verifier.hpp"

namespace rtcmesh::app {

using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int run_witness_bench(const std::string& dir, uint64_t events, bool json) {
  auto id = identity::Identity::generate();
  if (!id) return 1;
  const std::string path = dir + "/rtcmesh-witness-bench-" + std::to_string(::getpid()) + ".wlog";
  ::unlink(path.c_str());

  // A realistic event: an ICE candidate with a hashed address.
  const nlohmann::json data = {
      {"peer_id", "node-0123456789abcdef"},
      {"direction", "local"},
      {"candidate_type", "host"},
      {"protocol", "udp"},
      {"priority", 2130706431},
      {"address", witness::salted_address_hash("salt", "127.0.0.1:50000")}};
  witness::RecorderOptions opt;
  opt.checkpoint_every = 10000;
  uint64_t batches = 0, rejected = 0;
  double record_s = 0;
  {
    auto rec = witness::Recorder::open(path, *id, opt);
    if (!rec) {
      std::fprintf(stderr, "witness bench: %s\n", rec.error().message.c_str());
      return 1;
    }
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < events; ++i) {
      while (!(*rec)->record("webrtc_ice_candidate", data)) std::this_thread::yield();
    }
    if (!(*rec)->flush()) return 1;
    record_s = seconds_since(t0);
    auto st = (*rec)->stats();
    batches = st.batches;
    rejected = st.rejected;
    (*rec)->close();
  }
  struct stat sb {};
  ::stat(path.c_str(), &sb);

  int fd = ::open(path.c_str(), O_RDONLY);
  void* map = ::mmap(nullptr, static_cast<size_t>(sb.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  std::string_view file(static_cast<const char*>(map), static_cast<size_t>(sb.st_size));
  std::vector<double> verify_rates;
  uint64_t verified = 0;
  for (int run = 0; run < 3; ++run) {
    auto t0 = Clock::now();
    auto report = witness::verify_log(file);
    double s = seconds_since(t0);
    if (!report.valid()) {
      std::fprintf(stderr, "witness bench: own log does not verify: %s", report.text().c_str());
      return 1;
    }
    verified = report.records;
    verify_rates.push_back(static_cast<double>(report.records) / s);
  }
  std::sort(verify_rates.begin(), verify_rates.end());
  ::munmap(map, static_cast<size_t>(sb.st_size));
  ::unlink(path.c_str());

  // Per-record signature ceiling, measured here through the same EVP calls.
  const std::string msg(200, 'm');
  uint64_t signs = 0;
  auto t0 = Clock::now();
  crypto::Signature sig{};
  while (seconds_since(t0) < 1.0) {
    for (int k = 0; k < 100; ++k) sig = (*id)->sign(msg);
    signs += 100;
  }
  double sign_rate = static_cast<double>(signs) / seconds_since(t0);
  auto verifier = crypto::Ed25519Verifier::from_raw((*id)->public_key());
  uint64_t verifies = 0;
  t0 = Clock::now();
  while (seconds_since(t0) < 1.0) {
    for (int k = 0; k < 100; ++k) verifies += verifier->verify(msg, sig) ? 1 : 0;
  }
  double verify_sig_rate = static_cast<double>(verifies) / seconds_since(t0);

  nlohmann::json j = {
      {"events", events},
      {"record_events_per_s", static_cast<double>(events) / record_s},
      {"record_batches", batches},
      {"record_rejected_retried", rejected},
      {"bytes_per_record", static_cast<double>(sb.st_size) / static_cast<double>(verified)},
      {"verify_events_per_s", verify_rates[1]},
      {"ed25519_sign_per_s", sign_rate},
      {"ed25519_verify_per_s", verify_sig_rate}};
  if (json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("recorded durably  %10.0f events/s  (%llu events, %llu fdatasync batches)\n",
                j["record_events_per_s"].get<double>(), static_cast<unsigned long long>(events),
                static_cast<unsigned long long>(batches));
    std::printf("verified          %10.0f events/s  (median of 3)\n", verify_rates[1]);
    std::printf("ed25519 sign      %10.0f /s   verify %10.0f /s  (per-record signature ceiling)\n",
                sign_rate, verify_sig_rate);
  }
  return 0;
}

}  // namespace rtcmesh::app
