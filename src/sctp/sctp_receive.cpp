// SctpTransport::Impl, receive side: reading messages from usrsctp
// (reassembly up to MSG_EOR, the size limit), notifications (association
// changes, stream resets). See sctp_transport.cpp for the threading and
// re-entrancy rules.
#include <cerrno>
#include <cstring>

#include "base/log.hpp"
#include "sctp/sctp_impl.hpp"

namespace rtcmesh::sctp {
namespace {

// Thread-local receive scratch buffer: all transports of a thread share one, so
// an idle association costs no receive buffer. `busy` guards against nesting
// (a user callback that makes another transport receive synchronously).
struct ReceiveScratch {
  std::vector<uint8_t> buffer;
  bool busy = false;
};
thread_local ReceiveScratch receive_scratch;

}  // namespace

bool SctpTransport::Impl::drain_receive(const std::shared_ptr<bool>& alive) {
  ReceiveScratch& scratch = receive_scratch;
  std::vector<uint8_t> nested;
  uint8_t* buffer;
  bool owns_scratch = !scratch.busy;
  if (owns_scratch) {
    if (scratch.buffer.size() < kReceiveChunk) scratch.buffer.resize(kReceiveChunk);
    scratch.busy = true;
    buffer = scratch.buffer.data();
  } else {
    nested.resize(kReceiveChunk);
    buffer = nested.data();
  }
  struct Release {
    ReceiveScratch& scratch;
    bool owns;
    ~Release() {
      if (owns) scratch.busy = false;
    }
  } release{scratch, owns_scratch};

  while (sock_ != nullptr && !receive_paused_) {
    sctp_rcvinfo info{};
    socklen_t info_size = sizeof info;
    unsigned int info_type = SCTP_RECVV_NOINFO;
    sockaddr_conn from{};
    socklen_t from_size = sizeof from;
    int flags = 0;
    ssize_t n = usrsctp_recvv(sock_, buffer, kReceiveChunk, reinterpret_cast<sockaddr*>(&from),
                              &from_size, &info, &info_size, &info_type, &flags);
    if (n < 0) {
      if (errno != EWOULDBLOCK && errno != EAGAIN && errno != ENOTCONN) {
        RTCMESH_LOG(Debug, "sctp", "usrsctp_recvv: " << std::strerror(errno));
      }
      return true;
    }
    if (n == 0) return true;  // end of stream (peer shut down); nothing more to read
    auto size = static_cast<size_t>(n);
    bool eor = (flags & MSG_EOR) != 0;

    if (flags & MSG_NOTIFICATION) {
      if (notification_.empty() && eor) {
        if (!handle_notification(alive, buffer, size)) return false;
      } else {
        notification_.insert(notification_.end(), buffer, buffer + size);
        if (eor) {
          std::vector<uint8_t> whole = std::move(notification_);
          notification_.clear();
          if (!handle_notification(alive, whole.data(), whole.size())) return false;
        }
      }
      continue;
    }

    if (!message_started_) {
      message_started_ = true;
      message_discarding_ = false;
      message_size_ = 0;
      message_stream_ = info_type == SCTP_RECVV_RCVINFO ? info.rcv_sid : 0;
      message_ppid_ = info_type == SCTP_RECVV_RCVINFO ? ntohl(info.rcv_ppid) : 0;
    }
    message_size_ += size;
    if (message_size_ > options_.max_receive_message_size) {
      if (!message_discarding_) {
        message_discarding_ = true;
        std::vector<uint8_t>().swap(message_);  // free the partial message
      }
    } else if (eor && message_.empty()) {
      // Whole message in one read: deliver from the scratch buffer, no copy.
      message_started_ = false;
      if (!deliver_message(alive, message_stream_, message_ppid_, ByteSpan(buffer, size)))
        return false;
      continue;
    } else {
      message_.insert(message_.end(), buffer, buffer + size);
    }
    if (!eor) continue;
    message_started_ = false;
    if (message_discarding_) {
      ++stats_.messages_dropped;
      RTCMESH_LOG(Warn, "sctp",
                  "dropped a " << message_size_ << "-byte message on stream " << message_stream_
                               << " (limit " << options_.max_receive_message_size << ")");
      continue;
    }
    std::vector<uint8_t> whole = std::move(message_);
    message_.clear();
    if (!deliver_message(alive, message_stream_, message_ppid_,
                         ByteSpan(whole.data(), whole.size()))) {
      return false;
    }
    if (message_.capacity() == 0 && whole.capacity() <= kReceiveChunk * 4) {
      whole.clear();
      message_ = std::move(whole);  // keep a moderate buffer for the next one
    }
  }
  return true;
}

bool SctpTransport::Impl::deliver_message(const std::shared_ptr<bool>& alive, uint16_t stream,
                                          uint32_t ppid, ByteSpan message) {
  ++stats_.messages_received;
  stats_.bytes_received += message.size();
  if (callbacks_.on_message) {
    callbacks_.on_message(stream, ppid, message);
    if (!*alive) return false;
  }
  return true;
}

bool SctpTransport::Impl::handle_notification(const std::shared_ptr<bool>& alive,
                                              const uint8_t* data, size_t size) {
  sctp_notification::sctp_tlv header;
  if (size < sizeof header) return true;
  std::memcpy(&header, data, sizeof header);
  switch (header.sn_type) {
    case SCTP_ASSOC_CHANGE: {
      sctp_assoc_change change{};
      std::memcpy(&change, data, std::min(size, sizeof change));
      handle_assoc_change(change);
      return report_states(alive);
    }
    case SCTP_SHUTDOWN_EVENT:
      // The peer started a graceful shutdown: it accepts no more data from us
      // (RFC 9260 §9.2); SHUTDOWN_COMP follows.
      RTCMESH_LOG(Debug, "sctp", "peer shut down the association");
      closing_ = true;
      return true;
    case SCTP_SENDER_DRY_EVENT:
      events_pending_.store(true);  // flush below anyway; nothing else to do
      return true;
    case SCTP_STREAM_RESET_EVENT:
      return handle_stream_reset(alive, data, size);
    default:
      return true;
  }
}

bool SctpTransport::Impl::handle_assoc_change(const sctp_assoc_change& change) {
  switch (change.sac_state) {
    case SCTP_COMM_UP:
      RTCMESH_LOG(Debug, "sctp",
                  "association up, streams out " << change.sac_outbound_streams << " in "
                                                 << change.sac_inbound_streams);
      if (state_ == State::Connecting) set_state(State::Connected);
      break;
    case SCTP_RESTART:
      RTCMESH_LOG(Warn, "sctp", "peer restarted the association");
      break;
    case SCTP_SHUTDOWN_COMP:
      if (state_ != State::Closed && state_ != State::Failed) set_state(State::Closed);
      break;
    case SCTP_COMM_LOST:
      if (state_ == State::Closed || state_ == State::Failed) break;
      if (shutdown_sent_) {
        set_state(State::Closed);  // we were closing anyway
      } else {
        set_state(State::Failed,
                  "SCTP association lost (peer aborted or stopped answering), error " +
                      std::to_string(change.sac_error));
      }
      break;
    case SCTP_CANT_STR_ASSOC:
      if (state_ != State::Closed && state_ != State::Failed) {
        set_state(State::Failed, "SCTP association could not be established");
      }
      break;
    default:
      break;
  }
  return true;
}

bool SctpTransport::Impl::handle_stream_reset(const std::shared_ptr<bool>& alive,
                                              const uint8_t* data, size_t size) {
  if (size < sizeof(sctp_stream_reset_event)) return true;
  sctp_stream_reset_event event;
  std::memcpy(&event, data, sizeof event);
  size_t length = std::min<size_t>(event.strreset_length, size);
  size_t count = (length - sizeof event) / sizeof(uint16_t);
  std::vector<uint16_t> list(count);
  if (count > 0) std::memcpy(list.data(), data + sizeof event, count * sizeof(uint16_t));
  uint16_t flags = event.strreset_flags;

  if (flags & (SCTP_STREAM_RESET_DENIED | SCTP_STREAM_RESET_FAILED)) {
    // Our request was refused (RFC 6525 §5.2.2 results "denied" / "in
    // progress"): the peer may have been busy with a request of its own.
    if (flags & SCTP_STREAM_RESET_OUTGOING_SSN) {
      for (uint16_t stream : list) {
        auto it = streams_.find(stream);
        if (it == streams_.end() || !it->second.reset_sent || it->second.outgoing_done) continue;
        StreamState& st = it->second;
        if (++st.refusals >= kMaxResetRefusals) {
          RTCMESH_LOG(Warn, "sctp",
                      "peer keeps refusing the reset of stream " << stream << "; giving up");
          st.outgoing_done = true;
          maybe_release_stream(stream);
          continue;
        }
        st.reset_sent = false;
        resets_to_request_.push_back(stream);
      }
      if (!resets_to_request_.empty()) arm_reset_retry();
    }
    return true;
  }
  if (list.empty()) {
    RTCMESH_LOG(Debug, "sctp", "reset of all streams ignored");
    return true;
  }
  if (flags & SCTP_STREAM_RESET_INCOMING_SSN) {
    // The peer reset its outgoing side (closed the channel, or answered ours):
    // reset ours too, after the data we still have queued (RFC 8831 §6.7).
    for (uint16_t stream : list) {
      StreamState& st = streams_[stream];
      st.incoming_done = true;
      if (!st.closing) {
        st.closing = true;
        queue_reset(stream);
      }
    }
    for (uint16_t stream : list) {
      if (callbacks_.on_stream_reset) {
        callbacks_.on_stream_reset(stream);
        if (!*alive) return false;
      }
      maybe_release_stream(stream);
    }
    events_pending_.store(true);  // flush the reset markers
  }
  if (flags & SCTP_STREAM_RESET_OUTGOING_SSN) {
    for (uint16_t stream : list) {
      auto it = streams_.find(stream);
      if (it == streams_.end()) continue;
      it->second.outgoing_done = true;
      maybe_release_stream(stream);
    }
    if (!resets_to_request_.empty()) request_resets();  // one request at a time
  }
  return true;
}

}  // namespace rtcmesh::sctp
