// The file operations under the witness recorder, behind an interface (LevelDB's
// Env is the model). Env::posix() is what the recorder uses by default; the
// tests put a fault-injecting Env under it (fault_env.hpp) to see what the
// recorder does when the disk fails: ENOSPC, EIO, a failed fdatasync.
//
// Every failure carries its errno, so the recorder can tell a full disk (space
// may come back: retry) from an I/O error (the data may be gone: seal the log).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace rtcmesh::witness {

// Success, or an errno and a message naming the operation and the file
// ("write /var/x/witness.log: No space left on device").
struct [[nodiscard]] IoStatus {
  int code = 0;  // 0 = success, else an errno value
  std::string message;

  bool ok() const { return code == 0; }
  explicit operator bool() const { return ok(); }
  static IoStatus error(int code, std::string_view operation, const std::string& path);
};

// One open, exclusively locked log file: read once at open, then appended to.
class LogFile {
 public:
  virtual ~LogFile() = default;
  // The whole file, from offset 0.
  virtual IoStatus read_all(std::string& out) = 0;
  // Cuts the file to `size` bytes; the next append writes at its new end.
  virtual IoStatus truncate(uint64_t size) = 0;
  // Appends all of `data`. On failure `written` says how many bytes did reach
  // the file (a short write); the caller truncates them away.
  virtual IoStatus append(std::string_view data, size_t& written) = 0;
  // fdatasync(). After a failure the state of everything written since the last
  // successful sync is unknown (the kernel may have dropped those pages).
  virtual IoStatus sync() = 0;
  // Idempotent; releases the lock.
  virtual IoStatus close() = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  // Opens or creates `path` (mode 0600) with an exclusive lock. A file locked by
  // another LogFile fails with EWOULDBLOCK.
  virtual IoStatus open_log(const std::string& path, std::unique_ptr<LogFile>& out) = 0;
  // Makes the entries of directory `dir` durable (after a file was created in it).
  virtual IoStatus sync_dir(const std::string& dir) = 0;

  // The real file system (open, flock, read, write, ftruncate, fdatasync). Lives
  // for the whole process.
  static Env& posix();
};

}  // namespace rtcmesh::witness
