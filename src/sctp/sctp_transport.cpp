// SctpTransport: usrsctp 0.9.5 in AF_CONN mode, driven entirely from the loop.
//
// Layout of this file:
//   1. CRC32c (RFC 9260 appendix B), computed by us because usrsctp's is slow
//      and we turn its own computation off (crc32c offload).
//   2. Runtime: the process-wide usrsctp instance (usrsctp_init_nothreads),
//      the registry id -> Impl used by the C callbacks, and the 10 ms timer tick.
//   3. SctpTransport::Impl: one socket / one association.
//
// Threading model. usrsctp runs without its timer and receive threads; every
// usrsctp call we make happens on the loop thread of the transport it concerns,
// and the timer tick (usrsctp_handle_timers) runs on one loop (the loop of the
// first live transport). usrsctp 0.9.5 still starts an "iterator" thread and,
// with several loops, the tick of one loop may fire timers of an association
// living on another loop; the two C callbacks therefore never assume they are
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

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/crc32c.hpp"
#include "base/log.hpp"

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

namespace {

using Clock = std::chrono::steady_clock;

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

// ---------------------------------------------------------------------------
// 1. CRC32c (Castagnoli), as SCTP uses it (RFC 9260 appendix B).

// Selected once: the SSE4.2 instruction when the CPU has it and it agrees with
// usrsctp's own implementation on a probe buffer, else usrsctp_crc32c.
bool use_sse42_crc = false;

void select_crc32c() {
  if (!__builtin_cpu_supports("sse4.2")) return;
  uint8_t probe[61];
  for (size_t i = 0; i < sizeof probe; ++i) probe[i] = static_cast<uint8_t>(i * 37 + 11);
  uint32_t ours = base::crc32c(probe, sizeof probe);
  uint32_t theirs = usrsctp_crc32c(probe, sizeof probe);
  // usrsctp returns the value ready to be stored in memory (network order
  // handled by its finalize step); on little-endian that is the plain CRC.
  use_sse42_crc = ours == theirs;
  if (!use_sse42_crc)
    RTCMESH_LOG(Warn, "sctp", "SSE4.2 crc32c disagrees with usrsctp; using usrsctp's");
}

// Writes the checksum of an outgoing SCTP packet into its common header
// (bytes 8..11; usrsctp left them zero because crc32c offload is on).
void write_checksum(void* packet, size_t size) {
  if (size < sizeof(sctp_common_header)) return;
  auto* bytes = static_cast<uint8_t*>(packet);
  std::memset(bytes + 8, 0, 4);
  uint32_t crc = use_sse42_crc ? base::crc32c(bytes, size) : usrsctp_crc32c(bytes, size);
  std::memcpy(bytes + 8, &crc, 4);
}

// ---------------------------------------------------------------------------
// 2. Runtime.

int conn_output(void* addr, void* buffer, size_t length, uint8_t tos, uint8_t set_df);
void on_upcall(struct socket* sock, void* arg, int flags);

void debug_printf(const char* format, ...) __attribute__((format(printf, 1, 2)));
void debug_printf(const char* format, ...) {
  if (static_cast<int>(log::level()) < static_cast<int>(log::Level::Verbose)) return;
  char line[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  size_t n = std::strlen(line);
  while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
  RTCMESH_LOG(Verbose, "usrsctp", line);
}

// Process-wide state. Never destroyed (leaked on purpose): usrsctp stays
// initialized for the life of the process, because usrsctp_finish() fails while
// aborted associations are still being freed (usrsctp#28) and crashed after
// usrsctp_init_nothreads in some versions (usrsctp#435).
struct Runtime {
  std::mutex mutex;
  bool initialized = false;
  uintptr_t next_id = 1;  // 0 is never used: usrsctp_connect rejects a null sconn_addr
  std::unordered_map<uintptr_t, SctpTransport::Impl*> transports;
  std::unordered_map<base::Loop*, size_t> loops;  // live transports per loop

  // The tick runs on one loop at a time: the loop of the first transport, and
  // when that loop has no transport left, the loop of another live transport.
  // It stops when the last transport is destroyed (so it never outlives the
  // loops: transports are destroyed before their loop, by contract).
  base::Loop* tick_loop = nullptr;
  uint64_t tick_generation = 0;
  base::Loop::TimerId tick_timer = 0;
  Clock::time_point last_tick;

  static Runtime& get() {
    static Runtime* runtime = new Runtime;
    return *runtime;
  }

  // Returns the transport registered under `id`; caller holds `mutex`.
  SctpTransport::Impl* find_locked(uintptr_t id) {
    auto it = transports.find(id);
    return it == transports.end() ? nullptr : it->second;
  }

  SctpTransport::Impl* find(uintptr_t id) {
    std::lock_guard<std::mutex> lock(mutex);
    return find_locked(id);
  }

  uintptr_t add(SctpTransport::Impl* impl, base::Loop* loop) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!initialized) {
      initialize_usrsctp();
      initialized = true;
    }
    uintptr_t id = next_id++;
    transports.emplace(id, impl);
    ++loops[loop];
    if (tick_loop == nullptr) start_tick_locked(loop);
    return id;
  }

  // Called on `loop`'s thread (the transport's destructor).
  void remove(uintptr_t id, base::Loop* loop) {
    std::lock_guard<std::mutex> lock(mutex);
    transports.erase(id);
    auto it = loops.find(loop);
    if (it == loops.end() || --it->second > 0) return;
    loops.erase(it);
    if (tick_loop != loop) return;
    loop->cancel(tick_timer);  // we are on this loop's thread
    tick_loop = nullptr;
    ++tick_generation;
    if (!loops.empty()) start_tick_locked(loops.begin()->first);  // post_after is thread-safe
  }

  void start_tick_locked(base::Loop* loop) {
    tick_loop = loop;
    uint64_t generation = ++tick_generation;
    last_tick = Clock::now();
    tick_timer = loop->post_after(kTickInterval, [loop, generation] { tick(loop, generation); });
  }

  static void tick(base::Loop* loop, uint64_t generation) {
    Runtime& rt = get();
    uint32_t elapsed_ms;
    {
      std::lock_guard<std::mutex> lock(rt.mutex);
      if (rt.tick_loop != loop || rt.tick_generation != generation) return;
      auto elapsed =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - rt.last_tick);
      rt.last_tick += elapsed;  // keep the sub-millisecond remainder for the next tick
      elapsed_ms = static_cast<uint32_t>(elapsed.count());
    }
    // Outside the mutex: timers call conn_output and the upcall, which lock it.
    if (elapsed_ms > 0) usrsctp_handle_timers(elapsed_ms);
    std::lock_guard<std::mutex> lock(rt.mutex);
    if (rt.tick_loop != loop || rt.tick_generation != generation) return;
    rt.tick_timer = loop->post_after(kTickInterval, [loop, generation] { tick(loop, generation); });
  }

  static void initialize_usrsctp() {
    // Port 0: no UDP encapsulation socket. No threads: we drive the timers.
    usrsctp_init_nothreads(0, conn_output, debug_printf);
    select_crc32c();
    // We compute the CRC32c of outgoing packets in conn_output (cheaper, SSE4.2)
    // and skip verifying incoming ones: DTLS already authenticates every packet
    // (notes §5 #18; usrsctp 0.9.5 has no zero-checksum support, RFC 9653).
    usrsctp_enable_crc32c_offload();

    // Sysctls are global and only affect sockets created afterwards (usrsctp#214).
    // Extensions: PR-SCTP (RFC 3758) and RE-CONFIG (RFC 6525) are needed by
    // WebRTC (RFC 8831 §5, §6.7). ASCONF (RFC 5061) and AUTH (RFC 4895) are not:
    // Chromium's and Firefox's usrsctp builds disabled both ("reduce attack
    // surface"), and stream reset works without AUTH in usrsctp (the RE-CONFIG
    // chunk is only authenticated if the peer asks for it in its chunk list).
    // ASCONF must go first: usrsctp refuses auth=0 while asconf=1.
    usrsctp_sysctl_set_sctp_asconf_enable(0);
    usrsctp_sysctl_set_sctp_auth_enable(0);
    usrsctp_sysctl_set_sctp_pr_enable(1);
    usrsctp_sysctl_set_sctp_reconfig_enable(1);
    usrsctp_sysctl_set_sctp_ecn_enable(0);      // as libwebrtc/libdatachannel; dcSCTP has none
    usrsctp_sysctl_set_sctp_nrsack_enable(0);   // not standardized
    usrsctp_sysctl_set_sctp_pktdrop_enable(0);  // not standardized
    usrsctp_sysctl_set_sctp_sendspace(kSendBuffer);
    usrsctp_sysctl_set_sctp_recvspace(kReceiveBuffer);
    // The per-association chunk limit would otherwise cap the queue long
    // before the byte limits above (1 MiB / ~1170 B chunks, with margin).
    usrsctp_sysctl_set_sctp_max_chunks_on_queue(64 * 1024);
    usrsctp_sysctl_set_sctp_nr_outgoing_streams_default(kStreamCount);
    // Congestion control: RFC 4960/9260 standard (libdatachannel#354).
    usrsctp_sysctl_set_sctp_default_cc_module(SCTP_CC_RFC2581);
    usrsctp_sysctl_set_sctp_initial_cwnd(10);       // RFC 6928-like start, as libdatachannel
    usrsctp_sysctl_set_sctp_max_burst_default(10);  // measured: 4, 10, 32 or 0 (off) cost the same
    // SACK every 2nd packet (RFC 9260 §6.2 SHOULD); every 4th would save ~10% of
    // instructions on loopback but slows the peer's congestion window growth.
    usrsctp_sysctl_set_sctp_delayed_sack_time_default(20);  // ms (RFC 9260 allows up to 500)
    // RTO as libdatachannel: a lost INIT or DATA is retried after 1 s, RTO
    // bounded to [200 ms, 10 s] (RFC 9260 says 1 s minimum; WebRTC stacks use
    // less: dcSCTP 220 ms).
    usrsctp_sysctl_set_sctp_rto_min_default(200);
    usrsctp_sysctl_set_sctp_rto_max_default(10000);
    usrsctp_sysctl_set_sctp_rto_initial_default(1000);
    usrsctp_sysctl_set_sctp_init_rto_max_default(10000);
    // Retransmission limits: RFC 9260 §16 defaults (as dcSCTP), not
    // libdatachannel's 5. With 5, a few spurious timeouts on a starved CPU plus
    // 10% loss occasionally killed the association in our loss test; a dead
    // link is detected by ICE consent freshness (RFC 7675) long before anyway.
    usrsctp_sysctl_set_sctp_init_rtx_max_default(8);
    usrsctp_sysctl_set_sctp_assoc_rtx_max_default(10);
    usrsctp_sysctl_set_sctp_path_rtx_max_default(5);
    usrsctp_sysctl_set_sctp_heartbeat_interval_default(10000);  // ms
  }
};

// Thread-local receive scratch buffer: all transports of a loop share one, so
// an idle association costs no receive buffer. `busy` guards against nesting
// (a user callback that makes another transport receive synchronously).
struct ReceiveScratch {
  std::vector<uint8_t> buffer;
  bool busy = false;
};
thread_local ReceiveScratch receive_scratch;

}  // namespace

// ---------------------------------------------------------------------------
// 3. The association.

struct SctpTransport::Impl {
  Impl(base::Loop& loop, PacketTransport& lower, Options options, Callbacks callbacks);
  ~Impl();

  // Public API.
  void start();
  bool send(uint16_t stream, uint32_t ppid, ByteSpan message, const SendOptions& options);
  size_t buffered_amount(uint16_t stream) const;
  void reset_stream(uint16_t stream);
  void close();

  // Called from the C callbacks (any thread).
  void on_upcall_events();
  // Processing entry points (loop thread, top level).
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

  base::Loop& loop_;
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
  base::Loop::TimerId shutdown_timer_ = 0;
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
  base::Loop::TimerId reset_retry_timer_ = 0;
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

namespace {

int conn_output(void* addr, void* buffer, size_t length, uint8_t /*tos*/, uint8_t /*set_df*/) {
  auto id = reinterpret_cast<uintptr_t>(addr);
  write_checksum(buffer, length);
  Runtime& rt = Runtime::get();
  std::unique_lock<std::mutex> lock(rt.mutex);
  SctpTransport::Impl* impl = rt.find_locked(id);
  if (impl == nullptr) return -1;  // transport gone (usrsctp#405)
  if (impl->loop_.in_loop_thread()) {
    // The transport cannot be destroyed while we run on its thread.
    lock.unlock();
    impl->lower_.send(ByteSpan(static_cast<const uint8_t*>(buffer), length));
    return 0;
  }
  // A timer of this association fired on another loop's tick, or usrsctp's
  // iterator thread sent something: copy and hand it over to the right thread.
  std::vector<uint8_t> copy(static_cast<const uint8_t*>(buffer),
                            static_cast<const uint8_t*>(buffer) + length);
  impl->loop_.post([id, copy = std::move(copy)] {
    if (SctpTransport::Impl* target = Runtime::get().find(id)) {
      target->lower_.send(ByteSpan(copy.data(), copy.size()));
    }
  });
  return 0;
}

void on_upcall(struct socket* /*sock*/, void* arg, int /*flags*/) {
  // Runs inside usrsctp with socket locks held: touch nothing but flags.
  auto id = reinterpret_cast<uintptr_t>(arg);
  Runtime& rt = Runtime::get();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (SctpTransport::Impl* impl = rt.find_locked(id)) impl->on_upcall_events();
}

}  // namespace

SctpTransport::Impl::Impl(base::Loop& loop, PacketTransport& lower, Options options,
                          Callbacks callbacks)
    : loop_(loop), lower_(lower), options_(options), callbacks_(std::move(callbacks)) {
  assert(loop_.in_loop_thread());
  id_ = Runtime::get().add(this, &loop_);
  usrsctp_register_address(reinterpret_cast<void*>(id_));
  setup_socket();
  lower_.set_receiver([this](ByteSpan packet) { on_lower_packet(packet); });
}

SctpTransport::Impl::~Impl() {
  assert(loop_.in_loop_thread());
  *alive_ = false;
  lower_.set_receiver(nullptr);
  if (shutdown_timer_ != 0) loop_.cancel(shutdown_timer_);
  if (reset_retry_armed_) loop_.cancel(reset_retry_timer_);
  // Close while still registered, so the ABORT (SO_LINGER 0) reaches the peer
  // through conn_output. The upcall it may trigger only sets flags.
  if (sock_ != nullptr) usrsctp_close(sock_);
  sock_ = nullptr;
  // From here on conn_output and the upcall find nothing for our id, and posted
  // tasks (processing, foreign-thread packets) look the id up and do nothing.
  Runtime::get().remove(id_, &loop_);
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
    loop_.post([id] {
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
  shutdown_timer_ = loop_.post_after(kShutdownTimeout, [id] {
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
  loop_.post([id] {
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
  reset_retry_timer_ = loop_.post_after(kResetRetryDelay, [id] {
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

SctpTransport::SctpTransport(base::Loop& loop, PacketTransport& lower, Options options,
                             Callbacks callbacks)
    : impl_(std::make_unique<Impl>(loop, lower, options, std::move(callbacks))) {}

SctpTransport::~SctpTransport() = default;

void SctpTransport::start() { impl_->start(); }

bool SctpTransport::send(uint16_t stream, uint32_t ppid, ByteSpan message,
                         const SendOptions& options) {
  return impl_->send(stream, ppid, message, options);
}

size_t SctpTransport::buffered_amount(uint16_t stream) const {
  return impl_->buffered_amount(stream);
}

void SctpTransport::reset_stream(uint16_t stream) { impl_->reset_stream(stream); }

void SctpTransport::close() { impl_->close(); }

void SctpTransport::set_receive_paused(bool paused) {
  if (impl_->receive_paused_ == paused) return;
  impl_->receive_paused_ = paused;
  // What arrived meanwhile is read in a later task, never inside this call.
  if (!paused) {
    impl_->events_pending_.store(true);
    impl_->schedule_process();
  }
}

State SctpTransport::state() const { return impl_->state_; }

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
