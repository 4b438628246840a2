#include "testing/sctp_pair.hpp"

namespace rtcmesh::testing {

using sctp::SctpTransport;

sctp::Callbacks SctpEndpoint::callbacks() {
  sctp::Callbacks cb;
  cb.on_state = [this](State state, const std::string& error) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      states.emplace_back(state, error);
    }
    cv.notify_all();
    if (on_state) on_state(state);
  };
  cb.on_message = [this](uint16_t stream, uint32_t ppid, ByteSpan message) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (keep_data)
        messages.push_back({stream, ppid, std::vector<uint8_t>(message.begin(), message.end())});
      bytes += message.size();
      ++count;
      if (keep_data) log.push_back("m" + std::to_string(stream));
    }
    cv.notify_all();
    if (on_message) on_message(stream, ppid, message);
  };
  cb.on_stream_reset = [this](uint16_t stream) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      resets.push_back(stream);
      log.push_back("r" + std::to_string(stream));
    }
    cv.notify_all();
  };
  cb.on_buffered_amount = [this](uint16_t stream, size_t amount) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      buffered.emplace_back(stream, amount);
    }
    cv.notify_all();
    if (on_buffered) on_buffered(stream, amount);
  };
  return cb;
}

bool SctpEndpoint::reached(State state) const {
  for (const auto& entry : states) {
    if (entry.first == state) return true;
  }
  return false;
}

SctpPair::SctpPair() : link(std::make_unique<MemoryLink>(executor)) {
  a.executor = &executor;
  b.executor = &executor;
}

SctpPair::~SctpPair() {
  link->a.filter = nullptr;
  link->b.filter = nullptr;
  a.transport.reset();
  b.transport.reset();
  link.reset();
  executor.run_until_idle();
}

void SctpPair::create(sctp::Options options_a, sctp::Options options_b) {
  a.transport = std::make_unique<SctpTransport>(executor, link->a, options_a, a.callbacks());
  b.transport = std::make_unique<SctpTransport>(executor, link->b, options_b, b.callbacks());
}

bool SctpPair::connect(sctp::Options options_a, sctp::Options options_b) {
  create(options_a, options_b);
  a.transport->start();
  b.transport->start();
  return a.wait_state(sctp::State::Connected) && b.wait_state(sctp::State::Connected);
}

bool SctpPair::send(SctpEndpoint& from, uint16_t stream, const std::vector<uint8_t>& data,
                    sctp::SendOptions options, uint32_t ppid) {
  return from.transport->send(stream, ppid, ByteSpan(data.data(), data.size()), options);
}

}  // namespace rtcmesh::testing
