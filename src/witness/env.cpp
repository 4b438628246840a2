#include "witness/env.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rtcmesh::witness {

IoStatus IoStatus::error(int code, std::string_view operation, const std::string& path) {
  IoStatus s;
  s.code = code != 0 ? code : EIO;
  s.message = std::string(operation) + " " + path + ": " + std::strerror(s.code);
  return s;
}

namespace {

class PosixLogFile final : public LogFile {
 public:
  PosixLogFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixLogFile() override { (void)close(); }

  IoStatus read_all(std::string& out) override {
    out.clear();
    char buf[1 << 16];
    for (off_t offset = 0;;) {
      ssize_t n = ::pread(fd_, buf, sizeof buf, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoStatus::error(errno, "read", path_);
      }
      if (n == 0) return {};
      out.append(buf, static_cast<size_t>(n));
      offset += n;
    }
  }

  IoStatus truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      return IoStatus::error(errno, "truncate", path_);
    if (::lseek(fd_, 0, SEEK_END) < 0) return IoStatus::error(errno, "seek", path_);
    return {};
  }

  IoStatus append(std::string_view data, size_t& written) override {
    written = 0;
    while (written < data.size()) {
      ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return IoStatus::error(errno, "write", path_);
      if (n == 0) return IoStatus::error(ENOSPC, "write", path_);  // no progress: treat as full
      written += static_cast<size_t>(n);
    }
    return {};
  }

  IoStatus sync() override {
    if (::fdatasync(fd_) != 0) return IoStatus::error(errno, "fdatasync", path_);
    return {};
  }

  IoStatus close() override {
    if (fd_ < 0) return {};
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return IoStatus::error(errno, "close", path_);
    return {};
  }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv final : public Env {
 public:
  IoStatus open_log(const std::string& path, std::unique_ptr<LogFile>& out) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return IoStatus::error(errno, "open", path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      ::close(fd);
      return IoStatus::error(e, "lock", path);
    }
    out = std::make_unique<PosixLogFile>(fd, path);
    return {};
  }

  IoStatus sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return IoStatus::error(errno, "open", dir);
    IoStatus s;
    if (::fsync(fd) != 0) s = IoStatus::error(errno, "fsync", dir);
    ::close(fd);
    return s;
  }
};

}  // namespace

Env& Env::posix() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: recorders may outlive statics
  return *env;
}

}  // namespace rtcmesh::witness
