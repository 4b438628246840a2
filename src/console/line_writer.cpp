#include "console/line_writer.hpp"

#include <cerrno>

namespace rtcmesh::console {

LineWriter::LineWriter(std::function<void(bool)> pressure, LineWriterOptions options)
    : pressure_(std::move(pressure)), options_(options), thread_([this] { run(); }) {}

LineWriter::~LineWriter() {
  finish();
}

void LineWriter::push(std::string line) {
  line.push_back('\n');
  bool pause = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (broken_ || done_) return;
    queued_ += line.size();
    lines_.push_back(std::move(line));
    if (!paused_ && queued_ > options_.high_water) pause = paused_ = true;
  }
  cv_.notify_one();
  if (pause && pressure_) pressure_(true);
}

void LineWriter::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_) return;
    done_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t LineWriter::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_;
}

bool LineWriter::broken() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return broken_;
}

bool LineWriter::write_all(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(options_.fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void LineWriter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return !lines_.empty() || done_; });
    if (lines_.empty()) return;
    std::deque<std::string> batch;
    batch.swap(lines_);
    lock.unlock();
    // One write per batch (a line at a time would cost a syscall per message).
    std::string joined;
    size_t written = 0;
    for (const auto& l : batch) written += l.size();
    joined.reserve(written);
    for (const auto& l : batch) joined += l;
    const bool ok = write_all(joined);
    lock.lock();
    queued_ -= written;
    if (!ok) {
      broken_ = true;  // the reader went away: drop the rest
      lines_.clear();
      queued_ = 0;
    }
    if (paused_ && queued_ < options_.low_water) {
      paused_ = false;
      lock.unlock();
      if (pressure_) pressure_(false);
      lock.lock();
    }
  }
}

bool PressureGate::set(unsigned source, bool on) {
  std::lock_guard<std::mutex> lock(mutex_);
  const unsigned before = sources_;
  sources_ = on ? (sources_ | source) : (sources_ & ~source);
  if ((before != 0) != (sources_ != 0) && on_change_) on_change_(sources_ != 0, sources_);
  return sources_ != 0;
}

unsigned PressureGate::sources() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sources_;
}

}  // namespace rtcmesh::console
