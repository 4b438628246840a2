// Reads stdin line by line with poll(), so the reader can also be woken up by
// a signal or by another thread (wake()).
#pragma once

#include <optional>
#include <string>

namespace rtcmesh::app {

class StdinLines {
 public:
  StdinLines();
  ~StdinLines();
  StdinLines(const StdinLines&) = delete;
  StdinLines& operator=(const StdinLines&) = delete;

  enum class Status { Line, Eof, Woken };
  // Blocks until a full line (without "\n" or "\r\n"), end of input, or wake().
  Status next(std::string& line);
  // Thread- and async-signal-safe.
  void wake();
  int wake_fd() const { return pipe_[1]; }

 private:
  int pipe_[2] = {-1, -1};
  std::string buffer_;
  bool eof_ = false;
};

}  // namespace rtcmesh::app
