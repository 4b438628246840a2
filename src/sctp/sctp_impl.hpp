// SctpTransport::Impl: one usrsctp socket, one association. Internal to the
// sctp layer: the public API and the send path are in sctp_transport.cpp, the
// receive path (messages, notifications, incoming stream resets) in
// sctp_receive.cpp, the process-wide usrsctp runtime in usrsctp_runtime.cpp.
#pragma once

#include <usrsctp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/executor.hpp"
#include "sctp/sctp_transport.hpp"
#include "sctp/usrsctp_runtime.hpp"

namespace rtcmesh::sctp {

struct SctpTransport::Impl {
  Impl(base::Executor& executor, PacketTransport& lower, Options options, Callbacks callbacks);
  ~Impl();

  // Public API.
  void start();
  bool send(uint16_t stream, uint32_t ppid, ByteSpan message, const SendOptions& options);
  size_t buffered_amount(uint16_t stream) const;
  void reset_stream(uint16_t stream);
  void close();

  // Called from the C callbacks (any thread).
  void on_upcall_events();
  // Processing entry points (executor thread, top level).
  void on_lower_packet(ByteSpan packet);
  void feed_early_packets();
  void process();

  enum class SendResult { Accepted, WouldBlock, Failed };
  struct Outgoing {
    uint16_t stream;
    uint32_t ppid;
    SendOptions options;
    bool reset;  // a reset marker: reset `stream` once the data before it left
    std::vector<uint8_t> data;
  };
  struct StreamState {
    size_t buffered = 0;         // bytes of this stream in queue_
    bool closing = false;        // reset_stream() (or a peer reset) seen: send() refused
    bool reset_sent = false;     // our outgoing reset was handed to usrsctp
    bool outgoing_done = false;  // the peer confirmed our outgoing reset
    bool incoming_done = false;  // the peer reset its outgoing side
    uint8_t refusals = 0;        // our reset request was refused this many times
  };

  void setup_socket();
  void conn_input(ByteSpan packet);
  SendResult try_send(uint16_t stream, uint32_t ppid, const uint8_t* data, size_t size,
                      const SendOptions& options);
  bool ensure_send_buffer(size_t size);
  void restore_send_buffer();
  // Each returns false when the transport was destroyed by a user callback.
  bool drain_receive(const std::shared_ptr<bool>& alive);
  bool deliver_message(const std::shared_ptr<bool>& alive, uint16_t stream, uint32_t ppid,
                       ByteSpan message);
  bool handle_notification(const std::shared_ptr<bool>& alive, const uint8_t* data, size_t size);
  bool handle_assoc_change(const sctp_assoc_change& change);
  bool handle_stream_reset(const std::shared_ptr<bool>& alive, const uint8_t* data, size_t size);
  bool flush(const std::shared_ptr<bool>& alive);
  bool report_states(const std::shared_ptr<bool>& alive);
  void queue_reset(uint16_t stream);
  void request_resets();
  void arm_reset_retry();
  void maybe_release_stream(uint16_t stream);
  void begin_shutdown();
  void abort_socket();
  void set_state(State state, std::string error = {});
  void schedule_process();

  base::Executor& executor_;
  PacketTransport& lower_;
  const Options options_;
  const Callbacks callbacks_;
  uintptr_t id_ = 0;
  struct socket* sock_ = nullptr;  // read by stats()
  std::string setup_error_;
  State state_ = State::New;
  bool closing_ = false;          // close() called, the peer shut down, or ended: no new data
  bool close_requested_ = false;  // close() called: SHUTDOWN once the queue drained
  bool shutdown_sent_ = false;    // usrsctp_shutdown(SHUT_WR) done
  base::Executor::TimerId shutdown_timer_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool processing_ = false;

  // Set by the upcall (possibly on another thread).
  std::atomic<bool> events_pending_{false};
  // True while a top-level entry point is inside usrsctp; it processes the
  // events itself afterwards, so the upcall need not post a task.
  std::atomic<bool> inline_call_{false};
  std::atomic<bool> process_posted_{false};

  // Packets received before start() (and, after it, until they were fed).
  std::deque<std::vector<uint8_t>> early_packets_;
  size_t early_bytes_ = 0;

  // Send side: one FIFO for all streams (fairness is then simply arrival order).
  std::deque<Outgoing> queue_;
  std::unordered_map<uint16_t, StreamState> streams_;
  std::vector<uint16_t> resets_to_request_;
  base::Executor::TimerId reset_retry_timer_ = 0;
  bool reset_retry_armed_ = false;
  int send_buffer_ = kSendBuffer;  // current SO_SNDBUF
  std::vector<uint16_t> buffered_changed_;

  // Receive side: reassembly until MSG_EOR, separately for data and notifications.
  std::vector<uint8_t> message_;
  bool receive_paused_ = false;  // set_receive_paused(): leave data in usrsctp
  bool message_started_ = false;
  bool message_discarding_ = false;
  size_t message_size_ = 0;
  uint16_t message_stream_ = 0;
  uint32_t message_ppid_ = 0;
  std::vector<uint8_t> notification_;

  std::deque<std::pair<State, std::string>> state_reports_;
  Stats stats_;
};

}  // namespace rtcmesh::sctp
