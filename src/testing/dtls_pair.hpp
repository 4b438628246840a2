// Two DtlsTransports joined by a MemoryLink on one ManualExecutor (virtual
// time): the two-side fixture of the DTLS tests, and the lower half of
// SctpOverDtlsPair. Everything runs on the test thread; run_until() replaces
// waiting, executor.advance() replaces sleeping.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dtls/certificate.hpp"
#include "dtls/dtls_transport.hpp"
#include "testing/manual_executor.hpp"
#include "testing/memory_link.hpp"

namespace rtcmesh::testing {

using Bytes = std::vector<uint8_t>;

// A fresh self-signed certificate (an EXPECT failure and nullptr otherwise).
std::shared_ptr<dtls::Certificate> make_certificate();
std::vector<dtls::RemoteFingerprint> sha256_of(const std::shared_ptr<dtls::Certificate>& cert);

// One end of the pair: the transport and everything its callbacks saw.
struct DtlsSide {
  std::unique_ptr<dtls::DtlsTransport> transport;
  std::vector<dtls::State> states;
  std::string error;
  std::vector<Bytes> received;
  size_t datagrams_in = 0;  // datagrams the link delivered to this side
  bool destroy_on_connected = false;
  bool destroy_on_receive = false;
  base::Executor::TimePoint connected_at{};  // virtual time of Connected

  dtls::State state() const { return states.empty() ? dtls::State::New : states.back(); }
};

class DtlsPair {
 public:
  DtlsPair();  // certificates and the link; no transports yet
  ~DtlsPair();
  DtlsPair(const DtlsPair&) = delete;
  DtlsPair& operator=(const DtlsPair&) = delete;

  // A transport for `side` on `end`; the receiver records (see DtlsSide).
  void create(DtlsSide& side, MemoryLink::End& end, const std::shared_ptr<dtls::Certificate>& cert,
              dtls::Role role, std::vector<dtls::RemoteFingerprint> remote);
  // a is the client unless told otherwise; each expects the other's certificate.
  void create_pair(bool a_is_client = true);
  void start_both();
  // Runs the executor (virtual time) until `done()` or `limit` passed.
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    return executor.run_until(done, limit);
  }
  bool wait_connected();
  // Destroys both transports and the link, and runs what they left queued.
  void destroy_all();
  // A fresh link and fresh sides (for tests that run several handshakes).
  void reset_pair();

  ManualExecutor executor;
  std::unique_ptr<MemoryLink> link;
  std::shared_ptr<dtls::Certificate> cert_a;
  std::shared_ptr<dtls::Certificate> cert_b;
  DtlsSide a;
  DtlsSide b;

 private:
  void make_link();
};

}  // namespace rtcmesh::testing
