// Test double: two PacketTransports joined in memory. A datagram sent on one end
// is delivered to the other end's receiver on the executor, asynchronously
// (posted), so layers never re-enter themselves. A filter can drop datagrams to
// simulate loss.
//
// Thread-safety: use on the executor thread only (like every PacketTransport).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "base/executor.hpp"
#include "base/packet_transport.hpp"

namespace rtcmesh::testing {

class MemoryLink {
 public:
  class End final : public PacketTransport {
   public:
    bool send(ByteSpan packet) override {
      if (filter && !filter(packet)) return true;  // dropped on the "wire"
      ++sent;
      auto data = std::vector<uint8_t>(packet.begin(), packet.end());
      std::weak_ptr<bool> alive = alive_;
      End* peer = peer_;
      loop_->post([alive, peer, data = std::move(data)] {
        if (alive.expired()) return;
        peer->deliver(ByteSpan(data.data(), data.size()));
      });
      return true;
    }
    // Return false to drop the datagram.
    std::function<bool(ByteSpan)> filter;
    size_t sent = 0;

   private:
    friend class MemoryLink;
    base::Executor* loop_ = nullptr;
    End* peer_ = nullptr;
    std::shared_ptr<bool> alive_;
  };

  explicit MemoryLink(base::Executor& loop) : alive_(std::make_shared<bool>(true)) {
    a.loop_ = b.loop_ = &loop;
    a.peer_ = &b;
    b.peer_ = &a;
    a.alive_ = b.alive_ = alive_;
  }
  MemoryLink(const MemoryLink&) = delete;
  MemoryLink& operator=(const MemoryLink&) = delete;

  End a;
  End b;

 private:
  std::shared_ptr<bool> alive_;
};

}  // namespace rtcmesh::testing
