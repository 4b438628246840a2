// PeerConnection: wires ICE -> DTLS -> SCTP -> data channels and keeps the W3C
// states. Everything below the public wrappers runs on the network thread.
#include <openssl/rand.h>

#include <chrono>
#include <future>

#include "base/log.hpp"
#include "dcep/dcep.hpp"
#include "peer/ice_server_url.hpp"
#include "peer/peer_internal.hpp"

namespace rtcmesh {
namespace impl {
namespace {

constexpr size_t kMaxEarlyPackets = 32;
// W3C "disconnected": nothing received for this long on an established
// connection. SCTP heartbeats every second keep idle connections talking, so
// silence means the path or the peer is gone; ICE consent (RFC 7675) or SCTP
// then turns it into "failed".
constexpr std::chrono::milliseconds kSilenceBeforeDisconnected{4000};
constexpr std::chrono::milliseconds kLivenessCheckInterval{1000};
// How long a closed connection may take to shut SCTP down gracefully.
constexpr std::chrono::milliseconds kGracefulCloseTimeout{2000};

uint64_t random_u62() {
  uint64_t value = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&value), sizeof value);
  return value & 0x3FFFFFFFFFFFFFFFull;  // o= session id must fit in 63 bits (RFC 3264)
}

IceConnectionState to_public(ice::State state) {
  switch (state) {
    case ice::State::New:
      return IceConnectionState::New;
    case ice::State::Checking:
      return IceConnectionState::Checking;
    case ice::State::Connected:
      return IceConnectionState::Connected;
    case ice::State::Completed:
      return IceConnectionState::Completed;
    case ice::State::Disconnected:
      return IceConnectionState::Disconnected;
    case ice::State::Failed:
      return IceConnectionState::Failed;
    case ice::State::Closed:
      return IceConnectionState::Closed;
  }
  return IceConnectionState::New;
}

ObservedCandidate observed(const sdp::Candidate& c, bool local) {
  ObservedCandidate o;
  o.local = local;
  o.candidate_type = c.type;
  o.protocol = c.transport;
  o.address = c.address;
  o.port = c.port;
  o.priority = c.priority;
  return o;
}

IceCandidate to_ice_candidate(const sdp::Candidate& c, const std::string& mid) {
  IceCandidate out;
  out.candidate = sdp::to_string(c);
  out.sdp_mid = mid;
  out.sdp_mline_index = 0;
  return out;
}

}  // namespace

PendingShutdowns& pending_shutdowns() {
  static PendingShutdowns* instance = new PendingShutdowns();  // lives for the process
  return *instance;
}

void PendingShutdowns::begin() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++count_;
}

void PendingShutdowns::end() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --count_;
  }
  cv_.notify_all();
}

bool PendingShutdowns::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, timeout, [this] { return count_ == 0; });
}

PeerConnection::PeerConnection(Configuration cfg, std::shared_ptr<base::Loop> lp,
                               std::shared_ptr<dtls::Certificate> certificate, ice::Config ice_cfg)
    : config(std::move(cfg)),
      loop(std::move(lp)),
      cert(std::move(certificate)),
      ice_config(std::move(ice_cfg)),
      router_(loop, config.observer) {
  session_id_ = random_u62();
}

Status PeerConnection::init() {
  router_.set_owner(weak_from_this());
  router_.on_remote_channel = [this](const std::shared_ptr<DataChannel>& channel) {
    if (on_data_channel)
      on_data_channel(std::shared_ptr<rtcmesh::DataChannel>(new rtcmesh::DataChannel(channel)));
  };
  ice::Callbacks callbacks;
  callbacks.on_state = [this](ice::State s) { handle_ice_state(s); };
  callbacks.on_gathering_state = [this](ice::GatheringState s) { handle_gathering_state(s); };
  callbacks.on_local_candidate = [this](const sdp::Candidate& c) { handle_local_candidate(c); };
  auto ice = ice::IceTransport::create(*loop, ice_config, std::move(callbacks));
  if (!ice) return ice.error();
  ice_ = std::move(ice.value());
  ice_->set_receiver([this](ByteSpan packet) { handle_ice_packet(packet); });
  return {};
}

Result<sdp::SessionDescription> PeerConnection::base_description(sdp::Setup setup) const {
  sdp::SessionDescription d;
  d.session_id = session_id_;
  d.session_version = session_version_;
  d.ice_ufrag = ice_->local_ufrag();
  d.ice_pwd = ice_->local_pwd();
  d.ice_trickle = true;
  d.fingerprints.push_back({"sha-256", cert->fingerprint_sha256()});
  d.setup = setup;
  d.sctp_port = 5000;
  d.max_message_size = config.max_message_size;
  d.candidates = local_candidates_;
  d.end_of_candidates = ice_->gathering_state() == ice::GatheringState::Complete;
  d.connection_address = "0.0.0.0";
  d.media_port = 9;
  return d;
}

Result<sdp::SessionDescription> PeerConnection::create_offer() {
  if (closed_) return make_error(ErrorCode::InvalidStateError, "the connection is closed");
  if (signaling_state != SignalingState::Stable &&
      signaling_state != SignalingState::HaveLocalOffer) {
    return make_error(ErrorCode::InvalidStateError,
                      "cannot create an offer in signaling state " +
                          std::string(to_string(signaling_state.load())));
  }
  bool restarted = false;
  if (restart_pending_) {
    if (auto s = ice_->restart(); !s) return s.error();
    restart_pending_ = false;
    restarted = true;
    local_candidates_.clear();  // new credentials: old candidates are re-announced below
  }
  ++session_version_;
  // An established connection keeps its DTLS role in re-offers (RFC 8842 section 5.5).
  sdp::Setup setup = sdp::Setup::ActPass;
  if (dtls_role_)
    setup = *dtls_role_ == dtls::Role::Client ? sdp::Setup::Active : sdp::Setup::Passive;
  auto d = base_description(setup);
  if (!d) return d;
  if (remote_) d->mid = remote_->mid;
  last_offer_ = *d;
  observe_description(ObservedDescription::Kind::OfferCreated, *d, restarted);
  return d;
}

Result<sdp::SessionDescription> PeerConnection::create_answer() {
  if (closed_) return make_error(ErrorCode::InvalidStateError, "the connection is closed");
  if (signaling_state != SignalingState::HaveRemoteOffer) {
    return make_error(ErrorCode::InvalidStateError,
                      "cannot create an answer in signaling state " +
                          std::string(to_string(signaling_state.load())));
  }
  ++session_version_;
  // RFC 5763 section 5: the answerer should take the active (client) role.
  sdp::Setup setup = sdp::Setup::Active;
  if (remote_->setup == sdp::Setup::Active) setup = sdp::Setup::Passive;
  if (dtls_role_)
    setup = *dtls_role_ == dtls::Role::Client ? sdp::Setup::Active : sdp::Setup::Passive;
  auto d = base_description(setup);
  if (!d) return d;
  d->mid = remote_->mid;
  d->bundle = remote_->bundle;
  for (const auto& other : remote_->other_media) d->other_media.push_back(other);
  last_answer_ = *d;
  observe_description(ObservedDescription::Kind::AnswerCreated, *d, false);
  return d;
}

Status PeerConnection::set_local_description(const SessionDescription& description) {
  if (closed_) return make_error(ErrorCode::InvalidStateError, "the connection is closed");
  std::string type = description.type;
  if (type.empty()) {
    type = (signaling_state == SignalingState::HaveRemoteOffer) ? "answer" : "offer";
  }
  std::optional<sdp::SessionDescription> desc;
  if (!description.sdp.empty()) {
    auto parsed = sdp::parse(description.sdp);
    if (!parsed)
      return make_error(parsed.error().code,
                        "invalid local description: " + parsed.error().message);
    desc = std::move(parsed.value());
  }
  if (type == "offer") {
    if (signaling_state != SignalingState::Stable &&
        signaling_state != SignalingState::HaveLocalOffer) {
      return make_error(
          ErrorCode::InvalidStateError,
          "cannot set a local offer in state " + std::string(to_string(signaling_state.load())));
    }
    if (!desc) {
      if (!last_offer_) {
        auto offer = create_offer();
        if (!offer) return offer.error();
      }
      desc = last_offer_;
    }
    if (desc->ice_ufrag != ice_->local_ufrag()) {
      return make_error(ErrorCode::InvalidModificationError, "the offer's ice-ufrag is not ours");
    }
    local_ = desc;
    local_type_ = "offer";
    // The offerer controls ICE (RFC 8445 section 6.1.1); the role is fixed once
    // the transports exist.
    if (!dtls_) {
      controlling_ = true;
      ice_->set_controlling(true);
    }
    set_signaling_state(SignalingState::HaveLocalOffer);
  } else if (type == "answer" || type == "pranswer") {
    if (signaling_state != SignalingState::HaveRemoteOffer &&
        signaling_state != SignalingState::HaveLocalPranswer) {
      return make_error(
          ErrorCode::InvalidStateError,
          "cannot set a local answer in state " + std::string(to_string(signaling_state.load())));
    }
    if (!desc) {
      if (!last_answer_) {
        auto answer = create_answer();
        if (!answer) return answer.error();
      }
      desc = last_answer_;
    }
    if (!desc->setup || *desc->setup == sdp::Setup::ActPass) {
      return make_error(ErrorCode::InvalidAccessError,
                        "invalid local answer: a=setup must be active or passive");
    }
    local_ = desc;
    local_type_ = type;
    dtls_role_ = *desc->setup == sdp::Setup::Active ? dtls::Role::Client : dtls::Role::Server;
    set_signaling_state(type == "answer" ? SignalingState::Stable
                                         : SignalingState::HaveLocalPranswer);
  } else if (type == "rollback") {
    // Perfect negotiation's polite peer drops its offer on glare and takes the
    // remote one: back to stable, ICE role undecided again.
    if (signaling_state == SignalingState::HaveLocalOffer) {
      local_.reset();
      last_offer_.reset();
      if (!dtls_) controlling_.reset();
      set_signaling_state(SignalingState::Stable);
    }
    return {};
  } else {
    return make_error(ErrorCode::TypeError, "unknown description type '" + type + "'");
  }
  if (auto s = ice_->gather(); !s) return s;
  maybe_start_transports();
  return {};
}

Status PeerConnection::set_remote_description(const SessionDescription& description) {
  if (closed_) return make_error(ErrorCode::InvalidStateError, "the connection is closed");
  auto type = sdp::parse_type(description.type);
  if (!type)
    return make_error(ErrorCode::TypeError, "unknown description type '" + description.type + "'");
  if (*type == sdp::Type::Rollback) {
    if (signaling_state == SignalingState::HaveRemoteOffer) {
      remote_.reset();
      set_signaling_state(SignalingState::Stable);
    }
    return {};
  }
  auto parsed = sdp::parse(description.sdp);
  if (!parsed) {
    if (config.observer)
      config.observer->on_error("invalid-remote-description", parsed.error().message);
    return make_error(parsed.error().code, "invalid remote description: " + parsed.error().message);
  }
  sdp::SessionDescription& desc = parsed.value();
  if (desc.fingerprints.empty()) {
    return make_error(ErrorCode::InvalidAccessError,
                      "invalid remote description: no a=fingerprint");
  }

  if (*type == sdp::Type::Offer) {
    if (signaling_state != SignalingState::Stable &&
        signaling_state != SignalingState::HaveRemoteOffer) {
      return make_error(
          ErrorCode::InvalidStateError,
          "cannot set a remote offer in state " + std::string(to_string(signaling_state.load())));
    }
    if (!dtls_) {
      controlling_ = false;
      ice_->set_controlling(false);
    }
  } else {
    if (signaling_state != SignalingState::HaveLocalOffer &&
        signaling_state != SignalingState::HaveRemotePranswer) {
      return make_error(
          ErrorCode::InvalidStateError,
          "cannot set a remote answer in state " + std::string(to_string(signaling_state.load())));
    }
    if (desc.setup == sdp::Setup::ActPass) {
      return make_error(ErrorCode::InvalidAccessError,
                        "invalid remote answer: a=setup:actpass is not allowed in an answer");
    }
    if (!dtls_role_) {
      // The remote's role decides ours; absent setup in an answer means active (RFC 4145).
      dtls_role_ = desc.setup == sdp::Setup::Passive ? dtls::Role::Client : dtls::Role::Server;
    }
  }
  if (desc.ice_lite && controlling_ == false) {
    controlling_ = true;
    ice_->set_controlling(true);
  }
  bool ice_restart =
      remote_ && (remote_->ice_ufrag != desc.ice_ufrag || remote_->ice_pwd != desc.ice_pwd);
  if (ice_restart && *type == sdp::Type::Offer) {
    if (auto s = ice_->restart(); !s) return s;
    local_candidates_.clear();
  }
  if (!remote_ || ice_restart) {
    if (auto s = ice_->set_remote_credentials(desc.ice_ufrag, desc.ice_pwd); !s) return s;
  }
  for (const auto& candidate : desc.candidates) {
    if (auto s = ice_->add_remote_candidate(candidate); !s) {
      RTCMESH_LOG(Warn, "peer", "ignoring remote candidate: " << s.error().message);
    }
  }
  if (desc.end_of_candidates) ice_->remote_gathering_done();
  router_.set_remote_max_message_size(
      !desc.max_message_size ? kDefaultRemoteMaxMessageSize
      : *desc.max_message_size == 0
          ? kMaxSendMessageSize
          : std::min<size_t>(*desc.max_message_size, kMaxSendMessageSize));
  if (config.observer) {
    observe_description(*type == sdp::Type::Offer ? ObservedDescription::Kind::OfferReceived
                                                  : ObservedDescription::Kind::AnswerReceived,
                        desc, ice_restart);
    observe_remote_candidates(desc);
  }
  remote_ = std::move(desc);
  remote_type_ = description.type;
  if (*type == sdp::Type::Offer) {
    set_signaling_state(SignalingState::HaveRemoteOffer);
  } else {
    set_signaling_state(*type == sdp::Type::Answer ? SignalingState::Stable
                                                   : SignalingState::HaveRemotePranswer);
  }
  maybe_start_transports();
  return {};
}

Status PeerConnection::add_ice_candidate(const IceCandidate& candidate) {
  if (closed_) return make_error(ErrorCode::InvalidStateError, "the connection is closed");
  if (!remote_) return make_error(ErrorCode::InvalidStateError, "no remote description yet");
  if (candidate.candidate.empty()) {
    ice_->remote_gathering_done();
    return {};
  }
  auto parsed = sdp::parse_candidate(candidate.candidate);
  if (!parsed) {
    if (config.observer) config.observer->on_error("invalid-candidate", parsed.error().message);
    return make_error(parsed.error().code, "invalid candidate: " + parsed.error().message);
  }
  if (auto s = ice_->add_remote_candidate(*parsed); !s) return s;
  if (config.observer) config.observer->on_candidate(observed(*parsed, false));
  remote_->candidates.push_back(*parsed);
  return {};
}

std::optional<SessionDescription> PeerConnection::local_description() const {
  if (!local_) return std::nullopt;
  sdp::SessionDescription d = *local_;
  d.candidates = local_candidates_;
  d.end_of_candidates = ice_->gathering_state() == ice::GatheringState::Complete;
  return SessionDescription{local_type_, sdp::serialize(d)};
}

std::optional<SessionDescription> PeerConnection::remote_description() const {
  if (!remote_) return std::nullopt;
  return SessionDescription{remote_type_, sdp::serialize(*remote_)};
}

void PeerConnection::maybe_start_transports() {
  if (closed_ || !local_ || !remote_ || !dtls_role_ || dtls_) return;
  std::vector<dtls::RemoteFingerprint> fingerprints;
  for (const auto& fp : remote_->fingerprints) fingerprints.push_back({fp.algorithm, fp.value});
  dtls_ = std::make_unique<dtls::DtlsTransport>(
      *loop, *ice_, cert, *dtls_role_, std::move(fingerprints),
      [this](dtls::State s, const std::string& error) { handle_dtls_state(s, error); });
  sctp::Options options;
  options.local_port = local_->sctp_port;
  options.remote_port = remote_->sctp_port;
  options.max_receive_message_size = config.max_message_size;
  sctp::Callbacks callbacks;
  callbacks.on_state = [this](sctp::State s, const std::string& error) {
    handle_sctp_state(s, error);
  };
  callbacks.on_message = [this](uint16_t stream, uint32_t ppid, ByteSpan message) {
    router_.handle_message(stream, ppid, message);
  };
  callbacks.on_stream_reset = [this](uint16_t stream) { router_.handle_stream_reset(stream); };
  callbacks.on_buffered_amount = [this](uint16_t stream, size_t amount) {
    router_.handle_buffered_amount(stream, amount);
  };
  sctp_ = std::make_unique<sctp::SctpTransport>(*loop, *dtls_, options, std::move(callbacks));
  if (receive_paused_) sctp_->set_receive_paused(true);
  router_.attach(sctp_.get(), *dtls_role_);
  // The server waits for the ClientHello; packets that arrived early are replayed.
  if (*dtls_role_ == dtls::Role::Server || ice_->state() == ice::State::Connected ||
      ice_->state() == ice::State::Completed) {
    dtls_started_ = true;
    dtls_->start();
  }
  while (!early_dtls_.empty() && dtls_) {
    auto packet = std::move(early_dtls_.front());
    early_dtls_.pop_front();
    dtls_->receive_from_lower(ByteSpan(packet.data(), packet.size()));
  }
}

void PeerConnection::check_liveness() {
  liveness_timer_ = 0;
  if (closed_ || !ice_) return;
  auto state = ice_->state();
  if (state == ice::State::Connected || state == ice::State::Completed) {
    auto silent = std::chrono::steady_clock::now() - last_receive_;
    bool disconnected = sctp_connected_ && silent > kSilenceBeforeDisconnected;
    if (disconnected != silent_) {
      silent_ = disconnected;
      RTCMESH_LOG(Info, "peer",
                  (silent_ ? "no packets from the peer for " : "packets from the peer again after ")
                      << std::chrono::duration_cast<std::chrono::milliseconds>(silent).count()
                      << " ms");
      ice_state = silent_ ? IceConnectionState::Disconnected : to_public(state);
      if (on_ice_connection_state_change) on_ice_connection_state_change(ice_state);
      update_connection_state();
    }
  }
  liveness_timer_ = loop->post_after(kLivenessCheckInterval, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->check_liveness();
  });
}

void PeerConnection::handle_ice_packet(ByteSpan packet) {
  last_receive_ = std::chrono::steady_clock::now();
  if (silent_) check_liveness_soon();
  // RFC 7983 demultiplexing: 20..63 is DTLS; libnice already consumed STUN.
  if (packet.empty() || packet[0] < 20 || packet[0] > 63) return;
  if (dtls_) {
    dtls_->receive_from_lower(packet);
  } else if (early_dtls_.size() < kMaxEarlyPackets) {
    early_dtls_.emplace_back(packet.begin(), packet.end());
  }
}

void PeerConnection::handle_ice_state(ice::State state) {
  RTCMESH_LOG(Debug, "peer", "ICE " << ice::to_string(state));
  if ((state == ice::State::Connected || state == ice::State::Completed) && dtls_ &&
      !dtls_started_) {
    dtls_started_ = true;
    dtls_->start();
  }
  if (state == ice::State::Failed && ice_state != IceConnectionState::Failed && !closed_) {
    // Not sticky, unlike a DTLS failure: the connection state follows the ICE state,
    // so an ICE restart can bring a failed connection back (W3C: failed -> checking).
    auto reason = ice_->failure_reason();
    RTCMESH_LOG(Info, "peer", "ICE failed" << (reason.empty() ? "" : ": ") << reason);
    if (on_error)
      on_error(make_error(ErrorCode::OperationError,
                          "ICE failed" + (reason.empty() ? std::string() : ": " + reason)));
    if (config.observer)
      config.observer->on_error("ice-failed", reason.empty() ? "ICE failed" : reason);
  }
  bool up = state == ice::State::Connected || state == ice::State::Completed;
  ice_state = (silent_ && up) ? IceConnectionState::Disconnected : to_public(state);
  if (on_ice_connection_state_change) on_ice_connection_state_change(ice_state);
  update_connection_state();
}

void PeerConnection::handle_gathering_state(ice::GatheringState state) {
  IceGatheringState s = state == ice::GatheringState::New         ? IceGatheringState::New
                        : state == ice::GatheringState::Gathering ? IceGatheringState::Gathering
                                                                  : IceGatheringState::Complete;
  if (gathering_state == s) return;
  gathering_state = s;
  if (on_ice_gathering_state_change) on_ice_gathering_state_change(s);
}

void PeerConnection::handle_local_candidate(const sdp::Candidate& candidate) {
  local_candidates_.push_back(candidate);
  if (config.observer) config.observer->on_candidate(observed(candidate, true));
  if (on_ice_candidate) on_ice_candidate(to_ice_candidate(candidate, local_ ? local_->mid : "0"));
}

void PeerConnection::handle_dtls_state(dtls::State state, const std::string& error) {
  RTCMESH_LOG(Debug, "peer", "DTLS " << dtls::to_string(state) << " " << error);
  if (state == dtls::State::Connected) {
    sctp_->start();
  } else if (state == dtls::State::Failed) {
    fail(error.empty() ? "DTLS failed" : error);
    return;
  } else if (state == dtls::State::Closed) {
    if (teardown_timer_ != 0) {
      // We are closing and waiting for SCTP's SHUTDOWN to complete, but the
      // peer has ended DTLS (Pion closes without answering SHUTDOWN): nothing
      // more can arrive, so finish now instead of at kGracefulCloseTimeout.
      loop->post([self = shared_from_this()] { self->finish_teardown(); });
      return;
    }
    // close_notify from the peer: its data channels are gone.
    if (!end_reason_) end_reason_ = "remote-closed";
    router_.close_all();
  }
  update_connection_state();
}

void PeerConnection::handle_sctp_state(sctp::State state, const std::string& error) {
  RTCMESH_LOG(Debug, "peer", "SCTP " << sctp::to_string(state) << " " << error);
  if (state == sctp::State::Connected) {
    sctp_connected_ = true;
    last_receive_ = std::chrono::steady_clock::now();
    if (liveness_timer_ == 0) check_liveness();
    schedule_stats();
    router_.open_all();
  } else if (state == sctp::State::Closed || state == sctp::State::Failed) {
    if (closed_) {
      // Our graceful close completed: finish the teardown outside this callback.
      loop->post([self = shared_from_this()] { self->finish_teardown(); });
      return;
    }
    sctp_connected_ = false;
    if (!end_reason_) end_reason_ = "remote-closed";
    router_.close_all();
    // An ABORT from the peer (its close()) or an SCTP timeout ends the data
    // channels; the connection state itself follows ICE and DTLS (W3C), which
    // report a vanished peer through consent freshness.
    if (state == sctp::State::Failed) {
      RTCMESH_LOG(Info, "peer", "SCTP association ended: " << error);
    }
  }
}

void PeerConnection::send_message(const std::shared_ptr<DataChannel>& channel, uint32_t ppid,
                                  std::vector<uint8_t> payload, size_t user_bytes) {
  router_.send(channel, ppid, std::move(payload), user_bytes);
}

void PeerConnection::close_channel(const std::shared_ptr<DataChannel>& channel) {
  router_.close(channel, sctp_connected_);
}

Result<std::shared_ptr<DataChannel>> PeerConnection::create_data_channel(
    const std::string& label, const DataChannelInit& init) {
  if (closed_) return make_error(ErrorCode::InvalidStateError, "the connection is closed");
  auto created = router_.create(label, init);
  if (!created) return created;
  auto channel = created.value();
  if (sctp_connected_ && channel->stream >= 0) {
    // On a live association the channel opens in a later task, as in browsers: the
    // caller attaches on_open after create_data_channel returns and must still see it.
    loop->post([weak = weak_from_this(), channel] {
      auto self = weak.lock();
      if (self && !self->closed_ && self->sctp_connected_ &&
          channel->state == DataChannelState::Connecting) {
        self->router_.open(channel);
      }
    });
  }
  return channel;
}

void PeerConnection::update_connection_state() {
  if (closed_) return;
  PeerConnectionState s;
  auto ice = ice_ ? ice_->state() : ice::State::New;
  auto dtls = dtls_ ? dtls_->state() : dtls::State::New;
  if (failed_ || ice == ice::State::Failed || dtls == dtls::State::Failed) {
    s = PeerConnectionState::Failed;
  } else if (ice == ice::State::Disconnected || silent_) {
    s = PeerConnectionState::Disconnected;
  } else if ((ice == ice::State::Connected || ice == ice::State::Completed) &&
             (dtls == dtls::State::Connected || dtls == dtls::State::Closed)) {
    s = PeerConnectionState::Connected;
  } else if (ice == ice::State::New && dtls == dtls::State::New) {
    s = PeerConnectionState::New;
  } else {
    s = PeerConnectionState::Connecting;
  }
  const PeerConnectionState from = connection_state;
  if (s == from) return;
  connection_state = s;
  observe_state(from, s);
  if (on_connection_state_change) on_connection_state_change(s);
}

void PeerConnection::fail(const std::string& error) {
  if (failed_ || closed_) return;
  failed_ = true;
  end_reason_ = "failed";
  RTCMESH_LOG(Info, "peer", "connection failed: " << error);
  if (on_error) on_error(make_error(ErrorCode::OperationError, error));
  if (config.observer) config.observer->on_error("connection-failed", error);
  update_connection_state();
}

void PeerConnection::observe_description(ObservedDescription::Kind kind,
                                         const sdp::SessionDescription& d, bool ice_restart) {
  if (!config.observer) return;
  ObservedDescription o;
  o.kind = kind;
  o.ice_ufrag = d.ice_ufrag;
  if (!d.fingerprints.empty())
    o.fingerprint = d.fingerprints.front().algorithm + " " + d.fingerprints.front().value;
  o.ice_restart = ice_restart;
  o.candidates = d.candidates.size();
  config.observer->on_description(o);
}

void PeerConnection::observe_remote_candidates(const sdp::SessionDescription& desc) {
  for (const auto& c : desc.candidates) config.observer->on_candidate(observed(c, false));
}

void PeerConnection::schedule_stats() {
  if (!config.observer || stats_timer_ != 0 || closed_) return;
  auto interval = config.observer->stats_interval();
  if (interval.count() <= 0) return;
  stats_timer_ = loop->post_after(interval, [weak = weak_from_this()] {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    self->stats_timer_ = 0;
    self->config.observer->on_stats(self->get_stats(), false);
    self->schedule_stats();
  });
}

void PeerConnection::set_signaling_state(SignalingState state) {
  if (signaling_state == state) return;
  signaling_state = state;
  if (on_signaling_state_change) on_signaling_state_change(state);
}

Stats PeerConnection::get_stats() const {
  Stats stats;
  stats.timestamp_ms =
      std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  if (ice_) {
    stats.transport.bytes_sent = ice_->bytes_sent();
    stats.transport.bytes_received = ice_->bytes_received();
    stats.transport.ice_state = ice::to_string(ice_->state());
    ice::SelectedPair pair;
    if (ice_->selected_pair(pair)) {
      IceCandidatePairStats p;
      auto fill = [](IceCandidateStats& out, const sdp::Candidate& c, const char* prefix) {
        out.id = std::string(prefix) + c.foundation;
        out.address = c.address;
        out.port = c.port;
        out.protocol = c.transport;
        out.candidate_type = c.type;
        out.priority = c.priority;
      };
      fill(p.local, pair.local, "I");
      fill(p.remote, pair.remote, "R");
      p.id = "CP" + pair.local.foundation + "_" + pair.remote.foundation;
      p.bytes_sent = ice_->bytes_sent();
      p.bytes_received = ice_->bytes_received();
      p.packets_sent = ice_->packets_sent();
      p.packets_received = ice_->packets_received();
      if (sctp_) {
        auto sctp_stats = sctp_->stats();
        if (sctp_stats.has_srtt) p.current_round_trip_time = sctp_stats.srtt_ms / 1000.0;
      }
      stats.transport.selected_candidate_pair_id = p.id;
      stats.selected_candidate_pair = p;
    }
  }
  stats.transport.dtls_state = dtls_ ? dtls::to_string(dtls_->state()) : "new";
  stats.transport.dtls_role = !dtls_role_                         ? "unknown"
                              : *dtls_role_ == dtls::Role::Client ? "client"
                                                                  : "server";
  router_.add_stats(stats);
  return stats;
}

void PeerConnection::close() {
  if (closed_) return;
  if (config.observer) config.observer->on_stats(get_stats(), true);  // the final snapshot
  closed_ = true;
  signaling_state = SignalingState::Closed;
  const PeerConnectionState final_state = connection_state;
  connection_state = PeerConnectionState::Closed;
  ice_state = IceConnectionState::Closed;
  router_.close_all();
  if (stats_timer_ != 0) loop->cancel(stats_timer_);
  stats_timer_ = 0;
  if (config.observer) {
    observe_state(final_state, PeerConnectionState::Closed);
    config.observer->on_closed(end_reason_ ? end_reason_ : "closed", final_state);
  }
  // No user callback runs after close() (W3C): drop them now.
  on_ice_candidate = nullptr;
  on_connection_state_change = nullptr;
  on_ice_connection_state_change = nullptr;
  on_ice_gathering_state_change = nullptr;
  on_signaling_state_change = nullptr;
  on_data_channel = nullptr;
  on_error = nullptr;
  // Graceful shutdown: SCTP sends what is queued (stream resets included) and
  // SHUTDOWN, then DTLS sends close_notify. The layers are destroyed top down
  // when SCTP is done or after kGracefulCloseTimeout, always from a posted
  // task: a layer is never destroyed inside its own call.
  pending_shutdowns().begin();
  if (sctp_ && sctp_->state() == sctp::State::Connected && dtls_ &&
      dtls_->state() == dtls::State::Connected) {
    sctp_->close();
    teardown_timer_ = loop->post_after(kGracefulCloseTimeout, [self = shared_from_this()] {
      self->teardown_timer_ = 0;
      self->finish_teardown();
    });
  } else {
    loop->post([self = shared_from_this()] { self->finish_teardown(); });
  }
}

void PeerConnection::finish_teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  if (teardown_timer_ != 0) loop->cancel(teardown_timer_);
  if (liveness_timer_ != 0) loop->cancel(liveness_timer_);
  liveness_timer_ = 0;
  router_.detach();
  sctp_.reset();
  if (dtls_) dtls_->close();
  dtls_.reset();
  ice_.reset();
  pending_shutdowns().end();
}

}  // namespace impl

// ---- public handle -------------------------------------------------------

namespace {

template <class F>
auto on_loop(const std::shared_ptr<impl::PeerConnection>& pc, F&& fn) {
  using R = decltype(fn());
  if constexpr (std::is_void_v<R>) {
    pc->loop->run_sync(fn);
  } else {
    std::optional<R> result;
    pc->loop->run_sync([&] { result.emplace(fn()); });
    return std::move(*result);
  }
}

}  // namespace

Result<std::shared_ptr<PeerConnection>> PeerConnection::create(const Configuration& config) {
  if (config.max_message_size < 1024) {
    return make_error(ErrorCode::RangeError, "max_message_size must be at least 1024");
  }
  auto servers = impl::resolve_ice_servers(config.ice_servers);
  if (!servers) return servers.error();
  auto cert = dtls::Certificate::generate();
  if (!cert) return cert.error();
  (void)cert.value()->dtls_context();  // built here, off the network thread
  ice::Config ice_config;
  ice_config.servers = std::move(servers.value());
  ice_config.relay_only = config.ice_transport_policy == IceTransportPolicy::Relay;
  ice_config.port_min = config.port_range_begin;
  ice_config.port_max = config.port_range_end;
  ice_config.local_addresses = config.gather_addresses;
  ice_config.tcp = config.enable_ice_tcp;
  ice_config.regular_nomination = config.ice_regular_nomination;
  auto loop =
      config.dedicated_network_thread ? std::make_shared<base::Loop>() : base::Loop::shared();
  auto impl = std::make_shared<impl::PeerConnection>(config, std::move(loop), cert.value(),
                                                     std::move(ice_config));
  Status status;
  impl->loop->run_sync([&] { status = impl->init(); });
  if (!status) return status.error();
  return std::shared_ptr<PeerConnection>(new PeerConnection(std::move(impl)));
}

PeerConnection::PeerConnection(std::shared_ptr<impl::PeerConnection> impl)
    : impl_(std::move(impl)) {}

PeerConnection::~PeerConnection() {
  close();
}

Result<SessionDescription> PeerConnection::create_offer() {
  return on_loop(impl_, [&]() -> Result<SessionDescription> {
    auto d = impl_->create_offer();
    if (!d) return d.error();
    return SessionDescription{"offer", sdp::serialize(*d)};
  });
}

Result<SessionDescription> PeerConnection::create_answer() {
  return on_loop(impl_, [&]() -> Result<SessionDescription> {
    auto d = impl_->create_answer();
    if (!d) return d.error();
    return SessionDescription{"answer", sdp::serialize(*d)};
  });
}

Result<void> PeerConnection::set_local_description(const SessionDescription& description) {
  return on_loop(impl_, [&] { return impl_->set_local_description(description); });
}

Result<void> PeerConnection::set_remote_description(const SessionDescription& description) {
  return on_loop(impl_, [&] { return impl_->set_remote_description(description); });
}

Result<void> PeerConnection::add_ice_candidate(const IceCandidate& candidate) {
  // From the callback of a connection on another network thread, waiting here
  // could deadlock against a call going the other way: apply it asynchronously
  // (as W3C addIceCandidate is) and log a failure instead of returning it.
  if (base::Loop::on_any_loop_thread() && !impl_->loop->in_loop_thread()) {
    impl_->loop->post([impl = impl_, candidate] {
      if (auto s = impl->add_ice_candidate(candidate); !s) {
        RTCMESH_LOG(Warn, "peer", "candidate not added: " << s.error());
      }
    });
    return {};
  }
  return on_loop(impl_, [&] { return impl_->add_ice_candidate(candidate); });
}

std::optional<SessionDescription> PeerConnection::local_description() const {
  return on_loop(impl_, [&] { return impl_->local_description(); });
}

std::optional<SessionDescription> PeerConnection::remote_description() const {
  return on_loop(impl_, [&] { return impl_->remote_description(); });
}

void PeerConnection::restart_ice() {
  on_loop(impl_, [&] { impl_->restart_ice_requested(); });
}

void impl::PeerConnection::apply_receive_paused() {
  receive_paused_ = want_receive_paused_.load();
  if (sctp_) sctp_->set_receive_paused(receive_paused_);
}

// The latest call wins whatever the order in which the applications run: each
// one reads the wanted state when it runs. On the network thread it applies at
// once (posted tasks can wait behind a flood of incoming packets); from other
// threads it is posted, never waited for.
void PeerConnection::pause_receiving() {
  impl_->want_receive_paused_.store(true);
  if (impl_->loop->in_loop_thread())
    impl_->apply_receive_paused();
  else
    impl_->loop->post([impl = impl_] { impl->apply_receive_paused(); });
}

void PeerConnection::resume_receiving() {
  impl_->want_receive_paused_.store(false);
  if (impl_->loop->in_loop_thread())
    impl_->apply_receive_paused();
  else
    impl_->loop->post([impl = impl_] { impl->apply_receive_paused(); });
}

Result<std::shared_ptr<DataChannel>> PeerConnection::create_data_channel(
    const std::string& label, const DataChannelInit& init) {
  return on_loop(impl_, [&]() -> Result<std::shared_ptr<DataChannel>> {
    auto c = impl_->create_data_channel(label, init);
    if (!c) return c.error();
    return std::shared_ptr<DataChannel>(new DataChannel(c.value()));
  });
}

Stats PeerConnection::get_stats() const {
  return on_loop(impl_, [&] { return impl_->get_stats(); });
}

void PeerConnection::close() {
  // Synchronous, as in W3C: once close() returns no further callback of this
  // connection runs (one that was already running on the network thread has
  // finished). On the network thread itself it runs inline.
  impl_->loop->run_sync([impl = impl_] { impl->close(); });
}

Result<void> wait_for_closing_connections(std::chrono::milliseconds timeout) {
  if (impl::pending_shutdowns().wait(timeout)) return {};
  return make_error(ErrorCode::TimeoutError,
                    "connections still closing after " + std::to_string(timeout.count()) + " ms");
}

PeerConnectionState PeerConnection::connection_state() const {
  return impl_->connection_state;
}
IceConnectionState PeerConnection::ice_connection_state() const {
  return impl_->ice_state;
}
IceGatheringState PeerConnection::ice_gathering_state() const {
  return impl_->gathering_state;
}
SignalingState PeerConnection::signaling_state() const {
  return impl_->signaling_state;
}

#define RTCMESH_SETTER(name, type)                              \
  void PeerConnection::name(std::function<type> callback) {     \
    on_loop(impl_, [&] { impl_->name = std::move(callback); }); \
  }
RTCMESH_SETTER(on_ice_candidate, void(const IceCandidate&))
RTCMESH_SETTER(on_connection_state_change, void(PeerConnectionState))
RTCMESH_SETTER(on_ice_connection_state_change, void(IceConnectionState))
RTCMESH_SETTER(on_ice_gathering_state_change, void(IceGatheringState))
RTCMESH_SETTER(on_signaling_state_change, void(SignalingState))
RTCMESH_SETTER(on_data_channel, void(std::shared_ptr<DataChannel>))
RTCMESH_SETTER(on_error, void(const Error&))
#undef RTCMESH_SETTER

}  // namespace rtcmesh
