// The console layer over real pipes: line splitting, wake-ups, and the bounded
// writer's back-pressure (high/low water) and broken-reader handling.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "console/line_reader.hpp"
#include "console/line_writer.hpp"

namespace rtcmesh::console {
namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  int read_end() const { return fds[0]; }
  int write_end() const { return fds[1]; }
  void close_read() {
    if (fds[0] >= 0) ::close(fds[0]);
    fds[0] = -1;
  }
  void close_write() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
  void write(const std::string& s) const {
    ASSERT_EQ(::write(fds[1], s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  // Reads until `n` bytes or EOF.
  std::string read(size_t n) const {
    std::string out;
    char buf[4096];
    while (out.size() < n) {
      ssize_t got = ::read(fds[0], buf, std::min(sizeof buf, n - out.size()));
      if (got <= 0) break;
      out.append(buf, static_cast<size_t>(got));
    }
    return out;
  }
};

TEST(LineReader, SplitsLinesStripsCrAndReturnsTheLastUnterminatedLine) {
  Pipe p;
  LineReader reader(p.read_end());
  p.write("one\r\ntwo\n\nthr");
  p.write("ee\nlast");
  p.close_write();
  std::vector<std::string> lines;
  std::string line;
  LineReader::Status st;
  while ((st = reader.next(line)) == LineReader::Status::Line) lines.push_back(line);
  EXPECT_EQ(st, LineReader::Status::Eof);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "", "three", "last"}));
  EXPECT_EQ(reader.next(line), LineReader::Status::Eof);
}

TEST(LineReader, WakeInterruptsABlockedRead) {
  Pipe p;
  LineReader reader(p.read_end());
  std::thread waker([&] { reader.wake(); });
  std::string line;
  EXPECT_EQ(reader.next(line), LineReader::Status::Woken);  // nothing was written
  waker.join();
  p.write("after\n");
  ASSERT_EQ(reader.next(line), LineReader::Status::Line);
  EXPECT_EQ(line, "after");
}

// Records the pressure calls and lets the test wait for one.
class PressureLog {
 public:
  void operator()(bool on) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(on);
    }
    cv_.notify_all();
  }
  bool wait_for_count(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_.size() >= n; });
  }
  std::vector<bool> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> calls_;
};

TEST(LineWriter, PausesAboveHighWaterResumesBelowLowWaterAndLosesNothing) {
  Pipe p;
  ASSERT_GT(::fcntl(p.write_end(), F_SETPIPE_SZ, 4096), 0);  // a reader that is slow: a small pipe
  PressureLog log;
  LineWriterOptions o;
  o.fd = p.write_end();
  o.high_water = 16 * 1024;
  o.low_water = 4 * 1024;
  LineWriter writer([&](bool on) { log(on); }, o);

  // 64 lines of 1 KiB: the pipe takes 4 KiB, the rest waits in the writer.
  std::string expected;
  for (int i = 0; i < 64; ++i) {
    std::string line = std::to_string(i) + ":" + std::string(1020, static_cast<char>('a' + i % 26));
    expected += line + "\n";
    writer.push(line);
  }
  ASSERT_TRUE(log.wait_for_count(1));
  EXPECT_EQ(log.calls(), std::vector<bool>{true});  // once, however many lines pass high water
  EXPECT_GT(writer.queued(), o.low_water);

  // The reader catches up: pressure is released once, and every byte arrives in order.
  std::string got = p.read(expected.size());
  ASSERT_TRUE(log.wait_for_count(2));
  EXPECT_EQ(log.calls(), (std::vector<bool>{true, false}));
  EXPECT_EQ(got, expected);
  writer.finish();
  EXPECT_EQ(writer.queued(), 0u);
  EXPECT_FALSE(writer.broken());
}

TEST(LineWriter, FinishWritesEverythingQueued) {
  Pipe p;
  LineWriterOptions o;
  o.fd = p.write_end();
  LineWriter writer(nullptr, o);
  for (int i = 0; i < 1000; ++i) writer.push("line " + std::to_string(i));
  writer.finish();
  writer.push("ignored after finish");
  p.close_write();
  std::string got = p.read(1 << 20);
  std::string expected;
  for (int i = 0; i < 1000; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(got, expected);
}

TEST(LineWriter, AGoneReaderBreaksTheWriterAndReleasesPressure) {
  std::signal(SIGPIPE, SIG_IGN);  // as the rtcmesh binary does
  Pipe p;
  ASSERT_GT(::fcntl(p.write_end(), F_SETPIPE_SZ, 4096), 0);
  PressureLog log;
  LineWriterOptions o;
  o.fd = p.write_end();
  o.high_water = 8 * 1024;
  o.low_water = 1024;
  LineWriter writer([&](bool on) { log(on); }, o);
  for (int i = 0; i < 32; ++i) writer.push(std::string(1023, 'x'));
  ASSERT_TRUE(log.wait_for_count(1));
  p.close_read();  // the reader exits: EPIPE
  ASSERT_TRUE(log.wait_for_count(2));
  EXPECT_EQ(log.calls(), (std::vector<bool>{true, false}));
  EXPECT_TRUE(writer.broken());
  EXPECT_EQ(writer.queued(), 0u);
  writer.push("dropped");
  EXPECT_EQ(writer.queued(), 0u);
  writer.finish();
}

TEST(PressureGate, CallsOnTheFirstSourceOnAndTheLastOff) {
  std::vector<std::pair<bool, unsigned>> calls;
  PressureGate gate([&](bool paused, unsigned sources) { calls.emplace_back(paused, sources); });
  EXPECT_TRUE(gate.set(1, true));
  EXPECT_TRUE(gate.set(2, true));
  EXPECT_TRUE(gate.set(1, true));
  EXPECT_TRUE(gate.set(1, false));
  EXPECT_EQ(gate.sources(), 2u);
  EXPECT_FALSE(gate.set(2, false));
  EXPECT_FALSE(gate.set(2, false));
  EXPECT_EQ(calls, (std::vector<std::pair<bool, unsigned>>{{true, 1u}, {false, 0u}}));
}

}  // namespace
}  // namespace rtcmesh::console
