// A test Env: the real file system (Env::posix()) with failures injected into
// chosen calls, so the recorder's handling of ENOSPC, EIO and failed fdatasync
// runs in-process (src/witness/recorder_io_test.cpp). Thread-safe: the
// recorder's writer thread calls it while the test arms and heals faults.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "witness/env.hpp"

namespace rtcmesh::witness {

class FaultEnv final : public Env {
 public:
  enum class Op { Open, Read, Append, Truncate, Sync, SyncDir };
  static constexpr int kForever = -1;

  // After `after` more successful calls of `op`, the next `times` calls fail
  // with `code` (kForever: until heal()).
  void fail(Op op, int code, int times = 1, int after = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    faults_[index(op)] = {code, times, after};
  }
  // A failing append first writes this many bytes (a short write), at most all.
  void set_short_write(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    short_write_ = bytes;
  }
  void heal() {
    std::lock_guard<std::mutex> lock(mu_);
    faults_ = {};
  }
  int calls(Op op) const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[index(op)];
  }
  int failures(Op op) const {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_[index(op)];
  }

  IoStatus open_log(const std::string& path, std::unique_ptr<LogFile>& out) override {
    if (int code = take(Op::Open)) return IoStatus::error(code, "open", path);
    std::unique_ptr<LogFile> real;
    if (auto s = Env::posix().open_log(path, real); !s) return s;
    out = std::make_unique<File>(*this, std::move(real), path);
    return {};
  }
  IoStatus sync_dir(const std::string& dir) override {
    if (int code = take(Op::SyncDir)) return IoStatus::error(code, "fsync", dir);
    return Env::posix().sync_dir(dir);
  }

 private:
  struct Fault {
    int code = 0;
    int times = 0;
    int after = 0;
  };
  class File final : public LogFile {
   public:
    File(FaultEnv& env, std::unique_ptr<LogFile> real, std::string path)
        : env_(env), real_(std::move(real)), path_(std::move(path)) {}
    IoStatus read_all(std::string& out) override {
      if (int code = env_.take(Op::Read)) return IoStatus::error(code, "read", path_);
      return real_->read_all(out);
    }
    IoStatus truncate(uint64_t size) override {
      if (int code = env_.take(Op::Truncate)) return IoStatus::error(code, "truncate", path_);
      return real_->truncate(size);
    }
    IoStatus append(std::string_view data, size_t& written) override {
      written = 0;
      if (int code = env_.take(Op::Append)) {
        size_t partial = std::min(env_.short_write(), data.size());
        if (partial > 0) {
          if (auto s = real_->append(data.substr(0, partial), written); !s) return s;
        }
        return IoStatus::error(code, "write", path_);
      }
      return real_->append(data, written);
    }
    IoStatus sync() override {
      if (int code = env_.take(Op::Sync)) return IoStatus::error(code, "fdatasync", path_);
      return real_->sync();
    }
    IoStatus close() override { return real_->close(); }

   private:
    FaultEnv& env_;
    std::unique_ptr<LogFile> real_;
    std::string path_;
  };

  static size_t index(Op op) { return static_cast<size_t>(op); }
  // Counts the call; returns the errno to fail it with, or 0.
  int take(Op op) {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[index(op)];
    Fault& f = faults_[index(op)];
    if (f.times == 0) return 0;
    if (f.after > 0) {
      --f.after;
      return 0;
    }
    if (f.times > 0) --f.times;
    ++failures_[index(op)];
    return f.code;
  }
  size_t short_write() const {
    std::lock_guard<std::mutex> lock(mu_);
    return short_write_;
  }

  mutable std::mutex mu_;
  std::array<Fault, 6> faults_{};
  std::array<int, 6> calls_{};
  std::array<int, 6> failures_{};
  size_t short_write_ = 0;
};

}  // namespace rtcmesh::witness
