// The process-wide usrsctp runtime, shared by every SctpTransport:
//   - initialization (usrsctp_init_nothreads, once, never finished) and the
//     global sysctls;
//   - the CRC32c implementation used for outgoing packets (selected once);
//   - the registry id -> transport that usrsctp's C callbacks look up (an id
//     that is no longer registered finds nothing, usrsctp#405);
//   - the timer tick: usrsctp_handle_timers(elapsed) every 10 ms on the
//     executor of one live transport, with elapsed measured by that
//     executor's now() (so a test's virtual time drives usrsctp's timers).
//
// Internal to the sctp layer (sctp_transport.cpp, sctp_receive.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "base/executor.hpp"
#include "sctp/sctp_transport.hpp"

namespace rtcmesh::sctp {

// ---------------------------------------------------------------------------
// Tuning. All values were chosen by measurement on the 2-core dev box with
// sctp_transport_test's Throughput test (two transports over MemoryLink on one
// loop, 64 KiB messages); see the notes next to each value.

// usrsctp has no "next timeout" API (usrsctp#349): poll like its own timer
// thread does (TIMEOUT_INTERVAL 10 ms in sctp_callout.c).
constexpr std::chrono::milliseconds kTickInterval{10};
// RFC 8831 section 6.2 recommends 65535; each stream costs memory in usrsctp,
// so we use Chrome's historical 1024 (the peer layer negotiates the same).
constexpr uint16_t kStreamCount = 1024;
// Path MTU for SCTP (spp_pathmtu). usrsctp counts only the bytes available
// for chunks (tuexen, usrsctp#442): a packet is the 12-byte common header plus
// at most this many chunk bytes, chunks padded to 4 (measured: 1179 -> packets
// of at most 1188 bytes). Target: SCTP packets <= 1191 bytes, dcSCTP's default,
// so that SCTP + 37 (DTLS 1.2 AES-GCM record) + 8 (UDP) + 40 (IPv6) stays under
// 1280, the IPv6 minimum MTU (RFC 8261 §5: no PMTUD over AF_CONN, usrsctp#205).
constexpr uint32_t kPathMtu = 1179;
// Heartbeat interval on idle associations (see setup_socket).
constexpr uint32_t kHeartbeatIntervalMs = 1000;
// Socket buffers (sysctl defaults and per socket). SO_SNDBUF bounds what
// usrsctp holds (queued + in flight); SO_RCVBUF is the window we advertise.
// Measured with callgrind on the Throughput test: 1 MiB / 1 MiB costs ~9% more
// instructions per message than any receive buffer >= 2x the send buffer,
// because SACKs are generated inside usrsctp_conninput, before we read, and
// usrsctp only sends a window update once 1/8 of SO_RCVBUF was freed: the
// sender sits at rwnd 0 until a timer fires. With the receive buffer >= 2x the
// send buffer the sender is send-buffer-limited and never waits for the window.
// 1 MiB send buffer as libdatachannel; 4 MiB receive window (dcSCTP uses 5 MiB).
// We always drain the socket, so the receive buffer holds only out-of-order or
// incomplete data and costs nothing while idle.
constexpr int kSendBuffer = 1 << 20;
constexpr int kReceiveBuffer = 4 << 20;
// Packets that arrive before start() (the peer's INIT, typically) are kept.
constexpr size_t kMaxEarlyPackets = 64;
constexpr size_t kMaxEarlyBytes = 256 * 1024;
// recvv buffer: a whole 256 KiB message is delivered without an extra copy.
constexpr size_t kReceiveChunk = 256 * 1024;
// Graceful close: if SHUTDOWN does not complete in time, abort.
constexpr std::chrono::milliseconds kShutdownTimeout{5000};
// Retry delay for a stream reset refused with EALREADY (one outstanding request)
// or by the peer, and how many refusals we accept before giving up on a stream.
constexpr std::chrono::milliseconds kResetRetryDelay{20};
constexpr uint8_t kMaxResetRefusals = 20;

// usrsctp's output callback (AF_CONN); defined with the association in
// sctp_transport.cpp. It calls write_checksum() first.
int conn_output(void* addr, void* buffer, size_t length, uint8_t tos, uint8_t set_df);

// Writes the CRC32c of an outgoing SCTP packet into its common header
// (bytes 8..11; usrsctp left them zero because crc32c offload is on).
void write_checksum(void* packet, size_t size);

// Process-wide state. Never destroyed (leaked on purpose): usrsctp stays
// initialized for the life of the process, because usrsctp_finish() fails while
// aborted associations are still being freed (usrsctp#28) and crashed after
// usrsctp_init_nothreads in some versions (usrsctp#435).
class Runtime {
 public:
  static Runtime& get();

  // Registers a transport living on `executor` (called on its thread);
  // initializes usrsctp on first use and starts the tick if none runs.
  uintptr_t add(SctpTransport::Impl* impl, base::Executor& executor);
  // Unregisters (on `executor`'s thread, from the transport's destructor). The
  // tick moves to another executor when this one has no transport left.
  void remove(uintptr_t id, base::Executor& executor);
  // The transport registered under `id`, or nullptr.
  SctpTransport::Impl* find(uintptr_t id);
  // The same under a lock the caller holds (from lock()).
  SctpTransport::Impl* find_locked(uintptr_t id);
  std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex_); }

 private:
  Runtime() = default;
  void start_tick_locked(base::Executor& executor, bool on_its_thread);
  void arm_tick_locked(base::Executor& executor, uint64_t generation);
  static void tick(base::Executor* executor, uint64_t generation);

  std::mutex mutex_;
  bool initialized_ = false;
  uintptr_t next_id_ = 1;  // 0 is never used: usrsctp_connect rejects a null sconn_addr
  std::unordered_map<uintptr_t, SctpTransport::Impl*> transports_;
  std::unordered_map<base::Executor*, size_t> executors_;  // live transports per executor

  // The tick runs on one executor at a time: the executor of the first
  // transport, and when that one has no transport left, the executor of
  // another live transport. It stops when the last transport is destroyed (so
  // it never outlives the executors: transports are destroyed before their
  // executor, by contract).
  base::Executor* tick_executor_ = nullptr;
  uint64_t tick_generation_ = 0;
  base::Executor::TimerId tick_timer_ = 0;
  base::Executor::TimePoint last_tick_{};
};

}  // namespace rtcmesh::sctp
