// RTCDataChannel.
//
// Thread-safety: every method may be called from any thread. Callbacks run on
// the connection's network thread, one at a time; they must not block (a slow
// callback stalls every connection on that thread). close() is safe from any
// thread and from inside any callback.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "rtcmesh/result.hpp"
#include "rtcmesh/states.hpp"

namespace rtcmesh {

// One received message. The bytes are valid only during the callback.
struct Message {
  bool binary = false;
  std::span<const uint8_t> data;
  std::string_view text() const {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
  }
};

namespace impl {
struct DataChannel;
struct PeerConnection;
}  // namespace impl

class DataChannel {
 public:
  ~DataChannel();
  DataChannel(const DataChannel&) = delete;
  DataChannel& operator=(const DataChannel&) = delete;

  std::string label() const;
  std::string protocol() const;
  bool ordered() const;
  std::optional<uint16_t> max_packet_life_time() const;
  std::optional<uint16_t> max_retransmits() const;
  bool negotiated() const;
  std::optional<uint16_t> id() const;  // empty until the DTLS role is known
  DataChannelState ready_state() const;
  // Bytes passed to send() that SCTP has not accepted yet.
  size_t buffered_amount() const;
  size_t buffered_amount_low_threshold() const;
  void set_buffered_amount_low_threshold(size_t bytes);
  // The largest message send() accepts: the remote's a=max-message-size.
  size_t max_message_size() const;

  // Queues a message. 0-byte messages are allowed.
  // Errors (W3C send()): InvalidStateError when the channel is not open or its
  // connection is gone; TypeError when the message exceeds
  // max_message_size(); OperationError when the send queue (16 MiB) is full.
  // Nothing is queued on error.
  [[nodiscard]] Result<void> send(std::string_view text);
  [[nodiscard]] Result<void> send(std::span<const uint8_t> binary);
  // Closes the channel (SCTP stream reset); queued messages are sent first.
  void close();

  void on_open(std::function<void()> callback);
  void on_message(std::function<void(const Message&)> callback);
  void on_closing(std::function<void()> callback);
  void on_close(std::function<void()> callback);
  // OperationError: no free SCTP stream id, or SCTP refused a queued message.
  void on_error(std::function<void(const Error&)> callback);
  void on_buffered_amount_low(std::function<void()> callback);

 private:
  // Handles are made only by the connection.
  friend class PeerConnection;
  friend struct impl::PeerConnection;
  explicit DataChannel(std::shared_ptr<impl::DataChannel> impl);

  std::shared_ptr<impl::DataChannel> impl_;
};

}  // namespace rtcmesh
