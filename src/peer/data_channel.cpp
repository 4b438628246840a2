// DataChannel: the per-channel half of RFC 8831 on top of the connection's SCTP
// association. send() may run on any thread; everything else on the loop.
#include "dcep/dcep.hpp"
#include "peer/peer_internal.hpp"

namespace rtcmesh {
namespace impl {

DataChannel::DataChannel(std::weak_ptr<PeerConnection> pc_, std::shared_ptr<base::Loop> loop_,
                         std::string label_, const DataChannelInit& init)
    : pc(std::move(pc_)),
      loop(std::move(loop_)),
      label(std::move(label_)),
      protocol(init.protocol),
      ordered(init.ordered),
      max_packet_life_time(init.max_packet_life_time),
      max_retransmits(init.max_retransmits),
      negotiated(init.negotiated),
      observer([&] {
        auto locked = pc.lock();
        return locked ? locked->config.observer : nullptr;
      }()) {}

DataChannelStats DataChannel::stats() const {
  DataChannelStats d;
  d.id = "D" + std::to_string(stream.load());
  d.label = label;
  d.protocol = protocol;
  d.data_channel_identifier = stream;
  d.state = to_string(state.load());
  d.messages_sent = messages_sent;
  d.bytes_sent = bytes_sent;
  d.messages_received = messages_received;
  d.bytes_received = bytes_received;
  return d;
}

Status DataChannel::send(uint32_t ppid, std::span<const uint8_t> data) {
  if (state != DataChannelState::Open) {
    return make_error(ErrorCode::InvalidStateError,
                      "the channel is " + std::string(to_string(state.load())));
  }
  if (data.size() > remote_max_message_size) {
    return make_error(ErrorCode::TypeError, "message of " + std::to_string(data.size()) +
                                                " bytes exceeds the maximum message size " +
                                                std::to_string(remote_max_message_size));
  }
  if (buffered_amount() + data.size() > kMaxBufferedBytes) {
    return make_error(ErrorCode::OperationError,
                      "send queue full (" + std::to_string(buffered_amount()) + " bytes buffered)");
  }
  auto pc_locked = pc.lock();
  if (!pc_locked) return make_error(ErrorCode::InvalidStateError, "the connection is gone");
  // RFC 8831 section 6.6: an empty message is sent as one byte with PPID 56/57.
  std::vector<uint8_t> payload;
  uint32_t wire_ppid = ppid;
  if (data.empty()) {
    payload.assign(1, 0);
    wire_ppid = ppid == static_cast<uint32_t>(dcep::Ppid::String)
                    ? static_cast<uint32_t>(dcep::Ppid::StringEmpty)
                    : static_cast<uint32_t>(dcep::Ppid::BinaryEmpty);
  } else {
    payload.assign(data.begin(), data.end());
  }
  posted_bytes += data.size();
  size_t user_bytes = data.size();
  if (loop->in_loop_thread()) {
    pc_locked->send_message(shared_from_this(), wire_ppid, std::move(payload), user_bytes);
  } else {
    loop->post([pc_locked, self = shared_from_this(), wire_ppid, payload = std::move(payload),
                user_bytes]() mutable {
      pc_locked->send_message(self, wire_ppid, std::move(payload), user_bytes);
    });
  }
  return {};
}

void DataChannel::close() {
  auto run = [self = shared_from_this()] {
    if (auto pc_locked = self->pc.lock()) {
      pc_locked->close_channel(self);
    } else if (self->state != DataChannelState::Closed) {
      self->set_closed();
    }
  };
  // Posted even on the loop: close() may be called from inside our own callbacks.
  loop->post(std::move(run));
}

void DataChannel::set_open() {
  state = DataChannelState::Open;
  if (observer) observer->on_data_channel_open(label, stream, protocol);
  if (on_open) on_open();
}

void DataChannel::set_closed() {
  if (state == DataChannelState::Closed) return;
  state = DataChannelState::Closed;
  sctp_buffered = 0;
  if (observer) observer->on_data_channel_close(stats());
  auto callback = std::move(on_close);
  clear_callbacks();  // break user cycles (callbacks capturing the channel)
  if (callback) callback();
}

void DataChannel::update_sctp_buffered(size_t amount) {
  size_t before = buffered_amount();
  sctp_buffered = amount;
  amount_decreased(before);
}

void DataChannel::amount_decreased(size_t before) {
  size_t after = buffered_amount();
  size_t threshold = low_threshold;
  // W3C: fire bufferedamountlow when the amount decreases to the threshold or
  // below. Like the browser, queue it as a task: this can happen inside send()
  // (SCTP took the bytes at once), and the handler usually calls send() again.
  if (before > threshold && after <= threshold && on_buffered_amount_low && !low_event_queued) {
    low_event_queued = true;
    loop->post([self = shared_from_this()] {
      self->low_event_queued = false;
      if (self->on_buffered_amount_low && self->state == DataChannelState::Open) {
        self->on_buffered_amount_low();
      }
    });
  }
}

void DataChannel::clear_callbacks() {
  on_open = nullptr;
  on_closing = nullptr;
  on_close = nullptr;
  on_buffered_amount_low = nullptr;
  on_message = nullptr;
  on_error = nullptr;
}

}  // namespace impl

DataChannel::DataChannel(std::shared_ptr<impl::DataChannel> impl) : impl_(std::move(impl)) {}
DataChannel::~DataChannel() = default;

std::string DataChannel::label() const {
  return impl_->label;
}
std::string DataChannel::protocol() const {
  return impl_->protocol;
}
bool DataChannel::ordered() const {
  return impl_->ordered;
}
std::optional<uint16_t> DataChannel::max_packet_life_time() const {
  return impl_->max_packet_life_time;
}
std::optional<uint16_t> DataChannel::max_retransmits() const {
  return impl_->max_retransmits;
}
bool DataChannel::negotiated() const {
  return impl_->negotiated;
}
std::optional<uint16_t> DataChannel::id() const {
  int stream = impl_->stream;
  if (stream < 0) return std::nullopt;
  return static_cast<uint16_t>(stream);
}
DataChannelState DataChannel::ready_state() const {
  return impl_->state;
}
size_t DataChannel::buffered_amount() const {
  return impl_->buffered_amount();
}
size_t DataChannel::buffered_amount_low_threshold() const {
  return impl_->low_threshold;
}
void DataChannel::set_buffered_amount_low_threshold(size_t bytes) {
  impl_->low_threshold = bytes;
}
size_t DataChannel::max_message_size() const {
  return impl_->remote_max_message_size;
}

Result<void> DataChannel::send(std::string_view text) {
  return impl_->send(
      static_cast<uint32_t>(dcep::Ppid::String),
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Result<void> DataChannel::send(std::span<const uint8_t> binary) {
  return impl_->send(static_cast<uint32_t>(dcep::Ppid::Binary), binary);
}

void DataChannel::close() {
  impl_->close();
}

#define RTCMESH_DC_SETTER(name, type)                                  \
  void DataChannel::name(std::function<type> callback) {               \
    impl_->loop->run_sync([&] { impl_->name = std::move(callback); }); \
  }
RTCMESH_DC_SETTER(on_open, void())
RTCMESH_DC_SETTER(on_message, void(const Message&))
RTCMESH_DC_SETTER(on_closing, void())
RTCMESH_DC_SETTER(on_close, void())
RTCMESH_DC_SETTER(on_error, void(const Error&))
RTCMESH_DC_SETTER(on_buffered_amount_low, void())
#undef RTCMESH_DC_SETTER

}  // namespace rtcmesh
