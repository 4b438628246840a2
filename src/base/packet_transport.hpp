// The seam between layers: a datagram link to the layer below.
//
// ICE carries DTLS records, DTLS carries SCTP packets. Each layer sees only this
// interface, so DTLS and SCTP can be tested over an in-memory pipe.
// Thread-safety: not thread-safe. Every call and every receiver callback runs on
// the owning connection's network thread (base::Loop).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace rtcmesh {

using ByteSpan = std::span<const uint8_t>;

class PacketTransport {
 public:
  using Receiver = std::function<void(ByteSpan packet)>;

  virtual ~PacketTransport() = default;
  // Sends one datagram. Returns false when the packet was dropped (link not up,
  // or the layer below refused it); datagram links may drop silently too.
  virtual bool send(ByteSpan packet) = 0;
  // Replaces the receiver of incoming datagrams. The span is valid only during the call.
  void set_receiver(Receiver receiver) { receiver_ = std::move(receiver); }

 protected:
  void deliver(ByteSpan packet) {
    if (receiver_) receiver_(packet);
  }

 private:
  Receiver receiver_;
};

}  // namespace rtcmesh
