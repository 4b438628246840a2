#include "sctp/usrsctp_runtime.hpp"

#include <usrsctp.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "base/crc32c.hpp"
#include "base/log.hpp"

namespace rtcmesh::sctp {
namespace {

// ---------------------------------------------------------------------------
// CRC32c (Castagnoli), as SCTP uses it (RFC 9260 appendix B).

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

}  // namespace

void write_checksum(void* packet, size_t size) {
  if (size < sizeof(sctp_common_header)) return;
  auto* bytes = static_cast<uint8_t*>(packet);
  std::memset(bytes + 8, 0, 4);
  uint32_t crc = use_sse42_crc ? base::crc32c(bytes, size) : usrsctp_crc32c(bytes, size);
  std::memcpy(bytes + 8, &crc, 4);
}

namespace {

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

void initialize_usrsctp() {
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

}  // namespace

Runtime& Runtime::get() {
  static Runtime* runtime = new Runtime;
  return *runtime;
}

SctpTransport::Impl* Runtime::find_locked(uintptr_t id) {
  auto it = transports_.find(id);
  return it == transports_.end() ? nullptr : it->second;
}

SctpTransport::Impl* Runtime::find(uintptr_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  return find_locked(id);
}

uintptr_t Runtime::add(SctpTransport::Impl* impl, base::Executor& executor) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!initialized_) {
    initialize_usrsctp();
    initialized_ = true;
  }
  uintptr_t id = next_id_++;
  transports_.emplace(id, impl);
  ++executors_[&executor];
  if (tick_executor_ == nullptr) start_tick_locked(executor, /*on_its_thread=*/true);
  return id;
}

void Runtime::remove(uintptr_t id, base::Executor& executor) {
  std::lock_guard<std::mutex> lock(mutex_);
  transports_.erase(id);
  auto it = executors_.find(&executor);
  if (it == executors_.end() || --it->second > 0) return;
  executors_.erase(it);
  if (tick_executor_ != &executor) return;
  executor.cancel(tick_timer_);  // we are on this executor's thread
  tick_executor_ = nullptr;
  ++tick_generation_;
  if (!executors_.empty()) start_tick_locked(*executors_.begin()->first, /*on_its_thread=*/false);
}

void Runtime::start_tick_locked(base::Executor& executor, bool on_its_thread) {
  tick_executor_ = &executor;
  uint64_t generation = ++tick_generation_;
  tick_timer_ = 0;
  if (on_its_thread) {
    last_tick_ = executor.now();
    arm_tick_locked(executor, generation);
    return;
  }
  // Timers are set on the executor's own thread: hand the start over.
  executor.post([executor = &executor, generation] {
    Runtime& rt = get();
    std::lock_guard<std::mutex> lock(rt.mutex_);
    if (rt.tick_executor_ != executor || rt.tick_generation_ != generation) return;
    rt.last_tick_ = executor->now();
    rt.arm_tick_locked(*executor, generation);
  });
}

void Runtime::arm_tick_locked(base::Executor& executor, uint64_t generation) {
  tick_timer_ = executor.post_after(
      kTickInterval, [executor = &executor, generation] { tick(executor, generation); });
}

void Runtime::tick(base::Executor* executor, uint64_t generation) {
  Runtime& rt = get();
  uint32_t elapsed_ms;
  {
    std::lock_guard<std::mutex> lock(rt.mutex_);
    if (rt.tick_executor_ != executor || rt.tick_generation_ != generation) return;
    auto elapsed =
        std::chrono::duration_cast<std::chrono::milliseconds>(executor->now() - rt.last_tick_);
    rt.last_tick_ += elapsed;  // keep the sub-millisecond remainder for the next tick
    elapsed_ms = static_cast<uint32_t>(elapsed.count());
  }
  // Outside the mutex: timers call conn_output and the upcall, which lock it.
  if (elapsed_ms > 0) usrsctp_handle_timers(elapsed_ms);
  std::lock_guard<std::mutex> lock(rt.mutex_);
  if (rt.tick_executor_ != executor || rt.tick_generation_ != generation) return;
  rt.arm_tick_locked(*executor, generation);
}

}  // namespace rtcmesh::sctp
