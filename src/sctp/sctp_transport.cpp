// SctpTransport: usrsctp 0.9.5 in AF_CONN mode, driven entirely from its executor.
//
// Files: this one has the association's setup, public API, processing and
// send path; sctp_receive.cpp the receive path; usrsctp_runtime.cpp the
// process-wide usrsctp instance (init, CRC32c, the registry id -> Impl used by
// the C callbacks, the 10 ms timer tick); sctp_impl.hpp the Impl declaration.
//
// Threading model. usrsctp runs without its timer and receive threads; every
// usrsctp call we make happens on the executor thread of the transport it concerns,
// and the timer tick (usrsctp_handle_timers) runs on one executor (the executor of the
// first live transport). usrsctp 0.9.5 still starts an "iterator" thread and,
// with several executors, the tick of one executor may fire timers of an association
// living on another executor; the two C callbacks therefore never assume they are
// on the transport's thread:
//   - conn_output: on the transport's thread it hands the packet to the lower
//     layer directly (no copy); elsewhere it copies and posts it.
//   - upcall: only sets an atomic flag and, unless the transport is inside one
//     of its own "top-level" usrsctp calls, posts one coalesced processing task.
// Both look the transport up by integer id in the registry under a mutex, so a
// callback that arrives during or after destruction finds nothing (usrsctp#405).
//
// Re-entrancy rules:
//   - No user callback runs inside a usrsctp call: the upcall only marks the
//     transport; receiving (usrsctp_recvv) and flushing happen after the usrsctp
//     call returned, in process().
//   - No user callback runs inside a public method (start/send/reset_stream/
//     close/destructor); state changes they cause are reported from a posted task.
//   - A user callback may call any public method, and may destroy the transport:
//     every path that runs a callback holds a copy of `alive_` and returns at
//     once when it turned false.
#include "sctp/sctp_transport.hpp"

#include <arpa/inet.h>
#include <usrsctp.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "base/log.hpp"
#include "sctp/sctp_impl.hpp"

namespace rtcmesh::sctp {

const char* to_string(State state) {
  switch (state) {
    case State::New:
      return "new";
    case State::Connecting:
      return "connecting";
    case State::Connected:
      return "connected";
    case State::Closed:
      return "closed";
    case State::Failed:
      return "failed";
  }
  return "?";
}

int conn_output(void* addr, void* buffer, size_t length, uint8_t /*tos*/, uint8_t /*set_df*/) {
  auto id = reinterpret_cast<uintptr_t>(addr);
  write_checksum(buffer, length);
  Runtime& rt = Runtime::get();
  std::unique_lock<std::mutex> lock = rt.lock();
  SctpTransport::Impl* impl = rt.find_locked(id);
  if (impl == nullptr) return -1;  // transport gone (usrsctp#405)
  if (impl->executor_.in_executor_thread()) {
    // The transport cannot be destroyed while we run on its thread.
    lock.unlock();
    impl->lower_.send(ByteSpan(static_cast<const uint8_t*>(buffer), length));
    return 0;
  }
  // A timer of this association fired on another executor's tick, or usrsctp's
  // iterator thread sent something: copy and hand it over to the right thread.
  std::vector<uint8_t> copy(static_cast<const uint8_t*>(buffer),
                            static_cast<const uint8_t*>(buffer) + length);
  impl->executor_.post([id, copy = std::move(copy)] {
    if (SctpTransport::Impl* target = Runtime::get().find(id)) {
      target->lower_.send(ByteSpan(copy.data(), copy.size()));
    }
  });
  return 0;
}

namespace {

void on_upcall(struct socket* /*sock*/, void* arg, int /*flags*/) {
  // Runs inside usrsctp with socket locks held: touch nothing but flags.
  auto id = reinterpret_cast<uintptr_t>(arg);
  Runtime& rt = Runtime::get();
  std::unique_lock<std::mutex> lock = rt.lock();
  if (SctpTransport::Impl* impl = rt.find_locked(id)) impl->on_upcall_events();
}

}  // namespace

SctpTransport::Impl::Impl(base::Executor& executor, PacketTransport& lower, Options options,
                          Callbacks callbacks)
    : executor_(executor), lower_(lower), options_(options), callbacks_(std::move(callbacks)) {
  assert(executor_.in_executor_thread());
  id_ = Runtime::get().add(this, executor_);
  usrsctp_register_address(reinterpret_cast<void*>(id_));
  setup_socket();
  lower_.set_receiver([this](ByteSpan packet) { on_lower_packet(packet); });
}

SctpTransport::Impl::~Impl() {
  assert(executor_.in_executor_thread());
  *alive_ = false;
  lower_.set_receiver(nullptr);
  if (shutdown_timer_ != 0) executor_.cancel(shutdown_timer_);
  if (reset_retry_armed_) executor_.cancel(reset_retry_timer_);
  // Close while still registered, so the ABORT (SO_LINGER 0) reaches the peer
  // through conn_output. The upcall it may trigger only sets flags.
  if (sock_ != nullptr) usrsctp_close(sock_);
  sock_ = nullptr;
  // From here on conn_output and the upcall find nothing for our id, and posted
  // tasks (processing, foreign-thread packets) look the id up and do nothing.
  Runtime::get().remove(id_, executor_);
  usrsctp_deregister_address(reinterpret_cast<void*>(id_));
}

void SctpTransport::Impl::setup_socket() {
  auto fail = [this](const char* what) {
    setup_error_ = std::string("usrsctp setup failed: ") + what + ": " + std::strerror(errno);
    RTCMESH_LOG(Error, "sctp", setup_error_);
    if (sock_ != nullptr) usrsctp_close(sock_);
    sock_ = nullptr;
  };
  // One-to-one style socket, no receive callback (so no receive thread work):
  // we use the upcall and read with usrsctp_recvv (notes §5 #5).
  sock_ = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, nullptr, nullptr, 0, nullptr);
  if (sock_ == nullptr) return fail("usrsctp_socket");
  if (usrsctp_set_non_blocking(sock_, 1) < 0) return fail("non-blocking");
  if (usrsctp_set_upcall(sock_, on_upcall, reinterpret_cast<void*>(id_)) < 0) return fail("upcall");

  auto set = [this](int level, int name, const void* value, socklen_t size) {
    return usrsctp_setsockopt(sock_, level, name, value, size) == 0;
  };
  // Closing (destruction, failed setup) aborts: the lower layer may be gone.
  linger abort_on_close{1, 0};
  if (!set(SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close)) return fail("SO_LINGER");
  // Large buffers; SO_SNDBUF is raised per message when needed (ensure_send_buffer)
  // so that a send with SCTP_EOR is always all-or-nothing (notes §5 #12).
  int send_buffer = kSendBuffer;
  int receive_buffer = kReceiveBuffer;
  if (!set(SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer)) return fail("SO_SNDBUF");
  if (!set(SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer)) return fail("SO_RCVBUF");
  // Accept the peer's stream reset requests (RFC 6525 §5.2.2) and add-streams.
  sctp_assoc_value reset{SCTP_ALL_ASSOC,
                         SCTP_ENABLE_RESET_STREAM_REQ | SCTP_ENABLE_CHANGE_ASSOC_REQ};
  if (!set(IPPROTO_SCTP, SCTP_ENABLE_STREAM_RESET, &reset, sizeof reset))
    return fail("SCTP_ENABLE_STREAM_RESET");
  int on = 1;
  if (!set(IPPROTO_SCTP, SCTP_RECVRCVINFO, &on, sizeof on)) return fail("SCTP_RECVRCVINFO");
  // RFC 8831 §6.6: no Nagle-like bundling delay.
  if (!set(IPPROTO_SCTP, SCTP_NODELAY, &on, sizeof on)) return fail("SCTP_NODELAY");
  for (uint16_t type :
       {SCTP_ASSOC_CHANGE, SCTP_SENDER_DRY_EVENT, SCTP_STREAM_RESET_EVENT, SCTP_SHUTDOWN_EVENT}) {
    sctp_event event{};
    event.se_assoc_id = SCTP_ALL_ASSOC;
    event.se_type = type;
    event.se_on = 1;
    if (!set(IPPROTO_SCTP, SCTP_EVENT, &event, sizeof event)) return fail("SCTP_EVENT");
  }
  // Fixed path MTU, heartbeats on: usrsctp cannot discover the PMTU over
  // AF_CONN (usrsctp#205), RFC 8261 §5 asks for a safe value.
  sctp_paddrparams peer{};
  peer.spp_assoc_id = SCTP_FUTURE_ASSOC;
  peer.spp_flags = SPP_HB_ENABLE | SPP_PMTUD_DISABLE;
  peer.spp_pathmtu = kPathMtu;
  // A heartbeat a second (plus RTO jitter) keeps packets flowing on idle
  // associations, so the connection notices a silent peer within seconds
  // (W3C "disconnected") instead of at consent expiry (30 s, RFC 7675).
  peer.spp_hbinterval = kHeartbeatIntervalMs;
  if (!set(IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &peer, sizeof peer))
    return fail("SCTP_PEER_ADDR_PARAMS");
  sctp_initmsg init{};
  init.sinit_num_ostreams = kStreamCount;
  init.sinit_max_instreams = kStreamCount;
  if (!set(IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof init)) return fail("SCTP_INITMSG");
  // Level 0: a partially delivered message blocks the others, so the reader
  // never sees two messages interleaved (one reassembly buffer is enough).
  int interleave = 0;
  if (!set(IPPROTO_SCTP, SCTP_FRAGMENT_INTERLEAVE, &interleave, sizeof interleave))
    return fail("SCTP_FRAGMENT_INTERLEAVE");

  sockaddr_conn local{};
  local.sconn_family = AF_CONN;
  local.sconn_port = htons(options_.local_port);
  local.sconn_addr = reinterpret_cast<void*>(id_);
  if (usrsctp_bind(sock_, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0)
    return fail("bind");
}

// --- Public API -----------------------------------------------------------

void SctpTransport::Impl::start() {
  if (state_ != State::New) return;
  if (sock_ == nullptr) {
    set_state(State::Failed, setup_error_.empty() ? "no socket" : setup_error_);
    schedule_process();
    return;
  }
  set_state(State::Connecting);
  // RFC 8841 §9.3: both sides connect from a=sctp-port to the remote's port;
  // SCTP resolves the collision (RFC 9260 §5.2.1). usrsctp_connect writes our
  // INIT synchronously, so it is on the wire before we feed the peer's INIT
  // that may be waiting in early_packets_ (libdatachannel's mWrittenOnce issue).
  sockaddr_conn remote{};
  remote.sconn_family = AF_CONN;
  remote.sconn_port = htons(options_.remote_port);
  remote.sconn_addr = reinterpret_cast<void*>(id_);
  if (usrsctp_connect(sock_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) < 0 &&
      errno != EINPROGRESS) {
    set_state(State::Failed, std::string("usrsctp_connect: ") + std::strerror(errno));
    schedule_process();
    return;
  }
  // Feed the early packets from a task: processing them may run callbacks.
  if (!early_packets_.empty()) {
    uintptr_t id = id_;
    executor_.post([id] {
      if (SctpTransport::Impl* impl = Runtime::get().find(id)) impl->feed_early_packets();
    });
  }
  schedule_process();  // reports Connecting
}

bool SctpTransport::Impl::send(uint16_t stream, uint32_t ppid, ByteSpan message,
                               const SendOptions& options) {
  if (closing_ || (state_ != State::Connected && state_ != State::Connecting)) return false;
  if (message.empty()) return false;  // SCTP has no empty DATA chunk (RFC 9260 §3.3.1)
  if (stream >= kStreamCount) return false;
  auto it = streams_.find(stream);
  if (it != streams_.end() && it->second.closing) return false;
  // Fast path: nothing queued, hand it to usrsctp straight from the caller's buffer.
  if (queue_.empty() && state_ == State::Connected) {
    switch (try_send(stream, ppid, message.data(), message.size(), options)) {
      case SendResult::Accepted:
        return true;
      case SendResult::Failed:
        return false;
      case SendResult::WouldBlock:
        break;
    }
  }
  queue_.push_back(
      Outgoing{stream, ppid, options, false, std::vector<uint8_t>(message.begin(), message.end())});
  if (it == streams_.end()) it = streams_.emplace(stream, StreamState{}).first;
  it->second.buffered += message.size();
  return true;
}

size_t SctpTransport::Impl::buffered_amount(uint16_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? 0 : it->second.buffered;
}

void SctpTransport::Impl::reset_stream(uint16_t stream) {
  if (state_ != State::Connected && state_ != State::Connecting) return;
  if (stream >= kStreamCount) return;
  StreamState& st = streams_[stream];
  if (st.closing) return;
  st.closing = true;
  queue_reset(stream);
  // The marker may be at the head of the queue: flush from a task.
  schedule_process();
}

void SctpTransport::Impl::close() {
  if (close_requested_ || state_ == State::Closed || state_ == State::Failed) return;
  close_requested_ = true;
  closing_ = true;
  if (state_ != State::Connected) {
    // Nothing to shut down gracefully: abort the handshake (if any) and stop.
    abort_socket();
    set_state(State::Closed);
    schedule_process();
    return;
  }
  // SHUTDOWN (RFC 9260 §9.2) once our queue has been handed to usrsctp; usrsctp
  // itself sends it after all its outstanding data was acknowledged.
  if (queue_.empty()) begin_shutdown();
  uintptr_t id = id_;
  shutdown_timer_ = executor_.post_after(kShutdownTimeout, [id] {
    SctpTransport::Impl* impl = Runtime::get().find(id);
    if (impl == nullptr) return;
    impl->shutdown_timer_ = 0;
    if (impl->state_ == State::Closed || impl->state_ == State::Failed) return;
    RTCMESH_LOG(Warn, "sctp", "graceful shutdown timed out; aborting");
    impl->abort_socket();
    impl->set_state(State::Closed);
    impl->process();
  });
}

// --- Lower layer input ----------------------------------------------------

void SctpTransport::Impl::on_lower_packet(ByteSpan packet) {
  if (state_ == State::New || !early_packets_.empty()) {
    // Before start(), or while early packets are still waiting to be fed:
    // keep arrival order. Bounded; the peer retransmits what we drop.
    if (early_packets_.size() >= kMaxEarlyPackets ||
        early_bytes_ + packet.size() > kMaxEarlyBytes) {
      RTCMESH_LOG(Debug, "sctp", "dropping early packet of " << packet.size() << " bytes");
      return;
    }
    early_bytes_ += packet.size();
    early_packets_.emplace_back(packet.begin(), packet.end());
    return;
  }
  if (sock_ == nullptr) return;
  conn_input(packet);
  if (events_pending_.load() || !state_reports_.empty()) process();
}

void SctpTransport::Impl::feed_early_packets() {
  auto alive = alive_;
  while (!early_packets_.empty() && sock_ != nullptr) {
    std::vector<uint8_t> packet = std::move(early_packets_.front());
    early_packets_.pop_front();
    early_bytes_ -= packet.size();
    conn_input(ByteSpan(packet.data(), packet.size()));
    if (events_pending_.load() || !state_reports_.empty()) process();
    if (!*alive) return;
  }
  early_packets_.clear();
  early_bytes_ = 0;
}

void SctpTransport::Impl::conn_input(ByteSpan packet) {
  inline_call_.store(true);
  usrsctp_conninput(reinterpret_cast<void*>(id_), packet.data(), packet.size(), 0);
  inline_call_.store(false);
}

void SctpTransport::Impl::on_upcall_events() {
  // Dekker-style handshake with conn_input()/process(): either the top-level
  // caller sees events_pending_ after its usrsctp call, or we see
  // inline_call_ == false and post (both seq_cst).
  events_pending_.store(true);
  if (!inline_call_.load()) schedule_process();
}

void SctpTransport::Impl::schedule_process() {
  if (process_posted_.exchange(true)) return;
  uintptr_t id = id_;
  executor_.post([id] {
    SctpTransport::Impl* impl = Runtime::get().find(id);
    if (impl == nullptr) return;
    impl->process_posted_.store(false);
    impl->process();
  });
}

// --- Processing -----------------------------------------------------------

void SctpTransport::Impl::process() {
  if (processing_) {
    // Nested (a callback fed us a packet): the running round picks it up.
    return;
  }
  processing_ = true;
  auto alive = alive_;
  do {
    if (!report_states(alive)) return;
    events_pending_.store(false);
    if (sock_ != nullptr) {
      if (!drain_receive(alive)) return;
      if (!flush(alive)) return;
    }
  } while (events_pending_.load() || !state_reports_.empty());
  processing_ = false;
}

bool SctpTransport::Impl::report_states(const std::shared_ptr<bool>& alive) {
  while (!state_reports_.empty()) {
    auto [state, error] = std::move(state_reports_.front());
    state_reports_.pop_front();
    if (callbacks_.on_state) {
      callbacks_.on_state(state, error);
      if (!*alive) return false;
    }
  }
  return true;
}
void SctpTransport::Impl::maybe_release_stream(uint16_t stream) {
  // Both directions reset and nothing queued: the id may be reused (RFC 8831 §6.7).
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  const StreamState& st = it->second;
  if (st.outgoing_done && st.incoming_done && st.buffered == 0) streams_.erase(it);
}

void SctpTransport::Impl::queue_reset(uint16_t stream) {
  queue_.push_back(Outgoing{stream, 0, SendOptions{}, true, {}});
}

bool SctpTransport::Impl::flush(const std::shared_ptr<bool>& alive) {
  if (state_ == State::Connected) {
    while (!queue_.empty()) {
      Outgoing& head = queue_.front();
      if (head.reset) {
        auto it = streams_.find(head.stream);
        if (it != streams_.end() && !it->second.reset_sent)
          resets_to_request_.push_back(head.stream);
        queue_.pop_front();
        continue;
      }
      SendResult result =
          try_send(head.stream, head.ppid, head.data.data(), head.data.size(), head.options);
      if (result == SendResult::WouldBlock) break;
      StreamState& st = streams_[head.stream];
      st.buffered -= head.data.size();
      if (buffered_changed_.empty() || buffered_changed_.back() != head.stream) {
        buffered_changed_.push_back(head.stream);
      }
      queue_.pop_front();
    }
    if (!resets_to_request_.empty()) request_resets();
    if (close_requested_ && queue_.empty() && !shutdown_sent_) begin_shutdown();
  }
  if (buffered_changed_.empty()) return true;
  // Report each stream once, with its amount after this flush.
  std::vector<uint16_t> changed;
  changed.swap(buffered_changed_);
  for (size_t i = 0; i < changed.size(); ++i) {
    uint16_t stream = changed[i];
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = changed[j] == stream;
    if (seen) continue;
    size_t amount = buffered_amount(stream);
    if (callbacks_.on_buffered_amount) {
      callbacks_.on_buffered_amount(stream, amount);
      if (!*alive) return false;
    }
  }
  return true;
}

SctpTransport::Impl::SendResult SctpTransport::Impl::try_send(uint16_t stream, uint32_t ppid,
                                                              const uint8_t* data, size_t size,
                                                              const SendOptions& options) {
  if (!ensure_send_buffer(size)) return SendResult::Failed;
  sctp_sendv_spa spa{};
  spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
  spa.sendv_sndinfo.snd_sid = stream;
  spa.sendv_sndinfo.snd_ppid = htonl(ppid);
  // SCTP_EOR without SCTP_EXPLICIT_EOR: the message is accepted whole or not at all.
  spa.sendv_sndinfo.snd_flags = SCTP_EOR | (options.unordered ? SCTP_UNORDERED : 0);
  switch (options.reliability) {
    case Reliability::Reliable:
      break;
    case Reliability::MaxRetransmits:  // RFC 7496 §3.1 (PR-SCTP "limited retransmissions")
      spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
      spa.sendv_prinfo.pr_policy = SCTP_PR_SCTP_RTX;
      spa.sendv_prinfo.pr_value = options.reliability_value;
      break;
    case Reliability::MaxLifetimeMs:  // RFC 3758 timed reliability
      spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
      spa.sendv_prinfo.pr_policy = SCTP_PR_SCTP_TTL;
      spa.sendv_prinfo.pr_value = options.reliability_value;
      break;
  }
  ssize_t n = usrsctp_sendv(sock_, data, size, nullptr, 0, &spa, sizeof spa, SCTP_SENDV_SPA, 0);
  if (n >= 0) {
    ++stats_.messages_sent;
    stats_.bytes_sent += size;
    if (send_buffer_ != kSendBuffer) restore_send_buffer();
    return SendResult::Accepted;
  }
  int error = errno;
  if (error == EWOULDBLOCK || error == EAGAIN) return SendResult::WouldBlock;
  // EPIPE/ECONNRESET while the association goes away: expected, the state
  // change follows as a notification. The message is dropped.
  if (closing_) {
    RTCMESH_LOG(Debug, "sctp", "usrsctp_sendv while closing: " << std::strerror(error));
  } else {
    RTCMESH_LOG(Warn, "sctp",
                "usrsctp_sendv of " << size << " bytes on stream " << stream
                                    << " failed: " << std::strerror(error));
  }
  return SendResult::Failed;
}

bool SctpTransport::Impl::ensure_send_buffer(size_t size) {
  // usrsctp rejects (EMSGSIZE) a non-blocking send bigger than SO_SNDBUF, and
  // accepts one only when it fits whole. Messages bigger than the default
  // buffer get a temporarily bigger one (default + message, so the pipe stays
  // busy while it waits for room); restored once the message is accepted.
  if (size <= static_cast<size_t>(kSendBuffer) ||
      size + kSendBuffer <= static_cast<size_t>(send_buffer_)) {
    return true;
  }
  if (size > static_cast<size_t>(INT32_MAX) - kSendBuffer) return false;
  int wanted = static_cast<int>(size) + kSendBuffer;
  if (usrsctp_setsockopt(sock_, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted) != 0) {
    RTCMESH_LOG(Warn, "sctp",
                "cannot raise SO_SNDBUF to " << wanted << ": " << std::strerror(errno));
    return false;
  }
  send_buffer_ = wanted;
  return true;
}

void SctpTransport::Impl::restore_send_buffer() {
  int value = kSendBuffer;
  if (usrsctp_setsockopt(sock_, SOL_SOCKET, SO_SNDBUF, &value, sizeof value) == 0)
    send_buffer_ = value;
}

void SctpTransport::Impl::request_resets() {
  if (resets_to_request_.empty() || sock_ == nullptr || state_ != State::Connected) return;
  // One RE-CONFIG request for all pending streams (RFC 6525 §4.1). usrsctp
  // itself holds the request back until the data already queued on those
  // streams was sent (sctp_send_stream_reset_out_if_possible).
  std::vector<uint8_t> buffer(sizeof(sctp_reset_streams) +
                              resets_to_request_.size() * sizeof(uint16_t));
  auto* request = reinterpret_cast<sctp_reset_streams*>(buffer.data());
  request->srs_assoc_id = SCTP_ALL_ASSOC;
  request->srs_flags = SCTP_STREAM_RESET_OUTGOING;
  request->srs_number_streams = static_cast<uint16_t>(resets_to_request_.size());
  std::memcpy(buffer.data() + sizeof(sctp_reset_streams), resets_to_request_.data(),
              resets_to_request_.size() * sizeof(uint16_t));
  if (usrsctp_setsockopt(sock_, IPPROTO_SCTP, SCTP_RESET_STREAMS, buffer.data(),
                         static_cast<socklen_t>(buffer.size())) == 0) {
    for (uint16_t stream : resets_to_request_) streams_[stream].reset_sent = true;
    resets_to_request_.clear();
    return;
  }
  int error = errno;
  if (error == EALREADY || error == EAGAIN || error == EBUSY) {
    // One outstanding request at a time (RFC 6525 §5.1.1): retried when the
    // current one completes (handle_stream_reset) or after a short delay.
    arm_reset_retry();
    return;
  }
  // EINVAL: already reset / invalid stream; EPROTONOSUPPORT: peer without
  // RE-CONFIG. Nothing more we can do for these streams.
  RTCMESH_LOG(Debug, "sctp", "stream reset request failed: " << std::strerror(error));
  for (uint16_t stream : resets_to_request_) {
    auto it = streams_.find(stream);
    if (it == streams_.end()) continue;
    it->second.reset_sent = true;
    it->second.outgoing_done = true;
    maybe_release_stream(stream);
  }
  resets_to_request_.clear();
}

void SctpTransport::Impl::arm_reset_retry() {
  if (reset_retry_armed_) return;
  reset_retry_armed_ = true;
  uintptr_t id = id_;
  reset_retry_timer_ = executor_.post_after(kResetRetryDelay, [id] {
    SctpTransport::Impl* impl = Runtime::get().find(id);
    if (impl == nullptr) return;
    impl->reset_retry_armed_ = false;
    impl->request_resets();
    impl->process();
  });
}

void SctpTransport::Impl::begin_shutdown() {
  if (shutdown_sent_ || sock_ == nullptr) return;
  shutdown_sent_ = true;
  if (usrsctp_shutdown(sock_, SHUT_WR) < 0) {
    RTCMESH_LOG(Debug, "sctp", "usrsctp_shutdown: " << std::strerror(errno));
  }
}

void SctpTransport::Impl::abort_socket() {
  if (sock_ == nullptr) return;
  usrsctp_close(sock_);  // SO_LINGER {1, 0}: sends ABORT if an association exists
  sock_ = nullptr;
}

void SctpTransport::Impl::set_state(State state, std::string error) {
  if (state_ == state) return;
  RTCMESH_LOG(Debug, "sctp",
              "state " << to_string(state_) << " -> " << to_string(state)
                       << (error.empty() ? "" : ": ") << error);
  state_ = state;
  if (state == State::Closed || state == State::Failed) closing_ = true;
  state_reports_.emplace_back(state, std::move(error));
}

// --- SctpTransport ----------------------------------------------------------

SctpTransport::SctpTransport(base::Executor& executor, PacketTransport& lower, Options options,
                             Callbacks callbacks)
    : impl_(std::make_unique<Impl>(executor, lower, options, std::move(callbacks))) {}

SctpTransport::~SctpTransport() = default;

void SctpTransport::start() {
  impl_->start();
}

bool SctpTransport::send(uint16_t stream, uint32_t ppid, ByteSpan message,
                         const SendOptions& options) {
  return impl_->send(stream, ppid, message, options);
}

size_t SctpTransport::buffered_amount(uint16_t stream) const {
  return impl_->buffered_amount(stream);
}

void SctpTransport::reset_stream(uint16_t stream) {
  impl_->reset_stream(stream);
}

void SctpTransport::close() {
  impl_->close();
}

void SctpTransport::set_receive_paused(bool paused) {
  if (impl_->receive_paused_ == paused) return;
  impl_->receive_paused_ = paused;
  // What arrived meanwhile is read in a later task, never inside this call.
  if (!paused) {
    impl_->events_pending_.store(true);
    impl_->schedule_process();
  }
}

State SctpTransport::state() const {
  return impl_->state_;
}

Stats SctpTransport::stats() const {
  Stats stats = impl_->stats_;
  if (impl_->sock_ != nullptr) {
    sctp_status status{};
    socklen_t len = sizeof status;
    if (usrsctp_getsockopt(impl_->sock_, IPPROTO_SCTP, SCTP_STATUS, &status, &len) == 0) {
      stats.srtt_ms = status.sstat_primary.spinfo_srtt;
      stats.has_srtt = true;
    }
  }
  return stats;
}

}  // namespace rtcmesh::sctp
