// The Prometheus metrics of a node (docs/metrics.md): the witness recorder's and
// the WebRTC connections'. Both register on a prometheus::Registry the caller
// owns; the hub serves it at /metrics, `rtcmesh peer --metrics-port` through
// prometheus-cpp's exposer. No label ever holds a peer id, a room or a channel
// label: label values come from small fixed sets (event types, W3C states).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "base/thread_annotations.hpp"
#include "rtcmesh/states.hpp"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace rtcmesh::observe {

class WitnessMetrics {
 public:
  explicit WitnessMetrics(prometheus::Registry& registry);
  // One event durable, `latency` after record() accepted it.
  void recorded(std::string_view event_type, std::chrono::microseconds latency);
  // One group commit: events in it, time of its write() + fdatasync().
  void batch(size_t events, std::chrono::microseconds write_sync);
  void set_dropped(uint64_t total);  // record() rejections so far (queue full)
  void set_queue_depth(uint64_t depth);
  // The recorder's ability to write changed (witness::IoProblem::Kind):
  // 0 writing, 1 retrying (disk full), 2 sealed; `io_errors` failed calls so far.
  void set_io_state(int state, uint64_t io_errors, uint64_t lost);

 private:
  prometheus::Family<prometheus::Counter>& recorded_family_;
  base::Mutex mutex_;
  std::map<std::string, prometheus::Counter*, std::less<>> recorded_  // by event_type
      RTCMESH_GUARDED_BY(mutex_);
  prometheus::Histogram& latency_;
  prometheus::Histogram& sync_;
  prometheus::Histogram& batch_events_;
  prometheus::Gauge& dropped_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& io_state_;
  prometheus::Gauge& io_errors_;
  prometheus::Gauge& lost_;
};

class RtcMetrics {
 public:
  explicit RtcMetrics(prometheus::Registry& registry);
  void connection_created();
  void connection_closed();
  void state_change(PeerConnectionState from, PeerConnectionState to);
  void channel_opened();
  void channel_closed();
  void message(bool sent, size_t bytes);

 private:
  prometheus::Gauge& active_;
  prometheus::Counter& created_;
  std::array<prometheus::Counter*, 36> state_changes_{};  // [from * 6 + to]
  prometheus::Gauge& channels_open_;
  prometheus::Counter& channels_opened_;
  prometheus::Counter& messages_sent_;
  prometheus::Counter& messages_received_;
  prometheus::Counter& bytes_sent_;
  prometheus::Counter& bytes_received_;
};

}  // namespace rtcmesh::observe
