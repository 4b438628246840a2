#include "base/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace rtcmesh::log {
namespace {

Level initial_level() {
  const char* env = std::getenv("RTCMESH_LOG");
  if (env == nullptr) return Level::Warn;
  if (std::strcmp(env, "error") == 0) return Level::Error;
  if (std::strcmp(env, "info") == 0) return Level::Info;
  if (std::strcmp(env, "debug") == 0) return Level::Debug;
  if (std::strcmp(env, "verbose") == 0) return Level::Verbose;
  return Level::Warn;
}

std::atomic<int>& level_storage() {
  static std::atomic<int> value{static_cast<int>(initial_level())};
  return value;
}

const char* name(Level level) {
  switch (level) {
    case Level::Error:
      return "error";
    case Level::Warn:
      return "warn";
    case Level::Info:
      return "info";
    case Level::Debug:
      return "debug";
    case Level::Verbose:
      return "verbose";
  }
  return "?";
}

}  // namespace

Level level() {
  return static_cast<Level>(level_storage().load(std::memory_order_relaxed));
}
void set_level(Level level) {
  level_storage().store(static_cast<int>(level));
}

void write(Level level, std::string_view component, std::string_view message) {
  static std::mutex mutex;
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(mutex);
  std::fprintf(stderr, "[%lld.%06lld] %s %.*s: %.*s\n", static_cast<long long>(us / 1000000),
               static_cast<long long>(us % 1000000), name(level),
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace rtcmesh::log
