// One SCTP association (RFC 9260) over a datagram link (DTLS), using usrsctp in
// AF_CONN mode, as WebRTC data channels need it (RFC 8831): both sides connect
// (simultaneous open), 1024 streams each way, PR-SCTP, stream reset for close.
// SCTP packets are at most 1188 bytes (fixed path MTU, RFC 8261 §5) and carry a
// valid CRC32c; incoming checksums are not verified (DTLS authenticates).
//
// Thread-safety: not thread-safe. Construct, call and destroy on the executor
// thread (every timer and posted task of the transport runs on that executor);
// all callbacks run there. Callbacks never run inside a usrsctp call, nor inside
// one of the methods below (changes those cause are reported from a posted task).
// A callback may call any method, including destroying the transport.
// `lower` must outlive this object; its send() must not deliver to our receiver
// synchronously. Packets that arrive before start() are kept (up to 64).
//
// Process-wide (usrsctp_runtime.hpp): usrsctp is initialized once (never
// finished) and its timers run from a 10 ms tick on the executor of the first
// live transport (moved to another executor when that one has none left,
// stopped when no transport is left), with the time that executor's now()
// reports. Several executors work, but one per process is the efficient setup.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/executor.hpp"
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
  // Smoothed round-trip time of the primary path (RFC 9260 section 6.3.1), in
  // milliseconds (usrsctp's resolution), when the association reports one.
  uint32_t srtt_ms = 0;
  bool has_srtt = false;
};

struct Callbacks {
  // Every transition: Connecting (after start()), Connected (COMM_UP), Closed
  // (graceful shutdown done, or close() before Connected), Failed (association
  // lost: peer ABORT or too many retransmissions; or could not be set up).
  // `error` is empty except for Failed.
  std::function<void(State state, const std::string& error)> on_state;
  // A complete message (reassembled up to MSG_EOR). The span is valid during the call.
  std::function<void(uint16_t stream, uint32_t ppid, ByteSpan message)> on_message;
  // The peer reset its outgoing side of `stream`: the channel was closed
  // remotely, or the peer answered our reset_stream(). Delivered after all the
  // peer's data on that stream. Our own reset is queued in answer (after our
  // queued data) if it was not already; once the peer confirms it, the stream id
  // can carry a new channel (send() accepts it again, RFC 8831 §6.7).
  std::function<void(uint16_t stream)> on_stream_reset;
  // The buffered amount of `stream` went down (data moved from our queue into
  // SCTP). At most once per stream per processing round, with the new amount.
  std::function<void(uint16_t stream, size_t buffered_amount)> on_buffered_amount;
};

struct Options {
  uint16_t local_port = 5000;   // a=sctp-port of our description
  uint16_t remote_port = 5000;  // a=sctp-port of the remote description
  // Largest message we accept (our a=max-message-size); bigger incoming
  // messages are dropped, counted in Stats::messages_dropped, and reception
  // continues with the next message.
  size_t max_receive_message_size = 256 * 1024;
};

class SctpTransport {
 public:
  // Installs itself as `lower`'s receiver.
  SctpTransport(base::Executor& executor, PacketTransport& lower, Options options,
                Callbacks callbacks);
  // Aborts the association if still open (the ABORT goes out through `lower`);
  // no callback runs during or after destruction.
  ~SctpTransport();
  SctpTransport(const SctpTransport&) = delete;
  SctpTransport& operator=(const SctpTransport&) = delete;

  // Connects (both sides call this; SCTP handles the simultaneous open). Once.
  void start();
  // Queues one message for `stream`. Messages leave in send() order (one FIFO
  // for all streams); each is handed to SCTP whole (all-or-nothing), straight
  // from `message` when nothing is queued, else copied into our queue.
  // Empty messages are the caller's business (RFC 8831: send 1 byte with PPID 56/57).
  // False (nothing queued) when the transport is not Connected/Connecting, after
  // close(), for an empty message, stream >= 1024, or a stream being reset.
  bool send(uint16_t stream, uint32_t ppid, ByteSpan message, const SendOptions& options);
  // Bytes queued for `stream` that SCTP has not yet accepted. SCTP itself holds
  // up to 1 MiB (in flight or queued) that is not counted here.
  size_t buffered_amount(uint16_t stream) const;
  // Resets our outgoing side of `stream` once its queued data has been handed
  // to SCTP (RFC 8831 section 6.7); the peer sees it after that data. send() on
  // the stream fails from now until both directions are reset (on_stream_reset).
  void reset_stream(uint16_t stream);
  // Graceful shutdown (RFC 9260 §9.2): queued data is sent first, then SHUTDOWN;
  // moves to Closed when it completes (abort after 5 s). Before Connected it
  // aborts and moves to Closed at once. send() fails afterwards. Idempotent.
  void close();
  // While paused, nothing is read from the association: incoming data stays in
  // SCTP's receive buffer until it is full, then the advertised window closes
  // and the peer's reliable sends wait (nothing is lost). Notifications wait
  // too. Resuming delivers what was held, in order. For a consumer that cannot
  // keep up (a full pipe, a slow disk).
  void set_receive_paused(bool paused);

  State state() const;
  Stats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rtcmesh::sctp
