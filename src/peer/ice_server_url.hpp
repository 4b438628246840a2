// Parsing of RTCIceServer URLs (RFC 7064 stun/stuns, RFC 7065 turn/turns) and
// resolution of their host names into ice::Server entries.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "ice/ice_transport.hpp"
#include "rtcmesh/configuration.hpp"

namespace rtcmesh::impl {

struct IceUrl {
  enum class Scheme { Stun, Stuns, Turn, Turns };
  Scheme scheme = Scheme::Stun;
  std::string host;  // without brackets for IPv6
  uint16_t port = 3478;
  ice::Server::Transport transport = ice::Server::Transport::Udp;
};

// "stun:host[:port]", "turn:host[:port][?transport=udp|tcp]", "turns:host[:port]".
Result<IceUrl> parse_ice_url(std::string_view url);

// Parses and resolves every URL (numeric addresses are used as they are; names
// go through getaddrinfo, so call this off the network thread).
Result<std::vector<ice::Server>> resolve_ice_servers(const std::vector<IceServer>& servers);

}  // namespace rtcmesh::impl
