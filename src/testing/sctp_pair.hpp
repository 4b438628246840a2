// Two SctpTransports over a MemoryLink on one ManualExecutor (virtual time, no
// DTLS): the two-side fixture of the SCTP tests. SctpEndpoint records what one
// transport reports; it also works on a real base::Loop (callbacks on the loop
// thread, the test thread waits on a condition variable) when `executor` is null.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sctp/sctp_transport.hpp"
#include "testing/manual_executor.hpp"
#include "testing/memory_link.hpp"

namespace rtcmesh::testing {

struct SctpReceived {
  uint16_t stream;
  uint32_t ppid;
  std::vector<uint8_t> data;
};

// Records everything one transport reports, under `mutex`.
struct SctpEndpoint {
  using State = sctp::State;

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<SctpReceived> messages;
  std::vector<std::pair<State, std::string>> states;
  std::vector<uint16_t> resets;
  std::vector<std::pair<uint16_t, size_t>> buffered;
  std::vector<std::string> log;  // "m<stream>" / "r<stream>" in arrival order
  bool keep_data = true;
  uint64_t bytes = 0;
  size_t count = 0;
  // Optional hooks, run on the executor after recording (without the mutex).
  std::function<void(uint16_t, uint32_t, ByteSpan)> on_message;
  std::function<void(uint16_t, size_t)> on_buffered;
  std::function<void(State)> on_state;
  std::unique_ptr<sctp::SctpTransport> transport;
  // Set: wait() runs this executor in virtual time. Null: wait() blocks on `cv`.
  ManualExecutor* executor = nullptr;

  sctp::Callbacks callbacks();

  // Until `predicate()` (called under the mutex) holds, for at most `timeout`
  // (virtual time with an executor).
  template <typename Predicate>
  bool wait(Predicate predicate, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (executor != nullptr) {
      return executor->run_until(
          [&] {
            std::lock_guard<std::mutex> lock(mutex);
            return predicate();
          },
          timeout);
    }
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, timeout, predicate);
  }

  bool reached(State state) const;
  bool wait_state(State state, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return wait([&] { return reached(state); }, timeout);
  }
  bool ended() const { return reached(State::Closed) || reached(State::Failed); }
};

class SctpPair {
 public:
  SctpPair();
  // Clears the link filters (they may capture a test's locals), destroys the
  // transports and the link, and runs what they left queued.
  ~SctpPair();
  SctpPair(const SctpPair&) = delete;
  SctpPair& operator=(const SctpPair&) = delete;

  void create(sctp::Options options_a = {}, sctp::Options options_b = {});
  // create() and start() both; true once both are Connected.
  bool connect(sctp::Options options_a = {}, sctp::Options options_b = {});
  bool send(SctpEndpoint& from, uint16_t stream, const std::vector<uint8_t>& data,
            sctp::SendOptions options = {}, uint32_t ppid = kPpidBinary);

  static constexpr uint32_t kPpidBinary = 53;  // RFC 8831 §8
  static constexpr uint32_t kPpidString = 51;

  ManualExecutor executor;
  std::unique_ptr<MemoryLink> link;
  SctpEndpoint a;
  SctpEndpoint b;
};

}  // namespace rtcmesh::testing
