#include "observe/connection_witness.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "observe/metrics.hpp"
#include "witness/events.hpp"
#include "witness/format.hpp"
#include "witness/recorder.hpp"

namespace rtcmesh::observe {

namespace ev = witness::events;
using json = nlohmann::json;

namespace {

const char* kind_event(ObservedDescription::Kind kind) {
  switch (kind) {
    case ObservedDescription::Kind::OfferCreated:
      return ev::kOfferCreated.data();
    case ObservedDescription::Kind::AnswerCreated:
      return ev::kAnswerCreated.data();
    case ObservedDescription::Kind::OfferReceived:
      return ev::kOfferReceived.data();
    case ObservedDescription::Kind::AnswerReceived:
      return ev::kAnswerReceived.data();
  }
  return ev::kOfferCreated.data();
}

}  // namespace

ConnectionWitness::ConnectionWitness(std::shared_ptr<witness::Recorder> recorder,
                                     std::shared_ptr<RtcMetrics> metrics,
                                     const WitnessPolicy& policy, std::string peer_id,
                                     std::string session)
    : recorder_(std::move(recorder)),
      metrics_(std::move(metrics)),
      policy_(policy),
      peer_id_(std::move(peer_id)),
      session_(std::move(session)) {
  if (metrics_) metrics_->connection_created();
  emit(ev::kSessionInitialized,
       {{"session", session_},
        {"message_sample_every", policy_.message_sample_every},
        {"addresses", policy_.hash_addresses ? "salted-sha256" : "clear"}});
}

ConnectionWitness::~ConnectionWitness() {
  // A connection that was never closed (creation failed half-way) leaves the gauge.
  if (!closed_ && metrics_) metrics_->connection_closed();
}

void ConnectionWitness::emit(std::string_view type, json data) {
  if (!recorder_) return;
  if (!peer_id_.empty()) data["peer_id"] = peer_id_;
  recorder_->record(std::string(type), std::move(data));
}

void ConnectionWitness::on_description(const ObservedDescription& d) {
  emit(kind_event(d.kind), {{"ice_ufrag", d.ice_ufrag},
                            {"fingerprint", d.fingerprint},
                            {"ice_restart", d.ice_restart},
                            {"candidates", d.candidates}});
}

void ConnectionWitness::on_candidate(const ObservedCandidate& c) {
  if (!recorder_) return;
  std::string address = c.address + ":" + std::to_string(c.port);
  if (policy_.hash_addresses) address = witness::salted_address_hash(policy_.address_salt, address);
  emit(ev::kIceCandidate, {{"direction", c.local ? "local" : "remote"},
                           {"candidate_type", c.candidate_type},
                           {"protocol", c.protocol},
                           {"priority", c.priority},
                           {"address", address}});
}

void ConnectionWitness::on_connection_state_change(PeerConnectionState from,
                                                   PeerConnectionState to) {
  if (metrics_) metrics_->state_change(from, to);
  emit(ev::kConnectionState, {{"from", to_string(from)}, {"to", to_string(to)}});
}

void ConnectionWitness::on_data_channel_open(const std::string& label, int id,
                                             const std::string& protocol) {
  open_channels_.insert(id);
  if (metrics_) metrics_->channel_opened();
  emit(ev::kDataChannelOpen, {{"label", label}, {"id", id}, {"protocol", protocol}});
}

void ConnectionWitness::on_data_channel_close(const DataChannelStats& s) {
  if (open_channels_.erase(s.data_channel_identifier) && metrics_) metrics_->channel_closed();
  emit(ev::kDataChannelClose, {{"label", s.label},
                               {"id", s.data_channel_identifier},
                               {"total_messages", s.messages_sent + s.messages_received},
                               {"messages_sent", s.messages_sent},
                               {"messages_received", s.messages_received},
                               {"bytes_sent", s.bytes_sent},
                               {"bytes_received", s.bytes_received}});
}

void ConnectionWitness::on_message(bool sent, const std::string& label, size_t size) {
  if (metrics_) metrics_->message(sent, size);
  uint64_t count = sent ? ++sent_ : ++received_;
  const uint32_t every = policy_.message_sample_every;
  if (!recorder_ || every == 0 || (count - 1) % every != 0) return;
  if (const uint32_t cap = policy_.max_samples_per_second; cap != 0) {
    const auto now = std::chrono::steady_clock::now();
    if (tokens_at_.time_since_epoch().count() == 0) {
      sample_tokens_ = cap;
    } else {
      sample_tokens_ = std::min<double>(
          cap, sample_tokens_ + cap * std::chrono::duration<double>(now - tokens_at_).count());
    }
    tokens_at_ = now;
    if (sample_tokens_ < 1) {
      ++unsampled_;
      return;
    }
    sample_tokens_ -= 1;
  }
  json data = {{"label", label},
               {"direction", sent ? "sent" : "received"},
               {"message_count", count},
               {"message_size_bytes", size},
               {"sample_rate", every}};
  if (unsampled_) {
    data["samples_skipped"] = unsampled_;  // over the per-second cap since the last sample
    unsampled_ = 0;
  }
  emit(ev::kDataChannelMessageSample, std::move(data));
}

void ConnectionWitness::on_stats(const Stats& s, bool final) {
  if (!recorder_) return;
  uint64_t messages_sent = 0, messages_received = 0;
  for (const auto& c : s.data_channels) {
    messages_sent += c.messages_sent;
    messages_received += c.messages_received;
  }
  json data = {{"bytes_sent", s.transport.bytes_sent},
               {"bytes_received", s.transport.bytes_received},
               {"data_channels_opened", s.data_channels_opened},
               {"data_channels_closed", s.data_channels_closed},
               {"messages_sent", messages_sent},
               {"messages_received", messages_received},
               {"ice_state", s.transport.ice_state},
               {"dtls_state", s.transport.dtls_state},
               {"final", final}};
  if (s.selected_candidate_pair) {
    const auto& p = *s.selected_candidate_pair;
    data["packets_sent"] = p.packets_sent;
    data["packets_received"] = p.packets_received;
    data["pair"] = p.local.candidate_type + "/" + p.remote.candidate_type;
    data["pair_protocol"] = p.local.protocol;
    // Integers only in the log (docs/witness-format.md): the RTT in µs.
    if (p.current_round_trip_time) {
      data["rtt_us"] = static_cast<int64_t>(std::llround(*p.current_round_trip_time * 1e6));
    }
  }
  emit(ev::kStatsSnapshot, std::move(data));
}

void ConnectionWitness::on_error(const std::string& kind, const std::string& message) {
  emit(ev::kError, {{"error_type", kind}, {"error_message", message}});
}

void ConnectionWitness::on_closed(const std::string& reason, PeerConnectionState final_state) {
  if (closed_) return;
  closed_ = true;
  if (metrics_) {
    for (size_t i = 0; i < open_channels_.size(); ++i) metrics_->channel_closed();
    metrics_->connection_closed();
  }
  open_channels_.clear();
  emit(ev::kPeerDisconnected, {{"reason", reason}, {"final_state", to_string(final_state)}});
}

}  // namespace rtcmesh::observe
