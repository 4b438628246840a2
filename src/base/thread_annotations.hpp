// Clang thread-safety annotations (-Wthread-safety) and the mutex they apply to.
// GCC ignores them; scripts/lint.sh checks every file that includes this header
// with clang-tidy and -Wthread-safety, so a member read without its lock, or a
// lock taken twice, fails the lint stage.
//
//   base::Mutex mutex_;
//   int count_ RTCMESH_GUARDED_BY(mutex_);
//   void add() { base::MutexLock lock(mutex_); ++count_; }
//
// libstdc++'s std::mutex carries no capability attribute, hence the wrapper.
// MutexLock::native() exposes the std::unique_lock for condition variables.
#pragma once

#include <mutex>

#if defined(__clang__)
#define RTCMESH_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define RTCMESH_THREAD_ANNOTATION(x)
#endif

#define RTCMESH_CAPABILITY(x) RTCMESH_THREAD_ANNOTATION(capability(x))
#define RTCMESH_SCOPED_CAPABILITY RTCMESH_THREAD_ANNOTATION(scoped_lockable)
#define RTCMESH_GUARDED_BY(x) RTCMESH_THREAD_ANNOTATION(guarded_by(x))
#define RTCMESH_PT_GUARDED_BY(x) RTCMESH_THREAD_ANNOTATION(pt_guarded_by(x))
#define RTCMESH_REQUIRES(...) RTCMESH_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define RTCMESH_EXCLUDES(...) RTCMESH_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define RTCMESH_ACQUIRE(...) RTCMESH_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RTCMESH_RELEASE(...) RTCMESH_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RTCMESH_NO_THREAD_SAFETY_ANALYSIS RTCMESH_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace rtcmesh::base {

class RTCMESH_CAPABILITY("mutex") Mutex {
 public:
  void lock() RTCMESH_ACQUIRE() { m_.lock(); }
  void unlock() RTCMESH_RELEASE() { m_.unlock(); }
  std::mutex& native() { return m_; }

 private:
  std::mutex m_;
};

// Holds a Mutex for a scope. native() is the std::unique_lock a
// std::condition_variable waits on (the wait releases and re-takes the same
// mutex, which the analysis does not need to see).
class RTCMESH_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) RTCMESH_ACQUIRE(mutex) : lock_(mutex.native()) {}
  ~MutexLock() RTCMESH_RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace rtcmesh::base
