// Reads a file descriptor (stdin by default) line by line with poll(), so the
// reader can also be woken by a signal handler or by another thread (wake()).
#pragma once

#include <unistd.h>
#include <string>

namespace rtcmesh::console {

class LineReader {
 public:
  explicit LineReader(int fd = STDIN_FILENO);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  enum class Status { Line, Eof, Woken };
  // Blocks until a full line (without "\n" or "\r\n"), the end of input (a last
  // line without a newline is returned first), or wake(). One reader thread.
  Status next(std::string& line);
  // Thread- and async-signal-safe: the pending or next next() returns Woken.
  void wake();

 private:
  int fd_;
  int pipe_[2] = {-1, -1};
  std::string buffer_;
  bool eof_ = false;
};

}  // namespace rtcmesh::console
