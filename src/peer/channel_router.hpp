// The data channels of one connection on its SCTP association (RFC 8831/8832):
// stream id allocation by DTLS role, DCEP OPEN/ACK, and routing of SCTP
// messages, stream resets and buffered amounts to their channel. Everything
// runs on the connection's network thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/packet_transport.hpp"
#include "base/result.hpp"
#include "dtls/dtls_transport.hpp"
#include "rtcmesh/configuration.hpp"
#include "rtcmesh/observer.hpp"
#include "rtcmesh/stats.hpp"

namespace rtcmesh::base {
class Loop;
}
namespace rtcmesh::sctp {
class SctpTransport;
}

namespace rtcmesh::impl {

struct DataChannel;
struct PeerConnection;

class ChannelRouter {
 public:
  ChannelRouter(std::shared_ptr<base::Loop> loop, std::shared_ptr<ConnectionObserver> observer);

  // The connection the channels belong to (their sends and closes go there).
  void set_owner(std::weak_ptr<PeerConnection> owner) { owner_ = std::move(owner); }
  // A channel the remote opened with DCEP OPEN, already open.
  std::function<void(const std::shared_ptr<DataChannel>&)> on_remote_channel;

  // The association exists: pending channels get stream ids of our parity.
  void attach(sctp::SctpTransport* sctp, dtls::Role role);
  // The association is being destroyed; nothing is sent after this.
  void detach() { sctp_ = nullptr; }
  // The remote's a=max-message-size, for every channel present and future.
  void set_remote_max_message_size(size_t bytes);

  // TypeError/OperationError as PeerConnection::create_data_channel documents.
  Result<std::shared_ptr<DataChannel>> create(const std::string& label,
                                              const DataChannelInit& init);
  // The association is up: every connecting channel opens (DCEP OPEN sent).
  void open_all();
  void open(const std::shared_ptr<DataChannel>& channel);

  // From SCTP.
  void handle_message(uint16_t stream, uint32_t ppid, ByteSpan message);
  void handle_stream_reset(uint16_t stream);
  void handle_buffered_amount(uint16_t stream, size_t amount);

  // From the channels (posted to the loop by DataChannel).
  void send(const std::shared_ptr<DataChannel>& channel, uint32_t ppid,
            std::vector<uint8_t> payload, size_t user_bytes);
  // `connected`: the association is up, so the stream is reset (graceful).
  void close(const std::shared_ptr<DataChannel>& channel, bool connected);
  // Every channel, assigned or pending, ends now.
  void close_all();

  void add_stats(Stats& stats) const;

 private:
  void assign_stream_ids();
  void handle_dcep(uint16_t stream, ByteSpan message);
  std::shared_ptr<DataChannel> find(uint16_t stream) const;

  const std::shared_ptr<base::Loop> loop_;
  const std::shared_ptr<ConnectionObserver> observer_;
  std::weak_ptr<PeerConnection> owner_;
  sctp::SctpTransport* sctp_ = nullptr;
  std::optional<dtls::Role> role_;
  size_t remote_max_message_size_;
  std::vector<std::shared_ptr<DataChannel>> pending_;  // no stream id yet
  std::map<uint16_t, std::shared_ptr<DataChannel>> channels_;
  uint32_t opened_ = 0, closed_ = 0;
};

}  // namespace rtcmesh::impl
