#include "observe/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace rtcmesh::observe {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// 5 µs .. 2.5 s: a queued event is usually durable within one fdatasync
// (hundreds of µs to a few ms), and the client_golang defaults (5 ms .. 10 s)
// would put nearly everything in the first bucket.
const Histogram::BucketBoundaries& latency_buckets() {
  static const Histogram::BucketBoundaries b{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
                                             5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
                                             5e-2, 0.1,  0.25,   0.5,  1.0,  2.5};
  return b;
}

constexpr PeerConnectionState kStates[] = {
    PeerConnectionState::New,       PeerConnectionState::Connecting,
    PeerConnectionState::Connected, PeerConnectionState::Disconnected,
    PeerConnectionState::Failed,    PeerConnectionState::Closed};

// One unlabelled series of a new family.
prometheus::Counter& counter(prometheus::Registry& r, const char* name, const char* help) {
  return BuildCounter().Name(name).Help(help).Register(r).Add({});
}
prometheus::Gauge& gauge(prometheus::Registry& r, const char* name, const char* help) {
  return BuildGauge().Name(name).Help(help).Register(r).Add({});
}
prometheus::Histogram& histogram(prometheus::Registry& r, const char* name, const char* help,
                                 const Histogram::BucketBoundaries& buckets) {
  return BuildHistogram().Name(name).Help(help).Register(r).Add({}, buckets);
}

}  // namespace

WitnessMetrics::WitnessMetrics(prometheus::Registry& registry)
    : recorded_family_(BuildCounter()
                           .Name("witness_events_recorded_total")
                           .Help("Witness events written and synced to the log, by event type")
                           .Register(registry)),
      latency_(histogram(registry, "witness_recording_latency_seconds",
                         "Time from record() to the event being durable in the witness log",
                         latency_buckets())),
      sync_(histogram(registry, "witness_fsync_duration_seconds",
                      "Time of one group commit: write() and fdatasync() of a batch",
                      latency_buckets())),
      batch_events_(histogram(registry, "witness_batch_events", "Events per group commit",
                              Histogram::BucketBoundaries{1, 2, 5, 10, 50, 100, 500, 1000, 5000})),
      dropped_(
          gauge(registry, "witness_events_dropped",
                "Events record() rejected because the queue was full (each run is also logged)")),
      queue_depth_(gauge(registry, "witness_queue_depth", "Events accepted and not yet durable")),
      io_state_(gauge(registry, "witness_log_state",
                      "0 writing, 1 retrying a batch (disk full), 2 sealed after an I/O error")),
      io_errors_(
          gauge(registry, "witness_io_errors", "Failed write/truncate/fdatasync calls of the log")),
      lost_(gauge(registry, "witness_events_lost",
                  "Accepted events that never became durable (the log was sealed)")) {}

void WitnessMetrics::set_io_state(int state, uint64_t io_errors, uint64_t lost) {
  io_state_.Set(state);
  io_errors_.Set(static_cast<double>(io_errors));
  lost_.Set(static_cast<double>(lost));
}

void WitnessMetrics::recorded(std::string_view event_type, std::chrono::microseconds latency) {
  prometheus::Counter* series;
  {
    base::MutexLock lock(mutex_);
    auto it = recorded_.find(event_type);
    if (it == recorded_.end()) {
      it = recorded_
               .emplace(std::string(event_type),
                        &recorded_family_.Add({{"event_type", std::string(event_type)}}))
               .first;
    }
    series = it->second;
  }
  series->Increment();
  latency_.Observe(static_cast<double>(latency.count()) * 1e-6);
}

void WitnessMetrics::batch(size_t events, std::chrono::microseconds write_sync) {
  sync_.Observe(static_cast<double>(write_sync.count()) * 1e-6);
  batch_events_.Observe(static_cast<double>(events));
}

void WitnessMetrics::set_dropped(uint64_t total) {
  dropped_.Set(static_cast<double>(total));
}
void WitnessMetrics::set_queue_depth(uint64_t depth) {
  queue_depth_.Set(static_cast<double>(depth));
}

RtcMetrics::RtcMetrics(prometheus::Registry& registry)
    : active_(gauge(registry, "webrtc_peer_connections_active",
                    "Peer connections created and not yet closed")),
      created_(
          counter(registry, "webrtc_peer_connections_created_total", "Peer connections created")),
      channels_open_(gauge(registry, "webrtc_data_channels_open", "Data channels currently open")),
      channels_opened_(counter(registry, "webrtc_data_channels_opened_total",
                               "Data channels that reached open")),
      messages_sent_(counter(registry, "webrtc_data_channel_messages_sent_total",
                             "Data channel messages handed to SCTP")),
      messages_received_(counter(registry, "webrtc_data_channel_messages_received_total",
                                 "Data channel messages delivered")),
      bytes_sent_(counter(registry, "webrtc_data_channel_bytes_sent_total",
                          "Payload bytes of data channel messages sent")),
      bytes_received_(counter(registry, "webrtc_data_channel_bytes_received_total",
                              "Payload bytes of data channel messages received")) {
  // All 30 transitions exist from the start (at 0), so a rate() works from the
  // first scrape and nothing is added to the family later.
  auto& family = BuildCounter()
                     .Name("webrtc_connection_state_changes_total")
                     .Help("W3C RTCPeerConnection connectionState changes")
                     .Register(registry);
  for (auto from : kStates) {
    for (auto to : kStates) {
      if (from == to) continue;
      state_changes_[static_cast<size_t>(from) * 6 + static_cast<size_t>(to)] =
          &family.Add({{"from_state", to_string(from)}, {"to_state", to_string(to)}});
    }
  }
}

void RtcMetrics::connection_created() {
  active_.Increment();
  created_.Increment();
}
void RtcMetrics::connection_closed() {
  active_.Decrement();
}

void RtcMetrics::state_change(PeerConnectionState from, PeerConnectionState to) {
  auto index = static_cast<size_t>(from) * 6 + static_cast<size_t>(to);
  if (index < state_changes_.size() && state_changes_[index]) state_changes_[index]->Increment();
}

void RtcMetrics::channel_opened() {
  channels_open_.Increment();
  channels_opened_.Increment();
}
void RtcMetrics::channel_closed() {
  channels_open_.Decrement();
}

void RtcMetrics::message(bool sent, size_t bytes) {
  (sent ? messages_sent_ : messages_received_).Increment();
  (sent ? bytes_sent_ : bytes_received_).Increment(static_cast<double>(bytes));
}

}  // namespace rtcmesh::observe
