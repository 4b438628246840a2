// Writes lines to a file descriptor (stdout by default) on a thread of its own,
// so that a reader that stops reading never blocks the caller (the network
// thread). It is a bounded buffer with hysteresis: when more than `high_water`
// bytes wait, pressure(true) is called (`rtcmesh connect` then pauses receiving:
// SCTP's window closes and the remote's sends wait); once below `low_water`,
// pressure(false). Every accepted line is written, in order, unless the reader
// is gone (EPIPE or another write error): then the rest is dropped and
// broken() is true. SIGPIPE must be ignored by the process.
#pragma once

#include <unistd.h>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace rtcmesh::console {

struct LineWriterOptions {
  int fd = STDOUT_FILENO;
  size_t high_water = 4 << 20;
  size_t low_water = 1 << 20;
};

class LineWriter {
 public:
  // pressure runs on the caller of push() (true) or on the writer thread
  // (false), never under the writer's lock.
  explicit LineWriter(std::function<void(bool)> pressure, LineWriterOptions options = {});
  ~LineWriter();  // finish()
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  // Any thread; never blocks on the descriptor. Appends "\n".
  void push(std::string line);
  // Writes what is queued (until the reader is gone), then stops the thread.
  // Idempotent; push() after it is ignored.
  void finish();

  size_t queued() const;  // bytes accepted and not yet written
  bool broken() const;

 private:
  void run();
  bool write_all(const std::string& data);

  std::function<void(bool)> pressure_;
  const LineWriterOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  size_t queued_ = 0;
  bool paused_ = false;
  bool broken_ = false;
  bool done_ = false;
  std::thread thread_;
};

// Pause/resume from several independent sources (a full stdout, a long send
// queue): `on_change(true)` when the first source turns on, `on_change(false)`
// when the last turns off. on_change runs under the gate's lock, so the calls
// reach their target in the order the transitions happened.
class PressureGate {
 public:
  explicit PressureGate(std::function<void(bool paused, unsigned sources)> on_change)
      : on_change_(std::move(on_change)) {}
  // `source` is a bit; returns whether the gate is now paused.
  bool set(unsigned source, bool on);
  unsigned sources() const;

 private:
  std::function<void(bool, unsigned)> on_change_;
  mutable std::mutex mutex_;
  unsigned sources_ = 0;
};

}  // namespace rtcmesh::console
