#include "testing/dtls_pair.hpp"

#include <gtest/gtest.h>

namespace rtcmesh::testing {

using dtls::Certificate;
using dtls::DtlsTransport;
using dtls::Role;
using dtls::State;

std::shared_ptr<Certificate> make_certificate() {
  auto cert = Certificate::generate();
  EXPECT_TRUE(cert.ok()) << (cert.ok() ? "" : cert.error().message);
  return cert.ok() ? cert.value() : nullptr;
}

std::vector<dtls::RemoteFingerprint> sha256_of(const std::shared_ptr<Certificate>& cert) {
  return {{"sha-256", cert->fingerprint_sha256()}};
}

DtlsPair::DtlsPair() : cert_a(make_certificate()), cert_b(make_certificate()) {
  make_link();
}

DtlsPair::~DtlsPair() {
  destroy_all();
}

void DtlsPair::make_link() {
  link = std::make_unique<MemoryLink>(executor);
  link->a.set_receiver([this](ByteSpan p) {
    ++a.datagrams_in;
    if (a.transport) a.transport->receive_from_lower(p);
  });
  link->b.set_receiver([this](ByteSpan p) {
    ++b.datagrams_in;
    if (b.transport) b.transport->receive_from_lower(p);
  });
}

void DtlsPair::destroy_all() {
  a.transport.reset();
  b.transport.reset();
  link.reset();
  executor.run_until_idle();  // deliveries and timers of the dead objects run out
}

void DtlsPair::reset_pair() {
  destroy_all();
  a = DtlsSide{};
  b = DtlsSide{};
  make_link();
}

void DtlsPair::create(DtlsSide& side, MemoryLink::End& end,
                      const std::shared_ptr<Certificate>& cert, Role role,
                      std::vector<dtls::RemoteFingerprint> remote) {
  side.transport =
      std::make_unique<DtlsTransport>(executor, end, cert, role, std::move(remote),
                                      [this, &side](State state, const std::string& error) {
                                        side.states.push_back(state);
                                        if (state == State::Failed) side.error = error;
                                        if (state == State::Connected) {
                                          side.connected_at = executor.now();
                                          if (side.destroy_on_connected) side.transport.reset();
                                        }
                                      });
  side.transport->set_receiver([&side](ByteSpan p) {
    side.received.emplace_back(p.begin(), p.end());
    if (side.destroy_on_receive) side.transport.reset();
  });
}

void DtlsPair::create_pair(bool a_is_client) {
  create(a, link->a, cert_a, a_is_client ? Role::Client : Role::Server, sha256_of(cert_b));
  create(b, link->b, cert_b, a_is_client ? Role::Server : Role::Client, sha256_of(cert_a));
}

void DtlsPair::start_both() {
  a.transport->start();
  b.transport->start();
}

bool DtlsPair::wait_connected() {
  return run_until([&] { return a.state() == State::Connected && b.state() == State::Connected; });
}

}  // namespace rtcmesh::testing
