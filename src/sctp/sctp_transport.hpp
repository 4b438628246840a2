// One SCTP association (RFC 9260) over a datagram link (DTLS), using usrsctp in
// AF_CONN mode, as WebRTC data channels need it (RFC 8831): both sides connect
// (simultaneous open), 1024 streams each way, PR-SCTP, stream reset for close.
//
// Thread-safety: not thread-safe. Construct, call and destroy on the loop thread;
// all callbacks run there, never from inside a usrsctp call that would be unsafe
// to re-enter (they are deferred to the loop when needed).
// `lower` must outlive this object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/loop.hpp"
#include "base/packet_transport.hpp"

namespace rtcmesh::sctp {

enum class State { New, Connecting, Connected, Closed, Failed };
const char* to_string(State state);

// Partial reliability (RFC 3758) of one message.
enum class Reliability { Reliable, MaxRetransmits, MaxLifetimeMs };

struct SendOptions {
  bool unordered = false;
  Reliability reliability = Reliability::Reliable;
  uint32_t reliability_value = 0;  // retransmits or milliseconds
};

struct Stats {
  uint64_t bytes_sent = 0;      // user payload bytes accepted by SCTP
  uint64_t bytes_received = 0;  // user payload bytes delivered
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  // Incoming messages dropped because they exceeded max_receive_message_size.
  uint64_t messages_dropped = 0;
};

struct Callbacks {
  std::function<void(State state, const std::string& error)> on_state;
  // A complete message (reassembled up to MSG_EOR). The span is valid during the call.
  std::function<void(uint16_t stream, uint32_t ppid, ByteSpan message)> on_message;
  // The peer reset its outgoing side of `stream` (the channel was closed remotely);
  // we have already reset ours in answer.
  std::function<void(uint16_t stream)> on_stream_reset;
  // The buffered amount of `stream` went down (data moved from our queue into SCTP).
  std::function<void(uint16_t stream, size_t buffered_amount)> on_buffered_amount;
};

struct Options {
  uint16_t local_port = 5000;   // a=sctp-port of our description
  uint16_t remote_port = 5000;  // a=sctp-port of the remote description
  // Largest message we accept; bigger incoming messages are dropped and counted.
  size_t max_receive_message_size = 256 * 1024;
};

class SctpTransport {
 public:
  SctpTransport(base::Loop& loop, PacketTransport& lower, Options options, Callbacks callbacks);
  ~SctpTransport();  // aborts the association if still open; no callback afterwards
  SctpTransport(const SctpTransport&) = delete;
  SctpTransport& operator=(const SctpTransport&) = delete;

  // Connects (both sides call this; SCTP handles the simultaneous open).
  void start();
  // Queues one message for `stream`. Messages on a stream leave in send() order.
  // Empty messages are the caller's business (RFC 8831: send 1 byte with PPID 56/57).
  // False when the transport is not Connected/Connecting or the stream was reset.
  bool send(uint16_t stream, uint32_t ppid, ByteSpan message, const SendOptions& options);
  // Bytes queued for `stream` that SCTP has not yet accepted.
  size_t buffered_amount(uint16_t stream) const;
  // Resets our outgoing side of `stream` once its queued data has been handed
  // to SCTP (RFC 8831 section 6.7).
  void reset_stream(uint16_t stream);
  // Graceful shutdown; moves to Closed. Idempotent.
  void close();

  State state() const;
  Stats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtcmesh::sctp
