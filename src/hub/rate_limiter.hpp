// Token bucket per connection: `rate` messages per second, bursts of 2 x rate.
// Time is passed in (monotonic ms) so the hub reads the clock once per batch and
// the tests need no sleeping.
#pragma once

#include <algorithm>
#include <cstdint>

namespace rtcmesh::hub {

class RateLimiter {
 public:
  // rate 0 = unlimited.
  explicit RateLimiter(uint32_t rate = 0, int64_t now_ms = 0)
      : rate_(rate), tokens_milli_(int64_t{rate} * 2000), last_ms_(now_ms) {}

  // Takes one token; false when the bucket is empty (the message is dropped).
  bool allow(int64_t now_ms) {
    if (rate_ == 0) return true;
    const int64_t capacity = int64_t{rate_} * 2000;  // in thousandths of a message
    if (now_ms > last_ms_) {
      tokens_milli_ = std::min(capacity, tokens_milli_ + (now_ms - last_ms_) * rate_);
      last_ms_ = now_ms;
    }
    if (tokens_milli_ < 1000) return false;
    tokens_milli_ -= 1000;
    return true;
  }

 private:
  uint32_t rate_;
  int64_t tokens_milli_;
  int64_t last_ms_;
};

}  // namespace rtcmesh::hub
