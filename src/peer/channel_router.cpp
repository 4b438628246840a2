// Channel routing of one connection: stream ids, DCEP and per-stream delivery.
#include "peer/channel_router.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "dcep/dcep.hpp"
#include "peer/peer_internal.hpp"

namespace rtcmesh::impl {

ChannelRouter::ChannelRouter(std::shared_ptr<base::Loop> loop,
                             std::shared_ptr<ConnectionObserver> observer)
    : loop_(std::move(loop)),
      observer_(std::move(observer)),
      remote_max_message_size_(kDefaultRemoteMaxMessageSize) {}

void ChannelRouter::attach(sctp::SctpTransport* sctp, dtls::Role role) {
  sctp_ = sctp;
  role_ = role;
  assign_stream_ids();
}

void ChannelRouter::set_remote_max_message_size(size_t bytes) {
  remote_max_message_size_ = bytes;
  for (auto& [id, channel] : channels_) channel->remote_max_message_size = bytes;
  for (auto& channel : pending_) channel->remote_max_message_size = bytes;
}

Result<std::shared_ptr<DataChannel>> ChannelRouter::create(const std::string& label,
                                                           const DataChannelInit& init) {
  if (label.size() > 65535)
    return make_error(ErrorCode::TypeError, "label longer than 65535 bytes");
  if (init.protocol.size() > 65535)
    return make_error(ErrorCode::TypeError, "protocol longer than 65535 bytes");
  if (init.max_retransmits && init.max_packet_life_time) {
    return make_error(ErrorCode::TypeError,
                      "maxRetransmits and maxPacketLifeTime are mutually exclusive");
  }
  if (init.negotiated && !init.id)
    return make_error(ErrorCode::TypeError, "a negotiated channel needs an id");
  if (init.id && *init.id >= kMaxStreams) {
    return make_error(ErrorCode::OperationError, "channel id " + std::to_string(*init.id) +
                                                     " exceeds the " + std::to_string(kMaxStreams) +
                                                     " negotiated SCTP streams");
  }
  auto channel = std::make_shared<DataChannel>(owner_, loop_, label, init);
  channel->remote_max_message_size = remote_max_message_size_;
  if (init.id) {
    if (channels_.count(*init.id)) {
      return make_error(ErrorCode::OperationError,
                        "channel id " + std::to_string(*init.id) + " is in use");
    }
    channel->stream = *init.id;
    channels_[*init.id] = channel;
  } else {
    pending_.push_back(channel);
    if (role_) assign_stream_ids();
  }
  return channel;
}

void ChannelRouter::assign_stream_ids() {
  if (!role_) return;
  // RFC 8832 section 6: the DTLS client uses even stream ids, the server odd ones.
  uint16_t next = *role_ == dtls::Role::Client ? 0 : 1;
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& channel : pending) {
    while (next < kMaxStreams && channels_.count(next)) next = static_cast<uint16_t>(next + 2);
    if (next >= kMaxStreams) {
      channel->set_closed();
      if (channel->on_error)
        channel->on_error(make_error(ErrorCode::OperationError, "no free SCTP stream id"));
      continue;
    }
    channel->stream = next;
    channels_[next] = channel;
  }
}

void ChannelRouter::open_all() {
  for (auto& [id, channel] : std::map(channels_)) {
    if (channel->state == DataChannelState::Connecting) open(channel);
  }
}

void ChannelRouter::open(const std::shared_ptr<DataChannel>& channel) {
  if (!channel->negotiated) {
    if (!sctp_) return;
    dcep::Open open;
    bool unordered = !channel->ordered;
    if (channel->max_retransmits) {
      open.channel_type = unordered ? dcep::ChannelType::PartialReliableRexmitUnordered
                                    : dcep::ChannelType::PartialReliableRexmit;
      open.reliability_parameter = *channel->max_retransmits;
    } else if (channel->max_packet_life_time) {
      open.channel_type = unordered ? dcep::ChannelType::PartialReliableTimedUnordered
                                    : dcep::ChannelType::PartialReliableTimed;
      open.reliability_parameter = *channel->max_packet_life_time;
    } else {
      open.channel_type =
          unordered ? dcep::ChannelType::ReliableUnordered : dcep::ChannelType::Reliable;
    }
    open.label = channel->label;
    open.protocol = channel->protocol;
    auto bytes = dcep::serialize(open);
    // RFC 8832 section 6: DCEP messages are sent reliably and in order.
    sctp_->send(static_cast<uint16_t>(channel->stream.load()),
                static_cast<uint32_t>(dcep::Ppid::Dcep), ByteSpan(bytes.data(), bytes.size()),
                sctp::SendOptions{});
  } else {
    channel->acked = true;
  }
  ++opened_;
  channel->set_open();
}

std::shared_ptr<DataChannel> ChannelRouter::find(uint16_t stream) const {
  auto it = channels_.find(stream);
  return it == channels_.end() ? nullptr : it->second;
}

void ChannelRouter::handle_message(uint16_t stream, uint32_t ppid, ByteSpan message) {
  if (ppid == static_cast<uint32_t>(dcep::Ppid::Dcep)) {
    handle_dcep(stream, message);
    return;
  }
  auto channel = find(stream);
  if (!channel || channel->state == DataChannelState::Closed) {
    RTCMESH_LOG(Debug, "peer", "message on unknown stream " << stream << " dropped");
    return;
  }
  Message m;
  switch (static_cast<dcep::Ppid>(ppid)) {
    case dcep::Ppid::String:
    case dcep::Ppid::StringPartial:
      m.binary = false;
      m.data = message;
      break;
    case dcep::Ppid::Binary:
    case dcep::Ppid::BinaryPartial:
      m.binary = true;
      m.data = message;
      break;
    case dcep::Ppid::StringEmpty:
      m.binary = false;
      break;
    case dcep::Ppid::BinaryEmpty:
      m.binary = true;
      break;
    default:
      RTCMESH_LOG(Debug, "peer", "unknown PPID " << ppid << " dropped");
      return;
  }
  // Any user message on the stream implies the remote saw our OPEN (RFC 8832 section 6).
  channel->acked = true;
  ++channel->messages_received;
  channel->bytes_received += m.data.size();
  if (observer_) observer_->on_message(false, channel->label, m.data.size());
  if (channel->on_message) channel->on_message(m);
}

void ChannelRouter::handle_dcep(uint16_t stream, ByteSpan message) {
  auto parsed = dcep::parse(message);
  if (!parsed) {
    RTCMESH_LOG(Warn, "peer",
                "bad DCEP message on stream " << stream << ": " << parsed.error().message);
    return;
  }
  if (std::holds_alternative<dcep::Ack>(*parsed)) {
    if (auto channel = find(stream)) channel->acked = true;
    return;
  }
  if (!sctp_) return;
  const auto& open = std::get<dcep::Open>(*parsed);
  // The remote opens on its own parity: odd if we are the DTLS client.
  bool remote_parity_ok = role_ && ((stream % 2 == 1) == (*role_ == dtls::Role::Client));
  if (!remote_parity_ok || channels_.count(stream) || stream >= kMaxStreams) {
    RTCMESH_LOG(
        Warn, "peer",
        "DATA_CHANNEL_OPEN on stream " << stream << " violates the id rules; resetting the stream");
    sctp_->reset_stream(stream);
    return;
  }
  DataChannelInit init;
  init.protocol = open.protocol;
  init.ordered = dcep::is_ordered(open.channel_type);
  switch (open.channel_type) {
    case dcep::ChannelType::PartialReliableRexmit:
    case dcep::ChannelType::PartialReliableRexmitUnordered:
      init.max_retransmits =
          static_cast<uint16_t>(std::min<uint32_t>(open.reliability_parameter, 65535));
      break;
    case dcep::ChannelType::PartialReliableTimed:
    case dcep::ChannelType::PartialReliableTimedUnordered:
      init.max_packet_life_time =
          static_cast<uint16_t>(std::min<uint32_t>(open.reliability_parameter, 65535));
      break;
    default:
      break;
  }
  auto channel = std::make_shared<DataChannel>(owner_, loop_, open.label, init);
  channel->stream = stream;
  channel->acked = true;
  channel->remote_max_message_size = remote_max_message_size_;
  channels_[stream] = channel;
  auto ack = dcep::serialize_ack();
  sctp_->send(stream, static_cast<uint32_t>(dcep::Ppid::Dcep), ByteSpan(ack.data(), ack.size()),
              sctp::SendOptions{});
  ++opened_;
  channel->state = DataChannelState::Open;
  if (observer_) observer_->on_data_channel_open(channel->label, stream, channel->protocol);
  if (on_remote_channel) on_remote_channel(channel);
  if (channel->on_open) channel->on_open();
}

void ChannelRouter::handle_stream_reset(uint16_t stream) {
  auto channel = find(stream);
  if (!channel) return;
  channels_.erase(stream);
  if (channel->state != DataChannelState::Closed) {
    ++closed_;
    channel->set_closed();
  }
}

void ChannelRouter::handle_buffered_amount(uint16_t stream, size_t amount) {
  if (auto channel = find(stream)) channel->update_sctp_buffered(amount);
}

void ChannelRouter::send(const std::shared_ptr<DataChannel>& channel, uint32_t ppid,
                         std::vector<uint8_t> payload, size_t user_bytes) {
  // The bytes leave our "posted" count here; the channel fires bufferedamountlow
  // if the total drops across its threshold (including when SCTP took them all).
  size_t before = channel->buffered_amount();
  channel->posted_bytes -= user_bytes;
  if (!sctp_ || channel->state != DataChannelState::Open || channel->stream < 0) {
    channel->amount_decreased(before);
    return;
  }
  sctp::SendOptions options;
  // Until the DCEP ACK arrives, user messages must be ordered (RFC 8832 section 6).
  options.unordered = !channel->ordered && channel->acked;
  if (channel->max_retransmits) {
    options.reliability = sctp::Reliability::MaxRetransmits;
    options.reliability_value = *channel->max_retransmits;
  } else if (channel->max_packet_life_time) {
    options.reliability = sctp::Reliability::MaxLifetimeMs;
    options.reliability_value = *channel->max_packet_life_time;
  }
  auto stream = static_cast<uint16_t>(channel->stream.load());
  if (sctp_->send(stream, ppid, ByteSpan(payload.data(), payload.size()), options)) {
    ++channel->messages_sent;
    channel->bytes_sent += user_bytes;
    if (observer_) observer_->on_message(true, channel->label, user_bytes);
    channel->sctp_buffered = sctp_->buffered_amount(stream);
  } else if (channel->on_error) {
    channel->on_error(make_error(ErrorCode::OperationError, "SCTP refused the message"));
  }
  channel->amount_decreased(before);
}

void ChannelRouter::close(const std::shared_ptr<DataChannel>& channel, bool connected) {
  auto state = channel->state.load();
  if (state == DataChannelState::Closing || state == DataChannelState::Closed) return;
  if (!connected || !sctp_ || channel->stream < 0) {
    pending_.erase(std::remove(pending_.begin(), pending_.end(), channel), pending_.end());
    if (channel->stream >= 0) channels_.erase(static_cast<uint16_t>(channel->stream.load()));
    channel->set_closed();
    return;
  }
  channel->state = DataChannelState::Closing;
  if (channel->on_closing) channel->on_closing();
  sctp_->reset_stream(static_cast<uint16_t>(channel->stream.load()));
}

void ChannelRouter::close_all() {
  // Moved out first: on_close handlers may call back into the connection.
  auto channels = std::move(channels_);
  channels_.clear();
  auto pending = std::move(pending_);
  pending_.clear();
  auto end = [this](const std::shared_ptr<DataChannel>& channel) {
    if (channel->state == DataChannelState::Closed) return;
    ++closed_;
    channel->set_closed();
  };
  for (auto& [id, channel] : channels) end(channel);
  for (auto& channel : pending) end(channel);
}

void ChannelRouter::add_stats(Stats& stats) const {
  stats.data_channels_opened = opened_;
  stats.data_channels_closed = closed_;
  for (const auto& [id, channel] : channels_) stats.data_channels.push_back(channel->stats());
  for (const auto& channel : pending_) stats.data_channels.push_back(channel->stats());
}

}  // namespace rtcmesh::impl
