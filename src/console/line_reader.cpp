#include "console/line_reader.hpp"

#include <fcntl.h>
#include <poll.h>

#include <cerrno>

namespace rtcmesh::console {

LineReader::LineReader(int fd) : fd_(fd) {
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
}

LineReader::~LineReader() {
  if (pipe_[0] >= 0) ::close(pipe_[0]);
  if (pipe_[1] >= 0) ::close(pipe_[1]);
}

void LineReader::wake() {
  char c = 1;
  (void)!::write(pipe_[1], &c, 1);
}

LineReader::Status LineReader::next(std::string& line) {
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      line.assign(buffer_, 0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return Status::Line;
    }
    if (eof_) {
      if (!buffer_.empty()) {  // the last line, without a newline
        line = std::move(buffer_);
        buffer_.clear();
        return Status::Line;
      }
      return Status::Eof;
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {pipe_[0], POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      eof_ = true;
      continue;
    }
    if (fds[1].revents & POLLIN) {
      char drain[64];
      while (::read(pipe_[0], drain, sizeof drain) > 0) {}
      return Status::Woken;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
      char chunk[65536];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
}

}  // namespace rtcmesh::console
