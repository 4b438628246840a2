// The objects behind the public PeerConnection and DataChannel handles.
// Every member marked "loop" is touched only on the network thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/loop.hpp"
#include "dtls/certificate.hpp"
#include "dtls/dtls_transport.hpp"
#include "ice/ice_transport.hpp"
#include "peer/channel_router.hpp"
#include "rtcmesh/observer.hpp"
#include "rtcmesh/peer_connection.hpp"
#include "sctp/sctp_transport.hpp"
#include "sdp/session_description.hpp"

namespace rtcmesh::impl {

// Streams per direction we negotiate (notes: 65535 costs MBs per association).
inline constexpr uint16_t kMaxStreams = 1024;
// Send queue limit per channel, as Chromium (kMaxQueuedSendDataBytes).
inline constexpr size_t kMaxBufferedBytes = 16 * 1024 * 1024;
// RFC 8841 section 6.1: absent a=max-message-size means 64 KiB.
inline constexpr size_t kDefaultRemoteMaxMessageSize = 65536;
// Cap when the remote says 0 ("unlimited") or something huge.
inline constexpr size_t kMaxSendMessageSize = 16 * 1024 * 1024;

struct PeerConnection;

// Counts connections that were closed but are still shutting down gracefully.
class PendingShutdowns {
 public:
  void begin();
  void end();
  bool wait(std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_ = 0;
};
PendingShutdowns& pending_shutdowns();

struct DataChannel : std::enable_shared_from_this<DataChannel> {
  DataChannel(std::weak_ptr<PeerConnection> pc, std::shared_ptr<base::Loop> loop, std::string label,
              const DataChannelInit& init);

  // Immutable after construction.
  std::weak_ptr<PeerConnection> pc;
  std::shared_ptr<base::Loop> loop;
  const std::string label;
  const std::string protocol;
  const bool ordered;
  const std::optional<uint16_t> max_packet_life_time;
  const std::optional<uint16_t> max_retransmits;
  const bool negotiated;
  const std::shared_ptr<ConnectionObserver> observer;  // the connection's, may be null

  std::atomic<int> stream{-1};  // -1 until assigned
  std::atomic<DataChannelState> state{DataChannelState::Connecting};
  std::atomic<size_t> posted_bytes{0};   // accepted by send(), not yet handed to SCTP
  std::atomic<size_t> sctp_buffered{0};  // queued inside the SCTP layer
  std::atomic<size_t> low_threshold{0};
  std::atomic<size_t> remote_max_message_size{kDefaultRemoteMaxMessageSize};

  // loop
  bool acked = false;  // DCEP ACK received (or negotiated / remote-opened)
  bool low_event_queued = false;
  uint64_t messages_sent = 0, bytes_sent = 0, messages_received = 0, bytes_received = 0;
  std::function<void()> on_open, on_closing, on_close, on_buffered_amount_low;
  std::function<void(const Message&)> on_message;
  std::function<void(const Error&)> on_error;

  size_t buffered_amount() const { return posted_bytes.load() + sctp_buffered.load(); }
  Status send(uint32_t ppid, std::span<const uint8_t> data);
  void close();

  // loop: state transitions driven by the connection.
  void set_open();
  void set_closed();
  void update_sctp_buffered(size_t amount);
  // Fires bufferedamountlow if the amount went from above the threshold
  // (`before`) to at or below it.
  void amount_decreased(size_t before);
  void clear_callbacks();
  DataChannelStats stats() const;
};

struct PeerConnection : std::enable_shared_from_this<PeerConnection> {
  PeerConnection(Configuration config, std::shared_ptr<base::Loop> loop,
                 std::shared_ptr<dtls::Certificate> cert, ice::Config ice_config);

  // All of these run on the loop.
  Status init();
  Result<sdp::SessionDescription> create_offer();
  Result<sdp::SessionDescription> create_answer();
  Status set_local_description(const SessionDescription& description);
  Status set_remote_description(const SessionDescription& description);
  Status add_ice_candidate(const IceCandidate& candidate);
  std::optional<SessionDescription> local_description() const;
  std::optional<SessionDescription> remote_description() const;
  void restart_ice_requested() { restart_pending_ = true; }
  void apply_receive_paused();                    // want_receive_paused_ -> sctp_
  std::atomic<bool> want_receive_paused_{false};  // pause_/resume_receiving(), any thread
  Result<std::shared_ptr<DataChannel>> create_data_channel(const std::string& label,
                                                           const DataChannelInit& init);
  Stats get_stats() const;
  void close();
  void finish_teardown();

  // Called by DataChannel on the loop.
  void send_message(const std::shared_ptr<DataChannel>& channel, uint32_t ppid,
                    std::vector<uint8_t> payload, size_t user_bytes);
  void close_channel(const std::shared_ptr<DataChannel>& channel);

  const Configuration config;
  const std::shared_ptr<base::Loop> loop;
  const std::shared_ptr<dtls::Certificate> cert;
  const ice::Config ice_config;

  std::atomic<PeerConnectionState> connection_state{PeerConnectionState::New};
  std::atomic<IceConnectionState> ice_state{IceConnectionState::New};
  std::atomic<IceGatheringState> gathering_state{IceGatheringState::New};
  std::atomic<SignalingState> signaling_state{SignalingState::Stable};

  // loop
  std::function<void(const IceCandidate&)> on_ice_candidate;
  std::function<void(PeerConnectionState)> on_connection_state_change;
  std::function<void(IceConnectionState)> on_ice_connection_state_change;
  std::function<void(IceGatheringState)> on_ice_gathering_state_change;
  std::function<void(SignalingState)> on_signaling_state_change;
  std::function<void(std::shared_ptr<rtcmesh::DataChannel>)> on_data_channel;
  std::function<void(const Error&)> on_error;

 private:
  void handle_ice_state(ice::State state);
  void handle_gathering_state(ice::GatheringState state);
  void handle_local_candidate(const sdp::Candidate& candidate);
  void handle_ice_packet(ByteSpan packet);
  void check_liveness();
  void check_liveness_soon() {
    if (liveness_timer_ != 0) loop->cancel(liveness_timer_);
    check_liveness();
  }
  void handle_dtls_state(dtls::State state, const std::string& error);
  void handle_sctp_state(sctp::State state, const std::string& error);
  void maybe_start_transports();
  void update_connection_state();
  void set_signaling_state(SignalingState state);
  void fail(const std::string& error);
  // The observer's share of a state change; `to` already stored.
  void observe_state(PeerConnectionState from, PeerConnectionState to) {
    if (config.observer && from != to) config.observer->on_connection_state_change(from, to);
  }
  void observe_description(ObservedDescription::Kind kind, const sdp::SessionDescription& d,
                           bool ice_restart);
  void observe_remote_candidates(const sdp::SessionDescription& desc);
  void schedule_stats();
  Result<sdp::SessionDescription> base_description(sdp::Setup setup) const;

  std::unique_ptr<ice::IceTransport> ice_;
  std::unique_ptr<dtls::DtlsTransport> dtls_;
  std::unique_ptr<sctp::SctpTransport> sctp_;
  bool receive_paused_ = false;                  // applied to sctp_ when it is created
  std::deque<std::vector<uint8_t>> early_dtls_;  // before the DTLS transport exists
  std::optional<sdp::SessionDescription> local_;
  std::optional<sdp::SessionDescription> remote_;
  std::optional<sdp::SessionDescription> last_offer_;  // created, not yet applied
  std::optional<sdp::SessionDescription> last_answer_;
  std::string local_type_, remote_type_;
  std::vector<sdp::Candidate> local_candidates_;
  std::optional<dtls::Role> dtls_role_;
  std::optional<bool> controlling_;
  bool restart_pending_ = false;
  bool closed_ = false;
  bool torn_down_ = false;
  bool silent_ = false;  // nothing received for kSilenceBeforeDisconnected
  std::chrono::steady_clock::time_point last_receive_;
  base::Loop::TimerId liveness_timer_ = 0;
  base::Loop::TimerId teardown_timer_ = 0;
  base::Loop::TimerId stats_timer_ = 0;
  const char* end_reason_ = nullptr;  // for the observer: "failed", "remote-closed"
  bool dtls_started_ = false;
  bool sctp_connected_ = false;
  bool failed_ = false;
  uint64_t session_id_ = 0;
  uint64_t session_version_ = 0;
  ChannelRouter router_;
};

}  // namespace rtcmesh::impl
