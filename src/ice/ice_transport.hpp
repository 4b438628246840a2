// ICE (RFC 8445) with trickle (RFC 8838) and consent freshness (RFC 7675),
// built on libnice. One stream, one component (BUNDLE + rtcp-mux: a data
// channel needs exactly one).
//
// IceTransport is a PacketTransport for DTLS: send() sends one datagram on the
// selected pair; received datagrams go to the receiver. libnice handles STUN
// itself, so everything delivered here is DTLS.
//
// Thread-safety: not thread-safe. Construct, call and destroy on the loop
// thread; libnice runs on the loop's GMainContext, so all callbacks run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/loop.hpp"
#include "base/packet_transport.hpp"
#include "base/result.hpp"
#include "sdp/candidate.hpp"

typedef struct _NiceAgent NiceAgent;

namespace rtcmesh::ice {

class TurnTlsTunnel;

// One STUN or TURN server, already resolved to a numeric address.
struct Server {
  enum class Kind { Stun, Turn };
  enum class Transport { Udp, Tcp, Tls };
  Kind kind = Kind::Stun;
  Transport transport = Transport::Udp;
  std::string address;  // numeric IPv4/IPv6
  uint16_t port = 3478;
  std::string username;
  std::string password;
  // The server's name as written in the URL. TLS (turns:) sends it as SNI and
  // checks the certificate against it. Empty: `address` is used, so the
  // certificate must carry that IP address as a subjectAltName.
  std::string host;
};

struct Config {
  std::vector<Server> servers;
  bool relay_only = false;              // iceTransportPolicy "relay"
  uint16_t port_min = 0, port_max = 0;  // 0/0: any port
  // Local addresses to gather host candidates on. Empty: every non-loopback
  // interface (libnice's default). {"127.0.0.1"} is what the tests use.
  std::vector<std::string> local_addresses;
  bool tcp = false;  // also gather ICE-TCP host candidates
  // Gathering still unfinished after this long is ended by us (see
  // handle_gathering_timeout). Longer than any gathering libnice finishes by
  // itself with our STUN timers: a UDP STUN/TURN transaction gives up after
  // 3.8 s (measured against a silent server), a TCP one after 7.9 s at most
  // (stun-reliable-timeout).
  std::chrono::milliseconds gathering_timeout{10000};
  // Regular nomination (RFC 8445 section 8.1.1) instead of aggressive.
  bool regular_nomination = false;
};

// W3C RTCIceTransportState names.
enum class State { New, Checking, Connected, Completed, Disconnected, Failed, Closed };
const char* to_string(State state);
enum class GatheringState { New, Gathering, Complete };
const char* to_string(GatheringState state);

struct SelectedPair {
  sdp::Candidate local;
  sdp::Candidate remote;
};

struct Callbacks {
  std::function<void(State)> on_state;
  std::function<void(GatheringState)> on_gathering_state;
  std::function<void(const sdp::Candidate&)> on_local_candidate;
};

class IceTransport final : public PacketTransport {
 public:
  // Creates the agent and its stream; nothing is sent until gather().
  static Result<std::unique_ptr<IceTransport>> create(base::Loop& loop, const Config& config,
                                                      Callbacks callbacks);
  ~IceTransport() override;
  IceTransport(const IceTransport&) = delete;
  IceTransport& operator=(const IceTransport&) = delete;

  const std::string& local_ufrag() const { return ufrag_; }
  const std::string& local_pwd() const { return pwd_; }
  void set_controlling(bool controlling);
  // Starts gathering; candidates come through on_local_candidate.
  Status gather();
  Status set_remote_credentials(const std::string& ufrag, const std::string& pwd);
  // Adds one remote candidate. Host-name (mDNS) candidates are resolved with
  // a numeric-only lookup and rejected if not numeric.
  Status add_remote_candidate(const sdp::Candidate& candidate);
  // The remote signalled end-of-candidates: failure is now final.
  void remote_gathering_done();
  // ICE restart: new local credentials, gathering again. Returns the new ufrag.
  Status restart();

  bool send(ByteSpan packet) override;

  State state() const { return state_; }
  // Why the transport failed when this layer, not libnice, decided it (no
  // candidate pair can ever exist); empty otherwise. Also logged at Warn.
  const std::string& failure_reason() const { return failure_reason_; }
  GatheringState gathering_state() const { return gathering_state_; }
  bool selected_pair(SelectedPair& out) const;
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }
  uint64_t packets_sent() const { return packets_sent_; }
  uint64_t packets_received() const { return packets_received_; }

  // libnice trampolines (public so the C callbacks can reach them).
  void handle_component_state(unsigned state);
  void handle_new_candidate(void* nice_candidate);
  void handle_gathering_done();
  void handle_recv(const char* buf, unsigned len);

 private:
  IceTransport(base::Loop& loop, Callbacks callbacks);
  void set_state(State state);
  void refresh_credentials();
  void tune_sockets();
  // Fails the transport when no candidate pair can ever be formed: local
  // gathering is over and we have no local candidate at all, or the remote
  // said end-of-candidates without signalling a single one. libnice has no
  // pair to check in both cases, so it never reports FAILED on its own and the
  // connection would hang (a relay-only peer whose TURN allocation failed).
  void check_pairs_possible();
  // Ends gathering that libnice never finishes. libnice 0.1.21 forgets a TURN
  // allocation whose TCP connection the server closes (before the response)
  // and then never signals candidate-gathering-done.
  void handle_gathering_timeout();

  base::Loop& loop_;
  Callbacks callbacks_;
  NiceAgent* agent_ = nullptr;
  unsigned stream_ = 0;
  std::string ufrag_, pwd_;
  State state_ = State::New;
  GatheringState gathering_state_ = GatheringState::New;
  bool ever_connected_ = false;
  bool remote_done_ = false;
  bool relay_only_ = false;
  bool gathering_forced_ = false;
  std::chrono::milliseconds gathering_timeout_{10000};
  base::Loop::TimerId gathering_timer_ = 0;
  size_t local_candidates_ = 0;   // announced through on_local_candidate
  size_t remote_candidates_ = 0;  // given to add_remote_candidate, usable or not
  std::string failure_reason_;
  std::string turn_servers_;  // for messages: "127.0.0.1:3478/udp, ..."
  // One TLS tunnel per turns: server (libnice speaks TURN-TCP to it).
  std::vector<std::unique_ptr<TurnTlsTunnel>> tunnels_;
  uint64_t bytes_sent_ = 0, bytes_received_ = 0, packets_sent_ = 0, packets_received_ = 0;
};

}  // namespace rtcmesh::ice
